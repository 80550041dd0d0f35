//! Composite actions (`runs.using: composite`): their steps run in the job's step loop with
//! the action's own `inputs` and `steps` contexts and `github.action_path`; outputs are mapped
//! from `steps.*.outputs`; post steps of nested actions join the job's post phase.

use std::sync::Arc;

use indexmap::IndexMap;

use super::{MAX_COMPOSITE_DEPTH, Resolved};
use crate::exec::contexts::{self, s};
use crate::exec::job::{JobRun, StepFailure};
use crate::exec::report::Status;
use crate::exec::runner::render;
use crate::expr::Value;
use crate::workflow::Step;

/// What a composite run replaces in the job while its steps run, to put back afterwards.
struct Saved {
    steps: Value,
    inputs: Value,
    action_path_value: Option<Value>,
    env: IndexMap<String, String>,
    failed: bool,
    action_path: Option<std::path::PathBuf>,
    action_source: Option<Arc<Resolved>>,
    reports: usize,
}

impl JobRun<'_> {
    /// Runs a composite action's steps; the step fails when one of them fails.
    pub(in crate::exec) fn run_composite(
        &mut self,
        action: &Arc<Resolved>,
        steps: &[Step],
        env: &IndexMap<String, String>,
        inputs: &IndexMap<String, String>,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<Status, StepFailure> {
        if self.composite_depth >= MAX_COMPOSITE_DEPTH {
            return Err(StepFailure::Message(format!(
                "composite actions are nested more than {MAX_COMPOSITE_DEPTH} deep (at {})",
                action.manifest.path.display()
            )));
        }
        let dir = action.dir.display().to_string();
        let saved = Saved {
            steps: self
                .ctx
                .get("steps")
                .cloned()
                .unwrap_or(Value::Object(IndexMap::new())),
            inputs: self
                .ctx
                .get("inputs")
                .cloned()
                .unwrap_or(Value::Object(IndexMap::new())),
            action_path_value: self.ctx.object_mut("github").get("action_path").cloned(),
            env: std::mem::replace(&mut self.env, env.clone()),
            failed: std::mem::replace(&mut self.failed, false),
            action_path: self.action_path.replace(action.dir.clone()),
            action_source: self.action_source.replace(action.clone()),
            reports: self.steps.len(),
        };
        self.ctx.set("steps", Value::Object(IndexMap::new()));
        self.ctx.set("inputs", contexts::string_object(inputs));
        self.ctx
            .object_mut("github")
            .insert("action_path".into(), s(dir));
        self.composite_depth += 1;
        let mut fatal = None;
        for step in steps {
            if let Err(e) = self.run_step(step) {
                fatal = Some(e);
                break;
            }
        }
        self.composite_depth -= 1;
        let failed = self.failed;
        // Outputs read the composite's own `steps` context.
        let mut problems = Vec::new();
        for (name, value) in &action.manifest.outputs {
            let Some(text) = value else {
                continue;
            };
            match render(text, &self.ctx) {
                Ok(v) => {
                    outputs.insert(name.clone(), v);
                }
                Err(p) => problems.push(p),
            }
        }
        for p in &problems {
            self.annotate_problem(p);
        }
        self.restore(saved, env);
        if let Some(e) = fatal {
            return Err(StepFailure::Fatal(e));
        }
        Ok(if self.cancelled {
            Status::Cancelled
        } else if failed || !problems.is_empty() {
            Status::Failure
        } else {
            Status::Success
        })
    }

    fn restore(&mut self, saved: Saved, step_env: &IndexMap<String, String>) {
        // What the nested steps added with GITHUB_ENV stays for the rest of the job.
        let inner = std::mem::replace(&mut self.env, saved.env);
        for (k, v) in inner {
            if step_env.get(&k) != Some(&v) {
                self.env.insert(k, v);
            }
        }
        self.failed = saved.failed;
        self.action_path = saved.action_path;
        self.action_source = saved.action_source;
        // The nested steps show in the log; the report lists the composite step once.
        self.steps.truncate(saved.reports);
        self.ctx.set("steps", saved.steps);
        self.ctx.set("inputs", saved.inputs);
        let github = self.ctx.object_mut("github");
        match saved.action_path_value {
            Some(v) => github.insert("action_path".into(), v),
            None => github.shift_remove("action_path"),
        };
        self.sync_env_context();
        self.sync_state();
    }
}
