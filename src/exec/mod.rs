//! Job planning, contexts, the step loop, shells, file commands, the [`ActionHandler`] trait and
//! its registry, and post hooks. Knows nothing of how caches are stored.

mod action;
pub mod commands;
mod contexts;
mod error;
pub mod git;
pub mod mask;
pub mod process;
mod report;
mod runner;
pub mod shell;

pub use action::{ActionContext, ActionError, ActionHandler, ActionRegistry, JobInfo, LogLevel};
pub use contexts::{Contexts, JobState};
pub use error::ExecError;
pub use report::{AnnotationLevel, Event, EventSink, JobReport, RunReport, Status, StepReport};
pub use runner::{RunOptions, Runner, builtin_registry};
