//! `runner exec`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use anyhow::{Context, bail};
use indexmap::IndexMap;
use runner::exec::actions::{ActionsOptions, Sources};
use runner::exec::{
    ActionRegistry, BaseEnv, Event, EventSink, RunOptions, Runner, builtin_registry, commands,
};

use super::printer::Printer;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

/// Arguments of `runner exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The workflow file, e.g. .github/workflows/ci.yml.
    pub workflow: PathBuf,
    /// The checkout the jobs run in.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub workspace: PathBuf,
    /// Run only this job.
    #[arg(long, value_name = "ID")]
    pub job: Option<String>,
    /// With --job: also run the jobs it needs.
    #[arg(long, requires = "job")]
    pub with_needs: bool,
    /// Run only matrix combinations with this value (repeatable; same key = either value).
    #[arg(long, value_name = "KEY:VALUE")]
    pub matrix: Vec<String>,
    /// Environment for every step (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// A `vars` context value (repeatable).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// A secret (repeatable); `--secret KEY` takes the value from the environment variable KEY.
    #[arg(long = "secret", value_name = "KEY[=VALUE]")]
    pub secrets: Vec<String>,
    /// A file of secrets: KEY=VALUE lines (and KEY<<EOF blocks), `#` comments.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Vec<PathBuf>,
    /// `github.event_name`.
    #[arg(long, value_name = "NAME", default_value = "push")]
    pub event: String,
    /// The event payload (`github.event`), a JSON object.
    #[arg(long, value_name = "FILE")]
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
    /// Print the plan (jobs, steps, evaluated if: and with:) without running anything.
    #[arg(long)]
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
    #[arg(long)]
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
    /// Write a machine-readable report to stdout instead of the summary table.
    #[arg(long)]
    pub json: bool,
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
    cancel: &runner::cancel::Cancel,
) -> anyhow::Result<ActionRegistry> {
    let mut registry = builtin_registry();
    let (backend, why) = runner::cache::select_backend(settings)?;
    runner::cache::register_backend(&mut registry, backend, &why, cancel);
    Ok(registry)
}

/// Runs the verb; returns the exit code.
pub fn run(args: ExecArgs) -> anyhow::Result<u8> {
    let mut printer = Printer::new(args.verbose);
    let path = resolve_workflow_path(&args.workflow, &args.workspace);
    let workflow = match runner::workflow::load(&path) {
        Ok(w) => w,
        Err(err) => {
            printer.error(&err.to_string());
            return Ok(EXIT_USAGE);
        }
    };
    let options = match options(&args) {
        Ok(o) => o,
        Err(err) => {
            printer.error(&format!("{err:#}"));
            return Ok(EXIT_USAGE);
        }
    };
    let step_debug = |m: &IndexMap<String, String>| {
        m.get("ACTIONS_STEP_DEBUG")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    if step_debug(&options.secrets) || step_debug(&options.vars) {
        printer.show_debug(true);
    }
    let cancel = runner::cancel::Cancel::from_flag(options.cancel.clone());
    let registry = match default_registry(&backend_settings(&args), &cancel) {
        Ok(registry) => registry,
        Err(err) => {
            printer.error(&format!("{err:#}"));
            return Ok(EXIT_USAGE);
        }
    };
    install_interrupt_handler(options.cancel.clone());
    let sink = Arc::new(PrinterSink(Mutex::new(printer)));
    let mut options = options;
    options.events = sink.clone();
    let mut runner = Runner::new(workflow, options, registry);
    if args.list {
        return list(&runner, &mut sink.printer());
    }
    // Only JavaScript actions talk to a cache server; start one only for them.
    #[cfg(feature = "server")]
    let _server = if !args.dry_run && runner.uses_node_actions() {
        match embedded::start() {
            Ok((server, job_env)) => {
                runner.actions_mut().job_env = Some(job_env);
                Some(server)
            }
            Err(err) => {
                sink.printer()
                    .warning(&format!("JavaScript actions get no cache server: {err:#}"));
                None
            }
        }
    } else {
        None
    };
    let report = runner.run();
    let mut printer = sink.printer();
    let report = match report {
        Ok(report) => report,
        Err(err) => {
            printer.error(&err.to_string());
            return Ok(EXIT_USAGE);
        }
    };
    if args.json {
        printer.json(&report)?;
    } else if !args.dry_run {
        printer.summary(&report);
    }
    Ok(if report.success() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// Renders the run's events through the one [`Printer`], which the run shares with the steps'
/// cache transfers.
struct PrinterSink(Mutex<Printer>);

impl PrinterSink {
    fn printer(&self) -> MutexGuard<'_, Printer> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl EventSink for PrinterSink {
    fn event(&self, event: &Event) {
        self.printer().event(event);
    }
}

/// `github.run_number` from the counter the cache index keeps per repository and workflow
/// file; a store that cannot be opened or written numbers the run 1 (said at debug level:
/// the run itself does not depend on it).
fn store_run_counter() -> runner::exec::RunCounter {
    runner::exec::RunCounter(Arc::new(|repository: &str, workflow: &str| {
        let clock: Arc<dyn runner::clock::Clock> = Arc::new(runner::clock::SystemClock);
        let store = runner::store::Store::open_default(clock).ok()?;
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

fn options(args: &ExecArgs) -> anyhow::Result<RunOptions> {
    let workspace = args
        .workspace
        .canonicalize()
        .with_context(|| format!("--workspace {}", args.workspace.display()))?;
    let mut env = IndexMap::new();
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
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("--secret-file {}", file.display()))?;
        let body: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let pairs = commands::parse_key_value(&body)
            .map_err(|m| anyhow::anyhow!("--secret-file {}: {m}", file.display()))?;
        secrets.extend(pairs);
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
        run_counter: Some(store_run_counter()),
        run_attempt: args.run_attempt,
        inputs,
        dry_run: args.dry_run,
        strict: args.strict,
        actions: actions_options(args),
        // As act does: the shell's environment reaches the steps.
        base_env: BaseEnv::Inherit,
        ..RunOptions::default()
    })
}

fn actions_options(args: &ExecArgs) -> ActionsOptions {
    let defaults = ActionsOptions::default();
    let cache_root = match runner::store::default_cache_dir() {
        Some(dir) => dir.join("actions-v1"),
        None => defaults.sources.cache_root,
    };
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
    let jobs = match runner.list() {
        Ok(jobs) => jobs,
        Err(err) => {
            printer.error(&err.to_string());
            return Ok(EXIT_USAGE);
        }
    };
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

extern "C" fn on_interrupt(signal: libc::c_int) {
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
/// steps still run. A second signal exits at once. Step processes run in their own process
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
    use runner::clock::{Clock, SystemClock};
    use runner::exec::JobInfo;
    use runner::exec::actions::JobEnv;
    use runner::server::{self, AuthMode, RunningServer, Server, ServerConfig, TokenRequest};

    /// How long a job's token is valid (GitHub's job timeout).
    const TOKEN_TTL_SECS: i64 = 6 * 3600;

    /// Starts the server; returns it (stopped when dropped) and the job environment to hand out.
    pub fn start() -> anyhow::Result<(RunningServer, JobEnv)> {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let dir = runner::store::default_cache_dir()
            .context("no cache directory: set RUNNER_CACHE_DIR")?;
        let cache =
            runner::cache::open_default(clock.clone()).context("opening the cache store")?;
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
