//! Moving a staged tree into place all or nothing: every move is planned and what it needs (a
//! directory, writable, on which file system) is checked before the first one; then the moves
//! run, each recorded, and a failure undoes them in reverse order. A read-only directory of
//! ours (Go's module cache) is made writable for the moves and gets its mode back; a
//! destination on another file system (a mount inside the declared path) is copied next to its
//! place first and then renamed in.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::tarfmt::Meta;
use super::{ArchiveError, io_err};

/// Name prefix of everything a restore makes next to its targets (staging, moved-aside and
/// copied items): archiving skips it, a later restore reclaims what a killed one left.
pub(crate) const TEMP_PREFIX: &str = ".runner-restore-";

/// A step of the plan.
enum Step {
    /// `dir` is read-only and ours: made writable for the moves into it.
    Unlock { dir: PathBuf, mode: u32 },
    /// An existing directory merged into: its mode and mtime, put back after the moves.
    Enter { dir: PathBuf, mode: u32, meta: Meta },
    /// Staged `from` goes to `to`; what is at `to` now is moved aside first (`existing`);
    /// `copy`: `to` is on another file system than the staging directory.
    Place {
        from: PathBuf,
        to: PathBuf,
        existing: bool,
        copy: bool,
    },
}

/// A step done, kept to be undone.
enum Done {
    Mode { dir: PathBuf, mode: u32 },
    Copied { tmp: PathBuf },
    Aside { to: PathBuf, aside: PathBuf },
    Moved { from: PathBuf, to: PathBuf },
}

/// Moves everything in `staging` to the same place under `base`, all or nothing. Directories
/// that exist are merged into, other things replaced; nothing that is not inside `declared`
/// is replaced (the directories above it are only entered), nothing at or above an `exclude`d
/// path is replaced. `finish` runs after the moves (it sets the archived directory metadata);
/// its failure undoes them too.
pub(crate) fn commit(
    staging: &Path,
    base: &Path,
    declared: &Path,
    exclude: &[PathBuf],
    finish: impl FnOnce() -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let staging_dev = std::fs::symlink_metadata(staging)
        .map_err(io_err(staging))?
        .dev();
    let mut plan = Plan {
        steps: Vec::new(),
        checked: HashMap::new(),
        staging_dev,
        declared,
        exclude,
    };
    plan.dir(staging, base)?;
    let mut done = Vec::new();
    let mut aside = Vec::new();
    let mut entered = Vec::new();
    let result = run(plan.steps, &mut done, &mut aside, &mut entered).and_then(|()| {
        restore_entered(&entered)?;
        finish()
    });
    if let Err(e) = result {
        for d in done.into_iter().rev() {
            undo(d);
        }
        let _ = restore_entered(&entered);
        return Err(e);
    }
    for p in aside {
        remove_aside(&p);
    }
    Ok(())
}

/// Removes what was moved aside, keeping the mode and mtime just set on its directory (which
/// may be read-only again: then it is unlocked for the removal).
fn remove_aside(p: &Path) {
    let parent = p.parent().map(Path::to_path_buf).unwrap_or_default();
    let Ok(md) = std::fs::symlink_metadata(&parent) else {
        return;
    };
    let mode = md.mode() & 0o7777;
    let unlock = mode & 0o300 != 0o300;
    if unlock {
        let _ = set_mode(&parent, mode | 0o700);
    }
    remove_tree(p);
    if unlock {
        let _ = set_mode(&parent, mode);
    }
    let _ = set_mtime(&parent, &meta_of(&md));
}

fn run(
    steps: Vec<Step>,
    done: &mut Vec<Done>,
    aside: &mut Vec<PathBuf>,
    entered: &mut Vec<(PathBuf, u32, Meta)>,
) -> Result<(), ArchiveError> {
    // Staged inode -> where its first copy went (temporary and final name).
    let links = &mut HashMap::new();
    for step in steps {
        match step {
            Step::Unlock { dir, mode } => {
                set_mode(&dir, mode | 0o700)?;
                done.push(Done::Mode { dir, mode });
            }
            Step::Enter { dir, mode, meta } => entered.push((dir, mode, meta)),
            Step::Place {
                from,
                to,
                existing,
                copy,
            } => {
                let src = if copy {
                    let tmp = temp_name(&to);
                    let r = copy_tree(&from, &tmp, &to, links);
                    done.push(Done::Copied { tmp: tmp.clone() });
                    // Name the destination, not the temporary copy.
                    r.map_err(|e| match e {
                        ArchiveError::Io { source, .. } => ArchiveError::Io {
                            path: to.clone(),
                            source,
                        },
                        e => e,
                    })?;
                    tmp
                } else {
                    from
                };
                if existing {
                    let a = temp_name(&to);
                    std::fs::rename(&to, &a).map_err(io_err(&to))?;
                    done.push(Done::Aside {
                        to: to.clone(),
                        aside: a.clone(),
                    });
                    aside.push(a);
                }
                std::fs::rename(&src, &to).map_err(io_err(&to))?;
                done.push(Done::Moved { from: src, to });
            }
        }
    }
    Ok(())
}

