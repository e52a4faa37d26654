//! The replay core: pure, no I/O, no clock, no async.
//!
//! It takes the journal (the recorded operations) and the handler's calls, and
//! decides for each operation whether to return a recorded result, run it, or
//! wait. The async layer in [`crate::context`] carries the decisions out.
//!
//! Operation ids are deterministic per context: the root context numbers its
//! operations `1`, `2`, `3`, ...; a child context created as operation `3`
//! numbers its own `3.1`, `3.2`, ... An id is claimed when the operation is
//! created at the call site, so joining several durable futures is
//! deterministic. If the operation found at an id has another kind or name
//! than the one the handler creates now, the replay is non-deterministic.

pub mod batch;
pub mod sleep;
pub mod step;
pub mod wait;

use std::collections::HashMap;
use std::fmt;

use durafn_runtime::model::{OpKind, Operation};
use serde_json::json;

/// The `n`-th operation id (1-based) of the context whose own id is `prefix`
/// (empty for the root context).
pub fn op_id(prefix: &str, n: u32) -> String {
    if prefix.is_empty() {
        n.to_string()
    } else {
        format!("{prefix}.{n}")
    }
}

/// The handler started a different operation than the journal recorded at this
/// id: the code changed in a way that breaks running executions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonDeterministic {
    /// The operation id.
    pub op_id: String,
    /// What the journal recorded there.
    pub expected: (OpKind, String),
    /// What the handler started now.
    pub actual: (OpKind, String),
}

impl fmt::Display for NonDeterministic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "non-deterministic replay at operation {}: the journal recorded {} {:?} but the handler now starts {} {:?}. \
             Operations must start in the same order on every replay; deploy code that keeps the recorded order \
             (use ctx.patched(..) for new paths), then resume the execution",
            self.op_id, self.expected.0, self.expected.1, self.actual.0, self.actual.1
        )
    }
}

impl std::error::Error for NonDeterministic {}

impl NonDeterministic {
    /// Structured details for the recorded error.
    pub fn details(&self) -> serde_json::Value {
        json!({
            "op_id": self.op_id,
            "expected": { "type": self.expected.0, "name": self.expected.1 },
            "actual": { "type": self.actual.0, "name": self.actual.1 },
        })
    }
}

/// The recorded operations of one execution, looked up by id, and the
/// events sent to it.
#[derive(Debug, Default)]
pub struct JournalCursor {
    records: HashMap<String, Operation>,
    events: Vec<durafn_runtime::model::EventRecord>,
}

impl JournalCursor {
    /// A cursor over a loaded journal.
    pub fn new(operations: Vec<Operation>) -> Self {
        Self::with_events(operations, Vec::new())
    }

    /// A cursor over a loaded journal and its events.
    pub fn with_events(
        operations: Vec<Operation>,
        events: Vec<durafn_runtime::model::EventRecord>,
    ) -> Self {
        JournalCursor {
            records: operations
                .into_iter()
                .map(|op| (op.id.clone(), op))
                .collect(),
            events,
        }
    }

    /// The events sent to the execution, in order.
    pub fn events(&self) -> &[durafn_runtime::model::EventRecord] {
        &self.events
    }

    /// Every recorded operation (in no particular order).
    pub fn records(&self) -> impl Iterator<Item = &Operation> {
        self.records.values()
    }

    /// The recorded state at `op_id`, whatever its kind.
    pub fn peek(&self, op_id: &str) -> Option<&Operation> {
        self.records.get(op_id)
    }

    /// Matches an operation the handler creates against the journal: the
    /// recorded state if there is one, `None` for a new operation, or
    /// [`NonDeterministic`] if the journal holds something else at this id.
    pub fn open(
        &self,
        op_id: &str,
        kind: OpKind,
        name: &str,
    ) -> Result<Option<&Operation>, NonDeterministic> {
        match self.records.get(op_id) {
            None => Ok(None),
            Some(rec) if kind_matches(rec.kind, kind) && rec.name == name => Ok(Some(rec)),
            Some(rec) => Err(NonDeterministic {
                op_id: op_id.to_string(),
                expected: (rec.kind, rec.name.clone()),
                actual: (kind, name.to_string()),
            }),
        }
    }

    /// Remembers the latest state of an operation (after a checkpoint).
    pub fn record(&mut self, op: Operation) {
        self.records.insert(op.id.clone(), op);
    }

