//! Staging: a locked directory next to each destination that entries are written into, the
//! record of what was staged where, and the all-or-nothing move into place at the end.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::super::commit::{self, TEMP_PREFIX};
use super::super::policy::{Policy, is_under};
use super::super::tarfmt::Meta;
use super::super::{ArchiveError, io_err};
use super::pool::{FileJob, JobKind, WritePool};
use super::{MODE_MASK, creation_gives, umask, unsafe_entry};

/// A staging directory of ours, locked for as long as the restore runs so a later restore
/// knows it is not a leftover.
struct Staging {
    path: PathBuf,
    _lock: File,
}

impl Staging {
    /// Makes a fresh staging directory in `dir`, locked.
    fn new(dir: &Path) -> Result<Staging, ArchiveError> {
        loop {
            let path = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .tempdir_in(dir)
                .map_err(io_err(dir))?
                .keep();
            let lock = File::open(&path).map_err(io_err(&path))?;
            use std::os::fd::AsRawFd;
            use std::os::unix::fs::MetadataExt;
            // SAFETY: `lock` is an open fd for the duration of the call.
            let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            // Held by a restore reclaiming it as a leftover: it is about to go.
            let busy =
                rc != 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock;
            // A restore reclaiming leftovers may have removed it before it was locked. Where
            // the file system has no locks, nothing is reclaimed either (the lock test fails).
            let same = match (lock.metadata(), std::fs::symlink_metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if same && !busy {
                return Ok(Staging { path, _lock: lock });
            }
        }
    }
}

/// One destination: the archive names under one root restored at `path`.
struct Dest {
    /// Where entries under the root's name go (absolute).
    path: PathBuf,
    /// `path` was a real directory before the restore: no entry may replace it.
    was_dir: bool,
    /// The existing directory the staging directory is made in and staged names are relative
    /// to: the parent of `path` when it is on the same file system, `path` itself when it is a
    /// mount point, the nearest existing ancestor when `path` does not exist.
    base: PathBuf,
    /// Made on first use.
    staging: Option<Staging>,
    /// `base`'s mtime before the staging directory was made in it, put back afterwards.
    base_mtime: Option<Meta>,
}

/// The state of one restore: the policy, what has been staged so far, and where.
pub(super) struct Stager {
    /// Decides each entry; its root indexes are `dests`'.
    pub(super) policy: Policy,
    dests: Vec<Dest>,
    pub(super) made_dirs: PathSet,
    pub(super) files: PathSet,
    pub(super) symlinks: PathSet,
    /// Directory metadata to set after the commit: destination, final path.
    pub(super) dir_meta: Vec<(usize, PathBuf, Meta)>,
    committed: bool,
}

impl Drop for Stager {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        for d in &mut self.dests {
            if let Some(staging) = d.staging.take() {
                commit::remove_tree(&staging.path);
                if let Some(meta) = &d.base_mtime {
                    let _ = commit::set_mtime(&d.base, meta);
                }
            }
        }
    }
}

impl Stager {
    /// A stager for the policy's destinations, each checked on disk now.
    pub(super) fn new(policy: Policy) -> Result<Stager, ArchiveError> {
        let mut dests = Vec::new();
        for path in policy.dests() {
            let (base, was_dir) = staging_base(path)?;
            dests.push(Dest {
                path: path.to_path_buf(),
                was_dir,
                base,
                staging: None,
                base_mtime: None,
            });
        }
        Ok(Stager {
            policy,
            dests,
            made_dirs: PathSet::default(),
            files: PathSet::default(),
            symlinks: PathSet::default(),
            dir_meta: Vec::new(),
            committed: false,
        })
    }

    /// Whether `target` is destination `di` itself, which was a directory before the restore.
    pub(super) fn replaces_declared_dir(&self, di: usize, target: &Path) -> bool {
        target == self.dests[di].path && self.dests[di].was_dir
    }

