//! Process capacity: how many invocations of a function this dispatcher has
//! running at once, at most what the invoker can run (the emulator's
//! processes per function).
//!
//! Without it a burst of due executions is claimed all at once, and those
//! beyond the function's processes wait in the invoker's queue until they fail
//! unrun (`no_capacity`), each having cost a claim and a reschedule: on a slow
//! store the churn crowds out the real work. With it, an execution due while
//! its function is at capacity is not claimed; it waits here (not in the
//! store) and is dispatched when one of the function's invocations ends.
//! Unlike [`super::limits`], this is local to one dispatcher and holds
//! nothing in the store: another replica has processes of its own.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::model::{ExecutionId, Timestamp};

/// The longest an execution waits here before a scan that finds it due may
/// try it again.
pub(super) const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The functions' running invocations and the executions waiting for one to end.
#[derive(Default)]
pub(super) struct Capacity {
    state: Mutex<HashMap<Arc<str>, Function>>,
}

#[derive(Default)]
struct Function {
    running: usize,
    /// Waiting executions, first come first served, and since when.
    waiting: VecDeque<ExecutionId>,
    since: HashMap<ExecutionId, Timestamp>,
}

/// A running invocation's place; give it back with [`Capacity::release`].
#[derive(Debug)]
#[must_use]
pub(super) struct Slot(Arc<str>);

impl Capacity {
    fn state(&self) -> MutexGuard<'_, HashMap<Arc<str>, Function>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for an invocation of `function` if fewer than `max` run;
    /// otherwise `id` waits (once) for one to end.
    pub(super) fn take(
        &self,
        function: &Arc<str>,
        max: usize,
        id: &ExecutionId,
        now: Timestamp,
    ) -> Option<Slot> {
        let mut st = self.state();
        let f = st.entry(function.clone()).or_default();
        if f.running < max.max(1) {
            f.running += 1;
            if f.since.remove(id).is_some() {
                f.waiting.retain(|w| w != id);
            }
            return Some(Slot(function.clone()));
        }
        match f.since.get_mut(id) {
            // Tried again after a stale wait: it waits afresh, in its place.
            Some(t) => *t = now,
            None => {
                f.since.insert(id.clone(), now);
                f.waiting.push_back(id.clone());
            }
        }
        None
    }

    /// Whether `id` waits for a slot (so a scan that finds it due again
    /// leaves it be) — for at most [`MAX_WAIT`]: a wait that was never
    /// handed back (its hand-back found it not due) does not hold it longer.
    pub(super) fn is_waiting(
        &self,
        id: &ExecutionId,
        function: Option<&str>,
        now: Timestamp,
    ) -> bool {
        let fresh = |f: &Function| f.since.get(id).is_some_and(|t| t.plus(MAX_WAIT) > now);
        let st = self.state();
        match function {
            Some(f) => st.get(f).is_some_and(fresh),
            None => st.values().any(fresh),
        }
    }

    /// Ends an invocation: the longest-waiting execution of the function, if
    /// any, is handed back to dispatch.
    pub(super) fn release(&self, slot: Slot) -> Option<(ExecutionId, Arc<str>)> {
        let Slot(function) = slot;
        let mut st = self.state();
        let f = st.get_mut(&function)?;
        f.running = f.running.saturating_sub(1);
        let next = f.waiting.pop_front();
        if let Some(id) = &next {
            f.since.remove(id);
        }
        if f.running == 0 && f.waiting.is_empty() {
            st.remove(&function);
        }
        next.map(|id| (id, function))
    }

    /// How many executions wait, over all functions.
    #[cfg(test)]
    pub(super) fn waiting(&self) -> usize {
        self.state().values().map(|f| f.waiting.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn id(s: &str) -> ExecutionId {
        ExecutionId::new(s).unwrap()
    }

    #[test]
    fn at_capacity_executions_wait_once_and_are_handed_back_in_order() {
        let c = Capacity::default();
        let f: Arc<str> = Arc::from("f");
        let now = Timestamp(0);
        let a = c.take(&f, 2, &id("a"), now).unwrap();
        let b = c.take(&f, 2, &id("b"), now).unwrap();
        assert!(c.take(&f, 2, &id("c"), now).is_none());
        assert!(c.take(&f, 2, &id("d"), now).is_none());
        // Found due again by a scan: still one place in the line.
        assert!(c.take(&f, 2, &id("c"), now).is_none());
        assert_eq!(c.waiting(), 2);
        assert!(c.is_waiting(&id("c"), Some("f"), now));
        assert!(c.is_waiting(&id("d"), None, now));
        assert!(!c.is_waiting(&id("a"), None, now));
        // Another function has its own capacity.
        let g: Arc<str> = Arc::from("g");
        let other = c.take(&g, 2, &id("x"), now).unwrap();

        assert_eq!(c.release(a), Some((id("c"), f.clone())));
        let c_slot = c.take(&f, 2, &id("c"), now).unwrap();
        assert!(!c.is_waiting(&id("c"), None, now));
        assert_eq!(c.release(b), Some((id("d"), f.clone())));
        assert_eq!(c.release(c_slot), None);
        assert_eq!(c.release(other), None);
        assert_eq!(c.waiting(), 0);
    }

    #[test]
    fn a_wait_that_was_never_handed_back_goes_stale() {
        let c = Capacity::default();
        let f: Arc<str> = Arc::from("f");
        let _a = c.take(&f, 1, &id("a"), Timestamp(0)).unwrap();
        assert!(c.take(&f, 1, &id("b"), Timestamp(0)).is_none());
        assert!(c.is_waiting(&id("b"), Some("f"), Timestamp(1_000)));
        // Past MAX_WAIT a scan that finds it due tries it again.
        let later = Timestamp(0).plus(MAX_WAIT);
        assert!(!c.is_waiting(&id("b"), Some("f"), later));
    }
}
