//! The `uses:` dispatch for actions without a built-in handler: resolve, check, compute the
//! inputs, then run them as composite or JavaScript actions; what cannot run here fails its step
//! (or, with `--skip-unsupported`, is skipped and named in the summary).

use indexmap::IndexMap;

use super::{Resolution, Resolved, Runs};
use crate::exec::job::{JobRun, StepFailure};
use crate::exec::report::{AnnotationLevel, NotRun, Status};
use crate::exec::runner::{Problem, render};
use crate::workflow::{Pos, Step, Text};

impl JobRun<'_> {
    /// Runs the action `uses` names, found through the action sources.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::exec) fn run_resolved_action(
        &mut self,
        step: &Step,
        name: &str,
        env: &IndexMap<String, String>,
        uses: &str,
        uses_pos: Pos,
        with: &IndexMap<String, Text>,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<Status, StepFailure> {
        let resolved = match self.runner.resolve(uses) {
            Resolution::Action(r) => r,
            Resolution::Unsupported(reason) => {
                return self.unsupported(step, name, uses, uses_pos, &reason);
            }
            // The message points into the action's own files.
            Resolution::Broken(message) => {
                return Err(StepFailure::Message(format!("action '{uses}': {message}")));
            }
        };
        for warning in &resolved.manifest.warnings {
            let message = warning.to_string();
            self.annotate(AnnotationLevel::Warning, &message);
        }
        let inputs = self.action_inputs(&resolved, with)?;
        match &resolved.manifest.runs {
            Runs::Composite { steps } => {
                self.run_composite(&resolved, steps, env, &inputs, outputs)
            }
            Runs::Node { .. } => self.run_node_main(step, name, &resolved, env, &inputs, outputs),
            Runs::Docker { .. } => self.unsupported(
                step,
                name,
                uses,
                uses_pos,
                "Docker actions are not supported",
            ),
        }
    }

    /// A step whose action cannot run on this host.
    fn unsupported(
        &mut self,
        step: &Step,
        name: &str,
        uses: &str,
        uses_pos: Pos,
        reason: &str,
    ) -> Result<Status, StepFailure> {
        let message = format!("action '{uses}' cannot run here: {reason}");
        if !self.runner.options.actions.skip_unsupported {
            return Err(StepFailure::Problem(Problem {
                pos: uses_pos,
                message: format!("{message} (--skip-unsupported skips such steps)"),
            }));
        }
        self.problem_at_level(
            AnnotationLevel::Warning,
            &Problem {
                pos: uses_pos,
                message: format!("{message}; step skipped (--skip-unsupported)"),
            },
        );
        self.not_run.push(NotRun {
            step: name.to_string(),
            reason: reason.to_string(),
        });
        if let Some(id) = &step.id {
            self.unsupported_ids.push(id.value.clone());
        }
        Ok(Status::Skipped)
    }

    /// The action's inputs: `with:` values, then the declared defaults (evaluated now), with
    /// the runner's warnings for unexpected and deprecated inputs.
    pub(in crate::exec) fn action_inputs(
        &mut self,
        action: &Resolved,
        with: &IndexMap<String, Text>,
    ) -> Result<IndexMap<String, String>, StepFailure> {
        let declared = &action.manifest.inputs;
        let mut inputs = IndexMap::new();
        let mut unexpected = Vec::new();
        for (key, text) in with {
            let value = render(text, &self.ctx).map_err(StepFailure::Problem)?;
            match declared
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(key))
            {
                Some((name, def)) => {
                    if let Some(message) = &def.deprecation {
                        self.annotate(
                            AnnotationLevel::Warning,
                            &format!("Input '{name}' has been deprecated with message: {message}"),
                        );
                    }
                    inputs.insert(name.clone(), value);
                }
                None => {
                    unexpected.push(key.clone());
                    inputs.insert(key.clone(), value);
                }
            }
        }
        if !unexpected.is_empty() {
            let valid: Vec<String> = declared.keys().map(|k| format!("'{k}'")).collect();
            self.annotate(
                AnnotationLevel::Warning,
                &format!(
                    "Unexpected input(s) '{}', valid inputs are [{}]",
                    unexpected.join("', '"),
                    valid.join(", ")
                ),
            );
        }
        for (name, def) in declared {
            if inputs.contains_key(name) {
                continue;
            }
            if def.required && def.default.is_none() {
                // What `core.getInput(name, {required: true})` would fail with later.
                self.annotate(
                    AnnotationLevel::Warning,
                    &format!("Input required and not supplied: {name}"),
                );
            }
            if let Some(default) = &def.default {
                // A default's position is in the action definition, not the workflow.
                let value = render(default, &self.ctx).map_err(|p| {
                    StepFailure::Message(action.manifest.diagnostic(p.pos, p.message).to_string())
                })?;
                inputs.insert(name.clone(), value);
            }
        }
        Ok(inputs)
    }
}

/// `INPUT_<NAME>` as the runner spells it: upper-cased, spaces to `_`.
pub(in crate::exec) fn input_var(name: &str) -> String {
    format!("INPUT_{}", name.replace(' ', "_").to_ascii_uppercase())
}
