//! History records as DynamoDB items, in the execution's partition:
//! `sk = h#<key>` ([`HistoryEntry::key`]), `body` S (the entry as JSON), and
//! `expires_at` (TTL) when the writer knew the execution's expiry. Items
//! written while the execution runs get their expiry from the sweep, as
//! operation items do; replay never reads them (the journal skips `h#`).

use super::DynamoStore;
use super::expr::{n, s};
use super::items::{corrupt, pk, req_s};
use super::records::{key, ttl_seconds};
use super::retry::call;
use super::table::TTL_ATTRIBUTE;
use crate::error::{Result, StoreError};
use crate::model::{ExecutionId, HistoryEntry};

/// The sort-key prefix of history items.
pub(super) const HISTORY_PREFIX: &str = "h#";

impl DynamoStore {
    /// [`crate::store::Store::put_history`]: one `PutItem`, then one
    /// `DeleteItem` of the entry `keep` places before it.
    pub(super) async fn put_history_item(
        &self,
        id: &ExecutionId,
        entry: &HistoryEntry,
        keep: u32,
    ) -> Result<()> {
        let pk = pk(id);
        let body = serde_json::to_string(entry)
            .map_err(|e| StoreError::Invalid(format!("history entry is not JSON: {e}")))?;
        let mut item = key(&pk, &format!("{HISTORY_PREFIX}{}", entry.key()));
        item.insert("body".to_string(), s(body));
        if let Some(t) = entry.expires_at() {
            item.insert(TTL_ATTRIBUTE.to_string(), n(ttl_seconds(t)));
            item.insert("expires_at_ms".to_string(), n(t.0));
        }
        let client = self.client().await?;
        let what = format!("PutItem history {} of {id} on {}", entry.key(), self.table);
        let req = client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        call(&self.retry, &what, || req.clone().send())
            .await
            .map_err(|e| e.into_store(&what))?;
        if let Some(old) = entry.evicted_key(keep) {
            let what = format!("DeleteItem history {old} of {id} on {}", self.table);
            let req = client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key(&pk, &format!("{HISTORY_PREFIX}{old}"))));
            call(&self.retry, &what, || req.clone().send())
                .await
                .map_err(|e| e.into_store(&what))?;
        }
        Ok(())
    }

    /// [`crate::store::Store::load_history`]: one paginated query of `h#`.
    pub(super) async fn load_history_items(&self, id: &ExecutionId) -> Result<Vec<HistoryEntry>> {
        self.query(&pk(id), Some(HISTORY_PREFIX))
            .await?
            .iter()
            .map(|item| {
                let body = req_s(item, "body")?;
                serde_json::from_str(body)
                    .map_err(|e| corrupt(format!("history item is not an entry: {e}")))
            })
            .collect()
    }
}
