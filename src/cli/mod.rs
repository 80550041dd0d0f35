//! Argument parsing (clap derive), one file per verb, and exit codes.
//!
//! Exit codes, documented once: 0 ok, 1 a job failed, 2 bad input or usage.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

mod analyze;
mod cache;
mod eval;
mod exec;
mod hash_files;
mod printer;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
mod token;

/// Everything went well.
pub const EXIT_OK: u8 = 0;
/// A job (or the checked condition) failed.
pub const EXIT_FAILED: u8 = 1;
/// Bad input: an invalid workflow, expression or command line.
pub const EXIT_USAGE: u8 = 2;

/// Run GitHub Actions workflows locally, with a native actions/cache.
#[derive(Debug, Parser)]
#[command(name = "runner", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the jobs of a workflow file on this host.
    Exec(Box<exec::ExecArgs>),
    /// Evaluate one expression and print the result as JSON.
    Eval(eval::EvalArgs),
    /// Print hashFiles() of the given patterns.
    HashFiles(hash_files::HashFilesArgs),
    /// Inspect and manage the cache store.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// Serve GitHub's cache protocols (v1 and v2) over the store.
    #[cfg(feature = "server")]
    Serve(Box<serve::ServeArgs>),
    /// Print an ACTIONS_RUNTIME_TOKEN for `runner serve`.
    #[cfg(feature = "server")]
    Token(token::TokenArgs),
}

/// Parses arguments, runs the verb, and maps errors to exit code 2.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                EXIT_USAGE
            } else {
                EXIT_OK
            });
        }
    };
    let result = match cli.command {
        Command::Exec(args) => exec::run(*args),
        Command::Eval(args) => eval::run(args),
        Command::HashFiles(args) => hash_files::run(args),
        Command::Cache(command) => cache::run(command),
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(*args),
        #[cfg(feature = "server")]
        Command::Token(args) => token::run(args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Reads a JSON file that must hold an object; errors name `what` (the flag or file's role)
/// and the path.
fn read_json_object(path: &Path, what: &str) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading {what} {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {what} {}", path.display()))?;
    if !value.is_object() {
        anyhow::bail!("{what} {}: expected a JSON object", path.display());
    }
    Ok(value)
}
