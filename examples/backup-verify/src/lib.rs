//! The backup-verify example (being written).
