//! `runner exec`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, bail};
use indexmap::IndexMap;
use runner::exec::actions::{ActionsOptions, Sources};
use runner::exec::{ActionRegistry, BaseEnv, RunOptions, Runner, builtin_registry, commands};
use runner::store::StoreLocation;

use super::printer::Printer;
use super::{EXIT_FAILED, EXIT_OK, StoreArgs};

pub(super) mod output;

/// Arguments of `runner exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The workflow file, e.g. .github/workflows/ci.yml.
    pub workflow: PathBuf,
    /// The checkout the jobs run in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub workspace: PathBuf,
    /// Run only this job.
    #[arg(long, short = 'j', value_name = "ID")]
    pub job: Option<String>,
    /// With --job: also run the jobs it needs.
    #[arg(long, requires = "job")]
    pub with_needs: bool,
    /// Run only matrix combinations with this value (repeatable; same key = either value).
    #[arg(long, value_name = "KEY:VALUE")]
    pub matrix: Vec<String>,
    /// Start steps from a minimal environment (PATH, HOME, USER, LANG, TERM, TMPDIR) instead of
    /// this shell's.
    #[arg(long)]
    pub clean_env: bool,
    /// Environment for every step (repeatable); wins over --env-file.
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A file of environment for every step: KEY=VALUE lines (and KEY<<EOF blocks), `#`
    /// comments (repeatable).
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// A `vars` context value (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// A secret (repeatable); `--secret KEY` takes the value from the environment variable KEY.
    #[arg(long = "secret", short = 's', value_name = "KEY[=VALUE]")]
    pub secrets: Vec<String>,
    /// A file of secrets: KEY=VALUE lines (and KEY<<EOF blocks), `#` comments.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Vec<PathBuf>,
    /// `github.event_name`.
    #[arg(long, value_name = "NAME", default_value = "push")]
    pub event: String,
    /// The event payload (`github.event`), a JSON object.
    #[arg(long, short = 'e', value_name = "FILE")]
    pub event_file: Option<PathBuf>,
    /// `github.ref` (default: the checkout's branch).
    #[arg(long = "ref", value_name = "REF")]
    pub git_ref: Option<String>,
    /// `github.sha` (default: the checkout's HEAD).
    #[arg(long, value_name = "SHA")]
    pub sha: Option<String>,
    /// `github.repository` (default: from the origin remote).
    #[arg(long, value_name = "OWNER/NAME")]
    pub repository: Option<String>,
    /// `github.run_number` (default 1).
    #[arg(long, value_name = "N")]
    pub run_number: Option<u64>,
    /// `github.run_attempt` (default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub run_attempt: Option<u64>,
    /// A workflow_dispatch / workflow_call input (repeatable), checked against its declared
    /// type; the others get their defaults.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Print the plan (jobs, steps, evaluated if: and with:, cache keys) without running
    /// anything.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Accepted for compatibility: a step whose action cannot run here fails by default.
    #[arg(long, conflicts_with = "skip_unsupported")]
    pub strict: bool,
    /// Skip steps whose action cannot run here (Docker, not fetchable) instead of failing
    /// them; the summary names every step that was not run.
    #[arg(long)]
    pub skip_unsupported: bool,
    /// Print the jobs and their steps, with how each would run (native, node, composite, or
    /// not at all), and exit.
    #[arg(long, short = 'l')]
    pub list: bool,
    /// Base URL `owner/repo@ref` actions are cloned from (a `file://` URL or local path works).
    #[arg(
        long,
        value_name = "URL",
        env = "RUNNER_ACTIONS_URL",
        default_value = "https://github.com"
    )]
    pub actions_url: String,
    /// Use only actions already in the action cache; a missing one says which it is.
    #[arg(long)]
    pub offline: bool,
    /// The node that runs JavaScript actions.
    #[arg(long, value_name = "PATH", env = "RUNNER_NODE", default_value = "node")]
    pub node: PathBuf,
    /// How `actions/cache*` run: natively, or as the real JavaScript action through the
    /// embedded cache server.
    #[arg(long, value_enum, default_value = "native")]
    pub cache_action: CacheAction,
    /// Write one JSON document to stdout instead of the summary table: the report, or the plan
    /// with --dry-run (docs/json.md).
    #[arg(long, conflicts_with = "json_events")]
    pub json: bool,
    /// Write one JSON line per event to stdout as it happens, then a `run_finished` line
    /// (docs/json.md); the log on stderr is left out.
    #[arg(long)]
    pub json_events: bool,
    /// Unfold ::group:: output and show ::debug:: messages.
    #[arg(long, short)]
    pub verbose: bool,
    /// Where cache steps keep their entries: `auto` picks --cache-server, then GitHub's own
    /// cache when running inside a GitHub Actions job (ACTIONS_RESULTS_URL / ACTIONS_CACHE_URL
    /// with ACTIONS_RUNTIME_TOKEN), then the local store.
    #[arg(long, value_enum, env = "RUNNER_CACHE_BACKEND", default_value = "auto")]
    pub cache_backend: CacheBackendArg,
    /// A `runner serve` (or any GitHub-compatible cache server) for the cache steps, over v2.
    #[arg(long, value_name = "URL", env = "RUNNER_CACHE_SERVER")]
    pub cache_server: Option<String>,
    /// The bearer token for --cache-server (as `runner token` prints it).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "RUNNER_CACHE_TOKEN",
        hide_env_values = true
    )]
    pub cache_token: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// `--cache-backend` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheBackendArg {
    /// The first available: server, GitHub's job environment, local store.
    Auto,
    /// The local store.
    Local,
    /// A cache server (an error when none is configured).
    Server,
}

