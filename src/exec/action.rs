//! `uses:` steps handled in-process: the [`ActionHandler`] trait, what a handler sees
//! ([`ActionContext`]), and the [`ActionRegistry`] that maps `owner/name[/path]` to handlers.
//!
//! CONTRACT (the cache issue plugs in here; extend, don't rename).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;

use crate::expr::Host;

/// Facts about the running job that handlers need without evaluating expressions.
#[derive(Debug, Clone, Default)]
pub struct JobInfo {
    /// `github.workspace`.
    pub workspace: PathBuf,
    /// `github.repository` (`owner/name`).
    pub repository: String,
    /// `github.ref`, e.g. `refs/heads/main`.
    pub git_ref: String,
    /// The pull request base as a full ref (`refs/heads/main`), when there is one.
    pub base_ref: Option<String>,
    /// The repository's default branch as a full ref, when known.
    pub default_branch: Option<String>,
    /// `github.run_id`.
    pub run_id: String,
    /// `runner.os` as GitHub spells it (`Linux`, `macOS`, `Windows`).
    pub runner_os: String,
    /// The home directory `~` expands to.
    pub home: PathBuf,
    /// `runner.temp`.
    pub temp: PathBuf,
}

/// Severity of a log line a handler writes; warnings and errors become annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Shown only with debug logging.
    Debug,
    /// Plain output.
    Info,
    /// `::notice::`
    Notice,
    /// `::warning::`
    Warning,
    /// `::error::`
    Error,
}

/// Which way a cache transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Archiving and storing (the post-job save).
    Save,
    /// Fetching and extracting.
    Restore,
}

/// How far a cache save or restore has got; reported through [`ActionContext::progress`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Transfer {
    /// Save or restore.
    pub direction: Direction,
    /// Archive bytes moved so far.
    pub bytes: u64,
    /// The archive's size, when known (restores; a save learns it at the end).
    pub total: Option<u64>,
    /// Milliseconds since the transfer started.
    pub elapsed_ms: u64,
    /// The last report of this transfer.
    pub done: bool,
}

/// Receives [`Transfer`] reports; shared with the cache, which may report from any thread.
pub type ProgressFn = Arc<dyn Fn(&Transfer) + Send + Sync>;

/// An action failed; the step fails with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ActionError {
    /// What the user sees, e.g. GitHub's own wording for the failure.
    pub message: String,
}

impl ActionError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// What a handler sees and produces for one `uses:` step (main or post).
pub struct ActionContext<'a> {
    /// The `uses:` value as written, e.g. `actions/cache@v4`.
    pub uses: &'a str,
    /// The step's evaluated `with:` inputs (names as written).
    pub inputs: &'a IndexMap<String, String>,
    /// The step's environment (workflow < job < step, plus `GITHUB_ENV` additions).
    pub env: &'a IndexMap<String, String>,
    /// Facts about the job.
    pub job: &'a JobInfo,
    /// The expression contexts, for handlers that need more than [`JobInfo`].
    pub contexts: &'a dyn Host,
    /// Outputs set so far (`steps.<id>.outputs`).
    pub outputs: IndexMap<String, String>,
    /// State saved by the main step; in the post step, what the main step saved.
    pub state: IndexMap<String, String>,
    /// `Some(condition)` once the main step asked for a post step.
    pub post_condition: Option<String>,
    /// Sink for log lines; the runner masks secrets and renders annotations.
    pub log: &'a mut dyn FnMut(LogLevel, &str),
    /// Where cache transfers report progress (the runner's event sink); `None` reports nothing.
    pub progress: Option<ProgressFn>,
}

impl ActionContext<'_> {
    /// An input by name, case-insensitively, as `core.getInput` reads `INPUT_<NAME>`; trimmed.
    pub fn input(&self, name: &str) -> Option<&str> {
        self.inputs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
    /// Sets a step output.
    pub fn set_output(&mut self, name: &str, value: impl Into<String>) {
        self.outputs.insert(name.to_string(), value.into());
    }
    /// Saves state for the post step (`STATE_<name>`).
    pub fn save_state(&mut self, name: &str, value: impl Into<String>) {
        self.state.insert(name.to_string(), value.into());
    }
    /// Reads state saved by the main step.
    pub fn get_state(&self, name: &str) -> Option<&str> {
        self.state.get(name).map(String::as_str)
    }
    /// Asks for a post step that runs after the job's last step if `condition` (an `if:`
    /// expression such as `success()` or `always()`) holds.
    pub fn register_post(&mut self, condition: &str) {
        self.post_condition = Some(condition.to_string());
    }
    /// Writes a log line.
    pub fn log(&mut self, level: LogLevel, message: &str) {
        (self.log)(level, message);
    }
    /// Writes a plain log line.
    pub fn info(&mut self, message: &str) {
        self.log(LogLevel::Info, message);
    }
    /// Writes a warning annotation.
    pub fn warning(&mut self, message: &str) {
        self.log(LogLevel::Warning, message);
    }
}

/// An action implemented in-process (`actions/cache`, `actions/checkout`, ...).
pub trait ActionHandler: Send + Sync {
    /// Runs the main step. `Err` fails the step.
    fn run(&self, ctx: &mut ActionContext<'_>) -> Result<(), ActionError>;
    /// Runs the post step registered with [`ActionContext::register_post`]; `ctx.state` holds
    /// what the main step saved.
    fn post(&self, _ctx: &mut ActionContext<'_>) -> Result<(), ActionError> {
        Ok(())
    }
}

/// Maps `uses:` names (`owner/name` or `owner/name/path`, without `@ref`, case-insensitive) to
/// handlers.
#[derive(Default, Clone)]
pub struct ActionRegistry {
    handlers: HashMap<String, Arc<dyn ActionHandler>>,
}

impl ActionRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }
    /// Registers `handler` for `name` (e.g. `actions/cache/restore`).
    pub fn register(&mut self, name: &str, handler: Arc<dyn ActionHandler>) {
        self.handlers.insert(name.to_ascii_lowercase(), handler);
    }
    /// The handler for a `uses:` value such as `actions/cache/save@v4`, if any.
    pub fn get(&self, uses: &str) -> Option<Arc<dyn ActionHandler>> {
        let name = uses.split_once('@').map_or(uses, |(name, _)| name);
        self.handlers
            .get(&name.trim_end_matches('/').to_ascii_lowercase())
            .cloned()
    }
}
