//! A local tier in front of a remote store: reads try the local copy first, and a miss streams
//! from the remote into the local tier while it is being served; writes go to both. The remote is
//! the truth (stat, list and GC ask it); the local tier is only a cache, bounded by size (least
//! recently used blobs go first) and age (blobs unused for longer than the TTL go), so its
//! failures never fail a read or a write.
//!
//! Remote writes are [`RemoteWrites::Through`] by default: `finish` returns once the remote has
//! the blob. With [`RemoteWrites::Background`] a write finishes once the local copy is durable
//! and the upload runs on a thread of its own; [`BlobStore::flush`] joins every pending upload
//! and names the blobs that did not make it, so the caller can withdraw what points at them.
//! Until then the blob exists only on this machine: use it where one process owns the job (a
//! `runner exec` run), not on servers whose peers must read what was just written.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{BlobError, BlobInfo, BlobStat, BlobStore, BlobWriter, ListedBlob};
use crate::clock::{Clock, EpochMillis, SystemClock};

/// A store that can be the local tier: it records when a blob was last used (a local
/// directory sets the file's mtime), so the LRU order survives from one process to the next.
pub trait LocalTier: BlobStore + Clone + 'static {
    /// Marks a blob as used now; a missing blob is not an error.
    fn touch(&self, digest: &str) -> Result<(), BlobError>;
}

/// How big and how old the local tier may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierLimits {
    /// Total bytes kept locally; least recently used blobs are removed above it.
    pub max_bytes: u64,
    /// Blobs unused for longer than this are removed (milliseconds).
    pub ttl_ms: i64,
}

impl Default for TierLimits {
    /// 10 GiB and 7 days, like the store's own eviction defaults.
    fn default() -> Self {
        Self {
            max_bytes: 10 << 30,
            ttl_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// When a write reaches the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteWrites {
    /// Before `finish` returns (bytes stream to both tiers as they are written).
    #[default]
    Through,
    /// After: `finish` returns once the local copy is durable; [`BlobStore::flush`] joins.
    Background,
}

/// Reads and writes per tier so far, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Reads the local copy served.
    pub local_hits: u64,
    /// Reads the local tier did not have (each went on to the remote).
    pub local_misses: u64,
    /// Reads the remote served after a local miss (the blob was copied into the local tier).
    pub remote_hits: u64,
    /// Reads neither tier had.
    pub remote_misses: u64,
    /// Blobs removed from the local tier by its size or age bound.
    pub local_evictions: u64,
    /// Background uploads that completed.
    pub uploads_done: u64,
    /// Background uploads that failed (reported by `flush`).
    pub uploads_failed: u64,
    /// Background uploads not yet joined.
    pub uploads_pending: u64,
}

#[derive(Debug, Default)]
struct Counters {
    local_hits: AtomicU64,
    local_misses: AtomicU64,
    remote_hits: AtomicU64,
    remote_misses: AtomicU64,
    local_evictions: AtomicU64,
    uploads_done: AtomicU64,
    uploads_failed: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

type Upload = JoinHandle<Result<(), BlobError>>;

/// State shared by clones and by the readers and writers a tiered store hands out (not by
/// upload threads, so the last handle can tell it is the last).
#[derive(Debug, Default)]
struct Shared {
    /// Background uploads by digest, until `flush` joins them.
    uploads: Mutex<HashMap<String, Upload>>,
    /// Serialises trims (several readers may finish copies at once).
    trimming: Mutex<()>,
}

impl Shared {
    fn uploads(&self) -> MutexGuard<'_, HashMap<String, Upload>> {
        // Every update is one insert or remove, so a panicked holder leaves a usable map.
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `local` in front of `remote` (see the module docs). Clones share counters and uploads.
#[derive(Debug, Clone)]
pub struct Tiered<L, R> {
    local: L,
    remote: R,
    limits: TierLimits,
    writes: RemoteWrites,
    clock: Arc<dyn Clock>,
    counters: Arc<Counters>,
    shared: Arc<Shared>,
}

impl<L: LocalTier, R: BlobStore + Clone + 'static> Tiered<L, R> {
    /// Puts `local` in front of `remote`, with the default limits and write-through.
    pub fn new(local: L, remote: R) -> Self {
        Self {
            local,
            remote,
            limits: TierLimits::default(),
            writes: RemoteWrites::default(),
            clock: Arc::new(SystemClock),
            counters: Arc::default(),
            shared: Arc::default(),
        }
    }