/// The backend settings from the flags and the environment `runner exec` runs in.
fn backend_settings(args: &ExecArgs) -> runner::cache::BackendSettings {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    // clap folds RUNNER_CACHE_SERVER into --cache-server; say which one the user set.
    let server = args
        .cache_server
        .clone()
        .filter(|s| !s.trim().is_empty())
        .map(|url| {
            let source = if var("RUNNER_CACHE_SERVER").as_deref() == Some(url.as_str()) {
                "RUNNER_CACHE_SERVER"
            } else {
                "--cache-server"
            };
            (url, source)
        });
    runner::cache::BackendSettings {
        choice: match args.cache_backend {
            CacheBackendArg::Auto => runner::cache::BackendChoice::Auto,
            CacheBackendArg::Local => runner::cache::BackendChoice::Local,
            CacheBackendArg::Server => runner::cache::BackendChoice::Server,
        },
        server,
        token: args.cache_token.clone(),
        actions_results_url: var("ACTIONS_RESULTS_URL"),
        actions_cache_url: var("ACTIONS_CACHE_URL"),
        actions_runtime_token: var("ACTIONS_RUNTIME_TOKEN"),
        actions_cache_service_v2: var("ACTIONS_CACHE_SERVICE_V2").is_some(),
    }
}

/// How `actions/cache*` steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheAction {
    /// In-process, on the store directly.
    Native,
    /// The real JavaScript action, through the embedded cache server.
    Node,
}

/// The handlers `runner exec` uses for `uses:` steps: the single place where built-in
/// actions are registered. The cache backend is opened only when a cache step first runs; its
/// saves and restores stop cleanly when `cancel` is set.
pub fn default_registry(
    settings: &runner::cache::BackendSettings,
    store: &StoreArgs,
    location: &StoreLocation,
    cancel: &runner::cancel::Cancel,
) -> anyhow::Result<ActionRegistry> {
    let mut registry = builtin_registry();
    let (backend, why) = runner::cache::select_backend(settings)?;
    runner::cache::register_backend(
        &mut registry,
        backend,
        &why,
        location.clone(),
        store.options(cancel),
    );
    Ok(registry)
}

