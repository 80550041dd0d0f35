//! Errors that stop a run before or outside a step (a failing step is an outcome, not an error).

use std::path::PathBuf;

/// Why a run could not start or a step could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A step process could not be started.
    #[error("cannot start {program} in {cwd}: {source}")]
    Spawn {
        /// The executable.
        program: PathBuf,
        /// The working directory.
        cwd: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file command (`GITHUB_OUTPUT`, `GITHUB_ENV`, ...) is malformed.
    #[error("{path}: {message}")]
    FileCommand {
        /// The file the step wrote.
        path: PathBuf,
        /// What is wrong, in the runner's words.
        message: String,
    },
    /// `shell:` is neither a built-in shell nor a command template with `{0}`.
    #[error(
        "invalid shell '{shell}': use bash, sh, python, pwsh, or a command with '{{0}}' for the script path"
    )]
    InvalidShell {
        /// The `shell:` value.
        shell: String,
    },
    /// The shell's executable is not on `PATH`.
    #[error("shell '{shell}' not found on PATH")]
    ShellNotFound {
        /// The executable looked for.
        shell: String,
    },
    /// `--job` names a job the workflow does not have.
    #[error("no job '{job}' in the workflow (jobs: {available})")]
    NoSuchJob {
        /// The requested id.
        job: String,
        /// The ids that exist, comma-separated.
        available: String,
    },
    /// `--matrix` matches no combination of the selected jobs.
    #[error("--matrix {filter} matches no matrix combination of job '{job}'")]
    MatrixFilter {
        /// The filters as given (`os:linux,rust:stable`).
        filter: String,
        /// The job.
        job: String,
    },
    /// The workflow uses something this runner cannot evaluate at plan time (e.g. a matrix
    /// expression that fails).
    #[error("{path}:{line}:{column}: {message}")]
    Plan {
        /// The workflow file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What failed.
        message: String,
    },
    /// The event payload file is not a JSON object.
    #[error("event file {path}: {message}")]
    EventFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An `--input` (or an event file's input) does not fit the workflow's declaration.
    #[error("input '{name}': {problem}")]
    Input {
        /// The input's name.
        name: String,
        /// What is wrong with it.
        problem: String,
    },
}
