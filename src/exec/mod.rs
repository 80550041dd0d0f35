//! Job planning, contexts, the step loop, shells, file commands, the [`ActionHandler`] trait and
//! its registry, and post hooks. Knows nothing of how caches are stored.

mod action;

pub use action::{ActionContext, ActionError, ActionHandler, ActionRegistry, JobInfo, LogLevel};
