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
use axum::http::header::COOKIE;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::super::auth::{AdminGrant, Keys, admin_from_headers, bearer};

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
    /// The admin token in use (header or cookie), if valid.
    pub token: Option<String>,
    /// It came in an `Authorization` header (no CSRF token needed).
    pub by_header: bool,
    /// What it allows; `None` reads only.
    pub grant: Option<AdminGrant>,
}

impl Viewer {
    /// Whether this viewer may delete entries of `repository`.
    pub fn can_delete(&self, repository: &str) -> bool {
        self.grant
            .as_ref()
            .is_some_and(|g| g.allows(repository, true))
    }

    /// Whether it may delete at all (to show the delete controls).
    pub fn can_write(&self) -> bool {
        self.grant.as_ref().is_some_and(|g| g.write)
    }

    /// The session its CSRF tokens are bound to.
    pub fn session(&self) -> &str {
        self.token.as_deref().unwrap_or("")
    }
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

/// Who sent `headers` at `now_secs`: the `Authorization` header's admin token first, then the
/// cookie's; without one (or with an invalid one) the pages stay readable, and an insecure
/// server lets anyone delete.
pub fn viewer(keys: &Keys, headers: &HeaderMap, now_secs: i64) -> Viewer {
    let (token, by_header) = match bearer(headers) {
        Some(t) => (Some(t.to_string()), true),
        None => (cookie(headers), false),
    };
    let grant = match &token {
        Some(t) => keys.verify_admin(t, now_secs).ok(),
        None => admin_from_headers(keys, &HeaderMap::new(), now_secs).ok(),
    };
    Viewer {
        token: token.filter(|_| grant.is_some()),
        by_header: by_header && grant.is_some(),
        grant,
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
    fn the_session_cookie_among_others() {
        let mut h = HeaderMap::new();
        assert_eq!(cookie(&h), None);
        h.insert(COOKIE, "a=1; runner_ui=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&h).as_deref(), Some("xyz"));
        h.insert(COOKIE, "runner_ui=".parse().unwrap());
        assert_eq!(cookie(&h), None);
    }
}