/// Runs the verb; returns the exit code.
pub fn run(args: ExecArgs, printer: &mut Printer) -> anyhow::Result<u8> {
    printer.set_verbose(args.verbose);
    let path = resolve_workflow_path(&args.workflow, &args.workspace);
    let workflow = runner::workflow::load(&path)?;
    let location = args.store.location()?;
    let options = options(&args, &location)?;
    let step_debug = |m: &IndexMap<String, String>| {
        m.get("ACTIONS_STEP_DEBUG")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    if step_debug(&options.secrets) || step_debug(&options.vars) {
        printer.show_debug(true);
    }
    let cancel = runner::cancel::Cancel::from_flag(options.cancel.clone());
    let registry = default_registry(&backend_settings(&args), &args.store, &location, &cancel)?;
    install_interrupt_handler(options.cancel.clone());
    let sink = output::ExecSink::new(printer.fork(), args.json_events);
    let mut options = options;
    options.events = sink.clone();
    let mut runner = Runner::new(workflow, options, registry);
    if args.list {
        return list(&runner, printer);
    }
    // Only JavaScript actions talk to a cache server; start one only for them.
    #[cfg(feature = "server")]
    let _server = if !args.dry_run && runner.uses_node_actions() {
        match embedded::start(&location, args.store.options(&cancel)) {
            Ok((server, job_env)) => {
                runner.actions_mut().job_env = Some(job_env);
                Some(server)
            }
            Err(err) => {
                let why = runner::error::chain(err.as_ref());
                printer.warning(&format!("JavaScript actions get no cache server: {why}"));
                None
            }
        }
    } else {
        None
    };
    let started = super::json::now_millis();
    let report = runner.run()?;
    let interrupted = interrupt_signal();
    let code = match interrupted {
        Some(signal) => (128 + signal).clamp(0, 255) as u8,
        None if report.success() => EXIT_OK,
        None => EXIT_FAILED,
    };
    let times = output::Times {
        started_ms: started,
        finished_ms: super::json::now_millis(),
    };
    let mut state = sink.state();
    if args.json {
        let doc = if args.dry_run {
            state.plan_document(&report)
        } else {
            state.report_document(&report, code, interrupted.is_some(), &times)
        };
        state.printer.json_document(&doc);
    } else if args.json_events {
        state.finished(&report, code, interrupted.is_some(), &times);
    } else if !args.dry_run {
        state.printer.summary(&report);
    }
    Ok(code)
}

/// `github.run_number` from the counter the cache index keeps per repository and workflow
/// file; a store that cannot be opened or written numbers the run 1 (said at debug level:
/// the run itself does not depend on it).
fn store_run_counter(location: &StoreLocation) -> runner::exec::RunCounter {
    let location = location.clone();
    runner::exec::RunCounter(Arc::new(move |repository: &str, workflow: &str| {
        let clock: Arc<dyn runner::clock::Clock> = Arc::new(runner::clock::SystemClock);
        let store = runner::store::Store::open_at(&location, clock).ok()?;
        store.index().next_run_number(repository, workflow).ok()
    }))
}

/// The workflow as given, or relative to the workspace when only that exists.
fn resolve_workflow_path(workflow: &Path, workspace: &Path) -> PathBuf {
    if workflow.is_relative() && !workflow.exists() {
        let candidate = workspace.join(workflow);
        if candidate.exists() {
            return candidate;
        }
    }
    workflow.to_path_buf()
}

fn key_value(text: &str, flag: &str) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("{flag} expects KEY=VALUE, got '{text}'"),
    }
}

/// The `KEY=VALUE` lines (and `KEY<<EOF` blocks) of a file given to `flag`, `#` lines skipped.
fn read_pairs(file: &Path, flag: &str) -> anyhow::Result<IndexMap<String, String>> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading {flag} {}", file.display()))?;
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let pairs = commands::parse_key_value(&body)
        .map_err(|m| anyhow::anyhow!("{flag} {}: {m}", file.display()))?;
    Ok(pairs.into_iter().collect())
}

