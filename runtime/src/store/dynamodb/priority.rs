//! A start's priority and fairness key on the meta item (`priority` N,
//! `fairness_key` S; absent: priority 3, no key), written by one
//! conditional update after the create
//! ([`Store::set_start_options`](crate::store::Store::set_start_options)).

use super::DynamoStore;
use super::expr::{Expr, n, s};
use super::items::ts;
use crate::error::Result;
use crate::model::{Execution, ExecutionId, ExecutionStatus, StartOptions, Timestamp};

/// The meta item's priority.
pub(super) const PRIORITY_ATTR: &str = "priority";
/// The meta item's fairness key.
pub(super) const FAIRNESS_ATTR: &str = "fairness_key";

impl DynamoStore {
    /// [`Store::set_start_options`](crate::store::Store::set_start_options).
    pub(super) async fn set_start_options_meta(
        &self,
        id: &ExecutionId,
        options: &StartOptions,
        now: Timestamp,
    ) -> Result<Option<Execution>> {
        let mut e = Expr::new();
        e.set(PRIORITY_ATTR, n(options.priority));
        e.set_or_remove(FAIRNESS_ATTR, options.fairness_key.clone().map(s));
        e.set("updated_at", ts(now));
        let unfinished = [
            ExecutionStatus::Pending,
            ExecutionStatus::Running,
            ExecutionStatus::Suspended,
            ExecutionStatus::Blocked,
        ]
        .map(|st| e.value(s(st.as_str())))
        .join(", ");
        // False for a missing item too: no phantom meta item is created.
        let cond = format!("{} IN ({unfinished})", e.name("status"));
        self.update_meta(id, &e, cond, false, "start options")
            .await?;
        self.read_execution(id).await
    }
}
