//! Cache archives: tar create/extract, codecs (zstd, gzip, detected by magic bytes) and the
//! extraction safety policy. Knows nothing of keys or scopes.
//!
//! CONTRACT (other modules code against these names; extend, don't rename):
//! - [`create`] writes a tar + codec stream of resolved paths into any writer.
//! - [`extract`] restores an archive read from any reader, only inside the declared paths, via a
//!   staging area, so a bad archive never leaves a half-restored tree.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// How an archive is compressed. The method name is part of the cache version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// zstd, written without `--long` (version method `zstd-without-long`).
    Zstd,
    /// gzip (version method `gzip`).
    Gzip,
}

impl Compression {
    /// The method string `@actions/cache` mixes into the version.
    pub fn method(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd-without-long",
            Compression::Gzip => "gzip",
        }
    }
}

/// Errors from creating or extracting archives. Every I/O error names its path.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The archive is not valid tar/zstd/gzip.
    #[error("corrupt archive: {reason}")]
    Corrupt {
        /// What was wrong.
        reason: String,
    },
    /// An entry would land outside the declared paths, or is a kind we refuse (devices, ...).
    #[error("refused archive entry '{entry}': {reason}")]
    Unsafe {
        /// The entry name as stored in the archive.
        entry: String,
        /// Why it was refused.
        reason: String,
    },
}

/// What [`create`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateStats {
    /// The codec actually used (zstd can fall back to gzip).
    pub compression: Option<Compression>,
    /// Entries written (files, directories, links).
    pub entries: u64,
    /// Uncompressed bytes of file content.
    pub content_bytes: u64,
}

/// What [`extract`] restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Entries restored.
    pub entries: u64,
    /// Bytes of file content restored.
    pub content_bytes: u64,
}

/// Archives `paths` (files and directories, as resolved by `glob::resolve_paths`; directories
/// recursively) with names relative to `workspace` (`../` for paths outside it) into `out`.
pub fn create(
    _workspace: &Path,
    _paths: &[PathBuf],
    _compression: Compression,
    _out: &mut dyn Write,
) -> Result<CreateStats, ArchiveError> {
    todo!("cache issue")
}

/// Extracts the archive in `input` (zstd, gzip or plain tar, by magic bytes) relative to
/// `workspace`. Every entry must fall inside one of `allowed` (absolute paths); nothing is
/// written to the target until the whole archive has been staged successfully.
pub fn extract(
    _input: &mut dyn Read,
    _workspace: &Path,
    _allowed: &[PathBuf],
) -> Result<ExtractStats, ArchiveError> {
    todo!("cache issue")
}
