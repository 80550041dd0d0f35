//! GitHub's REST caches API (`/repos/{owner}/{repo}/actions/caches…`, `…/actions/cache/usage`)
//! over the store, in GitHub's JSON shapes and `Link` pagination, so Octokit's
//! `actions.getActionsCacheList` / `deleteActionsCacheByKey` and `gh api` work unchanged.
//! Admin tokens (`runner token --admin`) authorize it; every deletion is audited by the store.

use std::collections::HashMap;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth::{self, AdminGrant, AuthError};
use super::error::{ApiError, Dialect};
use super::uploads::{self, blocking};
use super::{Inner, Server, log};
use crate::store::index::{Deletion, Entry, ListFilter, ListSort};

/// GitHub's default page size.
const DEFAULT_PER_PAGE: usize = 30;
/// GitHub's largest page size.
const MAX_PER_PAGE: usize = 100;

/// The REST routes, merged into the server's router.
pub fn routes() -> Router<Server> {
    Router::new()
        .route(
            "/repos/{owner}/{repo}/actions/caches",
            get(list).delete(delete_by_key),
        )
        .route(
            "/repos/{owner}/{repo}/actions/caches/{cache_id}",
            delete(delete_by_id),
        )
        .route("/repos/{owner}/{repo}/actions/cache/usage", get(usage))
}

fn rest(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|err| err.in_dialect(Dialect::Rest).into_response())
}

/// The admin grant of a request, checked against `repo` and, with `write`, delete permission:
/// 401 without a valid admin token, 403 when it does not cover the request.
pub(super) fn authorize(
    inner: &Inner,
    headers: &HeaderMap,
    repo: &str,
    write: bool,
) -> Result<AdminGrant, ApiError> {
    let now = inner.clock.now_millis().div_euclid(1000);
    let grant = auth::admin_from_headers(&inner.keys, headers, now).map_err(|err| match err {
        AuthError::MissingAdmin => {
            ApiError::unauthenticated(format!("Requires authentication: {err}"))
        }
        other => ApiError::unauthenticated(format!("Bad credentials: {other}")),
    })?;
    if !grant.repos.matches(repo) {
        return Err(ApiError::forbidden(format!(
            "this admin token does not manage {repo}"
        )));
    }
    if !grant.allows(repo, write) {
        return Err(ApiError::forbidden(
            "this admin token is read-only; deleting needs one made with `runner token --admin --write`",
        ));
    }
    Ok(grant)
}

/// The integer id GitHub's API gives a cache: the first 53 bits of the sha256 of our entry id,
/// so it survives a JavaScript `Number` (Octokit) and is stable across servers.
pub fn rest_id(entry_id: &str) -> u64 {
    let digest = Sha256::digest(entry_id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) >> 11
}

/// An entry in GitHub's `actions_caches[]` shape.
fn cache_json(entry: &Entry) -> Value {
    json!({
        "id": rest_id(&entry.id),
        "ref": entry.scope,
        "key": entry.key,
        "version": entry.version,
        "last_accessed_at": super::v1::creation_time(entry.last_accessed_at),
        "created_at": super::v1::creation_time(entry.created_at),
        "size_in_bytes": entry.size_bytes,
    })
}

fn cache_list_json(entries: &[Entry], total: usize) -> Value {
    json!({
        "total_count": total,
        "actions_caches": entries.iter().map(cache_json).collect::<Vec<_>>(),
    })
}

/// The list parameters, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListParams {
    key: Option<String>,
    git_ref: Option<String>,
    sort: ListSort,
    ascending: bool,
    per_page: usize,
    page: usize,
}

