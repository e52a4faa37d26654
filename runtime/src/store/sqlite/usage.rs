//! What the SQLite store counts for [`crate::cost`]: one write per write job
//! (its savepoint in a group commit), one read per read, and their bytes —
//! the JSON the job carries or the records the read returns, plus
//! [`ROW_BYTES`] for a row's keys and fixed columns. Units are computed from
//! those bytes as DynamoDB would charge them (1 KB per write unit, 4 KB per
//! read unit), so an embedded run estimates what the same calls would cost on
//! DynamoDB.

use crate::error::Result;
use crate::model::{Execution, HistoryEntry, Journal, json_len};

/// A row's keys and fixed columns (ids, status, times, counters), in bytes.
pub(super) const ROW_BYTES: u64 = 128;

/// Counts one write job carrying `bytes` of records.
pub(super) fn wrote(bytes: usize) {
    crate::cost::record_write(ROW_BYTES + bytes as u64, None);
}

/// Counts one read, sized by `size` when it succeeded (only when counting).
pub(super) fn read<R>(result: &Result<R>, size: impl FnOnce(&R) -> usize) {
    if !crate::cost::counting() {
        return;
    }
    let bytes = result.as_ref().map_or(0, size);
    crate::cost::record_read(ROW_BYTES + bytes as u64, None);
}

/// The bytes of an execution's record.
pub(super) fn execution(e: &Execution) -> usize {
    json_len(&e.input)
        + e.output.as_ref().map_or(0, json_len)
        + e.error.as_ref().map_or(0, |err| {
            err.message.len() + err.error_type.len() + err.data.as_ref().map_or(0, json_len)
        })
        + e.id.as_str().len()
        + e.function.len()
}

/// The bytes of a journal: the execution, each operation, each event.
pub(super) fn journal(j: &Journal) -> usize {
    execution(&j.execution)
        + j.operations
            .iter()
            .map(|o| ROW_BYTES as usize + o.name.len() + o.payload_bytes())
            .sum::<usize>()
        + j.events
            .iter()
            .map(|e| e.name.len() + json_len(&e.payload))
            .sum::<usize>()
}

/// The bytes of history records.
pub(super) fn history(entries: &[HistoryEntry]) -> usize {
    entries
        .iter()
        .map(|e| serde_json::to_vec(e).map_or(0, |v| v.len()))
        .sum()
}
