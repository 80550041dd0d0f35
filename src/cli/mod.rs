//! Argument parsing (clap derive), one file per verb, and exit codes.
//!
//! Every verb writes through one [`Printer`] (stdout data, stderr logs) and returns an exit code
//! or an error; [`main`] is the one place that renders an error's chain (each cause once) and
//! maps it to an exit code. The codes, documented once here and in the README's table: 0 ok,
//! 1 a job failed (or a checked result was false), 2 bad input or usage, 128 + the signal
//! number when interrupted (130 for Ctrl-C, 143 for SIGTERM).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use runner::store::StoreLocation;

mod analyze;
mod cache;
mod eval;
mod exec;
mod hash_files;
mod json;
mod printer;
mod runnerrc;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod token;

use printer::{ColorChoice, Printer};

/// Everything went well.
pub const EXIT_OK: u8 = 0;
/// A job (or the checked condition) failed.
pub const EXIT_FAILED: u8 = 1;
/// Bad input: an invalid workflow, expression, setting or command line.
pub const EXIT_USAGE: u8 = 2;

/// Run GitHub Actions workflows locally, with a native actions/cache.
#[derive(Debug, Parser)]
#[command(
    name = "runner",
    version,
    about,
    propagate_version = true,
    args_override_self = true
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every verb takes.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// When to colour output: `auto` colours a terminal unless NO_COLOR is set (CLICOLOR_FORCE
    /// colours one that is not a terminal).
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value = "auto",
        global = true
    )]
    pub color: ColorChoice,
    /// Only data, warnings and errors: no step log, no progress.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the jobs of a workflow file on this host.
    Exec(Box<exec::ExecArgs>),
    /// Evaluate one expression and print the result as JSON.
    Eval(eval::EvalArgs),
    /// Print hashFiles() of the given patterns.
    HashFiles(hash_files::HashFilesArgs),
    /// Inspect and manage the cache store.
    Cache(cache::CacheArgs),
    /// Serve GitHub's cache protocols (v1 and v2) over the store.
    #[cfg(feature = "server")]
    Serve(Box<serve::ServeArgs>),
    /// Print an ACTIONS_RUNTIME_TOKEN for `runner serve`.
    #[cfg(feature = "server")]
    Token(token::TokenArgs),
}

impl Command {
    /// True when the verb was asked for one JSON document on stdout.
    fn json(&self) -> bool {
        match self {
            Command::Exec(args) => args.json,
            Command::Cache(args) => args.json(),
            Command::Eval(_) | Command::HashFiles(_) => false,
            #[cfg(feature = "server")]
            Command::Serve(_) | Command::Token(_) => false,
        }
    }
}