    /// Bounds the local tier.
    pub fn with_limits(mut self, limits: TierLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Chooses when writes reach the remote.
    pub fn with_remote_writes(mut self, writes: RemoteWrites) -> Self {
        self.writes = writes;
        self
    }

    /// The clock the TTL is measured with (blob ages are the local tier's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Counters per tier so far.
    pub fn stats(&self) -> TierStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TierStats {
            local_hits: get(&c.local_hits),
            local_misses: get(&c.local_misses),
            remote_hits: get(&c.remote_hits),
            remote_misses: get(&c.remote_misses),
            local_evictions: get(&c.local_evictions),
            uploads_done: get(&c.uploads_done),
            uploads_failed: get(&c.uploads_failed),
            uploads_pending: self.shared.uploads().len() as u64,
        }
    }

    /// The local tier.
    pub fn local(&self) -> &L {
        &self.local
    }

    /// The remote tier.
    pub fn remote(&self) -> &R {
        &self.remote
    }

    /// Applies the limits to the local tier now: blobs unused for longer than the TTL go, then
    /// the least recently used until the rest fits. Blobs still uploading are kept. Returns how
    /// many were removed.
    pub fn trim(&self) -> Result<usize, BlobError> {
        let _one = self
            .shared
            .trimming
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let pinned: Vec<String> = self.shared.uploads().keys().cloned().collect();
        let removed = trim_local(&self.local, &self.limits, self.clock.now_millis(), &pinned)?;
        self.counters
            .local_evictions
            .fetch_add(removed.len() as u64, Ordering::Relaxed);
        Ok(removed.len())
    }

    /// Trims after the local tier grew; a failure only means the tier stays bigger for now.
    fn after_insert(&self) {
        let _ = self.trim();
    }

    /// Uploads the local copy of `digest` to the remote on a thread of its own.
    fn upload_in_background(&self, digest: &str) {
        let mut uploads = self.shared.uploads();
        if uploads.contains_key(digest) {
            // The same bytes are already on their way.
            return;
        }
        let (local, remote, counters) = (
            self.local.clone(),
            self.remote.clone(),
            self.counters.clone(),
        );
        let name = digest.to_string();
        let handle = std::thread::spawn(move || {
            let result = copy_blob(&local, &remote, &name);
            let counter = match result {
                Ok(()) => &counters.uploads_done,
                Err(_) => &counters.uploads_failed,
            };
            bump(counter);
            result
        });
        uploads.insert(digest.to_string(), handle);
    }

    fn is_uploading(&self, digest: &str) -> bool {
        self.shared.uploads().contains_key(digest)
    }
}

/// Applies `limits` to a local tier at `now`: blobs unused for longer than the TTL go, then the
/// least recently used until the rest fits; those in `keep` stay. Returns the digests removed.
pub fn trim_local(
    local: &dyn BlobStore,
    limits: &TierLimits,
    now: EpochMillis,
    keep: &[String],
) -> Result<Vec<String>, BlobError> {
    let mut blobs: Vec<ListedBlob> = local
        .list()?
        .into_iter()
        .filter(|b| !keep.contains(&b.digest))
        .collect();
    // Oldest use first; an unknown age counts as just used.
    blobs.sort_by_key(|b| b.modified_at.unwrap_or(EpochMillis::MAX));
    let mut total: u64 = blobs.iter().map(|b| b.size).sum();
    let mut removed = Vec::new();
    for blob in blobs {
        let expired = blob
            .modified_at
            .is_some_and(|t| now.saturating_sub(t) > limits.ttl_ms);
        if !expired && total <= limits.max_bytes {
            continue;
        }
        local.delete(&blob.digest)?;
        total = total.saturating_sub(blob.size);
        removed.push(blob.digest);
    }
    Ok(removed)
}

/// Copies one blob from `from` to `to`, checking that it arrives under its name.
fn copy_blob(from: &dyn BlobStore, to: &dyn BlobStore, digest: &str) -> Result<(), BlobError> {
    if to.stat(digest)?.is_some() {
        return Ok(());
    }
    let mut reader = from.open(digest)?;
    let mut writer = to.writer()?;
    io::copy(&mut reader, &mut writer).map_err(|source| BlobError::Io {
        path: format!("upload of blob {digest}").into(),
        source,
    })?;
    let info = writer.finish()?;
    if info.digest != digest {
        // The local copy changed under us; the remote now holds some other, valid, blob.
        let _ = to.delete(&info.digest);
        return Err(BlobError::DigestMismatch {
            digest: digest.to_string(),
            actual: info.digest,
        });
    }
    Ok(())
}

/// Writes to the remote and, while it works, to the local tier.
struct ThroughWriter<L, R> {
    remote: Box<dyn BlobWriter>,
    local: Option<Box<dyn BlobWriter>>,
    tiered: Tiered<L, R>,
}

impl<L: Send, R: Send> Write for ThroughWriter<L, R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.remote.write(buf)?;
        if let Some(local) = self.local.as_mut() {
            let accepted = buf.get(..n).unwrap_or(buf);
            if local.write_all(accepted).is_err() {
                self.local = None;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.remote.flush()
    }
}

impl<L: LocalTier, R: BlobStore + Clone + 'static> BlobWriter for ThroughWriter<L, R> {
    fn finish(self: Box<Self>) -> Result<BlobInfo, BlobError> {
        let ThroughWriter {
            remote,
            local,
            tiered,
        } = *self;
        // Remote first: a local copy of a blob the remote does not have would be served alone.
        let info = remote.finish()?;
        if let Some(local) = local
            && local.finish().is_ok()
        {
            tiered.after_insert();
        }
        Ok(info)
    }
}

/// Writes to the local tier; the remote gets the blob in the background once it is durable.
struct BackgroundWriter<L, R> {
    local: Box<dyn BlobWriter>,
    tiered: Tiered<L, R>,
}

impl<L: Send, R: Send> Write for BackgroundWriter<L, R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.local.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.local.flush()
    }
}

