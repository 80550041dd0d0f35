//! What `runner exec` prints besides the log: the event sink that feeds the [`Printer`] (or
//! writes `--json-events` lines) while collecting what the `--json` documents need — warnings,
//! skip reasons, and the `--dry-run` plan.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use runner::exec::{Event, EventKind, EventSink, RunReport, Status};
use serde_json::{Map, Value, json};

use crate::cli::json::{document, put_time};
use crate::cli::printer::Printer;

/// The schema of `--json` with `--dry-run`.
pub const PLAN_SCHEMA: &str = "runner.exec.plan/1";
/// The schema of `--json`.
pub const REPORT_SCHEMA: &str = "runner.exec.report/1";
/// The schema of each `--json-events` line.
pub const EVENT_SCHEMA: &str = "runner.exec.event/1";

/// What a plan says of an `if:` whose value depends on what earlier steps or jobs output.
pub const DECIDED_AT_RUN_TIME: &str = "decided at run time";

/// When the run started and ended, in epoch milliseconds.
pub struct Times {
    /// Start.
    pub started_ms: i64,
    /// End.
    pub finished_ms: i64,
}

/// A job of the plan, from its `PlanJob` event and the `PlanStep`s after it.
struct PlannedJob {
    id: String,
    name: String,
    needs: Vec<String>,
    condition: Option<(String, String)>,
    steps: Vec<PlannedStep>,
    used: bool,
}

/// A step of the plan.
struct PlannedStep {
    name: String,
    action: String,
    condition: Option<(String, String)>,
    with: indexmap::IndexMap<String, String>,
}

/// Forwards events to the printer or the JSON event stream and remembers what the documents
/// need. Shared with the run (cache transfers report from their own threads).
pub struct ExecSink(Mutex<SinkState>);

impl ExecSink {
    /// A sink over `printer`; with `json_events` events go to stdout as JSON lines instead.
    pub fn new(printer: Printer, json_events: bool) -> Arc<Self> {
        Arc::new(Self(Mutex::new(SinkState {
            printer,
            json_events,
            job: None,
            step: None,
            warnings: Vec::new(),
            job_skips: HashMap::new(),
            step_skips: HashMap::new(),
            plan: Vec::new(),
        })))
    }

    /// The printer and what was collected, once the run is over.
    pub fn state(&self) -> MutexGuard<'_, SinkState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the sink writes with and has collected.
pub struct SinkState {
    /// Where everything is written.
    pub printer: Printer,
    json_events: bool,
    /// The job and step the events belong to (for `--json-events` lines).
    job: Option<String>,
    step: Option<String>,
    warnings: Vec<String>,
    /// Why a job (by display name) did not run.
    job_skips: HashMap<String, String>,
    /// Why a step (by job display name, step name) did not run.
    step_skips: HashMap<(String, String), String>,
    plan: Vec<PlannedJob>,
}

impl SinkState {
    fn remember(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Warning { message } => self.warnings.push(message.clone()),
            EventKind::JobStarted { name, .. } => {
                self.job = Some(name.clone());
                self.step = None;
            }
            EventKind::JobSkipped { name, reason, .. } => {
                self.job_skips.insert(name.clone(), reason.clone());
            }
            EventKind::StepStarted { name } => self.step = Some(name.clone()),
            EventKind::StepSkipped { name, reason } => {
                let job = self.job.clone().unwrap_or_default();
                self.step_skips.insert((job, name.clone()), reason.clone());
            }
            EventKind::PlanJob {
                job,
                name,
                needs,
                condition,
            } => {
                self.job = Some(name.clone());
                self.plan.push(PlannedJob {
                    id: job.clone(),
                    name: name.clone(),
                    needs: needs.clone(),
                    condition: condition.clone(),
                    steps: Vec::new(),
                    used: false,
                });
            }
            EventKind::PlanStep {
                name,
                action,
                condition,
                with,
            } => {
                if let Some(job) = self.plan.last_mut() {
                    job.steps.push(PlannedStep {
                        name: name.clone(),
                        action: action.clone(),
                        condition: condition.clone(),
                        with: with.clone(),
                    });
                }
            }
            _ => {}
        }
    }

