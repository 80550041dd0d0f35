//! One error type for every route, rendered in the dialect of the protocol that was spoken:
//! v1 `{"message","typeKey"}`, Twirp `{"code","msg"}`, Azure blob XML with `x-ms-error-code`,
//! GitHub REST `{"message","documentation_url"}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Which protocol an error answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The v1 artifactcache REST API.
    V1,
    /// Twirp (v2 `CacheService`) and the server's own routes.
    Twirp,
    /// Azure-Blob-style upload and download URLs.
    Blob,
    /// GitHub's REST API: `{"message","documentation_url"}`.
    Rest,
}

/// An error answer: a status, a machine code (Twirp's, which v1 and blob map from) and a
/// message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Twirp error code (`invalid_argument`, `already_exists`, ...).
    pub code: &'static str,
    /// What went wrong, for the client's log.
    pub message: String,
    /// How to render it.
    pub dialect: Dialect,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            dialect: Dialect::Twirp,
        }
    }

    /// 400: the request is wrong.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    /// 400: the body is not the JSON the method takes.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", message)
    }

    /// 401: no or a bad token.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 403: the token or URL does not allow this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_denied", message)
    }

    /// 404: no such thing (or not visible to this job).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 404 for a path no route serves.
    pub fn bad_route(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "bad_route", message)
    }

    /// 405 for a method a route does not take.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "bad_route", message)
    }

    /// 409: the entry exists or is being created.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "already_exists", message)
    }

    /// 413: a body over the request or entry size cap.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "resource_exhausted", message)
    }

    /// 429: over the concurrent upload cap.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, "resource_exhausted", message)
    }

    /// 416: a `Range` outside the blob.
    pub fn range(message: impl Into<String>) -> Self {
        Self::new(StatusCode::RANGE_NOT_SATISFIABLE, "out_of_range", message)
    }

    /// 500: the store failed; `err` and its sources are logged and shown.
    pub fn internal(err: &(dyn std::error::Error + 'static)) -> Self {
        let message = error_chain(err);
        tracing::error!(error = %message, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The same error rendered for `dialect`.
    pub fn in_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    fn v1_type_key(&self) -> &'static str {
        match self.code {
            "already_exists" => "ArtifactCacheEntryAlreadyExistsException",
            "not_found" | "bad_route" => "ArtifactCacheNotFoundException",
            "unauthenticated" | "permission_denied" => "UnauthorizedRequestException",
            "internal" => "ArtifactCacheServiceException",
            _ => "ArgumentException",
        }
    }

    fn azure_code(&self) -> &'static str {
        match (self.status, self.code) {
            (StatusCode::FORBIDDEN, _) => "AuthorizationFailure",
            (StatusCode::UNAUTHORIZED, _) => "NoAuthenticationInformation",
            (StatusCode::NOT_FOUND, _) => "BlobNotFound",
            (StatusCode::PAYLOAD_TOO_LARGE, _) => "RequestBodyTooLarge",
            (StatusCode::TOO_MANY_REQUESTS, _) => "ServerBusy",
            (StatusCode::RANGE_NOT_SATISFIABLE, _) => "InvalidRange",
            (StatusCode::METHOD_NOT_ALLOWED, _) => "UnsupportedHttpVerb",
            (_, "internal") => "InternalError",
            _ => "InvalidInput",
        }
    }
}

/// `err: source: source …`, each cause once.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = match self.dialect {
            Dialect::Twirp => (
                self.status,
                axum::Json(serde_json::json!({"code": self.code, "msg": self.message})),
            )
                .into_response(),
            Dialect::V1 => (
                self.status,
                axum::Json(serde_json::json!({
                    "message": self.message,
                    "typeKey": self.v1_type_key(),
                })),
            )
                .into_response(),
            Dialect::Rest => (
                self.status,
                axum::Json(serde_json::json!({
                    "message": self.message,
                    "documentation_url": "https://docs.github.com/rest/actions/cache",
                })),
            )
                .into_response(),
            Dialect::Blob => {
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
                    self.azure_code(),
                    xml_escape(&self.message)
                );
                let mut response = (self.status, body).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml"),
                );
                response.headers_mut().insert(
                    "x-ms-error-code",
                    HeaderValue::from_static(self.azure_code()),
                );
                response
            }
        };
        response.extensions_mut().insert(ErrorLogged(self.message));
        response
    }
}

/// The message of an error answer, for the request log.
#[derive(Debug, Clone)]
pub struct ErrorLogged(pub String);
