//! Who may do what: GitHub-style `ACTIONS_RUNTIME_TOKEN` JWTs (HS256 with the server's secret)
//! and HMAC-signed upload/download URLs bound to one entry and one purpose.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::cache::Scope;

type HmacSha256 = Hmac<Sha256>;

/// GitHub's permission bits in the `ac` claim: 1 read, 2 write (3 both).
pub const PERMISSION_READ: u8 = 1;
/// Write permission; a scope whose `Permission` is at least this may be saved to.
pub const PERMISSION_WRITE: u8 = 2;

/// Why a token or signed URL was refused. Messages are safe to show to the client.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing 'Authorization: Bearer <ACTIONS_RUNTIME_TOKEN>' header")]
    Missing,
    /// No `Authorization: Bearer` header on an admin route.
    #[error(
        "missing 'Authorization: Bearer <admin token>' header (make one with `runner token --admin`)"
    )]
    MissingAdmin,
    /// Not three base64url parts with JSON header and claims.
    #[error("malformed token: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// A JWT algorithm other than HS256.
    #[error("unsupported token algorithm {alg:?}: only HS256 is accepted")]
    Algorithm {
        /// The `alg` header.
        alg: String,
    },
    /// The signature does not match the server's secret.
    #[error("invalid token signature")]
    Signature,
    /// `exp` is in the past (or `nbf` in the future).
    #[error("token is expired or not yet valid")]
    Expired,
    /// The claims lack a repository or a readable scope.
    #[error("token grants no cache access: {reason}")]
    NoAccess {
        /// What is missing.
        reason: &'static str,
    },
    /// A signed URL whose signature, purpose or target does not match.
    #[error("invalid URL signature")]
    UrlSignature,
    /// A signed URL past its expiry.
    #[error("signed URL expired")]
    UrlExpired,
}

/// One entry of the `ac` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeGrant {
    /// A git ref, e.g. `refs/heads/main`.
    #[serde(rename = "Scope")]
    pub scope: String,
    /// Permission bits: 1 read, 2 write, 3 both.
    #[serde(rename = "Permission")]
    pub permission: u8,
}

/// The claims we read from (and write into) a runtime token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// GitHub's repository id (a decimal string); identifies the repository when `repository`
    /// is absent.
    #[serde(default, deserialize_with = "string_or_number")]
    pub repository_id: Option<String>,
    /// `owner/name`, the name the store files entries under (as `runner exec` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The scopes as a JSON string: `[{"Scope":"refs/heads/x","Permission":3}]`.
    #[serde(default)]
    pub ac: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Who issued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// The job a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The repository entries are filed under.
    pub repository: String,
    /// The scopes in the order the token lists them (current ref, base, default branch).
    pub grants: Vec<ScopeGrant>,
}

impl Principal {
    /// The refs this job reads, in the order listed, as a cache scope (GitHub lists at most
    /// three: current ref, base, default branch; any further ones are not read).
    pub fn read_scope(&self) -> Scope {
        let mut refs = self.grants.iter().map(|g| g.scope.clone());
        Scope {
            repository: self.repository.clone(),
            git_ref: refs.next().unwrap_or_default(),
            base_ref: refs.next(),
            default_branch: refs.next(),
        }
    }

    /// The scope a save writes to: the first with write permission; `None` for read-only jobs.
    pub fn write_scope(&self) -> Option<Scope> {
        let grant = self
            .grants
            .iter()
            .find(|g| g.permission >= PERMISSION_WRITE)?;
        Some(Scope {
            repository: self.repository.clone(),
            git_ref: grant.scope.clone(),
            base_ref: None,
            default_branch: None,
        })
    }
}

/// What `runner token` puts into a token.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenRequest {
    /// `owner/name`.
    pub repository: String,
    /// GitHub's numeric id; derived from the name when absent.
    pub repository_id: Option<String>,
    /// The ref the job runs on (its write scope unless `read_only`).
    pub git_ref: String,
    /// A pull request's base ref.
    pub base_ref: Option<String>,
    /// The default branch ref.
    pub default_branch: Option<String>,
    /// Read every scope, write none.
    pub read_only: bool,
    /// Lifetime in seconds.
    pub ttl_secs: i64,
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Signs `claims` as an HS256 JWT with `secret`.
pub fn encode_token(secret: &[u8], claims: &Claims) -> String {
    // Serializing a struct of strings and integers cannot fail.
    encode_jwt(secret, &serde_json::to_vec(claims).unwrap_or_default())
}

