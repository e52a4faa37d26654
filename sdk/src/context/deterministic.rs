//! Deterministic helpers: `now`, `uuid`, `random`, replay-aware logging,
//! `patched`, `continue_as_new`.

use std::fmt::Display;

use durafn_runtime::model::{OpKind, OpStatus, Timestamp};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::DurableContext;
use crate::error::DurableError;
use crate::replay::next_revision;

/// Logs only when the handler is running new code, not replaying recorded
/// operations, so replays print no duplicate lines.
#[derive(Debug, Clone, Copy)]
pub struct ReplayLogger {
    replaying: bool,
}

impl ReplayLogger {
    /// True while the handler replays operations the journal already holds.
    pub fn is_replaying(&self) -> bool {
        self.replaying
    }

    /// An info line (skipped on replay).
    pub fn info(&self, msg: impl Display) {
        if !self.replaying {
            tracing::info!("{msg}");
        }
    }

    /// A warning (skipped on replay).
    pub fn warn(&self, msg: impl Display) {
        if !self.replaying {
            tracing::warn!("{msg}");
        }
    }

    /// An error line (skipped on replay).
    pub fn error(&self, msg: impl Display) {
        if !self.replaying {
            tracing::error!("{msg}");
        }
    }

    /// A debug line (skipped on replay).
    pub fn debug(&self, msg: impl Display) {
        if !self.replaying {
            tracing::debug!("{msg}");
        }
    }
}

impl DurableContext {
    /// True while the handler replays operations the journal already holds
    /// (the next operation it will create is already recorded).
    pub fn is_replaying(&self) -> bool {
        let next = self.peek_next_id();
        self.cursor().peek(&next).is_some()
    }

    /// A logger that stays quiet on replay.
    pub fn logger(&self) -> ReplayLogger {
        ReplayLogger {
            replaying: self.is_replaying(),
        }
    }

    fn draw(&self) -> [u8; 32] {
        let (scope, n) = self.next_draw();
        let mut h = Sha256::new();
        h.update(self.seed().as_bytes());
        h.update(b"\0draw\0");
        h.update(self.execution_id().as_str().as_bytes());
        h.update(b"\0");
        h.update(scope.as_bytes());
        h.update(n.to_be_bytes());
        h.finalize().into()
    }

    /// A UUID that is the same on every replay (drawn from the execution's
    /// secret seed; call it in the same order on every run).
    pub fn uuid(&self) -> uuid::Uuid {
        let d = self.draw();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&d[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// A number in `[0, 1)` that is the same on every replay.
    pub fn random(&self) -> f64 {
        let d = self.draw();
        let mut eight = [0u8; 8];
        eight.copy_from_slice(&d[..8]);
        (u64::from_be_bytes(eight) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The current time, recorded once as an operation so replays see the same value.
    pub async fn now(&self) -> Result<Timestamp, DurableError> {
        let t = self.shared.clock.now();
        self.step(
            "durafn:now",
            move |_| async move { Ok::<_, DurableError>(t) },
        )
        .await
    }

    /// True for executions that reach this point under code that has the
    /// change `change_id`; false for executions that passed this point before
    /// the change was deployed. Use it to keep old executions on the old path:
    /// `if ctx.patched("v2-refund").await? { new } else { old }`.
    pub async fn patched(&self, change_id: &str) -> Result<bool, DurableError> {
        let marker = format!("patch:{change_id}");
        let next = self.peek_next_id();
        let recorded = self.cursor().peek(&next).cloned();
        match recorded {
            Some(rec) if rec.kind == OpKind::Step && rec.name == marker => {
                self.skip_id();
                Ok(true)
            }
            // The journal has something else here: this execution ran this
            // point before the change existed.
            Some(_) => Ok(false),
            None => {
                let opened = self.open(OpKind::Step, &marker);
                let now = self.shared.clock.now();
                let mut op = next_revision(None, &opened.id, OpKind::Step, &marker, now);
                op.status = OpStatus::Succeeded;
                op.attempt = 1;
                op.result = Some(serde_json::Value::Bool(true));
                op.ended_at = Some(now);
                self.checkpoint(op).await;
                Ok(true)
            }
        }
    }

    /// Ends this execution and continues as a fresh one with `input` and an
    /// empty journal (for unbounded loops); the new execution's id is this
    /// one's with `:run-2`, `:run-3`, ... appended. Return the error it gives:
    /// `return Err(ctx.continue_as_new(&next)?)`.
    pub fn continue_as_new<I: Serialize>(&self, input: &I) -> Result<DurableError, DurableError> {
        let v = crate::codec::encode("continue_as_new input", input, self.payload_limit())?;
        Ok(DurableError::ContinueAsNew(v))
    }
}
