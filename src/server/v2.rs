//! v2: Twirp `github.actions.results.api.v1.CacheService` (JSON; snake_case fields, int64 as
//! strings). Bytes go to the signed Azure-style URLs of [`super::blob`].

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::{ApiError, Dialect};
use super::log;
use super::staging::{self, Part};
use super::uploads::{self, blocking};
use super::{Server, auth::Principal};

/// `CreateCacheEntryRequest`.
#[derive(Debug, Deserialize)]
struct CreateRequest {
    #[serde(default)]
    key: String,
    #[serde(default)]
    version: String,
}

/// `FinalizeCacheEntryUploadRequest`.
#[derive(Debug, Deserialize)]
struct FinalizeRequest {
    #[serde(default)]
    key: String,
    #[serde(default)]
    version: String,
    #[serde(default, alias = "sizeBytes", deserialize_with = "int64")]
    size_bytes: Option<u64>,
}

/// `GetCacheEntryDownloadURLRequest`.
#[derive(Debug, Deserialize)]
struct DownloadRequest {
    #[serde(default)]
    key: String,
    #[serde(default, alias = "restoreKeys")]
    restore_keys: Vec<String>,
    #[serde(default)]
    version: String,
}

/// Protobuf JSON int64: a string (or, leniently, a number).
fn int64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => s
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("{s:?} is not a non-negative int64"))),
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{n} is not a non-negative int64"))),
        Some(other) => Err(D::Error::custom(format!("{other} is not an int64"))),
    }
}

fn parse<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::bad_route(format!(
            "unsupported Content-Type {content_type:?}: this server speaks Twirp JSON"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|err| ApiError::malformed(format!("the request is not valid JSON: {err}")))
}

/// `POST /twirp/github.actions.results.api.v1.CacheService/{method}`.
pub async fn dispatch(
    State(server): State<Server>,
    method: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = match (method, uploads::json_body(body).await) {
        (Ok(Path(method)), Ok(body)) => call(&server, &method, &headers, &body).await,
        (Err(rejection), _) => Err(uploads::rejected(rejection)),
        (_, Err(err)) => Err(err),
    };
    result.unwrap_or_else(|err| err.in_dialect(Dialect::Twirp).into_response())
}

async fn call(
    server: &Server,
    method: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    match method {
        "CreateCacheEntry" => create(server, headers, body).await,
        "FinalizeCacheEntryUpload" => finalize(server, headers, body).await,
        "GetCacheEntryDownloadURL" => download_url(server, headers, body).await,
        _ => Err(ApiError::bad_route(format!(
            "no method {method:?} in CacheService"
        ))),
    }
}

fn principal(server: &Server, headers: &HeaderMap) -> Result<Principal, ApiError> {
    uploads::authenticate(&server.inner, headers)
}

async fn create(server: &Server, headers: &HeaderMap, body: &Bytes) -> Result<Response, ApiError> {
    let principal = principal(server, headers)?;
    let request: CreateRequest = parse(headers, body)?;
    log::note(&principal.repository, &request.key);
    uploads::check_key(&request.key)?;
    uploads::check_version(&request.version)?;
    let scope = uploads::write_scope(&principal)?;
    let inner = server.inner.clone();
    let meta = blocking(move || {
        let id = uploads::v2_upload_id(&scope, &request.key, &request.version);
        uploads::create(&inner, &scope, &request.key, &request.version, None, id)
    })
    .await?;
    let url = uploads::upload_url(&server.inner, headers, &meta);
    Ok(Json(json!({"ok": true, "signed_upload_url": url})).into_response())
}

async fn finalize(
    server: &Server,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let principal = principal(server, headers)?;
    let request: FinalizeRequest = parse(headers, body)?;
    log::note(&principal.repository, &request.key);
    uploads::check_key(&request.key)?;
    uploads::check_version(&request.version)?;
    let size = request
        .size_bytes
        .ok_or_else(|| ApiError::invalid("size_bytes is required"))?;
    let scope = uploads::write_scope(&principal)?;
    let inner = server.inner.clone();
    let entry = blocking(move || {
        let id = uploads::v2_upload_id(&scope, &request.key, &request.version);
        let _turn = uploads::FinalizeTurn::take(&inner, &id)?;
        let meta = uploads::find_own(&inner, &scope, &id)?;
        let staged = uploads::staged_parts(&inner, &meta.id)?;
        let plan = if staged.iter().any(|(p, _)| *p == Part::BlockList) {
            staging::read_block_list(inner.staging.as_ref(), &meta.id)
                .map_err(|err| ApiError::internal(&err))?
                .into_iter()
                .map(Part::Block)
                .collect()
        } else if staged.iter().any(|(p, _)| *p == Part::Blob) {
            vec![Part::Blob]
        } else if size == 0 {
            Vec::new()
        } else {
            return Err(ApiError::invalid(
                "nothing was uploaded: PUT the archive (or its blocks and block list) first",
            ));
        };
        uploads::finalize(&inner, &meta, &plan, size)
    })
    .await?;
    log::note_bytes(entry.size_bytes);
    let entry_id = uploads::entry_number(&entry.id).to_string();
    Ok(Json(json!({"ok": true, "entry_id": entry_id})).into_response())
}

