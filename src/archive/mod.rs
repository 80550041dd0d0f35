//! Cache archives: tar create/extract, codecs (zstd, gzip, detected by magic bytes) and the
//! extraction safety policy. Knows nothing of keys or scopes.
//!
//! CONTRACT (other modules code against these names; extend, don't rename):
//! - [`create`] writes a tar + codec stream of resolved paths into any writer.
//! - [`extract`] restores an archive read from any reader, only inside the declared paths, via a
//!   staging area next to them, so a bad archive never leaves a half-restored tree;
//!   [`extract_with`] with [`ExtractOptions::roots`] restores names recorded under one prefix
//!   to another place ([`Root`]), and skips excluded paths.
//! - [`policy::Policy::decide`] is the extraction safety policy on its own: from an entry's
//!   header and the declared roots to a [`policy::Decision`], no file system involved.
//! - zstd archives are independent frames, one per content-defined chunk of tar bytes, listed in
//!   [`CreateStats::frames`]; [`CreateOptions::frames`] ([`FrameSource`]) hands a save the frames
//!   of chunks compressed before, which it copies instead of compressing.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

mod commit;
mod create;
mod extract;
mod frames;
mod fsat;
mod paths;
pub mod policy;
mod tarfmt;

pub use create::{CreateOptions, create_with};
pub use extract::{ExtractOptions, Root, extract_with};
pub use frames::{Digest, Frame, FrameRecord, FrameSource};

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

    /// The codec selected by a `RUNNER_CACHE_COMPRESSION` value: `gzip` (any case) selects gzip,
    /// anything else (or unset) zstd.
    pub fn from_setting(value: Option<&str>) -> Compression {
        match value {
            Some(v) if v.trim().eq_ignore_ascii_case("gzip") => Compression::Gzip,
            _ => Compression::Zstd,
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
    /// The independent zstd frames written, in order (empty for gzip or one multithreaded
    /// frame; a long-distance frame at the end is not among them).
    pub frames: Vec<FrameRecord>,
    /// Tar bytes whose frames were copied from [`CreateOptions::frames`] instead of compressed.
    pub reused_bytes: u64,
}

/// What [`extract`] restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractStats {
    /// Entries restored.
    pub entries: u64,
    /// Bytes of file content restored.
    pub content_bytes: u64,
    /// Entries skipped because they lie at or under an excluded path.
    pub skipped: u64,
}

/// Archives `paths` (files and directories, as resolved by `glob::resolve_paths`; directories
/// recursively) with names relative to `workspace` (`../` for paths outside it) into `out`.
pub fn create(
    workspace: &Path,
    paths: &[PathBuf],
    compression: Compression,
    out: &mut dyn Write,
) -> Result<CreateStats, ArchiveError> {
    create_with(workspace, paths, &CreateOptions::new(compression), out)
}

/// Extracts the archive in `input` (zstd, gzip or plain tar, by magic bytes) relative to
/// `workspace`. Every entry must fall inside one of `allowed` (absolute paths); nothing is
/// written to the target until the whole archive has been staged successfully.
pub fn extract(
    input: &mut dyn Read,
    workspace: &Path,
    allowed: &[PathBuf],
) -> Result<ExtractStats, ArchiveError> {
    extract_with(input, workspace, allowed, &ExtractOptions::default())
}

/// The archive name `create` gives absolute `target` when archiving from absolute `workspace`:
/// relative, `../` for each level above the workspace, empty for the workspace itself.
pub fn archive_name(workspace: &Path, target: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let name = paths::relative_name(workspace, target);
    if name == b"." {
        return PathBuf::new();
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&name))
}

/// Wraps an I/O error with the path it concerns.
fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let path = path.into();
    move |source| ArchiveError::Io { path, source }
}

/// Threads to use when the caller did not say: every core the process may run on.
fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_setting_selects_gzip_only_for_gzip() {
        let rows: &[(Option<&str>, Compression)] = &[
            (None, Compression::Zstd),
            (Some(""), Compression::Zstd),
            (Some("zstd"), Compression::Zstd),
            (Some("gzip"), Compression::Gzip),
            (Some("GZIP"), Compression::Gzip),
            (Some(" gzip "), Compression::Gzip),
            (Some("gz"), Compression::Zstd),
        ];
        for (value, want) in rows {
            assert_eq!(Compression::from_setting(*value), *want, "{value:?}");
        }
    }
}
