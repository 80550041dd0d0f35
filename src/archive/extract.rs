//! Extracting archives safely: decode on this thread, map every entry to where it is restored
//! (the declared paths, or their re-rooted places), write file contents on a pool of threads
//! into staging directories next to the targets (every name below a staging directory reached
//! by `openat` without following links), and only when the whole archive was read without
//! error move the staged trees into place, all or nothing.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::commit::{self, TEMP_PREFIX};
use super::fsat::{self, Dirs};
use super::tarfmt::Meta;
use super::{ArchiveError, ExtractStats, default_threads, io_err, paths};

/// Files up to this size are handed to the pool as one job; bigger ones in [`PIECE`]s.
const POOL_MAX: u64 = 8 << 20;
/// Bytes per job for files bigger than [`POOL_MAX`].
const PIECE: u64 = 4 << 20;
/// Batches queued per writer thread at most (memory: lanes × this × ([`JOB_BATCH_BYTES`] + [`POOL_MAX`]) at worst).
const QUEUE: usize = 8;
/// Files at least this big go to the writer with the least bytes queued rather than to their
/// directory's: their time goes into copying data, not into the directory, and a run of big
/// files in one directory would otherwise leave the other writers idle.
const BIG: u64 = 1 << 20;
/// Content buffers kept for reuse: fresh multi-MiB allocations cost a page fault per 4 KiB.
const FREE_BUFFERS: usize = 16;
/// Permission bits we restore: setuid/setgid from a cache archive are dropped on purpose.
const MODE_MASK: u32 = 0o1777;
/// zstd window limit: archives made with `zstd --long=30/31` decode.
const WINDOW_LOG_MAX: u32 = 31;

/// Where the archive entries under one name prefix are restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The archive-relative prefix recorded at save time, lexically normalised (it may begin
    /// with `..` components; empty is the workspace itself).
    pub name: PathBuf,
    /// The absolute path the entries under `name` are restored to now.
    pub dest: PathBuf,
}

/// Options for [`extract_with`].
#[derive(Default)]
pub struct ExtractOptions<'a> {
    /// Threads writing files; 0 means a default for this machine.
    pub write_threads: usize,
    /// Called on the calling thread with the uncompressed (tar) bytes decoded so far.
    pub progress: Option<&'a dyn Fn(u64)>,
    /// Where entries are restored: each entry goes to the root with the longest `name` that is
    /// a component prefix of its name; entries under no root are refused. `None`: each allowed
    /// path is restored where it is (names relative to the workspace).
    pub roots: Option<&'a [Root]>,
    /// Absolute paths a restore never writes: entries at or under them are skipped (counted in
    /// [`ExtractStats::skipped`]), and nothing holding them is replaced.
    pub exclude: Vec<PathBuf>,
}

impl std::fmt::Debug for ExtractOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractOptions")
            .field("write_threads", &self.write_threads)
            .field("progress", &self.progress.is_some())
            .field("roots", &self.roots)
            .field("exclude", &self.exclude)
            .finish()
    }
}

/// Extracts like [`super::extract`], with options. With `opts.roots` set, `allowed` is not used.
pub fn extract_with(
    input: &mut dyn Read,
    workspace: &Path,
    allowed: &[PathBuf],
    opts: &ExtractOptions<'_>,
) -> Result<ExtractStats, ArchiveError> {
    let workspace = paths::absolute(Path::new(""), workspace);
    let roots = match opts.roots {
        Some(roots) => roots
            .iter()
            .map(|r| {
                let name = r.name.as_os_str().as_bytes();
                let parts =
                    name_parts(name).ok_or_else(|| unsafe_entry(name, "not a normalised name"))?;
                Ok((parts, paths::absolute(&workspace, &r.dest)))
            })
            .collect::<Result<Vec<_>, ArchiveError>>()?,
        None => identity_roots(&workspace, allowed),
    };
    let exclude: Vec<PathBuf> = opts
        .exclude
        .iter()
        .map(|p| paths::absolute(&workspace, p))
        .collect();
    let mut stager = Stager::new(roots, exclude)?;
    let r = extract_staged(input, &mut stager, opts).and_then(|stats| {
        stager.commit()?;
        Ok(stats)
    });
    r.map_err(|e| stager.name_destination(e))
}

