//! The run: which jobs in which order, the contexts each sees, the step loop, post hooks and job
//! outputs. [`Runner`] is the library entry point `runner exec` and embedding CI runners use.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use indexmap::IndexMap;

use super::action::{ActionContext, ActionError, ActionHandler, ActionRegistry, LogLevel};
use super::actions::{ActionsOptions, Resolution, Resolver, Runs};
use super::contexts::{self, Contexts, s};
use super::error::ExecError;
use super::git::{self, GitInfo};
use super::inputs;
use super::job::JobRun;
use super::mask::Masker;
use super::plan::{NeedResult, aggregate, needs_context};
use super::report::{AnnotationLevel, Emitter, EventKind, EventSink, JobReport, RunReport, Status};
use crate::clock::{Clock, SystemClock};
use crate::expr::{EvalError, Value};
use crate::workflow::{Condition, Job, Located, OrExpr, Pos, Step, StepKind, Text, Workflow};

/// GitHub's default job timeout.
pub(super) const DEFAULT_JOB_TIMEOUT_MINUTES: f64 = 360.0;

/// Hands out the next `github.run_number` for (repository, workflow file); `None` when the
/// counter is unavailable (the run then numbers itself 1).
#[derive(Clone)]
pub struct RunCounter(pub Arc<NextRunNumber>);

/// `(repository, workflow file) -> next run number`.
pub type NextRunNumber = dyn Fn(&str, &str) -> Option<u64> + Send + Sync;

impl std::fmt::Debug for RunCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunCounter")
    }
}

/// Everything about a run that does not come from the workflow file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The checkout the jobs run in (`github.workspace`).
    pub workspace: PathBuf,
    /// Run only this job (and, with `with_needs`, what it needs).
    pub job: Option<String>,
    /// With `job`: also run the jobs it needs, transitively.
    pub with_needs: bool,
    /// `--matrix key:value` filters; a combination runs when every filter matches.
    pub matrix: Vec<(String, String)>,
    /// Extra environment for every step, below the workflow's `env:`.
    pub env: IndexMap<String, String>,
    /// The `vars` context.
    pub vars: IndexMap<String, String>,
    /// The `secrets` context; every value is masked.
    pub secrets: IndexMap<String, String>,
    /// `github.event_name`.
    pub event_name: String,
    /// `github.event` (a JSON object).
    pub event: serde_json::Value,
    /// `github.ref` (overrides the checkout's).
    pub git_ref: Option<String>,
    /// `github.sha` (overrides the checkout's).
    pub sha: Option<String>,
    /// `github.repository` (overrides the origin remote).
    pub repository: Option<String>,
    /// `github.actor`.
    pub actor: Option<String>,
    /// `github.run_number`; when unset, `run_counter` gives it, else 1.
    pub run_number: Option<u64>,
    /// Numbers runs per (repository, workflow file) as GitHub does; the CLI keeps the counter
    /// in the cache index. Not consulted for `--dry-run`.
    pub run_counter: Option<RunCounter>,
    /// `github.run_attempt` (default 1).
    pub run_attempt: Option<u64>,
    /// `--input name=value`: inputs of a `workflow_dispatch` / `workflow_call` run, checked
    /// against the types the workflow declares.
    pub inputs: IndexMap<String, String>,
    /// Print the plan instead of running.
    pub dry_run: bool,
    /// Kept for compatibility: steps whose action cannot run here now fail unless
    /// `actions.skip_unsupported` is set.
    pub strict: bool,
    /// How actions without a built-in handler are fetched and run.
    pub actions: ActionsOptions,
    /// The home directory `~` means to handlers (default `$HOME`).
    pub home: Option<PathBuf>,
    /// Set to true to cancel the run (Ctrl-C): running steps are killed, only `always()` /
    /// `cancelled()` steps and jobs still run.
    pub cancel: Arc<AtomicBool>,
    /// Receives every [`super::Event`] of the run (default [`super::Discard`]: the library
    /// prints nothing; `runner exec` passes its terminal printer or JSON-lines writer).
    pub events: Arc<dyn EventSink>,
    /// Stamps events (default the system clock).
    pub clock: Arc<dyn Clock>,
    /// What step processes inherit from this process (default [`BaseEnv::Clean`]).
    pub base_env: BaseEnv,
}

