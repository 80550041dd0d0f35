//! `@actions/glob`-compatible pattern lists, the ordered walk, and `hashFiles`.
//!
//! CONTRACT (other modules code against these names; extend, don't rename):
//! - [`hash_files`] computes `hashFiles()` exactly as GitHub's runner does.
//! - [`resolve_paths`] resolves a cache `path:` list the way `@actions/cache` does (no implicit
//!   descendants: a matched directory is returned once, not its files).
//! - [`archive_roots`] is that list as a save archives it: nothing inside a matched directory.
//!
//! The reference is what the runner ships: its bundled hashFiles script (@actions/glob with
//! minimatch 3). One matcher (`pattern`) and one walk (`walk`) serve both modes; they differ
//! only in options, as the toolkit's `GlobOptions` do.

mod hash;
mod pattern;
mod segment;
mod walk;

use std::path::{Path, PathBuf};

/// Errors from pattern parsing and the walk. Every I/O error names its path.
#[derive(Debug, thiserror::Error)]
pub enum GlobError {
    /// A pattern that cannot be used, e.g. one with a `..` segment.
    #[error("invalid pattern '{pattern}': {reason}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// Why it was refused.
        reason: String,
    },
    /// Reading a directory or file failed.
    #[error("{path}: {source}")]
    Io {
        /// The path being read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A matched symbolic link whose target does not exist (the runner fails hashFiles on it
    /// unless links are followed).
    #[error(
        "{path}: broken symbolic link (its target does not exist); hashFiles fails on it as GitHub's runner does, unless --follow-symbolic-links is given"
    )]
    DanglingSymlink {
        /// The link.
        path: PathBuf,
    },
    /// A matched fifo or socket, which cannot be hashed.
    #[error("{path}: not a regular file (fifo or socket); hashFiles cannot read it")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A first argument starting with `--` that is not `--follow-symbolic-links`.
    #[error("invalid glob option '{option}', available option: '--follow-symbolic-links'")]
    InvalidOption {
        /// The argument as given.
        option: String,
    },
}

/// Options for [`hash_files`].
#[derive(Debug, Clone, Default)]
pub struct HashOptions {
    /// `--follow-symbolic-links`: descend into symlinked directories.
    pub follow_symbolic_links: bool,
}

/// Options of a general [`glob`], named as @actions/glob names them.
#[derive(Debug, Clone)]
pub struct GlobOptions {
    /// Follow symbolic links (broken ones are then omitted, directory cycles cut).
    pub follow_symbolic_links: bool,
    /// A matched directory implies all its descendants (`dir` behaves as `dir/**`).
    pub implicit_descendants: bool,
    /// The directory `~` stands for; `None` means `$HOME` (then the password database).
    pub home_dir: Option<PathBuf>,
}

impl Default for GlobOptions {
    /// The toolkit's defaults: follow links, implicit descendants.
    fn default() -> Self {
        Self {
            follow_symbolic_links: true,
            implicit_descendants: true,
            home_dir: None,
        }
    }
}

/// `hashFiles(patterns...)` rooted at `workspace`: lowercase hex sha256 over the raw sha256 of
/// each matched file in walk order, or `""` when nothing matched.
///
/// Each element of `patterns` may hold several newline-separated patterns (the runner joins
/// its arguments with newlines). The workspace is resolved to its real path, as the runner's
/// script sees it as its working directory.
pub fn hash_files(
    workspace: &Path,
    patterns: &[String],
    options: &HashOptions,
) -> Result<String, GlobError> {
    let workspace = std::fs::canonicalize(workspace).map_err(|source| GlobError::Io {
        path: workspace.to_owned(),
        source,
    })?;
    let cwd = workspace.to_string_lossy();
    let set = pattern::PatternSet::new(&patterns.join("\n"), &cwd, true, None)?;
    hash::hash_walk(&set, options.follow_symbolic_links, &format!("{cwd}/"))
}