fn encode_jwt(key: &[u8], body: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(body));
    let signature = hmac(key, &[signing_input.as_bytes()])
        .finalize()
        .into_bytes();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// Mints a runtime token for a job: read on the ref, its base and the default branch (in that
/// order), write on the ref unless `read_only`. `now_secs` is the issue time.
pub fn mint_token(secret: &[u8], request: &TokenRequest, now_secs: i64) -> String {
    let mut grants = vec![ScopeGrant {
        scope: request.git_ref.clone(),
        permission: if request.read_only {
            PERMISSION_READ
        } else {
            PERMISSION_READ | PERMISSION_WRITE
        },
    }];
    for scope in [&request.base_ref, &request.default_branch]
        .into_iter()
        .flatten()
    {
        if !scope.is_empty() && !grants.iter().any(|g| &g.scope == scope) {
            grants.push(ScopeGrant {
                scope: scope.clone(),
                permission: PERMISSION_READ,
            });
        }
    }
    let repository_id = request.repository_id.clone().unwrap_or_else(|| {
        // A stable stand-in for GitHub's id: the first 6 bytes of the name's sha256.
        let digest = Sha256::digest(request.repository.as_bytes());
        let mut id = [0u8; 8];
        id[2..].copy_from_slice(&digest[..6]);
        u64::from_be_bytes(id).to_string()
    });
    let claims = Claims {
        repository_id: Some(repository_id),
        repository: Some(request.repository.clone()),
        ac: serde_json::to_string(&grants).unwrap_or_default(),
        exp: now_secs.saturating_add(request.ttl_secs),
        nbf: Some(now_secs),
        iat: Some(now_secs),
        iss: Some("runner".to_string()),
    };
    encode_token(secret, &claims)
}

/// Verifies an HS256 JWT against `secret` at `now_secs` and returns the job it speaks for.
pub fn verify_token(secret: &[u8], token: &str, now_secs: i64) -> Result<Principal, AuthError> {
    decode_token(Some(secret), token, now_secs)
}

/// Reads a token's claims without checking its signature (`--insecure-no-auth` only).
pub fn read_token_unverified(token: &str, now_secs: i64) -> Result<Principal, AuthError> {
    decode_token(None, token, now_secs)
}

/// Checks a JWT's shape, algorithm and (with `key`) its signature; returns the claims' bytes.
fn jwt_claims(key: Option<&[u8]>, token: &str) -> Result<Vec<u8>, AuthError> {
    let malformed = |reason| AuthError::Malformed { reason };
    let mut parts = token.trim().split('.');
    let (Some(header), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("expected three '.'-separated parts"));
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| malformed("a part is not base64url"))
    };
    #[derive(Deserialize)]
    struct Header {
        alg: String,
    }
    let header_json: Header =
        serde_json::from_slice(&decode(header)?).map_err(|_| malformed("header is not JSON"))?;
    if header_json.alg != "HS256" {
        return Err(AuthError::Algorithm {
            alg: header_json.alg,
        });
    }
    let signing_input = &token.trim()[..header.len() + 1 + body.len()];
    if let Some(key) = key {
        // `verify_slice` compares in constant time.
        hmac(key, &[signing_input.as_bytes()])
            .verify_slice(&decode(signature)?)
            .map_err(|_| AuthError::Signature)?;
    }
    decode(body)
}

fn decode_token(secret: Option<&[u8]>, token: &str, now_secs: i64) -> Result<Principal, AuthError> {
    let malformed = |reason| AuthError::Malformed { reason };
    let claims: Claims = serde_json::from_slice(&jwt_claims(secret, token)?)
        .map_err(|_| malformed("claims are not JSON"))?;
    if claims.exp <= now_secs || claims.nbf.is_some_and(|nbf| nbf > now_secs) {
        return Err(AuthError::Expired);
    }
    let repository = claims
        .repository
        .filter(|r| !r.is_empty())
        .or(claims.repository_id.filter(|r| !r.is_empty()))
        .ok_or(AuthError::NoAccess {
            reason: "no repository_id claim",
        })?;
    let grants: Vec<ScopeGrant> = serde_json::from_str(&claims.ac).map_err(|_| {
        malformed("the 'ac' claim is not a JSON list of {\"Scope\",\"Permission\"}")
    })?;
    let grants: Vec<ScopeGrant> = grants.into_iter().filter(|g| !g.scope.is_empty()).collect();
    if grants.is_empty() {
        return Err(AuthError::NoAccess {
            reason: "the 'ac' claim lists no scope",
        });
    }
    Ok(Principal { repository, grants })
}

