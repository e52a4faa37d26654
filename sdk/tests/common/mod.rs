//! Helpers shared by the SDK's integration tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Counts how often a step body really runs (clones share the count).
#[derive(Clone, Default)]
pub(crate) struct Calls(Arc<AtomicU32>);

impl Calls {
    /// Counts one run; returns the count so far.
    pub(crate) fn hit(&self) -> u32 {
        self.0.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The count so far.
    pub(crate) fn get(&self) -> u32 {
        self.0.load(Ordering::SeqCst)
    }
}