/// The environment step processes start from, below GitHub's variables and the workflow's
/// `env:`.
///
/// The default is [`BaseEnv::Clean`]: an embedding CI runner's own environment (its tokens,
/// its credentials, its `RUST_LOG`) must not leak into the jobs it runs unless it says so.
/// `runner exec` chooses [`BaseEnv::Inherit`], as `act` does, and `--clean-env` chooses
/// [`BaseEnv::Clean`].
///
/// ```
/// use runner::exec::BaseEnv;
///
/// let clean = BaseEnv::Clean.variables();
/// assert!(clean.keys().all(|k| BaseEnv::CLEAN_NAMES.contains(&k.as_str())));
/// let explicit = BaseEnv::Explicit([("PATH".to_string(), "/usr/bin".to_string())].into());
/// assert_eq!(explicit.variables().get("PATH").map(String::as_str), Some("/usr/bin"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BaseEnv {
    /// Everything this process has (as a shell running `act` would pass on).
    Inherit,
    /// Only [`BaseEnv::CLEAN_NAMES`], from this process.
    #[default]
    Clean,
    /// Exactly these variables, nothing from this process.
    Explicit(IndexMap<String, String>),
}

impl BaseEnv {
    /// What [`BaseEnv::Clean`] keeps: enough for shells and tools to work.
    pub const CLEAN_NAMES: [&'static str; 6] = ["PATH", "HOME", "USER", "LANG", "TERM", "TMPDIR"];

    /// The variables a step process starts from.
    pub fn variables(&self) -> IndexMap<String, String> {
        match self {
            BaseEnv::Inherit => std::env::vars().collect(),
            BaseEnv::Clean => Self::CLEAN_NAMES
                .iter()
                .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
                .collect(),
            BaseEnv::Explicit(vars) => vars.clone(),
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            workspace: PathBuf::from("."),
            job: None,
            with_needs: false,
            matrix: Vec::new(),
            env: IndexMap::new(),
            vars: IndexMap::new(),
            secrets: IndexMap::new(),
            event_name: "push".to_string(),
            event: serde_json::Value::Object(serde_json::Map::new()),
            git_ref: None,
            sha: None,
            repository: None,
            actor: None,
            run_number: None,
            run_counter: None,
            run_attempt: None,
            inputs: IndexMap::new(),
            dry_run: false,
            strict: false,
            actions: ActionsOptions::default(),
            home: None,
            cancel: Arc::new(AtomicBool::new(false)),
            events: Arc::new(super::report::Discard),
            clock: Arc::new(SystemClock),
            base_env: BaseEnv::default(),
        }
    }
}

/// Runs the jobs of one workflow.
///
/// ```
/// use std::sync::Arc;
/// use runner::exec::{builtin_registry, EventKind, Recorder, RunOptions, Runner, Stream};
///
/// let dir = tempfile::tempdir()?;
/// let workflow = runner::workflow::parse(
///     "ci.yml".as_ref(),
///     "on: push\njobs:\n  hello:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo hi\n",
/// )?;
/// let events = Recorder::new();
/// let options = RunOptions {
///     workspace: dir.path().to_path_buf(),
///     events: events.clone(),
///     ..RunOptions::default()
/// };
/// let report = Runner::new(workflow, options, builtin_registry()).run()?;
/// assert!(report.success());
/// assert!(events.kinds().contains(&EventKind::Output { line: "hi".into(), stream: Stream::Stdout }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Runner {
    pub(super) workflow: Workflow,
    pub(super) options: RunOptions,
    pub(super) registry: ActionRegistry,
    pub(super) resolver: Resolver,
}

/// The built-in `actions/checkout`: the workspace already is the checkout.
struct Checkout;

impl ActionHandler for Checkout {
    fn run(&self, ctx: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let message = format!(
            "actions/checkout: using the local workspace {} as the checkout",
            ctx.job.workspace.display()
        );
        ctx.log(LogLevel::Notice, &message);
        Ok(())
    }
}