/// Which repositories an admin token manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoMatch {
    /// Every repository (`--repo '*'`).
    Any,
    /// One `owner/name` (compared case-insensitively, as GitHub does).
    Repo(String),
}

impl RepoMatch {
    /// Parses `owner/name` or `*`.
    pub fn parse(text: &str) -> Result<Self, AuthError> {
        let text = text.trim();
        if text == "*" {
            return Ok(RepoMatch::Any);
        }
        match text.split_once('/') {
            Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(RepoMatch::Repo(text.to_string()))
            }
            _ => Err(AuthError::NoAccess {
                reason: "the admin repository is neither 'owner/name' nor '*'",
            }),
        }
    }

    /// Whether `repository` is one of these.
    pub fn matches(&self, repository: &str) -> bool {
        match self {
            RepoMatch::Any => true,
            RepoMatch::Repo(repo) => repo.eq_ignore_ascii_case(repository),
        }
    }

    /// `*` or the repository, as written into the token.
    pub fn as_str(&self) -> &str {
        match self {
            RepoMatch::Any => "*",
            RepoMatch::Repo(repo) => repo,
        }
    }
}

/// What a verified admin token allows, and who holds it (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminGrant {
    /// The repositories it manages.
    pub repos: RepoMatch,
    /// Whether it may delete (a read token lists and reads usage only).
    pub write: bool,
    /// Who: the token's subject and id, `name (token 1a2b3c4d)`.
    pub who: String,
}

impl AdminGrant {
    /// Whether this grant may read (`write == false`) or change (`write == true`) `repo`.
    pub fn allows(&self, repo: &str, write: bool) -> bool {
        self.repos.matches(repo) && (self.write || !write)
    }
}

/// What `runner token --admin` puts into an admin token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTokenRequest {
    /// The repositories it manages.
    pub repos: RepoMatch,
    /// May delete.
    pub write: bool,
    /// Who holds it; recorded in the audit log with each deletion.
    pub subject: String,
    /// Lifetime in seconds.
    pub ttl_secs: i64,
}

/// The claims of an admin token. `adm` is what tells it apart from a runtime token (which
/// is signed with another key anyway).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AdminClaims {
    adm: String,
    #[serde(default)]
    write: bool,
    #[serde(default)]
    sub: String,
    #[serde(default)]
    jti: String,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
}

/// The keys admin tokens are signed and checked with, derived from the server secret so an
/// `ACTIONS_RUNTIME_TOKEN` never passes as an admin token.
#[derive(Clone)]
pub struct Keys {
    admin: Vec<u8>,
    /// `--insecure-no-auth`: tokens are read unverified, and a request without one manages
    /// every repository.
    insecure: bool,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// Keys derived from the server's token secret.
    pub fn new(secret: &[u8]) -> Self {
        let admin = hmac(secret, &[b"runner admin tokens v1"])
            .finalize()
            .into_bytes()
            .to_vec();
        Self {
            admin,
            insecure: false,
        }
    }

    /// For `--insecure-no-auth`: every admin request is accepted.
    pub fn insecure() -> Self {
        Self {
            admin: uuid::Uuid::new_v4().as_bytes().to_vec(),
            insecure: true,
        }
    }

    /// Mints an admin token at `now_secs`.
    pub fn mint_admin(&self, request: &AdminTokenRequest, now_secs: i64) -> String {
        let claims = AdminClaims {
            adm: request.repos.as_str().to_string(),
            write: request.write,
            sub: request.subject.clone(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
            exp: now_secs.saturating_add(request.ttl_secs),
            nbf: Some(now_secs),
            iat: Some(now_secs),
            iss: Some("runner".to_string()),
        };
        // Serializing a struct of strings and integers cannot fail.
        encode_jwt(
            &self.admin,
            &serde_json::to_vec(&claims).unwrap_or_default(),
        )
    }

    /// Verifies an admin token (signature in constant time, then `exp`/`nbf`) at `now_secs`.
    pub fn verify_admin(&self, token: &str, now_secs: i64) -> Result<AdminGrant, AuthError> {
        let key = (!self.insecure).then_some(self.admin.as_slice());
        let claims: AdminClaims =
            serde_json::from_slice(&jwt_claims(key, token)?).map_err(|_| AuthError::Malformed {
                reason: "claims are not an admin token's",
            })?;
        if claims.exp <= now_secs || claims.nbf.is_some_and(|nbf| nbf > now_secs) {
            return Err(AuthError::Expired);
        }
        let id: String = claims.jti.chars().take(8).collect();
        let who = match (claims.sub.is_empty(), id.is_empty()) {
            (false, false) => format!("{} (token {id})", claims.sub),
            (false, true) => claims.sub,
            (true, _) => format!("token {id}"),
        };
        Ok(AdminGrant {
            repos: RepoMatch::parse(&claims.adm)?,
            write: claims.write,
            who,
        })
    }
}

/// The credentials of an `Authorization` header: `Bearer <t>` or GitHub's `token <t>`, the
/// scheme matched case-insensitively (Octokit sends `bearer`, `gh` sends `token`).
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, credentials) = value.trim().split_once(char::is_whitespace)?;
    let credentials = credentials.trim();
    ((scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        && !credentials.is_empty())
    .then_some(credentials)
}

