//! What a run tells its caller: a stream of [`Event`]s while it runs (through an [`EventSink`])
//! and a [`RunReport`] at the end. Every string in both is already masked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use serde::Serialize;

use super::action::{LogLevel, Transfer};
use super::process::Stream;
use crate::clock::{Clock, EpochMillis};

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

/// Something that happened during a run, stamped with when and where it happened.
///
/// Serialized (`serde_json`) as one flat object: `{"at": 1700000000000, "job": "build",
/// "step": "2", "event": "output", "line": "hello", "stream": "stdout"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch, by [`super::RunOptions::clock`].
    pub at: EpochMillis,
    /// The job id (`jobs.<id>`) for everything that happens inside a job; `None` for the run's
    /// own warnings.
    pub job: Option<String>,
    /// The step for everything that happens inside one: its `id:` when written, else its 1-based
    /// position in the job (`"3"`, never a valid `id:`); post steps are `post:<that>`. Steps of
    /// a composite action report as the step that uses the action.
    pub step: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
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
        /// The pipe it came from (a handler's log lines are `stdout`, as `core.info` writes).
        stream: Stream,
    },
    /// A cache save or restore moved bytes (only transfers past
    /// [`crate::cache::PROGRESS_THRESHOLD`] report, at most once per MiB, then once finished).
    Progress {
        /// How far it got.
        #[serde(flatten)]
        transfer: Transfer,
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

/// Receives events as they happen (a terminal printer, a JSON log, a CI runner's own UI). The
/// library draws nothing itself: every line a step prints and every progress report comes here.
///
/// `&self` and `Send + Sync` because cache transfers report progress from inside a step and a
/// tokio-based embedder forwards events to other tasks; keep state behind a `Mutex`.
///
/// ```
/// use std::sync::Mutex;
/// use runner::exec::{Event, EventKind, EventSink};
///
/// /// Prints each output line with the step it came from.
/// #[derive(Default)]
/// struct Lines(Mutex<Vec<String>>);
///
/// impl EventSink for Lines {
///     fn event(&self, event: &Event) {
///         if let EventKind::Output { line, .. } = &event.kind {
///             let step = event.step.as_deref().unwrap_or("-");
///             if let Ok(mut lines) = self.0.lock() {
///                 lines.push(format!("[{step}] {line}"));
///             }
///         }
///     }
/// }
/// ```
pub trait EventSink: Send + Sync {
    /// Handles one event.
    fn event(&self, event: &Event);
}

impl std::fmt::Debug for dyn EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventSink")
    }
}

/// Drops every event: the default of [`super::RunOptions::events`], so a run shows nothing
/// unless its embedder asks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl EventSink for Discard {
    fn event(&self, _event: &Event) {}
}

/// Keeps every event in order (tests, embedders that look at the log afterwards).
#[derive(Debug, Default)]
pub struct Recorder(Mutex<Vec<Event>>);

impl Recorder {
    /// An empty recorder, shared: one handle goes into [`super::RunOptions::events`].
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// What happened so far, without the stamps.
    pub fn kinds(&self) -> Vec<EventKind> {
        self.events().into_iter().map(|e| e.kind).collect()
    }
}

impl EventSink for Recorder {
    fn event(&self, event: &Event) {
        if let Ok(mut events) = self.0.lock() {
            events.push(event.clone());
        }
    }
}

/// Stamps what the run reports with the time, job and step before it reaches the sink.
#[derive(Clone)]
pub(crate) struct Emitter {
    sink: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
    pub(crate) job: Option<String>,
    pub(crate) step: Option<String>,
}

impl Emitter {
    pub(crate) fn new(sink: Arc<dyn EventSink>, clock: Arc<dyn Clock>) -> Self {
        Self {
            sink,
            clock,
            job: None,
            step: None,
        }
    }

    /// The same sink, for events of `job`.
    pub(crate) fn for_job(&self, job: &str) -> Self {
        Self {
            job: Some(job.to_string()),
            step: None,
            ..self.clone()
        }
    }

    pub(crate) fn event(&self, kind: EventKind) {
        self.sink.event(&Event {
            at: self.clock.now_millis(),
            job: self.job.clone(),
            step: self.step.clone(),
            kind,
        });
    }

    /// Reports cache transfers of the current step.
    pub(crate) fn progress(&self) -> Arc<dyn Fn(&Transfer) + Send + Sync> {
        let emitter = self.clone();
        Arc::new(move |transfer: &Transfer| {
            emitter.event(EventKind::Progress {
                transfer: transfer.clone(),
            })
        })
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
