//! v1: the `artifactcache` REST API under `/_apis/artifactcache/` (lookup, reserve, chunked
//! `PATCH` upload at `Content-Range` offsets, commit). Downloads use the signed blob URLs.

use std::collections::HashMap;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::Server;
use super::error::{ApiError, Dialect};
use super::log;
use super::staging::Part;
use super::uploads::{self, blocking};
use crate::cache::Scope;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReserveRequest {
    #[serde(default)]
    key: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    cache_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct CommitRequest {
    size: Option<u64>,
}

fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|err| ApiError::malformed(format!("the request is not valid JSON: {err}")))
}

fn v1(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|err| err.in_dialect(Dialect::V1).into_response())
}

/// `GET cache?keys=a,b&version=v`: 200 with the entry, 204 on a miss.
pub async fn lookup(
    State(server): State<Server>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    v1(async {
        let Query(params) = params.map_err(uploads::rejected)?;
        let principal = uploads::authenticate(&server.inner, &headers)?;
        let keys: Vec<String> = params
            .get("keys")
            .map(|k| k.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let version = params.get("version").cloned().unwrap_or_default();
        let primary = keys.first().cloned().unwrap_or_default();
        log::note(&principal.repository, &primary);
        let inner = server.inner.clone();
        let who = principal.clone();
        let found = blocking(move || uploads::lookup(&inner, &who, &keys, &version)).await?;
        let Some(entry) = found else {
            return Ok(StatusCode::NO_CONTENT.into_response());
        };
        let body = json!({
            "cacheKey": entry.key,
            "scope": entry.scope,
            "cacheVersion": entry.version,
            "creationTime": creation_time(entry.created_at),
            "archiveLocation": super::v2::download_location(&server, &headers, &entry).await,
        });
        Ok(Json(body).into_response())
    }
    .await)
}

/// RFC 3339 UTC from epoch milliseconds.
/// Epoch milliseconds as RFC 3339 UTC with milliseconds, as GitHub writes times.
pub(super) fn creation_time(millis: i64) -> String {
    let t = crate::clock::UtcTime::from_millis(millis);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millis
    )
}

/// `POST caches` `{key, version, cacheSize}`: `{cacheId}`; 409 when taken, 400 over the cap.
pub async fn reserve(State(server): State<Server>, headers: HeaderMap, body: Body) -> Response {
    v1(async {
        let principal = uploads::authenticate(&server.inner, &headers)?;
        let request: ReserveRequest = parse(&uploads::json_body(body).await?)?;
        log::note(&principal.repository, &request.key);
        uploads::check_key(&request.key)?;
        uploads::check_version(&request.version)?;
        let scope = uploads::write_scope(&principal)?;
        let inner = server.inner.clone();
        let cache_id = uploads::v1_cache_id();
        blocking(move || {
            uploads::create(
                &inner,
                &scope,
                &request.key,
                &request.version,
                request.cache_size,
                format!("v1-{cache_id}"),
            )
        })
        .await?;
        Ok((StatusCode::CREATED, Json(json!({"cacheId": cache_id}))).into_response())
    }
    .await)
}

/// The job's write scope and the upload id a `caches/{id}` route names.
fn upload_target(
    server: &Server,
    headers: &HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<(Scope, String), ApiError> {
    let principal = uploads::authenticate(&server.inner, headers)?;
    let Path(id) = id.map_err(uploads::rejected)?;
    let scope = uploads::write_scope(&principal)?;
    if id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::invalid(format!(
            "cache id {id:?} is not a number"
        )));
    }
    Ok((scope, format!("v1-{id}")))
}

/// `bytes START-END/*` (or `/TOTAL`), END inclusive.
fn parse_content_range(headers: &HeaderMap) -> Result<(u64, u64), ApiError> {
    let value = headers
        .get(header::CONTENT_RANGE)
        .ok_or_else(|| ApiError::invalid("Content-Range is required: bytes START-END/*"))?;
    let bad = || {
        ApiError::invalid(format!(
            "bad Content-Range {:?}: expected bytes START-END/*",
            value.to_str().unwrap_or("(not text)")
        ))
    };
    let text = value.to_str().map_err(|_| bad())?;
    let spec = text.trim().strip_prefix("bytes ").ok_or_else(bad)?;
    let (range, _total) = spec.split_once('/').ok_or_else(bad)?;
    let (start, end) = range.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end: u64 = end.trim().parse().map_err(|_| bad())?;
    if end < start {
        return Err(bad());
    }
    Ok((start, end))
}

/// `PATCH caches/{id}` with `Content-Range`: stores the chunk at its offset.
pub async fn upload_chunk(
    State(server): State<Server>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    v1(async {
        let (scope, id) = upload_target(&server, &headers, id)?;
        let (start, end) = parse_content_range(&headers)?;
        let inner = server.inner.clone();
        let meta = blocking(move || {
            let meta = uploads::find_own(&inner, &scope, &id)?;
            let limit = meta
                .declared_size
                .unwrap_or(inner.config.max_entry_size)
                .min(inner.config.max_entry_size);
            if end >= limit {
                return Err(ApiError::invalid(format!(
                    "chunk {start}-{end} ends beyond the entry's {limit} bytes"
                )));
            }
            let staged = uploads::staged_parts(&inner, &meta.id)?;
            for (part, _) in staged {
                if let Part::Range { start: s, end: e } = part
                    && (s, e) != (start, end)
                    && s <= end
                    && start <= e
                {
                    return Err(ApiError::invalid(format!(
                        "chunk {start}-{end} overlaps the chunk {s}-{e} already received"
                    )));
                }
            }
            Ok(meta)
        })
        .await?;
        log::note(&meta.repository, &meta.key);
        log::note_bytes(
            uploads::receive_part(
                server.inner.clone(),
                meta.id,
                Part::Range { start, end },
                body,
                Some(end - start + 1),
            )
            .await?,
        );
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await)
}

/// `POST caches/{id}` `{size}`: commits when the chunks cover exactly `0..size`.
pub async fn commit(
    State(server): State<Server>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    v1(async {
        let (scope, id) = upload_target(&server, &headers, id)?;
        let request: CommitRequest = parse(&uploads::json_body(body).await?)?;
        let size = request
            .size
            .ok_or_else(|| ApiError::invalid("size is required"))?;
        let inner = server.inner.clone();
        let entry = blocking(move || {
            let _turn = uploads::FinalizeTurn::take(&inner, &id)?;
            let meta = uploads::find_own(&inner, &scope, &id)?;
            let staged = uploads::staged_parts(&inner, &meta.id)?;
            let mut plan = Vec::new();
            let mut next = 0u64;
            for (part, _) in staged {
                let Part::Range { start, end } = part else {
                    continue;
                };
                if start != next {
                    return Err(ApiError::invalid(if start > next {
                        format!(
                            "bytes {next}-{} were never uploaded; nothing was committed",
                            start - 1
                        )
                    } else {
                        format!(
                            "chunk {start}-{end} overlaps an earlier chunk; nothing was committed"
                        )
                    }));
                }
                next = end + 1;
                plan.push(part);
            }
            uploads::finalize(&inner, &meta, &plan, size)
        })
        .await?;
        log::note(&entry.repository, &entry.key);
        log::note_bytes(entry.size_bytes);
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_time_is_rfc3339() {
        assert_eq!(creation_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(creation_time(1_709_251_200_123), "2024-03-01T00:00:00.123Z");
    }
}
