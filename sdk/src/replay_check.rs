//! Replay check: would recorded executions still replay under this code?
//!
//! `durafn export` writes journals as JSON lines ([`ExportedJournal`]); a
//! handler binary started with `DURAFN_REPLAY_CHECK=FILE` replays each of
//! them, instead of starting the Lambda runtime, in a scratch SQLite store
//! deleted afterwards, and writes a [`ReplayReport`] (JSON) to
//! `DURAFN_REPLAY_CHECK_REPORT` (default: stdout). Nothing has side effects:
//! recorded operations return their recorded outcomes, and a step the journal
//! has not recorded *parks* instead of running its body (the invocation's step
//! budget is zero), so only the sequence of operations is compared. An
//! execution whose replay starts a different operation at a recorded id than
//! the journal holds — what makes a live execution `BLOCKED` — is reported
//! with its first diverging operation. The binary exits non-zero when any
//! would block.
//!
//! In unit tests, [`crate::testing::replay`] runs the same check on one journal.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use durafn_runtime::clock::{Clock, SystemClock};
use durafn_runtime::model::{
    EventRecord, Execution, ExecutionId, ExecutionStatus, Journal, NewExecution, OpKind, Operation,
};
use durafn_runtime::store::{SqliteStore, Store};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::handler::Handler;
use crate::invocation::{InvocationConfig, run_invocation};

/// The variable that turns a handler binary into a replay checker: the path
/// of a JSON-lines file of [`ExportedJournal`]s (`-` for stdin).
pub const REPLAY_CHECK_ENV: &str = "DURAFN_REPLAY_CHECK";

/// Where the checker writes its [`ReplayReport`] (default: stdout).
pub const REPLAY_REPORT_ENV: &str = "DURAFN_REPLAY_CHECK_REPORT";

/// The longest one execution's replay may take before it is reported
/// `INCONCLUSIVE` (a handler awaiting something that is not durable).
pub const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);

/// One execution as `durafn export` writes it (one JSON line each): its
/// record, its operations in start order and the events sent to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedJournal {
    /// The execution record (without its secret seed).
    pub execution: Execution,
    /// Its operations, in start order.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// The events sent to it.
    #[serde(default)]
    pub events: Vec<EventRecord>,
}

impl From<Journal> for ExportedJournal {
    fn from(j: Journal) -> Self {
        ExportedJournal {
            execution: j.execution,
            operations: j.operations,
            events: j.events,
        }
    }
}

/// An operation as the journal recorded it or the handler started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRef {
    /// Its kind (`STEP`, `SLEEP`, ...).
    #[serde(rename = "type")]
    pub kind: OpKind,
    /// Its name.
    pub name: String,
}

/// The first operation at which the new code leaves the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// The operation id.
    pub op_id: String,
    /// What the journal recorded there.
    pub expected: OpRef,
    /// What the new code starts there.
    pub actual: OpRef,
}

/// What the check concluded for one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    /// The new code replays the journal: the execution can go on under it.
    Ok,
    /// The new code diverges (or panics outside a step): the execution would
    /// become `BLOCKED` on its next invocation.
    Blocked,
    /// The replay did not settle (it awaited something that is not durable,
    /// past [`REPLAY_TIMEOUT`]) or could not run.
    Inconclusive,
}

/// The check of one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckedExecution {
    /// The execution.
    pub execution_id: ExecutionId,
    /// Its function.
    pub function: String,
    /// Its status when it was exported.
    pub recorded_status: ExecutionStatus,
    /// What the check concluded.
    pub verdict: Verdict,
    /// The first diverging operation, when it would block on one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<Divergence>,
    /// Why it would block or is inconclusive, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The check of a whole export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// Executions checked.
    pub checked: usize,
    /// How many would become `BLOCKED`.
    pub blocked: usize,
    /// How many were inconclusive.
    pub inconclusive: usize,
    /// Each execution, in the order of the file.
    pub executions: Vec<CheckedExecution>,
}

impl ReplayReport {
    /// A report over checked executions.
    pub fn new(executions: Vec<CheckedExecution>) -> Self {
        let count = |v: Verdict| executions.iter().filter(|e| e.verdict == v).count();
        ReplayReport {
            checked: executions.len(),
            blocked: count(Verdict::Blocked),
            inconclusive: count(Verdict::Inconclusive),
            executions,
        }
    }
}

