//! Callback tokens and completing callbacks.
//!
//! A token names the execution and operation it completes, plus a MAC over
//! both keyed by the execution's secret seed:
//! `cb2.<hex execution id>.<op id>.<mac>`, the MAC an HMAC-SHA256 (hex) of
//! the length-prefixed execution id and op id. Anyone holding a token can
//! complete that one callback; nobody can forge or guess another.
//!
//! Tokens minted before HMAC (`cb1.`, a truncated SHA-256 over the
//! concatenated seed, id and op id) still verify: they live only as long as
//! their callback's record, so they go away as those callbacks end.
//!
//! Completion is a first-writer-wins write of the operation's next revision,
//! so completing twice, or after a timeout, changes nothing.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::model::{ErrorObject, ExecutionId, OpKind, OpStatus, Operation, Timestamp};
use crate::store::{OpWrite, Store};

/// The version minted today.
const PREFIX: &str = "cb2";

/// The version before HMAC, still verified.
const LEGACY_PREFIX: &str = "cb1";

/// Which MAC a token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// `cb1`: the first 16 bytes of SHA-256(seed 0 id 0 op).
    Legacy,
    /// `cb2`: HMAC-SHA256 keyed by the seed.
    Hmac,
}

/// The HMAC of a `cb2` token, over `len(id) (u64 BE) || id || op id`.
fn hmac_of(seed: &str, execution_id: &ExecutionId, op_id: &str) -> Option<Hmac<Sha256>> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(seed.as_bytes()).ok()?;
    let id = execution_id.as_str().as_bytes();
    m.update(&u64::try_from(id.len()).unwrap_or(u64::MAX).to_be_bytes());
    m.update(id);
    m.update(op_id.as_bytes());
    Some(m)
}