impl ListParams {
    fn parse(params: &HashMap<String, String>) -> Result<Self, ApiError> {
        let number = |name: &str, default: usize| -> Result<usize, ApiError> {
            match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| {
                    ApiError::invalid(format!("{name} must be a positive integer, not {v:?}"))
                }),
            }
        };
        let sort = match params.get("sort").map(String::as_str) {
            None | Some("") | Some("last_accessed_at") => ListSort::LastUsed,
            Some("created_at") => ListSort::Created,
            Some("size_in_bytes") => ListSort::Size,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "sort must be created_at, last_accessed_at or size_in_bytes, not {other:?}"
                )));
            }
        };
        let ascending = match params.get("direction").map(String::as_str) {
            None | Some("") | Some("desc") => false,
            Some("asc") => true,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "direction must be asc or desc, not {other:?}"
                )));
            }
        };
        let text = |name: &str| params.get(name).filter(|v| !v.is_empty()).cloned();
        Ok(Self {
            key: text("key"),
            git_ref: text("ref"),
            sort,
            ascending,
            // As GitHub does: a page size over the cap is the cap, page 0 is page 1.
            per_page: number("per_page", DEFAULT_PER_PAGE)?.clamp(1, MAX_PER_PAGE),
            page: number("page", 1)?.max(1),
        })
    }

    /// The query string of `page`, keeping the other parameters (for `Link`).
    fn query(&self, page: usize) -> String {
        let mut parts = Vec::new();
        for (name, value) in [("key", &self.key), ("ref", &self.git_ref)] {
            if let Some(value) = value {
                parts.push(format!("{name}={}", percent_encode(value)));
            }
        }
        let sort = match self.sort {
            ListSort::Created => "created_at",
            ListSort::LastUsed => "last_accessed_at",
            ListSort::Size => "size_in_bytes",
        };
        parts.push(format!("sort={sort}"));
        parts.push(format!(
            "direction={}",
            if self.ascending { "asc" } else { "desc" }
        ));
        parts.push(format!("per_page={}", self.per_page));
        parts.push(format!("page={page}"));
        parts.join("&")
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// GitHub's `Link` header: `first`/`prev` before this page, `next`/`last` after it.
fn link_header(base: &str, params: &ListParams, total: usize) -> Option<String> {
    let last = total.div_ceil(params.per_page).max(1);
    let mut links = Vec::new();
    let mut link = |page: usize, rel: &str| {
        links.push(format!("<{base}?{}>; rel=\"{rel}\"", params.query(page)));
    };
    if params.page > 1 {
        link(params.page - 1, "prev");
    }
    if params.page < last {
        link(params.page + 1, "next");
        link(last, "last");
    }
    if params.page > 1 {
        link(1, "first");
    }
    (!links.is_empty()).then(|| links.join(", "))
}

/// `owner/name` of the path, with what it names noted for the request log.
fn repository(owner: &str, repo: &str) -> String {
    let repository = format!("{owner}/{repo}");
    log::note(&repository, "");
    repository
}

/// `GET /repos/{owner}/{repo}/actions/caches`: a page of the repository's caches.
async fn list(
    State(server): State<Server>,
    Path((owner, repo)): Path<(String, String)>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    rest(
        async {
            let Query(params) = params.map_err(uploads::rejected)?;
            let repository = repository(&owner, &repo);
            authorize(&server.inner, &headers, &repository, false)?;
            let params = ListParams::parse(&params)?;
            let inner = server.inner.clone();
            let filter = ListFilter {
                key_prefix: params.key.clone(),
                scope: params.git_ref.clone(),
                repository: Some(repository),
                sort: params.sort,
                limit: None,
                include_reserved: false,
            };
            let (ascending, per_page) = (params.ascending, params.per_page as u64);
            let offset = (params.page as u64 - 1).saturating_mul(per_page);
            let page = blocking(move || {
                inner
                    .with_index(|| {
                        inner
                            .cache
                            .index()
                            .list_page(&filter, ascending, offset, per_page)
                    })
                    .map_err(|err| ApiError::internal(&err))
            })
            .await?;
            let total = usize::try_from(page.total).unwrap_or(usize::MAX);
            let body = cache_list_json(&page.entries, total);
            let mut response = axum::Json(body).into_response();
            let base = format!(
                "{}{}",
                uploads::base_url(&server.inner, &headers),
                uri.path()
            );
            if let Some(link) = link_header(&base, &params, total)
                && let Ok(value) = HeaderValue::from_str(&link)
            {
                response.headers_mut().insert(header::LINK, value);
            }
            Ok(response)
        }
        .await,
    )
}

/// What a deletion request says about itself in the audit log.
fn deletion(grant: AdminGrant, uri: &Uri) -> Deletion {
    Deletion {
        actor: grant.who,
        request: format!(
            "DELETE {}",
            uri.path_and_query().map_or(uri.path(), |p| p.as_str())
        ),
    }
}

/// Deletes each of `entries` (audited); the ones that were still there.
fn delete_all(inner: &Inner, entries: Vec<Entry>, by: &Deletion) -> Result<Vec<Entry>, ApiError> {
    let mut deleted = Vec::with_capacity(entries.len());
    for entry in entries {
        let gone = inner
            .with_index(|| inner.cache.delete_audited(&entry.id, by))
            .map_err(|err| ApiError::internal(&err))?;
        deleted.extend(gone);
    }
    Ok(deleted)
}

/// `DELETE /repos/{owner}/{repo}/actions/caches?key=&ref=`: every cache with that key (in that
/// ref); 200 with the deleted caches, 404 when none matched.
async fn delete_by_key(
    State(server): State<Server>,
    Path((owner, repo)): Path<(String, String)>,
    params: Result<Query<HashMap<String, String>>, QueryRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    rest(
        async {
            let Query(params) = params.map_err(uploads::rejected)?;
            let repository = repository(&owner, &repo);
            let grant = authorize(&server.inner, &headers, &repository, true)?;
            let key = params
                .get("key")
                .filter(|k| !k.is_empty())
                .cloned()
                .ok_or_else(|| ApiError::invalid("key is required"))?;
            log::note(&repository, &key);
            let git_ref = params.get("ref").filter(|r| !r.is_empty()).cloned();
            let by = deletion(grant, &uri);
            let inner = server.inner.clone();
            let deleted = blocking(move || {
                let found = inner
                    .with_index(|| {
                        inner
                            .cache
                            .index()
                            .find_by_key(Some(&repository), git_ref.as_deref(), &key)
                    })
                    .map_err(|err| ApiError::internal(&err))?;
                delete_all(&inner, found, &by)
            })
            .await?;
            if deleted.is_empty() {
                return Err(ApiError::not_found("Not Found: no cache with this key"));
            }
            Ok(axum::Json(cache_list_json(&deleted, deleted.len())).into_response())
        }
        .await,
    )
}

/// `DELETE /repos/{owner}/{repo}/actions/caches/{cache_id}`: one cache, by GitHub's integer
/// id (or our entry id); 204, or 404 when the repository has no such cache.
async fn delete_by_id(
    State(server): State<Server>,
    Path((owner, repo, cache_id)): Path<(String, String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    rest(
        async {
            let repository = repository(&owner, &repo);
            let grant = authorize(&server.inner, &headers, &repository, true)?;
            let by = deletion(grant, &uri);
            let inner = server.inner.clone();
            let deleted = blocking(move || {
                let index = inner.cache.index();
                let found: Vec<Entry> = match cache_id.parse::<u64>() {
                    Ok(number) => {
                        let filter = ListFilter {
                            repository: Some(repository),
                            ..ListFilter::default()
                        };
                        inner
                            .with_index(|| index.list(&filter))
                            .map_err(|err| ApiError::internal(&err))?
                            .into_iter()
                            .filter(|e| rest_id(&e.id) == number)
                            .collect()
                    }
                    Err(_) => inner
                        .with_index(|| index.get(&cache_id))
                        .map_err(|err| ApiError::internal(&err))?
                        .filter(|e| e.repository == repository)
                        .into_iter()
                        .collect(),
                };
                delete_all(&inner, found, &by)
            })
            .await?;
            if deleted.is_empty() {
                return Err(ApiError::not_found("Not Found: no cache with this id"));
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        .await,
    )
}

/// `GET /repos/{owner}/{repo}/actions/cache/usage`: the repository's committed caches.
async fn usage(
    State(server): State<Server>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    rest(
        async {
            let repository = repository(&owner, &repo);
            authorize(&server.inner, &headers, &repository, false)?;
            let inner = server.inner.clone();
            let name = repository.clone();
            let usage = blocking(move || {
                inner
                    .with_index(|| inner.cache.index().usage(Some(&name)))
                    .map_err(|err| ApiError::internal(&err))
            })
            .await?;
            let usage = usage.into_iter().next().unwrap_or_default();
            Ok(axum::Json(json!({
                "full_name": repository,
                "active_caches_size_in_bytes": usage.size_bytes,
                "active_caches_count": usage.entries,
            }))
            .into_response())
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Result<ListParams, ApiError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ListParams::parse(&map)
    }

    #[test]
    fn list_parameters_default_and_clamp_as_github_does() {
        let p = params(&[]).expect("defaults");
        assert_eq!(
            (p.sort, p.ascending, p.per_page, p.page),
            (ListSort::LastUsed, false, 30, 1)
        );
        let p = params(&[
            ("per_page", "500"),
            ("page", "0"),
            ("sort", "size_in_bytes"),
        ])
        .expect("clamped");
        assert_eq!((p.sort, p.per_page, p.page), (ListSort::Size, 100, 1));
        for bad in [("sort", "name"), ("direction", "up"), ("per_page", "-1")] {
            assert!(params(&[bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn links_name_the_neighbouring_pages() {
        let p = params(&[("per_page", "2"), ("page", "2"), ("key", "a b&c")]).expect("params");
        let link = link_header("http://h/x", &p, 5).expect("links");
        let rels: Vec<&str> = link.split(", ").collect();
        assert_eq!(rels.len(), 4, "{link}");
        assert!(rels[0].ends_with("page=1>; rel=\"prev\""), "{link}");
        assert!(rels[1].ends_with("page=3>; rel=\"next\""), "{link}");
        assert!(rels[2].ends_with("page=3>; rel=\"last\""), "{link}");
        assert!(link.contains("key=a%20b%26c"), "{link}");
        let one = params(&[]).expect("params");
        assert_eq!(link_header("http://h/x", &one, 3), None);
    }

    #[test]
    fn rest_ids_fit_a_javascript_number() {
        let id = rest_id("0190f0e2-7a1b-7c3d-8e4f-0123456789ab");
        assert!(id < (1 << 53));
        assert_ne!(id, rest_id("0190f0e2-7a1b-7c3d-8e4f-0123456789ac"));
    }
}
