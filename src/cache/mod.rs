//! actions/cache semantics: key validation, version, restore order, outputs, state, post-step
//! save, scopes, eviction policy and metrics events. Speaks neither SQL nor tar directly: the
//! index is a [`CacheIndex`], archives go through `crate::archive`, files through `crate::glob`.
//!
//! CONTRACT (the CLI and the step runner use these names):
//! - [`Cache::restore`] / [`Cache::save`]: the toolkit's `restoreCache` / `saveCache`, with its
//!   log lines, over our store.
//! - [`register`] puts the `actions/cache`, `actions/cache/restore` and `actions/cache/save`
//!   handlers into an [`ActionRegistry`](crate::exec::ActionRegistry).
//! - [`open_default`] opens the store `RUNNER_CACHE_DB` / `RUNNER_CACHE_DIR` point at.

mod action;
mod backend;
mod config;
pub mod inputs;
mod key;
mod paths;
mod progress;
// mod store_backend; (lands with store::index)
mod version;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use action::{CacheAction, RestoreAction, SaveAction, register};
pub use backend::{
    BackendError, CacheIndex, EntryInfo, Event, EventKind, EvictionPolicy, ListFilter, ListOrder,
    LookupRequest, LookupResult, NewEntryRequest, Reservation, StatsReport,
};
pub use config::{CacheOptions, StoreLocation, open_default, parse_size};
pub use key::{KeyError, MAX_KEY_LENGTH, MAX_KEYS, is_exact_match, validate_key};
pub use paths::{allowed_roots, expand_tilde};
pub use version::cache_version;

use crate::archive::{self, Compression};
use crate::clock::Clock;
use crate::exec::LogLevel;
use crate::store::blob::{BlobError, BlobInfo, BlobStore};
use progress::{Progress, ProgressReader, ProgressWriter};

/// The message when no `path` line is left after trimming.
pub const NO_PATHS_MESSAGE: &str =
    "Path Validation Error: At least one directory or file path is required";
/// The message when the `path` lines match nothing on disk.
pub const NOTHING_TO_SAVE_MESSAGE: &str = "Path Validation Error: Path(s) specified in the action for caching do(es) not exist, hence no cache is being saved.";

/// Errors from the cache. Validation errors fail a restore step; everything else becomes a
/// warning and a miss (restore) or an unsaved cache (save).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A key the cache refuses.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// `path` has no lines.
    #[error("{NO_PATHS_MESSAGE}")]
    NoPaths,
    /// The `path` lines matched nothing.
    #[error("{NOTHING_TO_SAVE_MESSAGE}")]
    NothingToSave,
    /// The index failed.
    #[error("cache index: {source}")]
    Index {
        /// What the index reported.
        source: BackendError,
    },
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Creating or extracting the archive failed.
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    /// Resolving the `path` patterns failed.
    #[error(transparent)]
    Glob(#[from] crate::glob::GlobError),
    /// A setting is invalid (`RUNNER_CACHE_MAX_SIZE=lots`).
    #[error("invalid {name}={value}: {reason}")]
    Config {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
        /// Why it is refused.
        reason: String,
    },
    /// Opening the store failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl CacheError {
    /// Whether this error fails a restore step (the toolkit's `ValidationError`).
    pub fn is_validation(&self) -> bool {
        matches!(self, CacheError::Key(_) | CacheError::NoPaths)
    }
}

fn index_err(source: BackendError) -> CacheError {
    CacheError::Index { source }
}

/// `Cache Size: ~N MB (B B)` with the toolkit's rounding.
pub fn size_line(bytes: u64) -> String {
    let mb = (bytes + 512 * 1024) / (1024 * 1024);
    format!("Cache Size: ~{mb} MB ({bytes} B)")
}

/// Where a step runs and which cache entries it may see.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// `owner/name`.
    pub repository: String,
    /// The current ref; the only scope saves write to.
    pub git_ref: String,
    /// The PR base ref, read after the current ref.
    pub base_ref: Option<String>,
    /// The default branch ref, read last.
    pub default_branch: Option<String>,
}

impl Scope {
    /// Readable scopes in order, without repeats or empty refs.
    pub fn readable(&self) -> Vec<String> {
        let mut scopes: Vec<String> = Vec::new();
        let candidates = [
            Some(&self.git_ref),
            self.base_ref.as_ref(),
            self.default_branch.as_ref(),
        ];
        for scope in candidates.into_iter().flatten() {
            if !scope.is_empty() && !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        scopes
    }
}

/// The file-system side of a restore or save.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// `github.workspace`: relative paths and archive names are relative to it.
    pub workspace: PathBuf,
    /// What `~` expands to.
    pub home: PathBuf,
    /// Whether we run on Windows (adds `windows-only` to the version).
    pub windows: bool,
}