/// A registry with the built-in handlers (`actions/checkout`).
pub fn builtin_registry() -> ActionRegistry {
    let mut registry = ActionRegistry::new();
    registry.register("actions/checkout", Arc::new(Checkout));
    registry
}

/// A runtime problem at a place in the workflow (bad expression result, failing function).
#[derive(Debug, Clone)]
pub(super) struct Problem {
    /// Where.
    pub(super) pos: Pos,
    /// What failed.
    pub(super) message: String,
}

impl Runner {
    /// A runner for `workflow`; `registry` maps `uses:` to handlers (`actions/checkout` is
    /// added when missing).
    pub fn new(workflow: Workflow, options: RunOptions, mut registry: ActionRegistry) -> Self {
        if registry.get("actions/checkout").is_none() {
            registry.register("actions/checkout", Arc::new(Checkout));
        }
        Self {
            workflow,
            options,
            registry,
            resolver: Resolver::default(),
        }
    }

    /// The in-process handler for `uses`, if one runs it (`actions/cache*` go to the real
    /// action with `cache_action_node`).
    pub(super) fn builtin_handler(&self, uses: &str) -> Option<Arc<dyn ActionHandler>> {
        let name = uses
            .split_once('@')
            .map_or(uses, |(n, _)| n)
            .to_ascii_lowercase();
        if self.options.actions.cache_action_node && name.starts_with("actions/cache") {
            return None;
        }
        self.registry.get(uses)
    }

    /// How a `uses:` step runs: `native`, `node (node20)`, `composite` or `not run: why`.
    pub fn classify(&self, uses: &str) -> String {
        if self.builtin_handler(uses).is_some() {
            return "native".to_string();
        }
        self.resolve(uses).describe()
    }

    /// The action `uses` names (fetched once per run).
    pub(super) fn resolve(&self, uses: &str) -> Resolution {
        self.resolver
            .resolve(uses, &self.options.workspace, &self.options.actions)
    }

    /// True when a selected job has a step that runs a JavaScript action (directly or inside a
    /// composite action), so the embedded cache server is worth starting.
    pub fn uses_node_actions(&self) -> bool {
        let Ok(selected) = self.select_jobs() else {
            return false;
        };
        selected
            .iter()
            .filter_map(|id| self.workflow.jobs.get(id))
            .any(|job| self.steps_use_node(&job.steps, 0))
    }

    fn steps_use_node(&self, steps: &[Step], depth: usize) -> bool {
        steps.iter().any(|step| {
            let StepKind::Uses { uses, .. } = &step.kind else {
                return false;
            };
            if self.builtin_handler(&uses.value).is_some() {
                return false;
            }
            match self.resolve(&uses.value) {
                Resolution::Action(r) => match &r.manifest.runs {
                    Runs::Node { .. } => true,
                    Runs::Composite { steps } => {
                        depth < super::actions::MAX_COMPOSITE_DEPTH
                            && self.steps_use_node(steps, depth + 1)
                    }
                    Runs::Docker { .. } => false,
                },
                _ => false,
            }
        })
    }

    /// How actions are found and run, to adjust after construction (the CLI hands JavaScript
    /// actions its embedded cache server once it knows one is needed).
    pub fn actions_mut(&mut self) -> &mut ActionsOptions {
        &mut self.options.actions
    }

