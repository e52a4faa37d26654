//! One invocation: load the journal, run the handler until it finishes or can
//! make no more progress, and record how it ended.

use std::future::poll_fn;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use durafn_runtime::clock::Clock;
use durafn_runtime::model::{
    ErrorObject, Execution, ExecutionId, ExecutionStatus, Journal, Timestamp, check_payload_within,
    serialized_len,
};
use durafn_runtime::store::{Outcome, Store, SuspendWrite, Transition};
use futures::FutureExt;
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument;
use tracing::instrument::WithSubscriber;

use crate::context::{DurableContext, Fault, RunState, Shared};
use crate::error::{DurableError, Error};
use crate::handler::Handler;
use crate::replay::JournalCursor;
use crate::telemetry::InvocationTrace;

pub use crate::context::{CheckpointHook, InvocationConfig, StepHook};

/// How an invocation ended, as reported to whoever invoked it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvocationReport {
    /// The execution.
    pub execution_id: ExecutionId,
    /// Its status after this invocation; `SUPERSEDED` if a newer claim owns it.
    pub status: String,
    /// The output, when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The error, when it failed or blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
    /// When it wants to run again, when suspended on a timer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wake_at: Option<Timestamp>,
}

enum End {
    Done(Result<Value, DurableError>),
    Panicked(String),
    Suspend(Option<Timestamp>),
    Fault(Fault),
}

/// Runs one invocation of a claimed execution (`claimed` is what the claim
/// returned: its epoch makes the final update conditional).
pub async fn run_invocation(
    handler: &Handler,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: InvocationConfig,
    claimed: &Execution,
) -> Result<InvocationReport, Error> {
    run_traced(handler, store, clock, config, claimed, None).await
}

/// [`run_invocation`] with the journal already in hand (read after the claim,
/// or known to be empty because the claim created the execution): saves the
/// store read that would fetch it. `journal.execution` is the claimed record.
pub async fn run_invocation_with_journal(
    handler: &Handler,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: InvocationConfig,
    journal: Journal,
) -> Result<InvocationReport, Error> {
    let claimed = journal.execution.clone();
    run_traced(handler, store, clock, config, &claimed, Some(journal)).await
}

async fn run_traced(
    handler: &Handler,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: InvocationConfig,
    claimed: &Execution,
    journal: Option<Journal>,
) -> Result<InvocationReport, Error> {
    // The store calls of this invocation, for its end record: the caller's
    // meter if it counts already (a claim came before), else a new one.
    let meter = durafn_runtime::cost::current().unwrap_or_default();
    durafn_runtime::cost::metered(
        meter.clone(),
        run_metered(handler, store, clock, config, claimed, journal, meter),
    )
    .await
}

async fn run_metered(
    handler: &Handler,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: InvocationConfig,
    claimed: &Execution,
    journal: Option<Journal>,
    meter: Arc<durafn_runtime::cost::UsageMeter>,
) -> Result<InvocationReport, Error> {
    let span = tracing::info_span!("invocation", execution_id = %claimed.id, epoch = claimed.epoch);
    let trace = InvocationTrace::begin(claimed, clock.now()).map(Arc::new);
    // The invocation's history record: written as it starts and again as
    // it ends (beside its last update, see `Ending`); one with no end crashed.
    let start = crate::history::started(claimed.epoch, clock.now(), config.deadline);
    let ending = crate::history::Ending::new(start.clone(), config.retention, meter);
    let begun = durafn_runtime::model::HistoryEntry::Invocation(start);
    // The start record first: a store that defers history (over HTTP) sends
    // it with the invocation's first call.
    let ((), result) = futures::join!(
        crate::history::write(store.as_ref(), &claimed.id, &begun, ending.keep()),
        run(
            handler,
            store.clone(),
            clock.clone(),
            config,
            claimed,
            journal,
            trace.clone(),
            &ending,
        )
        .instrument(span),
    );
    ending
        .record(
            store.as_ref(),
            &claimed.id,
            result.as_ref().map_err(ToString::to_string),
            clock.now(),
        )
        .await;
    if let Some(trace) = trace {
        // Exported before the invocation returns: Lambda freezes the process after.
        let (status, finished) = match &result {
            Ok(r) => (
                r.status.as_str(),
                matches!(
                    r.status.as_str(),
                    "SUCCEEDED" | "FAILED" | "CANCELLED" | "TIMED_OUT"
                ),
            ),
            Err(_) => ("ERROR", false),
        };
        trace.end(status, finished, clock.now()).await;
    }
    result
}