/// Where a client downloads `entry`: with `--direct-downloads`, a presigned GET of its blob in
/// the object store (the bytes skip this server); else, or if the store cannot presign, this
/// server's signed URL.
pub(super) async fn download_location(
    server: &Server,
    headers: &HeaderMap,
    entry: &crate::store::index::Entry,
) -> String {
    if server.inner.config.direct_downloads
        && let Some(digest) = entry.blob_digest.clone()
    {
        let inner = server.inner.clone();
        let ttl = std::time::Duration::from_secs(inner.config.url_ttl_secs.max(1).unsigned_abs());
        let presigned =
            blocking(move || Ok(inner.cache.store().blobs().presigned_get(&digest, ttl))).await;
        match presigned {
            Ok(Ok(Some(url))) => return url,
            Ok(Ok(None)) => {}
            Ok(Err(err)) => tracing::warn!(
                entry = %entry.id,
                "no presigned download URL: {}",
                crate::error::chain(&err)
            ),
            Err(err) => tracing::warn!(entry = %entry.id, "no presigned download URL: {err:?}"),
        }
    }
    uploads::download_url(&server.inner, headers, &entry.id)
}

async fn download_url(
    server: &Server,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let principal = principal(server, headers)?;
    let request: DownloadRequest = parse(headers, body)?;
    log::note(&principal.repository, &request.key);
    let mut keys = vec![request.key.clone()];
    keys.extend(request.restore_keys.iter().cloned());
    let inner = server.inner.clone();
    let who = principal.clone();
    let version = request.version.clone();
    let found = blocking(move || uploads::lookup(&inner, &who, &keys, &version)).await?;
    let body = match found {
        Some(entry) => json!({
            "ok": true,
            "signed_download_url": download_location(server, headers, &entry).await,
            "matched_key": entry.key,
        }),
        None => json!({"ok": false, "signed_download_url": "", "matched_key": ""}),
    };
    Ok(Json(body).into_response())
}

/// What `POST /_runner/v1/report-broken` takes: the entry a restore could not use.
#[derive(Debug, Deserialize)]
struct ReportRequest {
    #[serde(default)]
    key: String,
    #[serde(default)]
    version: String,
}

/// How long after checking an entry's blob a report of it is not checked again: a check reads
/// the whole blob, so reports must not be a way to keep the server busy.
const RECHECK_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// `POST /_runner/v1/report-broken` (ours, not GitHub's; `runner exec --cache-server` sends
/// it): a client could not restore the entry `key` and `version` name in its readable scopes.
/// The server checks the blob itself and marks the entry broken only if the bytes are gone or
/// damaged, so the next save of the key replaces it instead of meeting "another job may be
/// creating this cache" until the entry is evicted. Answers `{"checked", "broken"}`; 404 when
/// no such entry is readable.
pub async fn report_broken(
    State(server): State<Server>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let body = uploads::json_body(body).await?;
        let principal = principal(&server, &headers)?;
        let request: ReportRequest = parse(&headers, &body)?;
        log::note(&principal.repository, &request.key);
        uploads::check_key(&request.key)?;
        uploads::check_version(&request.version)?;
        let inner = server.inner.clone();
        let scope = principal.read_scope();
        blocking(move || {
            let seen = format!("{}\0{}\0{}", scope.repository, request.key, request.version);
            {
                let mut checked = inner
                    .reports
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let now = std::time::Instant::now();
                checked.retain(|_, at| now.duration_since(*at) < RECHECK_AFTER);
                if checked.contains_key(&seen) {
                    return Ok(json!({"checked": false, "broken": false}));
                }
                checked.insert(seen, now);
            }
            // Not in the index's turn: the check reads the whole blob, and its one write is
            // rare enough to take its chance with SQLite's busy handler.
            let broken = inner
                .cache
                .check_reported_entry(
                    &scope,
                    &request.key,
                    &request.version,
                    &mut uploads::cache_log,
                )
                .map_err(|err| ApiError::internal(&err))?
                .ok_or_else(|| {
                    ApiError::not_found(format!("no entry {} readable by this job", request.key))
                })?;
            Ok(json!({"checked": true, "broken": broken}))
        })
        .await
    };
    match result.await {
        Ok(body) => Json(body).into_response(),
        Err(err) => err.in_dialect(Dialect::Twirp).into_response(),
    }
}