/// The MAC of a `cb1` token (kept to verify tokens minted before `cb2`).
fn legacy_mac(seed: &str, execution_id: &ExecutionId, op_id: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(seed.as_bytes());
    h.update(b"\0");
    h.update(execution_id.as_str().as_bytes());
    h.update(b"\0");
    h.update(op_id.as_bytes());
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex(s: &str) -> String {
    hex_bytes(s.as_bytes())
}

fn unhex_bytes(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

fn unhex(s: &str) -> Option<String> {
    String::from_utf8(unhex_bytes(s)?).ok()
}

/// The token of the callback created as operation `op_id` of an execution.
pub fn token(execution_id: &ExecutionId, seed: &str, op_id: &str) -> String {
    let mac = hmac_of(seed, execution_id, op_id)
        .map(|m| hex_bytes(&m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{PREFIX}.{}.{op_id}.{mac}", hex(execution_id.as_str()))
}

/// What a token claims to complete (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackRef {
    /// The execution.
    pub execution_id: ExecutionId,
    /// The callback's operation id.
    pub op_id: String,
    version: Version,
    mac: Vec<u8>,
}

impl CallbackRef {
    /// Reads a token's parts; `None` if it is not a callback token at all.
    pub fn parse(token: &str) -> Option<CallbackRef> {
        let mut parts = token.split('.');
        let (prefix, exec, rest) = (parts.next()?, parts.next()?, parts.collect::<Vec<_>>());
        let version = match prefix {
            PREFIX => Version::Hmac,
            LEGACY_PREFIX => Version::Legacy,
            _ => return None,
        };
        if rest.len() < 2 {
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
            version,
            mac: unhex_bytes(mac)?,
        })
    }

    /// True if the token was made with this execution's seed (in constant
    /// time).
    pub fn verify(&self, seed: &str) -> bool {
        if seed.is_empty() {
            return false;
        }
        match self.version {
            Version::Hmac => hmac_of(seed, &self.execution_id, &self.op_id)
                .is_some_and(|m| m.verify_slice(&self.mac).is_ok()),
            Version::Legacy => {
                // Both are 16 bytes; every byte is looked at, wherever they differ.
                let expected = legacy_mac(seed, &self.execution_id, &self.op_id);
                self.mac.len() == expected.len()
                    && expected
                        .iter()
                        .zip(&self.mac)
                        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                        == 0
            }
        }
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
        // Completed before — perhaps by this same caller, whose first try
        // wrote the record but died before the wake-up. Its retry must not
        // leave the execution waiting on a signal that was never sent, so
        // the wake-up (an idempotent signal) goes again.
        store.wake(execution_id, now).await?;
        return Ok(Err(CompleteError::AlreadyEnded(op.status.to_string())));
    }
    let mut next = op.clone();
    next.rev = op.rev + 1;
    match completion {
        Completion::Succeed(v) => {
            crate::model::check_payload_within(
                &format!("callback {:?} result", op.name),
                &v,
                store.payload_limit(),
            )?;
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
            store.wake(execution_id, now).await?;
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

    /// A `cb1` token as the version before HMAC minted it.
    fn legacy_token(execution_id: &ExecutionId, seed: &str, op_id: &str) -> String {
        format!(
            "cb1.{}.{op_id}.{}",
            hex(execution_id.as_str()),
            hex_bytes(&legacy_mac(seed, execution_id, op_id))
        )
    }

    #[test]
    fn new_tokens_carry_a_full_hmac() {
        let t = token(&id("approval-1"), "seed-a", "3.2");
        assert!(t.starts_with("cb2."), "{t}");
        let mac = t.rsplit('.').next().unwrap_or_default();
        assert_eq!(mac.len(), 64, "HMAC-SHA256, hex: {t}");
        // A known answer: HMAC-SHA256(key "seed-a", 8-byte BE length ++ id ++ op).
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"seed-a").unwrap();
        m.update(&10u64.to_be_bytes());
        m.update(b"approval-1");
        m.update(b"3.2");
        assert_eq!(mac, hex_bytes(&m.finalize().into_bytes()));
    }

    #[test]
    fn tokens_minted_before_hmac_still_verify() {
        let t = legacy_token(&id("approval-1"), "seed-a", "3.2");
        let r = CallbackRef::parse(&t).unwrap();
        assert_eq!(r.execution_id, id("approval-1"));
        assert_eq!(r.op_id, "3.2");
        assert!(r.verify("seed-a"));
        assert!(!r.verify("seed-b"));
        assert!(!r.verify(""));
        // The same MAC under the other version's prefix does not verify.
        let swapped = t.replacen("cb1.", "cb2.", 1);
        assert!(!CallbackRef::parse(&swapped).unwrap().verify("seed-a"));
        let new = token(&id("approval-1"), "seed-a", "3.2");
        let downgraded = new.replacen("cb2.", "cb1.", 1);
        assert!(!CallbackRef::parse(&downgraded).unwrap().verify("seed-a"));
    }

    #[test]
    fn tampered_tokens_do_not_verify() {
        for t in [
            token(&id("x"), "seed", "1"),
            legacy_token(&id("x"), "seed", "1"),
        ] {
            let other_op = t.replacen(".1.", ".2.", 1);
            assert!(
                !CallbackRef::parse(&other_op).unwrap().verify("seed"),
                "{t}"
            );
            let other_exec = t.replacen(".78.", ".79.", 1);
            assert!(
                !CallbackRef::parse(&other_exec).unwrap().verify("seed"),
                "{t}"
            );
            let mut mac_flipped = t.clone();
            let last = mac_flipped.pop().unwrap();
            mac_flipped.push(if last == '0' { '1' } else { '0' });
            assert!(
                !CallbackRef::parse(&mac_flipped).unwrap().verify("seed"),
                "{t}"
            );
            let short = &t[..t.len() - 2];
            assert!(
                CallbackRef::parse(short).is_none_or(|r| !r.verify("seed")),
                "{t}"
            );
        }
        for bad in [
            "",
            "cb1",
            "cb2",
            "cb1.zz.1.00",
            "cb3.78.1.00",
            "cb1.78..00",
            "cb2.78.a.00",
            "cb2.78.1.0g",
        ] {
            assert!(
                CallbackRef::parse(bad).is_none_or(|r| !r.verify("seed")),
                "{bad}"
            );
        }
    }
}
