//! The cache store: a database index of entries ([`index`]) over content-addressed archive blobs
//! ([`blob`]). Knows nothing of actions/cache semantics; `cache/` decides what to look up.
//!
//! CONTRACT (other modules code against these names; extend, don't rename): see [`index::Index`]
//! and [`blob::BlobStore`]; [`Store`] bundles both, opened from a cache directory.
//!
//! On disk ([`StoreLocation`]): `index.sqlite` (unless `database_url` names another index,
//! e.g. PostgreSQL) and `blobs-v1/ab/abcdef…` with `blobs-v1/tmp/` for writes in
//! progress; with local blobs, `frames-v1/` says where each archive's zstd frames lie, so a save
//! copies frames it would compress again ([`frames`]). A save is: `index().reserve` → `blobs().writer()` + write → [`Store::commit_blob`]
//! (blob durable, then row committed) or `index().abort` on failure. Reservations and temporary
//! files carry their [`owner`], so a killed save's leftovers are reclaimed at once.
//! [`Store::read_only`] says when the store could only be opened for restoring.

pub mod blob;
pub mod frames;
pub mod index;
pub mod owner;

use std::path::PathBuf;
/// The default store directory: `$XDG_CACHE_HOME/runner`, else `~/.cache/runner`. The CLI
/// reads `RUNNER_CACHE_DIR` itself (its `--cache-dir`) and passes the directory down.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("runner"));
    }
    std::env::home_dir().map(|h| h.join(".cache").join("runner"))
}

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::clock::{Clock, EpochMillis, SystemClock};
use blob::{BlobError, BlobInfo, BlobStore, BlobWriter, LocalBlobStore, Verified};
use index::{Entry, EvictionPolicy, Index, IndexError, MaintenanceLease};

/// A maintenance lease while it is held, logged when taken and when given back (on a shared
/// index), so who maintained when can be read from the nodes' logs.
struct HeldLease {
    _lease: MaintenanceLease,
    task: &'static str,
    shared: bool,
}

impl HeldLease {
    fn new(lease: MaintenanceLease, task: &'static str) -> Self {
        let shared = lease.is_shared();
        if shared {
            log_lease(task, "taken");
        }
        Self {
            _lease: lease,
            task,
            shared,
        }
    }
}

impl Drop for HeldLease {
    fn drop(&mut self) {
        // Logged before the lock goes (the field drops after this), so no other node's "taken"
        // can come before this "released" in wall-clock order.
        if self.shared {
            log_lease(self.task, "released");
        }
    }
}

/// One lease log line: the holder's pid and the wall clock in nanoseconds (one host's nodes
/// share that clock, so their lines interleave in the order the events happened).
fn log_lease(task: &'static str, what: &'static str) {
    #[cfg(feature = "server")]
    {
        let at_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        tracing::info!(
            target: "runner::maintenance",
            task,
            holder = std::process::id(),
            at_ns = %at_ns,
            "maintenance lease {what}"
        );
    }
    #[cfg(not(feature = "server"))]
    let _ = (task, what);
}

/// File name of the SQLite index inside the cache directory.
pub const INDEX_FILE: &str = "index.sqlite";

/// How long a freshly written blob is protected from removal by default: its row may not be
/// committed yet (10 minutes).
pub const DEFAULT_BLOB_GRACE_MS: i64 = 10 * 60 * 1000;

/// Errors from the store as a whole.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// From the index.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// From the blob store.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// No cache directory: none of `RUNNER_CACHE_DIR`, `XDG_CACHE_HOME`, `HOME` is set.
    #[error("no cache directory: set RUNNER_CACHE_DIR or --cache-dir")]
    NoCacheDir,
    /// A cleanup removed the blob of an identical archive just as this save committed to it;
    /// the entry is withdrawn rather than left without bytes.
    #[error("cache entry {id} not saved: its blob {digest} was removed by a concurrent cleanup")]
    BlobRemoved {
        /// The withdrawn entry.
        id: String,
        /// The blob's digest.
        digest: String,
    },
    /// A committed entry has no blob digest (a corrupt row).
    #[error("cache entry {id} has no blob")]
    NoBlob {
        /// The entry id.
        id: String,
    },
}

