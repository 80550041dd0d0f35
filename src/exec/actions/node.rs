//! JavaScript actions (`runs.using: node12|16|20|24`): `main`, `pre` and `post` run with the
//! host's node through the same process runner as `run:` steps (workflow commands, masking,
//! timeouts, file commands), with the runner's contract: `INPUT_<NAME>`, `GITHUB_*`,
//! `RUNNER_*`, `GITHUB_STATE` → `STATE_*` for later scripts of the same step.

use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;

use super::run::input_var;
use super::{ActionRef, Resolution, Resolved, Runs, SECRET_ENV};
use crate::exec::ExecError;
use crate::exec::job::{JobRun, PostHook, PostKind, StepFailure};
use crate::exec::report::{AnnotationLevel, EventKind, Status};
use crate::exec::runner::{Runner, eval_condition};
use crate::exec::shell;
use crate::exec::step_io::FileCommands;
use crate::workflow::{Step, StepKind};

/// GitHub's default condition of `pre:` and `post:` scripts.
const DEFAULT_PRE_POST_IF: &str = "always()";

impl JobRun<'_> {
    /// Runs a JavaScript action's `main` and registers its `post`.
    pub(in crate::exec) fn run_node_main(
        &mut self,
        step: &Step,
        name: &str,
        action: &Arc<Resolved>,
        env: &IndexMap<String, String>,
        inputs: &IndexMap<String, String>,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<Status, StepFailure> {
        let Runs::Node {
            using,
            major,
            main,
            post,
            post_if,
            ..
        } = &action.manifest.runs
        else {
            return Err(StepFailure::Message(format!(
                "{} is not a JavaScript action",
                action.manifest.path.display()
            )));
        };
        self.check_node_version(env, *major, using);
        let mut state = if self.composite_depth == 0 {
            self.pre_state.remove(&step.pos).unwrap_or_default()
        } else {
            IndexMap::new()
        };
        let (status, saved) =
            self.run_node_script(step, name, action, main, env, inputs, &state, outputs)?;
        state.extend(saved);
        if let Some(script) = post {
            self.posts.push(PostHook {
                kind: PostKind::Node {
                    action: action.clone(),
                    script: script.clone(),
                    step: Box::new(step.clone()),
                },
                uses: uses_of(step),
                name: name.to_string(),
                id: step.id.as_ref().map(|i| i.value.clone()),
                condition: post_if
                    .as_ref()
                    .map_or_else(|| DEFAULT_PRE_POST_IF.to_string(), |c| c.raw.clone()),
                inputs: inputs.clone(),
                env: env.clone(),
                state,
                key: self.sink.step.clone().unwrap_or_default(),
            });
        }
        Ok(status)
    }

    /// Runs a registered `post:` script; failures are annotated here.
    pub(in crate::exec) fn run_node_post(
        &mut self,
        post: &PostHook,
        action: &Arc<Resolved>,
        script: &str,
        step: &Step,
    ) -> Status {
        let mut outputs = IndexMap::new();
        let result = self.run_node_script(
            step,
            &post.name,
            action,
            script,
            &post.env,
            &post.inputs,
            &post.state,
            &mut outputs,
        );
        self.status_of(result.map(|(status, _)| status))
    }

    /// A step result with its failure annotated (here even one that would stop a main step:
    /// a pre or post script's failure is its own).
    fn status_of(&mut self, result: Result<Status, StepFailure>) -> Status {
        match result {
            Ok(status) => status,
            Err(failure) => {
                if let Err(e) = self.annotate_failure(failure) {
                    self.annotate(AnnotationLevel::Error, &super::error_chain(&e));
                }
                Status::Failure
            }
        }
    }

    /// The `pre:` scripts of the job's JavaScript actions, in step order, before its first
    /// step. As on GitHub, a local (`./path`) action's `pre` does not run.
    pub(in crate::exec) fn run_pre_steps(&mut self) -> Result<(), ExecError> {
        let job = self.job;
        for step in &job.steps {
            let StepKind::Uses { uses, with } = &step.kind else {
                continue;
            };
            if self.runner.builtin_handler(&uses.value).is_some() {
                continue;
            }
            let Resolution::Action(action) = self.runner.resolve(&uses.value) else {
                continue;
            };
            let Runs::Node {
                pre: Some(pre),
                pre_if,
                ..
            } = &action.manifest.runs
            else {
                continue;
            };
            if let ActionRef::Local(path) = &action.action {
                self.annotate(
                    AnnotationLevel::Warning,
                    &format!("`pre` execution is not supported for local action from '{path}'"),
                );
                continue;
            }
            self.sink.step = self.step_key(step).map(|key| format!("pre:{key}"));
            let name = format!("Pre {}", self.step_name(step));
            let run_it = match pre_if {
                None => true,
                Some(c) => match eval_condition(c, &self.ctx) {
                    Ok(v) => v,
                    Err(p) => {
                        let diag = action.manifest.diagnostic(p.pos, p.message);
                        self.annotate(AnnotationLevel::Error, &diag.to_string());
                        false
                    }
                },
            };
            if !run_it {
                let reason = format!(
                    "pre-if: {} was false",
                    pre_if.as_ref().map_or("", |c| c.raw.as_str())
                );
                self.emit(EventKind::StepSkipped { name, reason });
                continue;
            }
            self.emit(EventKind::StepStarted { name: name.clone() });
            let started = std::time::Instant::now();
            let mut state = IndexMap::new();
            let result = self.pre_step(step, &name, &action, pre, with, &mut state);
            let status = self.status_of(result);
            self.pre_state.insert(step.pos, state);
            self.record_step(
                None,
                name,
                status,
                status,
                &IndexMap::new(),
                started.elapsed(),
            );
        }
        Ok(())
    }

    fn pre_step(
        &mut self,
        step: &Step,
        name: &str,
        action: &Arc<Resolved>,
        script: &str,
        with: &IndexMap<String, crate::workflow::Text>,
        state: &mut IndexMap<String, String>,
    ) -> Result<Status, StepFailure> {
        let env = self.step_env(step).map_err(StepFailure::Problem);
        self.sync_env_context();
        let env = env?;
        let inputs = self.action_inputs(action, with)?;
        let mut outputs = IndexMap::new();
        let (status, saved) = self.run_node_script(
            step,
            name,
            action,
            script,
            &env,
            &inputs,
            &IndexMap::new(),
            &mut outputs,
        )?;
        *state = saved;
        Ok(status)
    }

    /// Runs one script of a JavaScript action; returns its status and the state it saved.
    #[allow(clippy::too_many_arguments)]
    fn run_node_script(
        &mut self,
        step: &Step,
        name: &str,
        action: &Resolved,
        script: &str,
        env: &IndexMap<String, String>,
        inputs: &IndexMap<String, String>,
        state: &IndexMap<String, String>,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<(Status, IndexMap<String, String>), StepFailure> {
        let files = FileCommands::create(self.temp.path(), &uuid::Uuid::now_v7().to_string())
            .map_err(StepFailure::Fatal)?;
        let step_id = Runner::github_str(&self.ctx, "action");
        let mut proc_env = self.process_env(env, &step_id, &files);
        for (k, v) in self.job_action_env() {
            proc_env.insert(k, v);
        }
        for (k, v) in inputs {
            proc_env.insert(input_var(k), v.clone());
        }
        for (k, v) in state {
            proc_env.insert(format!("STATE_{k}"), v.clone());
        }
        proc_env.insert(
            "GITHUB_ACTION_PATH".into(),
            action.dir.display().to_string(),
        );
        if let ActionRef::Repo {
            owner,
            repo,
            reference,
            ..
        } = &action.action
        {
            proc_env.insert("GITHUB_ACTION_REPOSITORY".into(), format!("{owner}/{repo}"));
            proc_env.insert("GITHUB_ACTION_REF".into(), reference.clone());
        }
        let program = self.node_program(&proc_env)?;
        let entry = action.dir.join(script);
        if !entry.is_file() {
            return Err(StepFailure::Message(format!(
                "the action's script {} does not exist",
                entry.display()
            )));
        }
        let cwd = self.runner.options.workspace.clone();
        let args = vec![entry.display().to_string()];
        self.spawn_step(step, name, program, args, proc_env, cwd, &files, outputs)
    }

    /// The job's extra environment for JavaScript actions, made once; credentials masked.
    fn job_action_env(&mut self) -> IndexMap<String, String> {
        if self.action_env.is_none() {
            let env = match &self.runner.options.actions.job_env {
                Some(hook) => (hook.0)(&self.info),
                None => IndexMap::new(),
            };
            for key in SECRET_ENV {
                if let Some(value) = env.get(*key) {
                    self.masker.add(value);
                }
            }
            self.action_env = Some(env);
        }
        self.action_env.clone().unwrap_or_default()
    }

    /// The node executable: `--node` as given when it is a path, else found in `PATH`.
    fn node_program(&self, env: &IndexMap<String, String>) -> Result<PathBuf, StepFailure> {
        let node = &self.runner.options.actions.node;
        let name = node.to_string_lossy();
        let path_var = env.get("PATH").map(String::as_str).unwrap_or("");
        shell::which(&name, path_var).ok_or_else(|| {
            StepFailure::Message(format!(
                "cannot run JavaScript actions: node '{name}' was not found (install Node.js or pass --node PATH)"
            ))
        })
    }

    /// Warns once per job when the host's node is older than the action asks for.
    fn check_node_version(&mut self, env: &IndexMap<String, String>, wanted: u32, using: &str) {
        if self.node_major.is_none() {
            let mut probe_env = env.clone();
            if !probe_env.contains_key("PATH")
                && let Ok(path) = std::env::var("PATH")
            {
                probe_env.insert("PATH".into(), path);
            }
            let major = self
                .node_program(&probe_env)
                .ok()
                .and_then(|p| std::process::Command::new(p).arg("--version").output().ok())
                .and_then(|out| parse_node_major(&String::from_utf8_lossy(&out.stdout)));
            self.node_major = Some(major);
        }
        if let Some(Some(host)) = self.node_major
            && host < wanted
        {
            self.annotate(
                AnnotationLevel::Warning,
                &format!(
                    "this action asks for {using}, but the host's node is v{host}; running it with v{host} (pass --node with a newer node)"
                ),
            );
        }
    }
}

/// `v20.11.1` → 20.
fn parse_node_major(version: &str) -> Option<u32> {
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
}

fn uses_of(step: &Step) -> String {
    match &step.kind {
        StepKind::Uses { uses, .. } => uses.value.clone(),
        StepKind::Run { .. } => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_node_major;

    #[test]
    fn node_versions() {
        assert_eq!(parse_node_major("v20.11.1\n"), Some(20));
        assert_eq!(parse_node_major("v8.0.0"), Some(8));
        assert_eq!(parse_node_major("garbage"), None);
    }
}
