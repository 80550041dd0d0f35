//! Who is looking at the UI, and proof that a form came from our own page.
//!
//! The admin token arrives as `Authorization: Bearer` (scripts, proxies) or as the `runner_ui`
//! cookie the sign-in form sets (HttpOnly, SameSite=Strict, Path=/ui). The cookie holds the
//! token itself, checked on every request, so any server behind a load balancer accepts it and
//! signing out is dropping it. Every state-changing form carries a CSRF token: an HMAC of the
//! session (the token, or nothing) under a key derived from the server's secret, so another
//! site can neither read nor forge it. A request with an `Authorization` header needs none: a
//! browser never adds that header to a cross-site request.

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::super::AuthMode;

/// The cookie the sign-in form sets.
pub const COOKIE_NAME: &str = "runner_ui";

/// Keys for CSRF tokens, derived from the server's secret.
#[derive(Clone)]
pub struct UiKeys {
    csrf: Vec<u8>,
}

impl std::fmt::Debug for UiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UiKeys(..)")
    }
}

impl UiKeys {
    /// Keys derived from `secret` (the token secret, or a per-process random one).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            csrf: mac(secret, b"runner ui csrf v1"),
        }
    }

    /// The CSRF token of a session (`""` when not signed in).
    pub fn csrf(&self, session: &str) -> String {
        hex::encode(mac(&self.csrf, session.as_bytes()))
    }

    /// Whether `given` is the CSRF token of `session` (constant time).
    pub fn csrf_ok(&self, session: &str, given: &str) -> bool {
        let Ok(given) = hex::decode(given) else {
            return false;
        };
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.csrf) else {
            return false;
        };
        m.update(session.as_bytes());
        m.verify_slice(&given).is_ok()
    }
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length; the fallback is unreachable.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// What a request may do in the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The admin token in use (header or cookie), if any and valid.
    pub token: Option<String>,
    /// It came in an `Authorization` header (no CSRF token needed).
    pub by_header: bool,
    /// Deletions allowed in every repository (an insecure server, or a `*` write grant).
    write_all: bool,
    /// Repositories deletions are allowed in.
    write_repos: Vec<String>,
}

impl Viewer {
    /// Whether this viewer may delete entries of `repository`.
    pub fn can_delete(&self, repository: &str) -> bool {
        self.write_all || self.write_repos.iter().any(|r| r == repository)
    }

    /// Whether it may delete anywhere (to show the delete controls at all).
    pub fn can_write(&self) -> bool {
        self.write_all || !self.write_repos.is_empty()
    }

    /// The session its CSRF tokens are bound to.
    pub fn session(&self) -> &str {
        self.token.as_deref().unwrap_or("")
    }
}

/// The bearer token of an `Authorization` header (scheme case-insensitive).
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// The value of the UI cookie, if sent.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// Why a token does not sign in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// The server has no admin tokens to accept (before `runner token --admin` exists here).
    #[error("this server accepts no admin tokens")]
    NoAdminTokens,
}

/// The repositories `token` may delete in, or why it is not an admin token.
fn admin_grant(auth: &AuthMode, _token: &str) -> Result<Viewer, SignInError> {
    match auth {
        // No token is checked on an insecure server; everyone is an admin there already.
        AuthMode::Insecure | AuthMode::Secret(_) => Err(SignInError::NoAdminTokens),
    }
}

/// Checks a token for the sign-in form.
pub fn sign_in(auth: &AuthMode, token: &str) -> Result<(), SignInError> {
    admin_grant(auth, token).map(|_| ())
}

/// Who sent `headers`: the header's token first, then the cookie's; an invalid token reads as
/// no token (the pages stay readable).
pub fn viewer(auth: &AuthMode, headers: &HeaderMap) -> Viewer {
    let insecure = matches!(auth, AuthMode::Insecure);
    let anonymous = |by_header| Viewer {
        token: None,
        by_header,
        write_all: insecure,
        write_repos: Vec::new(),
    };
    let (token, by_header) = match bearer(headers) {
        Some(t) => (t, true),
        None => match cookie(headers) {
            Some(t) => (t, false),
            None => return anonymous(false),
        },
    };
    match admin_grant(auth, &token) {
        Ok(mut v) => {
            v.token = Some(token);
            v.by_header = by_header;
            v
        }
        Err(_) => anonymous(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_are_bound_to_the_session_and_key() {
        let keys = UiKeys::new(b"secret");
        let t = keys.csrf("token-a");
        assert!(keys.csrf_ok("token-a", &t));
        assert!(!keys.csrf_ok("token-b", &t));
        assert!(!keys.csrf_ok("token-a", ""));
        assert!(!keys.csrf_ok("token-a", "zz"));
        assert!(!UiKeys::new(b"other").csrf_ok("token-a", &t));
    }

    #[test]
    fn tokens_from_headers_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "bearer abc".parse().unwrap());
        h.insert(COOKIE, "a=1; runner_ui=xyz; b=2".parse().unwrap());
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        assert_eq!(cookie(&h).as_deref(), Some("xyz"));
        h.insert(AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