/// The `sqlite://` URL of a SQLite index file.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Where a store lives: its directory, and the index and blob store when they are elsewhere.
/// Settings are values here; the CLI fills them from `RUNNER_CACHE_DIR`, `RUNNER_CACHE_DB` and
/// `RUNNER_CACHE_BLOBS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    /// The store directory (SQLite index, local blobs, staging).
    pub dir: PathBuf,
    /// The index URL (`postgres://…`, `sqlite://…`); `None` is `sqlite://<dir>/index.sqlite`.
    pub database_url: Option<String>,
    /// The blob store URL (`s3://bucket/prefix`, `file:///dir`); `None` is `<dir>/blobs-v1`.
    pub blobs_url: Option<String>,
    /// The local tier in front of remote blobs (`RUNNER_CACHE_TIER*`); `None` for none.
    pub tier: Option<blob::TierConfig>,
}

impl StoreLocation {
    /// The store in `dir`, index and blobs included.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            database_url: None,
            blobs_url: None,
            tier: None,
        }
    }

    /// The store in [`default_cache_dir`], index and blobs included.
    pub fn default_dir() -> Result<Self, StoreError> {
        default_cache_dir()
            .map(Self::in_dir)
            .ok_or(StoreError::NoCacheDir)
    }
}

/// What [`Store::verify`] should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Re-read every blob and check its digest (slow: reads everything).
    pub rehash: bool,
    /// Report only; remove nothing.
    pub dry_run: bool,
}

/// What [`Store::verify`] found (and, unless dry run, removed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blobs looked at.
    pub blobs_checked: usize,
    /// Blobs whose bytes do not match their name (removed with their rows).
    pub corrupt_blobs: Vec<String>,
    /// Blobs no row references, older than the grace period (removed).
    pub orphan_blobs: Vec<BlobInfo>,
    /// Committed entries whose blob is missing or corrupt (removed).
    pub rows_without_blob: Vec<Entry>,
    /// Leftover temporary files of interrupted writes (removed).
    pub temp_files_removed: usize,
    /// Reservations nobody will commit: their owner died, or they are past the TTL (removed).
    pub abandoned_reservations: Vec<Entry>,
}

/// The digest of a committed entry's blob.
fn blob_of(entry: &Entry) -> Result<&str, StoreError> {
    entry
        .blob_digest
        .as_deref()
        .ok_or_else(|| StoreError::NoBlob {
            id: entry.id.clone(),
        })
}

/// The cache store: the index plus the blobs it points at.
#[derive(Debug)]
pub struct Store {
    index: Index,
    blobs: Arc<dyn BlobStore>,
    blob_grace_ms: i64,
    /// The store directory, when opened from one (for messages, and so saves never archive
    /// it nor restores write into it).
    dir: Option<PathBuf>,
    /// Why the blob directory could not be opened for writing.
    blobs_read_only: Option<String>,
    /// Where the frames of local blobs lie, for saves to reuse (local blob stores only: over
    /// the network, compressing a chunk again is cheaper than fetching its frame).
    frames: Option<frames::FrameMap>,
}

impl Store {
    /// Bundles an index and a blob store.
    pub fn new(index: Index, blobs: Arc<dyn BlobStore>) -> Self {
        Self {
            index,
            blobs,
            blob_grace_ms: DEFAULT_BLOB_GRACE_MS,
            dir: None,
            blobs_read_only: None,
            frames: None,
        }
    }

