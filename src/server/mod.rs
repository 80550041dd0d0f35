//! `runner serve`: GitHub's cache protocols over our store, so the unmodified `@actions/cache`
//! client (and everything built on it) saves to and restores from the same store as
//! `runner exec`.
//!
//! CONTRACT (the CLI and, later, `runner exec`'s embedded server use these names):
//! - [`Server::new`] over a [`Cache`] and a [`ServerConfig`]; [`Server::router`] is the axum app;
//!   [`serve`] runs it on a listener until a shutdown future resolves, then aborts unfinished
//!   uploads; [`spawn`] does so on its own thread (for embedding and tests).
//! - Routes: `/_apis/artifactcache/…` (v1), `/twirp/github.actions.results.api.v1.CacheService/…`
//!   (v2), `/blobs/{uploads|entries}/{id}` (signed Azure-style blob URLs), `/healthz`,
//!   `/readyz`, `/metrics`, GitHub's REST caches API under `/repos/{owner}/{repo}/actions/`,
//!   the web UI under `/ui` ([`ui`]).
//! - [`auth::mint_token`] makes the `ACTIONS_RUNTIME_TOKEN` a job is given.
//!
//! Every cache decision (lookup order, scopes, immutability, eviction, events) is the
//! [`Cache`]'s; this module moves bytes, checks tokens and speaks HTTP.

mod assembly;
pub mod auth;
mod blob;
mod body;
mod error;
mod log;
pub mod metrics;
mod rest;
pub mod staging;
pub mod ui;
mod uploads;
mod v1;
mod v2;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use crate::cache::Cache;
use crate::clock::Clock;
use crate::store::index::Backend;
pub use auth::{
    AdminGrant, AdminTokenRequest, Keys, Principal, RepoMatch, TokenRequest, admin_from_headers,
    mint_token,
};
pub use error::{ApiError, Dialect};
use staging::{Staging, StagingError};

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default cap on one entry's size (10 GiB, GitHub's repository budget).
pub const DEFAULT_MAX_ENTRY_SIZE: u64 = 10 * 1024 * 1024 * 1024;
/// Default cap on one upload request's body (256 MiB: twice the Azure SDK's single-shot size).
pub const DEFAULT_MAX_BODY_SIZE: u64 = 256 * 1024 * 1024;
/// Default cap on upload requests receiving bytes at once (16 toolkit clients putting 8
/// blocks each).
pub const DEFAULT_MAX_CONCURRENT_UPLOADS: usize = 128;
/// Default lifetime of signed URLs and of an upload that is never finalized (1 hour).
pub const DEFAULT_URL_TTL_SECS: i64 = 60 * 60;
/// The largest JSON request body any method takes.
const MAX_JSON_BODY: usize = 1024 * 1024;
/// How long shutdown waits for requests in flight before aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The staging directory cannot be used.
    #[error("staging uploads")]
    Staging(#[from] StagingError),
    /// The maintenance lease could not be asked for.
    #[error("taking the maintenance lease")]
    Lease(#[from] crate::store::StoreError),
    /// Binding or serving failed.
    #[error("serving on {addr}")]
    Io {
        /// The address.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// How requests are authenticated.
#[derive(Clone)]
pub enum AuthMode {
    /// Verify `ACTIONS_RUNTIME_TOKEN` JWTs (HS256) with this secret; sign URLs with a key
    /// derived from it.
    Secret(Vec<u8>),
    /// Accept any request: a bearer token's claims are read unverified, and without one the
    /// job is [`AuthMode::INSECURE_REPOSITORY`] on `refs/heads/main`.
    Insecure,
}

impl AuthMode {
    /// The repository requests without a token act for in insecure mode.
    pub const INSECURE_REPOSITORY: &str = "local/local";
}

impl std::fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AuthMode::Secret(_) => "Secret(..)",
            AuthMode::Insecure => "Insecure",
        })
    }
}

/// Server settings (read at the CLI edge, passed down as values).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How requests are authenticated.
    pub auth: AuthMode,
    /// Where uploads are staged until finalized, when the blobs are this node's own.
    pub staging_dir: PathBuf,
    /// The shared blob store's URL (`s3://…`, `file:///…`): uploads are then staged next to
    /// the blobs, so every node serving them sees every part ([`staging::open`]).
    pub blobs_url: Option<String>,
    /// The base of signed URLs (`http://host:port`); `None` uses the request's `Host`.
    pub public_url: Option<String>,
    /// Cap on one entry's size.
    pub max_entry_size: u64,
    /// Cap on one upload request's body.
    pub max_body_size: u64,
    /// Cap on upload requests receiving bytes at once.
    pub max_concurrent_uploads: usize,
    /// Lifetime of signed URLs and unfinished uploads, seconds.
    pub url_ttl_secs: i64,
    /// How often abandoned uploads are looked for.
    pub cleanup_interval: Duration,
    /// Hand clients presigned object-store GET URLs for downloads (blobs in S3), so the bytes
    /// skip this server; a store that cannot presign gets this server's URLs.
    pub direct_downloads: bool,
}