fn options(args: &ExecArgs, location: &StoreLocation) -> anyhow::Result<RunOptions> {
    let workspace = args
        .workspace
        .canonicalize()
        .with_context(|| format!("--workspace {}", args.workspace.display()))?;
    let mut env = IndexMap::new();
    for file in &args.env_file {
        env.extend(read_pairs(file, "--env-file")?);
    }
    for e in &args.env {
        let (k, v) = key_value(e, "--env")?;
        env.insert(k, v);
    }
    let mut vars = IndexMap::new();
    for e in &args.vars {
        let (k, v) = key_value(e, "--var")?;
        vars.insert(k, v);
    }
    let mut inputs = IndexMap::new();
    for e in &args.inputs {
        let (k, v) = key_value(e, "--input")?;
        inputs.insert(k, v);
    }
    let mut secrets = IndexMap::new();
    for file in &args.secret_file {
        secrets.extend(read_pairs(file, "--secret-file")?);
    }
    for e in &args.secrets {
        if let Some((k, v)) = e.split_once('=') {
            if k.is_empty() {
                bail!("--secret expects KEY=VALUE or KEY, got '{e}'");
            }
            secrets.insert(k.to_string(), v.to_string());
        } else {
            let value = std::env::var(e)
                .with_context(|| format!("--secret {e}: environment variable {e} is not set"))?;
            secrets.insert(e.clone(), value);
        }
    }
    let mut matrix = Vec::new();
    for m in &args.matrix {
        match m.split_once(':') {
            Some((k, v)) if !k.is_empty() => matrix.push((k.to_string(), v.to_string())),
            _ => bail!("--matrix expects KEY:VALUE, got '{m}'"),
        }
    }
    let event = match &args.event_file {
        Some(path) => super::read_json_object(path, "--event-file")?,
        None => serde_json::Value::Object(serde_json::Map::new()),
    };
    Ok(RunOptions {
        workspace,
        job: args.job.clone(),
        with_needs: args.with_needs,
        matrix,
        env,
        vars,
        secrets,
        event_name: args.event.clone(),
        event,
        git_ref: args.git_ref.clone(),
        sha: args.sha.clone(),
        repository: args.repository.clone(),
        run_number: args.run_number,
        run_counter: Some(store_run_counter(location)),
        run_attempt: args.run_attempt,
        inputs,
        dry_run: args.dry_run,
        strict: args.strict,
        actions: actions_options(args, location),
        // As act does, the shell's environment reaches the steps unless --clean-env.
        base_env: if args.clean_env {
            BaseEnv::Clean
        } else {
            BaseEnv::Inherit
        },
        ..RunOptions::default()
    })
}

fn actions_options(args: &ExecArgs, location: &StoreLocation) -> ActionsOptions {
    let cache_root = location.dir.join("actions-v1");
    let base_url = match Path::new(&args.actions_url) {
        // A plain directory of bare repositories is a file:// URL to git.
        p if p.is_absolute() => format!("file://{}", p.display()),
        _ => args.actions_url.clone(),
    };
    ActionsOptions {
        sources: Sources {
            base_url,
            cache_root,
            offline: args.offline,
        },
        node: args.node.clone(),
        skip_unsupported: args.skip_unsupported,
        cache_action_node: args.cache_action == CacheAction::Node,
        job_env: None,
    }
}

/// `--list`: one line per job, then one per step with how it would run.
fn list(runner: &Runner, printer: &mut Printer) -> anyhow::Result<u8> {
    let jobs = runner.list()?;
    if printer.json_mode() {
        let jobs: Vec<serde_json::Value> = jobs
            .iter()
            .map(|job| {
                let steps: Vec<serde_json::Value> = job
                    .steps
                    .iter()
                    .map(|s| serde_json::json!({"name": s.name, "uses": s.uses, "runs": s.how}))
                    .collect();
                serde_json::json!({"id": job.id, "steps": steps})
            })
            .collect();
        let doc = super::json::document("runner.exec.list/1", serde_json::json!({"jobs": jobs}));
        printer.json_document(&doc);
        return Ok(EXIT_OK);
    }
    for job in jobs {
        printer.data(&job.id);
        for step in job.steps {
            match &step.uses {
                Some(uses) if step.name != format!("Run {uses}") => {
                    printer.data(&format!("  {} ({uses}): {}", step.name, step.how));
                }
                _ => printer.data(&format!("  {}: {}", step.name, step.how)),
            }
        }
    }
    Ok(EXIT_OK)
}