/// A restore, as `restoreCache(paths, primaryKey, restoreKeys, { lookupOnly }, crossOs)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RestoreRequest {
    /// Where and which scopes.
    pub scope: Scope,
    /// Workspace and home.
    pub location: Location,
    /// `path` lines as written.
    pub paths: Vec<String>,
    /// The primary key.
    pub primary_key: String,
    /// The restore keys, in order.
    pub restore_keys: Vec<String>,
    /// `enableCrossOsArchive`.
    pub enable_cross_os_archive: bool,
    /// `lookup-only`: find the entry, download nothing.
    pub lookup_only: bool,
}

/// What a restore found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// An entry was restored (or, with `lookup_only`, found).
    Hit {
        /// The key of the entry, as its saver wrote it.
        matched_key: String,
        /// Whether it is the primary key (case-insensitive), i.e. `cache-hit: true`.
        exact: bool,
        /// Archive size in bytes.
        size: u64,
    },
    /// Nothing usable: no entry, or the entry could not be restored (already warned).
    Miss,
}

/// A save, as `saveCache(paths, key, options, crossOs)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaveRequest {
    /// Where; saves write to `scope.git_ref` only.
    pub scope: Scope,
    /// Workspace and home.
    pub location: Location,
    /// `path` lines as written.
    pub paths: Vec<String>,
    /// The key to save under.
    pub key: String,
    /// `enableCrossOsArchive`.
    pub enable_cross_os_archive: bool,
    /// `github.run_id`, kept with the entry.
    pub run_id: String,
}

/// What a save did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveOutcome {
    /// A new entry was committed.
    Saved {
        /// Its id in the index.
        id: String,
        /// The archive blob.
        blob: BlobInfo,
    },
    /// The entry already exists (or another job is creating it); nothing was written.
    AlreadyExists,
}

/// A sink for user-facing log lines.
pub type Log<'a> = &'a mut dyn FnMut(LogLevel, &str);

/// The native cache: an index, a blob store, a clock and options.
#[derive(Debug, Clone)]
pub struct Cache {
    index: Arc<dyn CacheIndex>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    options: CacheOptions,
}

/// Aborts a reservation unless it was committed, so no error path leaves a stuck row.
struct ReservationGuard<'a> {
    index: &'a dyn CacheIndex,
    id: Option<String>,
}

impl ReservationGuard<'_> {
    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
    fn disarm(&mut self) {
        self.id = None;
    }
}

impl Drop for ReservationGuard<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            // An abort that fails leaves a reservation that expires on its own.
            let _ = self.index.abort(&id);
        }
    }
}

impl Cache {
    /// A cache over these parts.
    pub fn new(
        index: Arc<dyn CacheIndex>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        options: CacheOptions,
    ) -> Self {
        Self {
            index,
            blobs,
            clock,
            options,
        }
    }

    /// The index, for management commands.
    pub fn index(&self) -> &dyn CacheIndex {
        self.index.as_ref()
    }

    /// The blob store, for management commands.
    pub fn blobs(&self) -> &dyn BlobStore {
        self.blobs.as_ref()
    }

    /// The options in effect.
    pub fn options(&self) -> &CacheOptions {
        &self.options
    }

    fn elapsed_ms(&self, start: i64) -> u64 {
        u64::try_from(self.clock.now_millis().saturating_sub(start)).unwrap_or(0)
    }

    /// Records a metrics event; a failure to record never fails a step.
    pub fn record(&self, event: Event, log: Log<'_>) {
        if let Err(err) = self.index.record_event(&event) {
            log(
                LogLevel::Debug,
                &format!("could not record cache event: {err}"),
            );
        }
    }

    fn event(
        &self,
        kind: EventKind,
        scope: &Scope,
        key: &str,
        matched_key: Option<&str>,
        bytes: u64,
        start: i64,
    ) -> Event {
        Event {
            kind,
            repository: scope.repository.clone(),
            scope: scope.git_ref.clone(),
            key: key.to_string(),
            matched_key: matched_key.map(str::to_string),
            bytes,
            duration_ms: self.elapsed_ms(start),
        }
    }

