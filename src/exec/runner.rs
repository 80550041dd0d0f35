//! The run: which jobs in which order, the contexts each sees, the step loop, post hooks and job
//! outputs. [`Runner`] is the library entry point `runner exec` and embedding CI runners use.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::action::{ActionContext, ActionError, ActionHandler, ActionRegistry, JobInfo, LogLevel};
use super::commands::{self, CommandParser, Line, WorkflowCommand};
use super::contexts::{self, Contexts, JobState, s};
use super::error::ExecError;
use super::git::{self, GitInfo};
use super::mask::Masker;
use super::process::{self, Exit, ProcessSpec};
use super::report::{AnnotationLevel, Event, EventSink, JobReport, RunReport, Status, StepReport};
use super::shell;
use crate::expr::{EvalError, Value};
use crate::workflow::{
    Condition, Job, Located, OrExpr, Pos, Step, StepKind, Text, Tree, TreeKind, Workflow,
};

/// GitHub's default job timeout.
const DEFAULT_JOB_TIMEOUT_MINUTES: f64 = 360.0;

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
    /// Print the plan instead of running.
    pub dry_run: bool,
    /// Fail steps that use an action no handler implements (instead of skipping them).
    pub strict: bool,
    /// The home directory `~` means to handlers (default `$HOME`).
    pub home: Option<PathBuf>,
    /// Set to true to cancel the run (Ctrl-C): running steps are killed, only `always()` /
    /// `cancelled()` steps and jobs still run.
    pub cancel: Arc<AtomicBool>,
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
            dry_run: false,
            strict: false,
            home: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }
}