fn extract_staged(
    input: &mut dyn Read,
    stager: &mut Stager,
    opts: &ExtractOptions<'_>,
) -> Result<ExtractStats, ArchiveError> {
    let threads = if opts.write_threads == 0 {
        // One more than the cores: a writer often waits in the kernel (page and inode
        // allocation), and the spare keeps the cores busy meanwhile. Measured on 2 cores: 3
        // writers beat 2 on both benchmark trees; 4 was no better than 3.
        (default_threads() + 1).clamp(2, 9)
    } else {
        opts.write_threads
    };
    let mut buffered = BufReader::with_capacity(1 << 20, input);
    let head = buffered.fill_buf().map_err(corrupt)?;
    if head.is_empty() {
        return Err(ArchiveError::Corrupt {
            reason: "the archive is empty".into(),
        });
    }
    let mut decoder: Box<dyn Read + '_> = if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let mut z = zstd::stream::read::Decoder::with_buffer(buffered).map_err(corrupt)?;
        z.window_log_max(WINDOW_LOG_MAX).map_err(corrupt)?;
        Box::new(z)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    // Decode on this thread (the input need not be Send) while a second thread parses the tar
    // stream and stages entries, like `zstd -d | tar -x`.
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<std::io::Result<Vec<u8>>>(8);
        // Used chunks go back to the decoder: fresh 1 MiB buffers cost page faults and zeroing.
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let parser = s.spawn(move || {
            let mut reader = ChunkReader {
                rx: Some(rx),
                free: free_tx,
                chunk: Vec::new(),
                pos: 0,
            };
            let mut pool = WritePool::new(threads);
            let r = stage_all(&mut reader, stager, &mut pool);
            // Workers must be idle before staging can be finished or removed.
            let finished = pool.finish();
            let stats = r?;
            finished?;
            // Read to the end so the codec checks its trailer (zstd checksum, gzip CRC).
            std::io::copy(&mut reader, &mut std::io::sink()).map_err(corrupt)?;
            Ok::<_, ArchiveError>(stats)
        });
        pump(&mut *decoder, &tx, &free_rx, opts.progress);
        drop(tx);
        parser.join().unwrap_or_else(|_| {
            Err(ArchiveError::Corrupt {
                reason: "the archive reader thread panicked".into(),
            })
        })
    })
}

fn corrupt(e: std::io::Error) -> ArchiveError {
    ArchiveError::Corrupt {
        reason: e.to_string(),
    }
}

fn unsafe_entry(name: &[u8], reason: &str) -> ArchiveError {
    ArchiveError::Unsafe {
        entry: String::from_utf8_lossy(name).into_owned(),
        reason: reason.to_string(),
    }
}

/// The components of an archive name with `.` and empty ones dropped; `..` only before the
/// first named component (a name above the workspace). `None` for absolute names, NUL bytes
/// and `..` after a named component.
fn name_parts(name: &[u8]) -> Option<Vec<Vec<u8>>> {
    if name.first() == Some(&b'/') || name.contains(&0) {
        return None;
    }
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if parts.iter().any(|p| p != b"..") => return None,
            _ => parts.push(part.to_vec()),
        }
    }
    Some(parts)
}

/// Each allowed path restored where it is: its name relative to the workspace, itself as the
/// destination. Paths inside another allowed path are covered by it.
fn identity_roots(workspace: &Path, allowed: &[PathBuf]) -> Vec<(Vec<Vec<u8>>, PathBuf)> {
    let mut declared: Vec<PathBuf> = allowed
        .iter()
        .map(|p| paths::absolute(workspace, p))
        .collect();
    declared.sort_by_key(|p| p.components().count());
    let mut roots: Vec<(Vec<Vec<u8>>, PathBuf)> = Vec::new();
    for path in declared {
        if roots.iter().any(|(_, d)| is_under(&path, d)) {
            continue;
        }
        let name = paths::relative_name(workspace, &path);
        roots.push((name_parts(&name).unwrap_or_default(), path));
    }
    roots
}

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
            let locked =
                unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            // A restore reclaiming leftovers may have removed it before it was locked.
            let same = match (lock.metadata(), std::fs::symlink_metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if locked && same {
                return Ok(Staging { path, _lock: lock });
            }
        }
    }
}