    /// Restores the first matching entry. `Err` only for validation errors (they fail the
    /// step); any other failure is logged as `Failed to restore: ...` and is a miss.
    pub fn restore(
        &self,
        request: &RestoreRequest,
        log: Log<'_>,
    ) -> Result<RestoreOutcome, CacheError> {
        if request.paths.is_empty() {
            return Err(CacheError::NoPaths);
        }
        key::validate_restore_keys(&request.primary_key, &request.restore_keys)?;
        let start = self.clock.now_millis();
        match self.try_restore(request, log) {
            Ok(outcome) => {
                let (kind, matched, bytes) = match &outcome {
                    RestoreOutcome::Hit {
                        matched_key,
                        exact,
                        size,
                    } => {
                        let kind = if *exact {
                            EventKind::HitExact
                        } else {
                            EventKind::HitPartial
                        };
                        let bytes = if request.lookup_only { 0 } else { *size };
                        (kind, Some(matched_key.as_str()), bytes)
                    }
                    RestoreOutcome::Miss => (EventKind::Miss, None, 0),
                };
                let event = self.event(
                    kind,
                    &request.scope,
                    &request.primary_key,
                    matched,
                    bytes,
                    start,
                );
                self.record(event, log);
                Ok(outcome)
            }
            Err(err) => {
                log(LogLevel::Warning, &format!("Failed to restore: {err}"));
                let event = self.event(
                    EventKind::Error,
                    &request.scope,
                    &request.primary_key,
                    None,
                    0,
                    start,
                );
                self.record(event, log);
                Ok(RestoreOutcome::Miss)
            }
        }
    }

    fn try_restore(
        &self,
        request: &RestoreRequest,
        log: Log<'_>,
    ) -> Result<RestoreOutcome, CacheError> {
        let version = cache_version(
            &request.paths,
            self.options.compression,
            request.location.windows,
            request.enable_cross_os_archive,
        );
        let mut keys = vec![request.primary_key.clone()];
        keys.extend(request.restore_keys.iter().cloned());
        let lookup = LookupRequest {
            repository: request.scope.repository.clone(),
            scopes: request.scope.readable(),
            keys,
            version: version.clone(),
        };
        let Some(found) = self.index.lookup(&lookup).map_err(index_err)? else {
            log(
                LogLevel::Debug,
                &format!(
                    "Cache not found for version {version} of keys: {}",
                    lookup.keys.join(", ")
                ),
            );
            return Ok(RestoreOutcome::Miss);
        };
        let entry = found.entry;
        if entry.key == request.primary_key {
            log(LogLevel::Info, &format!("Cache hit for: {}", entry.key));
        } else {
            log(
                LogLevel::Info,
                &format!("Cache hit for restore-key: {}", entry.key),
            );
        }
        let exact = is_exact_match(&request.primary_key, Some(&entry.key));
        if request.lookup_only {
            log(LogLevel::Info, "Lookup only - skipping download");
            return Ok(RestoreOutcome::Hit {
                matched_key: entry.key,
                exact,
                size: entry.size,
            });
        }
        log(LogLevel::Info, &size_line(entry.size));
        let reader = self.blobs.open(&entry.blob_digest)?;
        let allowed = allowed_roots(
            &request.paths,
            &request.location.workspace,
            &request.location.home,
        );
        let mut progress =
            Progress::new("Restoring cache", Some(entry.size), self.options.progress);
        let mut input = ProgressReader {
            inner: reader,
            progress: &mut progress,
        };
        let result = archive::extract(&mut input, &request.location.workspace, &allowed);
        // The blob reader checks the digest at end of stream; make sure it gets there.
        let drained = result.and_then(|stats| {
            std::io::copy(&mut input, &mut std::io::sink())
                .map(|_| stats)
                .map_err(|source| archive::ArchiveError::Io {
                    path: PathBuf::from(&entry.blob_digest),
                    source,
                })
        });
        progress.finish();
        drained?;
        log(LogLevel::Info, "Cache restored successfully");
        Ok(RestoreOutcome::Hit {
            matched_key: entry.key,
            exact,
            size: entry.size,
        })
    }