/// The admin grant of a request's `Authorization` header at `now_secs`.
pub fn admin_from_headers(
    keys: &Keys,
    headers: &axum::http::HeaderMap,
    now_secs: i64,
) -> Result<AdminGrant, AuthError> {
    match bearer(headers) {
        Some(token) => keys.verify_admin(token, now_secs),
        None if keys.insecure => Ok(AdminGrant {
            repos: RepoMatch::Any,
            write: true,
            who: "anonymous (--insecure-no-auth)".to_string(),
        }),
        None => Err(AuthError::MissingAdmin),
    }
}

/// What a signed URL may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Put the bytes of one upload.
    Upload,
    /// Read one committed entry.
    Download,
}

impl Purpose {
    /// The URL's container segment.
    pub fn container(self) -> &'static str {
        match self {
            Purpose::Upload => "uploads",
            Purpose::Download => "entries",
        }
    }

    /// The purpose a container segment names.
    pub fn from_container(container: &str) -> Option<Self> {
        match container {
            "uploads" => Some(Purpose::Upload),
            "entries" => Some(Purpose::Download),
            _ => None,
        }
    }
}

/// Signs and checks blob URLs with a key derived from the server secret.
#[derive(Clone)]
pub struct UrlSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner")
    }
}

impl UrlSigner {
    /// A signer whose key is derived from `secret` (so a token never doubles as a URL key).
    pub fn new(secret: &[u8]) -> Self {
        let key = hmac(secret, &[b"runner signed blob urls v1"])
            .finalize()
            .into_bytes()
            .to_vec();
        Self { key }
    }

    fn mac(&self, purpose: Purpose, target: &str, expires: i64) -> HmacSha256 {
        hmac(
            &self.key,
            &[
                purpose.container().as_bytes(),
                b"\n",
                target.as_bytes(),
                b"\n",
                expires.to_string().as_bytes(),
            ],
        )
    }

