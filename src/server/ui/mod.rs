//! The web UI under `/ui`: what is in the cache, whether it works, and cleaning it. Readable by
//! anyone who can reach the server and without JavaScript; deleting needs an admin token (see
//! [`session`]) and goes through a confirmation page whose form carries a CSRF token. Pages are
//! rendered on the server (`pages`, charts as SVG in `chart`); the stylesheet and icon are
//! embedded in the binary. Every index call is bounded (a page, a top-N, a window).

mod chart;
mod html;
mod pages;
pub mod session;

use axum::Form;
use axum::Router;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::error::error_chain;
use super::{Inner, Server};
use crate::cache::CacheError;
use crate::store::index::{Deletion, Entry, IndexError, ListFilter, ListSort, RepoUsage};
use html::Chrome;
use pages::{Activity, Doomed, EntryQuery, PAGE_SIZE};
pub use session::UiKeys;
use session::Viewer;

/// Days of history the charts show.
const CHART_DAYS: i64 = 14;
/// Rows of each top list and of recent evictions.
const TOP: usize = 8;
/// How far back an entry's page looks for the restores that used it.
const MATCH_DAYS: i64 = 30;

const STYLE: &str = include_str!("style.css");
const ICON: &str = include_str!("icon.svg");

/// Why a page could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// The index could not be read or written.
    #[error("reading the cache index")]
    Index {
        /// The cause.
        #[source]
        source: IndexError,
    },
    /// Deleting an entry failed.
    #[error("deleting cache entry {id}")]
    Delete {
        /// The entry.
        id: String,
        /// The cause (boxed: the error travels through every page's result).
        #[source]
        source: Box<CacheError>,
    },
    /// The analysis could not be computed.
    #[error("analyzing the cache")]
    Analyze {
        /// The cause.
        #[source]
        source: crate::cache::analyze::AnalyzeError,
    },
    /// No such repository entry.
    #[error("no cache entry {id} in {repository}")]
    NotFound {
        /// The repository asked for.
        repository: String,
        /// The entry id asked for.
        id: String,
    },
    /// The viewer may not delete here.
    #[error("deleting entries of {repository} needs an admin token with write access to it")]
    Forbidden {
        /// The repository.
        repository: String,
    },
    /// A form without our CSRF token.
    #[error("the form is stale or came from another site: reload the page and try again")]
    Csrf,
    /// A query string or form we do not understand.
    #[error("bad request: {reason}")]
    BadRequest {
        /// What is wrong.
        reason: String,
    },
    /// The worker thread died.
    #[error("the request's worker thread failed")]
    Worker,
}

impl From<IndexError> for UiError {
    fn from(source: IndexError) -> Self {
        UiError::Index { source }
    }
}

