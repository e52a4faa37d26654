//! Sending events to an execution, and resuming a failed or blocked one.
//!
//! **Events.** [`DynamoStore::deliver_event`] reads the meta item (strongly
//! consistent) and refuses an execution that is missing or has ended; then it
//! writes the event item (`sk = ev#<seq>`, chunks first if its payload is
//! large), and only then wakes the execution exactly like `wake` does, so an
//! invocation that sees the wake also sees the event. Without transactions the
//! execution can end between the read and the write: the event then stays (an
//! invocation may already have read it) and gets the execution's expiry; if
//! the execution was deleted meanwhile, the event expires at once and the
//! answer is `NotFound`. A call that fails after the event was written may
//! have stored it: retrying it can deliver the event twice.
//!
//! **Resume.** One conditional `UpdateItem` on the meta item (`FAILED` or
//! `BLOCKED` to `SUSPENDED`, due now, error / end / expiry removed; a pending
//! expiry sweep's entry is replaced by the real due time and its token
//! removed, so it never runs), then the expiry a sweep put on the partition's
//! other items is removed again, so TTL does not delete the journal of a
//! running execution (a sweep racing the resume undoes its own writes, see
//! `sweep.rs`). If that second step fails, the call fails; calling `resume`
//! again (as the retrying store does) finishes it, because a resume that
//! finds an unfinished execution without an expiry clears any expiry left on
//! its other items (and so does every journal load of such an execution).

use serde_json::Value;

use super::DynamoStore;
use super::access::{Woken, set_due};
use super::expr::{Expr, s};
use super::items::{self, EVENT_INLINE_BUDGET, META_SK, pk, place, to_json, ts};
use super::records::{
    META_PAYLOADS, decode_execution, event_item, event_seq, event_sk, ttl_seconds,
};
use super::retry::{Failure, call};
use super::sweep::SWEEP_ATTR;
use super::table::TTL_ATTRIBUTE;
use crate::error::{Result, StoreError};
use crate::model::{
    EventRecord, Execution, ExecutionId, ExecutionStatus, Timestamp, check_payload,
};
use crate::store::SentEvent;

impl DynamoStore {
    /// [`Store::send_event`](crate::store::Store::send_event).
    pub(super) async fn deliver_event(
        &self,
        id: &ExecutionId,
        name: &str,
        payload: &Value,
        now: Timestamp,
    ) -> Result<SentEvent> {
        check_payload(&format!("event {name:?} payload"), payload)?;
        let pk = pk(id);
        let Some(meta) = self.get_item(&pk, META_SK).await? else {
            return Ok(SentEvent::NotFound);
        };
        let status: ExecutionStatus = items::parse_enum(&meta, "status")?;
        if status.is_final() {
            return Ok(SentEvent::Ended(status));
        }
        let event = EventRecord {
            seq: event_seq(now),
            name: name.to_string(),
            payload: payload.clone(),
            sent_at: now,
        };
        let budget = EVENT_INLINE_BUDGET.saturating_sub(name.len());
        let placed = place(vec![to_json("payload", payload)?], budget);
        let placed = placed
            .first()
            .ok_or_else(|| StoreError::Backend("event payload was not placed".into()))?;
        self.write_chunks(&pk, std::slice::from_ref(placed)).await?;
        let client = self.client().await?;
        let sk = event_sk(&event.seq);
        let what = format!("PutItem event {sk} of {id} on {}", self.table);
        let req = client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(event_item(&pk, &event, placed)))
            .condition_expression("attribute_not_exists(pk)");
        match call(&self.retry, &what, || req.clone().send()).await {
            // The key is unique: an existing item is this one, put by an
            // attempt whose answer was lost.
            Ok(_) | Err(Failure::Condition) => {}
            Err(e) => return Err(e.into_store(&what)),
        }
        // Written before the wake: whoever sees the wake sees the event.
        let own: Vec<(String, Option<_>)> = std::iter::once(sk)
            .chain(placed.chunk_sks())
            .map(|sk| (sk, None))
            .collect();
        match self.wake_meta(id, now, true).await? {
            Woken::Yes => Ok(SentEvent::Delivered(event)),
            Woken::Ended { ttl, .. } => {
                // It ended after the check: the event stays (a last invocation
                // may have read it) and expires with the rest.
                if let Some(ttl) = ttl {
                    self.write_expiry(&pk, own, Some(ttl)).await?;
                }
                Ok(SentEvent::Delivered(event))
            }
            Woken::Missing => {
                // Deleted (expired) after the check: nobody will read it.
                self.write_expiry(&pk, own, Some(ttl_seconds(now))).await?;
                Ok(SentEvent::NotFound)
            }
        }
    }

    /// [`Store::resume`](crate::store::Store::resume).
    pub(super) async fn resume_execution(
        &self,
        id: &ExecutionId,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        let pk = pk(id);
        let mut e = Expr::new();
        e.set("status", s(ExecutionStatus::Suspended.as_str()));
        e.set("updated_at", ts(now));
        set_due(&mut e, id, Some(now));
        for attr in [
            "error",
            "error_chunks",
            "ended_at",
            "expires_at_ms",
            TTL_ATTRIBUTE,
            SWEEP_ATTR,
        ] {
            e.remove(attr);
        }
        let resumable = [ExecutionStatus::Failed, ExecutionStatus::Blocked]
            .map(|st| e.value(s(st.as_str())))
            .join(", ");
        // False for a missing item too: no phantom meta item is created.
        let cond = format!("{} IN ({resumable})", e.name("status"));
        if let Some(item) = self.update_meta(id, &e, cond, true, "resume").await? {
            self.clear_expiry(&pk).await?;
            let chunks = self.chunks_for(&pk, &item, &META_PAYLOADS).await?;
            return decode_execution(&item, &chunks).map(Some);
        }
        // Not resumable (or no such execution): as it is now.
        let Some(current) = self.read_execution(id).await? else {
            return Ok(None);
        };
        if matches!(
            current.status,
            ExecutionStatus::Pending | ExecutionStatus::Running | ExecutionStatus::Suspended
        ) && current.expires_at.is_none()
        {
            // Finishes the cleanup of an earlier resume that failed half-way
            // (one keys-only query when there is nothing to do).
            self.clear_expiry(&pk).await?;
        }
        Ok(Some(current))
    }
}