    /// The signature of (purpose, target, expiry).
    pub fn sign(&self, purpose: Purpose, target: &str, expires: i64) -> String {
        let mac = self.mac(purpose, target, expires);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Checks a signature (constant time), then the expiry against `now_secs`.
    pub fn verify(
        &self,
        purpose: Purpose,
        target: &str,
        expires: i64,
        signature: &str,
        now_secs: i64,
    ) -> Result<(), AuthError> {
        let given = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| AuthError::UrlSignature)?;
        self.mac(purpose, target, expires)
            .verify_slice(&given)
            .map_err(|_| AuthError::UrlSignature)?;
        if expires <= now_secs {
            return Err(AuthError::UrlExpired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test secret";

    fn request(read_only: bool) -> TokenRequest {
        TokenRequest {
            repository: "o/r".into(),
            git_ref: "refs/heads/f".into(),
            base_ref: None,
            default_branch: Some("refs/heads/main".into()),
            read_only,
            ttl_secs: 60,
            ..TokenRequest::default()
        }
    }

    #[test]
    fn minted_tokens_verify_and_carry_scopes_in_order() {
        let token = mint_token(SECRET, &request(false), 1000);
        let principal = verify_token(SECRET, &token, 1001).expect("valid");
        assert_eq!(principal.repository, "o/r");
        assert_eq!(
            principal.read_scope().readable(),
            ["refs/heads/f", "refs/heads/main"]
        );
        assert_eq!(
            principal.write_scope().map(|s| s.git_ref),
            Some("refs/heads/f".to_string())
        );
        let read_only = mint_token(SECRET, &request(true), 1000);
        let principal = verify_token(SECRET, &read_only, 1001).expect("valid");
        assert_eq!(principal.write_scope(), None);
    }

    #[test]
    fn bad_tokens_are_refused() {
        let token = mint_token(SECRET, &request(false), 1000);
        assert_eq!(
            verify_token(b"other", &token, 1001),
            Err(AuthError::Signature)
        );
        assert_eq!(verify_token(SECRET, &token, 1060), Err(AuthError::Expired));
        assert!(matches!(
            verify_token(SECRET, "a.b", 1001),
            Err(AuthError::Malformed { .. })
        ));
        let (head, rest) = token.split_once('.').expect("parts");
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        assert_eq!(
            verify_token(SECRET, &format!("{none}.{rest}"), 1001),
            Err(AuthError::Algorithm { alg: "none".into() })
        );
        // Claims swapped under the same signature.
        let (_, sig) = rest.split_once('.').expect("parts");
        let forged = URL_SAFE_NO_PAD.encode(br#"{"repository":"x/y","ac":"[]","exp":9999}"#);
        assert_eq!(
            verify_token(SECRET, &format!("{head}.{forged}.{sig}"), 1001),
            Err(AuthError::Signature)
        );
    }

    fn admin(repos: RepoMatch, write: bool) -> AdminTokenRequest {
        AdminTokenRequest {
            repos,
            write,
            subject: "ops".into(),
            ttl_secs: 60,
        }
    }

    fn headers(value: &str) -> axum::http::HeaderMap {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            axum::http::header::AUTHORIZATION,
            value.parse().expect("header value"),
        );
        headers
    }

    #[test]
    fn admin_tokens_grant_what_they_say_until_they_expire() {
        let keys = Keys::new(SECRET);
        let one = keys.mint_admin(&admin(RepoMatch::Repo("O/R".into()), false), 1000);
        let grant = keys.verify_admin(&one, 1001).expect("valid");
        assert!(grant.who.starts_with("ops (token "), "{}", grant.who);
        assert!(grant.allows("o/r", false));
        assert!(!grant.allows("o/r", true), "a read token cannot delete");
        assert!(!grant.allows("o/other", false));
        let every = keys.mint_admin(&admin(RepoMatch::Any, true), 1000);
        let grant = keys.verify_admin(&every, 1001).expect("valid");
        assert!(grant.allows("x/y", true));
        assert_eq!(keys.verify_admin(&every, 1060), Err(AuthError::Expired));
        assert_eq!(
            Keys::new(b"other").verify_admin(&every, 1001),
            Err(AuthError::Signature)
        );
    }

    #[test]
    fn runtime_tokens_are_not_admin_tokens_nor_the_reverse() {
        let keys = Keys::new(SECRET);
        let runtime = mint_token(SECRET, &request(false), 1000);
        assert_eq!(keys.verify_admin(&runtime, 1001), Err(AuthError::Signature));
        let admin = keys.mint_admin(&admin(RepoMatch::Any, true), 1000);
        assert_eq!(
            verify_token(SECRET, &admin, 1001),
            Err(AuthError::Signature)
        );
    }

    #[test]
    fn the_authorization_scheme_is_case_insensitive() {
        let keys = Keys::new(SECRET);
        let token = keys.mint_admin(&admin(RepoMatch::Any, false), 1000);
        for scheme in ["Bearer", "bearer", "BEARER", "token"] {
            let grant = admin_from_headers(&keys, &headers(&format!("{scheme} {token}")), 1001);
            assert!(grant.is_ok(), "{scheme}: {grant:?}");
        }
        assert_eq!(
            admin_from_headers(&keys, &headers(&format!("Basic {token}")), 1001),
            Err(AuthError::MissingAdmin)
        );
        assert_eq!(
            admin_from_headers(&keys, &axum::http::HeaderMap::new(), 1001),
            Err(AuthError::MissingAdmin)
        );
        let grant = admin_from_headers(&Keys::insecure(), &axum::http::HeaderMap::new(), 1001);
        assert!(grant.is_ok_and(|g| g.allows("a/b", true)));
    }

    #[test]
    fn signed_urls_are_bound_to_purpose_target_and_time() {
        let signer = UrlSigner::new(SECRET);
        let sig = signer.sign(Purpose::Download, "e1", 100);
        assert_eq!(
            signer.verify(Purpose::Download, "e1", 100, &sig, 99),
            Ok(())
        );
        let refused = [
            signer.verify(Purpose::Upload, "e1", 100, &sig, 99),
            signer.verify(Purpose::Download, "e2", 100, &sig, 99),
            signer.verify(Purpose::Download, "e1", 101, &sig, 99),
            signer.verify(Purpose::Download, "e1", 100, "AAAA", 99),
        ];
        for result in refused {
            assert_eq!(result, Err(AuthError::UrlSignature));
        }
        assert_eq!(
            signer.verify(Purpose::Download, "e1", 100, &sig, 100),
            Err(AuthError::UrlExpired)
        );
    }
}