impl<L: LocalTier, R: BlobStore + Clone + 'static> BlobWriter for BackgroundWriter<L, R> {
    fn finish(self: Box<Self>) -> Result<BlobInfo, BlobError> {
        let BackgroundWriter { local, tiered } = *self;
        let info = local.finish()?;
        // Pinned (uploading) before the trim, so the bound cannot remove it first.
        tiered.upload_in_background(&info.digest);
        tiered.after_insert();
        Ok(info)
    }
}

/// Serves a remote's bytes and copies them into a local tier under `digest`; the copy becomes
/// visible only if the whole blob was read and hashes to its name, so a failed or short read
/// leaves nothing. `then` runs after a copy was kept (to trim the tier).
pub struct FillingReader<R> {
    source: R,
    copy: Option<Box<dyn BlobWriter>>,
    local: Box<dyn BlobStore>,
    digest: String,
    then: Option<Box<dyn FnOnce() + Send>>,
}

impl<R: Read> FillingReader<R> {
    /// Reads `source`, copying into `local` (when a writer could be started there).
    pub fn new(
        source: R,
        local: Box<dyn BlobStore>,
        digest: &str,
        then: Option<Box<dyn FnOnce() + Send>>,
    ) -> Self {
        Self {
            source,
            copy: local.writer().ok(),
            local,
            digest: digest.to_string(),
            then,
        }
    }
}

impl<R: Read> Read for FillingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(copy) = self.copy.take()
                && let Ok(info) = copy.finish()
            {
                if info.digest == self.digest {
                    if let Some(then) = self.then.take() {
                        then();
                    }
                } else {
                    let _ = self.local.delete(&info.digest);
                }
            }
            return Ok(0);
        }
        if let (Some(copy), Some(read)) = (self.copy.as_mut(), buf.get(..n))
            && copy.write_all(read).is_err()
        {
            self.copy = None;
        }
        Ok(n)
    }
}

