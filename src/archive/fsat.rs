//! Writing below a staging root by directory fds: every name under the root is reached by
//! `openat` with `O_NOFOLLOW`, one component at a time, so a write can never go through a
//! symlink, whatever the tree holds at that moment; a name remembered from earlier in the
//! archive is never trusted to still be a directory.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::tarfmt::Meta;

/// Directory fds a writer keeps at most between batches: a batch touches a few directories,
/// and files are sharded to writers by directory, so most lookups hit.
const MAX_OPEN: usize = 256;

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a name"))
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Opens directory `name` in `dir` (or the path `name` when `dir` is `AT_FDCWD`) without
/// following a symlink at `name`.
fn open_dir_at(dir: RawFd, name: &[u8]) -> io::Result<OwnedFd> {
    let c = cstr(name)?;
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c` is NUL-terminated; the fd is checked by `cvt`.
    cvt(unsafe { libc::openat(dir, c.as_ptr(), flags) }).map(owned)
}

/// Splits a staged path into its directory and last name.
pub(crate) fn split(path: &[u8]) -> io::Result<(&[u8], &[u8])> {
    let slash = path
        .iter()
        .rposition(|&b| b == b'/')
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an absolute path"))?;
    Ok((&path[..slash.max(1)], &path[slash + 1..]))
}

/// A writer's open directories under the staging roots, by path.
#[derive(Default)]
pub(crate) struct Dirs {
    open: HashMap<Vec<u8>, OwnedFd>,
    generation: u64,
}

impl Dirs {
    /// Called before each batch: forgets every directory when the staged tree was changed since
    /// (an entry replaced a directory) or when too many are open. Fds handed out stay valid
    /// until the next call.
    pub(crate) fn sync(&mut self, generation: u64) {
        if generation != self.generation || self.open.len() > MAX_OPEN {
            self.open.clear();
            self.generation = generation;
        }
    }

    /// The fd of staged directory `dir`, whose first `root_len` bytes name its staging root:
    /// the root is opened by path, everything below it by `openat` without following links.
    /// Missing directories are made when `create`.
    pub(crate) fn get(&mut self, dir: &[u8], root_len: usize, create: bool) -> io::Result<RawFd> {
        self.get_at(dir, root_len, create, false)
    }

    /// The fd of staged directory `dir`, made now: it was queued for creation, so it is nearly
    /// always new (made first, no failed open), while its parents nearly always exist (opened
    /// first, no failed mkdir; made only when another writer has not got to them yet).
    pub(crate) fn make(&mut self, dir: &[u8], root_len: usize) -> io::Result<RawFd> {
        self.get_at(dir, root_len, true, true)
    }

    fn get_at(
        &mut self,
        dir: &[u8],
        root_len: usize,
        create: bool,
        fresh: bool,
    ) -> io::Result<RawFd> {
        if let Some(fd) = self.open.get(dir) {
            return Ok(fd.as_raw_fd());
        }
        let fd = if dir.len() <= root_len {
            open_dir_at(libc::AT_FDCWD, dir)?
        } else {
            let (parent, name) = split(dir)?;
            let parent_fd = self.get_at(parent, root_len, create, false)?;
            if fresh {
                mkdir_at(parent_fd, name)?;
                open_dir_at(parent_fd, name)?
            } else {
                match open_dir_at(parent_fd, name) {
                    Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                        mkdir_at(parent_fd, name)?;
                        open_dir_at(parent_fd, name)?
                    }
                    r => r?,
                }
            }
        };
        let raw = fd.as_raw_fd();
        self.open.insert(dir.to_vec(), fd);
        Ok(raw)
    }
}

/// Makes directory `name` in `dir`; one that exists already (another writer got there first) is
/// fine, it is opened without following links afterwards.
fn mkdir_at(dir: RawFd, name: &[u8]) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: `c` is NUL-terminated.
    match cvt(unsafe { libc::mkdirat(dir, c.as_ptr(), 0o777) }) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r.map(drop),
    }
}

/// Creates (or truncates) regular file `name` in `dir`, never through a symlink at `name`.
pub(crate) fn create_file_at(dir: RawFd, name: &[u8], mode: u32) -> io::Result<File> {
    let c = cstr(name)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c` is NUL-terminated; the fd is checked by `cvt`.
    let fd = cvt(unsafe { libc::openat(dir, c.as_ptr(), flags, (mode & 0o777) as libc::c_uint) })?;
    Ok(File::from(owned(fd)))
}

/// Opens regular file `name` in `dir` for reading, never through a symlink.
fn open_file_at(dir: RawFd, name: &[u8]) -> io::Result<File> {
    let c = cstr(name)?;
    let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: `c` is NUL-terminated; the fd is checked by `cvt`.
    let fd = cvt(unsafe { libc::openat(dir, c.as_ptr(), flags) })?;
    Ok(File::from(owned(fd)))
}

/// Makes symlink `name` in `dir` pointing to `target` (any bytes) with the archived mtime.
pub(crate) fn symlink_at(dir: RawFd, name: &[u8], target: &[u8], meta: &Meta) -> io::Result<()> {
    let (c, t) = (cstr(name)?, cstr(target)?);
    // SAFETY: both strings are NUL-terminated.
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dir, c.as_ptr()) })?;
    set_mtime_at(dir, name, meta, libc::AT_SYMLINK_NOFOLLOW)
}

/// Sets the mtime of `name` in `dir` (`dir` = `AT_FDCWD`: a path), leaving the atime.
pub(crate) fn set_mtime_at(
    dir: RawFd,
    name: &[u8],
    meta: &Meta,
    flags: libc::c_int,
) -> io::Result<()> {
    let c = cstr(name)?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: meta.mtime as libc::time_t,
            tv_nsec: meta.mtime_nsec as libc::c_long,
        },
    ];
    // SAFETY: `c` is NUL-terminated and `times` points to two timespecs.
    cvt(unsafe { libc::utimensat(dir, c.as_ptr(), times.as_ptr(), flags) }).map(drop)
}

/// Hard-links regular file `from` in `from_dir` as `name` in `dir`, both resolved on disk now:
/// a symlink or directory at `from` is refused (`linkat` without `AT_SYMLINK_FOLLOW` would link
/// the symlink itself; checked anyway). Where the file system refuses hard links, copies.
pub(crate) fn hard_link_at(
    from_dir: RawFd,
    from: &[u8],
    dir: RawFd,
    name: &[u8],
) -> io::Result<()> {
    let (f, c) = (cstr(from)?, cstr(name)?);
    // SAFETY: `st` is written by fstatat before it is read; `f` is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstatat(from_dir, f.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) })?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "hard link target is not a regular file on disk",
        ));
    }
    // SAFETY: both names are NUL-terminated; flags 0 never follows a symlink.
    match cvt(unsafe { libc::linkat(from_dir, f.as_ptr(), dir, c.as_ptr(), 0) }) {
        Ok(_) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::AlreadyExists =>
        {
            Err(e)
        }
        Err(_) => {
            let mut src = open_file_at(from_dir, from)?;
            let mut dst = create_file_at(dir, name, st.st_mode)?;
            io::copy(&mut src, &mut dst)?;
            let md = src.metadata()?;
            dst.set_times(std::fs::FileTimes::new().set_modified(md.modified()?))
        }
    }
}