/// Where the cache store is and how it behaves: the `RUNNER_CACHE_*` settings, read here (and
/// nowhere in the library) and passed down as values.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The store directory (default: $XDG_CACHE_HOME/runner, else ~/.cache/runner).
    #[arg(long, value_name = "DIR", env = "RUNNER_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
    /// The index, when not the directory's SQLite file: `postgres://…`.
    #[arg(
        long,
        value_name = "URL",
        env = "RUNNER_CACHE_DB",
        hide_env_values = true,
        global = true
    )]
    pub cache_db: Option<String>,
    /// The blobs, when not in the directory: `s3://bucket/prefix`, `file:///dir`.
    #[arg(long, value_name = "URL", env = "RUNNER_CACHE_BLOBS", global = true)]
    pub cache_blobs: Option<String>,
    /// Entries unused for this many days are evicted.
    #[arg(long, value_name = "DAYS", env = "RUNNER_CACHE_TTL_DAYS",
          default_value_t = runner::store::index::DEFAULT_TTL_DAYS, global = true)]
    pub cache_ttl_days: u32,
    /// Least-recently-used entries are evicted above this size per repository (`10G`, `500M`).
    #[arg(long, value_name = "SIZE", env = "RUNNER_CACHE_MAX_SIZE", default_value = "10G",
          value_parser = runner::store::index::parse_size, global = true)]
    pub cache_max_size: u64,
    /// The codec saves write (the cache version changes with it, as in @actions/cache).
    #[arg(
        long,
        value_enum,
        value_name = "CODEC",
        env = "RUNNER_CACHE_COMPRESSION",
        default_value = "zstd",
        ignore_case = true,
        global = true
    )]
    pub cache_compression: CompressionArg,
    /// The local tier in front of `s3://` blobs: `on` (the default for them) or `off`.
    #[arg(long, value_name = "on|off", env = "RUNNER_CACHE_TIER", global = true)]
    pub cache_tier: Option<String>,
    /// Where the local tier keeps its copies [default: <cache dir>/tier].
    #[arg(long, value_name = "DIR", env = "RUNNER_CACHE_TIER_DIR", global = true)]
    pub cache_tier_dir: Option<String>,
    /// The local tier's size bound (`10G`, `500M`, bytes) [default: 10G].
    #[arg(
        long,
        value_name = "SIZE",
        env = "RUNNER_CACHE_TIER_MAX_SIZE",
        global = true
    )]
    pub cache_tier_max_size: Option<String>,
    /// Days a blob unused stays in the local tier [default: 7].
    #[arg(
        long,
        value_name = "DAYS",
        env = "RUNNER_CACHE_TIER_TTL_DAYS",
        global = true
    )]
    pub cache_tier_ttl_days: Option<String>,
    /// When writes reach the remote: `through` (the default) or `background` (never on `runner
    /// serve` nodes).
    #[arg(
        long,
        value_name = "through|background",
        env = "RUNNER_CACHE_TIER_UPLOADS",
        global = true
    )]
    pub cache_tier_uploads: Option<String>,
}

/// `--cache-compression` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    /// zstd (level 3, as `zstd -T0`).
    Zstd,
    /// gzip.
    Gzip,
}

impl StoreArgs {
    /// The store's location: `--cache-dir` (or `RUNNER_CACHE_DIR`), else the default directory.
    pub fn location(&self) -> anyhow::Result<StoreLocation> {
        let nonempty = |s: &Option<String>| s.clone().filter(|v| !v.trim().is_empty());
        let dir = match self.cache_dir.clone().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => dir,
            None => runner::store::default_cache_dir()
                .context("no cache directory: set RUNNER_CACHE_DIR or --cache-dir")?,
        };
        // The local tier in front of remote blobs: RUNNER_CACHE_TIER* (docs: README, Settings).
        let tier = runner::store::blob::TierConfig::from_settings(&dir, |name| match name {
            "RUNNER_CACHE_TIER" => self.cache_tier.clone(),
            "RUNNER_CACHE_TIER_DIR" => self.cache_tier_dir.clone(),
            "RUNNER_CACHE_TIER_MAX_SIZE" => self.cache_tier_max_size.clone(),
            "RUNNER_CACHE_TIER_TTL_DAYS" => self.cache_tier_ttl_days.clone(),
            "RUNNER_CACHE_TIER_UPLOADS" => self.cache_tier_uploads.clone(),
            _ => None,
        })?;
        Ok(StoreLocation {
            dir,
            database_url: nonempty(&self.cache_db),
            blobs_url: nonempty(&self.cache_blobs),
            tier,
        })
    }

    /// The cache options these settings give, cancelled by `cancel`.
    pub fn options(&self, cancel: &runner::cancel::Cancel) -> runner::cache::CacheOptions {
        runner::cache::CacheOptions {
            compression: match self.cache_compression {
                CompressionArg::Zstd => runner::archive::Compression::Zstd,
                CompressionArg::Gzip => runner::archive::Compression::Gzip,
            },
            eviction: runner::store::index::EvictionPolicy {
                ttl_days: self.cache_ttl_days,
                max_size_bytes: self.cache_max_size,
                ..Default::default()
            },
            cancel: cancel.clone(),
            ..Default::default()
        }
    }

    /// Opens the cache store with the system clock.
    pub fn open(&self) -> anyhow::Result<runner::cache::Cache> {
        let clock: Arc<dyn runner::clock::Clock> = Arc::new(runner::clock::SystemClock);
        let location = self.location()?;
        runner::cache::open(
            &location,
            self.options(&runner::cancel::Cancel::default()),
            clock,
        )
        .with_context(|| format!("opening the cache store {}", location.dir.display()))
    }
}

