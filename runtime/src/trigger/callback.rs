//! Callback tokens and completing callbacks.
//!
//! A token names the execution and operation it completes, plus a MAC over
//! both keyed by the execution's secret seed: `cb1.<hex execution id>.<op id>.<mac>`.
//! Anyone holding a token can complete that one callback; nobody can forge or
//! guess another. Completion is a first-writer-wins write of the operation's
//! next revision, so completing twice, or after a timeout, changes nothing.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::model::{ErrorObject, ExecutionId, OpKind, OpStatus, Operation, Timestamp};
use crate::store::{OpWrite, Store};

const PREFIX: &str = "cb1";

fn mac(seed: &str, execution_id: &ExecutionId, op_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    h.update(b"\0");
    h.update(execution_id.as_str().as_bytes());
    h.update(b"\0");
    h.update(op_id.as_bytes());
    let digest = h.finalize();
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if s.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect();
    String::from_utf8(bytes?).ok()
}

/// The token of the callback created as operation `op_id` of an execution.
pub fn token(execution_id: &ExecutionId, seed: &str, op_id: &str) -> String {
    format!(
        "{PREFIX}.{}.{op_id}.{}",
        hex(execution_id.as_str()),
        mac(seed, execution_id, op_id)
    )
}

/// What a token claims to complete (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRef {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The callback's operation id.
    pub op_id: String,
    mac: String,
}

impl CallbackRef {
    /// Reads a token's parts; `None` if it is not a callback token at all.
    pub fn parse(token: &str) -> Option<CallbackRef> {
        let mut parts = token.split('.');
        let (prefix, exec, rest) = (parts.next()?, parts.next()?, parts.collect::<Vec<_>>());
        if prefix != PREFIX || rest.len() < 2 {
            return None;
        }
        let (mac, op_parts) = rest.split_last()?;
        let op_id = op_parts.join(".");
        if op_id.is_empty() || !op_id.split('.').all(|p| p.parse::<u32>().is_ok()) {
            return None;
        }
        Some(CallbackRef {
            execution_id: ExecutionId::new(unhex(exec)?).ok()?,
            op_id,
            mac: (*mac).to_string(),
        })
    }

    /// True if the token was made with this execution's seed.
    pub fn verify(&self, seed: &str) -> bool {
        let expected = mac(seed, &self.execution_id, &self.op_id);
        !seed.is_empty()
            && expected.len() == self.mac.len()
            && expected
                .bytes()
                .zip(self.mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// How a callback is completed.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// With a result.
    Succeed(Value),
    /// With an error.
    Fail(ErrorObject),
    /// Still alive: push the heartbeat deadline out.
    Heartbeat,
}

/// Why a completion was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompleteError {
    /// No such execution or callback, or the token does not verify.
    #[error("no such callback: the token is unknown or not valid")]
    NotFound,
    /// The callback exists in the token but the execution has not registered it yet.
    #[error("the execution has not registered this callback yet; retry shortly")]
    NotReady,
    /// Already completed, failed or timed out.
    #[error("the callback has already ended ({0}); it cannot be completed again")]
    AlreadyEnded(String),
}

/// What a callback's record keeps in its `result` from its creation until it
/// ends: the id (token) it was created with and its timeout settings. They
/// stay when it fails or times out; a success replaces them with the result.
pub fn pending_settings(
    callback_id: &str,
    timeout_at: Option<Timestamp>,
    heartbeat_ms: Option<u64>,
) -> Value {
    json!({
        "callback_id": callback_id,
        "timeout_at": timeout_at,
        "heartbeat_timeout_ms": heartbeat_ms,
    })
}

/// The callback id a callback's record carries (`None` for other
/// operations, for a succeeded callback — its `result` is the value — and
/// for records written before callbacks recorded their id).
pub fn recorded_id(op: &Operation) -> Option<&str> {
    if op.kind != OpKind::Callback || op.status == OpStatus::Succeeded {
        return None;
    }
    op.result.as_ref()?.get("callback_id")?.as_str()
}

/// Completes (or heartbeats) the callback `op_id` of an execution.
/// Returns the record written; wakes the execution.
pub async fn complete(
    store: &dyn Store,
    execution_id: &ExecutionId,
    op_id: &str,
    completion: Completion,
    now: Timestamp,
) -> Result<std::result::Result<Operation, CompleteError>> {
    let Some(journal) = store.load_journal(execution_id).await? else {
        return Ok(Err(CompleteError::NotFound));
    };
    let Some(op) = journal.operations.into_iter().find(|o| o.id == op_id) else {
        return Ok(Err(CompleteError::NotReady));
    };
    if op.kind != OpKind::Callback {
        return Ok(Err(CompleteError::NotFound));
    }
    if op.status != OpStatus::Pending {
        return Ok(Err(CompleteError::AlreadyEnded(op.status.to_string())));
    }
    let mut next = op.clone();
    next.rev = op.rev + 1;
    match completion {
        Completion::Succeed(v) => {
            crate::model::check_payload(&format!("callback {:?} result", op.name), &v)?;
            next.status = OpStatus::Succeeded;
            next.result = Some(v);
            next.ended_at = Some(now);
            next.wake_at = None;
        }
        Completion::Fail(e) => {
            next.status = OpStatus::Failed;
            // The settings (and the callback id) stay in `result`.
            next.error = Some(e);
            next.ended_at = Some(now);
            next.wake_at = None;
        }
        Completion::Heartbeat => {
            let settings = op.result.clone().unwrap_or(Value::Null);
            let Some(hb) = settings["heartbeat_timeout_ms"].as_u64() else {
                // No heartbeat timeout: a heartbeat changes nothing.
                return Ok(Ok(op));
            };
            let mut deadline = now.plus(std::time::Duration::from_millis(hb));
            if let Some(t) = settings["timeout_at"].as_i64() {
                deadline = deadline.min(Timestamp(t));
            }
            next.wake_at = Some(deadline);
        }
    }
    match store.put_operation(execution_id, &next).await? {
        OpWrite::Written => {
            store.wake(execution_id, now).await?;
            Ok(Ok(next))
        }
        OpWrite::Conflict(current) if current.status == OpStatus::Pending => Err(
            StoreError::Transient("the callback changed while completing it; retry".into()),
        ),
        OpWrite::Conflict(current) => {
            Ok(Err(CompleteError::AlreadyEnded(current.status.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> ExecutionId {
        ExecutionId::new(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn tokens_round_trip_and_verify_only_with_their_seed() {
        let t = token(&id("approval-1"), "seed-a", "3.2");
        let r = CallbackRef::parse(&t).unwrap();
        assert_eq!(r.execution_id, id("approval-1"));
        assert_eq!(r.op_id, "3.2");
        assert!(r.verify("seed-a"));
        assert!(!r.verify("seed-b"));
        assert!(!r.verify(""));
    }

    #[test]
    fn tampered_tokens_do_not_verify() {
        let t = token(&id("x"), "seed", "1");
        let other_op = t.replacen(".1.", ".2.", 1);
        assert!(!CallbackRef::parse(&other_op).unwrap().verify("seed"));
        for bad in [
            "",
            "cb1",
            "cb1.zz.1.00",
            "cb2.78.1.00",
            "cb1.78..00",
            "cb1.78.a.00",
        ] {
            assert!(
                CallbackRef::parse(bad).is_none_or(|r| !r.verify("seed")),
                "{bad}"
            );
        }
    }
}
