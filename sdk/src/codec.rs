//! Payload codecs: values to and from the JSON recorded in the journal.

use durafn_runtime::model::{ErrorObject, MAX_PAYLOAD_BYTES, json_len};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::DurableError;

/// The longest error message recorded; longer ones are cut (the rest is rarely
/// useful and would crowd out the journal).
const MAX_ERROR_MESSAGE: usize = 32 * 1024;

/// Encodes `v` for the journal; `what` names it in errors (e.g. `step "charge" result`).
pub(crate) fn encode<T: Serialize>(what: &str, v: &T) -> Result<Value, DurableError> {
    let value = serde_json::to_value(v)
        .map_err(|e| DurableError::Payload(format!("{what} cannot be serialized to JSON: {e}")))?;
    let size = json_len(&value);
    if size > MAX_PAYLOAD_BYTES {
        return Err(DurableError::Payload(format!(
            "{what} is {size} bytes, over the {MAX_PAYLOAD_BYTES}-byte limit; \
             store large data elsewhere (e.g. S3) and return a reference"
        )));
    }
    Ok(value)
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
    use super::*;

    #[test]
    fn oversized_values_are_a_clear_error() {
        let big = "x".repeat(MAX_PAYLOAD_BYTES);
        let err = encode("step \"download\" result", &big)
            .unwrap_err()
            .to_string();
        assert!(err.contains("step \"download\" result"), "{err}");
        assert!(err.contains("limit"), "{err}");
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