/// One destination: the archive names under `name` restored at `path`.
struct Dest {
    /// The name prefix, as components.
    name: Vec<Vec<u8>>,
    /// Where entries under `name` go (absolute).
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

/// Where an entry name goes.
enum Placed {
    /// Under destination `usize`, at this path.
    At(usize, PathBuf),
    /// A directory above a destination's name (tar may carry it): not written.
    Above,
}

struct Stager {
    dests: Vec<Dest>,
    exclude: Vec<PathBuf>,
    made_dirs: PathSet,
    files: PathSet,
    symlinks: PathSet,
    /// Directory metadata to set after the commit: destination, final path.
    dir_meta: Vec<(usize, PathBuf, Meta)>,
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
    fn new(
        roots: Vec<(Vec<Vec<u8>>, PathBuf)>,
        exclude: Vec<PathBuf>,
    ) -> Result<Stager, ArchiveError> {
        let mut dests = Vec::new();
        for (name, path) in roots {
            let (base, was_dir) = staging_base(&path)?;
            dests.push(Dest {
                name,
                path,
                was_dir,
                base,
                staging: None,
                base_mtime: None,
            });
        }
        // Shallower destinations commit first: a deeper one may lie inside what they place.
        dests.sort_by_key(|d| d.path.components().count());
        Ok(Stager {
            dests,
            exclude,
            made_dirs: PathSet::default(),
            files: PathSet::default(),
            symlinks: PathSet::default(),
            dir_meta: Vec::new(),
            committed: false,
        })
    }

    /// Where archive name `name` is restored.
    fn place(&self, name: &[u8]) -> Result<Placed, ArchiveError> {
        if name.first() == Some(&b'/') {
            return Err(unsafe_entry(name, "absolute path"));
        }
        let parts = name_parts(name).ok_or_else(|| unsafe_entry(name, "invalid path"))?;
        let best = self
            .dests
            .iter()
            .enumerate()
            .filter(|(_, d)| parts.starts_with(&d.name))
            .max_by_key(|(_, d)| d.name.len());
        let Some((i, d)) = best else {
            if self
                .dests
                .iter()
                .any(|d| d.name.len() > parts.len() && d.name.starts_with(&parts))
            {
                return Ok(Placed::Above);
            }
            return Err(unsafe_entry(
                name,
                "outside the paths declared for this cache",
            ));
        };
        let rest = &parts[d.name.len()..];
        if rest.iter().any(|p| p == b"..") {
            return Err(unsafe_entry(name, "invalid path"));
        }
        let mut target = d.path.clone();
        for p in rest {
            target.push(OsStr::from_bytes(p));
        }
        Ok(Placed::At(i, target))
    }

    fn excluded(&self, target: &Path) -> bool {
        self.exclude.iter().any(|x| is_under(target, x))
    }

