//! The model builder opened to other YAML files that hold workflow pieces (an action's
//! `action.yml`): the same positioned parser, the same typed `Text`/`Condition`/`Step` values and
//! the same diagnostics, without the workflow's top-level rules.

use std::path::Path;

use super::super::error::{Diagnostic, WorkflowError};
use super::super::model::{Condition, Pos, Step, Text};
use super::super::yaml::{self, Node, NodeKind};
use super::{Cx, Entries, is_null};
use crate::workflow::contexts::Scope;

/// A YAML node of the positioned tree (crate-internal).
pub(crate) type FragmentNode = Node;

/// Builds typed values from one YAML file, collecting every error with its position.
pub(crate) struct Fragment<'a> {
    cx: Cx<'a>,
}

impl<'a> Fragment<'a> {
    /// A builder for the file `path` with text `source`; expressions are checked as step values.
    pub(crate) fn new(path: &'a Path, source: &'a str) -> Self {
        Self {
            cx: Cx {
                path,
                source,
                errors: Vec::new(),
                warnings: Vec::new(),
                scope: Scope::Step,
            },
        }
    }

    /// Parses the document; a syntax error is recorded and gives `None`.
    pub(crate) fn root(&mut self) -> Option<Node> {
        match yaml::parse(self.cx.source) {
            Ok(doc) => {
                if doc.root.is_none() {
                    self.cx.error(Pos::new(1, 1), "the file is empty");
                }
                doc.root
            }
            Err(e) => {
                self.cx.error(e.pos, e.message);
                None
            }
        }
    }

    /// Records an error at `pos`.
    pub(crate) fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.cx.error(pos, message);
    }

    /// A mapping's entries, reporting unknown keys (`ignored` ones with a warning).
    pub(crate) fn mapping<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        known: &[&str],
        ignored: &[&str],
    ) -> Option<Entries<'n>> {
        self.cx.mapping(node, what, known, ignored)
    }

    /// A mapping with arbitrary keys.
    pub(crate) fn loose_mapping<'n>(&mut self, node: &'n Node, what: &str) -> Option<Entries<'n>> {
        self.cx.loose_mapping(node, what)
    }

    /// A string that may hold expressions.
    pub(crate) fn text(&mut self, node: &Node, what: &str) -> Option<Text> {
        self.cx.text(node, what)
    }

    /// A plain scalar's value (no expression parsing), `None` for YAML null.
    pub(crate) fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        let s = self.cx.scalar(node, what, "a string")?;
        (!is_null(s)).then(|| s.value.clone())
    }

    /// An `if:` condition.
    pub(crate) fn condition(&mut self, node: &Node) -> Option<Condition> {
        self.cx.scoped(Scope::StepIf, |cx| cx.condition(node))
    }

    /// A `steps:` list, built and validated as a job's steps are.
    pub(crate) fn steps(&mut self, node: &Node) -> Vec<Step> {
        self.cx.steps(node)
    }

    /// True for a YAML sequence node.
    pub(crate) fn is_seq(node: &Node) -> bool {
        matches!(node.kind, NodeKind::Seq(_))
    }

    /// The errors found (sorted), or the warnings when there were none.
    pub(crate) fn finish(self) -> Result<Vec<Diagnostic>, WorkflowError> {
        let Cx {
            path,
            mut errors,
            mut warnings,
            ..
        } = self.cx;
        if errors.is_empty() {
            warnings.sort_by_key(|e| (e.line, e.column));
            return Ok(warnings);
        }
        errors.sort_by_key(|e| (e.line, e.column));
        Err(WorkflowError::Invalid {
            path: path.to_path_buf(),
            errors,
        })
    }
}
