//! `run:` steps and the processes of JavaScript actions, in three parts: prepare (the script
//! file, shell, working directory, environment and file-command files), spawn (the process and
//! its output, line by line), conclude (the exit status, then the file commands).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::commands::{self, CommandParser};
use super::error::ExecError;
use super::job::{JobRun, StepFailure, format_minutes};
use super::mask::Masker;
use super::process::{self, Exit, ProcessSpec};
use super::report::{AnnotationLevel, Emitter, EventKind, Status};
use super::runner::{Problem, Runner, eval_number, render};
use super::shell;
use super::step_io::{FileCommands, StepIo};
use crate::expr::Value;
use crate::workflow::{Step, Text};

/// A `run:` step ready to spawn.
struct PreparedScript {
    /// The script file (removed once the step ends).
    path: PathBuf,
    files: FileCommands,
    program: PathBuf,
    args: Vec<String>,
    env: IndexMap<String, String>,
    cwd: PathBuf,
}

/// A step process that ended, before it is judged.
struct Spawned {
    exit: Exit,
    /// The timeout in force was the job's, not the step's.
    is_job_deadline: bool,
    /// A workflow command it printed was invalid.
    failed_command: bool,
    /// `::save-state::` values.
    state: IndexMap<String, String>,
}

impl JobRun<'_> {
    fn timeout_for(&self, step: &Step) -> Result<(Option<Duration>, bool), Problem> {
        // Once the job is cancelled, cleanup steps (`if: always()`) get only their own timeout.
        let job_left = if self.cancelled {
            Duration::from_secs(u32::MAX.into())
        } else {
            self.deadline.saturating_duration_since(Instant::now())
        };
        let step_timeout = match &step.timeout_minutes {
            Some(t) => Some(Duration::from_secs_f64(
                (eval_number(t, &self.ctx)?.max(0.0) * 60.0).min(1e9),
            )),
            None => None,
        };
        Ok(match step_timeout {
            Some(t) if t < job_left => (Some(t), false),
            _ => (Some(job_left), true),
        })
    }

    /// A `run:` step: prepare, spawn, conclude; the script file goes either way.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::exec) fn run_script(
        &mut self,
        step: &Step,
        name: &str,
        step_id: &str,
        env: &IndexMap<String, String>,
        run: &Text,
        shell: Option<&Text>,
        working_directory: Option<&Text>,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<Status, StepFailure> {
        let script = self.prepare_script(step_id, env, run, shell, working_directory)?;
        let result = self.spawn_step(
            step,
            name,
            script.program,
            script.args,
            script.env,
            script.cwd,
            &script.files,
            outputs,
        );
        let _ = std::fs::remove_file(&script.path);
        result.map(|(status, _state)| status)
    }

    /// Renders the script into a file in `runner.temp`, resolves its shell (the step's, else
    /// the job's or workflow's `defaults.run`) and working directory, and makes the step's
    /// file-command files and environment.
    fn prepare_script(
        &mut self,
        step_id: &str,
        env: &IndexMap<String, String>,
        run: &Text,
        shell: Option<&Text>,
        working_directory: Option<&Text>,
    ) -> Result<PreparedScript, StepFailure> {
        let wf = &self.runner.workflow;
        let script = render(run, &self.ctx).map_err(StepFailure::Problem)?;
        // A composite action's steps do not take the workflow's or job's `defaults.run`: they
        // run as the action was written (GitHub requires their `shell:`).
        let defaults = self.composite_depth == 0;
        let shell_text = shell
            .or(self.job.defaults.shell.as_ref().filter(|_| defaults))
            .or(wf.defaults.shell.as_ref().filter(|_| defaults));
        let shell_value = match shell_text {
            Some(t) => Some(render(t, &self.ctx).map_err(StepFailure::Problem)?),
            None => None,
        };
        let wd_text = working_directory
            .or(self
                .job
                .defaults
                .working_directory
                .as_ref()
                .filter(|_| defaults))
            .or(wf.defaults.working_directory.as_ref().filter(|_| defaults));
        let cwd = match wd_text {
            Some(t) => {
                let wd = render(t, &self.ctx).map_err(StepFailure::Problem)?;
                self.runner.options.workspace.join(wd)
            }
            None => self.runner.options.workspace.clone(),
        };
        let uuid = uuid::Uuid::now_v7();
        let runner_temp = self.info.temp.clone();
        let script_path = runner_temp.join(format!(
            "{uuid}{}",
            shell::extension_for(shell_value.as_deref())
        ));
        std::fs::write(&script_path, &script).map_err(|source| {
            StepFailure::Fatal(ExecError::Io {
                path: script_path.clone(),
                source,
            })
        })?;
        let files = FileCommands::create(self.temp.path(), &uuid.to_string())
            .map_err(StepFailure::Fatal)?;
        let proc_env = self.process_env(env, step_id, &files);
        let path_var = proc_env.get("PATH").cloned().unwrap_or_default();
        let shell_cmd =
            shell::resolve(shell_value.as_deref(), &script_path, &path_var).map_err(|e| {
                let _ = std::fs::remove_file(&script_path);
                StepFailure::Message(e.to_string())
            })?;
        self.emit(EventKind::Debug {
            message: format!("shell: {}", shell_cmd.display),
        });
        if !cwd.is_dir() {
            return Err(StepFailure::Message(format!(
                "working-directory {} does not exist",
                cwd.display()
            )));
        }
        Ok(PreparedScript {
            path: script_path,
            files,
            program: shell_cmd.program,
            args: shell_cmd.args,
            env: proc_env,
            cwd,
        })
    }

    /// Runs one step process (a `run:` script, a node action) with the runner's output
    /// handling: workflow commands on stdout, masking, the step's and the job's timeout, then
    /// the file commands. Returns the status and the state the process saved.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::exec) fn spawn_step(
        &mut self,
        step: &Step,
        name: &str,
        program: PathBuf,
        args: Vec<String>,
        proc_env: IndexMap<String, String>,
        cwd: PathBuf,
        files: &FileCommands,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<(Status, IndexMap<String, String>), StepFailure> {
        let spawned = self.spawn(step, program, args, proc_env, cwd, outputs)?;
        Ok(self.conclude(step, name, spawned, files, outputs))
    }

    /// Runs the process to its end, reading its output a line at a time: workflow commands
    /// act, the rest is masked and reported; outputs, env and path additions made by commands
    /// apply at once.
    fn spawn(
        &mut self,
        step: &Step,
        program: PathBuf,
        args: Vec<String>,
        proc_env: IndexMap<String, String>,
        cwd: PathBuf,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<Spawned, StepFailure> {
        let env = &proc_env;
        let (timeout, is_job_deadline) = self.timeout_for(step).map_err(StepFailure::Problem)?;
        let spec = ProcessSpec {
            program,
            args,
            env: proc_env.clone(),
            cwd,
            timeout,
            // Once the job is cancelled, the steps that still run (`if: always()`) are cleanup
            // and must not be killed by the same cancellation.
            cancel: if self.cancelled {
                Arc::new(AtomicBool::new(false))
            } else {
                self.runner.options.cancel.clone()
            },
        };
        let mut io = StepIo {
            parser: CommandParser::new(),
            echo: false,
            failed_command: false,
            outputs: IndexMap::new(),
            state: IndexMap::new(),
        };
        let masker_ptr: &mut Masker = self.masker;
        let allow_unsecure = env
            .get("ACTIONS_ALLOW_UNSECURE_COMMANDS")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let sink: &Emitter = &self.sink;
        let mut new_env: Vec<(String, String)> = Vec::new();
        let mut new_path: Vec<String> = Vec::new();
        let exit = {
            let mut on_line = |stream: process::Stream, line: &str| {
                io.handle_line(
                    line,
                    stream,
                    masker_ptr,
                    sink,
                    allow_unsecure,
                    &mut new_env,
                    &mut new_path,
                );
            };
            process::run(&spec, &mut on_line)
        };
        let (exit, _pgid) = exit.map_err(|e| StepFailure::Message(e.to_string()))?;
        for (k, v) in io.outputs.drain(..) {
            outputs.insert(k, v);
        }
        let state = std::mem::take(&mut io.state);
        for (k, v) in new_env {
            self.env.insert(k, v);
        }
        for p in new_path {
            self.add_path(p);
        }
        Ok(Spawned {
            exit,
            is_job_deadline,
            failed_command: io.failed_command,
            state,
        })
    }

    /// Judges a finished process: its exit (annotated as GitHub words it), a failed workflow
    /// command, then the file commands, processed whatever the exit code, as the runner does.
    fn conclude(
        &mut self,
        step: &Step,
        name: &str,
        spawned: Spawned,
        files: &FileCommands,
        outputs: &mut IndexMap<String, String>,
    ) -> (Status, IndexMap<String, String>) {
        let mut state = spawned.state;
        let mut status = match spawned.exit {
            Exit::Code(0) => Status::Success,
            Exit::Code(code) => {
                self.annotate(
                    AnnotationLevel::Error,
                    &format!("Process completed with exit code {code}."),
                );
                Status::Failure
            }
            Exit::Signal(sig) => {
                self.annotate(
                    AnnotationLevel::Error,
                    &format!("Process was terminated by signal {sig}."),
                );
                Status::Failure
            }
            Exit::TimedOut if spawned.is_job_deadline => {
                self.annotate(
                    AnnotationLevel::Error,
                    &format!(
                        "The job has exceeded its maximum execution time of {} minutes.",
                        format_minutes(self.timeout_minutes)
                    ),
                );
                self.cancelled = true;
                Status::Cancelled
            }
            Exit::TimedOut => {
                let minutes = step
                    .timeout_minutes
                    .as_ref()
                    .and_then(|t| eval_number(t, &self.ctx).ok())
                    .unwrap_or(0.0);
                self.annotate(
                    AnnotationLevel::Error,
                    &format!(
                        "The step '{name}' has timed out after {} minutes.",
                        format_minutes(minutes)
                    ),
                );
                Status::Failure
            }
            Exit::Cancelled => {
                self.annotate(AnnotationLevel::Error, "The operation was canceled.");
                self.cancelled = true;
                Status::Cancelled
            }
        };
        if spawned.failed_command && status == Status::Success {
            status = Status::Failure;
        }
        match self.apply_file_commands(files, outputs) {
            Ok(saved) => state.extend(saved),
            Err(e) => {
                self.annotate(AnnotationLevel::Error, &e.to_string());
                if status == Status::Success {
                    status = Status::Failure;
                }
            }
        }
        (status, state)
    }

    fn add_path(&mut self, dir: String) {
        self.path_prefix.retain(|p| *p != dir);
        self.path_prefix.insert(0, dir);
    }

    /// The base environment ([`super::BaseEnv`]) < GitHub's default variables < the step's env; `PATH` gets `GITHUB_PATH`
    /// additions in front.
    pub(in crate::exec) fn process_env(
        &self,
        env: &IndexMap<String, String>,
        step_id: &str,
        files: &FileCommands,
    ) -> IndexMap<String, String> {
        let mut out: IndexMap<String, String> = self
            .runner
            .options
            .base_env
            .variables()
            .into_iter()
            .filter(|(k, _)| {
                !k.starts_with("GITHUB_") && !k.starts_with("INPUT_") && !k.starts_with("STATE_")
            })
            .collect();
        let g = |k: &str| Runner::github_str(&self.ctx, k);
        let r = |k: &str| {
            self.ctx
                .get("runner")
                .and_then(|v| v.get(k))
                .map(Value::to_display_string)
                .unwrap_or_default()
        };
        let defaults = [
            ("CI", "true".to_string()),
            (process::TRACKING_VAR, self.tracking_id.clone()),
            ("GITHUB_ACTIONS", "true".to_string()),
            ("GITHUB_ACTION", step_id.to_string()),
            ("GITHUB_ACTOR", g("actor")),
            ("GITHUB_API_URL", g("api_url")),
            ("GITHUB_BASE_REF", g("base_ref")),
            ("GITHUB_EVENT_NAME", g("event_name")),
            ("GITHUB_EVENT_PATH", self.event_path.display().to_string()),
            ("GITHUB_GRAPHQL_URL", g("graphql_url")),
            ("GITHUB_HEAD_REF", g("head_ref")),
            ("GITHUB_JOB", g("job")),
            ("GITHUB_REF", g("ref")),
            ("GITHUB_REF_NAME", g("ref_name")),
            ("GITHUB_REF_TYPE", g("ref_type")),
            ("GITHUB_REPOSITORY", g("repository")),
            ("GITHUB_REPOSITORY_OWNER", g("repository_owner")),
            ("GITHUB_RETENTION_DAYS", g("retention_days")),
            ("GITHUB_RUN_ATTEMPT", g("run_attempt")),
            ("GITHUB_RUN_ID", g("run_id")),
            ("GITHUB_RUN_NUMBER", g("run_number")),
            ("GITHUB_SERVER_URL", g("server_url")),
            ("GITHUB_SHA", g("sha")),
            ("GITHUB_TRIGGERING_ACTOR", g("triggering_actor")),
            ("GITHUB_WORKFLOW", g("workflow")),
            ("GITHUB_WORKSPACE", g("workspace")),
            ("GITHUB_OUTPUT", files.output.display().to_string()),
            ("GITHUB_ENV", files.env.display().to_string()),
            ("GITHUB_PATH", files.path.display().to_string()),
            ("GITHUB_STATE", files.state.display().to_string()),
            ("GITHUB_STEP_SUMMARY", files.summary.display().to_string()),
            ("RUNNER_ARCH", r("arch")),
            ("RUNNER_DEBUG", r("debug")),
            ("RUNNER_NAME", r("name")),
            ("RUNNER_OS", r("os")),
            ("RUNNER_TEMP", r("temp")),
            ("RUNNER_TOOL_CACHE", r("tool_cache")),
        ];
        for (k, v) in defaults {
            out.insert(k.to_string(), v);
        }
        if let Some(home) = &self.runner.options.home {
            out.insert("HOME".into(), home.display().to_string());
        }
        if let Some(dir) = &self.action_path {
            out.insert("GITHUB_ACTION_PATH".into(), dir.display().to_string());
        }
        for (k, v) in env {
            out.insert(k.clone(), v.clone());
        }
        if !self.path_prefix.is_empty() {
            let base = out.get("PATH").cloned().unwrap_or_default();
            let mut parts = self.path_prefix.clone();
            if !base.is_empty() {
                parts.push(base);
            }
            out.insert("PATH".into(), parts.join(":"));
        }
        out
    }

    fn apply_file_commands(
        &mut self,
        files: &FileCommands,
        outputs: &mut IndexMap<String, String>,
    ) -> Result<IndexMap<String, String>, ExecError> {
        for (k, v) in commands::read_key_value_file(&files.output)? {
            outputs.insert(k, v);
        }
        for (k, v) in commands::read_key_value_file(&files.env)? {
            if k.eq_ignore_ascii_case("NODE_OPTIONS") {
                self.annotate(
                    AnnotationLevel::Error,
                    "Can't store NODE_OPTIONS output parameter using '$GITHUB_ENV' command.",
                );
                continue;
            }
            self.env.insert(k, v);
        }
        // A `run:` step's state has no post step to read it, but errors still show.
        let state: IndexMap<String, String> = commands::read_key_value_file(&files.state)?
            .into_iter()
            .collect();
        for dir in commands::read_path_file(&files.path)? {
            self.add_path(dir);
        }
        match std::fs::read(&files.summary) {
            Ok(bytes) if !bytes.is_empty() => {
                self.summary.push_str(&String::from_utf8_lossy(&bytes));
                if !self.summary.ends_with('\n') {
                    self.summary.push('\n');
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(ExecError::Io {
                    path: files.summary.clone(),
                    source,
                });
            }
        }
        self.sync_env_context();
        Ok(state)
    }
}
