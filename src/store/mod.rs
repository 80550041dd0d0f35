//! The cache store: a database index of entries ([`index`]) over content-addressed archive blobs
//! ([`blob`]). Knows nothing of actions/cache semantics; `cache/` decides what to look up.
//!
//! CONTRACT (other modules code against these names; extend, don't rename): see [`index::Index`]
//! and [`blob::BlobStore`]; [`Store`] bundles both, opened from a cache directory.
//!
//! On disk (`default_cache_dir()`): `index.sqlite` (unless `RUNNER_CACHE_DB` names another
//! index, e.g. PostgreSQL) and `blobs-v1/ab/abcdef…` with `blobs-v1/tmp/` for writes in
//! progress. A save is: `index().reserve` → `blobs().writer()` + write → [`Store::commit_blob`]
//! (blob durable, then row committed) or `index().abort` on failure.

pub mod blob;
pub mod index;
pub mod owner;

use std::path::PathBuf;
/// The default store directory: `$RUNNER_CACHE_DIR`, else `$XDG_CACHE_HOME/runner`, else
/// `~/.cache/runner`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("RUNNER_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
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
use blob::{BlobError, BlobInfo, BlobStore, BlobWriter, LocalBlobStore};
use index::{Entry, EntryState, EvictionPolicy, Index, IndexError};

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
    #[error("no cache directory: set RUNNER_CACHE_DIR")]
    NoCacheDir,
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

/// The index URL: `$RUNNER_CACHE_DB` if set, else `sqlite://<cache_dir>/index.sqlite`.
pub fn database_url(cache_dir: &Path) -> String {
    match std::env::var("RUNNER_CACHE_DB") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => sqlite_url(&cache_dir.join(INDEX_FILE)),
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
}

/// The cache store: the index plus the blobs it points at.
#[derive(Debug)]
pub struct Store {
    index: Index,
    blobs: Arc<dyn BlobStore>,
    blob_grace_ms: i64,
    local_dir: Option<PathBuf>,
}

impl Store {
    /// Bundles an index and a blob store.
    pub fn new(index: Index, blobs: Arc<dyn BlobStore>) -> Self {
        Self {
            index,
            blobs,
            blob_grace_ms: DEFAULT_BLOB_GRACE_MS,
            local_dir: None,
        }
    }

    /// Records the directory on this machine that holds the store's files, so saves never
    /// archive it and restores never write into it.
    pub fn with_local_dir(mut self, dir: &Path) -> Self {
        self.local_dir = Some(std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
        self
    }

    /// The files and directories of this store on this machine: its directory and a SQLite
    /// index (with its `-wal` and `-shm` companions) wherever that lives.
    pub fn local_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.local_dir.iter().cloned().collect();
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
        let blobs = LocalBlobStore::new(dir)?;
        let url = db_url.map_or_else(|| sqlite_url(&dir.join(INDEX_FILE)), str::to_string);
        let index = Index::open(&url, clock)?;
        Ok(Self::new(index, Arc::new(blobs)).with_local_dir(dir))
    }

    /// Opens the store in [`default_cache_dir`], with the index from `RUNNER_CACHE_DB` if set.
    pub fn open_default(clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let dir = default_cache_dir().ok_or(StoreError::NoCacheDir)?;
        let url = database_url(&dir);
        Self::open(&dir, Some(&url), clock)
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
        Ok(self.index.commit(id, &info)?)
    }

    /// Opens a committed entry's bytes; the reader fails at the end if they were altered.
    pub fn open_entry(&self, entry: &Entry) -> Result<Box<dyn Read + Send>, StoreError> {
        let digest = entry
            .blob_digest
            .as_deref()
            .ok_or_else(|| StoreError::NoBlob {
                id: entry.id.clone(),
            })?;
        Ok(self.blobs.open(digest)?)
    }

    /// Deletes an entry and its blob unless another entry shares it.
    pub fn delete(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        let Some(entry) = self.index.delete(id)? else {
            return Ok(None);
        };
        self.release_blobs(std::slice::from_ref(&entry), 0)?;
        Ok(Some(entry))
    }

    /// Applies the eviction policy to the index and removes the blobs nothing references any
    /// more (sparing blobs written within the grace period: a saver of identical bytes may be
    /// about to commit; `verify` removes them later).
    pub fn evict(&self, policy: &EvictionPolicy) -> Result<Vec<Entry>, StoreError> {
        let removed = self.index.evict(policy)?;
        if !policy.dry_run {
            self.release_blobs(&removed, self.blob_grace_ms)?;
        }
        Ok(removed)
    }

    fn release_blobs(&self, removed: &[Entry], grace_ms: i64) -> Result<(), StoreError> {
        let cutoff = SystemClock.now_millis().saturating_sub(grace_ms);
        let digests: BTreeSet<&str> = removed
            .iter()
            .filter_map(|e| e.blob_digest.as_deref())
            .collect();
        for digest in digests {
            if self.index.is_referenced(digest)? {
                continue;
            }
            if grace_ms > 0 && self.blobs.modified_at(digest)?.is_some_and(|t| t >= cutoff) {
                continue;
            }
            self.blobs.delete(digest)?;
        }
        Ok(())
    }

    /// Removes blobs no row references and rows whose blob is gone (and, with `rehash`, blobs
    /// whose bytes are corrupt, with their rows). Blob ages are file times, so they are compared
    /// with the real clock, not the injected one.
    pub fn verify(&self, options: &VerifyOptions) -> Result<VerifyReport, StoreError> {
        let now: EpochMillis = SystemClock.now_millis();
        let cutoff = now.saturating_sub(self.blob_grace_ms);
        let mut report = VerifyReport::default();
        // Blobs first, references second: a blob committed in between looks referenced, and one
        // finished in between is not listed; only the grace period protects the rest.
        let blobs = self.blobs.list()?;
        report.blobs_checked = blobs.len();
        let referenced = self.index.referenced_digests()?;
        let mut present: BTreeSet<String> = BTreeSet::new();
        for blob in blobs {
            if !referenced.contains(&blob.digest) {
                let old = self
                    .blobs
                    .modified_at(&blob.digest)?
                    .is_some_and(|t| t < cutoff);
                if old || self.blob_grace_ms <= 0 {
                    if !options.dry_run {
                        self.blobs.delete(&blob.digest)?;
                    }
                    report.orphan_blobs.push(blob);
                }
                continue;
            }
            if options.rehash && !self.rehash_ok(&blob.digest)? {
                report.corrupt_blobs.push(blob.digest.clone());
                if !options.dry_run {
                    self.blobs.delete(&blob.digest)?;
                }
                continue;
            }
            present.insert(blob.digest);
        }
        for digest in referenced.difference(&present) {
            for entry in self.index.find_by_digest(digest)? {
                if entry.state != EntryState::Committed {
                    continue;
                }
                if !options.dry_run {
                    self.index.delete(&entry.id)?;
                }
                report.rows_without_blob.push(entry);
            }
        }
        if !options.dry_run {
            report.temp_files_removed = self.blobs.remove_stale_temp(cutoff)?;
        }
        Ok(report)
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