#[allow(clippy::too_many_arguments)] // each one is what the invocation runs with
async fn run(
    handler: &Handler,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: InvocationConfig,
    claimed: &Execution,
    journal: Option<Journal>,
    trace: Option<Arc<InvocationTrace>>,
    ending: &crate::history::Ending,
) -> Result<InvocationReport, Error> {
    let id = claimed.id.clone();
    // The journal is read after the claim: as of this instant the execution
    // was not cancelled, which counts as the first cancellation check.
    let read_at = clock.now();
    let journal = match journal {
        Some(j) => j,
        None => store
            .load_journal(&id)
            .await?
            .ok_or_else(|| Error::State(format!("execution {id} does not exist")))?,
    };
    if journal.execution.epoch != claimed.epoch {
        return Ok(report(&id, "SUPERSEDED", None, None, None));
    }
    let retention = config.retention;
    let shared = Arc::new(Shared {
        execution_id: id.clone(),
        seed: journal.execution.seed.clone(),
        store: store.clone(),
        clock: clock.clone(),
        cursor: Mutex::new(JournalCursor::with_events(
            journal.operations,
            journal.events,
        )),
        state: Mutex::new(RunState {
            // Paused since the claim: the first step attempt checks again
            // (and suspends).
            cancel_checked: (!journal.execution.paused).then_some(read_at),
            ..RunState::default()
        }),
        config,
        trace,
        position: Mutex::new(Default::default()),
        epoch: claimed.epoch,
        function: journal.execution.function.clone(),
        created_at: journal.execution.created_at,
        deferred: Mutex::new(Vec::new()),
    });
    let ctx = DurableContext::root(shared.clone());
    let call = handler.call(ctx, journal.execution.input.clone());
    let call: futures::future::BoxFuture<'_, _> = if crate::capture::enabled() {
        // The handler's log lines, tagged with where they happened.
        Box::pin(call.with_subscriber(crate::capture::Capture::dispatch(
            shared.clone(),
            claimed.epoch,
        )))
    } else {
        Box::pin(call)
    };
    let mut handler_fut = AssertUnwindSafe(call).catch_unwind();

    let end = poll_fn(|cx| {
        let polled = handler_fut.poll_unpin(cx);
        let mut st = shared.state();
        if let Some(fault) = st.fault.take() {
            return Poll::Ready(End::Fault(fault));
        }
        match polled {
            Poll::Ready(Ok(result)) => Poll::Ready(End::Done(result)),
            Poll::Ready(Err(panic)) => Poll::Ready(End::Panicked(panic_text(panic.as_ref()))),
            Poll::Pending if st.in_flight == 0 && st.waiting => {
                Poll::Ready(End::Suspend(st.earliest_wake))
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    drop(handler_fut);

    // Records still deferred (operations parked on) go with a suspension;
    // before any other end they are written first. A store fault or a
    // cancellation writes nothing more.
    let flushed = match &end {
        End::Suspend(_) | End::Fault(Fault::Store(_) | Fault::Cancelled | Fault::Diverged) => {
            Ok(())
        }
        _ => shared.flush().await,
    };
    let end = match flushed {
        Ok(()) => end,
        Err(Fault::Store(e)) => return Err(Error::Store(e)),
        Err(fault) => End::Fault(fault),
    };
    let now = clock.now();
    let expires_at = Some(now.plus(retention));
    let outcome = match end {
        End::Fault(Fault::Store(e)) => return Err(Error::Store(e)),
        // A deferred record another invocation recorded otherwise: due at
        // once, the next invocation replays the recorded one.
        End::Fault(Fault::Diverged) => {
            return rerun_now(store.as_ref(), ending, claimed, now).await;
        }
        // Already CANCELLED in the store: nothing to write.
        End::Fault(Fault::Cancelled) => return Ok(report(&id, "CANCELLED", None, None, None)),
        // Paused: suspend with work left (due now), which the store keeps
        // from dispatch until the execution is unpaused.
        End::Fault(Fault::Paused) => {
            let suspended = report(&id, "SUSPENDED", None, None, None);
            let ((), t) = futures::join!(
                ending.record(store.as_ref(), &id, Ok(&suspended), now),
                store.suspend(&id, claimed.epoch, claimed.wakeups, Some(now), now),
            );
            if t? == Transition::Stale {
                return Ok(report(&id, "SUPERSEDED", None, None, None));
            }
            tracing::info!("paused: suspended after the current step");
            return Ok(suspended);
        }
        End::Suspend(wake_at) => {
            let suspended = report(&id, "SUSPENDED", None, None, wake_at);
            // The records of what it parks on travel with the suspension:
            // one write.
            let deferred = shared.take_deferred();
            let ops: Vec<_> = deferred.iter().map(|d| d.op.clone()).collect();
            // What the end record counts as written with it: each of those
            // records and their attempt records (a write each on
            // DynamoDB), and the meta record.
            let mut updates: Vec<usize> = deferred
                .iter()
                .flat_map(|d| {
                    let history = d.history.as_ref().map(serialized_len);
                    std::iter::once(serialized_len(&d.op)).chain(history)
                })
                .collect();
            updates.push(crate::history::meta_bytes(&journal.execution, None));
            let suspend = async {
                match ops.is_empty() {
                    true => store
                        .suspend(&id, claimed.epoch, claimed.wakeups, wake_at, now)
                        .await
                        .map(SuspendWrite::from),
                    false => {
                        store
                            .suspend_with(&id, claimed.epoch, claimed.wakeups, &ops, wake_at, now)
                            .await
                    }
                }
            };
            let ((), (), t) = futures::join!(
                ending.record_with_update(store.as_ref(), &id, Ok(&suspended), now, &updates),
                shared.write_histories(&deferred),
                suspend,
            );
            match t? {
                SuspendWrite::Done => {
                    for d in &deferred {
                        shared.checkpointed(&d.op);
                    }
                }
                SuspendWrite::Stale => return Ok(report(&id, "SUPERSEDED", None, None, None)),
                SuspendWrite::Conflict(current) => {
                    tracing::info!(op_id = %current.id, "operation already recorded differently by another invocation; replaying it in a new invocation");
                    return rerun_now(store.as_ref(), ending, claimed, now).await;
                }
            }
            tracing::debug!(?wake_at, "suspended");
            return Ok(report(&id, "SUSPENDED", None, None, wake_at));
        }
        End::Done(Ok(output)) => {
            match check_payload_within("execution output", &output, store.payload_limit()) {
                Ok(()) => Outcome {
                    status: ExecutionStatus::Succeeded,
                    output: Some(output),
                    error: None,
                    expires_at,
                },
                Err(e) => Outcome {
                    status: ExecutionStatus::Failed,
                    output: None,
                    error: Some(ErrorObject::new("PayloadError", e.to_string())),
                    expires_at,
                },
            }
        }
        End::Done(Err(DurableError::ContinueAsNew(input))) => {
            let next = continue_as_new(&store, &journal.execution, input, now).await?;
            Outcome {
                status: ExecutionStatus::Succeeded,
                output: Some(serde_json::json!({ "continued_as_new": next })),
                error: None,
                expires_at,
            }
        }
        End::Done(Err(e)) => Outcome {
            status: ExecutionStatus::Failed,
            output: None,
            error: Some(crate::codec::clip(e.to_error_object())),
            expires_at,
        },
        End::Fault(Fault::NonDeterministic(nd)) => Outcome {
            status: ExecutionStatus::Blocked,
            output: None,
            error: Some(DurableError::NonDeterministic(nd).to_error_object()),
            expires_at: None,
        },
        End::Panicked(msg) => Outcome {
            status: ExecutionStatus::Blocked,
            output: None,
            error: Some(ErrorObject::new(
                "Panic",
                format!(
                    "the handler panicked outside a step: {msg}; fix the bug, deploy, then resume the execution"
                ),
            )),
            expires_at: None,
        },
    };
    let ended = report(&id, outcome.status.as_str(), None, None, None);
    let meta = [crate::history::meta_bytes(
        &journal.execution,
        Some(&outcome),
    )];
    let ((), t) = futures::join!(
        ending.record_with_update(store.as_ref(), &id, Ok(&ended), now, &meta),
        store.finish(&id, claimed.epoch, &outcome, now),
    );
    let t = t?;
    if t == Transition::Stale {
        return Ok(report(&id, "SUPERSEDED", None, None, None));
    }
    tracing::info!(status = %outcome.status, "execution ended");
    if outcome.status.is_final() {
        if let Some(parent) = crate::context::parent_of(&id) {
            // An invoked child: its parent waits for this result.
            if let Err(e) = store.wake(&parent, now).await {
                tracing::warn!(%parent, error = %e, "could not wake the parent execution");
            }
        }
    }
    Ok(report(
        &id,
        outcome.status.as_str(),
        outcome.output,
        outcome.error,
        None,
    ))
}

/// Ends the invocation by suspending, due at once: a record it deferred
/// was recorded otherwise by another invocation; the next invocation
/// replays the recorded one.
async fn rerun_now(
    store: &dyn Store,
    ending: &crate::history::Ending,
    claimed: &Execution,
    now: Timestamp,
) -> Result<InvocationReport, Error> {
    let id = &claimed.id;
    let suspended = report(id, "SUSPENDED", None, None, Some(now));
    let ((), t) = futures::join!(
        ending.record(store, id, Ok(&suspended), now),
        store.suspend(id, claimed.epoch, claimed.wakeups, Some(now), now),
    );
    if t? == Transition::Stale {
        return Ok(report(id, "SUPERSEDED", None, None, None));
    }
    Ok(suspended)
}

/// Starts the execution that continues `current` (id `<base>:run-<n+1>`), idempotently.
async fn continue_as_new(
    store: &Arc<dyn Store>,
    current: &Execution,
    input: Value,
    now: Timestamp,
) -> Result<ExecutionId, Error> {
    let id = current.id.as_str();
    let (base, n) = match id.rsplit_once(":run-") {
        Some((b, n)) if n.parse::<u64>().is_ok() => (b, n.parse::<u64>().unwrap_or(1)),
        _ => (id, 1),
    };
    let next = ExecutionId::new(format!("{base}:run-{}", n + 1))?;
    store
        .create_execution(&durafn_runtime::model::NewExecution {
            id: next.clone(),
            function: current.function.clone(),
            version: current.version.clone(),
            input,
            now,
        })
        .await?;
    tracing::info!(next = %next, "continued as a new execution");
    Ok(next)
}

fn report(
    id: &ExecutionId,
    status: &str,
    output: Option<Value>,
    error: Option<ErrorObject>,
    wake_at: Option<Timestamp>,
) -> InvocationReport {
    InvocationReport {
        execution_id: id.clone(),
        status: status.to_string(),
        output,
        error,
        wake_at,
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".into())
}
