//! The one authentication check of every protected route: the REST API
//! (`/v1`), the UI's data endpoints, the schedules API, the SQS protocol and
//! the Lambda Invoke API. (The Runtime API and the store route are reached
//! only by the emulator's own processes, through secret paths.)
//!
//! With a token configured (`durafn server`, the control function), a
//! request proves it knows the token in one of three ways:
//! - `Authorization: Bearer <token>` (the CLI, scripts);
//! - the UI's session cookie [`SESSION_COOKIE`], set by `POST /ui/login`
//!   (`HttpOnly; SameSite=Strict`): its value is an HMAC of the token, so
//!   the cookie jar never holds the token itself;
//! - the access key id of an AWS SigV4 `Authorization` header (an AWS SDK
//!   configured with the token as its access key; signatures are not checked).
//!
//! Every comparison is constant-time: tokens are compared through their
//! SHA-256 digests with [`subtle`], so neither the position of the first
//! differing byte nor the token's length shows in the timing.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::ApiError;

/// The UI's session cookie.
pub const SESSION_COOKIE: &str = "durafn_session";

/// The shortest API token accepted.
pub const MIN_TOKEN_LEN: usize = 16;

/// Why a token file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// It cannot be read.
    #[error(
        "cannot read the token file {path}: {source}; create it with e.g. `openssl rand -hex 32 > {path}`"
    )]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// It holds nothing but whitespace.
    #[error(
        "the token file {path} is empty: put a random token of at least {MIN_TOKEN_LEN} characters in it (e.g. `openssl rand -hex 32 > {path}`)"
    )]
    Empty {
        /// The file.
        path: String,
    },
    /// The token is too short to be a secret.
    #[error("the token in {path} is too short: use at least {MIN_TOKEN_LEN} random characters")]
    TooShort {
        /// The file.
        path: String,
    },
}

/// Reads an API token file: trimmed, non-empty, at least [`MIN_TOKEN_LEN`]
/// characters.
pub fn read_token_file(path: &Path) -> Result<String, TokenFileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Unreadable {
        path: shown.clone(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty { path: shown });
    }
    if token.len() < MIN_TOKEN_LEN {
        return Err(TokenFileError::TooShort { path: shown });
    }
    Ok(token.to_string())
}

/// The token check, shared by every protected router. Open (everything
/// passes) when no token is configured (`durafn dev`).
#[derive(Clone, Default)]
pub struct Guard {
    secret: Option<Arc<Secret>>,
}

struct Secret {
    /// SHA-256 of the token.
    digest: [u8; 32],
    /// The value of the UI's session cookie.
    session: String,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Guard {
    /// A guard requiring `token`, or an open one for `None`.
    pub fn new(token: Option<&str>) -> Guard {
        let secret = token.map(|t| {
            let session = <Hmac<Sha256> as Mac>::new_from_slice(t.as_bytes())
                .map(|mut m| {
                    m.update(b"durafn ui session v1");
                    m.finalize()
                        .into_bytes()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                })
                .unwrap_or_default();
            Arc::new(Secret {
                digest: sha256(t.as_bytes()),
                session,
            })
        });
        Guard { secret }
    }

    /// True if no token is required.
    pub fn is_open(&self) -> bool {
        self.secret.is_none()
    }

    /// True if `given` is the token (constant-time).
    pub fn is_token(&self, given: &str) -> bool {
        match &self.secret {
            None => true,
            Some(s) => bool::from(sha256(given.as_bytes()).ct_eq(&s.digest)),
        }
    }

    /// The session cookie's value, if a token is required.
    pub fn session_value(&self) -> Option<&str> {
        self.secret.as_ref().map(|s| s.session.as_str())
    }

    /// True if the request's headers prove the token.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(secret) = &self.secret else {
            return true;
        };
        let auth = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Some(auth) = auth {
            let given = auth.strip_prefix("Bearer ").map(str::trim).or_else(|| {
                auth.strip_prefix("AWS4-HMAC-SHA256 ")
                    .and_then(|rest| rest.split("Credential=").nth(1))
                    .and_then(|c| c.split('/').next())
            });
            if given.is_some_and(|g| self.is_token(g)) {
                return true;
            }
        }
        cookies(headers, SESSION_COOKIE)
            .any(|v| bool::from(v.as_bytes().ct_eq(secret.session.as_bytes())))
    }
}

