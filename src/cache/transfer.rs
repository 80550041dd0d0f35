//! The file-system half of a save or restore, shared by the local store ([`super::Cache`]) and
//! a cache server ([`super::remote::RemoteCache`]): which files a save archives, writing the
//! archive, and restoring one into the declared paths. Where the bytes go is the caller's.

use std::io::{Read, Write};
use std::path::PathBuf;

use super::paths::{self, SavedRoot};
use super::progress::{OnProgress, Progress, ProgressReader, ProgressWriter};
use super::{
    CacheError, CacheOptions, Location, Log, RestoreRequest, SaveRequest, allowed_roots,
    cache_version, check_roots, expand_tilde,
};
use crate::archive::{self, Compression, CreateOptions, CreateStats, ExtractOptions, FrameSource};
use crate::exec::{Direction, LogLevel};

/// What a save will archive, decided before anything is reserved.
pub(crate) struct SavePlan {
    /// The request's location, absolute.
    pub location: Location,
    /// The paths to archive (files, and directories taken whole).
    pub files: Vec<PathBuf>,
    /// Paths never archived (the local store).
    pub exclude: Vec<PathBuf>,
    /// How each declared path resolved (JSON of [`SavedRoot`]s), kept with the entry.
    pub roots: Option<String>,
    /// Where writing the archive reports progress.
    pub progress: OnProgress,
}

/// Checks the declared paths and resolves what they match; logs each match (debug) and each
/// excluded store path inside them.
pub(crate) fn plan_save(
    request: &SaveRequest,
    exclude: Vec<PathBuf>,
    log: Log<'_>,
) -> Result<SavePlan, CacheError> {
    let location = request.location.absolute()?;
    check_roots(&request.paths, &location)?;
    let patterns: Vec<String> = request
        .paths
        .iter()
        .map(|p| expand_tilde(p, &location.home))
        .collect();
    let files = crate::glob::archive_roots(&location.workspace, &patterns)?;
    if files.is_empty() {
        return Err(CacheError::NothingToSave);
    }
    let allowed = allowed_roots(&request.paths, &location.workspace, &location.home);
    for path in &exclude {
        if path.exists() && allowed.iter().any(|root| path.starts_with(root)) {
            log(
                LogLevel::Info,
                &format!(
                    "Not archiving {}: it is the cache store, which a save never contains",
                    path.display()
                ),
            );
        }
    }
    for file in &files {
        log(LogLevel::Debug, &format!("Matched: {}", file.display()));
    }
    let roots = serde_json::to_string(&paths::saved_roots(
        &request.paths,
        &location.workspace,
        &location.home,
    ))
    .ok();
    Ok(SavePlan {
        location,
        files,
        exclude,
        roots,
        progress: request.progress.clone(),
    })
}

/// Writes the plan's archive into `out`, with progress, stopping once cancelled.
pub(crate) fn write_archive(
    plan: &SavePlan,
    compression: Compression,
    options: &CacheOptions,
    frames: Option<&dyn FrameSource>,
    out: &mut dyn Write,
) -> Result<CreateStats, CacheError> {
    let mut progress = Progress::new(Direction::Save, None, &plan.progress, options.progress)
        .cancel_on(&options.cancel);
    let created = {
        let mut out = ProgressWriter {
            progress: &mut progress,
            inner: out,
        };
        let mut create = CreateOptions::new(compression);
        create.exclude = plan.exclude.clone();
        create.frames = frames;
        archive::create_with(&plan.location.workspace, &plan.files, &create, &mut out)
    };
    progress.finish();
    let stats = created?;
    if options.cancel.is_cancelled() {
        return Err(CacheError::Cancelled);
    }
    Ok(stats)
}

/// Restores the archive in `reader` (`size` bytes, when known) into the declared `paths`,
/// re-rooting names recorded at save time (`saved_roots`, JSON) to where the paths resolve now.
#[allow(clippy::too_many_arguments)]
pub(crate) fn extract_archive(
    reader: Box<dyn Read + Send + '_>,
    size: Option<u64>,
    paths: &[String],
    location: &Location,
    saved_roots: Option<&str>,
    exclude: Vec<PathBuf>,
    options: &CacheOptions,
    on_progress: &OnProgress,
    log: Log<'_>,
) -> Result<(), CacheError> {
    let allowed = allowed_roots(paths, &location.workspace, &location.home);
    let saved: Option<Vec<SavedRoot>> =
        saved_roots.and_then(|json| serde_json::from_str(json).ok());
    let roots = paths::restore_roots(saved.as_deref(), paths, &location.workspace, &location.home);
    let mut progress = Progress::new(Direction::Restore, size, on_progress, options.progress)
        .cancel_on(&options.cancel);
    let extract = ExtractOptions {
        roots: Some(&roots),
        exclude,
        ..ExtractOptions::default()
    };
    let result = std::thread::scope(|scope| {
        let mut input = ProgressReader {
            inner: ReadAhead::spawn(scope, reader),
            progress: &mut progress,
        };
        archive::extract_with(&mut input, &location.workspace, &allowed, &extract)
    });
    progress.finish();
    let stats = result?;
    if stats.skipped > 0 {
        log(
            LogLevel::Info,
            &format!(
                "Skipped {} archive entries inside the cache store; the store is never written by a restore",
                stats.skipped
            ),
        );
    }
    Ok(())
}