impl<L, R> BlobStore for Tiered<L, R>
where
    L: LocalTier,
    R: BlobStore + Clone + 'static,
{
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        let local = self.local.writer().ok();
        match (self.writes, local) {
            (RemoteWrites::Background, Some(local)) => Ok(Box::new(BackgroundWriter {
                local,
                tiered: self.clone(),
            })),
            // Without a local copy to upload from, the remote is written directly.
            (_, local) => Ok(Box::new(ThroughWriter {
                remote: self.remote.writer()?,
                local,
                tiered: self.clone(),
            })),
        }
    }

    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, BlobError> {
        match self.local.open(digest) {
            Ok(reader) => {
                bump(&self.counters.local_hits);
                let _ = self.local.touch(digest);
                return Ok(reader);
            }
            Err(err @ BlobError::InvalidDigest { .. }) => return Err(err),
            // Missing or unreadable locally: the remote decides.
            Err(_) => bump(&self.counters.local_misses),
        }
        match self.remote.open(digest) {
            Ok(remote) => {
                bump(&self.counters.remote_hits);
                let tiered = self.clone();
                Ok(Box::new(FillingReader::new(
                    remote,
                    Box::new(self.local.clone()),
                    digest,
                    Some(Box::new(move || tiered.after_insert())),
                )))
            }
            Err(err) => {
                if matches!(err, BlobError::NotFound { .. }) {
                    bump(&self.counters.remote_misses);
                }
                Err(err)
            }
        }
    }

    fn open_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, BlobError> {
        // A part is never copied into the local tier (it could not be checked); the local copy,
        // when there is one, serves it.
        match self.local.open_range(digest, start, len) {
            Ok(reader) => Ok(reader),
            Err(err @ BlobError::InvalidDigest { .. }) => Err(err),
            Err(_) => self.remote.open_range(digest, start, len),
        }
    }

    /// The remote's answer, except for a blob still uploading: its local copy stands in, so a
    /// save can commit to it.
    fn stat(&self, digest: &str) -> Result<Option<BlobStat>, BlobError> {
        if self.is_uploading(digest)
            && let Some(stat) = self.local.stat(digest)?
        {
            return Ok(Some(stat));
        }
        self.remote.stat(digest)
    }

    fn delete(&self, digest: &str) -> Result<(), BlobError> {
        // An upload still running would bring the blob back after the delete.
        let upload = self.shared.uploads().remove(digest);
        if let Some(upload) = upload {
            let _ = upload.join();
        }
        self.remote.delete(digest)?;
        self.local.delete(digest)
    }

    /// The remote's listing plus the blobs still uploading (not orphans: their rows may be
    /// committed already).
    fn list(&self) -> Result<Vec<ListedBlob>, BlobError> {
        let mut out = self.remote.list()?;
        let pending: Vec<String> = self.shared.uploads().keys().cloned().collect();
        for digest in pending {
            if out.iter().any(|b| b.digest == digest) {
                continue;
            }
            if let Some(stat) = self.local.stat(&digest)? {
                out.push(ListedBlob {
                    digest,
                    size: stat.size,
                    modified_at: stat.modified_at,
                });
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    fn remove_stale_temp(&self, older_than: EpochMillis) -> Result<usize, BlobError> {
        Ok(
            self.remote.remove_stale_temp(older_than)?
                + self.local.remove_stale_temp(older_than)?,
        )
    }

    /// Joins every background upload; the error lists the blobs the remote did not get (their
    /// local copies are removed, so nothing serves a blob the remote lacks).
    fn flush(&self) -> Result<(), BlobError> {
        let uploads: Vec<(String, Upload)> = self.shared.uploads().drain().collect();
        let mut failed = Vec::new();
        let mut first = None;
        for (digest, handle) in uploads {
            let result = handle.join().unwrap_or_else(|_| {
                Err(BlobError::Io {
                    path: format!("upload of blob {digest}").into(),
                    source: io::Error::other("the upload thread panicked"),
                })
            });
            if let Err(err) = result {
                let _ = self.local.delete(&digest);
                first.get_or_insert(err);
                failed.push(digest);
            }
        }
        self.local.flush()?;
        self.remote.flush()?;
        match first {
            None => Ok(()),
            Some(first) => {
                failed.sort();
                Err(BlobError::UploadsFailed {
                    digests: failed,
                    source: Box::new(first),
                })
            }
        }
    }

    /// The remote's URL, once the remote has the blob.
    fn presigned_get(
        &self,
        digest: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        if self.is_uploading(digest) {
            return Ok(None);
        }
        self.remote.presigned_get(digest, expires_in)
    }

    fn tier_stats(&self) -> Option<TierStats> {
        Some(self.stats())
    }

    fn adopt_file(&self, _path: &std::path::Path) -> Result<Option<BlobInfo>, BlobError> {
        // A new blob must reach the remote tier too, which a writer arranges; the caller copies.
        Ok(None)
    }
}

impl<L, R> Drop for Tiered<L, R> {
    fn drop(&mut self) {
        // The last handle joins what is still uploading: a process that forgot to flush must
        // not exit with an upload cut half-way (S3 would discard it, the row would dangle).
        if Arc::strong_count(&self.shared) == 1 {
            let uploads: Vec<Upload> = self
                .shared
                .uploads()
                .drain()
                .map(|(_, handle)| handle)
                .collect();
            for handle in uploads {
                let _ = handle.join();
            }
        }
    }
}