    /// The staging path of `target` under destination `di` and the length of its staging
    /// root's path, creating the staging directory if needed.
    pub(super) fn staged(
        &mut self,
        di: usize,
        target: &Path,
    ) -> Result<(PathBuf, usize), ArchiveError> {
        let d = &mut self.dests[di];
        if d.staging.is_none() {
            use std::os::unix::fs::MetadataExt;
            commit::reclaim_leftovers(&d.base);
            if d.was_dir && d.base != d.path {
                // Where staging directories were made before they moved next to the target.
                commit::reclaim_leftovers(&d.path);
            }
            let mtime_of = |p: &Path| {
                std::fs::symlink_metadata(p).ok().map(|m| Meta {
                    mtime: m.mtime(),
                    mtime_nsec: m.mtime_nsec().clamp(0, 999_999_999) as u32,
                    ..Meta::default()
                })
            };
            d.base_mtime = mtime_of(&d.base);
            let staging = match Staging::new(&d.base) {
                // The directory above may not be ours: stage inside the declared directory then
                // (create skips the name, the next restore reclaims it after a kill).
                Err(ArchiveError::Io { source, .. })
                    if d.was_dir
                        && d.base != d.path
                        && matches!(
                            source.kind(),
                            std::io::ErrorKind::PermissionDenied
                                | std::io::ErrorKind::ReadOnlyFilesystem
                        ) =>
                {
                    d.base = d.path.clone();
                    d.base_mtime = mtime_of(&d.base);
                    Staging::new(&d.base)?
                }
                r => r?,
            };
            self.made_dirs.insert(&staging.path);
            d.staging = Some(staging);
        }
        let staging = d
            .staging
            .as_ref()
            .map(|s| s.path.as_path())
            .unwrap_or(&d.base);
        let root_len = staging.as_os_str().len();
        let rel = target.strip_prefix(&d.base).unwrap_or(Path::new(""));
        let p = if rel.as_os_str().is_empty() {
            staging.to_path_buf()
        } else {
            staging.join(rel)
        };
        Ok((p, root_len))
    }

    /// Refuses `target` if any directory above it (inside its destination) was staged as a
    /// symlink: writing there would follow the link.
    pub(super) fn check_no_symlink_above(
        &self,
        name: &[u8],
        target: &Path,
        di: usize,
    ) -> Result<(), ArchiveError> {
        if self.symlinks.under_any_above(target, &self.dests[di].base) {
            return Err(unsafe_entry(name, "its path goes through a symlink"));
        }
        Ok(())
    }

    /// Queues the creation of `dir` and of its ancestors not made yet, each on the writer that
    /// will write the files inside it (so it exists before they are opened there).
    pub(super) fn ensure_dir(
        &mut self,
        pool: &mut WritePool,
        dir: &Path,
        root_len: usize,
    ) -> Result<(), ArchiveError> {
        let missing: Vec<&Path> = dir
            .ancestors()
            .take_while(|d| !self.made_dirs.contains(d))
            .collect();
        for d in missing.into_iter().rev() {
            self.made_dirs.insert(d);
            pool.submit(FileJob::without_content(
                d.to_path_buf(),
                root_len,
                Meta::default(),
                JobKind::Mkdir,
            ))?;
        }
        Ok(())
    }

