//! Payload codecs: values to and from the JSON recorded in the journal.

use durafn_runtime::model::{ErrorObject, json_len, payload_limit_hint};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::DurableError;

/// The longest error message recorded; longer ones are cut (the rest is rarely
/// useful and would crowd out the journal).
const MAX_ERROR_MESSAGE: usize = 32 * 1024;

/// Encodes `v` for the journal; `what` names it in errors (e.g. `step
/// "charge" result`). `limit` is the store's
/// [`payload_limit`](durafn_runtime::store::Store::payload_limit): 4 MiB, or
/// 64 MiB with a blob store.
pub(crate) fn encode<T: Serialize>(what: &str, v: &T, limit: usize) -> Result<Value, DurableError> {
    let value = serde_json::to_value(v)
        .map_err(|e| DurableError::Payload(format!("{what} cannot be serialized to JSON: {e}")))?;
    check(what, &value, limit)?;
    Ok(value)
}

/// Checks an encoded value against `limit` (see [`encode`]).
pub(crate) fn check(what: &str, value: &Value, limit: usize) -> Result<(), DurableError> {
    let size = json_len(value);
    if size > limit {
        return Err(DurableError::Payload(format!(
            "{what} is {size} bytes, over the {limit}-byte limit; {}",
            payload_limit_hint(limit)
        )));
    }
    Ok(())
}

/// Decodes a recorded value; `what` names it in errors.
pub(crate) fn decode<T: DeserializeOwned>(what: &str, v: Value) -> Result<T, DurableError> {
    serde_json::from_value(v).map_err(|e| {
        DurableError::Payload(format!(
            "{what} was recorded in a shape the code no longer accepts: {e}"
        ))
    })
}

/// Bounds an error's size before it is recorded.
pub(crate) fn clip(mut error: ErrorObject) -> ErrorObject {
    if error.message.len() > MAX_ERROR_MESSAGE {
        let mut cut = MAX_ERROR_MESSAGE;
        while !error.message.is_char_boundary(cut) {
            cut -= 1;
        }
        error.message.truncate(cut);
        error.message.push_str(" …(truncated)");
    }
    if error
        .data
        .as_ref()
        .is_some_and(|d| json_len(d) > MAX_ERROR_MESSAGE)
    {
        error.data = None;
    }
    error
}

#[cfg(test)]
mod tests {
    use durafn_runtime::model::{MAX_OFFLOADED_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES};

    use super::*;

    #[test]
    fn oversized_values_are_a_clear_error() {
        let big = "x".repeat(MAX_PAYLOAD_BYTES);
        let err = encode("step \"download\" result", &big, MAX_PAYLOAD_BYTES)
            .unwrap_err()
            .to_string();
        assert!(err.contains("step \"download\" result"), "{err}");
        assert!(err.contains("limit"), "{err}");
        assert!(err.contains("configure a blob store"), "{err}");
        // With a blob store the same value fits.
        assert!(encode("r", &big, MAX_OFFLOADED_PAYLOAD_BYTES).is_ok());
    }

    #[test]
    fn decode_errors_name_the_value() {
        let err = decode::<u32>("step \"n\" result", Value::from("text")).unwrap_err();
        assert!(err.to_string().contains("step \"n\" result"), "{err}");
    }

    #[test]
    fn long_error_messages_are_clipped() {
        let e = clip(ErrorObject::new("E", "é".repeat(MAX_ERROR_MESSAGE)));
        assert!(e.message.len() < MAX_ERROR_MESSAGE + 20);
        assert!(e.message.ends_with("(truncated)"));
    }
}