    /// The workflow being run.
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// Runs the selected jobs in dependency order (or plans them with `dry_run`), reporting
    /// what happens to [`RunOptions::events`]. `Err` only for problems that stop the run before
    /// a job starts. Blocking: see the crate docs for running it from async code.
    pub fn run(&self) -> Result<RunReport, ExecError> {
        let emitter = Emitter::new(self.options.events.clone(), self.options.clock.clone());
        let sink = &emitter;
        let selected = self.select_jobs()?;
        let git = git::inspect(&self.options.workspace);
        let mut masker = Masker::new();
        for value in self.options.secrets.values() {
            masker.add(value);
        }
        for warning in &self.workflow.warnings {
            sink.event(EventKind::Warning {
                message: warning.to_string(),
            });
        }
        let base = self.base_contexts(&git)?;
        let mut report = RunReport {
            workflow: self.workflow.path.display().to_string(),
            jobs: Vec::new(),
            dry_run: self.options.dry_run,
        };
        let mut results: HashMap<String, NeedResult> = HashMap::new();
        let selected_set: HashSet<&str> = selected.iter().map(String::as_str).collect();
        for job_id in &selected {
            let Some(job) = self.workflow.jobs.get(job_id) else {
                continue;
            };
            for need in &job.needs {
                if !selected_set.contains(need.value.as_str()) && !results.contains_key(&need.value)
                {
                    sink.event(EventKind::Warning {
                        message: format!(
                            "job '{job_id}' needs '{}', which is not selected (use --with-needs); \
                             it counts as succeeded with no outputs",
                            need.value
                        ),
                    });
                    results.insert(
                        need.value.clone(),
                        NeedResult {
                            result: Status::Success,
                            outputs: IndexMap::new(),
                        },
                    );
                }
            }
            let mut ctx = base.clone();
            ctx.set("needs", needs_context(job, &results));
            ctx.state = self.needs_state(job, &results);
            let jobs = self.run_job(job, &ctx, &git, &mut masker, sink)?;
            let aggregated = aggregate(&jobs);
            results.insert(job_id.clone(), aggregated);
            report.jobs.extend(jobs);
        }
        Ok(report)
    }

    /// `--run-number`, else the counter's next number for this repository and workflow file
    /// (named relative to the workspace, as `.github/workflows/ci.yml`), else 1.
    fn run_number(&self, repository: &str) -> u64 {
        let o = &self.options;
        if let Some(n) = o.run_number {
            return n;
        }
        if o.dry_run {
            return 1;
        }
        let path = &self.workflow.path;
        let absolute = path
            .canonicalize()
            .or_else(|_| std::path::absolute(path))
            .unwrap_or_else(|_| path.clone());
        let workspace = o
            .workspace
            .canonicalize()
            .unwrap_or_else(|_| o.workspace.clone());
        let name = absolute
            .strip_prefix(&workspace)
            .unwrap_or(&absolute)
            .display()
            .to_string();
        o.run_counter
            .as_ref()
            .and_then(|counter| (counter.0)(repository, &name))
            .unwrap_or(1)
    }

