//! The control function: `durafn dev`'s REST API and UI — the same router —
//! on Lambda behind an HttpApi.
//!
//! Authentication is a bearer token (`Authorization: Bearer <token>`; the UI
//! asks for it and keeps it in the browser session), read from
//! `DURAFN_API_TOKEN`. The
//! template fills that variable from a Secrets Manager secret it creates
//! (`{{resolve:secretsmanager:…}}`), so the token never appears in the
//! template or its parameters. Starts, events, callbacks and resumes reach
//! the dispatcher function through the wake queue (the store reports them,
//! see [`crate::open_store`]); a start's `wait` polls the store.

use std::collections::BTreeSet;
use std::sync::Arc;

use durafn_emulator::api::{ApiState, Metrics};
use durafn_runtime::clock::SystemClock;
use durafn_runtime::store::Store;

/// The shortest token the control function accepts.
pub const MIN_TOKEN_LEN: usize = 16;

/// Reads and checks the API token.
pub fn token_from(value: Option<String>) -> anyhow::Result<String> {
    let token = value.map(|t| t.trim().to_string()).unwrap_or_default();
    if token.is_empty() {
        anyhow::bail!(
            "DURAFN_API_TOKEN is not set: the control function refuses to serve without a token (the template sets it from the DurafnApiToken secret)"
        );
    }
    if token.len() < MIN_TOKEN_LEN {
        anyhow::bail!(
            "DURAFN_API_TOKEN is too short: use at least {MIN_TOKEN_LEN} random characters"
        );
    }
    Ok(token)
}

/// The functions the API may start: `DURAFN_FUNCTIONS`, comma-separated.
pub fn functions_from(value: Option<String>) -> BTreeSet<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect()
}

/// The router the control function serves: the REST API and the UI.
pub fn router(store: Arc<dyn Store>, functions: BTreeSet<String>, token: String) -> axum::Router {
    let state = ApiState {
        store,
        clock: Arc::new(SystemClock),
        functions: Arc::new(functions),
        flow: Default::default(),
        dispatch: None,
        token: Some(Arc::from(token)),
        metrics: Arc::new(Metrics::default()),
    };
    durafn_emulator::api::router(state.clone()).merge(durafn_emulator::ui::router(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_required_and_long_enough() {
        assert!(
            token_from(None)
                .unwrap_err()
                .to_string()
                .contains("not set")
        );
        assert!(token_from(Some("  ".into())).is_err());
        assert!(
            token_from(Some("short".into()))
                .unwrap_err()
                .to_string()
                .contains("too short")
        );
        assert_eq!(
            token_from(Some(" 0123456789abcdef\n".into())).unwrap(),
            "0123456789abcdef"
        );
    }

    #[test]
    fn functions_are_a_comma_separated_list() {
        let f = functions_from(Some("order, approval,,".into()));
        assert_eq!(f.into_iter().collect::<Vec<_>>(), ["approval", "order"]);
        assert!(functions_from(None).is_empty());
    }
}
