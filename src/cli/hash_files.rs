//! `runner hash-files`.

use std::path::PathBuf;

use anyhow::Context;

use super::EXIT_OK;
use super::printer::Printer;

/// Arguments of `runner hash-files`.
#[derive(Debug, clap::Args)]
pub struct HashFilesArgs {
    /// The workspace relative patterns are rooted at (default: the current directory).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Descend into symlinked directories (as hashFiles('--follow-symbolic-links', ...)).
    #[arg(long)]
    follow_symbolic_links: bool,
    /// Patterns, one per argument or per line (`!` excludes, `#` lines are comments). Options
    /// may come before, between or after them; after `--` everything is a pattern.
    #[arg(value_name = "PATTERN", required = true)]
    patterns: Vec<String>,
}

/// Runs the verb; returns the exit code.
pub fn run(args: HashFilesArgs, printer: &mut Printer) -> anyhow::Result<u8> {
    let workspace = match args.workspace {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    // hashFiles' own rule still holds after `--`: a first pattern `--follow-symbolic-links`
    // is its option.
    let (mut options, patterns) = runner::glob::split_hash_args(&args.patterns)?;
    options.follow_symbolic_links |= args.follow_symbolic_links;
    let hash = runner::glob::hash_files(&workspace, patterns, &options)
        .with_context(|| format!("hashFiles failed under '{}'", workspace.display()))?;
    printer.data(&hash);
    Ok(EXIT_OK)
}
