//! What a run tells its caller: a stream of [`Event`]s while it runs (through an [`EventSink`])
//! and a [`RunReport`] at the end. Every string in both is already masked.

use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use super::action::LogLevel;

/// The result of a step (`outcome`/`conclusion`) or a job (`result`), spelled as GitHub does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Ran and succeeded.
    Success,
    /// Ran and failed.
    Failure,
    /// Stopped by a timeout of the job or by the user.
    Cancelled,
    /// Not run because its condition was false.
    Skipped,
}

impl Status {
    /// The word GitHub uses (`success`, `failure`, `cancelled`, `skipped`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "success",
            Status::Failure => "failure",
            Status::Cancelled => "cancelled",
            Status::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened during a run, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A message from the runner itself (not from a step): unsupported keys, unknown actions.
    Warning {
        /// The message.
        message: String,
    },
    /// A job (one matrix combination) starts.
    JobStarted {
        /// The job id.
        job: String,
        /// The display name (with the matrix values).
        name: String,
    },
    /// A job did not run.
    JobSkipped {
        /// The job id.
        job: String,
        /// The display name.
        name: String,
        /// Why, e.g. `if: success() was false`.
        reason: String,
    },
    /// A step starts.
    StepStarted {
        /// The step's display name (`Post <name>` for post steps).
        name: String,
    },
    /// A step did not run because its `if:` was false.
    StepSkipped {
        /// The step's display name.
        name: String,
        /// Why.
        reason: String,
    },
    /// One line of step output.
    Output {
        /// The line, masked.
        line: String,
    },
    /// `::group::title`
    GroupStarted {
        /// The group title.
        title: String,
    },
    /// `::endgroup::`
    GroupEnded,
    /// `::debug::`
    Debug {
        /// The message.
        message: String,
    },
    /// A notice, warning or error (workflow command, handler, or the runner about a step).
    Annotation {
        /// Notice, warning or error.
        level: AnnotationLevel,
        /// The text.
        message: String,
        /// `title=`
        title: Option<String>,
        /// `file=`
        file: Option<String>,
        /// `line=`
        line: Option<String>,
        /// `col=`
        col: Option<String>,
    },
    /// A step ended.
    StepFinished {
        /// The step's display name.
        name: String,
        /// Before `continue-on-error`.
        outcome: Status,
        /// After `continue-on-error`.
        conclusion: Status,
        /// Wall time.
        #[serde(serialize_with = "ser_secs")]
        duration: Duration,
    },
    /// A job ended.
    JobFinished {
        /// The job id.
        job: String,
        /// The display name.
        name: String,
        /// Its result.
        result: Status,
        /// Wall time.
        #[serde(serialize_with = "ser_secs")]
        duration: Duration,
    },
    /// `--dry-run`: a job that would run.
    PlanJob {
        /// The job id.
        job: String,
        /// The display name.
        name: String,
        /// `needs:`
        needs: Vec<String>,
        /// The `if:` as written and how it evaluates assuming every need succeeded.
        condition: Option<(String, String)>,
    },
    /// `--dry-run`: a step of the job above.
    PlanStep {
        /// The display name.
        name: String,
        /// `run` or `uses: <action>` and whether a handler is registered.
        action: String,
        /// The `if:` as written and how it evaluates assuming every step before succeeded.
        condition: Option<(String, String)>,
        /// Evaluated `with:` inputs.
        with: IndexMap<String, String>,
    },
}

/// How serious an annotation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnnotationLevel {
    /// `::notice::`
    Notice,
    /// `::warning::`
    Warning,
    /// `::error::`
    Error,
}

impl AnnotationLevel {
    /// From a handler's log level, when that level is an annotation.
    pub fn from_log(level: LogLevel) -> Option<Self> {
        match level {
            LogLevel::Notice => Some(Self::Notice),
            LogLevel::Warning => Some(Self::Warning),
            LogLevel::Error => Some(Self::Error),
            LogLevel::Debug | LogLevel::Info => None,
        }
    }
}

/// Receives events as they happen (a terminal printer, a JSON log, a CI runner's own UI).
pub trait EventSink {
    /// Handles one event.
    fn event(&mut self, event: &Event);
}

/// A sink that keeps every event (tests, embedding).
impl EventSink for Vec<Event> {
    fn event(&mut self, event: &Event) {
        self.push(event.clone());
    }
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// One step in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepReport {
    /// `id:` when given.
    pub id: Option<String>,
    /// The display name (`Post <name>` for post steps).
    pub name: String,
    /// Before `continue-on-error`.
    pub outcome: Status,
    /// After `continue-on-error`.
    pub conclusion: Status,
    /// Outputs the step set (masked).
    pub outputs: IndexMap<String, String>,
    /// Wall time in seconds.
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
}

/// One job run (one matrix combination) in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobReport {
    /// The job id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The matrix combination, when the job has a matrix.
    pub matrix: Option<serde_json::Value>,
    /// The job's result as `needs.<id>.result` sees it.
    pub result: Status,
    /// Job outputs (masked).
    pub outputs: IndexMap<String, String>,
    /// Job outputs as the jobs that need this one see them (unmasked: never print these).
    #[serde(skip)]
    pub raw_outputs: IndexMap<String, String>,
    /// What the steps wrote to `GITHUB_STEP_SUMMARY` (masked).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub summary: String,
    /// Steps in the order they ran, post steps last.
    pub steps: Vec<StepReport>,
    /// Steps that did not run because their action cannot run here (`--skip-unsupported`), or
    /// whose `if:` was false because such a step produced nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_run: Vec<NotRun>,
    /// Wall time in seconds.
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
}

/// A step that was not run because of an action this host cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotRun {
    /// The step's display name.
    pub step: String,
    /// Why, e.g. `Docker actions are not supported`.
    pub reason: String,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    /// The workflow file.
    pub workflow: String,
    /// Jobs in the order they ran (skipped jobs included).
    pub jobs: Vec<JobReport>,
    /// True for `--dry-run` (nothing ran; job results are what the plan assumes).
    pub dry_run: bool,
}

impl RunReport {
    /// True when no job failed or was cancelled.
    pub fn success(&self) -> bool {
        self.jobs
            .iter()
            .all(|j| matches!(j.result, Status::Success | Status::Skipped))
    }

    /// Every step of every job that was not run because of an unsupported action.
    pub fn not_run(&self) -> impl Iterator<Item = &NotRun> {
        self.jobs.iter().flat_map(|j| j.not_run.iter())
    }
}