/// [`hash_files`] with the runner's argument rule: a first argument starting with `--` must be
/// `--follow-symbolic-links` (any case) and sets that option; later ones are patterns.
pub fn hash_files_args(workspace: &Path, args: &[String]) -> Result<String, GlobError> {
    let (options, patterns) = split_hash_args(args)?;
    hash_files(workspace, patterns, &options)
}

/// Splits hashFiles arguments into options and patterns (see [`hash_files_args`]).
pub fn split_hash_args(args: &[String]) -> Result<(HashOptions, &[String]), GlobError> {
    match args.first() {
        Some(first) if first.starts_with("--") => {
            if first.eq_ignore_ascii_case("--follow-symbolic-links") {
                Ok((
                    HashOptions {
                        follow_symbolic_links: true,
                    },
                    &args[1..],
                ))
            } else {
                Err(GlobError::InvalidOption {
                    option: first.clone(),
                })
            }
        }
        _ => Ok((HashOptions::default(), args)),
    }
}

/// Resolves a cache `path:` list (one pattern per entry, `!` excludes, `~` is home) relative to
/// `workspace`, returning matched files and directories in walk order without implicit
/// descendants.
///
/// As in @actions/cache, links are followed (broken ones omitted) and a matched directory is
/// returned itself, not its contents; paths outside the workspace (`~/.npm`, `/tmp/x`) are
/// returned too. Paths are absolute and start with `workspace` (made absolute, not
/// canonicalized) when they are inside it, so `strip_prefix(workspace)` relativizes them.
pub fn resolve_paths(workspace: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, GlobError> {
    glob(
        workspace,
        patterns,
        &GlobOptions {
            implicit_descendants: false,
            ..GlobOptions::default()
        },
    )
}

/// What a cache save archives for a `path:` list: [`resolve_paths`] without the matches inside
/// a matched directory, found in one walk that does not enter matched directories.
///
/// The archive takes each directory whole, so what lies below a matched directory is in it
/// anyway: walking it here would only be done again by the archive (a `**/node_modules` list
/// walks every package otherwise), and a nested match reached through a symbolic link inside
/// the directory would name a path the restore must refuse to write through.
pub fn archive_roots(workspace: &Path, patterns: &[String]) -> Result<Vec<PathBuf>, GlobError> {
    let options = GlobOptions {
        implicit_descendants: false,
        ..GlobOptions::default()
    };
    glob_walk(workspace, patterns, &options, walk::Descend::Unmatched)
}

/// Matches `patterns` (rooted at `workspace`) with @actions/glob's semantics and options;
/// returns matched files and directories in walk order.
pub fn glob(
    workspace: &Path,
    patterns: &[String],
    options: &GlobOptions,
) -> Result<Vec<PathBuf>, GlobError> {
    glob_walk(workspace, patterns, options, walk::Descend::All)
}

fn glob_walk(
    workspace: &Path,
    patterns: &[String],
    options: &GlobOptions,
    descend: walk::Descend,
) -> Result<Vec<PathBuf>, GlobError> {
    let workspace = absolute(workspace)?;
    let cwd = workspace.to_string_lossy();
    let home = options
        .home_dir
        .as_ref()
        .map(|h| h.to_string_lossy().into_owned());
    let set = pattern::PatternSet::new(
        &patterns.join("\n"),
        &cwd,
        options.implicit_descendants,
        home.as_deref(),
    )?;
    let mut paths = Vec::new();
    walk::walk(&set, options.follow_symbolic_links, descend, |f| {
        paths.push(f.path)
    })?;
    Ok(paths)
}

/// `path` made absolute against the current directory and normalized lexically.
fn absolute(path: &Path) -> Result<PathBuf, GlobError> {
    let joined = std::path::absolute(path).map_err(|source| GlobError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut out = PathBuf::new();
    for component in joined.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    Ok(out)
}
