//! Hashing the walk's files: each file's sha256 on all cores, combined in walk order.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::GlobError;
use super::walk::{Found, Kind};

/// Read buffer per worker thread: large enough that most files need one `read`.
const BUFFER_SIZE: usize = 256 * 1024;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; BUFFER_SIZE]);
}

/// The hashFiles value of `found` (in walk order): files under `workspace_prefix` (the
/// workspace followed by `/`) are hashed, directories skipped; `""` when no file was hashed.
pub(crate) fn combine(workspace_prefix: &str, found: &[Found]) -> Result<String, GlobError> {
    let prefix = workspace_prefix.as_bytes();
    let digests: Vec<Result<Option<[u8; 32]>, GlobError>> = found
        .par_iter()
        .with_min_len(8)
        .map(|entry| {
            if !entry.path.as_os_str().as_bytes().starts_with(prefix) {
                return Ok(None);
            }
            digest_entry(entry)
        })
        .collect();
    let mut total = Sha256::new();
    let mut any = false;
    for digest in digests {
        if let Some(digest) = digest? {
            total.update(digest);
            any = true;
        }
    }
    Ok(if any {
        hex::encode(total.finalize())
    } else {
        String::new()
    })
}

/// One entry's digest, or `None` for a directory (the runner skips those).
fn digest_entry(entry: &Found) -> Result<Option<[u8; 32]>, GlobError> {
    let io_error = |source: io::Error| GlobError::Io {
        path: entry.path.clone(),
        source,
    };
    match entry.kind {
        Kind::Dir => Ok(None),
        Kind::File => digest_file(&entry.path).map(Some).map_err(io_error),
        Kind::Symlink | Kind::Other => {
            // The runner stats through the link before reading it.
            let meta = match std::fs::metadata(&entry.path) {
                Ok(meta) => meta,
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    return Err(GlobError::DanglingSymlink {
                        path: entry.path.clone(),
                    });
                }
                Err(err) => return Err(io_error(err)),
            };
            let file_type = meta.file_type();
            if file_type.is_dir() {
                Ok(None)
            } else if file_type.is_fifo() || file_type.is_socket() {
                Err(GlobError::NotAFile {
                    path: entry.path.clone(),
                })
            } else {
                digest_file(&entry.path).map(Some).map_err(io_error)
            }
        }
    }
}

/// sha256 of a file's bytes, read through a reused per-thread buffer.
fn digest_file(path: &Path) -> io::Result<[u8; 32]> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        loop {
            match file.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => hasher.update(&buffer[..n]),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    })?;
    Ok(hasher.finalize().into())
}