impl UiError {
    fn status(&self) -> StatusCode {
        match self {
            UiError::NotFound { .. } => StatusCode::NOT_FOUND,
            UiError::Forbidden { .. } | UiError::Csrf => StatusCode::FORBIDDEN,
            UiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            UiError::Index { .. }
            | UiError::Analyze { .. }
            | UiError::Delete { .. }
            | UiError::Worker => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The UI's routes (merged into the server's router).
pub(super) fn routes() -> Router<Server> {
    Router::new()
        .route("/ui", get(overview))
        .route("/ui/", get(overview))
        .route("/ui/assets/style.css", get(|| asset(STYLE, "text/css")))
        .route("/ui/assets/icon.svg", get(|| asset(ICON, "image/svg+xml")))
        .route("/ui/sign-in", get(sign_in_form).post(sign_in))
        .route("/ui/sign-out", axum::routing::post(sign_out))
        .route("/ui/r/{owner}/{name}", get(repository))
        .route("/ui/r/{owner}/{name}/e/{id}", get(entry))
        .route("/ui/r/{owner}/{name}/analysis", get(analysis))
        .route(
            "/ui/r/{owner}/{name}/delete",
            get(confirm_delete).post(delete),
        )
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// A rendered page with headers that keep it out of frames and shared caches.
fn html_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The request as the page frame needs it.
struct Request {
    viewer: Viewer,
    chrome: Chrome,
}

fn request(server: &Server, headers: &HeaderMap, here: String) -> Request {
    let now_secs = server.inner.clock.now_millis() / 1000;
    let viewer = session::viewer(&server.inner.keys, headers, now_secs);
    let chrome = Chrome {
        signed_in: viewer.token.is_some(),
        can_write: viewer.can_write(),
        csrf: server.inner.ui.csrf(viewer.session()),
        here,
    };
    Request { viewer, chrome }
}

fn fail(err: &UiError, chrome: &Chrome) -> Response {
    let title = match err.status() {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::BAD_REQUEST => "Bad request",
        _ => "Something went wrong",
    };
    if err.status().is_server_error() {
        tracing::warn!(error = %error_chain(err), "ui");
    }
    html_response(
        err.status(),
        pages::failure(title, &error_chain(err), chrome),
    )
}

/// Runs index calls off the async threads, in turn with the others on SQLite.
async fn read<T: Send + 'static>(
    server: &Server,
    f: impl FnOnce(&Inner) -> Result<T, UiError> + Send + 'static,
) -> Result<T, UiError> {
    let inner = server.inner.clone();
    tokio::task::spawn_blocking(move || inner.with_index(|| f(&inner)))
        .await
        .map_err(|_| UiError::Worker)?
}

/// The activity sections of `repos` (one repository's page, or the overview's every one).
fn activity(
    inner: &Inner,
    repository: Option<&str>,
    repos: &[RepoUsage],
) -> Result<Activity, UiError> {
    let index = inner.cache.index();
    let since = inner.clock.now_millis() - (CHART_DAYS - 1) * crate::store::index::DAY_MILLIS;
    // The largest of each repository, merged: each costs a few index rows, where one ranking
    // over all repositories would sort every entry.
    let mut top_size = Vec::new();
    for r in repos {
        top_size.extend(index.largest_entries(&r.repository, TOP)?);
    }
    top_size.sort_by(|a, b| b.size_bytes.cmp(&a.size_bytes).then(b.id.cmp(&a.id)));
    top_size.truncate(TOP);
    Ok(Activity {
        days: index.daily_activity(repository, since)?,
        top_restores: index.top_restored(repository, since, TOP)?,
        top_size,
        evictions: index.recent_evictions(repository, TOP)?,
        audit: index.audit_log(repository, TOP)?,
    })
}

fn budget(inner: &Inner) -> u64 {
    inner.cache.options().eviction.max_size_bytes
}

async fn overview(State(server): State<Server>, headers: HeaderMap) -> Response {
    let req = request(&server, &headers, "/ui".to_string());
    let data = read(&server, |inner| {
        let repos = inner.cache.index().usage(None)?;
        Ok(pages::Overview {
            activity: activity(inner, None, &repos)?,
            repos,
            budget: budget(inner),
            now: inner.clock.now_millis(),
        })
    })
    .await;
    match data {
        Ok(o) => html_response(StatusCode::OK, pages::overview(&o, &req.chrome)),
        Err(err) => fail(&err, &req.chrome),
    }
}

#[derive(Debug, Default, Deserialize)]
struct ListParams {
    #[serde(default)]
    key: String,
    #[serde(default, rename = "ref")]
    git_ref: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    page: String,
    #[serde(default)]
    deleted: String,
}

fn bad(reason: impl Into<String>) -> UiError {
    UiError::BadRequest {
        reason: reason.into(),
    }
}

fn parse_list(p: &ListParams) -> Result<(EntryQuery, Option<u64>), UiError> {
    let sort = match p.sort.as_str() {
        "" => ListSort::Created,
        s => EntryQuery::parse_sort(s).ok_or_else(|| {
            bad(format!(
                "sort must be created, last-used or size, not {s:?}"
            ))
        })?,
    };
    let page = match p.page.as_str() {
        "" => 1,
        s => s
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| bad(format!("page must be a number from 1, not {s:?}")))?,
    };
    let query = EntryQuery {
        key: p.key.trim().to_string(),
        git_ref: p.git_ref.trim().to_string(),
        sort,
        page,
    };
    Ok((query, p.deleted.parse().ok()))
}

fn here(path: &str, raw_query: Option<&str>) -> String {
    match raw_query {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

fn list_filter(repo: &str, key: &str, git_ref: &str) -> ListFilter {
    ListFilter {
        repository: Some(repo.to_string()),
        key_prefix: Some(key.to_string()).filter(|k| !k.is_empty()),
        scope: Some(git_ref.to_string()).filter(|r| !r.is_empty()),
        ..ListFilter::default()
    }
}

fn usage_of(inner: &Inner, repo: &str) -> Result<RepoUsage, UiError> {
    let found = inner.cache.index().usage(Some(repo))?.into_iter().next();
    Ok(found.unwrap_or(RepoUsage {
        repository: repo.to_string(),
        entries: 0,
        size_bytes: 0,
    }))
}

/// How many days of events the analysis page judges (as `runner cache analyze --since 7d`).
const ANALYSIS_DAYS: i64 = 7;

/// `runner cache analyze` for one repository, as a page: hit rates per key prefix and per
/// restore level, and each finding with its recommendation.
async fn analysis(
    State(server): State<Server>,
    Path((owner, name)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let req = request(&server, &headers, here(uri.path(), uri.query()));
    let repo = format!("{owner}/{name}");
    let data = read(&server, move |inner| {
        let options = crate::cache::analyze::AnalyzeOptions {
            repository: Some(repo),
            since: inner.clock.now_millis() - ANALYSIS_DAYS * crate::store::index::DAY_MILLIS,
            budget_bytes: budget(inner),
            ..Default::default()
        };
        crate::cache::analyze::analyze(inner.cache.store(), &options)
            .map_err(|source| UiError::Analyze { source })
    })
    .await;
    match data {
        Ok(report) => html_response(
            StatusCode::OK,
            pages::analysis(&report, ANALYSIS_DAYS, &req.chrome),
        ),
        Err(err) => fail(&err, &req.chrome),
    }
}

async fn repository(
    State(server): State<Server>,
    Path((owner, name)): Path<(String, String)>,
    params: Result<Query<ListParams>, QueryRejection>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let req = request(&server, &headers, here(uri.path(), uri.query()));
    let repo = format!("{owner}/{name}");
    let parsed = params
        .map_err(|e| bad(e.body_text()))
        .and_then(|Query(p)| parse_list(&p));
    let (query, deleted) = match parsed {
        Ok(p) => p,
        Err(err) => return fail(&err, &req.chrome),
    };
    let data = read(&server, move |inner| {
        let mut filter = list_filter(&repo, &query.key, &query.git_ref);
        filter.sort = query.sort;
        let offset = (query.page - 1).saturating_mul(PAGE_SIZE as u64);
        let usage = usage_of(inner, &repo)?;
        Ok(pages::RepoView {
            activity: activity(inner, Some(&repo), std::slice::from_ref(&usage))?,
            usage,
            budget: budget(inner),
            page: inner
                .cache
                .index()
                .list_page(&filter, false, offset, PAGE_SIZE as u64)?,
            deleted,
            now: inner.clock.now_millis(),
            query,
            repo,
        })
    })
    .await;
    match data {
        Ok(v) => html_response(StatusCode::OK, pages::repository(&v, &req.chrome)),
        Err(err) => fail(&err, &req.chrome),
    }
}

fn entry_in(inner: &Inner, repo: &str, id: &str) -> Result<Entry, UiError> {
    inner
        .cache
        .index()
        .get(id)?
        .filter(|e| e.repository == repo && e.state == crate::store::index::EntryState::Committed)
        .ok_or_else(|| UiError::NotFound {
            repository: repo.to_string(),
            id: id.to_string(),
        })
}

async fn entry(
    State(server): State<Server>,
    Path((owner, name, id)): Path<(String, String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let req = request(&server, &headers, uri.path().to_string());
    let repo = format!("{owner}/{name}");
    let data = read(&server, move |inner| {
        let e = entry_in(inner, &repo, &id)?;
        let now = inner.clock.now_millis();
        let since = now - MATCH_DAYS * crate::store::index::DAY_MILLIS;
        let matches = inner.cache.index().entry_matches(&e, since)?;
        Ok((e, matches, now))
    })
    .await;
    match data {
        Ok((e, matches, now)) => {
            html_response(StatusCode::OK, pages::entry(&e, &matches, now, &req.chrome))
        }
        Err(err) => fail(&err, &req.chrome),
    }
}

/// What a delete form or confirmation link names.
#[derive(Debug, Default, Deserialize)]
struct DeleteParams {
    #[serde(default)]
    id: String,
    #[serde(default)]
    prefix: String,
    #[serde(default, rename = "ref")]
    git_ref: String,
    #[serde(default)]
    all: String,
    #[serde(default)]
    csrf: String,
}

impl DeleteParams {
    /// What was asked, for the audit log.
    fn describe(&self) -> String {
        match (self.id.is_empty(), self.prefix.trim().is_empty()) {
            (false, _) => format!("id={}", self.id),
            (true, false) => format!("prefix={} ref={}", self.prefix.trim(), self.git_ref.trim()),
            (true, true) => "all".to_string(),
        }
    }
}

/// Resolves what the parameters delete, and how many entries that is.
fn doomed(inner: &Inner, repo: &str, p: &DeleteParams) -> Result<(Doomed, u64), UiError> {
    let prefix = p.prefix.trim();
    let git_ref = p.git_ref.trim();
    let doomed = match (p.id.is_empty(), prefix.is_empty(), p.all == "1") {
        (false, true, false) => Doomed::Entry(Box::new(entry_in(inner, repo, &p.id)?)),
        (true, false, false) => Doomed::Prefix {
            prefix: prefix.to_string(),
            git_ref: git_ref.to_string(),
        },
        (true, true, true) => Doomed::All,
        _ => {
            return Err(bad(
                "name exactly one of: id (one entry), prefix (keys starting with it), all=1",
            ));
        }
    };
    let count = match &doomed {
        Doomed::Entry(_) => 1,
        Doomed::Prefix { prefix, git_ref } => {
            let filter = list_filter(repo, prefix, git_ref);
            inner.cache.index().list_page(&filter, false, 0, 0)?.total
        }
        Doomed::All => usage_of(inner, repo)?.entries,
    };
    Ok((doomed, count))
}

async fn confirm_delete(
    State(server): State<Server>,
    Path((owner, name)): Path<(String, String)>,
    params: Result<Query<DeleteParams>, QueryRejection>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let req = request(&server, &headers, here(uri.path(), uri.query()));
    let repo = format!("{owner}/{name}");
    if !req.viewer.can_delete(&repo) {
        return fail(&UiError::Forbidden { repository: repo }, &req.chrome);
    }
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return fail(&bad(e.body_text()), &req.chrome),
    };
    let for_page = repo.clone();
    match read(&server, move |inner| doomed(inner, &repo, &p)).await {
        Ok((doomed, count)) => html_response(
            StatusCode::OK,
            pages::confirm(&for_page, &doomed, count, &req.chrome),
        ),
        Err(err) => fail(&err, &req.chrome),
    }
}

async fn delete(
    State(server): State<Server>,
    Path((owner, name)): Path<(String, String)>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    form: Result<Form<DeleteParams>, FormRejection>,
) -> Response {
    let req = request(&server, &headers, "/ui".to_string());
    let repo = format!("{owner}/{name}");
    if !req.viewer.can_delete(&repo) {
        return fail(&UiError::Forbidden { repository: repo }, &req.chrome);
    }
    let Form(p) = match form {
        Ok(f) => f,
        Err(e) => return fail(&bad(e.body_text()), &req.chrome),
    };
    if !req.viewer.by_header && !server.inner.ui.csrf_ok(req.viewer.session(), &p.csrf) {
        return fail(&UiError::Csrf, &req.chrome);
    }
    let target = repo.clone();
    let by = Deletion {
        actor: req
            .viewer
            .grant
            .as_ref()
            .map(|g| g.who.clone())
            .unwrap_or_default(),
        request: format!("POST {} (web UI) {}", uri.path(), p.describe()),
    };
    let deleted = read(&server, move |inner| {
        let ids: Vec<String> = match doomed(inner, &target, &p)?.0 {
            Doomed::Entry(e) => vec![e.id],
            Doomed::Prefix { prefix, git_ref } => inner
                .cache
                .index()
                .list(&list_filter(&target, &prefix, &git_ref))?
                .into_iter()
                .map(|e| e.id)
                .collect(),
            Doomed::All => inner
                .cache
                .index()
                .list(&list_filter(&target, "", ""))?
                .into_iter()
                .map(|e| e.id)
                .collect(),
        };
        let mut n = 0u64;
        for id in ids {
            match inner.cache.delete_audited(&id, &by) {
                Ok(Some(_)) => n += 1,
                // Gone meanwhile (evicted, or another admin was quicker).
                Ok(None) => {}
                Err(source) => {
                    return Err(UiError::Delete {
                        id,
                        source: Box::new(source),
                    });
                }
            }
        }
        Ok(n)
    })
    .await;
    match deleted {
        Ok(n) => {
            tracing::info!(repo = %repo, entries = n, "ui: deleted cache entries");
            let location = format!("{}?deleted={n}", pages::repo_href(&repo));
            redirect(&location, None)
        }
        Err(err) => fail(&err, &req.chrome),
    }
}

/// 303 to `location`, optionally setting the session cookie.
fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, v);
    }
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Debug, Default, Deserialize)]
struct SignInParams {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: String,
    #[serde(default)]
    csrf: String,
}