    /// One `--json-events` line: the event's own fields (job and step ids among them), its
    /// time, and the display names of its job and step.
    fn event_line(&self, event: &Event) -> Value {
        let mut line = Map::new();
        line.insert("schema".into(), json!(EVENT_SCHEMA));
        put_time(&mut line, "time", event.at);
        if let Ok(Value::Object(mut fields)) = serde_json::to_value(event) {
            fields.remove("at");
            line.extend(fields);
        }
        if event.job.is_some()
            && let Some(job) = &self.job
        {
            line.insert("job_name".into(), json!(job));
        }
        if event.step.is_some()
            && let Some(step) = &self.step
        {
            line.insert("step_name".into(), json!(step));
        }
        Value::Object(line)
    }

    /// The last `--json-events` line: the overall result.
    pub fn finished(&mut self, report: &RunReport, exit_code: u8, interrupted: bool, t: &Times) {
        let mut line = Map::new();
        line.insert("schema".into(), json!(EVENT_SCHEMA));
        put_time(&mut line, "time", t.finished_ms);
        line.insert("event".into(), json!("run_finished"));
        line.insert("result".into(), json!(overall(report, interrupted)));
        line.insert("exit_code".into(), json!(exit_code));
        line.insert(
            "duration".into(),
            json!((t.finished_ms - t.started_ms) as f64 / 1000.0),
        );
        self.printer.json_line(&Value::Object(line));
    }

    /// The `--json` report: overall result, times, warnings, every job and step with its
    /// outcome and, for those that did not run, why.
    pub fn report_document(
        &self,
        report: &RunReport,
        exit_code: u8,
        interrupted: bool,
        t: &Times,
    ) -> Value {
        let mut jobs = Vec::new();
        for job in &report.jobs {
            let mut value = serde_json::to_value(job).unwrap_or(Value::Null);
            if job.result == Status::Skipped || job.result == Status::Cancelled {
                value["skip_reason"] = json!(self.job_skips.get(&job.name));
            }
            if let Some(steps) = value.get_mut("steps").and_then(Value::as_array_mut) {
                for (step, shown) in job.steps.iter().zip(steps.iter_mut()) {
                    if step.outcome == Status::Skipped {
                        let key = (job.name.clone(), step.name.clone());
                        let reason = job
                            .not_run
                            .iter()
                            .find(|n| n.step == step.name)
                            .map(|n| n.reason.clone())
                            .or_else(|| self.step_skips.get(&key).cloned());
                        shown["skip_reason"] = json!(reason);
                    }
                }
            }
            jobs.push(value);
        }
        let not_run: Vec<Value> = report
            .jobs
            .iter()
            .flat_map(|j| {
                j.not_run
                    .iter()
                    .map(|n| json!({"job": j.id, "step": n.step, "reason": n.reason}))
            })
            .collect();
        let mut doc = Map::new();
        doc.insert("workflow".into(), json!(report.workflow));
        doc.insert("result".into(), json!(overall(report, interrupted)));
        doc.insert("exit_code".into(), json!(exit_code));
        put_time(&mut doc, "started_at", t.started_ms);
        put_time(&mut doc, "finished_at", t.finished_ms);
        doc.insert(
            "duration".into(),
            json!((t.finished_ms - t.started_ms) as f64 / 1000.0),
        );
        doc.insert("warnings".into(), json!(self.warnings));
        doc.insert("not_run".into(), json!(not_run));
        doc.insert("jobs".into(), json!(jobs));
        document(REPORT_SCHEMA, Value::Object(doc))
    }

    /// The `--dry-run --json` plan: jobs in order with `needs`, matrix legs, each step's kind,
    /// `if:`, `with:` and the cache keys it would look up and save.
    pub fn plan_document(&mut self, report: &RunReport) -> Value {
        let mut jobs = Vec::new();
        for job in &report.jobs {
            let planned = self
                .plan
                .iter_mut()
                .find(|p| !p.used && p.id == job.id && p.name == job.name);
            let mut value = json!({
                "id": job.id,
                "name": job.name,
                "matrix": job.matrix,
            });
            match planned {
                Some(p) => {
                    p.used = true;
                    value["needs"] = json!(p.needs);
                    value["if"] = condition_json(p.condition.as_ref());
                    value["runs"] = json!(p.condition.as_ref().is_none_or(|(_, v)| v != "false"));
                    let steps: Vec<Value> = p
                        .steps
                        .iter()
                        .zip(
                            job.steps
                                .iter()
                                .map(|s| s.id.clone())
                                .chain(std::iter::repeat(None)),
                        )
                        .map(|(step, id)| step_json(step, id))
                        .collect();
                    value["steps"] = json!(steps);
                }
                None => {
                    value["needs"] = json!([]);
                    value["if"] = Value::Null;
                    value["runs"] = json!(false);
                    value["skip_reason"] = json!(self.job_skips.get(&job.name));
                    value["steps"] = json!([]);
                }
            }
            jobs.push(value);
        }
        document(
            PLAN_SCHEMA,
            json!({
                "workflow": report.workflow,
                "warnings": self.warnings,
                "jobs": jobs,
            }),
        )
    }
}

