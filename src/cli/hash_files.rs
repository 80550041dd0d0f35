//! `runner hash-files`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::EXIT_OK;

/// Arguments of `runner hash-files`.
#[derive(Debug, clap::Args)]
pub struct HashFilesArgs {
    /// The workspace relative patterns are rooted at (default: the current directory).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Descend into symlinked directories (as hashFiles('--follow-symbolic-links', ...)); only
    /// recognised before the first pattern.
    #[arg(long)]
    follow_symbolic_links: bool,
    /// Patterns, one per argument or per line (`!` excludes, `#` lines are comments).
    #[arg(
        value_name = "PATTERN",
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    patterns: Vec<String>,
}

/// Runs the verb; returns the exit code.
pub fn run(args: HashFilesArgs) -> anyhow::Result<u8> {
    let workspace = match args.workspace {
        Some(dir) => dir,
        None => std::env::current_dir().context("cannot read the current directory")?,
    };
    // The runner's own rule: a first pattern argument starting with `--` is an option.
    let (mut options, patterns) = runner::glob::split_hash_args(&args.patterns)?;
    options.follow_symbolic_links |= args.follow_symbolic_links;
    // Formatted here rather than chained: the error's text already includes its cause.
    let hash = runner::glob::hash_files(&workspace, patterns, &options).map_err(|err| {
        anyhow::anyhow!("hashFiles failed under '{}': {err}", workspace.display())
    })?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{hash}").context("cannot write to stdout")?;
    Ok(EXIT_OK)
}