/// Where to go after signing in: a UI path of ours, never another site.
fn safe_next(next: &str) -> &str {
    let ours = next.starts_with("/ui") && !next.starts_with("//") && !next.contains('\\');
    if ours { next } else { "/ui" }
}

async fn sign_in_form(
    State(server): State<Server>,
    params: Query<SignInParams>,
    headers: HeaderMap,
) -> Response {
    let mut req = request(&server, &headers, "/ui".to_string());
    // Signing in starts a session: its form is bound to no session.
    req.chrome.csrf = server.inner.ui.csrf("");
    html_response(
        StatusCode::OK,
        pages::sign_in(safe_next(&params.next), None, &req.chrome),
    )
}

fn session_cookie(server: &Server, value: &str, max_age: i64) -> String {
    let secure = server
        .inner
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"));
    format!(
        "{}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        session::COOKIE_NAME,
        if secure { "; Secure" } else { "" }
    )
}

async fn sign_in(
    State(server): State<Server>,
    headers: HeaderMap,
    form: Result<Form<SignInParams>, FormRejection>,
) -> Response {
    let mut req = request(&server, &headers, "/ui".to_string());
    req.chrome.csrf = server.inner.ui.csrf("");
    let Form(p) = match form {
        Ok(f) => f,
        Err(e) => return fail(&bad(e.body_text()), &req.chrome),
    };
    if !server.inner.ui.csrf_ok("", &p.csrf) {
        return fail(&UiError::Csrf, &req.chrome);
    }
    let token = p.token.trim();
    let next = safe_next(&p.next);
    // A cookie value cannot hold these; no token we mint contains them.
    let cookie_safe = !token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',' && b != b'"');
    let now_secs = server.inner.clock.now_millis() / 1000;
    let checked = if cookie_safe {
        match server.inner.keys.verify_admin(token, now_secs) {
            Ok(_) => Ok(()),
            Err(err) => Err(err.to_string()),
        }
    } else {
        Err("that is not a token".to_string())
    };
    match checked {
        Ok(()) => redirect(next, Some(session_cookie(&server, token, 8 * 3600))),
        Err(reason) => html_response(
            StatusCode::UNAUTHORIZED,
            pages::sign_in(
                next,
                Some(&format!("Not signed in: {reason}.")),
                &req.chrome,
            ),
        ),
    }
}

async fn sign_out(
    State(server): State<Server>,
    headers: HeaderMap,
    form: Result<Form<SignInParams>, FormRejection>,
) -> Response {
    let req = request(&server, &headers, "/ui".to_string());
    let csrf = form.map(|Form(p)| p.csrf).unwrap_or_default();
    if !server.inner.ui.csrf_ok(req.viewer.session(), &csrf) {
        return fail(&UiError::Csrf, &req.chrome);
    }
    redirect("/ui", Some(session_cookie(&server, "", 0)))
}