/// `success`, `failure` or `cancelled` for the whole run.
fn overall(report: &RunReport, interrupted: bool) -> &'static str {
    if interrupted {
        "cancelled"
    } else if report.success() {
        "success"
    } else {
        "failure"
    }
}

/// True when an `if:` reads what earlier steps or jobs output, which a plan cannot know.
pub fn depends_on_outputs(expression: &str) -> bool {
    let e = expression.to_ascii_lowercase();
    e.contains("steps.") || e.contains("steps[") || (e.contains("needs") && e.contains("outputs"))
}

fn condition_json(condition: Option<&(String, String)>) -> Value {
    match condition {
        None => Value::Null,
        Some((expression, value)) => {
            let value = if depends_on_outputs(expression) {
                DECIDED_AT_RUN_TIME.to_string()
            } else {
                value.clone()
            };
            json!({"expression": expression, "value": value})
        }
    }
}

/// `uses X (how)` as the plan event spells it, split into the action and how it runs.
fn split_uses(action: &str) -> Option<(&str, &str)> {
    let rest = action.strip_prefix("uses ")?;
    match rest.split_once(" (") {
        Some((uses, how)) => Some((uses, how.strip_suffix(')').unwrap_or(how))),
        None => Some((rest, "")),
    }
}

fn step_json(step: &PlannedStep, id: Option<String>) -> Value {
    let mut value = json!({
        "id": id,
        "name": step.name,
        "if": condition_json(step.condition.as_ref()),
    });
    match split_uses(&step.action) {
        None => value["kind"] = json!("run"),
        Some((uses, how)) => {
            value["kind"] = json!("uses");
            value["uses"] = json!(uses);
            value["handler"] = json!(how);
            value["with"] = json!(step.with);
            if let Some(cache) = cache_keys(uses, &step.with) {
                value["cache"] = cache;
            }
        }
    }
    value
}

/// The keys an `actions/cache*` step would look up (primary key, then restore keys) and save.
fn cache_keys(uses: &str, with: &indexmap::IndexMap<String, String>) -> Option<Value> {
    let action = uses.split('@').next().unwrap_or(uses).to_ascii_lowercase();
    let (restores, saves) = match action.as_str() {
        "actions/cache" => (true, true),
        "actions/cache/restore" => (true, false),
        "actions/cache/save" => (false, true),
        _ => return None,
    };
    let key = with.get("key").cloned();
    let mut lookup: Vec<String> = Vec::new();
    if restores {
        lookup.extend(key.clone());
        if let Some(keys) = with.get("restore-keys") {
            lookup.extend(
                keys.lines()
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_string),
            );
        }
    }
    Some(json!({
        "lookup": lookup,
        "save": if saves { key } else { None },
    }))
}

impl EventSink for ExecSink {
    fn event(&self, event: &Event) {
        let mut state = self.state();
        state.remember(event);
        if state.json_events {
            let line = state.event_line(event);
            state.printer.json_line(&line);
        } else {
            state.printer.event(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_rows() {
        let rows = [
            ("steps.version.outputs.value == '1'", true),
            ("Steps['x'].outcome == 'success'", true),
            ("needs.build.outputs.ok", true),
            ("needs.build.result == 'success'", false),
            ("github.ref == 'refs/heads/main'", false),
            ("!env.ACT", false),
        ];
        for (expression, expected) in rows {
            assert_eq!(depends_on_outputs(expression), expected, "{expression}");
        }
    }

    #[test]
    fn uses_rows() {
        assert_eq!(
            split_uses("uses actions/cache@v4 (built in)"),
            Some(("actions/cache@v4", "built in"))
        );
        assert_eq!(
            split_uses("uses o/r@v1 (not fetched yet: cloned from https://x (y) when it runs)"),
            Some((
                "o/r@v1",
                "not fetched yet: cloned from https://x (y) when it runs"
            ))
        );
        assert_eq!(split_uses("run"), None);
    }
}