/// The values of cookie `name` in the request's `Cookie` headers.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

/// The `Set-Cookie` value that signs the UI in.
pub fn session_cookie(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict"
    ))
    .ok()
}

/// The `Set-Cookie` value that signs the UI out.
pub fn cleared_session_cookie() -> HeaderValue {
    HeaderValue::from_static("durafn_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The answer to a request without the token.
pub fn unauthorized() -> Response {
    let mut response = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "Unauthorized",
        "missing or wrong API token: send `Authorization: Bearer <token>` (the token is in the server's --token-file), sign in to the UI, or use the token as an AWS SDK's access key id",
    )
    .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"durafn\""),
    );
    // AWS SDKs (SQS, Lambda) read the error code from this header.
    headers.insert(
        "x-amzn-errortype",
        HeaderValue::from_static("UnrecognizedClientException"),
    );
    response
}

/// True if two secrets are equal, in time independent of their contents and
/// lengths (for the store route's and the Runtime API's path secrets).
pub fn same_secret(given: &str, expected: &str) -> bool {
    bool::from(sha256(given.as_bytes()).ct_eq(&sha256(expected.as_bytes())))
}

/// The middleware: passes requests that prove the token, answers 401 to
/// the others.
pub async fn require_token(State(guard): State<Guard>, req: Request, next: Next) -> Response {
    if guard.allows(req.headers()) {
        next.run(req).await
    } else {
        unauthorized()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "abc"));
    }

    #[test]
    fn an_open_guard_lets_everything_through() {
        let g = Guard::new(None);
        assert!(g.is_open());
        assert!(g.allows(&HeaderMap::new()));
    }

    #[test]
    fn bearer_tokens_cookies_and_sigv4_access_keys_are_the_three_ways_in() {
        let g = Guard::new(Some("t0k-0123456789abcdef"));
        assert!(!g.allows(&HeaderMap::new()));
        assert!(g.allows(&with(header::AUTHORIZATION, "Bearer t0k-0123456789abcdef")));
        assert!(!g.allows(&with(header::AUTHORIZATION, "Bearer t0k-0123456789abcdeF")));
        assert!(!g.allows(&with(header::AUTHORIZATION, "Bearer t0k")));
        assert!(!g.allows(&with(header::AUTHORIZATION, "t0k-0123456789abcdef")));
        assert!(g.allows(&with(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=t0k-0123456789abcdef/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00",
        )));
        assert!(!g.allows(&with(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=other/20260101/us-east-1/sqs/aws4_request",
        )));
        let session = g.session_value().unwrap().to_string();
        assert!(!session.contains("t0k"), "the cookie is not the token");
        assert!(g.allows(&with(
            header::COOKIE,
            &format!("a=b; {SESSION_COOKIE}={session}")
        )));
        assert!(!g.allows(&with(
            header::COOKIE,
            &format!("{SESSION_COOKIE}=t0k-0123456789abcdef")
        )));
        assert!(!g.allows(&with(
            header::COOKIE,
            &format!("x{SESSION_COOKIE}={session}")
        )));
    }

    #[test]
    fn the_session_cookie_is_http_only_and_same_site_strict() {
        let c = session_cookie("abc").unwrap();
        let c = c.to_str().unwrap();
        assert!(
            c.contains("HttpOnly") && c.contains("SameSite=Strict"),
            "{c}"
        );
        assert!(
            cleared_session_cookie()
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn token_files_must_exist_and_hold_a_long_token() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = read_token_file(&missing).unwrap_err();
        assert!(matches!(e, TokenFileError::Unreadable { .. }), "{e}");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, " \n").unwrap();
        let e = read_token_file(&empty).unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
        std::fs::write(&empty, "short").unwrap();
        assert!(matches!(
            read_token_file(&empty),
            Err(TokenFileError::TooShort { .. })
        ));
        std::fs::write(&empty, " 0123456789abcdef\n").unwrap();
        assert_eq!(read_token_file(&empty).unwrap(), "0123456789abcdef");
    }
}