    /// Records the directory on this machine that holds the store's files, so saves never
    /// archive it and restores never write into it.
    pub fn with_local_dir(mut self, dir: &Path) -> Self {
        self.dir = Some(std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
        self
    }

    /// The files and directories of this store on this machine: its directory and a SQLite
    /// index (with its `-wal` and `-shm` companions) wherever that lives.
    pub fn local_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.dir.iter().cloned().collect();
        if let Some(file) = self.index.url().strip_prefix("sqlite://") {
            let file = std::path::absolute(file).unwrap_or_else(|_| PathBuf::from(file));
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut name = file.clone().into_os_string();
                name.push(suffix);
                let path = PathBuf::from(name);
                if !paths.iter().any(|p| path.starts_with(p)) {
                    paths.push(path);
                }
            }
        }
        paths
    }

    /// Opens the store in `dir`: blobs in `dir/blobs-v1/`, the index at `db_url` or, if `None`,
    /// `sqlite://dir/index.sqlite`.
    pub fn open(
        dir: &Path,
        db_url: Option<&str>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        Self::open_with_blobs(dir, db_url, None, clock)
    }

    /// [`Store::open`] with the blobs at `blobs_url` ([`blob::open_url`]: `s3://bucket/prefix`,
    /// `file:///dir`) instead of `dir/blobs-v1/` when it is `Some`. Every read is verified.
    pub fn open_with_blobs(
        dir: &Path,
        db_url: Option<&str>,
        blobs_url: Option<&str>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        Self::open_tiered(dir, db_url, blobs_url, None, clock)
    }

    /// [`Store::open_with_blobs`] with `tier` in front of a remote blob store.
    pub fn open_tiered(
        dir: &Path,
        db_url: Option<&str>,
        blobs_url: Option<&str>,
        tier: Option<&blob::TierConfig>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let (blobs, blobs_read_only, local): (Arc<dyn BlobStore>, _, _) = match blobs_url {
            Some(url) => {
                let (blobs, read_only) = blob::open_url_tiered(url, tier)?;
                (blobs, read_only, false)
            }
            None => {
                let local = LocalBlobStore::new(dir)?;
                let read_only = local.read_only().map(str::to_string);
                (
                    Arc::new(Verified::new(local)) as Arc<dyn BlobStore>,
                    read_only,
                    true,
                )
            }
        };
        let frames =
            (local && blobs_read_only.is_none()).then(|| frames::FrameMap::new(dir, blobs.clone()));
        let url = db_url.map_or_else(|| sqlite_url(&dir.join(INDEX_FILE)), str::to_string);
        let index = Index::open(&url, clock)?;
        Ok(Self {
            blobs_read_only,
            frames,
            ..Self::new(index, blobs).with_local_dir(dir)
        })
    }

    /// `Some(warning)` when the store could not be opened for writing (a read-only mount, a full
    /// disk): restores of intact entries work, saves fail. The warning names the store and why;
    /// show it once.
    pub fn read_only(&self) -> Option<String> {
        let why = self.index.read_only().or(self.blobs_read_only.as_deref())?;
        let place = match &self.dir {
            Some(dir) => dir.display().to_string(),
            None => self.index.url().to_string(),
        };
        Some(format!(
            "cache store {place} is read-only, so caches are restored but not saved: {why}"
        ))
    }

    /// Opens the store at `location`.
    pub fn open_at(location: &StoreLocation, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        Self::open_tiered(
            &location.dir,
            location.database_url.as_deref(),
            location.blobs_url.as_deref(),
            location.tier.as_ref(),
            clock,
        )
    }

    /// Opens the store in [`default_cache_dir`], index and blobs included.
    pub fn open_default(clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        Self::open_at(&StoreLocation::default_dir()?, clock)
    }

    /// Waits for blob writes still under way (a local tier's background uploads). Entries
    /// committed to a blob the remote did not get are withdrawn before the error is returned.
    pub fn flush(&self) -> Result<(), StoreError> {
        match self.blobs.flush() {
            Err(BlobError::UploadsFailed { digests, source }) => {
                for digest in &digests {
                    for entry in self.index.find_by_digest(digest)? {
                        self.index.delete(&entry.id)?;
                    }
                }
                Err(BlobError::UploadsFailed { digests, source }.into())
            }
            other => Ok(other?),
        }
    }

    /// Where the frames of local blobs lie, when this store keeps that (local blobs, writable).
    pub fn frames(&self) -> Option<&frames::FrameMap> {
        self.frames.as_ref()
    }

    /// The index.
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// Sets how long freshly written blobs are spared by eviction and orphan removal.
    pub fn set_blob_grace(&mut self, grace_ms: i64) {
        self.blob_grace_ms = grace_ms;
    }

    /// Finishes a blob (durable under its digest) and only then commits reservation `id` to it:
    /// the order that keeps a crash from exposing an entry without bytes.
    pub fn commit_blob(&self, id: &str, writer: Box<dyn BlobWriter>) -> Result<Entry, StoreError> {
        let info = writer.finish()?;
        let entry = self.index.commit(id, &info)?;
        // A cleanup that found the same digest unreferenced a moment ago may have deleted the
        // blob this row now points at; better a failed save than an entry without bytes.
        if !self.blobs.contains(&info.digest)? {
            self.index.delete(id)?;
            return Err(StoreError::BlobRemoved {
                id: id.to_string(),
                digest: info.digest,
            });
        }
        Ok(entry)
    }

    /// Opens a committed entry's bytes; the reader fails at the end if they were altered.
    pub fn open_entry(&self, entry: &Entry) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(self.blobs.open(blob_of(entry)?)?)
    }

    /// Opens `len` bytes of an entry's archive from `start` (a ranged download), unchecked: a
    /// part of a blob cannot be verified against its digest.
    pub fn open_entry_range(
        &self,
        entry: &Entry,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, StoreError> {
        Ok(self.blobs.open_range(blob_of(entry)?, start, len)?)
    }

    /// Deletes an entry and its blob unless another entry shares it.
    pub fn delete(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        let deleted = self.index.delete(id)?;
        self.release_deleted(deleted)
    }

    /// Deletes a committed entry on `by`'s request (audited, recorded as a `manual` eviction)
    /// and its blob unless another entry shares it.
    pub fn delete_audited(
        &self,
        id: &str,
        by: &index::Deletion,
    ) -> Result<Option<Entry>, StoreError> {
        let deleted = self.index.delete_audited(id, by)?;
        self.release_deleted(deleted)
    }

    fn release_deleted(&self, deleted: Option<Entry>) -> Result<Option<Entry>, StoreError> {
        if let Some(entry) = &deleted {
            self.release_blobs(std::slice::from_ref(entry), 0)?;
        }
        Ok(deleted)
    }

    /// Applies the eviction policy to the index and removes the blobs nothing references any
    /// more (sparing blobs written within the grace period: a saver of identical bytes may be
    /// about to commit; `verify` removes them later), and the temporary files of dead writers.
    /// Does nothing while another process holds the maintenance lease.
    pub fn evict(&self, policy: &EvictionPolicy) -> Result<Vec<Entry>, StoreError> {
        // Another node is pruning right now; once is enough.
        let Some(lease) = self.index.maintenance_lease(false)? else {
            return Ok(Vec::new());
        };
        let _held = HeldLease::new(lease, "prune");
        let removed = self.index.evict(policy)?;
        if !policy.dry_run {
            self.release_blobs(&removed, self.blob_grace_ms)?;
            // The temporary files of killed saves go with their reservations.
            let cutoff = SystemClock.now_millis().saturating_sub(self.blob_grace_ms);
            self.blobs.remove_stale_temp(cutoff)?;
        }
        Ok(removed)
    }

    fn release_blobs(&self, removed: &[Entry], grace_ms: i64) -> Result<(), StoreError> {
        let cutoff = SystemClock.now_millis().saturating_sub(grace_ms);
        let digests: BTreeSet<&str> = removed
            .iter()
            .filter_map(|e| e.blob_digest.as_deref())
            .collect();
        let mut deleted = BTreeSet::new();
        for digest in digests {
            if self.index.is_referenced(digest)? {
                continue;
            }
            // An unknown age may be a blob written a moment ago for a row about to be committed.
            if grace_ms > 0 && self.blobs.modified_at(digest)?.is_none_or(|t| t >= cutoff) {
                continue;
            }
            self.blobs.delete(digest)?;
            deleted.insert(digest);
        }
        // Only when blobs went: a save's eviction usually deletes none, and the walk is over
        // every record.
        if !deleted.is_empty() {
            self.forget_frames(&|digest| !deleted.contains(digest))?;
        }
        Ok(())
    }

    /// Drops the frame records of blobs `live` says are gone (they can never be used).
    fn forget_frames(&self, live: &dyn Fn(&str) -> bool) -> Result<(), StoreError> {
        if let Some(frames) = &self.frames {
            frames.prune(live)?;
        }
        Ok(())
    }

    /// Removes blobs no row references and rows whose blob is gone (and, with `rehash`, blobs
    /// whose bytes are corrupt, with their rows). Blob ages are file times, so they are compared
    /// with the real clock, not the injected one.
    ///
    /// Saves go on meanwhile, so every decision is made from a view that a concurrent save
    /// cannot fool: a row is judged only if it was committed before the blobs were listed (its
    /// blob was durable before its commit, so it must be in the listing), and a blob only if no
    /// row referenced it after the listing and it is older than the grace period (a save may
    /// have finished it and not committed yet); each is checked once more right before it goes.
    /// It waits for the maintenance lease, so verify and prune never run on two nodes at once.
    pub fn verify(&self, options: &VerifyOptions) -> Result<VerifyReport, StoreError> {
        let _held = self
            .index
            .maintenance_lease(true)?
            .map(|lease| HeldLease::new(lease, "verify"));
        let now: EpochMillis = SystemClock.now_millis();
        let cutoff = now.saturating_sub(self.blob_grace_ms);
        let mut report = VerifyReport::default();
        let committed_before = self.index.list(&index::ListFilter::default())?;
        let blobs = self.blobs.list()?;
        report.blobs_checked = blobs.len();
        let referenced = self.index.referenced_digests()?;
        let mut present: BTreeSet<String> = BTreeSet::new();
        let mut corrupt: BTreeSet<String> = BTreeSet::new();
        for blob in blobs {
            if !referenced.contains(&blob.digest) {
                let old = blob.modified_at.is_some_and(|t| t < cutoff);
                if old || self.blob_grace_ms <= 0 {
                    if !options.dry_run && !self.remove_unreferenced(&blob.digest)? {
                        continue;
                    }
                    report.orphan_blobs.push(blob.into());
                }
                continue;
            }
            if options.rehash {
                let written = blob.modified_at;
                if !self.rehash_ok(&blob.digest)? {
                    // A save of the same bytes may have replaced it while it was read.
                    if self.blobs.modified_at(&blob.digest)? != written {
                        present.insert(blob.digest);
                        continue;
                    }
                    report.corrupt_blobs.push(blob.digest.clone());
                    if !options.dry_run {
                        self.blobs.delete(&blob.digest)?;
                    }
                    corrupt.insert(blob.digest);
                    continue;
                }
            }
            present.insert(blob.digest);
        }
        for entry in committed_before {
            let missing = match entry.blob_digest.as_deref() {
                None => true,
                Some(digest) if present.contains(digest) => false,
                // Missing from the listing; unless found corrupt, make sure it still is.
                Some(digest) => corrupt.contains(digest) || !self.blobs.contains(digest)?,
            };
            if !missing {
                continue;
            }
            if !options.dry_run {
                self.index.delete(&entry.id)?;
            }
            report.rows_without_blob.push(entry);
        }
        for reservation in self.index.abandoned_reservations()? {
            // `abort` removes only a row still reserved under this id.
            if options.dry_run || self.index.abort(&reservation.id)? {
                report.abandoned_reservations.push(reservation);
            }
        }
        if !options.dry_run {
            report.temp_files_removed = self.blobs.remove_stale_temp(cutoff)?;
            // An unreadable store keeps its records.
            self.forget_frames(&|digest| self.blobs.contains(digest).unwrap_or(true))?;
        }
        Ok(report)
    }

    /// Deletes a blob that looked unreferenced, unless a row has pointed at it since; returns
    /// whether it was deleted.
    fn remove_unreferenced(&self, digest: &str) -> Result<bool, StoreError> {
        if self.index.is_referenced(digest)? {
            return Ok(false);
        }
        self.blobs.delete(digest)?;
        Ok(true)
    }

    /// Runs `task` under the maintenance lease if no other process holds it (on a shared
    /// index, one node at a time); `None` when another holds it.
    pub fn with_lease<T>(
        &self,
        name: &'static str,
        task: impl FnOnce() -> T,
    ) -> Result<Option<T>, StoreError> {
        let Some(lease) = self.index.maintenance_lease(false)? else {
            return Ok(None);
        };
        let _held = HeldLease::new(lease, name);
        Ok(Some(task()))
    }

    /// Orphan removal only: [`Store::verify`] without re-hashing.
    pub fn gc_orphans(&self, dry_run: bool) -> Result<VerifyReport, StoreError> {
        self.verify(&VerifyOptions {
            rehash: false,
            dry_run,
        })
    }

    fn rehash_ok(&self, digest: &str) -> Result<bool, StoreError> {
        let mut reader = match self.blobs.open(digest) {
            Ok(reader) => reader,
            Err(BlobError::NotFound { .. }) => return Ok(false),
            Err(err) => return Err(err.into()),
        };
        match std::io::copy(&mut reader, &mut std::io::sink()) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == std::io::ErrorKind::InvalidData => Ok(false),
            Err(source) => Err(StoreError::Blob(BlobError::Io {
                path: std::path::PathBuf::from(digest),
                source,
            })),
        }
    }
}