impl ServerConfig {
    /// Defaults, staging in `staging_dir`.
    pub fn new(auth: AuthMode, staging_dir: PathBuf) -> Self {
        Self {
            auth,
            staging_dir,
            blobs_url: None,
            public_url: None,
            max_entry_size: DEFAULT_MAX_ENTRY_SIZE,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            max_concurrent_uploads: DEFAULT_MAX_CONCURRENT_UPLOADS,
            url_ttl_secs: DEFAULT_URL_TTL_SECS,
            cleanup_interval: Duration::from_secs(60),
            direct_downloads: false,
        }
    }
}

/// Shared by every request.
#[derive(Debug)]
struct Inner {
    cache: Arc<Cache>,
    staging: Arc<dyn Staging>,
    /// Whether other nodes see the staging (it lives next to shared blobs): their uploads are
    /// then theirs to finish, not this process's to abort when it stops.
    shared_staging: bool,
    config: ServerConfig,
    signer: auth::UrlSigner,
    /// Keys of the web UI's CSRF tokens.
    ui: ui::UiKeys,
    clock: Arc<dyn Clock>,
    upload_slots: Arc<tokio::sync::Semaphore>,
    /// Uploads being finalized now; a second finalize of one of them gets 409 instead of
    /// racing the first for its staged parts.
    finalizing: std::sync::Mutex<std::collections::HashSet<String>>,
    /// Uploads in parts being assembled while they arrive (staging only this node sees).
    assemblies: assembly::Assemblies,
    /// When each reported entry was last checked (repository, key, version), so a report is
    /// checked at most once a minute.
    reports: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
    /// Set over a SQLite index. SQLite takes one writer at a time and puts the others to sleep
    /// in its busy handler (1, 2, 5, 10 ms …): queueing this server's writing index calls here
    /// bounds their wait by the calls ahead of them, not by those sleeps. Lookups only read
    /// (their writes are deferred and batched) and take no turn.
    index_gate: Option<std::sync::Mutex<()>>,
    /// Admin token keys (REST API, UI).
    keys: auth::Keys,
    /// Request latency per route.
    http_metrics: metrics::HttpMetrics,
}

impl Inner {
    /// Runs `f`, an index call, in turn with the others when the index is SQLite.
    fn with_index<T>(&self, f: impl FnOnce() -> T) -> T {
        let _turn = self.index_gate.as_ref().map(|gate| {
            gate.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        });
        f()
    }
}

/// The server: state plus routes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Server {
    inner: Arc<Inner>,
}

