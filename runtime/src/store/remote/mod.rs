//! The store over HTTP: how handler processes share the emulator's store.
//!
//! With the embedded SQLite store, `durafn dev` does not let every handler
//! process open the database file. Each would then commit on its own, and
//! SQLite lets one connection write at a time, so checkpoints from different
//! processes could never share a commit. Instead the emulator serves its own
//! store on its own port ([`serve`]) and hands the processes a store URL
//! `http://127.0.0.1:PORT/_durafn/store/<secret>`, which [`open`](super::open)
//! turns into an [`HttpStore`]. Every checkpoint then goes through the one
//! writer of the emulator's store, which groups concurrent writes into one
//! commit and acknowledges each only after that commit.
//!
//! The protocol is one `POST` per [`Store`] call with a JSON body ([`wire`]).
//! The path's secret is the only credential: the emulator picks a random one
//! each time it starts.

use std::sync::Arc;

use serde::Serialize;

use crate::error::{Result, StoreError};
use crate::store::Store;

mod client;
pub mod wire;

pub use client::{HttpStore, UNIX_SCHEME, unix_url};
use wire::{Answer, Call, SeededExecution, WireCreated, WireError, WireJournal, WirePage};

/// The request header with which a client asks for the call's store usage,
/// and the response header that carries it ([`crate::cost`]): the
/// backend's counts for the call, as `reads,writes,read_bytes,write_bytes,read_units,write_units`.
pub const USAGE_HEADER: &str = "x-durafn-store-usage";

/// [`serve`], counting what the backend sent for the call when `count`
/// (the caller's [`USAGE_HEADER`] asked for it).
pub async fn serve_counted(
    store: &Arc<dyn Store>,
    body: &[u8],
    count: bool,
) -> (Vec<u8>, Option<crate::cost::StoreUsage>) {
    if !count {
        return (serve(store, body).await, None);
    }
    let meter = crate::cost::UsageMeter::new();
    let answer = crate::cost::metered(meter.clone(), serve(store, body)).await;
    (answer, Some(meter.snapshot()))
}

/// A usage as [`USAGE_HEADER`] carries it.
pub fn usage_header(u: &crate::cost::StoreUsage) -> String {
    format!(
        "{},{},{},{},{},{}",
        u.reads, u.writes, u.read_bytes, u.write_bytes, u.read_units, u.write_units
    )
}

/// Reads a [`USAGE_HEADER`] value (`None` if malformed).
pub fn parse_usage_header(v: &str) -> Option<crate::cost::StoreUsage> {
    let n: Vec<u64> = v
        .split(',')
        .map(|p| p.trim().parse::<u64>().ok())
        .collect::<Option<_>>()?;
    match n[..] {
        [
            reads,
            writes,
            read_bytes,
            write_bytes,
            read_units,
            write_units,
        ] => Some(crate::cost::StoreUsage {
            reads,
            writes,
            read_bytes,
            write_bytes,
            read_units,
            write_units,
        }),
        _ => None,
    }
}

/// Serves one store call: decodes `body` (a [`Call`]), runs it on `store`,
/// and encodes the answer. A body that is not a call is an `invalid` error.
pub async fn serve(store: &Arc<dyn Store>, body: &[u8]) -> Vec<u8> {
    let call: Call<'_> = match serde_json::from_slice(body) {
        Ok(c) => c,
        Err(e) => {
            return encode::<()>(Err(StoreError::Invalid(format!("not a store call: {e}"))));
        }
    };
    match call {
        Call::Batched { history, then } => {
            if matches!(*then, Call::Batched { .. }) {
                return encode::<()>(Err(StoreError::Invalid(
                    "a batched call cannot hold another".into(),
                )));
            }
            let records = async {
                for h in &history {
                    if let Err(e) = store.put_history(&h.id, &h.entry, h.keep).await {
                        tracing::warn!(execution_id = %h.id, key = %h.entry.key(), error = %e, "could not record history");
                    }
                }
            };
            // A checkpoint or an invocation's end: written beside the
            // records, so the store's writer can put them in one commit.
            // Anything else (a read of the history, say) comes after them.
            if matches!(
                *then,
                Call::PutOperation { .. }
                    | Call::Suspend { .. }
                    | Call::Finish { .. }
                    | Call::SuspendWith { .. }
            ) {
                let ((), answer) = tokio::join!(records, serve_one(store, *then));
                answer
            } else {
                records.await;
                serve_one(store, *then).await
            }
        }
        call => serve_one(store, call).await,
    }
}

