//! `ctx.set_attribute`: a search attribute of the execution, so it can be
//! found by it (`durafn list --where 'attr.customer=42'`).

use durafn_runtime::store::SearchAttribute;
use durafn_runtime::store::attributes::{index_value, validate_attribute_name};
use serde::Serialize;

use super::DurableContext;
use crate::error::DurableError;

impl DurableContext {
    /// Sets the search attribute `name` of this execution to `value` (a
    /// string, number or boolean; at most 256 bytes as JSON), replacing the
    /// value it had, and indexes it: `GET /v1/executions?where=attr.NAME=VALUE`
    /// finds the execution without scanning.
    ///
    /// Deterministic and replay-safe: it is recorded as a step named
    /// `set_attribute:<name>` whose body writes the index, so a replay
    /// returns the recorded step and writes nothing again. It costs that
    /// step's checkpoint plus the index write (on DynamoDB up to three
    /// single-item writes: see `docs/search.md`). An invalid name or value
    /// fails at once with `InvalidArgument`, nothing recorded.
    pub async fn set_attribute(
        &self,
        name: &str,
        value: impl Serialize,
    ) -> Result<(), DurableError> {
        let value = serde_json::to_value(value)
            .map_err(|e| DurableError::Invalid(format!("search attribute {name:?}: {e}")))?;
        validate_attribute_name(name).map_err(|e| DurableError::Invalid(e.to_string()))?;
        index_value(&value).map_err(|e| DurableError::Invalid(e.to_string()))?;
        let shared = self.shared();
        let (store, id) = (shared.store.clone(), shared.execution_id.clone());
        let attr = SearchAttribute {
            name: name.to_string(),
            value,
            function: shared.function.clone(),
            created_at: shared.created_at,
        };
        self.step(&format!("set_attribute:{name}"), move |_| async move {
            store
                .put_attribute(&id, &attr)
                .await
                .map_err(|e| DurableError::msg(format!("could not index the attribute: {e}")))?;
            Ok::<_, DurableError>(attr.value)
        })
        .await
        .map(|_| ())
    }
}
