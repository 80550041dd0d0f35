//! What a `run:` step writes back: the per-step file-command files and the workflow commands
//! in its output.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;

use super::commands::{CommandParser, Line, WorkflowCommand};
use super::error::ExecError;
use super::mask::Masker;
use super::process::Stream;
use super::report::{AnnotationLevel, Emitter, EventKind};

/// The per-step files a `run:` step writes commands to.
pub(super) struct FileCommands {
    pub(super) output: PathBuf,
    pub(super) env: PathBuf,
    pub(super) path: PathBuf,
    pub(super) state: PathBuf,
    pub(super) summary: PathBuf,
}

impl FileCommands {
    pub(super) fn create(job_temp: &Path, suffix: &str) -> Result<Self, ExecError> {
        let dir = job_temp.join("file_commands");
        std::fs::create_dir_all(&dir).map_err(|source| ExecError::Io {
            path: dir.clone(),
            source,
        })?;
        let files = Self {
            output: dir.join(format!("set_output_{suffix}")),
            env: dir.join(format!("set_env_{suffix}")),
            path: dir.join(format!("add_path_{suffix}")),
            state: dir.join(format!("save_state_{suffix}")),
            summary: dir.join(format!("step_summary_{suffix}")),
        };
        for p in [
            &files.output,
            &files.env,
            &files.path,
            &files.state,
            &files.summary,
        ] {
            std::fs::write(p, b"").map_err(|source| ExecError::Io {
                path: p.clone(),
                source,
            })?;
        }
        Ok(files)
    }
}

/// What the output of one `run:` step did, line by line.
pub(super) struct StepIo {
    pub(super) parser: CommandParser,
    pub(super) echo: bool,
    pub(super) failed_command: bool,
    pub(super) outputs: IndexMap<String, String>,
    pub(super) state: IndexMap<String, String>,
}

impl StepIo {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_line(
        &mut self,
        line: &str,
        stream: Stream,
        masker: &mut Masker,
        sink: &Emitter,
        allow_unsecure: bool,
        new_env: &mut Vec<(String, String)>,
        new_path: &mut Vec<String>,
    ) {
        match self.parser.parse(line) {
            Line::Text(text) => sink.event(EventKind::Output {
                line: masker.mask(&text),
                stream,
            }),
            Line::Stopped { token } => {
                if token.len() > 6 {
                    masker.add(&token);
                }
                sink.event(EventKind::Output {
                    line: masker.mask(line),
                    stream,
                });
            }
            Line::Resumed => sink.event(EventKind::Output {
                line: masker.mask(line),
                stream,
            }),
            Line::BadStopToken { token } => {
                self.failed_command = true;
                sink.event(EventKind::Annotation {
                    level: AnnotationLevel::Error,
                    message: masker.mask(&format!(
                        "Invalid stop-commands token '{token}': use a unique value that is not a command name"
                    )),
                    title: None,
                    file: None,
                    line: None,
                    col: None,
                });
            }
            Line::Command(cmd) => {
                if self.echo && cmd.name != "add-mask" {
                    sink.event(EventKind::Output {
                        line: masker.mask(line),
                        stream,
                    });
                }
                self.command(cmd, stream, masker, sink, allow_unsecure, new_env, new_path);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn command(
        &mut self,
        cmd: WorkflowCommand,
        stream: Stream,
        masker: &mut Masker,
        sink: &Emitter,
        allow_unsecure: bool,
        new_env: &mut Vec<(String, String)>,
        new_path: &mut Vec<String>,
    ) {
        let error = |sink: &Emitter, masker: &Masker, message: String| {
            sink.event(EventKind::Annotation {
                level: AnnotationLevel::Error,
                message: masker.mask(&message),
                title: None,
                file: None,
                line: None,
                col: None,
            });
        };
        match cmd.name.as_str() {
            "add-mask" => {
                if cmd.data.trim().is_empty() {
                    sink.event(EventKind::Annotation {
                        level: AnnotationLevel::Warning,
                        message: "Can't add secret mask for empty string in ::add-mask:: command."
                            .to_string(),
                        title: None,
                        file: None,
                        line: None,
                        col: None,
                    });
                } else {
                    masker.add(&cmd.data);
                    if self.echo {
                        sink.event(EventKind::Output {
                            line: "::add-mask::***".to_string(),
                            stream,
                        });
                    }
                }
            }
            "group" => sink.event(EventKind::GroupStarted {
                title: masker.mask(&cmd.data),
            }),
            "endgroup" => sink.event(EventKind::GroupEnded),
            "debug" => sink.event(EventKind::Debug {
                message: masker.mask(&cmd.data),
            }),
            "echo" => match cmd.data.trim().to_ascii_lowercase().as_str() {
                "on" => self.echo = true,
                "off" => self.echo = false,
                _ => {
                    self.failed_command = true;
                    error(
                        sink,
                        masker,
                        format!(
                            "Invalid echo command value '{}'. Possible values can be: 'on', 'off'.",
                            cmd.data
                        ),
                    );
                }
            },
            "notice" | "warning" | "error" => {
                let level = match cmd.name.as_str() {
                    "notice" => AnnotationLevel::Notice,
                    "warning" => AnnotationLevel::Warning,
                    _ => AnnotationLevel::Error,
                };
                let prop = |k: &str| cmd.property(k).map(|v| masker.mask(v));
                sink.event(EventKind::Annotation {
                    level,
                    message: masker.mask(&cmd.data),
                    title: prop("title"),
                    file: prop("file"),
                    line: prop("line"),
                    col: prop("col"),
                });
            }
            "set-output" | "save-state" => {
                sink.event(EventKind::Annotation {
                    level: AnnotationLevel::Warning,
                    message: format!(
                        "The `{}` command is deprecated; write to ${} instead.",
                        cmd.name,
                        if cmd.name == "set-output" {
                            "GITHUB_OUTPUT"
                        } else {
                            "GITHUB_STATE"
                        }
                    ),
                    title: None,
                    file: None,
                    line: None,
                    col: None,
                });
                match cmd.property("name").filter(|n| !n.is_empty()) {
                    Some(key) => {
                        let target = if cmd.name == "set-output" {
                            &mut self.outputs
                        } else {
                            &mut self.state
                        };
                        target.insert(key.to_string(), cmd.data.clone());
                    }
                    None => {
                        self.failed_command = true;
                        error(
                            sink,
                            masker,
                            format!(
                                "Required field 'name' is missing in ::{}:: command.",
                                cmd.name
                            ),
                        );
                    }
                }
            }
            "set-env" | "add-path" => {
                if !allow_unsecure {
                    self.failed_command = true;
                    error(
                        sink,
                        masker,
                        format!(
                            "The `{}` command is disabled; write to ${} instead, or set ACTIONS_ALLOW_UNSECURE_COMMANDS=true.",
                            cmd.name,
                            if cmd.name == "set-env" {
                                "GITHUB_ENV"
                            } else {
                                "GITHUB_PATH"
                            }
                        ),
                    );
                } else if cmd.name == "set-env" {
                    match cmd.property("name").filter(|n| !n.is_empty()) {
                        Some(key) => new_env.push((key.to_string(), cmd.data.clone())),
                        None => {
                            self.failed_command = true;
                            error(
                                sink,
                                masker,
                                "Required field 'name' is missing in ::set-env:: command."
                                    .to_string(),
                            );
                        }
                    }
                } else if !cmd.data.is_empty() {
                    new_path.push(cmd.data.clone());
                }
            }
            // Problem matchers only decorate GitHub's UI.
            _ => {}
        }
    }
}