/// Parses a JSON-lines export (blank lines are skipped); errors name the line.
pub fn parse_export(text: &str) -> Result<Vec<ExportedJournal>, Error> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| {
                Error::Invalid(format!(
                    "line {} of the export is not an exported journal: {e}; write it with `durafn export`",
                    n + 1
                ))
            })
        })
        .collect()
}

/// Replays one journal against `handler` without side effects.
pub async fn check(handler: &Handler, journal: &ExportedJournal) -> CheckedExecution {
    match Scratch::open() {
        Ok(scratch) => check_in(&scratch, handler, journal).await,
        Err(e) => verdict(journal, Verdict::Inconclusive, None, Some(e.to_string())),
    }
}

async fn check_in(
    scratch: &Scratch,
    handler: &Handler,
    journal: &ExportedJournal,
) -> CheckedExecution {
    let run = replay_one(scratch.store.clone(), handler, journal);
    match tokio::time::timeout(REPLAY_TIMEOUT, run).await {
        Err(_) => verdict(
            journal,
            Verdict::Inconclusive,
            None,
            Some(format!(
                "the replay did not settle within {REPLAY_TIMEOUT:?}: does the handler await something outside a durable operation?"
            )),
        ),
        Ok(Err(e)) => verdict(
            journal,
            Verdict::Inconclusive,
            None,
            Some(format!("the replay could not run: {e}")),
        ),
        Ok(Ok(report)) if report.status == ExecutionStatus::Blocked.as_str() => {
            let divergence = report
                .error
                .as_ref()
                .filter(|e| e.error_type == "NonDeterministic")
                .and_then(|e| e.data.clone())
                .and_then(|d| serde_json::from_value::<Divergence>(d).ok());
            let message = report.error.map(|e| e.to_string());
            verdict(journal, Verdict::Blocked, divergence, message)
        }
        Ok(Ok(_)) => verdict(journal, Verdict::Ok, None, None),
    }
}

fn verdict(
    journal: &ExportedJournal,
    verdict: Verdict,
    divergence: Option<Divergence>,
    message: Option<String>,
) -> CheckedExecution {
    let exec = &journal.execution;
    CheckedExecution {
        execution_id: exec.id.clone(),
        function: exec.function.clone(),
        recorded_status: exec.status,
        verdict,
        divergence,
        message,
    }
}

/// Copies the journal into the scratch store (each operation as its first
/// revision, each event no recorded wait consumed sent again), claims it and runs one invocation with
/// a zero step budget.
async fn replay_one(
    store: Arc<dyn Store>,
    handler: &Handler,
    journal: &ExportedJournal,
) -> Result<crate::invocation::InvocationReport, Error> {
    let exec = &journal.execution;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    store
        .create_execution(&NewExecution {
            id: exec.id.clone(),
            function: exec.function.clone(),
            version: exec.version.clone(),
            input: exec.input.clone(),
            now,
        })
        .await?;
    for op in &journal.operations {
        let mut first = op.clone();
        first.rev = 1;
        store.put_operation(&exec.id, &first).await?;
    }
    // Recorded waits keep their results; the rest see only what is left.
    let consumed = crate::replay::wait::consumed_events(journal.operations.iter());
    for ev in journal.events.iter().filter(|e| !consumed.contains(&e.seq)) {
        store
            .send_event(&exec.id, &ev.name, &ev.payload, ev.sent_at)
            .await?;
    }
    let claimed = store
        .claim(&exec.id, now, now.plus(LEASE))
        .await?
        .ok_or_else(|| {
            Error::State(format!(
                "execution {} appears twice in the export; check it once",
                exec.id
            ))
        })?;
    // A zero step budget: a step the journal has not recorded parks instead
    // of running its body.
    let config = InvocationConfig {
        max_steps_per_invocation: Some(0),
        ..InvocationConfig::default()
    };
    run_invocation(handler, store, clock, config, &claimed).await
}

/// How long the scratch claim lasts (longer than any replay may take).
const LEASE: Duration = Duration::from_secs(3600);

/// A scratch SQLite store in a fresh temporary folder, deleted on drop:
/// the replay's writes land here and nowhere else.
struct Scratch {
    dir: PathBuf,
    store: Arc<dyn Store>,
}