    /// Removes whatever an earlier entry of the same name staged at `p`, and forgets every
    /// file and link staged below it (a hard link to one of them must not find it by name).
    pub(super) fn clear_duplicate(
        &mut self,
        pool: &mut WritePool,
        target: &Path,
        p: &Path,
    ) -> Result<(), ArchiveError> {
        pool.barrier()?;
        let was_file = self.files.remove(target);
        let was_link = self.symlinks.remove(target);
        if was_file || was_link {
            std::fs::remove_file(p).map_err(io_err(p))?;
        } else if self.made_dirs.contains(p) {
            std::fs::remove_dir_all(p).map_err(io_err(p))?;
            self.made_dirs.remove_under(p);
            self.files.remove_under(target);
            self.symlinks.remove_under(target);
            self.dir_meta.retain(|(_, t, _)| !is_under(t, target));
            // The writers' open directories may be the removed ones.
            pool.generation.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Moves every staged tree into place and sets the archived directory metadata, all or
    /// nothing per destination.
    pub(super) fn commit(&mut self) -> Result<(), ArchiveError> {
        let dir_meta = std::mem::take(&mut self.dir_meta);
        for (i, d) in self.dests.iter().enumerate() {
            let Some(staging) = &d.staging else { continue };
            let finish = || {
                // Children first, so setting a directory's mtime is not undone by writes into it.
                for (_, p, meta) in dir_meta.iter().rev().filter(|(di, _, _)| *di == i) {
                    apply_dir_meta(p, meta)?;
                }
                Ok(())
            };
            commit::commit(
                &staging.path,
                &d.base,
                &d.path,
                self.policy.exclude(),
                finish,
            )?;
        }
        for d in &mut self.dests {
            if let Some(staging) = d.staging.take() {
                commit::remove_tree(&staging.path);
                if let Some(meta) = &d.base_mtime
                    && d.base != d.path
                {
                    let _ = commit::set_mtime(&d.base, meta);
                }
            }
        }
        self.committed = true;
        Ok(())
    }

    /// An I/O error about a staged path names the destination it stood for instead.
    pub(super) fn name_destination(&self, e: ArchiveError) -> ArchiveError {
        let ArchiveError::Io { path, source } = e else {
            return e;
        };
        for d in &self.dests {
            if let Some(s) = &d.staging
                && let Ok(rel) = path.strip_prefix(&s.path)
            {
                return ArchiveError::Io {
                    path: d.base.join(rel),
                    source,
                };
            }
        }
        ArchiveError::Io { path, source }
    }
}
/// A set of normalised paths keyed by their bytes: one hash per lookup instead of one per
/// component, which showed in profiles of trees with many small files.
#[derive(Default)]
pub(super) struct PathSet(HashSet<Vec<u8>>);

impl PathSet {
    pub(super) fn contains(&self, p: &Path) -> bool {
        self.0.contains(p.as_os_str().as_bytes())
    }

    /// Adds `p`; false if it was there.
    pub(super) fn insert(&mut self, p: &Path) -> bool {
        self.0.insert(p.as_os_str().as_bytes().to_vec())
    }

    pub(super) fn remove(&mut self, p: &Path) -> bool {
        self.0.remove(p.as_os_str().as_bytes())
    }

    pub(super) fn remove_under(&mut self, dir: &Path) {
        self.0
            .retain(|d| !is_under(Path::new(OsStr::from_bytes(d)), dir));
    }

    /// Whether a proper ancestor of `p` strictly below `base` is in the set.
    pub(super) fn under_any_above(&self, p: &Path, base: &Path) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let bytes = p.as_os_str().as_bytes();
        let start = base.as_os_str().as_bytes().len() + 1;
        (start..bytes.len())
            .filter(|&i| bytes[i] == b'/')
            .any(|i| self.0.contains(&bytes[..i]))
    }
}

/// The existing directory a destination is staged in (see [`Dest::base`]), and whether the
/// destination is a real directory now.
fn staging_base(path: &Path) -> Result<(PathBuf, bool), ArchiveError> {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::symlink_metadata(path)
        && m.is_dir()
    {
        let parent = path.parent().filter(|p| {
            std::fs::symlink_metadata(p).is_ok_and(|pm| pm.is_dir() && pm.dev() == m.dev())
        });
        return Ok((parent.unwrap_or(path).to_path_buf(), true));
    }
    for anc in path.ancestors().skip(1) {
        match std::fs::metadata(anc) {
            Ok(m) if m.is_dir() => return Ok((anc.to_path_buf(), false)),
            Ok(_) => {
                return Err(ArchiveError::Io {
                    path: anc.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "not a directory, cannot restore below it",
                    ),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(anc)(e)),
        }
    }
    Ok((PathBuf::from("/"), false))
}

fn apply_dir_meta(p: &Path, meta: &Meta) -> Result<(), ArchiveError> {
    if !creation_gives(meta.mode & MODE_MASK) || meta.mode & 0o777 != 0o777 & !umask().unwrap_or(0)
    {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(meta.mode & MODE_MASK))
            .map_err(io_err(p))?;
    }
    commit::set_mtime(p, meta)
}