/// Undoes one step; best effort (the error that started the rollback is the one reported).
fn undo(d: Done) {
    match d {
        Done::Mode { dir, mode } => {
            let _ = set_mode(&dir, mode);
        }
        Done::Copied { tmp } => remove_tree(&tmp),
        Done::Aside { to, aside } => {
            let _ = std::fs::rename(aside, to);
        }
        Done::Moved { from, to } => {
            if std::fs::rename(&to, &from).is_err() {
                // A directory moved to another parent needs write permission on itself.
                let _ = set_mode(&to, 0o700);
                let _ = std::fs::rename(&to, &from);
            }
        }
    }
}

/// Puts back the mode and mtime of the directories merged into, innermost first.
fn restore_entered(entered: &[(PathBuf, u32, Meta)]) -> Result<(), ArchiveError> {
    for (dir, mode, meta) in entered.iter().rev() {
        set_mode(dir, *mode)?;
        set_mtime(dir, meta)?;
    }
    Ok(())
}

struct Plan<'a> {
    steps: Vec<Step>,
    /// Destination directories checked already: whether moves into them copy.
    checked: HashMap<PathBuf, bool>,
    staging_dev: u64,
    declared: &'a Path,
    exclude: &'a [PathBuf],
}

impl Plan<'_> {
    fn dir(&mut self, src: &Path, dst: &Path) -> Result<(), ArchiveError> {
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .map_err(io_err(src))?
            .collect::<Result<_, _>>()
            .map_err(io_err(src))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let from = entry.path();
            let to = dst.join(entry.file_name());
            let from_is_dir = entry.file_type().map_err(io_err(&from))?.is_dir();
            let inside = to.starts_with(self.declared);
            match std::fs::symlink_metadata(&to) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.place(from, to, false)?;
                }
                Err(e) => return Err(io_err(&to)(e)),
                Ok(m) if m.is_dir() && from_is_dir => {
                    self.steps.push(Step::Enter {
                        dir: to.clone(),
                        mode: m.mode() & 0o7777,
                        meta: meta_of(&m),
                    });
                    self.dir(&from, &to)?;
                }
                Ok(_) if !inside => return Err(not_a_dir(to)),
                Ok(m) => {
                    if m.is_dir() && self.exclude.iter().any(|x| x.starts_with(&to)) {
                        return Err(ArchiveError::Io {
                            path: to,
                            source: std::io::Error::new(
                                std::io::ErrorKind::DirectoryNotEmpty,
                                "holds a path a restore must not touch, cannot replace it",
                            ),
                        });
                    }
                    self.place(from, to, true)?;
                }
            }
        }
        Ok(())
    }

    fn place(&mut self, from: PathBuf, to: PathBuf, existing: bool) -> Result<(), ArchiveError> {
        let parent = to.parent().unwrap_or(Path::new("/")).to_path_buf();
        let copy = match self.checked.get(&parent) {
            Some(&copy) => copy,
            None => {
                let copy = self.check_dir(&parent)?;
                self.checked.insert(parent, copy);
                copy
            }
        };
        self.steps.push(Step::Place {
            from,
            to,
            existing,
            copy,
        });
        Ok(())
    }

    /// Whether moves into `dir` can work: it must be writable (made so when it is ours and
    /// read-only), on a writable file system; returns whether it is on another file system
    /// than the staging directory.
    fn check_dir(&mut self, dir: &Path) -> Result<bool, ArchiveError> {
        let md = std::fs::symlink_metadata(dir).map_err(io_err(dir))?;
        let c = CString::new(dir.as_os_str().as_bytes()).map_err(|e| ArchiveError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        // SAFETY: `c` is NUL-terminated.
        let rc = unsafe {
            libc::faccessat(
                libc::AT_FDCWD,
                c.as_ptr(),
                libc::W_OK | libc::X_OK,
                libc::AT_EACCESS,
            )
        };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // SAFETY: geteuid cannot fail.
            let ours = md.uid() == unsafe { libc::geteuid() };
            if e.raw_os_error() == Some(libc::EACCES) && ours {
                self.steps.push(Step::Unlock {
                    dir: dir.to_path_buf(),
                    mode: md.mode() & 0o7777,
                });
            } else {
                return Err(io_err(dir)(e));
            }
        }
        Ok(md.dev() != self.staging_dev)
    }
}