impl Scratch {
    fn open() -> Result<Self, Error> {
        let dir = std::env::temp_dir().join(format!(
            "durafn-replay-check-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::Invalid(format!(
                "cannot create the replay check's scratch folder {}: {e}; set TMPDIR to a writable folder",
                dir.display()
            ))
        })?;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.join("replay.db"))?);
        // Exported payloads may be up to 64 MiB (docs/payloads.md): the
        // large ones go to a scratch folder of blobs, as they did live.
        let blobs = durafn_runtime::store::blob::DirBlobStore::new(dir.join("blobs"));
        let store = Arc::new(durafn_runtime::store::OffloadingStore::new(
            store,
            Arc::new(blobs),
        ));
        Ok(Scratch { dir, store })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Replays every journal of an export, one after the other.
pub async fn check_all(handler: &Handler, journals: &[ExportedJournal]) -> ReplayReport {
    let mut out = Vec::with_capacity(journals.len());
    match Scratch::open() {
        Ok(scratch) => {
            for j in journals {
                out.push(check_in(&scratch, handler, j).await);
            }
        }
        Err(e) => out.extend(
            journals
                .iter()
                .map(|j| verdict(j, Verdict::Inconclusive, None, Some(e.to_string()))),
        ),
    }
    ReplayReport::new(out)
}

/// The replay-check mode of [`crate::run`]: `None` unless
/// [`REPLAY_CHECK_ENV`] is set; otherwise checks the file, writes the report
/// and fails if any execution would block.
pub(crate) async fn run_from_env(handler: &Handler) -> Option<Result<(), Error>> {
    let path = std::env::var(REPLAY_CHECK_ENV).ok()?;
    Some(run_check(handler, &path).await)
}