    /// Saves the files `request.paths` matches under `request.key` in the current ref's scope.
    /// `Ok(AlreadyExists)` when the entry exists (logged as the toolkit does); every `Err` is
    /// for the caller to show as a warning; a save never fails a job.
    pub fn save(&self, request: &SaveRequest, log: Log<'_>) -> Result<SaveOutcome, CacheError> {
        if request.paths.is_empty() {
            return Err(CacheError::NoPaths);
        }
        validate_key(&request.key)?;
        let start = self.clock.now_millis();
        let result = self.try_save(request, log);
        let event = match &result {
            Ok(SaveOutcome::Saved { blob, .. }) => self.event(
                EventKind::Save,
                &request.scope,
                &request.key,
                None,
                blob.size,
                start,
            ),
            Ok(SaveOutcome::AlreadyExists) => self.event(
                EventKind::Skip,
                &request.scope,
                &request.key,
                None,
                0,
                start,
            ),
            Err(CacheError::NothingToSave) => return result,
            Err(_) => self.event(
                EventKind::Error,
                &request.scope,
                &request.key,
                None,
                0,
                start,
            ),
        };
        self.record(event, log);
        if matches!(result, Ok(SaveOutcome::Saved { .. })) {
            self.evict_after_save(log);
        }
        result
    }

    fn try_save(&self, request: &SaveRequest, log: Log<'_>) -> Result<SaveOutcome, CacheError> {
        let location = &request.location;
        let patterns: Vec<String> = request
            .paths
            .iter()
            .map(|p| expand_tilde(p, &location.home))
            .collect();
        let files = crate::glob::resolve_paths(&location.workspace, &patterns)?;
        if files.is_empty() {
            return Err(CacheError::NothingToSave);
        }
        for file in &files {
            log(LogLevel::Debug, &format!("Matched: {}", file.display()));
        }
        let planned = self.options.compression;
        let mut guard = match self.reserve(request, planned, log)? {
            Some(guard) => guard,
            None => return Ok(SaveOutcome::AlreadyExists),
        };
        let mut writer = self.blobs.writer()?;
        let mut progress = Progress::new("Saving cache", None, self.options.progress);
        let created = {
            let mut out = ProgressWriter {
                progress: &mut progress,
                inner: writer.as_mut(),
            };
            archive::create(&location.workspace, &files, planned, &mut out)
        };
        progress.finish();
        let stats = created?;
        let actual = stats.compression.unwrap_or(planned);
        if actual != planned {
            // zstd failed and the archive fell back to gzip: the version must say gzip.
            log(
                LogLevel::Debug,
                &format!("archive written with {}", actual.method()),
            );
            drop(guard);
            guard = match self.reserve(request, actual, log)? {
                Some(guard) => guard,
                None => return Ok(SaveOutcome::AlreadyExists),
            };
        }
        let blob = writer.finish()?;
        log(LogLevel::Info, &size_line(blob.size));
        self.index.commit(guard.id(), &blob).map_err(index_err)?;
        let id = guard.id().to_string();
        guard.disarm();
        Ok(SaveOutcome::Saved { id, blob })
    }

