//! One job run (one matrix combination): contexts, the step loop, `run:` steps and actions,
//! post hooks, and job outputs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::action::{ActionContext, ActionHandler, JobInfo, LogLevel};
use super::actions::Resolved;
use super::contexts::{self, Contexts, JobState, s};
use super::error::ExecError;
use super::git::GitInfo;
use super::mask::Masker;
use super::process;
use super::report::{AnnotationLevel, Emitter, EventKind, JobReport, NotRun, Status, StepReport};
use crate::expr::Value;
use crate::workflow::{Job, Pos, Step, StepKind, Text};

use super::runner::{
    DEFAULT_JOB_TIMEOUT_MINUTES, Problem, Runner, eval_bool, eval_condition, eval_number, render,
};

/// What runs a post step.
pub(in crate::exec) enum PostKind {
    /// An in-process handler's `post`.
    Handler(Arc<dyn ActionHandler>),
    /// A JavaScript action's `post:` script, run with the step it belongs to.
    Node {
        /// The action.
        action: Arc<Resolved>,
        /// `post:` relative to the action directory.
        script: String,
        /// The step that used the action (for its timeout).
        step: Box<Step>,
    },
}

/// A post step registered by a `uses:` step.
pub(in crate::exec) struct PostHook {
    pub(in crate::exec) kind: PostKind,
    pub(in crate::exec) uses: String,
    pub(in crate::exec) name: String,
    pub(in crate::exec) id: Option<String>,
    pub(in crate::exec) condition: String,
    pub(in crate::exec) inputs: IndexMap<String, String>,
    pub(in crate::exec) env: IndexMap<String, String>,
    pub(in crate::exec) state: IndexMap<String, String>,
    /// The [`super::Event::step`] of the step that registered it.
    pub(in crate::exec) key: String,
}

/// One job run (one matrix combination).
pub(in crate::exec) struct JobRun<'r> {
    pub(in crate::exec) runner: &'r Runner,
    pub(in crate::exec) job: &'r Job,
    pub(in crate::exec) ctx: Contexts,
    pub(in crate::exec) masker: &'r mut Masker,
    /// Stamps events with this job and the step running now.
    pub(in crate::exec) sink: Emitter,
    pub(in crate::exec) name: String,
    pub(in crate::exec) info: JobInfo,
    pub(in crate::exec) temp: tempfile::TempDir,
    /// Workflow + job `env:` (evaluated), then `GITHUB_ENV` additions.
    pub(in crate::exec) env: IndexMap<String, String>,
    /// `GITHUB_PATH` additions, most recent first.
    pub(in crate::exec) path_prefix: Vec<String>,
    pub(in crate::exec) failed: bool,
    pub(in crate::exec) cancelled: bool,
    pub(in crate::exec) deadline: Instant,
    pub(in crate::exec) timeout_minutes: f64,
    pub(in crate::exec) continue_on_error: bool,
    pub(in crate::exec) steps: Vec<StepReport>,
    pub(in crate::exec) posts: Vec<PostHook>,
    pub(in crate::exec) summary: String,
    pub(in crate::exec) event_path: PathBuf,
    pub(in crate::exec) setup_problem: Option<Problem>,
    /// `RUNNER_TRACKING_ID` of this job's processes.
    pub(in crate::exec) tracking_id: String,
    /// Steps not run because of an unsupported action.
    pub(in crate::exec) not_run: Vec<NotRun>,
    /// Ids of steps skipped as unsupported (steps gated on their outputs are named too).
    pub(in crate::exec) unsupported_ids: Vec<String>,
    /// `github.action_path` of the action whose steps run now (`GITHUB_ACTION_PATH`).
    pub(in crate::exec) action_path: Option<PathBuf>,
    /// The action definition whose steps run now, for diagnostics at its positions.
    pub(in crate::exec) action_source: Option<Arc<Resolved>>,
    /// How many composite actions the running step is nested in.
    pub(in crate::exec) composite_depth: usize,
    /// State saved by `pre:` scripts, by the position of the step they belong to.
    pub(in crate::exec) pre_state: HashMap<Pos, IndexMap<String, String>>,
    /// The host node's major version, once asked.
    pub(in crate::exec) node_major: Option<Option<u32>>,
    /// The job's extra environment for JavaScript actions, once made.
    pub(in crate::exec) action_env: Option<IndexMap<String, String>>,
}