static CANCEL: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The first signal that cancelled the run (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// The signal that cancelled the run, if one did.
fn interrupt_signal() -> Option<i32> {
    let cancelled = CANCEL.get().is_some_and(|f| f.load(Ordering::SeqCst));
    let signal = SIGNAL.load(Ordering::SeqCst);
    (cancelled && signal != 0).then_some(signal)
}

extern "C" fn on_interrupt(signal: libc::c_int) {
    let _ = SIGNAL.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst);
    if let Some(flag) = CANCEL.get()
        && flag.swap(true, Ordering::SeqCst)
    {
        // A second signal: stop now (a save in flight leaves a reservation whose owner is
        // gone, which the next save reclaims at once).
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(128 + signal) };
    }
}

/// Ctrl-C (SIGINT) and CI cancellation (SIGTERM) cancel the run: running steps are killed,
/// a cache save in flight aborts its reservation and removes its temporary blob, `always()`
/// steps still run, and the exit code is 128 + the signal (130, 143). A second signal exits at
/// once. Step processes run in their own process
/// groups, so they do not see the terminal's SIGINT themselves.
fn install_interrupt_handler(flag: Arc<AtomicBool>) {
    if CANCEL.set(flag).is_ok() {
        let handler = on_interrupt as extern "C" fn(libc::c_int);
        // SAFETY: the handler only touches an atomic and calls _exit.
        unsafe {
            libc::signal(libc::SIGINT, handler as libc::sighandler_t);
            libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
        }
    }
}

/// The cache server `runner exec` starts for the JavaScript actions it runs: `runner serve`'s
/// code on 127.0.0.1, over the same store, with a token per job scoped to its repository and ref.
#[cfg(feature = "server")]
mod embedded {
    use std::sync::Arc;

    use anyhow::Context as _;
    use indexmap::IndexMap;
    use runner::cache::CacheOptions;
    use runner::clock::{Clock, SystemClock};
    use runner::exec::JobInfo;
    use runner::exec::actions::JobEnv;
    use runner::server::{self, AuthMode, RunningServer, Server, ServerConfig, TokenRequest};
    use runner::store::StoreLocation;

    /// How long a job's token is valid (GitHub's job timeout).
    const TOKEN_TTL_SECS: i64 = 6 * 3600;

    /// Starts the server; returns it (stopped when dropped) and the job environment to hand out.
    pub fn start(
        location: &StoreLocation,
        options: CacheOptions,
    ) -> anyhow::Result<(RunningServer, JobEnv)> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let dir = location.dir.clone();
        let cache = runner::cache::open(location, options, clock.clone())
            .context("opening the cache store")?;
        // A secret that lives as long as this run: tokens are good for this server only.
        let secret: Vec<u8> = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
            .iter()
            .flat_map(|u| *u.as_bytes())
            .collect();
        let config = ServerConfig::new(AuthMode::Secret(secret.clone()), dir.join("staging-v1"));
        let server = Server::new(Arc::new(cache), config, clock.clone())
            .context("starting the embedded cache server")?;
        let running =
            server::spawn(server, "127.0.0.1:0").context("starting the embedded cache server")?;
        let url = format!("{}/", running.url());
        let job_env = JobEnv(Arc::new(move |job: &JobInfo| {
            let request = TokenRequest {
                repository: job.repository.clone(),
                repository_id: None,
                git_ref: job.git_ref.clone(),
                base_ref: job.base_ref.clone(),
                default_branch: job.default_branch.clone(),
                read_only: false,
                ttl_secs: TOKEN_TTL_SECS,
            };
            let now = clock.now_millis() / 1000;
            let token = server::mint_token(&secret, &request, now);
            [
                ("ACTIONS_CACHE_URL", url.clone()),
                ("ACTIONS_RESULTS_URL", url.clone()),
                ("ACTIONS_RUNTIME_TOKEN", token),
                ("ACTIONS_CACHE_SERVICE_V2", "true".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<IndexMap<String, String>>()
        }));
        Ok((running, job_env))
    }
}