    fn reserve(
        &self,
        request: &SaveRequest,
        compression: Compression,
        log: Log<'_>,
    ) -> Result<Option<ReservationGuard<'_>>, CacheError> {
        let version = cache_version(
            &request.paths,
            compression,
            request.location.windows,
            request.enable_cross_os_archive,
        );
        let entry = NewEntryRequest {
            repository: request.scope.repository.clone(),
            scope: request.scope.git_ref.clone(),
            key: request.key.clone(),
            version,
            paths: request.paths.clone(),
            compression: compression.method().to_string(),
            created_by_run: request.run_id.clone(),
        };
        match self.index.reserve(&entry).map_err(index_err)? {
            Reservation::Reserved(id) => Ok(Some(ReservationGuard {
                index: self.index.as_ref(),
                id: Some(id),
            })),
            Reservation::AlreadyExists => {
                log(
                    LogLevel::Info,
                    &format!(
                        "Failed to save: Unable to reserve cache with key {}, another job may be creating this cache.",
                        request.key
                    ),
                );
                Ok(None)
            }
        }
    }

    /// Applies the eviction policy and removes blobs no row references any more; returns the
    /// entries evicted (or that would be, with `dry_run`).
    pub fn prune(&self, dry_run: bool, log: Log<'_>) -> Result<Vec<EntryInfo>, CacheError> {
        let evicted = self
            .index
            .evict(&self.options.eviction, dry_run)
            .map_err(index_err)?;
        if dry_run {
            return Ok(evicted);
        }
        for entry in &evicted {
            let event = Event {
                kind: EventKind::Evict,
                repository: entry.repository.clone(),
                scope: entry.scope.clone(),
                key: entry.key.clone(),
                matched_key: None,
                bytes: entry.size,
                duration_ms: 0,
            };
            self.record(event, log);
        }
        self.remove_unreferenced_blobs(evicted.iter().map(|e| e.blob_digest.as_str()), log)?;
        Ok(evicted)
    }

    /// Deletes the blobs among `candidates` that no row references.
    fn remove_unreferenced_blobs<'d>(
        &self,
        candidates: impl Iterator<Item = &'d str>,
        log: Log<'_>,
    ) -> Result<u64, CacheError> {
        let referenced = self.index.referenced_digests().map_err(index_err)?;
        let mut removed = 0;
        for digest in candidates {
            if !referenced.contains(digest) {
                if let Err(err) = self.blobs.delete(digest) {
                    log(LogLevel::Debug, &format!("could not delete blob: {err}"));
                } else {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn evict_after_save(&self, log: Log<'_>) {
        if let Err(err) = self.prune(false, log) {
            log(LogLevel::Debug, &format!("cache eviction failed: {err}"));
        }
    }

    /// Deletes entries (and their blobs when no other row uses them); returns how many went.
    pub fn delete(&self, entries: &[EntryInfo], log: Log<'_>) -> Result<u64, CacheError> {
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        let deleted = self.index.delete(&ids).map_err(index_err)?;
        self.remove_unreferenced_blobs(entries.iter().map(|e| e.blob_digest.as_str()), log)?;
        Ok(deleted)
    }

    /// Re-hashes every blob and reconciles blobs with rows. With `repair`, removes rows whose
    /// blob is missing or corrupt and blobs no row references.
    pub fn verify(&self, repair: bool, log: Log<'_>) -> Result<VerifyReport, CacheError> {
        let entries = self.index.list(&ListFilter::default()).map_err(index_err)?;
        let blobs = self.blobs.list()?;
        let stored: std::collections::HashSet<&str> =
            blobs.iter().map(|b| b.digest.as_str()).collect();
        let mut report = VerifyReport::default();
        let mut corrupt: std::collections::HashSet<String> = std::collections::HashSet::new();
        for blob in &blobs {
            report.blobs_checked += 1;
            if let Err(reason) = self.rehash(&blob.digest) {
                log(
                    LogLevel::Warning,
                    &format!("blob {} is corrupt: {reason}", blob.digest),
                );
                corrupt.insert(blob.digest.clone());
                report.corrupt_blobs.push(blob.digest.clone());
            }
        }
        for entry in &entries {
            if !stored.contains(entry.blob_digest.as_str()) || corrupt.contains(&entry.blob_digest)
            {
                report.rows_without_blob.push(entry.clone());
            }
        }
        let referenced = self.index.referenced_digests().map_err(index_err)?;
        for blob in &blobs {
            if !referenced.contains(&blob.digest) {
                report.blobs_without_row.push(blob.clone());
            }
        }
        if repair {
            let ids: Vec<String> = report
                .rows_without_blob
                .iter()
                .map(|e| e.id.clone())
                .collect();
            if !ids.is_empty() {
                self.index.delete(&ids).map_err(index_err)?;
            }
            for digest in report
                .blobs_without_row
                .iter()
                .map(|b| &b.digest)
                .chain(corrupt.iter())
            {
                self.blobs.delete(digest)?;
            }
            report.repaired = true;
        }
        Ok(report)
    }

    fn rehash(&self, digest: &str) -> Result<(), String> {
        let mut reader = self.blobs.open(digest).map_err(|e| e.to_string())?;
        std::io::copy(&mut reader, &mut std::io::sink())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// What [`Cache::verify`] found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    /// Blobs re-hashed.
    pub blobs_checked: u64,
    /// Blobs whose bytes no longer hash to their name.
    pub corrupt_blobs: Vec<String>,
    /// Rows whose blob is missing or corrupt.
    pub rows_without_blob: Vec<EntryInfo>,
    /// Blobs no row references.
    #[serde(serialize_with = "serialize_blobs")]
    pub blobs_without_row: Vec<BlobInfo>,
    /// Whether the problems were removed.
    pub repaired: bool,
}

fn serialize_blobs<S: serde::Serializer>(blobs: &[BlobInfo], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(blobs.len()))?;
    for blob in blobs {
        seq.serialize_element(&serde_json::json!({"digest": blob.digest, "size": blob.size}))?;
    }
    seq.end()
}

/// The workspace-relative view of a path, for messages.
pub fn display_relative(path: &Path, workspace: &Path) -> String {
    path.strip_prefix(workspace)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.display().to_string())
}