/// Parses arguments (after the `.runnerrc` defaults), runs the verb, and renders an error once.
pub fn main() -> ExitCode {
    drop_empty_settings();
    let raw: Vec<OsString> = std::env::args_os().collect();
    let args = match runnerrc::with_defaults(raw.clone()) {
        Ok(args) => args,
        Err(err) => {
            let wants_json = raw.iter().any(|a| a == "--json");
            let mut printer = Printer::new(ColorChoice::Auto, false, wants_json);
            return ExitCode::from(fail(&mut printer, &err));
        }
    };
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(err) => {
            if !err.use_stderr() {
                let _ = err.print();
                return ExitCode::from(EXIT_OK);
            }
            // Clap's message already says `error:` and shows the usage.
            let _ = err.print();
            if args.iter().any(|a| a == "--json") {
                let mut printer = Printer::new(ColorChoice::Never, true, true);
                printer.json_document(&json::error_document(&clap_message(&err), EXIT_USAGE));
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut printer = Printer::new(cli.global.color, cli.global.quiet, cli.command.json());
    let result = match cli.command {
        Command::Exec(args) => exec::run(*args, &mut printer),
        Command::Eval(args) => eval::run(args, &mut printer),
        Command::HashFiles(args) => hash_files::run(args, &mut printer),
        Command::Cache(args) => cache::run(args, &mut printer),
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(*args),
        #[cfg(feature = "server")]
        Command::Token(args) => token::run(args, &mut printer),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => ExitCode::from(fail(&mut printer, &err)),
    }
}

/// The variables clap reads settings from (`env =`).
const SETTINGS_ENV: &[&str] = &[
    "RUNNER_CACHE_DIR",
    "RUNNER_CACHE_DB",
    "RUNNER_CACHE_BLOBS",
    "RUNNER_CACHE_TTL_DAYS",
    "RUNNER_CACHE_MAX_SIZE",
    "RUNNER_CACHE_COMPRESSION",
    "RUNNER_CACHE_BACKEND",
    "RUNNER_CACHE_SERVER",
    "RUNNER_CACHE_TOKEN",
    "RUNNER_ACTIONS_URL",
    "RUNNER_NODE",
    "RUNNER_SERVE_LISTEN",
    "RUNNER_SERVE_PUBLIC_URL",
];

/// An empty setting means unset, as an empty variable in a CI configuration does; clap would
/// refuse it as a missing value.
fn drop_empty_settings() {
    for name in SETTINGS_ENV {
        if std::env::var_os(name).is_some_and(|v| v.is_empty()) {
            // SAFETY: the first thing `main` does, before any thread is started.
            unsafe { std::env::remove_var(name) };
        }
    }
}

/// The first line of a clap error, without its `error: ` label.
fn clap_message(err: &clap::Error) -> String {
    let text = err.kind().to_string();
    let rendered = err.render().to_string();
    let first = rendered.lines().next().unwrap_or(&text);
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Prints `err` (its chain, each cause once) and returns its exit code. With `--json` the
/// error is also stdout's one document.
fn fail(printer: &mut Printer, err: &anyhow::Error) -> u8 {
    let code = match err.downcast_ref::<Failure>() {
        Some(f) => f.code,
        None => EXIT_USAGE,
    };
    let message = runner::error::chain(err.as_ref());
    printer.error(&message);
    if printer.json_mode() {
        printer.json_document(&json::error_document(&message, code));
    }
    code
}

/// Reads a JSON file that must hold an object; errors name `what` (the flag or file's role)
/// and the path.
fn read_json_object(path: &Path, what: &str) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {what} {}", path.display()))?;
    if !value.is_object() {
        anyhow::bail!("{what} {}: expected a JSON object", path.display());
    }
    Ok(value)
}

/// A verb's own failure with the exit code it maps to (a missing entry is 1, not 2).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// What went wrong.
    pub message: String,
}

impl Failure {
    /// A failure exiting `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
