//! Hashing the walk's files: each file's sha256 on all cores while the walk goes on, combined
//! in walk order.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use sha2::{Digest, Sha256};

use super::GlobError;
use super::pattern::PatternSet;
use super::walk::{self, Found, Kind};

/// Read buffer per worker thread: large enough that most files need one `read`.
const BUFFER_SIZE: usize = 256 * 1024;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; BUFFER_SIZE]);
}

/// Entries hashed per parallel task: big enough to amortize scheduling, small enough that
/// hashing starts while the walk is still going.
const BATCH: usize = 512;

type Digest32 = Result<Option<[u8; 32]>, GlobError>;

/// Walks `set` and returns the hashFiles value: files under `workspace_prefix` (the workspace
/// followed by `/`) are hashed on all cores while the walk goes on, directories are skipped, and
/// the digests are combined in walk order; `""` when no file was hashed.
pub(crate) fn hash_walk(
    set: &PatternSet,
    follow: bool,
    workspace_prefix: &str,
) -> Result<String, GlobError> {
    let prefix = workspace_prefix.as_bytes();
    let done: Mutex<Vec<(usize, Vec<Digest32>)>> = Mutex::new(Vec::new());
    let walked = rayon::scope(|scope| {
        let done = &done;
        let mut batch: Vec<Found> = Vec::with_capacity(BATCH);
        let mut index = 0usize;
        let mut flush = |batch: Vec<Found>| {
            let i = index;
            index += 1;
            scope.spawn(move |_| {
                let digests: Vec<Digest32> = batch
                    .iter()
                    .map(|entry| {
                        if entry.path.as_os_str().as_bytes().starts_with(prefix) {
                            digest_entry(entry)
                        } else {
                            Ok(None)
                        }
                    })
                    .collect();
                done.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((i, digests));
            });
        };
        let walked = walk::walk(set, follow, walk::Descend::All, |found| {
            batch.push(found);
            if batch.len() == BATCH {
                flush(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
            }
        });
        if !batch.is_empty() {
            flush(batch);
        }
        walked
    });
    let mut batches = done.into_inner().unwrap_or_else(PoisonError::into_inner);
    batches.sort_unstable_by_key(|(i, _)| *i);
    // The first error in walk order wins; a walk error comes after every file met before it.
    let mut total = Sha256::new();
    let mut any = false;
    for digest in batches.into_iter().flat_map(|(_, digests)| digests) {
        if let Some(digest) = digest? {
            total.update(digest);
            any = true;
        }
    }
    walked?;
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
