//! Planning, apart from running: which jobs run in which order, what `needs` and the status
//! functions see, the matrix combinations, `--list`, and the `--dry-run` plan of a job.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use indexmap::IndexMap;

use super::actions::{ActionRef, Resolution, Resolver};
use super::contexts::{self, Contexts, JobState, s};
use super::error::ExecError;
use super::job::JobRun;
use super::report::{EventKind, JobReport, Status, StepReport};
use super::runner::{Problem, Runner, eval_condition, problem_at, render};
use crate::expr::Value;
use crate::workflow::{Job, StepKind, Tree, TreeKind, Workflow};

/// A job as `runner exec --list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedJob {
    /// The job id.
    pub id: String,
    /// Its steps in order.
    pub steps: Vec<ListedStep>,
}

/// A step as `runner exec --list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedStep {
    /// The step's name as written (or its default name).
    pub name: String,
    /// The `uses:` value, for action steps.
    pub uses: Option<String>,
    /// `run`, or how the action runs: `native`, `node (node20)`, `composite`, `not run: why`.
    pub how: String,
}

/// What a finished job hands to the jobs that need it.
#[derive(Debug, Clone)]
pub(super) struct NeedResult {
    pub(super) result: Status,
    pub(super) outputs: IndexMap<String, String>,
}

impl Runner {
    /// How `--dry-run` describes a `uses:` step, without fetching anything.
    pub(super) fn plan_label(&self, uses: &str) -> String {
        if self.builtin_handler(uses).is_some() {
            return "built in".to_string();
        }
        let mut offline = self.options.actions.clone();
        offline.sources.offline = true;
        match Resolver::default().resolve(uses, &self.options.workspace, &offline) {
            Resolution::Unsupported(_)
                if !self.options.actions.sources.offline
                    && ActionRef::parse(uses).is_some_and(|a| a.is_remote()) =>
            {
                format!(
                    "not fetched yet: cloned from {} when it runs",
                    self.options.actions.sources.base_url
                )
            }
            other => other.describe(),
        }
    }

    /// `runner exec --list`: every selected job and how each of its steps would run.
    pub fn list(&self) -> Result<Vec<ListedJob>, ExecError> {
        let mut out = Vec::new();
        for id in self.select_jobs()? {
            let Some(job) = self.workflow.jobs.get(&id) else {
                continue;
            };
            let steps = job
                .steps
                .iter()
                .map(|step| {
                    let name = match &step.name {
                        Some(n) => n.raw.clone(),
                        None => step.default_name(),
                    };
                    let (uses, how) = match &step.kind {
                        StepKind::Run { .. } => (None, "run".to_string()),
                        StepKind::Uses { uses, .. } => {
                            (Some(uses.value.clone()), self.classify(&uses.value))
                        }
                    };
                    ListedStep { name, uses, how }
                })
                .collect();
            out.push(ListedJob { id, steps });
        }
        Ok(out)
    }

    /// Job ids to run, in dependency order.
    pub(super) fn select_jobs(&self) -> Result<Vec<String>, ExecError> {
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
    pub(super) fn needs_state(&self, job: &Job, results: &HashMap<String, NeedResult>) -> JobState {
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

    /// The combinations to run: `None` (one run, no matrix) or one object per combination.
    pub(super) fn matrix_combinations(
        &self,
        job: &Job,
        ctx: &Contexts,
    ) -> Result<Vec<Option<Value>>, ExecError> {
        let Some(tree) = job.strategy.as_ref().and_then(|s| s.matrix.as_ref()) else {
            return Ok(vec![None]);
        };
        let expanded = eval_tree(tree, ctx).and_then(|value| {
            crate::workflow::expand_matrix(&value).map_err(|e| Problem {
                pos: tree.pos,
                message: e.to_string(),
            })
        });
        let combos = match expanded {
            Ok(combos) => combos,
            // A plan has no job outputs yet: a matrix built from them (`fromJSON(needs.x.
            // outputs.y)`) is only known when the job runs.
            Err(_) if self.options.dry_run && reads_needs(tree) => {
                return Ok(vec![Some(Value::String(MATRIX_AT_RUN_TIME.to_string()))]);
            }
            Err(p) => return Err(self.plan_error(p)),
        };
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

    pub(super) fn plan_error(&self, p: Problem) -> ExecError {
        ExecError::Plan {
            path: self.workflow.path.clone(),
            line: p.pos.line,
            column: p.pos.column,
            message: p.message,
        }
    }
}

impl JobRun<'_> {
    /// `--dry-run`: what would run, with `if:` and `with:` evaluated assuming success so far.
    pub(super) fn plan(&mut self) -> JobReport {
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
                    let handled = self.runner.plan_label(&uses.value);
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
            self.emit(EventKind::PlanStep {
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
}

/// The result `needs.<id>` sees for a (possibly matrix) job: failure if any combination
/// failed, else cancelled if any was cancelled, else success if any succeeded, else skipped;
/// outputs merged in run order (later combinations win, as on GitHub).
pub(super) fn aggregate(jobs: &[JobReport]) -> NeedResult {
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

pub(super) fn needs_context(job: &Job, results: &HashMap<String, NeedResult>) -> Value {
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

/// What a dry run shows for a matrix that depends on the outputs of needed jobs.
const MATRIX_AT_RUN_TIME: &str = "decided at run time";

/// True when an expression in `tree` reads the `needs` context.
fn reads_needs(tree: &Tree) -> bool {
    match &tree.kind {
        TreeKind::Scalar(text, _) => text.raw.to_ascii_lowercase().contains("needs."),
        TreeKind::Seq(items) => items.iter().any(reads_needs),
        TreeKind::Map(entries) => entries.iter().any(|(_, v)| reads_needs(v)),
    }
}

/// Evaluates a YAML subtree whose scalars may be templates (matrices).
pub(super) fn eval_tree(tree: &Tree, ctx: &Contexts) -> Result<Value, Problem> {
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
pub(super) fn job_order(workflow: &Workflow) -> Vec<String> {
    crate::workflow::job_order(workflow)
        .into_iter()
        .cloned()
        .collect()
}
