//! Job planning, contexts, the step loop, shells, file commands, the [`ActionHandler`] trait and
//! its registry, and post hooks. Knows nothing of how caches are stored.
//!
//! `uses:` steps without a handler run as real actions ([`actions`]): composite and JavaScript
//! actions from `./path` or `owner/repo@ref` ([`RunOptions::actions`]); one that cannot run here
//! fails its step unless `skip_unsupported`, and the [`RunReport`] names it ([`NotRun`]).
//!
//! Embedding: load a workflow, choose the handlers for `uses:` steps, and run it, receiving
//! [`Event`]s as they happen and a [`RunReport`] at the end.
//!
//! ```no_run
//! use runner::exec::{builtin_registry, Recorder, RunOptions, Runner};
//!
//! let workflow = runner::workflow::load(".github/workflows/ci.yml".as_ref())?;
//! let events = Recorder::new(); // or any `EventSink`
//! let options = RunOptions { workspace: ".".into(), events: events.clone(), ..RunOptions::default() };
//! let report = Runner::new(workflow, options, builtin_registry()).run()?;
//! assert!(report.success());
//! println!("{} events", events.events().len());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod action;
pub mod actions;
pub mod commands;
mod contexts;
mod error;
pub mod git;
mod inputs;
mod job;
pub(crate) mod mask;
mod plan;
pub(crate) mod process;
mod report;
mod runner;
mod script;
pub(crate) mod shell;
mod step_io;

pub use action::{
    ActionContext, ActionError, ActionHandler, ActionRegistry, Direction, JobInfo, LogLevel,
    ProgressFn, Transfer,
};
pub use contexts::{Contexts, JobState};
pub use error::ExecError;
pub use plan::{ListedJob, ListedStep};
pub use process::Stream;
pub use report::{
    AnnotationLevel, Discard, Event, EventKind, EventSink, JobReport, NotRun, Recorder, RunReport,
    Status, StepReport,
};
pub use runner::{BaseEnv, RunCounter, RunOptions, Runner, builtin_registry};