async fn run_check(handler: &Handler, path: &str) -> Result<(), Error> {
    let text = if path == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(path)
    }
    .map_err(|e| Error::Invalid(format!("{REPLAY_CHECK_ENV}={path:?}: cannot read it: {e}")))?;
    let report = check_all(handler, &parse_export(&text)?).await;
    let json = serde_json::to_string_pretty(&report)
        .map_err(|e| Error::Invalid(format!("cannot encode the replay report: {e}")))?;
    match std::env::var(REPLAY_REPORT_ENV) {
        Ok(out) => std::fs::write(&out, json + "\n").map_err(|e| {
            Error::Invalid(format!("{REPLAY_REPORT_ENV}={out:?}: cannot write it: {e}"))
        })?,
        Err(_) => println!("{json}"),
    }
    if report.blocked > 0 {
        return Err(Error::State(format!(
            "{} of {} executions would become BLOCKED under this code",
            report.blocked, report.checked
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::prelude::*;
    use crate::testing::{TestRuntime, replay};
    use serde_json::Value;

    static BODIES_RUN: AtomicUsize = AtomicUsize::new(0);

    async fn v1(ctx: DurableContext, n: u32) -> Result<u32, DurableError> {
        let a: u32 = ctx
            .step("charge", |_| async move { Ok::<_, DurableError>(n) })
            .await?;
        let b: u32 = ctx
            .step("reserve", |_| async move { Ok::<_, DurableError>(a + 1) })
            .await?;
        let _: Value = ctx.wait_for_event("approve").await?;
        Ok(b)
    }

    async fn renamed(ctx: DurableContext, n: u32) -> Result<u32, DurableError> {
        let a: u32 = ctx
            .step("charge", |_| async move { Ok::<_, DurableError>(n) })
            .await?;
        let b: u32 = ctx
            .step("hold", |_| async move { Ok::<_, DurableError>(a + 1) })
            .await?;
        let _: Value = ctx.wait_for_event("approve").await?;
        Ok(b)
    }

    async fn reordered(ctx: DurableContext, n: u32) -> Result<u32, DurableError> {
        let b: u32 = ctx
            .step("reserve", |_| async move { Ok::<_, DurableError>(n + 1) })
            .await?;
        let _: u32 = ctx
            .step("charge", |_| async move { Ok::<_, DurableError>(n) })
            .await?;
        let _: Value = ctx.wait_for_event("approve").await?;
        Ok(b)
    }

    /// A new step, guarded by `patched`, and another after the wait: neither
    /// may run during the check.
    async fn patched(ctx: DurableContext, n: u32) -> Result<u32, DurableError> {
        let a: u32 = ctx
            .step("charge", |_| async move {
                BODIES_RUN.fetch_add(1, Ordering::SeqCst);
                Ok::<_, DurableError>(n)
            })
            .await?;
        let b: u32 = ctx
            .step("reserve", |_| async move { Ok::<_, DurableError>(a + 1) })
            .await?;
        if ctx.patched("audit").await? {
            ctx.step("audit", |_| async {
                BODIES_RUN.fetch_add(1, Ordering::SeqCst);
                Ok::<_, DurableError>(())
            })
            .await?;
        }
        let _: Value = ctx.wait_for_event("approve").await?;
        ctx.step("notify", |_| async {
            BODIES_RUN.fetch_add(1, Ordering::SeqCst);
            Ok::<_, DurableError>(())
        })
        .await?;
        Ok(b)
    }

    async fn waiting_journal() -> ExportedJournal {
        let rt = TestRuntime::new();
        let exec = rt.start(crate::handler(v1), 41u32).await.unwrap();
        exec.run_until_settled().await.unwrap();
        assert_eq!(exec.status().await.unwrap(), ExecutionStatus::Suspended);
        exec.journal().await.unwrap()
    }

    #[tokio::test]
    async fn the_same_code_replays() {
        let journal = waiting_journal().await;
        let checked = replay(&crate::handler(v1), &journal).await;
        assert_eq!(checked.verdict, Verdict::Ok, "{checked:?}");
        assert_eq!(checked.recorded_status, ExecutionStatus::Suspended);
    }

    #[tokio::test]
    async fn a_renamed_step_is_caught_with_its_op() {
        let journal = waiting_journal().await;
        let checked = replay(&crate::handler(renamed), &journal).await;
        assert_eq!(checked.verdict, Verdict::Blocked, "{checked:?}");
        let d = checked.divergence.unwrap();
        assert_eq!(d.op_id, "2");
        assert_eq!(
            d.expected,
            OpRef {
                kind: OpKind::Step,
                name: "reserve".into()
            }
        );
        assert_eq!(
            d.actual,
            OpRef {
                kind: OpKind::Step,
                name: "hold".into()
            }
        );
    }

    #[tokio::test]
    async fn reordered_steps_are_caught_at_the_first_op() {
        let journal = waiting_journal().await;
        let checked = replay(&crate::handler(reordered), &journal).await;
        assert_eq!(checked.verdict, Verdict::Blocked);
        let d = checked.divergence.unwrap();
        assert_eq!(
            (
                d.op_id.as_str(),
                d.expected.name.as_str(),
                d.actual.name.as_str()
            ),
            ("1", "charge", "reserve")
        );
    }

    #[tokio::test]
    async fn a_patched_change_passes_and_runs_no_step_body() {
        let journal = waiting_journal().await;
        let checked = replay(&crate::handler(patched), &journal).await;
        assert_eq!(checked.verdict, Verdict::Ok, "{checked:?}");
        // A fresh execution takes the new path up to its first step: parked, not run.
        let rt = TestRuntime::new();
        let fresh = rt
            .start(crate::handler(v1), 1u32)
            .await
            .unwrap()
            .journal()
            .await
            .unwrap();
        let checked = replay(&crate::handler(patched), &fresh).await;
        assert_eq!(checked.verdict, Verdict::Ok, "{checked:?}");
        assert_eq!(BODIES_RUN.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_export_file_reports_each_line() {
        let journal = waiting_journal().await;
        let line = serde_json::to_string(&journal).unwrap();
        let parsed = parse_export(&format!("{line}\n\n{line}\n")).unwrap();
        assert_eq!(parsed.len(), 2);
        let mut other = journal.clone();
        other.execution.id = ExecutionId::new("second").unwrap();
        let report = check_all(&crate::handler(renamed), &[journal, other]).await;
        assert_eq!(
            (report.checked, report.blocked, report.inconclusive),
            (2, 2, 0)
        );
        assert_eq!(report.executions[1].execution_id.as_str(), "second");
        let err = parse_export("{\"nope\": 1}\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }
}
