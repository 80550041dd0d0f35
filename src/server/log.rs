//! One structured line per request (method, route, repo, key, status, bytes, ms) and the
//! answers for unknown paths and methods.

use std::cell::RefCell;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, Dialect, ErrorLogged};

/// What a handler tells the request log about its request.
#[derive(Debug, Clone, Default)]
struct LogFields {
    repo: Option<String>,
    key: Option<String>,
    bytes: u64,
}

tokio::task_local! {
    /// The fields of the request being served on this task.
    static FIELDS: RefCell<LogFields>;
}

/// Records the repository and key of the request being served (shown even when it fails).
pub fn note(repo: &str, key: &str) {
    let _ = FIELDS.try_with(|f| {
        let mut f = f.borrow_mut();
        f.repo = Some(repo.to_string());
        f.key = Some(key.to_string());
    });
}

/// Records the archive bytes the request received or sent.
pub fn note_bytes(bytes: u64) {
    let _ = FIELDS.try_with(|f| f.borrow_mut().bytes = bytes);
}

/// The logging middleware; also stamps `x-ms-request-id` on every response (Azure clients
/// expect it on blob answers and it costs nothing elsewhere).
pub async fn request_log(request: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = request.method().clone();
    // Twirp's method is part of the route; blob and v1 ids are not.
    let route = match request.extensions().get::<MatchedPath>() {
        Some(p) if p.as_str().ends_with("{method}") => request.uri().path().to_string(),
        Some(p) => p.as_str().to_string(),
        None => "(unmatched)".to_string(),
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let (mut response, fields) = FIELDS
        .scope(RefCell::new(LogFields::default()), async {
            let response = next.run(request).await;
            (response, FIELDS.with(|f| f.borrow().clone()))
        })
        .await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-ms-request-id", value);
    }
    let error = response
        .extensions()
        .get::<ErrorLogged>()
        .map(|e| e.0.as_str());
    let status = response.status().as_u16();
    let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        method = %method,
        route = %route,
        repo = fields.repo.as_deref().unwrap_or("-"),
        key = fields.key.as_deref().unwrap_or("-"),
        status,
        bytes = fields.bytes,
        ms,
        error = error.unwrap_or(""),
        request_id = %request_id,
        "request"
    );
    response
}

/// 404 for paths no route serves.
pub async fn not_found(request: Request) -> Response {
    ApiError::bad_route(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
    .in_dialect(Dialect::Twirp)
    .into_response()
}

/// 405 for a method a route does not take.
pub async fn method_not_allowed(request: Request) -> Response {
    ApiError::method_not_allowed(format!(
        "method {} is not allowed on {}",
        request.method(),
        request.uri().path()
    ))
    .into_response()
}
