//! Which named contexts and functions an expression may use where it is written, as GitHub checks
//! at load time ("Unrecognized named-value: 'matrix'" in a workflow-level `env`).

use crate::expr::{Expr, ExprKind, Function, Index, Template, TemplatePart};

/// Where in the workflow an expression is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Not checked (the `on:` section, whose expressions GitHub evaluates elsewhere).
    Unchecked,
    /// Workflow-level `env`, `run-name`, `defaults`.
    Workflow,
    /// Job `if:`.
    JobIf,
    /// Job-level values: `name`, `runs-on`, `env`, `timeout-minutes`, `continue-on-error`, ...
    Job,
    /// `strategy:` (the matrix cannot see itself).
    Strategy,
    /// Job `outputs:` (evaluated after the steps).
    JobOutputs,
    /// Step `if:`.
    StepIf,
    /// Everything else inside a step.
    Step,
}

impl Scope {
    fn contexts(self) -> &'static [&'static str] {
        const WORKFLOW: &[&str] = &["github", "inputs", "vars", "secrets"];
        const JOB_IF: &[&str] = &["github", "inputs", "vars", "needs"];
        const JOB: &[&str] = &[
            "github", "inputs", "vars", "secrets", "needs", "strategy", "matrix",
        ];
        const STRATEGY: &[&str] = &["github", "inputs", "vars", "needs"];
        const STEP: &[&str] = &[
            "github", "inputs", "vars", "secrets", "needs", "strategy", "matrix", "steps", "job",
            "runner", "env",
        ];
        match self {
            Scope::Unchecked => &[],
            Scope::Workflow => WORKFLOW,
            Scope::JobIf => JOB_IF,
            Scope::Job => JOB,
            Scope::Strategy => STRATEGY,
            Scope::JobOutputs | Scope::StepIf | Scope::Step => STEP,
        }
    }

    fn allows_status(self) -> bool {
        matches!(self, Scope::JobIf | Scope::StepIf)
    }

    fn allows_hash_files(self) -> bool {
        matches!(self, Scope::StepIf | Scope::Step)
    }
}

/// The first use of a context or function `scope` does not allow: `(byte offset, message)`.
pub(crate) fn check_template(template: &Template, scope: Scope) -> Option<(usize, String)> {
    if scope == Scope::Unchecked {
        return None;
    }
    template.parts.iter().find_map(|part| match part {
        TemplatePart::Expr(e) => check_expr(e, scope),
        TemplatePart::Literal(_) => None,
    })
}

/// Like [`check_template`] for a parsed condition.
pub(crate) fn check_expr(expr: &Expr, scope: Scope) -> Option<(usize, String)> {
    if scope == Scope::Unchecked {
        return None;
    }
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Context(name) => {
                let known = scope
                    .contexts()
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(name));
                if !known {
                    let available = scope.contexts().join(", ");
                    return Some((
                        e.span.start,
                        format!("Unrecognized named-value: '{name}' (available here: {available})"),
                    ));
                }
            }
            ExprKind::Call {
                function,
                name,
                args,
            } => {
                let status = matches!(
                    function,
                    Function::Success | Function::Always | Function::Cancelled | Function::Failure
                );
                let allowed = if status {
                    scope.allows_status()
                } else if *function == Function::HashFiles {
                    scope.allows_hash_files()
                } else {
                    true
                };
                if !allowed {
                    return Some((
                        e.span.start,
                        format!("the function '{name}' is not available here"),
                    ));
                }
                stack.extend(args.iter().rev());
            }
            ExprKind::Index { target, index } => {
                if let Index::Expr(i) = index {
                    stack.push(i);
                }
                stack.push(target);
            }
            ExprKind::Not(inner) => stack.push(inner),
            ExprKind::Compare { left, right, .. } => {
                stack.push(right);
                stack.push(left);
            }
            ExprKind::And(items) | ExprKind::Or(items) => stack.extend(items.iter().rev()),
            ExprKind::Null | ExprKind::Bool(_) | ExprKind::Number(_) | ExprKind::String(_) => {}
        }
    }
    None
}