/// Bytes the read-ahead thread reads at a time.
const READ_AHEAD_CHUNK: usize = 1 << 20;
/// Chunks it may have read before the restore takes them.
const READ_AHEAD_DEPTH: usize = 4;

/// An archive read on a thread of its own, a few chunks ahead of the restore. The decoder's
/// thread is a restore's critical path (profiled on bench/exec-cache: 0.6 of 0.8 s); reading
/// the blob, and checking its digest as it streams, now run beside it instead of in turn.
struct ReadAhead {
    rx: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    /// Read buffers go back to the thread (fresh 1 MiB buffers cost page faults).
    free: std::sync::mpsc::Sender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ReadAhead {
    fn spawn<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        mut reader: Box<dyn Read + Send + 'scope>,
    ) -> ReadAhead {
        let (tx, rx) = std::sync::mpsc::sync_channel(READ_AHEAD_DEPTH);
        let (free, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        scope.spawn(move || {
            loop {
                let mut buf = free_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(READ_AHEAD_CHUNK));
                buf.clear();
                let read = (&mut reader)
                    .take(READ_AHEAD_CHUNK as u64)
                    .read_to_end(&mut buf)
                    .map(|_| buf);
                // An error or the end stops the thread; a restore that stopped reading (it
                // failed, or the archive ended before the blob did) drops the receiver.
                let stop = !matches!(&read, Ok(b) if !b.is_empty());
                if tx.send(read).is_err() || stop {
                    return;
                }
            }
        });
        ReadAhead {
            rx,
            free,
            chunk: Vec::new(),
            pos: 0,
            done: false,
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            let used = std::mem::take(&mut self.chunk);
            // The thread may have ended; then the buffer is simply freed.
            let _ = self.free.send(used);
            self.pos = 0;
            match self.rx.recv() {
                Ok(Ok(chunk)) if !chunk.is_empty() => self.chunk = chunk,
                Ok(Ok(_)) | Err(_) => self.done = true,
                Ok(Err(err)) => {
                    self.done = true;
                    return Err(err);
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The keys a restore looks up (primary, then restore keys) and the version it asks for.
pub(crate) fn lookup_keys(
    request: &RestoreRequest,
    compression: Compression,
) -> (Vec<String>, String) {
    let version = cache_version(
        &request.paths,
        compression,
        request.location.windows,
        request.enable_cross_os_archive,
    );
    (all_keys(request), version)
}

/// The keys a restore looks up, primary key first.
pub(crate) fn all_keys(request: &RestoreRequest) -> Vec<String> {
    let mut keys = vec![request.primary_key.clone()];
    keys.extend(request.restore_keys.iter().cloned());
    keys
}

/// Logs what a lookup found, as the toolkit does: a miss at debug level, a hit on the primary
/// key or on a restore key (any match whose key differs from the request).
pub(crate) fn log_lookup(
    request: &RestoreRequest,
    keys: &[String],
    version: &str,
    matched: Option<&str>,
    log: Log<'_>,
) {
    match matched {
        None => log(
            LogLevel::Debug,
            &format!(
                "Cache not found for version {version} of keys: {}",
                keys.join(", ")
            ),
        ),
        Some(key) if key == request.primary_key => {
            log(LogLevel::Info, &format!("Cache hit for: {key}"));
        }
        Some(key) => log(LogLevel::Info, &format!("Cache hit for restore-key: {key}")),
    }
}

/// Logs a restore that failed for a reason other than validation (a miss, not a failed step).
pub(crate) fn log_restore_failure(err: CacheError, log: Log<'_>) -> CacheError {
    let err = if err.is_cancelled() {
        CacheError::Cancelled
    } else {
        err
    };
    log(
        LogLevel::Warning,
        &format!("Failed to restore: {}", crate::error::chain(&err)),
    );
    err
}

/// The checks that fail a restore step: a `path` and valid keys.
pub(crate) fn validate_restore(request: &RestoreRequest) -> Result<(), CacheError> {
    if request.paths.is_empty() {
        return Err(CacheError::NoPaths);
    }
    super::key::validate_restore_keys(&request.primary_key, &request.restore_keys)?;
    Ok(())
}

/// The checks that refuse a save: a `path` and a valid key.
pub(crate) fn validate_save(request: &SaveRequest) -> Result<(), CacheError> {
    if request.paths.is_empty() {
        return Err(CacheError::NoPaths);
    }
    super::validate_key(&request.key)?;
    Ok(())
}
