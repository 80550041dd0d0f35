//! Workflow YAML → typed model in which every value knows its line and column; validation and load
//! errors with file:line:col. Parses (never evaluates) the expressions it contains.
//!
//! CONTRACT (exec codes against these names; extend, don't rename):
//! - [`load`] a file or [`parse`] text into a [`Workflow`]; errors are [`WorkflowError`] holding
//!   [`LoadError`]s (`ci.yml:14:17: message` + the line and a caret).
//! - Every expression-capable string is a [`Text`] (a parsed [`crate::expr::Template`] plus
//!   position; [`Located::pos_at`] maps an offset inside it back to the file), every `if:` a
//!   [`Condition`]. [`Workflow::diagnostic`] renders a runtime error at a [`Pos`].
//! - Pure helpers: [`job_order`], [`with_needs`], [`expand_matrix`], [`filter_matrix`].

mod build;
mod contexts;
mod error;
mod matrix;
mod model;
mod order;
mod yaml;

use std::path::Path;

pub use error::{Diagnostic, LoadError, WorkflowError};
pub use matrix::{Combination, MAX_COMBINATIONS, MatrixError, expand_matrix, filter_matrix};
pub use model::{
    Condition, Env, InputSpec, InputType, Inputs, Job, JobId, Located, OrExpr, Pos, RunDefaults,
    RunsOn, ScalarKind, SourceMap, Spanned, Step, StepKind, Strategy, Text, Tree, TreeKind,
    Workflow,
};
pub use order::{job_order, with_needs};

/// Reads and parses the workflow file at `path`.
pub fn load(path: &Path) -> Result<Workflow, WorkflowError> {
    let source = std::fs::read_to_string(path).map_err(|source| WorkflowError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &source)
}

/// Parses workflow text; `path` is only used in diagnostics and kept on the [`Workflow`].
pub fn parse(path: &Path, source: &str) -> Result<Workflow, WorkflowError> {
    // Editors on Windows may save a byte-order mark; it is not part of the text users see.
    let source = source.strip_prefix('\u{feff}').unwrap_or(source);
    build::build(path, source)
}

impl Workflow {
    /// A diagnostic at `pos` in this workflow's file (for errors found at run time).
    pub fn diagnostic(&self, pos: Pos, message: impl Into<String>) -> Diagnostic {
        Diagnostic::new(&self.path, &self.source, pos, message)
    }
}