fn not_a_dir(path: PathBuf) -> ArchiveError {
    ArchiveError::Io {
        path,
        source: std::io::Error::new(
            std::io::ErrorKind::NotADirectory,
            "not a directory, cannot restore below it",
        ),
    }
}

/// A name next to `to` for a restore's own use (moved aside, copied in), unique in this process.
fn temp_name(to: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = format!("{TEMP_PREFIX}{}-{n}", std::process::id());
    to.with_file_name(name)
}

/// Staged inode -> its first copy: the temporary name it was copied to, and its final name.
type Copies = HashMap<(u64, u64), (PathBuf, PathBuf)>;

/// Copies a staged tree to `to` on another file system (it is renamed to `final_to` later):
/// contents, modes, mtimes, links (hard links among the copies stay one inode). Directory
/// metadata is set afterwards with the rest.
fn copy_tree(
    from: &Path,
    to: &Path,
    final_to: &Path,
    links: &mut Copies,
) -> Result<(), ArchiveError> {
    let md = std::fs::symlink_metadata(from).map_err(io_err(from))?;
    let ft = md.file_type();
    if ft.is_dir() {
        std::fs::create_dir(to).map_err(io_err(to))?;
        for entry in std::fs::read_dir(from).map_err(io_err(from))? {
            let entry = entry.map_err(io_err(from))?;
            let name = entry.file_name();
            copy_tree(&entry.path(), &to.join(&name), &final_to.join(&name), links)?;
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(from).map_err(io_err(from))?;
        std::os::unix::fs::symlink(target, to).map_err(io_err(to))?;
        super::fsat::set_mtime_at(
            libc::AT_FDCWD,
            to.as_os_str().as_bytes(),
            &meta_of(&md),
            libc::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(io_err(to))?;
    } else {
        if md.nlink() > 1 {
            if let Some((tmp, fin)) = links.get(&(md.dev(), md.ino())) {
                // Its copy is still under its temporary name, or moved in already.
                if std::fs::hard_link(tmp, to).is_ok() || std::fs::hard_link(fin, to).is_ok() {
                    return Ok(());
                }
            } else {
                links.insert(
                    (md.dev(), md.ino()),
                    (to.to_path_buf(), final_to.to_path_buf()),
                );
            }
        }
        std::fs::copy(from, to).map_err(io_err(to))?;
        set_mtime(to, &meta_of(&md))?;
    }
    Ok(())
}

fn meta_of(md: &std::fs::Metadata) -> Meta {
    Meta {
        mode: md.mode() & 0o7777,
        mtime: md.mtime(),
        mtime_nsec: md.mtime_nsec().clamp(0, 999_999_999) as u32,
        ..Meta::default()
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<(), ArchiveError> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(io_err(p))
}

/// Sets the mtime of `p`, following no symlink at `p`.
pub(crate) fn set_mtime(p: &Path, meta: &Meta) -> Result<(), ArchiveError> {
    super::fsat::set_mtime_at(
        libc::AT_FDCWD,
        p.as_os_str().as_bytes(),
        meta,
        libc::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(io_err(p))
}

/// Removes a tree of ours, read-only directories included (they are made writable first);
/// best effort: what cannot be removed stays, under a name archiving skips.
pub(crate) fn remove_tree(p: &Path) {
    if !std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        let _ = std::fs::remove_file(p);
        return;
    }
    if std::fs::remove_dir_all(p).is_ok() {
        return;
    }
    make_writable(p);
    let _ = std::fs::remove_dir_all(p);
}

fn make_writable(p: &Path) {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return;
    };
    if !md.is_dir() {
        return;
    }
    let _ = set_mode(p, (md.mode() & 0o7777) | 0o700);
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            make_writable(&e.path());
        }
    }
}

/// Removes what killed restores left in `dir` under [`TEMP_PREFIX`]: a live restore holds an
/// exclusive `flock` on its staging directory for its whole run, a dead one's lock is gone.
pub(crate) fn reclaim_leftovers(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_name().as_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
            continue;
        }
        let p = e.path();
        let Ok(f) = std::fs::File::open(&p) else {
            continue;
        };
        use std::os::fd::AsRawFd;
        // SAFETY: `f` is an open fd for the duration of the call.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            remove_tree(&p);
        }
    }
}
