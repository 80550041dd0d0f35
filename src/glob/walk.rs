//! The walk of @actions/glob's `globGenerator`: depth first from each search path in order,
//! children sorted bytewise (Node's `readdir` returns libuv's `scandir` order, sorted with
//! `strcmp`), matched entries reported in visiting order.

use std::ffi::OsString;
use std::fs::FileType;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use super::GlobError;
use super::pattern::{ItemPath, MATCH_DIRECTORY, MATCH_FILE, PatternSet};

/// What a reported path is, as far as the walk knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file (or, when following links, a link to one).
    File,
    /// A directory (or, when following links, a link to one).
    Dir,
    /// A symbolic link that was not followed; its target is unknown.
    Symlink,
    /// A fifo, socket or device.
    Other,
}

/// A matched path in walk order.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// The absolute path as the walk built it.
    pub(crate) path: PathBuf,
    /// Its type.
    pub(crate) kind: Kind,
}

struct Item {
    path: PathBuf,
    level: usize,
    /// The type `readdir` reported (lstat semantics), when known.
    hint: Option<FileType>,
}

fn io_error(path: &std::path::Path, source: io::Error) -> GlobError {
    GlobError::Io {
        path: path.to_owned(),
        source,
    }
}

fn kind_of(file_type: FileType) -> Kind {
    if file_type.is_dir() {
        Kind::Dir
    } else if file_type.is_file() {
        Kind::File
    } else if file_type.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    }
}

/// How far [`walk`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Descend {
    /// Into every directory a pattern may match below, as the toolkit does.
    All,
    /// Not into a matched directory: for callers that take a matched directory whole (a cache
    /// archive), whatever lies below it is theirs already, and walking it again is the cost.
    Unmatched,
}

/// Walks `set`'s search paths and calls `found` for every match, in the toolkit's order. With
/// `follow`, links are followed, broken links are omitted and directory cycles are cut.
pub(crate) fn walk(
    set: &PatternSet,
    follow: bool,
    descend: Descend,
    mut found: impl FnMut(Found),
) -> Result<(), GlobError> {
    let mut stack: Vec<Item> = Vec::new();
    for search_path in &set.search_paths {
        let path = PathBuf::from(search_path);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => stack.insert(
                0,
                Item {
                    path,
                    level: 1,
                    hint: None,
                },
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(io_error(&path, err)),
        }
    }

    // (device, inode) of the directories on the current chain, to cut symlink cycles.
    let mut chain: Vec<(u64, u64)> = Vec::new();
    let mut children: Vec<(OsString, Option<FileType>)> = Vec::new();
    while let Some(item) = stack.pop() {
        let text = item.path.to_string_lossy();
        let segments = ItemPath::new(&text);
        let matched = set.match_kind(&segments);
        let partial = matched != 0 || set.partial_match(&segments);
        if !partial {
            continue;
        }

        let kind = if follow {
            match item.hint {
                Some(t) if t.is_file() => Kind::File,
                _ => match std::fs::metadata(&item.path) {
                    Ok(meta) => {
                        let kind = kind_of(meta.file_type());
                        if kind == Kind::Dir {
                            chain.truncate(item.level - 1);
                            let id = (meta.dev(), meta.ino());
                            if chain.contains(&id) {
                                continue;
                            }
                            chain.push(id);
                        }
                        kind
                    }
                    // A broken link (or a path that vanished) is omitted, as the toolkit's
                    // default `omitBrokenSymbolicLinks` does.
                    Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                    Err(err) => return Err(io_error(&item.path, err)),
                },
            }
        } else {
            match item.hint {
                Some(t) => kind_of(t),
                None => match std::fs::symlink_metadata(&item.path) {
                    Ok(meta) => kind_of(meta.file_type()),
                    Err(err) => return Err(io_error(&item.path, err)),
                },
            }
        };

        if kind == Kind::Dir {
            if matched & MATCH_DIRECTORY != 0 {
                found(Found {
                    path: item.path.clone(),
                    kind,
                });
                if descend == Descend::Unmatched {
                    continue;
                }
            }
            children.clear();
            let entries = std::fs::read_dir(&item.path).map_err(|e| io_error(&item.path, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io_error(&item.path, e))?;
                children.push((entry.file_name(), entry.file_type().ok()));
            }
            children.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            let level = item.level + 1;
            for (name, hint) in children.drain(..).rev() {
                stack.push(Item {
                    path: item.path.join(name),
                    level,
                    hint,
                });
            }
        } else if matched & MATCH_FILE != 0 {
            found(Found {
                path: item.path,
                kind,
            });
        }
    }
    Ok(())
}
