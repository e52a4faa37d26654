//! Per-execution logs: what handler processes log inside an execution,
//! captured from their stdout (see `docs/operations.md`).
