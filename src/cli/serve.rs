//! `runner serve`: GitHub's cache protocols (v1 REST, v2 Twirp + Azure-style blobs) over the
//! store `--cache-dir` / `--cache-db` (`RUNNER_CACHE_DIR` / `RUNNER_CACHE_DB`) select, as
//! `runner cache` uses.

use std::sync::Arc;

use anyhow::Context as _;
use runner::clock::{Clock, SystemClock};
use runner::server::{self, AuthMode, Server, ServerConfig};
use runner::store::index::parse_size;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use super::EXIT_OK;
use super::token::SecretArgs;

/// Log line formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Arguments of `runner serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The address to listen on.
    #[arg(long, env = "RUNNER_SERVE_LISTEN", default_value = server::DEFAULT_LISTEN)]
    listen: String,
    #[command(flatten)]
    secret: SecretArgs,
    #[command(flatten)]
    store: super::StoreArgs,
    /// Accept requests without verifying tokens (local experiments only).
    #[arg(long)]
    insecure_no_auth: bool,
    /// The base URL clients reach this server at, for signed upload/download URLs (default:
    /// the request's Host).
    #[arg(long, env = "RUNNER_SERVE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Largest entry accepted (`10G`, `500M`, bytes).
    #[arg(long, default_value = "10G", value_parser = parse_size)]
    max_entry_size: u64,
    /// Largest upload request body.
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    max_body_size: u64,
    /// Upload requests receiving bytes at once; more get 429.
    #[arg(long, default_value_t = server::DEFAULT_MAX_CONCURRENT_UPLOADS)]
    max_concurrent_uploads: usize,
    /// Lifetime of signed URLs and of uploads never finalized (`1h`, `30m`).
    #[arg(long, default_value = "1h", value_parser = server::parse_duration_secs)]
    url_ttl: i64,
    /// Hand clients presigned S3 GET URLs for downloads when the blobs are in S3
    /// (`RUNNER_CACHE_BLOBS=s3://…`), so archive bytes skip this server. Uploads still come
    /// here (the server hashes them).
    #[arg(long, env = "RUNNER_SERVE_DIRECT_DOWNLOADS")]
    direct_downloads: bool,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Which events are logged: a level (`info`, `debug`), or `target=level` pairs separated by
    /// commas (`info,runner::server=debug`).
    #[arg(long, env = "RUST_LOG", default_value = DEFAULT_LOG, value_parser = parse_log_filter)]
    log: Targets,
}

/// The events logged when `--log` / `RUST_LOG` is unset or empty.
const DEFAULT_LOG: &str = "info";

/// A `--log` / `RUST_LOG` filter, refused at startup when it does not parse rather than
/// silently logging nothing.
fn parse_log_filter(text: &str) -> Result<Targets, String> {
    // An empty `RUST_LOG=` is unset, as every variable here; parsed, it would log nothing.
    let text = if text.trim().is_empty() {
        DEFAULT_LOG
    } else {
        text
    };
    text.parse::<Targets>().map_err(|err| {
        format!(
            "{err} (a level, or target=level pairs separated by commas: info,runner::server=debug)"
        )
    })
}

fn init_logs(format: LogFormat, filter: Targets) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false);
    // A second initialisation (tests calling run twice) keeps the first.
    let _ = match format {
        LogFormat::Text => builder.finish().with(filter).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .finish()
            .with(filter)
            .try_init(),
    };
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(args: ServeArgs) -> anyhow::Result<u8> {
    init_logs(args.log_format, args.log.clone());
    let auth = match (args.secret.secret()?, args.insecure_no_auth) {
        (Some(secret), _) => AuthMode::Secret(secret),
        (None, true) => {
            tracing::warn!(
                "INSECURE: --insecure-no-auth is set; every request is accepted without a token check. Do not expose this server."
            );
            AuthMode::Insecure
        }
        (None, false) => anyhow::bail!(
            "no token secret: set RUNNER_SERVE_TOKEN_SECRET or --token-secret-file (or --insecure-no-auth for local experiments)"
        ),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let location = args.store.location()?;
    let dir = location.dir.clone();
    let cache = args.store.open()?;
    let mut config = ServerConfig::new(auth, dir.join("staging-v1"));
    config.blobs_url = location.blobs_url;
    config.public_url = args.public_url;
    config.max_entry_size = args.max_entry_size;
    config.max_body_size = args.max_body_size;
    config.max_concurrent_uploads = args.max_concurrent_uploads;
    config.url_ttl_secs = args.url_ttl;
    config.direct_downloads = args.direct_downloads;
    let cache = Arc::new(cache);
    let server = Server::new(Arc::clone(&cache), config, clock).context("starting the server")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        tracing::info!(store = %dir.display(), "listening on http://{addr}");
        server::serve(listener, server, shutdown_signal())
            .await
            .context("serving")
    });
    // A store call still running on a blocking thread is left to the OS: exit within 10 s.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    // The lookups answered before the signal are recorded before the process ends.
    cache.index();
    served?;
    tracing::info!("stopped");
    Ok(EXIT_OK)
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
}