    /// The staging path of `target` under destination `di` and the length of its staging
    /// root's path, creating the staging directory if needed.
    fn staged(&mut self, di: usize, target: &Path) -> Result<(PathBuf, usize), ArchiveError> {
        let d = &mut self.dests[di];
        if d.staging.is_none() {
            use std::os::unix::fs::MetadataExt;
            commit::reclaim_leftovers(&d.base);
            if d.was_dir && d.base != d.path {
                // Where staging directories were made before they moved next to the target.
                commit::reclaim_leftovers(&d.path);
            }
            d.base_mtime = std::fs::symlink_metadata(&d.base).ok().map(|m| Meta {
                mtime: m.mtime(),
                mtime_nsec: m.mtime_nsec().clamp(0, 999_999_999) as u32,
                ..Meta::default()
            });
            let staging = Staging::new(&d.base)?;
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
    fn check_no_symlink_above(
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
    fn ensure_dir(
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
    fn clear_duplicate(
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
    fn commit(&mut self) -> Result<(), ArchiveError> {
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
            commit::commit(&staging.path, &d.base, &d.path, &self.exclude, finish)?;
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
    fn name_destination(&self, e: ArchiveError) -> ArchiveError {
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

/// Whether `p` is `dir` or inside it, compared as bytes: every path here is absolute and
/// normalised, and this runs a few times per entry (`Path::starts_with` walks components).
fn is_under(p: &Path, dir: &Path) -> bool {
    let (p, d) = (p.as_os_str().as_bytes(), dir.as_os_str().as_bytes());
    p.starts_with(d) && (p.len() == d.len() || p[d.len()] == b'/' || d.ends_with(b"/"))
}

/// A set of normalised paths keyed by their bytes: one hash per lookup instead of one per
/// component, which showed in profiles of trees with many small files.
#[derive(Default)]
struct PathSet(HashSet<Vec<u8>>);

impl PathSet {
    fn contains(&self, p: &Path) -> bool {
        self.0.contains(p.as_os_str().as_bytes())
    }

    /// Adds `p`; false if it was there.
    fn insert(&mut self, p: &Path) -> bool {
        self.0.insert(p.as_os_str().as_bytes().to_vec())
    }

    fn remove(&mut self, p: &Path) -> bool {
        self.0.remove(p.as_os_str().as_bytes())
    }

    fn remove_under(&mut self, dir: &Path) {
        self.0
            .retain(|d| !is_under(Path::new(OsStr::from_bytes(d)), dir));
    }

    /// Whether a proper ancestor of `p` strictly below `base` is in the set.
    fn under_any_above(&self, p: &Path, base: &Path) -> bool {
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

fn system_time(meta: &Meta) -> SystemTime {
    let ns = Duration::from_nanos(u64::from(meta.mtime_nsec));
    if meta.mtime >= 0 {
        UNIX_EPOCH + Duration::from_secs(meta.mtime as u64) + ns
    } else {
        UNIX_EPOCH - Duration::from_secs(meta.mtime.unsigned_abs()) + ns
    }
}

/// Reads the mtime of an entry: pax `mtime` (with fraction) if present, else the header's.
fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> Meta {
    let h = entry.header();
    let mut meta = Meta {
        mode: h.mode().unwrap_or(0o644) & MODE_MASK,
        mtime: h.mtime().unwrap_or(0) as i64,
        ..Meta::default()
    };
    if let Ok(Some(pax)) = entry.pax_extensions() {
        for ext in pax.flatten() {
            if ext.key_bytes() == b"mtime"
                && let Some((s, ns)) = parse_pax_time(ext.value_bytes())
            {
                meta.mtime = s;
                meta.mtime_nsec = ns;
            }
        }
    }
    meta
}

fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let v = std::str::from_utf8(v).ok()?;
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = int.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits = frac.as_bytes().iter().take(9).map(|b| u32::from(b - b'0'));
    let mut ns = 0u32;
    for _ in 0..9 {
        ns = ns * 10 + digits.next().unwrap_or(0);
    }
    if !neg {
        return Some((secs, ns));
    }
    if ns == 0 {
        Some((-secs, 0))
    } else {
        Some((-secs - 1, 1_000_000_000 - ns))
    }
}

fn stage_all(
    decoder: &mut dyn Read,
    st: &mut Stager,
    pool: &mut WritePool,
) -> Result<ExtractStats, ArchiveError> {
    let mut stats = ExtractStats::default();
    let mut archive = tar::Archive::new(decoder);
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let etype = entry.header().entry_type();
        if etype.is_pax_global_extensions() {
            continue;
        }
        let name = entry.path_bytes().into_owned();
        let (di, target) = match st.place(&name)? {
            Placed::At(di, target) => (di, target),
            Placed::Above if etype.is_dir() => continue,
            Placed::Above => {
                return Err(unsafe_entry(
                    &name,
                    "would replace a directory above a declared path",
                ));
            }
        };
        if st.excluded(&target) {
            stats.skipped += 1;
            continue;
        }
        st.check_no_symlink_above(&name, &target, di)?;
        let (p, root_len) = st.staged(di, &target)?;
        if !etype.is_dir() && target == st.dests[di].path && st.dests[di].was_dir {
            return Err(unsafe_entry(&name, "would replace a declared directory"));
        }
        let meta = entry_meta(&mut entry);
        if etype.is_dir() {
            if st.files.contains(&target) || st.symlinks.contains(&target) {
                st.clear_duplicate(pool, &target, &p)?;
            }
            st.ensure_dir(pool, &p, root_len)?;
            st.dir_meta.push((di, target, meta));
        } else if etype.is_file() || etype == tar::EntryType::Continuous {
            prepare_leaf(st, pool, &target, &p, root_len)?;
            let size = entry.size();
            // Big files go to the pool in pieces, so the parser never stops to write.
            let mut left = size;
            let mut first = true;
            loop {
                let piece = if size <= POOL_MAX {
                    size
                } else {
                    left.min(PIECE)
                };
                let mut data = if piece >= BIG {
                    pool.buffer()
                } else {
                    Vec::with_capacity(piece as usize)
                };
                (&mut entry)
                    .take(piece)
                    .read_to_end(&mut data)
                    .map_err(corrupt)?;
                if data.len() as u64 != piece {
                    return Err(truncated(&name));
                }
                left -= piece;
                pool.submit(FileJob {
                    path: p.clone(),
                    root_len,
                    data,
                    meta,
                    first,
                    last: left == 0,
                    big: size >= BIG,
                    kind: JobKind::Content,
                })?;
                first = false;
                if left == 0 {
                    break;
                }
            }
            st.files.insert(&target);
            stats.content_bytes += size;
        } else if etype.is_symlink() {
            // Restored as a link wherever it points, as GNU tar does (a venv's `bin/python`):
            // nothing is ever written through it, entries below it are refused.
            let link = entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .filter(|l| !l.is_empty() && !l.contains(&0))
                .ok_or_else(|| unsafe_entry(&name, "symlink without a target"))?;
            prepare_leaf(st, pool, &target, &p, root_len)?;
            pool.submit(FileJob::without_content(
                p,
                root_len,
                meta,
                JobKind::Symlink(link),
            ))?;
            st.symlinks.insert(&target);
        } else if etype.is_hard_link() {
            let link = entry
                .link_name_bytes()
                .map(|l| l.into_owned())
                .ok_or_else(|| unsafe_entry(&name, "hard link without a target"))?;
            let (ldi, link_target) = match st.place(&link) {
                Ok(Placed::At(ldi, t)) => (ldi, t),
                _ => {
                    return Err(unsafe_entry(
                        &name,
                        "hard link target is outside the declared paths",
                    ));
                }
            };
            if st.excluded(&link_target) {
                stats.skipped += 1;
                continue;
            }
            if !st.files.contains(&link_target) {
                return Err(unsafe_entry(
                    &name,
                    "hard link target is not a file earlier in the archive",
                ));
            }
            let (from, from_root) = st.staged(ldi, &link_target)?;
            prepare_leaf(st, pool, &target, &p, root_len)?;
            // Queued behind the target's own content on the writer that writes it, so the
            // pipeline never drains for a link (a cargo target dir has dozens).
            pool.submit(FileJob::without_content(
                p,
                root_len,
                meta,
                JobKind::HardLink(from, from_root),
            ))?;
            st.files.insert(&target);
        } else if etype.is_character_special() || etype.is_block_special() || etype.is_fifo() {
            return Err(unsafe_entry(
                &name,
                "device and fifo entries are not restored",
            ));
        } else {
            return Err(unsafe_entry(
                &name,
                &format!(
                    "unsupported entry type '{}'",
                    char::from(etype.as_byte()).escape_default()
                ),
            ));
        }
        stats.entries += 1;
    }
    Ok(stats)
}

fn truncated(name: &[u8]) -> ArchiveError {
    ArchiveError::Corrupt {
        reason: format!(
            "archive ends inside the content of '{}'",
            String::from_utf8_lossy(name)
        ),
    }
}

/// Makes the parent directory of a file or link and clears an earlier entry of the same name.
fn prepare_leaf(
    st: &mut Stager,
    pool: &mut WritePool,
    target: &Path,
    p: &Path,
    root_len: usize,
) -> Result<(), ArchiveError> {
    if let Some(parent) = p.parent() {
        st.ensure_dir(pool, parent, root_len)?;
    }
    if st.files.contains(target) || st.symlinks.contains(target) || st.made_dirs.contains(p) {
        st.clear_duplicate(pool, target, p)?;
    }
    Ok(())
}

/// The process umask, read without changing it (Linux reports it in /proc/self/status).
/// `None` when unknown: then every mode is set explicitly.
fn umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
    })
}

/// Whether creating with `mode` already yields exactly `mode` under the umask.
fn creation_gives(mode: u32) -> bool {
    umask().is_some_and(|m| mode & 0o7000 == 0 && mode & !m == mode)
}

fn finish_file(f: &File, p: &Path, meta: &Meta) -> Result<(), ArchiveError> {
    // One syscall fewer per file when the umask already produced the archived mode.
    if !creation_gives(meta.mode & MODE_MASK) {
        f.set_permissions(std::fs::Permissions::from_mode(meta.mode & MODE_MASK))
            .map_err(io_err(p))?;
    }
    f.set_times(std::fs::FileTimes::new().set_modified(system_time(meta)))
        .map_err(io_err(p))
}

/// A whole file, or a piece of a big one: its pieces go, in order, to the same worker (they
/// share a parent directory), which keeps the file open from the first piece to the last.
struct FileJob {
    /// The staged path.
    path: PathBuf,
    /// The length of the staging root's path at the start of `path`.
    root_len: usize,
    data: Vec<u8>,
    meta: Meta,
    first: bool,
    last: bool,
    /// The whole file is at least [`BIG`]: placed by load, not by directory.
    big: bool,
    kind: JobKind,
}

impl FileJob {
    /// A directory or link: one job, nothing to write.
    fn without_content(path: PathBuf, root_len: usize, meta: Meta, kind: JobKind) -> FileJob {
        FileJob {
            path,
            root_len,
            data: Vec::new(),
            meta,
            first: true,
            last: true,
            big: false,
            kind,
        }
    }
}

/// What a [`FileJob`] makes at its path.
enum JobKind {
    /// File content (`data`).
    Content,
    /// A directory (and any missing parents: another writer may not have got to them yet).
    Mkdir,
    /// A symlink to these target bytes.
    Symlink(Vec<u8>),
    /// A hard link to this staged file (with its staging root's length), resolved on disk when
    /// it is written (a copy where the file system refuses links).
    HardLink(PathBuf, usize),
}

fn write_job(job: &FileJob, open: &mut Option<File>, dirs: &mut Dirs) -> Result<(), ArchiveError> {
    let path = job.path.as_os_str().as_bytes();
    let err = io_err(&job.path);
    if let JobKind::Mkdir = job.kind {
        return dirs.get(path, job.root_len, true).map(drop).map_err(err);
    }
    if !job.first {
        let mut f = open.take().ok_or_else(|| ArchiveError::Io {
            path: job.path.clone(),
            source: std::io::Error::other("piece of a file that was never opened"),
        })?;
        f.write_all(&job.data).map_err(io_err(&job.path))?;
        return if job.last {
            finish_file(&f, &job.path, &job.meta)
        } else {
            *open = Some(f);
            Ok(())
        };
    }
    let (parent, name) = fsat::split(path).map_err(io_err(&job.path))?;
    let dir = dirs
        .get(parent, job.root_len, true)
        .map_err(io_err(&job.path))?;
    match &job.kind {
        JobKind::Mkdir => Ok(()),
        JobKind::Symlink(target) => fsat::symlink_at(dir, name, target, &job.meta).map_err(err),
        JobKind::HardLink(from, from_root) => {
            let (from_parent, from_name) =
                fsat::split(from.as_os_str().as_bytes()).map_err(io_err(from))?;
            let from_dir = dirs
                .get(from_parent, *from_root, false)
                .map_err(io_err(from))?;
            fsat::hard_link_at(from_dir, from_name, dir, name).map_err(err)
        }
        JobKind::Content => {
            let mut f =
                fsat::create_file_at(dir, name, job.meta.mode).map_err(io_err(&job.path))?;
            f.write_all(&job.data).map_err(io_err(&job.path))?;
            if job.last {
                finish_file(&f, &job.path, &job.meta)
            } else {
                *open = Some(f);
                Ok(())
            }
        }
    }
}

/// Files handed to a worker at once: one wake-up per batch rather than per file.
const JOB_BATCH_FILES: usize = 32;
/// Content bytes after which a batch is handed over even if it has fewer files.
const JOB_BATCH_BYTES: usize = 2 << 20;

#[derive(Default)]
struct PoolState {
    pending: usize,
    error: Option<ArchiveError>,
}

/// Threads writing small files while the parser keeps going. Files are sharded by parent
/// directory: creating entries in one directory from several threads only contends on the
/// directory's lock in the kernel.
struct WritePool {
    lanes: Vec<Lane>,
    workers: Vec<JoinHandle<()>>,
    shared: Arc<(Mutex<PoolState>, Condvar)>,
    /// The lane the pieces of the file being submitted go to (all to one, in order).
    current: usize,
    /// Used content buffers of at least [`BIG`] bytes, back from the workers.
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    /// The lane each big file and each hard link went to (other files go by directory), for
    /// hard links to them.
    placed: HashMap<Vec<u8>, usize>,
    /// Bumped when the parser removed staged directories: writers drop their open ones.
    generation: Arc<AtomicU64>,
}

/// One worker's queue and the batch being filled for it.
struct Lane {
    tx: Option<SyncSender<Vec<FileJob>>>,
    batch: Vec<FileJob>,
    batch_bytes: usize,
    /// Content bytes submitted to this lane and not yet written.
    queued: Arc<AtomicU64>,
}

impl WritePool {
    fn new(threads: usize) -> WritePool {
        let shared = Arc::new((Mutex::new(PoolState::default()), Condvar::new()));
        let free = Arc::new(Mutex::new(Vec::new()));
        let generation = Arc::new(AtomicU64::new(0));
        let mut lanes = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..threads.max(1) {
            let (tx, rx) = sync_channel::<Vec<FileJob>>(QUEUE);
            let queued = Arc::new(AtomicU64::new(0));
            let ctx = WorkerCtx {
                shared: Arc::clone(&shared),
                queued: Arc::clone(&queued),
                free: Arc::clone(&free),
                generation: Arc::clone(&generation),
            };
            workers.push(std::thread::spawn(move || worker(&rx, &ctx)));
            lanes.push(Lane {
                tx: Some(tx),
                batch: Vec::with_capacity(JOB_BATCH_FILES),
                batch_bytes: 0,
                queued,
            });
        }
        WritePool {
            lanes,
            workers,
            shared,
            current: 0,
            free,
            placed: HashMap::new(),
            generation,
        }
    }

    /// An empty buffer for a big file's content, reused if one is free.
    fn buffer(&self) -> Vec<u8> {
        let mut b = lock(&self.free).pop().unwrap_or_default();
        b.clear();
        b
    }

    fn submit(&mut self, job: FileJob) -> Result<(), ArchiveError> {
        let lane = if self.lanes.len() == 1 {
            0
        } else if !job.first {
            self.current
        } else if job.big {
            let lane = (0..self.lanes.len())
                .min_by_key(|&i| self.lanes[i].queued.load(Ordering::Relaxed))
                .unwrap_or(0);
            self.placed
                .insert(job.path.as_os_str().as_bytes().to_vec(), lane);
            lane
        } else if let JobKind::HardLink(from, _) = &job.kind
            && let Some(&lane) = self.placed.get(from.as_os_str().as_bytes())
        {
            lane
        } else {
            use std::hash::{BuildHasher, Hasher};
            let mut fx = FIXED_HASH.build_hasher();
            // A directory goes where the files inside it go; a hard link where its target went.
            let key = match &job.kind {
                JobKind::Mkdir => &job.path,
                JobKind::HardLink(from, _) => from.parent().unwrap_or(Path::new("")),
                _ => job.path.parent().unwrap_or(Path::new("")),
            };
            fx.write(key.as_os_str().as_bytes());
            (fx.finish() % self.lanes.len() as u64) as usize
        };
        self.current = lane;
        if let JobKind::HardLink(..) = job.kind {
            // A link to this link must queue behind it too.
            self.placed
                .insert(job.path.as_os_str().as_bytes().to_vec(), lane);
        }
        let l = &mut self.lanes[lane];
        l.batch_bytes += job.data.len();
        l.queued.fetch_add(job.data.len() as u64, Ordering::Relaxed);
        l.batch.push(job);
        if l.batch.len() >= JOB_BATCH_FILES || l.batch_bytes >= JOB_BATCH_BYTES {
            self.flush_lane(lane)?;
        }
        Ok(())
    }

    fn flush_lane(&mut self, lane: usize) -> Result<(), ArchiveError> {
        let l = &mut self.lanes[lane];
        if l.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut l.batch, Vec::with_capacity(JOB_BATCH_FILES));
        l.batch_bytes = 0;
        {
            let mut s = lock(&self.shared.0);
            if let Some(e) = s.error.take() {
                return Err(e);
            }
            s.pending += 1;
        }
        let sent = l.tx.as_ref().map(|tx| tx.send(batch));
        if !matches!(sent, Some(Ok(()))) {
            return Err(ArchiveError::Io {
                path: PathBuf::from("<extract worker>"),
                source: std::io::Error::other("file writer threads stopped"),
            });
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ArchiveError> {
        (0..self.lanes.len()).try_for_each(|i| self.flush_lane(i))
    }

    /// Waits until every submitted file is written; returns the first error.
    fn barrier(&mut self) -> Result<(), ArchiveError> {
        self.flush()?;
        let (m, cv) = &*self.shared;
        let mut s = lock(m);
        while s.pending > 0 {
            s = cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.error.take().map_or(Ok(()), Err)
    }

    fn finish(&mut self) -> Result<(), ArchiveError> {
        let flushed = self.flush();
        self.stop();
        flushed?;
        lock(&self.shared.0).error.take().map_or(Ok(()), Err)
    }

    fn stop(&mut self) {
        for l in &mut self.lanes {
            l.tx = None;
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Hasher for picking a lane: deterministic, so one directory always maps to one worker.
const FIXED_HASH: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

impl Drop for WritePool {
    fn drop(&mut self) {
        self.stop();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a writer thread shares with the pool.
struct WorkerCtx {
    shared: Arc<(Mutex<PoolState>, Condvar)>,
    queued: Arc<AtomicU64>,
    free: Arc<Mutex<Vec<Vec<u8>>>>,
    generation: Arc<AtomicU64>,
}

fn worker(rx: &Receiver<Vec<FileJob>>, ctx: &WorkerCtx) {
    let shared = &*ctx.shared;
    let mut open = None;
    let mut dirs = Dirs::default();
    loop {
        let batch = match rx.recv() {
            Ok(batch) => batch,
            Err(_) => return,
        };
        let mut result = Ok(());
        if lock(&shared.0).error.is_none() {
            dirs.sync(ctx.generation.load(Ordering::SeqCst));
            result = batch
                .iter()
                .try_for_each(|job| write_job(job, &mut open, &mut dirs));
        }
        if result.is_err() || lock(&shared.0).error.is_some() {
            open = None;
        }
        let mut bytes = 0;
        for job in batch {
            bytes += job.data.len() as u64;
            if job.data.capacity() as u64 >= BIG {
                let mut free = lock(&ctx.free);
                if free.len() < FREE_BUFFERS {
                    free.push(job.data);
                }
            }
        }
        ctx.queued.fetch_sub(bytes, Ordering::Relaxed);
        let mut s = lock(&shared.0);
        if let Err(e) = result {
            s.error.get_or_insert(e);
        }
        s.pending -= 1;
        if s.pending == 0 {
            shared.1.notify_all();
        }
    }
}

/// The tar parser's side of the decoded stream: chunks sent by the decoding thread.
struct ChunkReader {
    rx: Option<Receiver<std::io::Result<Vec<u8>>>>,
    free: std::sync::mpsc::Sender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

/// Decoded bytes per chunk handed from the decoder to the parser.
const CHUNK: usize = 1 << 20;

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            let Some(rx) = &self.rx else { return Ok(0) };
            match rx.recv() {
                Ok(Ok(chunk)) => {
                    let used = std::mem::replace(&mut self.chunk, chunk);
                    // The decoder may be gone already; then the buffer is simply dropped.
                    let _ = self.free.send(used);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.rx = None;
                    return Err(e);
                }
                // The decoder is done: end of stream.
                Err(_) => self.rx = None,
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads the decoder to its end in chunks and sends them on; stops early when the parser has
/// gone (it failed). Progress is reported here, in decoded (tar) bytes.
fn pump(
    decoder: &mut dyn Read,
    tx: &SyncSender<std::io::Result<Vec<u8>>>,
    free: &Receiver<Vec<u8>>,
    progress: Option<&dyn Fn(u64)>,
) {
    let mut total = 0u64;
    loop {
        let mut buf = free.try_recv().unwrap_or_default();
        // Zero-filled once per buffer; a reused one only grows back to its old length.
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        let mut failure = None;
        while filled < CHUNK {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        buf.truncate(filled);
        total += filled as u64;
        let last = filled < CHUNK || failure.is_some();
        if filled > 0 && tx.send(Ok(buf)).is_err() {
            return;
        }
        if let Some(e) = failure {
            let _ = tx.send(Err(e));
            return;
        }
        if let Some(cb) = progress {
            cb(total);
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let rows: &[(&str, Option<(i64, u32)>)] = &[
            ("12", Some((12, 0))),
            ("12.5", Some((12, 500_000_000))),
            ("12.123456789123", Some((12, 123_456_789))),
            ("-1.5", Some((-2, 500_000_000))),
            ("-3", Some((-3, 0))),
            ("x", None),
            ("1.x", None),
        ];
        for (v, want) in rows {
            assert_eq!(parse_pax_time(v.as_bytes()), *want, "{v}");
        }
    }
}