    /// How many operations the journal holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True for an empty journal (a first run).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// True if a record of kind `recorded` can be the operation of kind `created`.
///
/// Journals recorded before `PARALLEL` and `MAP` existed hold their batches as
/// `CHILD` operations; those replay as the `parallel` / `map` they were.
pub fn kind_matches(recorded: OpKind, created: OpKind) -> bool {
    recorded == created
        || (recorded == OpKind::Child && matches!(created, OpKind::Parallel | OpKind::Map))
}

/// The next revision of an operation record: same id, kind and name, revision
/// and first start time carried over from `prev`.
pub fn next_revision(
    prev: Option<&Operation>,
    op_id: &str,
    kind: OpKind,
    name: &str,
    now: durafn_runtime::model::Timestamp,
) -> Operation {
    Operation {
        id: op_id.to_string(),
        kind,
        name: name.to_string(),
        status: durafn_runtime::model::OpStatus::Started,
        attempt: prev.map_or(0, |p| p.attempt),
        result: None,
        error: None,
        started_at: prev.map_or(now, |p| p.started_at),
        ended_at: None,
        wake_at: None,
        rev: prev.map_or(1, |p| p.rev + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durafn_runtime::model::{OpStatus, Timestamp};

    fn rec(id: &str, kind: OpKind, name: &str) -> Operation {
        let mut op = next_revision(None, id, kind, name, Timestamp(0));
        op.status = OpStatus::Succeeded;
        op
    }

    #[test]
    fn ids_nest_by_context() {
        assert_eq!(op_id("", 1), "1");
        assert_eq!(op_id("3", 2), "3.2");
        assert_eq!(op_id("3.2", 10), "3.2.10");
    }

    #[test]
    fn a_recorded_operation_matches_by_kind_and_name() {
        let cursor = JournalCursor::new(vec![rec("1", OpKind::Step, "charge")]);
        assert!(cursor.open("1", OpKind::Step, "charge").unwrap().is_some());
        assert!(cursor.open("2", OpKind::Step, "reserve").unwrap().is_none());
    }

    #[test]
    fn a_changed_operation_is_non_deterministic_and_names_both() {
        let cursor = JournalCursor::new(vec![rec("1", OpKind::Step, "charge")]);
        let err = cursor.open("1", OpKind::Sleep, "cool-off").unwrap_err();
        assert_eq!(err.op_id, "1");
        assert_eq!(err.expected, (OpKind::Step, "charge".to_string()));
        assert_eq!(err.actual, (OpKind::Sleep, "cool-off".to_string()));
        let msg = err.to_string();
        assert!(msg.contains("operation 1"), "{msg}");
        assert!(msg.contains("STEP \"charge\""), "{msg}");
        assert!(msg.contains("SLEEP \"cool-off\""), "{msg}");
        let renamed = cursor.open("1", OpKind::Step, "pay").unwrap_err();
        assert_eq!(renamed.actual.1, "pay");
    }

    #[test]
    fn an_old_child_record_replays_as_a_batch_but_not_the_reverse() {
        let cursor = JournalCursor::new(vec![
            rec("1", OpKind::Child, "fan"),
            rec("2", OpKind::Map, "each"),
        ]);
        assert!(cursor.open("1", OpKind::Parallel, "fan").unwrap().is_some());
        assert!(cursor.open("1", OpKind::Map, "fan").unwrap().is_some());
        assert!(cursor.open("1", OpKind::Child, "fan").unwrap().is_some());
        assert!(cursor.open("1", OpKind::Step, "fan").is_err());
        assert!(cursor.open("2", OpKind::Map, "each").unwrap().is_some());
        assert!(cursor.open("2", OpKind::Parallel, "each").is_err());
        assert!(cursor.open("2", OpKind::Child, "each").is_err());
    }

    #[test]
    fn next_revision_carries_identity_and_start() {
        let mut first = next_revision(None, "2", OpKind::Step, "x", Timestamp(5));
        assert_eq!((first.rev, first.started_at), (1, Timestamp(5)));
        first.attempt = 2;
        let second = next_revision(Some(&first), "2", OpKind::Step, "x", Timestamp(9));
        assert_eq!(
            (second.rev, second.started_at, second.attempt),
            (2, Timestamp(5), 2)
        );
    }
}