    /// Contexts every job starts from.
    fn base_contexts(&self, git: &GitInfo) -> Result<Contexts, ExecError> {
        let o = &self.options;
        let mut ctx = Contexts::new(o.workspace.clone());
        let git_ref = o
            .git_ref
            .clone()
            .or_else(|| git.git_ref.clone())
            .unwrap_or_else(|| "refs/heads/main".to_string());
        let git_ref = if git_ref.starts_with("refs/") {
            git_ref
        } else {
            format!("refs/heads/{git_ref}")
        };
        let sha = o
            .sha
            .clone()
            .or_else(|| git.sha.clone())
            .unwrap_or_else(|| "0".repeat(40));
        let repository = o
            .repository
            .clone()
            .or_else(|| git.repository.clone())
            .unwrap_or_else(|| {
                let dir = o
                    .workspace
                    .canonicalize()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .unwrap_or_else(|| "workspace".to_string());
                format!("local/{dir}")
            });
        let owner = repository
            .split_once('/')
            .map_or(repository.as_str(), |(o, _)| o)
            .to_string();
        let (ref_name, ref_type) = if let Some(b) = git_ref.strip_prefix("refs/heads/") {
            (b.to_string(), "branch")
        } else if let Some(t) = git_ref.strip_prefix("refs/tags/") {
            (t.to_string(), "tag")
        } else {
            (git_ref.clone(), "")
        };
        let inputs = inputs::resolve(
            &self.workflow,
            &o.event_name,
            o.event.get("inputs"),
            &o.inputs,
        )?;
        let mut payload = o.event.clone();
        if !inputs.event.is_empty()
            && let serde_json::Value::Object(map) = &mut payload
        {
            map.insert(
                "inputs".to_string(),
                serde_json::Value::Object(inputs.event),
            );
        }
        let event = Value::from_json(payload);
        let pr_ref = |side: &str| {
            o.event
                .get("pull_request")
                .and_then(|p| p.get(side))
                .and_then(|b| b.get("ref"))
                .and_then(|r| r.as_str())
                .unwrap_or("")
                .to_string()
        };
        let actor = o
            .actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "local".to_string());
        let run_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1)
            .to_string();
        let workspace = o.workspace.display().to_string();
        let github: IndexMap<String, Value> = [
            ("action", s("")),
            ("action_path", s("")),
            ("actor", s(actor.clone())),
            ("api_url", s("https://api.github.com")),
            ("base_ref", s(pr_ref("base"))),
            ("event", event),
            ("event_name", s(o.event_name.clone())),
            ("graphql_url", s("https://api.github.com/graphql")),
            ("head_ref", s(pr_ref("head"))),
            ("job", s("")),
            ("ref", s(git_ref.clone())),
            ("ref_name", s(ref_name)),
            ("ref_protected", Value::Bool(false)),
            ("ref_type", s(ref_type)),
            ("repository", s(repository.clone())),
            ("repository_owner", s(owner)),
            ("retention_days", s("90")),
            ("run_attempt", s(o.run_attempt.unwrap_or(1).to_string())),
            ("run_id", s(run_id)),
            ("run_number", s(self.run_number(&repository).to_string())),
            ("server_url", s("https://github.com")),
            ("sha", s(sha)),
            ("token", s("")),
            ("triggering_actor", s(actor)),
            ("workflow", s(self.workflow_name())),
            ("workflow_ref", s("")),
            ("workspace", s(workspace)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        ctx.set("github", Value::Object(github));
        ctx.set("env", Value::Object(IndexMap::new()));
        ctx.set("vars", contexts::string_object(&o.vars));
        ctx.set("secrets", contexts::string_object(&o.secrets));
        ctx.set("inputs", inputs.context);
        ctx.set("matrix", Value::Object(IndexMap::new()));
        ctx.set("strategy", Value::Object(IndexMap::new()));
        ctx.set("steps", Value::Object(IndexMap::new()));
        ctx.set("job", Value::Object(IndexMap::new()));
        ctx.set("runner", Value::Object(IndexMap::new()));
        Ok(ctx)
    }

    fn workflow_name(&self) -> String {
        self.workflow
            .name
            .as_ref()
            .map(|n| n.value.clone())
            .unwrap_or_else(|| self.workflow.path.display().to_string())
    }

    pub(super) fn github_str(ctx: &Contexts, key: &str) -> String {
        ctx.get("github")
            .and_then(|g| g.get(key))
            .map(Value::to_display_string)
            .unwrap_or_default()
    }

    /// Runs (or plans) every matrix combination of one job.
    fn run_job(
        &self,
        job: &Job,
        base: &Contexts,
        git: &GitInfo,
        masker: &mut Masker,
        sink: &Emitter,
    ) -> Result<Vec<JobReport>, ExecError> {
        let id = job.id.value.clone();
        let job_sink = sink.for_job(&id);
        let sink = &job_sink;
        let mut ctx = base.clone();
        ctx.object_mut("github").insert("job".into(), s(id.clone()));
        let plain_name = job
            .name
            .as_ref()
            .filter(|n| n.value.is_literal())
            .map(|n| n.raw.clone())
            .unwrap_or_else(|| id.clone());
        if job.uses.is_some() {
            let reason = "calls a reusable workflow, which runner exec cannot run".to_string();
            sink.event(EventKind::JobSkipped {
                job: id.clone(),
                name: plain_name.clone(),
                reason,
            });
            return Ok(vec![skipped_job(&id, &plain_name, Status::Skipped)]);
        }
        // The job's `if:` is evaluated once, before the matrix expands, as on GitHub.
        let condition_text = job.if_.as_ref().map(|c| c.raw.clone());
        let run_it = match &job.if_ {
            None => ctx.state_success(),
            Some(cond) => match eval_condition(cond, &ctx) {
                Ok(v) => v,
                Err(p) => {
                    // GitHub fails a job whose condition cannot be evaluated.
                    self.annotate_problem(sink, masker, AnnotationLevel::Error, &p);
                    return Ok(vec![skipped_job(&id, &plain_name, Status::Failure)]);
                }
            },
        };
        if !run_it && !self.options.dry_run {
            let cancelled = ctx.state.cancelled;
            let reason = match &condition_text {
                Some(c) => format!("if: {c} was false"),
                None if cancelled => "the run was cancelled".to_string(),
                None => "a job it needs did not succeed".to_string(),
            };
            sink.event(EventKind::JobSkipped {
                job: id.clone(),
                name: plain_name.clone(),
                reason,
            });
            return Ok(vec![skipped_job(&id, &plain_name, Status::Skipped)]);
        }
        let combos = self.matrix_combinations(job, &ctx)?;
        let total = combos.len();
        let fail_fast = match job.strategy.as_ref().and_then(|s| s.fail_fast.as_ref()) {
            None => true,
            Some(v) => eval_bool(v, &ctx).unwrap_or(true),
        };
        let max_parallel = job
            .strategy
            .as_ref()
            .and_then(|s| s.max_parallel.as_ref())
            .and_then(|v| eval_number(v, &ctx).ok())
            .unwrap_or(total as f64);
        let mut reports = Vec::new();
        let mut failed = false;
        for (index, combo) in combos.into_iter().enumerate() {
            let mut jctx = ctx.clone();
            let has_matrix = combo.is_some();
            let matrix_value = combo.unwrap_or_else(|| Value::Object(IndexMap::new()));
            jctx.set("matrix", matrix_value.clone());
            let strategy: IndexMap<String, Value> = [
                ("fail-fast", Value::Bool(fail_fast)),
                ("job-index", Value::Number(index as f64)),
                ("job-total", Value::Number(total as f64)),
                ("max-parallel", Value::Number(max_parallel)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            jctx.set("strategy", Value::Object(strategy));
            let name = masker.mask(&self.job_display_name(
                job,
                &jctx,
                has_matrix.then_some(&matrix_value),
            ));
            if failed && fail_fast {
                sink.event(EventKind::JobSkipped {
                    job: id.clone(),
                    name: name.clone(),
                    reason: "fail-fast: another matrix combination failed".to_string(),
                });
                let mut r = skipped_job(&id, &name, Status::Cancelled);
                r.matrix = has_matrix.then(|| matrix_value.to_json());
                reports.push(r);
                continue;
            }
            self.warn_foreign_runner(job, &jctx, &name, sink);
            if self.options.dry_run {
                sink.event(EventKind::PlanJob {
                    job: id.clone(),
                    name: name.clone(),
                    needs: job.needs.iter().map(|n| n.value.clone()).collect(),
                    condition: condition_text.clone().map(|c| (c, run_it.to_string())),
                });
            }
            let mut runner = JobRun::new(self, job, jctx, git, masker, sink.clone(), name.clone())?;
            let mut report = if self.options.dry_run {
                runner.plan()
            } else {
                runner.run()?
            };
            report.matrix = has_matrix.then(|| matrix_value.to_json());
            if matches!(report.result, Status::Failure | Status::Cancelled) {
                failed = true;
            }
            reports.push(report);
        }
        Ok(reports)
    }

    /// `runs-on` asks for another OS than this host's: say so, then run here anyway.
    fn warn_foreign_runner(&self, job: &Job, ctx: &Contexts, name: &str, sink: &Emitter) {
        let Some(runs_on) = &job.runs_on else {
            return;
        };
        let host = contexts::runner_os();
        for label in &runs_on.labels {
            let text = render(label, ctx).unwrap_or_else(|_| label.raw.clone());
            let lower = text.to_ascii_lowercase();
            let wants = if lower.contains("windows") {
                "Windows"
            } else if lower.contains("macos") {
                "macOS"
            } else if lower.contains("ubuntu") || lower.contains("linux") {
                "Linux"
            } else {
                continue;
            };
            if wants != host {
                sink.event(EventKind::Warning {
                    message: format!(
                        "job '{name}' runs-on '{text}' ({wants}); running on this {host} host instead"
                    ),
                });
            }
        }
    }

    fn job_display_name(&self, job: &Job, ctx: &Contexts, matrix: Option<&Value>) -> String {
        let id = &job.id.value;
        if let Some(name) = &job.name {
            let rendered = name.value.render(ctx).unwrap_or_else(|_| name.raw.clone());
            // GitHub appends the combination when the name does not mention it.
            if let (Some(m), true) = (matrix, name.value.is_literal()) {
                return format!("{rendered} ({})", matrix_label(m));
            }
            return rendered;
        }
        match matrix {
            Some(m) => format!("{id} ({})", matrix_label(m)),
            None => id.clone(),
        }
    }

    pub(super) fn annotate_problem(
        &self,
        sink: &Emitter,
        masker: &Masker,
        level: AnnotationLevel,
        p: &Problem,
    ) {
        let diag = self.workflow.diagnostic(p.pos, p.message.clone());
        // The message already starts with `file:line:col:` and shows the line.
        sink.event(EventKind::Annotation {
            level,
            message: masker.mask(&diag.to_string()),
            title: None,
            file: None,
            line: None,
            col: None,
        });
    }
}

impl Contexts {
    pub(super) fn state_success(&self) -> bool {
        crate::expr::Host::status(self, crate::expr::StatusFunction::Success)
    }
}

fn skipped_job(id: &str, name: &str, result: Status) -> JobReport {
    JobReport {
        id: id.to_string(),
        name: name.to_string(),
        matrix: None,
        result,
        outputs: IndexMap::new(),
        raw_outputs: IndexMap::new(),
        steps: Vec::new(),
        not_run: Vec::new(),
        summary: String::new(),
        duration: Duration::ZERO,
    }
}

/// `a, b` from a combination's values, as GitHub labels matrix jobs.
fn matrix_label(matrix: &Value) -> String {
    match matrix {
        Value::Object(map) => map
            .values()
            .map(|v| match v {
                Value::Object(_) | Value::Array(_) => v.to_json().to_string(),
                other => other.to_display_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_display_string(),
    }
}

/// Maps an evaluation error inside `text` to its file position.
pub(super) fn problem_at<T>(located: &Located<T>, err: &EvalError) -> Problem {
    let span = match err {
        EvalError::UnknownContext { span, .. } | EvalError::Function { span, .. } => *span,
    };
    Problem {
        pos: located.pos_at(span.start.min(located.raw.len())),
        message: err.to_string(),
    }
}

pub(super) fn render(text: &Text, ctx: &Contexts) -> Result<String, Problem> {
    text.value.render(ctx).map_err(|e| problem_at(text, &e))
}

pub(super) fn eval_condition(cond: &Condition, ctx: &Contexts) -> Result<bool, Problem> {
    crate::expr::evaluate(&cond.value, ctx)
        .map(|v| v.is_truthy())
        .map_err(|e| problem_at(cond, &e))
}

pub(super) fn eval_bool(v: &OrExpr<bool>, ctx: &Contexts) -> Result<bool, Problem> {
    match v {
        OrExpr::Value { value, .. } => Ok(*value),
        OrExpr::Expr(t) => t
            .value
            .evaluate(ctx)
            .map(|v| v.is_truthy())
            .map_err(|e| problem_at(t, &e)),
    }
}

pub(super) fn eval_number(v: &OrExpr<f64>, ctx: &Contexts) -> Result<f64, Problem> {
    match v {
        OrExpr::Value { value, .. } => Ok(*value),
        OrExpr::Expr(t) => {
            let value = t.value.evaluate(ctx).map_err(|e| problem_at(t, &e))?;
            let n = match &value {
                Value::Number(n) => *n,
                Value::String(text) => text.trim().parse::<f64>().unwrap_or(f64::NAN),
                _ => f64::NAN,
            };
            if n.is_finite() {
                Ok(n)
            } else {
                Err(Problem {
                    pos: t.pos,
                    message: format!("expected a number, got '{}'", value.to_display_string()),
                })
            }
        }
    }
}