/// Runs the jobs of one workflow.
pub struct Runner {
    workflow: Workflow,
    options: RunOptions,
    registry: ActionRegistry,
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

/// What a finished job hands to the jobs that need it.
#[derive(Debug, Clone)]
struct NeedResult {
    result: Status,
    outputs: IndexMap<String, String>,
}

/// A post step registered by a `uses:` step.
struct PostHook {
    handler: Arc<dyn ActionHandler>,
    uses: String,
    name: String,
    id: Option<String>,
    condition: String,
    inputs: IndexMap<String, String>,
    env: IndexMap<String, String>,
    state: IndexMap<String, String>,
}

/// A runtime problem at a place in the workflow (bad expression result, failing function).
#[derive(Debug, Clone)]
struct Problem {
    pos: Pos,
    message: String,
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
        }
    }

    /// The workflow being run.
    pub fn workflow(&self) -> &Workflow {
        &self.workflow
    }

    /// Runs the selected jobs in dependency order (or plans them with `dry_run`), reporting
    /// progress to `sink`. `Err` only for problems that stop the run before a job starts.
    pub fn run(&self, sink: &mut dyn EventSink) -> Result<RunReport, ExecError> {
        let selected = self.select_jobs()?;
        let git = git::inspect(&self.options.workspace);
        let mut masker = Masker::new();
        for value in self.options.secrets.values() {
            masker.add(value);
        }
        for warning in &self.workflow.warnings {
            sink.event(&Event::Warning {
                message: warning.to_string(),
            });
        }
        let base = self.base_contexts(&git);
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
                    sink.event(&Event::Warning {
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

    /// Job ids to run, in dependency order.
    fn select_jobs(&self) -> Result<Vec<String>, ExecError> {
        let order = job_order(&self.workflow);
        let Some(wanted) = &self.options.job else {
            return Ok(order);
        };
        if !self.workflow.jobs.contains_key(wanted) {
            return Err(ExecError::NoSuchJob {
                job: wanted.clone(),
                available: self
                    .workflow
                    .jobs
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let mut keep: HashSet<String> = HashSet::new();
        keep.insert(wanted.clone());
        if self.options.with_needs {
            let mut stack = vec![wanted.clone()];
            while let Some(id) = stack.pop() {
                if let Some(job) = self.workflow.jobs.get(&id) {
                    for need in &job.needs {
                        if keep.insert(need.value.clone()) {
                            stack.push(need.value.clone());
                        }
                    }
                }
            }
        }
        Ok(order.into_iter().filter(|id| keep.contains(id)).collect())
    }

    /// The job-level status functions: success() needs every needed job to have succeeded,
    /// failure() is true when any ancestor failed.
    fn needs_state(&self, job: &Job, results: &HashMap<String, NeedResult>) -> JobState {
        let mut failed = false;
        let mut blocked = false;
        let mut seen = HashSet::new();
        let mut stack: Vec<&str> = job.needs.iter().map(|n| n.value.as_str()).collect();
        let direct: HashSet<&str> = stack.iter().copied().collect();
        while let Some(id) = stack.pop() {
            if !seen.insert(id) {
                continue;
            }
            match results.get(id).map(|r| r.result) {
                Some(Status::Failure) => failed = true,
                Some(Status::Success) | None => {}
                Some(Status::Skipped | Status::Cancelled) => {
                    if direct.contains(id) {
                        blocked = true;
                    }
                }
            }
            if let Some(j) = self.workflow.jobs.get(id) {
                stack.extend(j.needs.iter().map(|n| n.value.as_str()));
            }
        }
        JobState {
            failed,
            cancelled: self.options.cancel.load(Ordering::SeqCst),
            blocked,
        }
    }

    /// Contexts every job starts from.
    fn base_contexts(&self, git: &GitInfo) -> Contexts {
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
        let event = Value::from_json(o.event.clone());
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
            ("run_attempt", s("1")),
            ("run_id", s(run_id)),
            ("run_number", s("1")),
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
        let inputs = o
            .event
            .get("inputs")
            .cloned()
            .map(Value::from_json)
            .unwrap_or_else(|| Value::Object(IndexMap::new()));
        ctx.set("inputs", inputs);
        ctx.set("matrix", Value::Object(IndexMap::new()));
        ctx.set("strategy", Value::Object(IndexMap::new()));
        ctx.set("steps", Value::Object(IndexMap::new()));
        ctx.set("job", Value::Object(IndexMap::new()));
        ctx.set("runner", Value::Object(IndexMap::new()));
        ctx
    }

    fn workflow_name(&self) -> String {
        self.workflow
            .name
            .as_ref()
            .map(|n| n.value.clone())
            .unwrap_or_else(|| self.workflow.path.display().to_string())
    }

    fn github_str(ctx: &Contexts, key: &str) -> String {
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
        sink: &mut dyn EventSink,
    ) -> Result<Vec<JobReport>, ExecError> {
        let id = job.id.value.clone();
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
            sink.event(&Event::JobSkipped {
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
            sink.event(&Event::JobSkipped {
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
                sink.event(&Event::JobSkipped {
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
                sink.event(&Event::PlanJob {
                    job: id.clone(),
                    name: name.clone(),
                    needs: job.needs.iter().map(|n| n.value.clone()).collect(),
                    condition: condition_text.clone().map(|c| (c, run_it.to_string())),
                });
            }
            let mut runner = JobRun::new(self, job, jctx, git, masker, sink, name.clone())?;
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
    fn warn_foreign_runner(&self, job: &Job, ctx: &Contexts, name: &str, sink: &mut dyn EventSink) {
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
                sink.event(&Event::Warning {
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

    /// The combinations to run: `None` (one run, no matrix) or one object per combination.
    fn matrix_combinations(
        &self,
        job: &Job,
        ctx: &Contexts,
    ) -> Result<Vec<Option<Value>>, ExecError> {
        let Some(tree) = job.strategy.as_ref().and_then(|s| s.matrix.as_ref()) else {
            return Ok(vec![None]);
        };
        let value = eval_tree(tree, ctx).map_err(|p| self.plan_error(p))?;
        let combos = crate::workflow::expand_matrix(&value).map_err(|e| {
            self.plan_error(Problem {
                pos: tree.pos,
                message: e.to_string(),
            })
        })?;
        let filtered = crate::workflow::filter_matrix(combos, &self.options.matrix);
        if filtered.is_empty() {
            return Err(ExecError::MatrixFilter {
                filter: self
                    .options
                    .matrix
                    .iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(","),
                job: job.id.value.clone(),
            });
        }
        Ok(filtered
            .into_iter()
            .map(|c| Some(Value::Object(c)))
            .collect())
    }

    fn plan_error(&self, p: Problem) -> ExecError {
        ExecError::Plan {
            path: self.workflow.path.clone(),
            line: p.pos.line,
            column: p.pos.column,
            message: p.message,
        }
    }

    fn annotate_problem(
        &self,
        sink: &mut dyn EventSink,
        masker: &Masker,
        level: AnnotationLevel,
        p: &Problem,
    ) {
        let diag = self.workflow.diagnostic(p.pos, p.message.clone());
        // The message already starts with `file:line:col:` and shows the line.
        sink.event(&Event::Annotation {
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
    fn state_success(&self) -> bool {
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

/// The result `needs.<id>` sees for a (possibly matrix) job: failure if any combination
/// failed, else cancelled if any was cancelled, else success if any succeeded, else skipped;
/// outputs merged in run order (later combinations win, as on GitHub).
fn aggregate(jobs: &[JobReport]) -> NeedResult {
    let results: Vec<Status> = jobs.iter().map(|j| j.result).collect();
    let result = if results.contains(&Status::Failure) {
        Status::Failure
    } else if results.contains(&Status::Cancelled) {
        Status::Cancelled
    } else if results.contains(&Status::Success) {
        Status::Success
    } else {
        Status::Skipped
    };
    let mut outputs = IndexMap::new();
    for job in jobs {
        for (k, v) in &job.raw_outputs {
            outputs.insert(k.clone(), v.clone());
        }
    }
    NeedResult { result, outputs }
}

fn needs_context(job: &Job, results: &HashMap<String, NeedResult>) -> Value {
    let mut needs = IndexMap::new();
    for need in &job.needs {
        let (result, outputs) = match results.get(&need.value) {
            Some(r) => (r.result, r.outputs.clone()),
            None => (Status::Skipped, IndexMap::new()),
        };
        let entry: IndexMap<String, Value> = [
            ("result".to_string(), s(result.as_str())),
            ("outputs".to_string(), contexts::string_object(&outputs)),
        ]
        .into_iter()
        .collect();
        needs.insert(need.value.clone(), Value::Object(entry));
    }
    Value::Object(needs)
}

/// Maps an evaluation error inside `text` to its file position.
fn problem_at<T>(located: &Located<T>, err: &EvalError) -> Problem {
    let span = match err {
        EvalError::UnknownContext { span, .. } | EvalError::Function { span, .. } => *span,
    };
    Problem {
        pos: located.pos_at(span.start.min(located.raw.len())),
        message: err.to_string(),
    }
}

fn render(text: &Text, ctx: &Contexts) -> Result<String, Problem> {
    text.value.render(ctx).map_err(|e| problem_at(text, &e))
}

fn eval_condition(cond: &Condition, ctx: &Contexts) -> Result<bool, Problem> {
    crate::expr::evaluate(&cond.value, ctx)
        .map(|v| v.is_truthy())
        .map_err(|e| problem_at(cond, &e))
}

fn eval_bool(v: &OrExpr<bool>, ctx: &Contexts) -> Result<bool, Problem> {
    match v {
        OrExpr::Value { value, .. } => Ok(*value),
        OrExpr::Expr(t) => t
            .value
            .evaluate(ctx)
            .map(|v| v.is_truthy())
            .map_err(|e| problem_at(t, &e)),
    }
}

fn eval_number(v: &OrExpr<f64>, ctx: &Contexts) -> Result<f64, Problem> {
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

/// Evaluates a YAML subtree whose scalars may be templates (matrices).
fn eval_tree(tree: &Tree, ctx: &Contexts) -> Result<Value, Problem> {
    match &tree.kind {
        TreeKind::Scalar(text, _) => {
            if text.value.is_literal() {
                Ok(tree.literal_value())
            } else {
                text.value.evaluate(ctx).map_err(|e| problem_at(text, &e))
            }
        }
        TreeKind::Seq(items) => Ok(Value::Array(
            items
                .iter()
                .map(|t| eval_tree(t, ctx))
                .collect::<Result<_, _>>()?,
        )),
        TreeKind::Map(entries) => Ok(Value::Object(
            entries
                .iter()
                .map(|(k, v)| Ok((k.value.clone(), eval_tree(v, ctx)?)))
                .collect::<Result<_, Problem>>()?,
        )),
    }
}

/// Job ids in dependency order.
fn job_order(workflow: &Workflow) -> Vec<String> {
    crate::workflow::job_order(workflow)
        .into_iter()
        .cloned()
        .collect()
}

/// One job run (one matrix combination).
struct JobRun<'r> {
    runner: &'r Runner,
    job: &'r Job,
    ctx: Contexts,
    masker: &'r mut Masker,
    sink: &'r mut dyn EventSink,
    name: String,
    info: JobInfo,
    temp: tempfile::TempDir,
    /// Workflow + job `env:` (evaluated), then `GITHUB_ENV` additions.
    env: IndexMap<String, String>,
    /// `GITHUB_PATH` additions, most recent first.
    path_prefix: Vec<String>,
    failed: bool,
    cancelled: bool,
    deadline: Instant,
    timeout_minutes: f64,
    continue_on_error: bool,
    steps: Vec<StepReport>,
    posts: Vec<PostHook>,
    summary: String,
    event_path: PathBuf,
    setup_problem: Option<Problem>,
    /// `RUNNER_TRACKING_ID` of this job's processes.
    tracking_id: String,
}

impl<'r> JobRun<'r> {
    fn new(
        runner: &'r Runner,
        job: &'r Job,
        mut ctx: Contexts,
        git: &GitInfo,
        masker: &'r mut Masker,
        sink: &'r mut dyn EventSink,
        name: String,
    ) -> Result<Self, ExecError> {
        let temp = tempfile::Builder::new()
            .prefix("runner-job-")
            .tempdir()
            .map_err(|source| ExecError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let runner_temp = temp.path().join("temp");
        let tool_cache = temp.path().join("tool-cache");
        let workflow_dir = temp.path().join("workflow");
        for dir in [&runner_temp, &tool_cache, &workflow_dir] {
            std::fs::create_dir_all(dir).map_err(|source| ExecError::Io {
                path: dir.clone(),
                source,
            })?;
        }
        let event_path = workflow_dir.join("event.json");
        let event_json = serde_json::to_string_pretty(&runner.options.event).unwrap_or_default();
        std::fs::write(&event_path, event_json).map_err(|source| ExecError::Io {
            path: event_path.clone(),
            source,
        })?;
        let debug = runner
            .options
            .secrets
            .get("ACTIONS_STEP_DEBUG")
            .or_else(|| runner.options.vars.get("ACTIONS_STEP_DEBUG"))
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let runner_ctx: IndexMap<String, Value> = [
            ("arch", s(contexts::runner_arch())),
            ("debug", s(if debug { "1" } else { "" })),
            ("environment", s("self-hosted")),
            ("name", s("runner-local")),
            ("os", s(contexts::runner_os())),
            ("temp", s(runner_temp.display().to_string())),
            ("tool_cache", s(tool_cache.display().to_string())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        ctx.set("runner", Value::Object(runner_ctx));
        let mut job_ctx = IndexMap::new();
        job_ctx.insert("status".to_string(), s("success"));
        job_ctx.insert("container".to_string(), Value::Object(IndexMap::new()));
        job_ctx.insert("services".to_string(), Value::Object(IndexMap::new()));
        ctx.set("job", Value::Object(job_ctx));
        ctx.state = JobState::default();

        let base_ref = Runner::github_str(&ctx, "base_ref");
        let info = JobInfo {
            workspace: runner.options.workspace.clone(),
            repository: Runner::github_str(&ctx, "repository"),
            git_ref: Runner::github_str(&ctx, "ref"),
            base_ref: (!base_ref.is_empty()).then(|| format!("refs/heads/{base_ref}")),
            default_branch: git.default_branch.clone(),
            run_id: Runner::github_str(&ctx, "run_id"),
            runner_os: contexts::runner_os().to_string(),
            home: runner
                .options
                .home
                .clone()
                .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("/")),
            temp: runner_temp,
        };

        let mut run = Self {
            runner,
            job,
            ctx,
            masker,
            sink,
            name,
            info,
            temp,
            env: runner.options.env.clone(),
            path_prefix: Vec::new(),
            failed: false,
            cancelled: false,
            deadline: Instant::now(),
            timeout_minutes: DEFAULT_JOB_TIMEOUT_MINUTES,
            continue_on_error: false,
            steps: Vec::new(),
            posts: Vec::new(),
            summary: String::new(),
            event_path,
            setup_problem: None,
            tracking_id: format!("runner_{}", uuid::Uuid::now_v7().simple()),
        };
        run.sync_env_context();
        run.setup_problem = run.evaluate_job_settings().err();
        Ok(run)
    }

    /// Workflow and job `env:`, `timeout-minutes`, `continue-on-error`.
    fn evaluate_job_settings(&mut self) -> Result<(), Problem> {
        let wf = &self.runner.workflow;
        for (key, text) in wf.env.iter().chain(self.job.env.iter()) {
            let value = render(text, &self.ctx)?;
            self.env.insert(key.clone(), value);
            self.sync_env_context();
        }
        if let Some(t) = &self.job.timeout_minutes {
            self.timeout_minutes = eval_number(t, &self.ctx)?;
        }
        if let Some(c) = &self.job.continue_on_error {
            self.continue_on_error = eval_bool(c, &self.ctx)?;
        }
        Ok(())
    }

    fn sync_env_context(&mut self) {
        self.ctx.set("env", contexts::string_object(&self.env));
    }

    fn sync_state(&mut self) {
        self.ctx.state = JobState {
            failed: self.failed,
            cancelled: self.cancelled,
            blocked: false,
        };
        let status = if self.cancelled {
            "cancelled"
        } else if self.failed {
            "failure"
        } else {
            "success"
        };
        self.ctx
            .object_mut("job")
            .insert("status".into(), s(status));
    }

    fn emit(&mut self, event: Event) {
        self.sink.event(&event);
    }

    fn annotate(&mut self, level: AnnotationLevel, message: &str) {
        let message = self.masker.mask(message);
        self.emit(Event::Annotation {
            level,
            message,
            title: None,
            file: None,
            line: None,
            col: None,
        });
    }

    fn annotate_problem(&mut self, p: &Problem) {
        self.runner
            .annotate_problem(self.sink, self.masker, AnnotationLevel::Error, p);
    }

    /// `--dry-run`: what would run, with `if:` and `with:` evaluated assuming success so far.
    fn plan(&mut self) -> JobReport {
        let job = self.job;
        for step in &job.steps {
            let name = self.step_name(step);
            let condition = step.if_.as_ref().map(|c| {
                let verdict = match eval_condition(c, &self.ctx) {
                    Ok(v) => v.to_string(),
                    Err(p) => format!("error: {}", p.message),
                };
                (c.raw.clone(), verdict)
            });
            let (action, with) = match &step.kind {
                StepKind::Run { .. } => ("run".to_string(), IndexMap::new()),
                StepKind::Uses { uses, with } => {
                    let handled = if self.runner.registry.get(&uses.value).is_some() {
                        "built in"
                    } else {
                        "not supported: skipped"
                    };
                    let with = with
                        .iter()
                        .map(|(k, v)| {
                            let value = render(v, &self.ctx)
                                .unwrap_or_else(|p| format!("<error: {}>", p.message));
                            (k.clone(), self.masker.mask(&value))
                        })
                        .collect();
                    (format!("uses {} ({handled})", uses.value), with)
                }
            };
            self.emit(Event::PlanStep {
                name: name.clone(),
                action,
                condition,
                with,
            });
            self.steps.push(StepReport {
                id: step.id.as_ref().map(|i| i.value.clone()),
                name,
                outcome: Status::Skipped,
                conclusion: Status::Skipped,
                outputs: IndexMap::new(),
                duration: Duration::ZERO,
            });
        }
        self.finish_report(
            Status::Success,
            Duration::ZERO,
            IndexMap::new(),
            IndexMap::new(),
        )
    }

    fn finish_report(
        &mut self,
        result: Status,
        duration: Duration,
        outputs: IndexMap<String, String>,
        raw_outputs: IndexMap<String, String>,
    ) -> JobReport {
        JobReport {
            id: self.job.id.value.clone(),
            name: self.masker.mask(&self.name),
            matrix: None,
            result,
            outputs,
            raw_outputs,
            steps: std::mem::take(&mut self.steps),
            summary: self.masker.mask(&self.summary),
            duration,
        }
    }

    fn step_name(&self, step: &Step) -> String {
        let name = match &step.name {
            Some(n) => render(n, &self.ctx).unwrap_or_else(|_| n.raw.clone()),
            None => step.default_name(),
        };
        self.masker.mask(&name)
    }

    fn run(&mut self) -> Result<JobReport, ExecError> {
        let started = Instant::now();
        let job_name = self.masker.mask(&self.name);
        self.emit(Event::JobStarted {
            job: self.job.id.value.clone(),
            name: job_name.clone(),
        });
        if let Some(p) = self.setup_problem.take() {
            self.annotate_problem(&p);
            self.failed = true;
        }
        let minutes = self.timeout_minutes.max(0.0);
        self.deadline = started + Duration::from_secs_f64((minutes * 60.0).min(1e9));
        let job = self.job;
        if !self.failed {
            for step in &job.steps {
                self.run_step(step)?;
            }
        }
        self.run_posts()?;
        // Like GitHub's runner, stop what the job's steps left running in the background.
        for pid in process::kill_tracked(&self.tracking_id) {
            self.emit(Event::Debug {
                message: format!("Terminated orphan process {pid}"),
            });
        }
        let (outputs, raw_outputs) = self.job_outputs();
        let result = if self.cancelled {
            Status::Cancelled
        } else if self.failed && !self.continue_on_error {
            Status::Failure
        } else {
            Status::Success
        };
        let duration = started.elapsed();
        self.emit(Event::JobFinished {
            job: self.job.id.value.clone(),
            name: job_name,
            result,
            duration,
        });
        Ok(self.finish_report(result, duration, outputs, raw_outputs))
    }

    /// Job `outputs:`, evaluated after the last step; values that contain a secret are dropped
    /// with a warning, as on GitHub.
    fn job_outputs(&mut self) -> (IndexMap<String, String>, IndexMap<String, String>) {
        let mut masked = IndexMap::new();
        let mut raw = IndexMap::new();
        let job = self.job;
        for (key, text) in &job.outputs {
            match render(text, &self.ctx) {
                Ok(value) => {
                    let m = self.masker.mask(&value);
                    if m != value {
                        self.annotate(
                            AnnotationLevel::Warning,
                            &format!("Skip output '{key}' since it may contain secret."),
                        );
                        continue;
                    }
                    masked.insert(key.clone(), m);
                    raw.insert(key.clone(), value);
                }
                Err(p) => {
                    self.annotate_problem(&p);
                }
            }
        }
        (masked, raw)
    }

    fn record_step(
        &mut self,
        step: Option<&Step>,
        name: String,
        outcome: Status,
        conclusion: Status,
        outputs: &IndexMap<String, String>,
        duration: Duration,
    ) {
        let id = step.and_then(|s| s.id.as_ref().map(|i| i.value.clone()));
        if let Some(id) = &id {
            let entry: IndexMap<String, Value> = [
                ("outputs".to_string(), contexts::string_object(outputs)),
                ("outcome".to_string(), s(outcome.as_str())),
                ("conclusion".to_string(), s(conclusion.as_str())),
            ]
            .into_iter()
            .collect();
            self.ctx
                .object_mut("steps")
                .insert(id.clone(), Value::Object(entry));
        }
        if conclusion == Status::Failure {
            self.failed = true;
        }
        self.sync_state();
        self.emit(Event::StepFinished {
            name: name.clone(),
            outcome,
            conclusion,
            duration,
        });
        let outputs = outputs
            .iter()
            .map(|(k, v)| (k.clone(), self.masker.mask(v)))
            .collect();
        self.steps.push(StepReport {
            id,
            name,
            outcome,
            conclusion,
            outputs,
            duration,
        });
    }

    fn run_step(&mut self, step: &Step) -> Result<(), ExecError> {
        self.sync_state();
        if self.runner.options.cancel.load(Ordering::SeqCst) {
            self.cancelled = true;
            self.sync_state();
        }
        let name = self.step_name(step);
        let run_it = match &step.if_ {
            None => self.ctx.state_success(),
            Some(cond) => match eval_condition(cond, &self.ctx) {
                Ok(v) => v,
                Err(p) => {
                    self.emit(Event::StepStarted { name: name.clone() });
                    self.annotate_problem(&p);
                    self.record_step(
                        Some(step),
                        name,
                        Status::Failure,
                        Status::Failure,
                        &IndexMap::new(),
                        Duration::ZERO,
                    );
                    return Ok(());
                }
            },
        };
        if !run_it {
            let reason = match &step.if_ {
                Some(c) => format!("if: {} was false", c.raw.trim()),
                None if self.cancelled => "the job was cancelled".to_string(),
                None => "a previous step failed".to_string(),
            };
            self.emit(Event::StepSkipped {
                name: name.clone(),
                reason,
            });
            let id = step.id.as_ref().map(|i| i.value.clone());
            if let Some(id) = &id {
                let entry: IndexMap<String, Value> = [
                    ("outputs".to_string(), Value::Object(IndexMap::new())),
                    ("outcome".to_string(), s("skipped")),
                    ("conclusion".to_string(), s("skipped")),
                ]
                .into_iter()
                .collect();
                self.ctx
                    .object_mut("steps")
                    .insert(id.clone(), Value::Object(entry));
            }
            self.steps.push(StepReport {
                id,
                name,
                outcome: Status::Skipped,
                conclusion: Status::Skipped,
                outputs: IndexMap::new(),
                duration: Duration::ZERO,
            });
            return Ok(());
        }
        self.emit(Event::StepStarted { name: name.clone() });
        let started = Instant::now();
        let mut outputs = IndexMap::new();
        let outcome = match self.execute_step(step, &name, &mut outputs) {
            Ok(outcome) => outcome,
            Err(StepFailure::Problem(p)) => {
                self.annotate_problem(&p);
                Status::Failure
            }
            Err(StepFailure::Message(m)) => {
                self.annotate(AnnotationLevel::Error, &m);
                Status::Failure
            }
            Err(StepFailure::Fatal(e)) => return Err(e),
        };
        let continue_on_error = match &step.continue_on_error {
            None => false,
            Some(c) => match eval_bool(c, &self.ctx) {
                Ok(v) => v,
                Err(p) => {
                    self.annotate_problem(&p);
                    false
                }
            },
        };
        let conclusion = if outcome == Status::Failure && continue_on_error {
            Status::Success
        } else {
            outcome
        };
        self.record_step(
            Some(step),
            name,
            outcome,
            conclusion,
            &outputs,
            started.elapsed(),
        );
        Ok(())
    }

    /// Step env: job env (+ `GITHUB_ENV`), then the step's own `env:`.
    fn step_env(&mut self, step: &Step) -> Result<IndexMap<String, String>, Problem> {
        let mut env = self.env.clone();
        for (key, text) in &step.env {
            let value = render(text, &self.ctx)?;
            env.insert(key.clone(), value);
            self.ctx.set("env", contexts::string_object(&env));
        }
        Ok(env)
    }

    fn execute_step(
        &mut self,
        step: &Step,
        name: &str,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<Status, StepFailure> {
        let env = self.step_env(step).map_err(StepFailure::Problem);
        let result = match env {
            Err(e) => Err(e),
            Ok(env) => {
                let step_id = step
                    .id
                    .as_ref()
                    .map(|i| i.value.clone())
                    .unwrap_or_else(|| format!("__run_{}", step.index + 1));
                self.ctx
                    .object_mut("github")
                    .insert("action".into(), s(step_id.clone()));
                match &step.kind {
                    StepKind::Run {
                        run,
                        shell,
                        working_directory,
                    } => self.run_script(
                        step,
                        name,
                        &step_id,
                        &env,
                        run,
                        shell.as_ref(),
                        working_directory.as_ref(),
                        outputs,
                    ),
                    StepKind::Uses { uses, with } => self.run_action(
                        step,
                        name,
                        &env,
                        uses.value.as_str(),
                        uses.pos,
                        with,
                        outputs,
                    ),
                }
            }
        };
        // The step's env: never leaks into the next step's expressions.
        self.sync_env_context();
        result
    }

    fn timeout_for(&self, step: &Step) -> Result<(Option<Duration>, bool), Problem> {
        // Once the job is cancelled, cleanup steps (`if: always()`) get only their own timeout.
        let job_left = if self.cancelled {
            Duration::from_secs(u32::MAX.into())
        } else {
            self.deadline.saturating_duration_since(Instant::now())
        };
        let step_timeout = match &step.timeout_minutes {
            Some(t) => Some(Duration::from_secs_f64(
                (eval_number(t, &self.ctx)?.max(0.0) * 60.0).min(1e9),
            )),
            None => None,
        };
        Ok(match step_timeout {
            Some(t) if t < job_left => (Some(t), false),
            _ => (Some(job_left), true),
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn run_script(
        &mut self,
        step: &Step,
        name: &str,
        step_id: &str,
        env: &IndexMap<String, String>,
        run: &Text,
        shell: Option<&Text>,
        working_directory: Option<&Text>,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<Status, StepFailure> {
        let wf = &self.runner.workflow;
        let script = render(run, &self.ctx).map_err(StepFailure::Problem)?;
        let shell_text = shell
            .or(self.job.defaults.shell.as_ref())
            .or(wf.defaults.shell.as_ref());
        let shell_value = match shell_text {
            Some(t) => Some(render(t, &self.ctx).map_err(StepFailure::Problem)?),
            None => None,
        };
        let wd_text = working_directory
            .or(self.job.defaults.working_directory.as_ref())
            .or(wf.defaults.working_directory.as_ref());
        let cwd = match wd_text {
            Some(t) => {
                let wd = render(t, &self.ctx).map_err(StepFailure::Problem)?;
                self.runner.options.workspace.join(wd)
            }
            None => self.runner.options.workspace.clone(),
        };
        let uuid = uuid::Uuid::now_v7();
        let runner_temp = self.info.temp.clone();
        let script_path = runner_temp.join(format!(
            "{uuid}{}",
            shell::extension_for(shell_value.as_deref())
        ));
        std::fs::write(&script_path, &script).map_err(|source| {
            StepFailure::Fatal(ExecError::Io {
                path: script_path.clone(),
                source,
            })
        })?;
        let files = FileCommands::create(self.temp.path(), &uuid.to_string())
            .map_err(StepFailure::Fatal)?;
        let proc_env = self.process_env(env, step_id, &files);
        let path_var = proc_env.get("PATH").cloned().unwrap_or_default();
        let shell_cmd =
            shell::resolve(shell_value.as_deref(), &script_path, &path_var).map_err(|e| {
                let _ = std::fs::remove_file(&script_path);
                StepFailure::Message(e.to_string())
            })?;
        self.emit(Event::Debug {
            message: format!("shell: {}", shell_cmd.display),
        });
        if !cwd.is_dir() {
            return Err(StepFailure::Message(format!(
                "working-directory {} does not exist",
                cwd.display()
            )));
        }
        let (timeout, is_job_deadline) = self.timeout_for(step).map_err(StepFailure::Problem)?;
        let spec = ProcessSpec {
            program: shell_cmd.program.clone(),
            args: shell_cmd.args.clone(),
            env: proc_env,
            cwd,
            timeout,
            // Once the job is cancelled, the steps that still run (`if: always()`) are cleanup
            // and must not be killed by the same cancellation.
            cancel: if self.cancelled {
                Arc::new(AtomicBool::new(false))
            } else {
                self.runner.options.cancel.clone()
            },
        };
        let mut io = StepIo {
            parser: CommandParser::new(),
            echo: false,
            failed_command: false,
            outputs: IndexMap::new(),
            state: IndexMap::new(),
        };
        let masker_ptr: &mut Masker = self.masker;
        let allow_unsecure = env
            .get("ACTIONS_ALLOW_UNSECURE_COMMANDS")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let sink: &mut dyn EventSink = self.sink;
        let mut new_env: Vec<(String, String)> = Vec::new();
        let mut new_path: Vec<String> = Vec::new();
        let exit = {
            let mut on_line = |_stream: process::Stream, line: &str| {
                io.handle_line(
                    line,
                    masker_ptr,
                    sink,
                    allow_unsecure,
                    &mut new_env,
                    &mut new_path,
                );
            };
            process::run(&spec, &mut on_line)
        };
        let (exit, _pgid) = exit.map_err(|e| StepFailure::Message(e.to_string()))?;
        for (k, v) in io.outputs.drain(..) {
            outputs.insert(k, v);
        }
        for (k, v) in new_env {
            self.env.insert(k, v);
        }
        for p in new_path {
            self.add_path(p);
        }
        // File commands are processed whatever the exit code, as the runner does.
        let mut status = match exit {
            Exit::Code(0) => Status::Success,
            Exit::Code(code) => {
                self.annotate(
                    AnnotationLevel::Error,
                    &format!("Process completed with exit code {code}."),
                );
                Status::Failure
            }
            Exit::Signal(sig) => {
                self.annotate(
                    AnnotationLevel::Error,
                    &format!("Process was terminated by signal {sig}."),
                );
                Status::Failure
            }
            Exit::TimedOut if is_job_deadline => {
                self.annotate(
                    AnnotationLevel::Error,
                    &format!(
                        "The job has exceeded its maximum execution time of {} minutes.",
                        format_minutes(self.timeout_minutes)
                    ),
                );
                self.cancelled = true;
                Status::Cancelled
            }
            Exit::TimedOut => {
                let minutes = step
                    .timeout_minutes
                    .as_ref()
                    .and_then(|t| eval_number(t, &self.ctx).ok())
                    .unwrap_or(0.0);
                self.annotate(
                    AnnotationLevel::Error,
                    &format!(
                        "The step '{name}' has timed out after {} minutes.",
                        format_minutes(minutes)
                    ),
                );
                Status::Failure
            }
            Exit::Cancelled => {
                self.annotate(AnnotationLevel::Error, "The operation was canceled.");
                self.cancelled = true;
                Status::Cancelled
            }
        };
        if io.failed_command && status == Status::Success {
            status = Status::Failure;
        }
        match self.apply_file_commands(&files, outputs) {
            Ok(()) => {}
            Err(e) => {
                self.annotate(AnnotationLevel::Error, &e.to_string());
                if status == Status::Success {
                    status = Status::Failure;
                }
            }
        }
        let _ = std::fs::remove_file(&script_path);
        Ok(status)
    }

    fn add_path(&mut self, dir: String) {
        self.path_prefix.retain(|p| *p != dir);
        self.path_prefix.insert(0, dir);
    }

    /// Host env < GitHub's default variables < the step's env; `PATH` gets `GITHUB_PATH`
    /// additions in front.
    fn process_env(
        &self,
        env: &IndexMap<String, String>,
        step_id: &str,
        files: &FileCommands,
    ) -> IndexMap<String, String> {
        let mut out: IndexMap<String, String> = std::env::vars()
            .filter(|(k, _)| {
                !k.starts_with("GITHUB_") && !k.starts_with("INPUT_") && !k.starts_with("STATE_")
            })
            .collect();
        let g = |k: &str| Runner::github_str(&self.ctx, k);
        let r = |k: &str| {
            self.ctx
                .get("runner")
                .and_then(|v| v.get(k))
                .map(Value::to_display_string)
                .unwrap_or_default()
        };
        let defaults = [
            ("CI", "true".to_string()),
            (process::TRACKING_VAR, self.tracking_id.clone()),
            ("GITHUB_ACTIONS", "true".to_string()),
            ("GITHUB_ACTION", step_id.to_string()),
            ("GITHUB_ACTOR", g("actor")),
            ("GITHUB_API_URL", g("api_url")),
            ("GITHUB_BASE_REF", g("base_ref")),
            ("GITHUB_EVENT_NAME", g("event_name")),
            ("GITHUB_EVENT_PATH", self.event_path.display().to_string()),
            ("GITHUB_GRAPHQL_URL", g("graphql_url")),
            ("GITHUB_HEAD_REF", g("head_ref")),
            ("GITHUB_JOB", g("job")),
            ("GITHUB_REF", g("ref")),
            ("GITHUB_REF_NAME", g("ref_name")),
            ("GITHUB_REF_TYPE", g("ref_type")),
            ("GITHUB_REPOSITORY", g("repository")),
            ("GITHUB_REPOSITORY_OWNER", g("repository_owner")),
            ("GITHUB_RETENTION_DAYS", g("retention_days")),
            ("GITHUB_RUN_ATTEMPT", g("run_attempt")),
            ("GITHUB_RUN_ID", g("run_id")),
            ("GITHUB_RUN_NUMBER", g("run_number")),
            ("GITHUB_SERVER_URL", g("server_url")),
            ("GITHUB_SHA", g("sha")),
            ("GITHUB_TRIGGERING_ACTOR", g("triggering_actor")),
            ("GITHUB_WORKFLOW", g("workflow")),
            ("GITHUB_WORKSPACE", g("workspace")),
            ("GITHUB_OUTPUT", files.output.display().to_string()),
            ("GITHUB_ENV", files.env.display().to_string()),
            ("GITHUB_PATH", files.path.display().to_string()),
            ("GITHUB_STATE", files.state.display().to_string()),
            ("GITHUB_STEP_SUMMARY", files.summary.display().to_string()),
            ("RUNNER_ARCH", r("arch")),
            ("RUNNER_DEBUG", r("debug")),
            ("RUNNER_NAME", r("name")),
            ("RUNNER_OS", r("os")),
            ("RUNNER_TEMP", r("temp")),
            ("RUNNER_TOOL_CACHE", r("tool_cache")),
        ];
        for (k, v) in defaults {
            out.insert(k.to_string(), v);
        }
        if let Some(home) = &self.runner.options.home {
            out.insert("HOME".into(), home.display().to_string());
        }
        for (k, v) in env {
            out.insert(k.clone(), v.clone());
        }
        if !self.path_prefix.is_empty() {
            let base = out.get("PATH").cloned().unwrap_or_default();
            let mut parts = self.path_prefix.clone();
            if !base.is_empty() {
                parts.push(base);
            }
            out.insert("PATH".into(), parts.join(":"));
        }
        out
    }

    fn apply_file_commands(
        &mut self,
        files: &FileCommands,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<(), ExecError> {
        for (k, v) in commands::read_key_value_file(&files.output)? {
            outputs.insert(k, v);
        }
        for (k, v) in commands::read_key_value_file(&files.env)? {
            if k.eq_ignore_ascii_case("NODE_OPTIONS") {
                self.annotate(
                    AnnotationLevel::Error,
                    "Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command.",
                );
                continue;
            }
            self.env.insert(k, v);
        }
        // State of `run:` steps has no post step to read it; parse it so errors still show.
        commands::read_key_value_file(&files.state)?;
        for dir in commands::read_path_file(&files.path)? {
            self.add_path(dir);
        }
        match std::fs::read(&files.summary) {
            Ok(bytes) if !bytes.is_empty() => {
                self.summary.push_str(&String::from_utf8_lossy(&bytes));
                if !self.summary.ends_with('\n') {
                    self.summary.push('\n');
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ExecError::Io {
                    path: files.summary.clone(),
                    source,
                });
            }
        }
        self.sync_env_context();
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_action(
        &mut self,
        step: &Step,
        name: &str,
        env: &IndexMap<String, String>,
        uses: &str,
        uses_pos: Pos,
        with: &IndexMap<String, Text>,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<Status, StepFailure> {
        let Some(handler) = self.runner.registry.get(uses) else {
            let p = Problem {
                pos: uses_pos,
                message: format!("action '{uses}' is not supported by runner exec"),
            };
            if self.runner.options.strict {
                return Err(StepFailure::Problem(Problem {
                    message: format!("{} (--strict)", p.message),
                    ..p
                }));
            }
            self.runner.annotate_problem(
                self.sink,
                self.masker,
                AnnotationLevel::Warning,
                &Problem {
                    message: format!("{}; step skipped", p.message),
                    ..p
                },
            );
            return Ok(Status::Skipped);
        };
        let mut inputs = IndexMap::new();
        for (k, v) in with {
            inputs.insert(
                k.clone(),
                render(v, &self.ctx).map_err(StepFailure::Problem)?,
            );
        }
        let (result, ctx_outputs, state, post) = {
            let masker: &Masker = self.masker;
            let sink: &mut dyn EventSink = self.sink;
            let mut log = |level: LogLevel, message: &str| {
                log_event(sink, masker, level, message);
            };
            let mut actx = ActionContext {
                uses,
                inputs: &inputs,
                env,
                job: &self.info,
                contexts: &self.ctx,
                outputs: IndexMap::new(),
                state: IndexMap::new(),
                post_condition: None,
                log: &mut log,
            };
            let result = handler.run(&mut actx);
            (result, actx.outputs, actx.state, actx.post_condition)
        };
        for (k, v) in ctx_outputs {
            outputs.insert(k, v);
        }
        if let Some(condition) = post {
            self.posts.push(PostHook {
                handler,
                uses: uses.to_string(),
                name: name.to_string(),
                id: step.id.as_ref().map(|i| i.value.clone()),
                condition,
                inputs,
                env: env.clone(),
                state,
            });
        }
        match result {
            Ok(()) => Ok(Status::Success),
            Err(e) => Err(StepFailure::Message(e.message)),
        }
    }

    /// Post steps in reverse registration order, each if its condition holds now.
    fn run_posts(&mut self) -> Result<(), ExecError> {
        while let Some(post) = self.posts.pop() {
            self.sync_state();
            let name = format!("Post {}", post.name);
            let holds = match crate::expr::parse_condition(&post.condition) {
                Ok(expr) => match crate::expr::evaluate(&expr, &self.ctx) {
                    Ok(v) => v.is_truthy(),
                    Err(e) => {
                        self.annotate(
                            AnnotationLevel::Error,
                            &format!("post condition '{}' of {}: {e}", post.condition, post.uses),
                        );
                        false
                    }
                },
                Err(e) => {
                    self.annotate(
                        AnnotationLevel::Error,
                        &format!("post condition '{}' of {}: {e}", post.condition, post.uses),
                    );
                    false
                }
            };
            if !holds {
                self.emit(Event::StepSkipped {
                    name: name.clone(),
                    reason: format!("if: {} was false", post.condition),
                });
                self.steps.push(StepReport {
                    id: post.id.clone(),
                    name,
                    outcome: Status::Skipped,
                    conclusion: Status::Skipped,
                    outputs: IndexMap::new(),
                    duration: Duration::ZERO,
                });
                continue;
            }
            self.emit(Event::StepStarted { name: name.clone() });
            let started = Instant::now();
            // As for JavaScript actions, the saved state is also visible as `STATE_<name>`.
            let mut post_env = post.env.clone();
            for (k, v) in &post.state {
                post_env.insert(format!("STATE_{k}"), v.clone());
            }
            let result = {
                let masker: &Masker = self.masker;
                let sink: &mut dyn EventSink = self.sink;
                let mut log = |level: LogLevel, message: &str| {
                    log_event(sink, masker, level, message);
                };
                let mut actx = ActionContext {
                    uses: &post.uses,
                    inputs: &post.inputs,
                    env: &post_env,
                    job: &self.info,
                    contexts: &self.ctx,
                    outputs: IndexMap::new(),
                    state: post.state.clone(),
                    post_condition: Some(post.condition.clone()),
                    log: &mut log,
                };
                post.handler.post(&mut actx)
            };
            let outcome = match result {
                Ok(()) => Status::Success,
                Err(e) => {
                    self.annotate(AnnotationLevel::Error, &e.message);
                    Status::Failure
                }
            };
            self.record_step(
                None,
                name,
                outcome,
                outcome,
                &IndexMap::new(),
                started.elapsed(),
            );
        }
        Ok(())
    }
}

fn format_minutes(m: f64) -> String {
    if m.fract() == 0.0 && m.abs() < 1e15 {
        format!("{}", m as i64)
    } else {
        format!("{m}")
    }
}

/// Forwards a handler's log line to the sink, masked.
fn log_event(sink: &mut dyn EventSink, masker: &Masker, level: LogLevel, message: &str) {
    let message = masker.mask(message);
    let event = match level {
        LogLevel::Debug => Event::Debug { message },
        LogLevel::Info => Event::Output { line: message },
        LogLevel::Notice | LogLevel::Warning | LogLevel::Error => Event::Annotation {
            level: AnnotationLevel::from_log(level).unwrap_or(AnnotationLevel::Notice),
            message,
            title: None,
            file: None,
            line: None,
            col: None,
        },
    };
    sink.event(&event);
}

/// Why a step failed before or instead of producing an exit status.
enum StepFailure {
    /// An expression in the step failed; shown at its position.
    Problem(Problem),
    /// A plain message (bad shell, missing working directory, action error).
    Message(String),
    /// Not the step's fault: the run cannot continue (temp dir not writable, ...).
    Fatal(ExecError),
}

/// The per-step files a `run:` step writes commands to.
struct FileCommands {
    output: PathBuf,
    env: PathBuf,
    path: PathBuf,
    state: PathBuf,
    summary: PathBuf,
}

impl FileCommands {
    fn create(job_temp: &Path, suffix: &str) -> Result<Self, ExecError> {
        let dir = job_temp.join("file_commands");
        std::fs::create_dir_all(&dir).map_err(|source| ExecError::Io {
            path: dir.clone(),
            source,
        })?;
        let files = Self {
            output: dir.join(format!("set_output_{suffix}")),
            env: dir.join(format!("set_env_{suffix}")),
            path: dir.join(format!("add_path_{suffix}")),
            state: dir.join(format!("save_state_{suffix}")),
            summary: dir.join(format!("step_summary_{suffix}")),
        };
        for p in [
            &files.output,
            &files.env,
            &files.path,
            &files.state,
            &files.summary,
        ] {
            std::fs::write(p, b"").map_err(|source| ExecError::Io {
                path: p.clone(),
                source,
            })?;
        }
        Ok(files)
    }
}

/// What the output of one `run:` step did, line by line.
struct StepIo {
    parser: CommandParser,
    echo: bool,
    failed_command: bool,
    outputs: IndexMap<String, String>,
    state: IndexMap<String, String>,
}

impl StepIo {
    fn handle_line(
        &mut self,
        line: &str,
        masker: &mut Masker,
        sink: &mut dyn EventSink,
        allow_unsecure: bool,
        new_env: &mut Vec<(String, String)>,
        new_path: &mut Vec<String>,
    ) {
        match self.parser.parse(line) {
            Line::Text(text) => sink.event(&Event::Output {
                line: masker.mask(&text),
            }),
            Line::Stopped { token } => {
                if token.len() > 6 {
                    masker.add(&token);
                }
                sink.event(&Event::Output {
                    line: masker.mask(line),
                });
            }
            Line::Resumed => sink.event(&Event::Output {
                line: masker.mask(line),
            }),
            Line::BadStopToken { token } => {
                self.failed_command = true;
                sink.event(&Event::Annotation {
                    level: AnnotationLevel::Error,
                    message: masker.mask(&format!(
                        "Invalid stop-commands token '{token}': use a unique value that is not a command name"
                    )),
                    title: None,
                    file: None,
                    line: None,
                    col: None,
                });
            }
            Line::Command(cmd) => {
                if self.echo && cmd.name != "add-mask" {
                    sink.event(&Event::Output {
                        line: masker.mask(line),
                    });
                }
                self.command(cmd, masker, sink, allow_unsecure, new_env, new_path);
            }
        }
    }

    fn command(
        &mut self,
        cmd: WorkflowCommand,
        masker: &mut Masker,
        sink: &mut dyn EventSink,
        allow_unsecure: bool,
        new_env: &mut Vec<(String, String)>,
        new_path: &mut Vec<String>,
    ) {
        let error = |sink: &mut dyn EventSink, masker: &Masker, message: String| {
            sink.event(&Event::Annotation {
                level: AnnotationLevel::Error,
                message: masker.mask(&message),
                title: None,
                file: None,
                line: None,
                col: None,
            });
        };
        match cmd.name.as_str() {
            "add-mask" => {
                if cmd.data.trim().is_empty() {
                    sink.event(&Event::Annotation {
                        level: AnnotationLevel::Warning,
                        message: "Can't add secret mask for empty string in ::add-mask:: command."
                            .to_string(),
                        title: None,
                        file: None,
                        line: None,
                        col: None,
                    });
                } else {
                    masker.add(&cmd.data);
                    if self.echo {
                        sink.event(&Event::Output {
                            line: "::add-mask::***".to_string(),
                        });
                    }
                }
            }
            "group" => sink.event(&Event::GroupStarted {
                title: masker.mask(&cmd.data),
            }),
            "endgroup" => sink.event(&Event::GroupEnded),
            "debug" => sink.event(&Event::Debug {
                message: masker.mask(&cmd.data),
            }),
            "echo" => match cmd.data.trim().to_ascii_lowercase().as_str() {
                "on" => self.echo = true,
                "off" => self.echo = false,
                _ => {
                    self.failed_command = true;
                    error(
                        sink,
                        masker,
                        format!(
                            "Invalid echo command value '{}'. Possible values can be: 'on', 'off'.",
                            cmd.data
                        ),
                    );
                }
            },
            "notice" | "warning" | "error" => {
                let level = match cmd.name.as_str() {
                    "notice" => AnnotationLevel::Notice,
                    "warning" => AnnotationLevel::Warning,
                    _ => AnnotationLevel::Error,
                };
                let prop = |k: &str| cmd.property(k).map(|v| masker.mask(v));
                sink.event(&Event::Annotation {
                    level,
                    message: masker.mask(&cmd.data),
                    title: prop("title"),
                    file: prop("file"),
                    line: prop("line"),
                    col: prop("col"),
                });
            }
            "set-output" | "save-state" => {
                sink.event(&Event::Annotation {
                    level: AnnotationLevel::Warning,
                    message: format!(
                        "The `{}` command is deprecated; write to ${} instead.",
                        cmd.name,
                        if cmd.name == "set-output" {
                            "GITHUB_OUTPUT"
                        } else {
                            "GITHUB_STATE"
                        }
                    ),
                    title: None,
                    file: None,
                    line: None,
                    col: None,
                });
                match cmd.property("name").filter(|n| !n.is_empty()) {
                    Some(key) => {
                        let target = if cmd.name == "set-output" {
                            &mut self.outputs
                        } else {
                            &mut self.state
                        };
                        target.insert(key.to_string(), cmd.data.clone());
                    }
                    None => {
                        self.failed_command = true;
                        error(
                            sink,
                            masker,
                            format!(
                                "Required field 'name' is missing in ::{}:: command.",
                                cmd.name
                            ),
                        );
                    }
                }
            }
            "set-env" | "add-path" => {
                if !allow_unsecure {
                    self.failed_command = true;
                    error(
                        sink,
                        masker,
                        format!(
                            "The `{}` command is disabled; write to ${} instead, or set ACTIONS_ALLOW_UNSECURE_COMMANDS=true.",
                            cmd.name,
                            if cmd.name == "set-env" {
                                "GITHUB_ENV"
                            } else {
                                "GITHUB_PATH"
                            }
                        ),
                    );
                } else if cmd.name == "set-env" {
                    match cmd.property("name").filter(|n| !n.is_empty()) {
                        Some(key) => new_env.push((key.to_string(), cmd.data.clone())),
                        None => {
                            self.failed_command = true;
                            error(
                                sink,
                                masker,
                                "Required field 'name' is missing in ::set-env:: command."
                                    .to_string(),
                            );
                        }
                    }
                } else if !cmd.data.is_empty() {
                    new_path.push(cmd.data.clone());
                }
            }
            // Problem matchers only decorate GitHub's UI.
            _ => {}
        }
    }
}
