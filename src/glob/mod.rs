//! `@actions/glob`-compatible pattern lists, the ordered walk, and `hashFiles`.
//!
//! CONTRACT (other modules code against these names; extend, don't rename):
//! - [`hash_files`] computes `hashFiles()` exactly as GitHub's runner does.
//! - [`resolve_paths`] resolves a cache `path:` list the way `@actions/cache` does (no implicit
//!   descendants: a matched directory is returned once, not its files).

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
}

/// Options for [`hash_files`].
#[derive(Debug, Clone, Default)]
pub struct HashOptions {
    /// `--follow-symbolic-links`: descend into symlinked directories.
    pub follow_symbolic_links: bool,
}

/// `hashFiles(patterns...)` rooted at `workspace`: lowercase hex sha256 over the raw sha256 of
/// each matched file in walk order, or `""` when nothing matched.
pub fn hash_files(
    _workspace: &Path,
    _patterns: &[String],
    _options: &HashOptions,
) -> Result<String, GlobError> {
    todo!("expressions/hashFiles issue")
}

/// Resolves a cache `path:` list (one pattern per entry, `!` excludes, `~` is home) relative to
/// `workspace`, returning matched files and directories in walk order without implicit
/// descendants.
pub fn resolve_paths(_workspace: &Path, _patterns: &[String]) -> Result<Vec<PathBuf>, GlobError> {
    todo!("expressions/hashFiles issue")
}