impl<'r> JobRun<'r> {
    pub(super) fn new(
        runner: &'r Runner,
        job: &'r Job,
        mut ctx: Contexts,
        git: &GitInfo,
        masker: &'r mut Masker,
        sink: Emitter,
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
            // The event payload is what GitHub itself goes by; the checkout is the fallback.
            default_branch: runner
                .options
                .event
                .pointer("/repository/default_branch")
                .and_then(|b| b.as_str())
                .filter(|b| !b.is_empty())
                .map(|b| format!("refs/heads/{b}"))
                .or_else(|| git.default_branch.clone()),
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
            env: job_env(&runner.options.env),
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
            not_run: Vec::new(),
            unsupported_ids: Vec::new(),
            action_path: None,
            action_source: None,
            composite_depth: 0,
            pre_state: HashMap::new(),
            node_major: None,
            action_env: None,
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

    pub(in crate::exec) fn sync_env_context(&mut self) {
        self.ctx.set("env", contexts::string_object(&self.env));
    }

    pub(in crate::exec) fn sync_state(&mut self) {
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

    pub(in crate::exec) fn emit(&mut self, event: EventKind) {
        self.sink.event(event);
    }

    pub(in crate::exec) fn annotate(&mut self, level: AnnotationLevel, message: &str) {
        let message = self.masker.mask(message);
        self.emit(EventKind::Annotation {
            level,
            message,
            title: None,
            file: None,
            line: None,
            col: None,
        });
    }

    pub(in crate::exec) fn annotate_problem(&mut self, p: &Problem) {
        self.problem_at_level(AnnotationLevel::Error, p);
    }

    /// Shows why a step failed; `Err` when the run cannot go on.
    pub(in crate::exec) fn annotate_failure(
        &mut self,
        failure: StepFailure,
    ) -> Result<(), ExecError> {
        match failure {
            StepFailure::Problem(p) => self.annotate_problem(&p),
            StepFailure::Message(m) => self.annotate(AnnotationLevel::Error, &m),
            StepFailure::Fatal(e) => return Err(e),
        }
        Ok(())
    }

    /// An annotation at a position in the workflow, or in the action definition whose steps run.
    pub(in crate::exec) fn problem_at_level(&mut self, level: AnnotationLevel, p: &Problem) {
        match &self.action_source {
            Some(action) => {
                let diag = action.manifest.diagnostic(p.pos, p.message.clone());
                self.annotate(level, &diag.to_string());
            }
            None => self
                .runner
                .annotate_problem(&self.sink, self.masker, level, p),
        }
    }

    pub(in crate::exec) fn finish_report(
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
            not_run: std::mem::take(&mut self.not_run),
            summary: self.masker.mask(&self.summary),
            duration,
        }
    }

    pub(in crate::exec) fn step_name(&self, step: &Step) -> String {
        let name = match &step.name {
            Some(n) => render(n, &self.ctx).unwrap_or_else(|_| n.raw.clone()),
            None => step.default_name(),
        };
        self.masker.mask(&name)
    }

    pub(super) fn run(&mut self) -> Result<JobReport, ExecError> {
        let started = Instant::now();
        let job_name = self.masker.mask(&self.name);
        self.emit(EventKind::JobStarted {
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
            self.run_pre_steps()?;
            for step in &job.steps {
                self.run_step(step)?;
            }
        }
        self.run_posts()?;
        self.sink.step = None;
        // Like GitHub's runner, stop what the job's steps left running in the background.
        for pid in process::kill_tracked(&self.tracking_id) {
            self.emit(EventKind::Debug {
                message: format!("Terminated orphan process {pid}"),
            });
        }
        let (outputs, raw_outputs) = self.job_outputs();
        // A cancellation during the last step (a cache save it aborted) still cancels the job.
        if self.runner.options.cancel.load(Ordering::SeqCst) {
            self.cancelled = true;
        }
        let result = if self.cancelled {
            Status::Cancelled
        } else if self.failed && !self.continue_on_error {
            Status::Failure
        } else {
            Status::Success
        };
        let duration = started.elapsed();
        self.emit(EventKind::JobFinished {
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

    pub(in crate::exec) fn record_step(
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
        self.emit(EventKind::StepFinished {
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

    /// How events name `step`: its `id:`, else its 1-based position in the job. Steps of a
    /// composite action keep the name of the step that uses the action.
    pub(in crate::exec) fn step_key(&self, step: &Step) -> Option<String> {
        if self.composite_depth > 0 {
            return self.sink.step.clone();
        }
        if let Some(id) = &step.id {
            return Some(id.value.clone());
        }
        let position = self.job.steps.iter().position(|s| std::ptr::eq(s, step))?;
        Some((position + 1).to_string())
    }

    pub(in crate::exec) fn run_step(&mut self, step: &Step) -> Result<(), ExecError> {
        self.sink.step = self.step_key(step);
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
                    self.emit(EventKind::StepStarted { name: name.clone() });
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
            if let Some(c) = &step.if_
                && let Some(id) = self
                    .unsupported_ids
                    .iter()
                    .find(|id| mentions_step(&c.raw, id))
            {
                self.not_run.push(NotRun {
                    step: name.clone(),
                    reason: format!("its if: depends on '{id}', which was not run"),
                });
            }
            self.emit(EventKind::StepSkipped {
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
        self.emit(EventKind::StepStarted { name: name.clone() });
        let started = Instant::now();
        let mut outputs = IndexMap::new();
        let outcome = match self.execute_step(step, &name, &mut outputs) {
            Ok(outcome) => outcome,
            Err(failure) => {
                self.annotate_failure(failure)?;
                Status::Failure
            }
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
    pub(in crate::exec) fn step_env(
        &mut self,
        step: &Step,
    ) -> Result<IndexMap<String, String>, Problem> {
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

    #[allow(clippy::too_many_arguments)]
    pub(in crate::exec) fn run_action(
        &mut self,
        step: &Step,
        name: &str,
        env: &IndexMap<String, String>,
        uses: &str,
        uses_pos: Pos,
        with: &IndexMap<String, Text>,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<Status, StepFailure> {
        let Some(handler) = self.runner.builtin_handler(uses) else {
            return self.run_resolved_action(step, name, env, uses, uses_pos, with, outputs);
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
            let sink: &Emitter = &self.sink;
            let progress = sink.progress();
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
                progress: Some(progress),
            };
            let result = handler.run(&mut actx);
            (result, actx.outputs, actx.state, actx.post_condition)
        };
        for (k, v) in ctx_outputs {
            outputs.insert(k, v);
        }
        if let Some(condition) = post {
            self.posts.push(PostHook {
                kind: PostKind::Handler(handler),
                uses: uses.to_string(),
                name: name.to_string(),
                id: step.id.as_ref().map(|i| i.value.clone()),
                condition,
                inputs,
                env: env.clone(),
                state,
                key: self.sink.step.clone().unwrap_or_default(),
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
            self.sink.step = Some(format!("post:{}", post.key));
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
                self.emit(EventKind::StepSkipped {
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
            self.emit(EventKind::StepStarted { name: name.clone() });
            let started = Instant::now();
            let outcome = match &post.kind {
                PostKind::Handler(handler) => self.run_handler_post(&post, handler.as_ref()),
                PostKind::Node {
                    action,
                    script,
                    step,
                } => self.run_node_post(&post, action, script, step),
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

    /// Runs an in-process handler's post step.
    fn run_handler_post(&mut self, post: &PostHook, handler: &dyn ActionHandler) -> Status {
        // As for JavaScript actions, the saved state is also visible as `STATE_<name>`.
        let mut post_env = post.env.clone();
        for (k, v) in &post.state {
            post_env.insert(format!("STATE_{k}"), v.clone());
        }
        let result = {
            let masker: &Masker = self.masker;
            let sink: &Emitter = &self.sink;
            let progress = sink.progress();
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
                progress: Some(progress),
            };
            handler.post(&mut actx)
        };
        match result {
            Ok(()) => Status::Success,
            Err(e) => {
                self.annotate(AnnotationLevel::Error, &e.message);
                Status::Failure
            }
        }
    }
}

/// The environment every job starts with: `ACT=true` (workflows written for `act` guard their
/// deploy steps with `if: ${{ !env.ACT }}`), then the run's extra `env`, which may override it.
fn job_env(extra: &IndexMap<String, String>) -> IndexMap<String, String> {
    let mut env = IndexMap::new();
    env.insert("ACT".to_string(), "true".to_string());
    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// True when `condition` reads `steps.<id>`.
fn mentions_step(condition: &str, id: &str) -> bool {
    let needle = format!("steps.{id}");
    condition.match_indices(&needle).any(|(at, _)| {
        let before = condition[..at].chars().next_back();
        let after = condition[at + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
    })
}

pub(in crate::exec) fn format_minutes(m: f64) -> String {
    if m.fract() == 0.0 && m.abs() < 1e15 {
        format!("{}", m as i64)
    } else {
        format!("{m}")
    }
}

/// Forwards a handler's log line to the sink, masked.
pub(in crate::exec) fn log_event(sink: &Emitter, masker: &Masker, level: LogLevel, message: &str) {
    let message = masker.mask(message);
    let event = match level {
        LogLevel::Debug => EventKind::Debug { message },
        LogLevel::Info => EventKind::Output {
            line: message,
            stream: process::Stream::Stdout,
        },
        LogLevel::Notice | LogLevel::Warning | LogLevel::Error => EventKind::Annotation {
            level: AnnotationLevel::from_log(level).unwrap_or(AnnotationLevel::Notice),
            message,
            title: None,
            file: None,
            line: None,
            col: None,
        },
    };
    sink.event(event);
}

/// Why a step failed before or instead of producing an exit status.
pub(in crate::exec) enum StepFailure {
    /// An expression in the step failed; shown at its position.
    Problem(Problem),
    /// A plain message (bad shell, missing working directory, action error).
    Message(String),
    /// Not the step's fault: the run cannot continue (temp dir not writable, ...).
    Fatal(ExecError),
}