impl Server {
    /// A server over `cache`. Uploads a dead server process left behind are aborted now, so
    /// their keys can be saved again at once.
    pub fn new(
        cache: Arc<Cache>,
        config: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ServerError> {
        let (staging, shared_staging) =
            staging::open(config.blobs_url.as_deref(), &config.staging_dir)?;
        // A lookup answers from one read; its writes go to a background writer, in batches.
        cache.defer_lookup_records();
        let secret = match &config.auth {
            AuthMode::Secret(secret) => secret.clone(),
            // URLs are still signed, with a key that lives as long as this process.
            AuthMode::Insecure => uuid::Uuid::new_v4().as_bytes().to_vec(),
        };
        let server = Self {
            inner: Arc::new(Inner {
                assemblies: assembly::Assemblies::new(!shared_staging),
                reports: Default::default(),
                staging,
                shared_staging,
                signer: auth::UrlSigner::new(&secret),
                ui: ui::UiKeys::new(&secret),
                upload_slots: Arc::new(tokio::sync::Semaphore::new(
                    config.max_concurrent_uploads.max(1),
                )),
                index_gate: (cache.index().backend() == Backend::Sqlite)
                    .then(|| std::sync::Mutex::new(())),
                keys: match &config.auth {
                    AuthMode::Secret(secret) => auth::Keys::new(secret),
                    AuthMode::Insecure => auth::Keys::insecure(),
                },
                http_metrics: metrics::HttpMetrics::default(),
                cache,
                config,
                clock,
                finalizing: Default::default(),
            }),
        };
        server.reclaim(uploads::owner_is_dead)?;
        Ok(server)
    }

    /// The axum application.
    pub fn router(&self) -> Router {
        let api = Router::new()
            .route("/_apis/artifactcache/cache", get(v1::lookup))
            .route("/_apis/artifactcache/caches", post(v1::reserve))
            .route(
                "/_apis/artifactcache/caches/{id}",
                post(v1::commit).patch(v1::upload_chunk),
            )
            .route(
                "/twirp/github.actions.results.api.v1.CacheService/{method}",
                post(v2::dispatch),
            )
            .route("/_runner/v1/report-broken", post(v2::report_broken));
        let blobs = Router::new().route(
            "/blobs/{container}/{blob}",
            get(blob::download).head(blob::download).put(blob::upload),
        );
        Router::new()
            .route("/healthz", get(|| async { "ok\n" }))
            .merge(api)
            .merge(blobs)
            .merge(rest::routes())
            .merge(metrics::routes())
            .merge(ui::routes())
            .fallback(log::not_found)
            .method_not_allowed_fallback(log::method_not_allowed)
            .layer(axum::middleware::from_fn(log::request_log))
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                metrics::track,
            ))
            .with_state(self.clone())
    }

    /// Aborts (reservation and staged bytes) every upload `select` picks; returns how many.
    fn reclaim(&self, select: impl Fn(&staging::UploadMeta) -> bool) -> Result<usize, ServerError> {
        let mut n = 0;
        for meta in self.inner.staging.list()? {
            if select(&meta) {
                uploads::discard(&self.inner, &meta);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Aborts uploads past their expiry (or whose server died); returns how many. On a shared
    /// index one node at a time does it, under the maintenance lease; the others skip a turn.
    pub fn expire_uploads(&self) -> Result<usize, ServerError> {
        let now = self.inner.clock.now_millis();
        let store = self.inner.cache.store();
        let expired = store.with_lease("expire uploads", || {
            self.reclaim(|meta| meta.expires_at <= now || uploads::owner_is_dead(meta))
        })?;
        expired.unwrap_or(Ok(0))
    }

    /// Aborts every upload this process started (at shutdown: nothing half-written stays).
    /// With shared staging, none: another node may be receiving their parts, and they expire
    /// on their own if nobody finishes them.
    pub fn abort_own_uploads(&self) -> Result<usize, ServerError> {
        if self.inner.shared_staging {
            return Ok(0);
        }
        let me = std::process::id();
        self.reclaim(|meta| meta.owner_pid == me)
    }
}

/// Serves `server` on `listener` until `shutdown` resolves; then stops accepting, lets
/// requests in flight finish for a few seconds, aborts the rest and every unfinished upload.
pub async fn serve(
    listener: tokio::net::TcpListener,
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = server.router();
    let mut task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await
    });
    let cleaner = {
        let server = server.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(server.inner.config.cleanup_interval);
            loop {
                tick.tick().await;
                let s = server.clone();
                match tokio::task::spawn_blocking(move || s.expire_uploads()).await {
                    Ok(Ok(0)) => {}
                    Ok(Ok(n)) => tracing::info!(uploads = n, "expired abandoned uploads"),
                    Ok(Err(err)) => {
                        tracing::warn!(error = %error::error_chain(&err), "expiring uploads")
                    }
                    Err(_) => {}
                }
            }
        })
    };
    let served = tokio::select! {
        result = &mut task => Some(result),
        () = shutdown => None,
    };
    let result = match served {
        Some(result) => result,
        None => {
            tracing::info!("shutting down: no new connections, finishing requests in flight");
            let _ = stop_tx.send(());
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("requests still running after the grace period; aborting them");
                    task.abort();
                    Ok(Ok(()))
                }
            }
        }
    };
    cleaner.abort();
    let s = server.clone();
    match tokio::task::spawn_blocking(move || s.abort_own_uploads()).await {
        Ok(Ok(0)) | Err(_) => {}
        Ok(Ok(n)) => tracing::info!(uploads = n, "aborted unfinished uploads"),
        Ok(Err(err)) => tracing::warn!(error = %error::error_chain(&err), "aborting uploads"),
    }
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(ServerError::Io { addr, source }),
        Err(_) => Ok(()),
    }
}

/// A server running on its own thread and runtime.
#[derive(Debug)]
pub struct RunningServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), ServerError>>>,
}

impl RunningServer {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts down gracefully and waits for the thread.
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop_and_join();
    }
}

/// Binds `addr` and serves `server` on a new thread with its own runtime.
pub fn spawn(server: Server, addr: &str) -> Result<RunningServer, ServerError> {
    let io = |source| ServerError::Io {
        addr: addr.to_string(),
        source,
    };
    let std_listener = std::net::TcpListener::bind(addr).map_err(io)?;
    std_listener.set_nonblocking(true).map_err(io)?;
    let local = std_listener.local_addr().map_err(io)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).map_err(|source| {
                ServerError::Io {
                    addr: local.to_string(),
                    source,
                }
            })?;
            serve(listener, server, async move {
                let _ = stop_rx.await;
            })
            .await
        })
    });
    Ok(RunningServer {
        addr: local,
        stop: Some(stop_tx),
        thread: Some(thread),
    })
}

/// Parses a duration such as `6h`, `30m`, `90s`, `2d` or plain seconds into seconds.
pub fn parse_duration_secs(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 30m, 6h or 2d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use s, m, h or d)"
            ));
        }
    };
    n.checked_mul(factor)
        .filter(|secs| *secs > 0)
        .ok_or_else(|| format!("{text:?} must be a positive duration"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let rows = [
            ("90", Ok(90)),
            ("90s", Ok(90)),
            ("30m", Ok(1800)),
            ("6h", Ok(21_600)),
            ("2d", Ok(172_800)),
        ];
        for (text, expected) in rows {
            assert_eq!(parse_duration_secs(text), expected, "{text}");
        }
        for bad in ["", "h", "6w", "0s", "-1h"] {
            assert!(parse_duration_secs(bad).is_err(), "{bad}");
        }
    }
}
