//! The writer pool: threads that create the staged files, directories and links while the
//! parser goes on, each job reaching its directory by fd ([`super::super::fsat`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::fsat::{self, Dirs};
use super::super::tarfmt::Meta;
use super::super::{ArchiveError, io_err};
use super::codec::Slice;
use super::{MODE_MASK, creation_gives};

/// Batches queued per writer thread at most (memory: lanes × this × ([`JOB_BATCH_BYTES`] + [`super::POOL_MAX`]) at worst).
const QUEUE: usize = 8;
/// Files at least this big go to the writer with the least bytes queued rather than to their
/// directory's: their time goes into copying data, not into the directory, and a run of big
/// files in one directory would otherwise leave the other writers idle.
pub(super) const BIG: u64 = 1 << 20;

fn system_time(meta: &Meta) -> SystemTime {
    let ns = Duration::from_nanos(u64::from(meta.mtime_nsec));
    if meta.mtime >= 0 {
        UNIX_EPOCH + Duration::from_secs(meta.mtime as u64) + ns
    } else {
        UNIX_EPOCH - Duration::from_secs(meta.mtime.unsigned_abs()) + ns
    }
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
pub(super) struct FileJob {
    /// The staged path.
    pub(super) path: PathBuf,
    /// The length of the staging root's path at the start of `path`.
    pub(super) root_len: usize,
    /// The content, as slices of the decoded chunks it lies in.
    pub(super) data: Vec<Slice>,
    /// Content bytes in `data`.
    pub(super) len: usize,
    pub(super) meta: Meta,
    pub(super) first: bool,
    pub(super) last: bool,
    /// The whole file is at least [`BIG`]: placed by load, not by directory.
    pub(super) big: bool,
    pub(super) kind: JobKind,
}

impl FileJob {
    /// A directory or link: one job, nothing to write.
    pub(super) fn without_content(
        path: PathBuf,
        root_len: usize,
        meta: Meta,
        kind: JobKind,
    ) -> FileJob {
        FileJob {
            path,
            root_len,
            data: Vec::new(),
            len: 0,
            meta,
            first: true,
            last: true,
            big: false,
            kind,
        }
    }
}

/// What a [`FileJob`] makes at its path.
pub(super) enum JobKind {
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

/// Writes the slices in order; most files lie in one.
fn write_slices(f: &mut File, data: &[Slice]) -> std::io::Result<()> {
    data.iter().try_for_each(|s| f.write_all(s.bytes()))
}

fn write_job(job: &FileJob, open: &mut Option<File>, dirs: &mut Dirs) -> Result<(), ArchiveError> {
    let path = job.path.as_os_str().as_bytes();
    let err = io_err(&job.path);
    if let JobKind::Mkdir = job.kind {
        return dirs.make(path, job.root_len).map(drop).map_err(err);
    }
    if !job.first {
        let mut f = open.take().ok_or_else(|| ArchiveError::Io {
            path: job.path.clone(),
            source: std::io::Error::other("piece of a file that was never opened"),
        })?;
        write_slices(&mut f, &job.data).map_err(io_err(&job.path))?;
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
            write_slices(&mut f, &job.data).map_err(io_err(&job.path))?;
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
pub(super) struct WritePool {
    lanes: Vec<Lane>,
    workers: Vec<JoinHandle<()>>,
    shared: Arc<(Mutex<PoolState>, Condvar)>,
    /// The lane the pieces of the file being submitted go to (all to one, in order).
    current: usize,
    /// The lane each big file and each hard link went to (other files go by directory), for
    /// hard links to them.
    placed: HashMap<Vec<u8>, usize>,
    /// Bumped when the parser removed staged directories: writers drop their open ones.
    pub(super) generation: Arc<AtomicU64>,
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
    pub(super) fn new(threads: usize) -> WritePool {
        let shared = Arc::new((Mutex::new(PoolState::default()), Condvar::new()));
        let generation = Arc::new(AtomicU64::new(0));
        let mut lanes = Vec::new();
        let mut workers = Vec::new();
        for _ in 0..threads.max(1) {
            let (tx, rx) = sync_channel::<Vec<FileJob>>(QUEUE);
            let queued = Arc::new(AtomicU64::new(0));
            let ctx = WorkerCtx {
                shared: Arc::clone(&shared),
                queued: Arc::clone(&queued),
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
            placed: HashMap::new(),
            generation,
        }
    }

    pub(super) fn submit(&mut self, job: FileJob) -> Result<(), ArchiveError> {
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
        l.batch_bytes += job.len;
        l.queued.fetch_add(job.len as u64, Ordering::Relaxed);
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

    pub(super) fn flush(&mut self) -> Result<(), ArchiveError> {
        (0..self.lanes.len()).try_for_each(|i| self.flush_lane(i))
    }

    /// Waits until every submitted file is written; returns the first error.
    pub(super) fn barrier(&mut self) -> Result<(), ArchiveError> {
        self.flush()?;
        let (m, cv) = &*self.shared;
        let mut s = lock(m);
        while s.pending > 0 {
            s = cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.error.take().map_or(Ok(()), Err)
    }

    pub(super) fn finish(&mut self) -> Result<(), ArchiveError> {
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
        let bytes: u64 = batch.iter().map(|job| job.len as u64).sum();
        // The chunks the slices hold go back to the decoder.
        drop(batch);
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