async fn serve_one(store: &Arc<dyn Store>, call: Call<'_>) -> Vec<u8> {
    match call {
        Call::Batched { .. } => encode::<()>(Err(StoreError::Invalid(
            "a batched call cannot hold another".into(),
        ))),
        Call::CreateExecution { new } => {
            encode(store.create_execution(&new).await.map(WireCreated::from))
        }
        Call::CreateAndClaim { new, lease_until } => encode(
            store
                .create_and_claim(&new, lease_until)
                .await
                .map(|(c, e)| (WireCreated::from(c), e.map(SeededExecution))),
        ),
        Call::GetExecution { id } => encode(
            store
                .get_execution(&id)
                .await
                .map(|e| e.map(SeededExecution)),
        ),
        Call::LoadJournal { id } => encode(store.load_journal(&id).await.map(|j| {
            j.map(|j| WireJournal {
                execution: SeededExecution(j.execution),
                operations: j.operations,
                events: j.events,
            })
        })),
        Call::Claim {
            id,
            now,
            lease_until,
        } => encode(
            store
                .claim(&id, now, lease_until)
                .await
                .map(|e| e.map(SeededExecution)),
        ),
        Call::PutOperation { id, op } => encode(store.put_operation(&id, &op).await),
        Call::PutHistory { id, entry, keep } => encode(store.put_history(&id, &entry, keep).await),
        Call::LoadHistory { id } => encode(store.load_history(&id).await),
        Call::Suspend {
            id,
            epoch,
            seen_wakeups,
            wake_at,
            now,
        } => encode(store.suspend(&id, epoch, seen_wakeups, wake_at, now).await),
        Call::Finish {
            id,
            epoch,
            outcome,
            now,
        } => encode(store.finish(&id, epoch, &outcome, now).await),
        Call::SuspendWith {
            id,
            epoch,
            seen_wakeups,
            ops,
            wake_at,
            now,
        } => encode(
            store
                .suspend_with(&id, epoch, seen_wakeups, &ops, wake_at, now)
                .await,
        ),
        Call::Wake { id, now } => encode(store.wake(&id, now).await),
        Call::Due { shard, now, limit } => encode(store.due(shard, now, limit).await),
        Call::PurgeExpired { now } => encode(store.purge_expired(now).await),
        Call::ListExecutions { filter } => {
            encode(store.list_executions(&filter).await.map(WirePage::from))
        }
        Call::SendEvent {
            id,
            name,
            payload,
            now,
        } => encode(store.send_event(&id, &name, &payload, now).await),
        Call::Resume { id, now } => {
            encode(store.resume(&id, now).await.map(|e| e.map(SeededExecution)))
        }
        Call::Cancel { id, now } => {
            encode(store.cancel(&id, now).await.map(|e| e.map(SeededExecution)))
        }
        Call::SetStartOptions { id, options, now } => encode(
            store
                .set_start_options(&id, &options, now)
                .await
                .map(|e| e.map(SeededExecution)),
        ),
        Call::SetPaused { id, paused, now } => encode(
            store
                .set_paused(&id, paused, now)
                .await
                .map(|e| e.map(SeededExecution)),
        ),
        Call::CreateSchedule { schedule } => encode(store.create_schedule(&schedule).await),
        Call::UpdateSchedule { schedule } => encode(store.update_schedule(&schedule).await),
        Call::GetSchedule { name } => encode(store.get_schedule(&name).await),
        Call::ListSchedules => encode(store.list_schedules().await),
        Call::DueSchedules { now, limit } => encode(store.due_schedules(now, limit).await),
        Call::SendMessage { message } => encode(store.send_message(&message).await),
        Call::ReceiveMessages {
            queue,
            now,
            hidden_until,
            max,
        } => encode(store.receive_messages(&queue, now, hidden_until, max).await),
        Call::DeleteMessage { queue, id, receipt } => {
            encode(store.delete_message(&queue, &id, &receipt).await)
        }
        Call::ChangeMessageVisibility {
            queue,
            id,
            receipt,
            visible_at,
            now,
        } => encode(
            store
                .change_message_visibility(&queue, &id, &receipt, visible_at, now)
                .await,
        ),
        Call::QueueStats { queue, now } => encode(store.queue_stats(&queue, now).await),
        Call::PurgeQueue { queue } => encode(store.purge_queue(&queue).await),
        Call::TakeLease { request, now } => encode(store.take_lease(&request, now).await),
        Call::ReleaseLease { group, name, owner } => {
            encode(store.release_lease(&group, &name, &owner).await)
        }
        Call::ListLeases { group } => encode(store.list_leases(&group).await),
        Call::PutAttribute { id, attr } => encode(store.put_attribute(&id, &attr).await),
        Call::FindByAttribute { query } => encode(store.find_by_attribute(&query).await),
    }
}

fn encode<T: Serialize>(result: Result<T>) -> Vec<u8> {
    let answer = match result {
        Ok(v) => Answer::Ok(v),
        Err(e) => Answer::Err(WireError::from(&e)),
    };
    serde_json::to_vec(&answer).unwrap_or_else(|e| {
        // Only a value that cannot be JSON (it was JSON when it came in) gets here.
        let err = Answer::<()>::Err(WireError::from(&StoreError::Backend(format!(
            "cannot encode the store's answer: {e}"
        ))));
        serde_json::to_vec(&err).unwrap_or_default()
    })
}
