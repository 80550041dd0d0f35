//! actions/cache semantics: key validation, version, restore order, outputs, state, post-step
//! save, scopes, eviction policy and metrics events. Speaks neither SQL nor tar directly: the
//! index and blobs are a [`Store`], archives go through `crate::archive`, files through
//! `crate::glob`.
//!
//! CONTRACT (the CLI and the step runner use these names):
//! - [`Cache::restore`] / [`Cache::save`]: the toolkit's `restoreCache` / `saveCache`, with its
//!   log lines, over our store.
//! - [`register`] puts the `actions/cache`, `actions/cache/restore` and `actions/cache/save`
//!   handlers into an [`ActionRegistry`](crate::exec::ActionRegistry); [`register_default`]
//!   does so over the default store, opened when the first cache step runs.
//! - [`open`] opens the store at a [`StoreLocation`](crate::store::StoreLocation) with
//!   [`CacheOptions`]; [`open_default`] the default directory with the defaults.

mod action;
pub mod analyze;
#[cfg(feature = "remote")]
mod backend;
mod config;
mod deferred;
pub mod inputs;
mod key;
mod paths;
mod progress;
#[cfg(feature = "remote")]
mod remote;
mod service;
mod transfer;
mod version;

use std::path::PathBuf;
use std::sync::Arc;

#[cfg(feature = "remote")]
pub use action::register_backend;
pub use action::{
    CacheAction, CacheEngine, CacheHandle, CacheStep, PostOutcome, RestoreAction, Restored,
    SaveAction, outputs, register, register_default, register_handle, state,
};
#[cfg(feature = "remote")]
pub use backend::{Backend, BackendChoice, BackendError, BackendSettings, select_backend};
pub use config::{CacheOptions, open, open_default};
pub use inputs::CacheInputs;
pub use key::{KeyError, MAX_KEY_LENGTH, MAX_KEYS, is_exact_match, validate_key};
use paths::refused_root;
pub use paths::{allowed_roots, expand_tilde};
pub use progress::{OnProgress, PROGRESS_THRESHOLD};
#[cfg(feature = "remote")]
pub use remote::{Protocol, RemoteCache, RemoteConfig, RemoteError, RemoteTier};
pub use service::CLIENT_COMPRESSION;
pub use version::cache_version;

use crate::archive::{self, Compression};
use crate::cancel::Cancel;
use crate::clock::Clock;
use crate::exec::LogLevel;
use crate::store::blob::{BlobError, BlobStore};
use crate::store::index::{Entry, EventDetail, EventKind, Index, IndexError, NewEntry, NewEvent};
use crate::store::{Store, StoreError, VerifyOptions, VerifyReport};

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
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Creating or extracting the archive failed.
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    /// Resolving the `path` patterns failed.
    #[error(transparent)]
    Glob(#[from] crate::glob::GlobError),
    /// A declared path that must never be cached (`/`, or one holding `/proc`).
    #[error("refusing to cache '{path}': {reason}")]
    RefusedPath {
        /// The `path:` line.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// Restoring one entry failed; names the entry and its blob, the cause is the source.
    #[error("cache entry '{key}' (blob {digest})")]
    Entry {
        /// The entry's key.
        key: String,
        /// Its blob's sha256.
        digest: String,
        /// What failed.
        #[source]
        source: Box<CacheError>,
    },
    /// The store is read-only (already warned, naming it): nothing can be saved.
    #[error("the cache store is read-only")]
    ReadOnly,
    /// Talking to a cache server failed.
    #[cfg(feature = "remote")]
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The save or restore was cancelled (SIGTERM, Ctrl-C); nothing was left behind.
    #[error("cancelled")]
    Cancelled,
    /// The workspace or home path cannot be made absolute.
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

    /// Whether this failure is the entry's own (its archive is unreadable, corrupt or refused
    /// by the safety policy, or its blob is gone), rather than this machine's (a full disk).
    fn is_entry_fault(&self) -> bool {
        match self {
            CacheError::Archive(
                archive::ArchiveError::Corrupt { .. } | archive::ArchiveError::Unsafe { .. },
            ) => true,
            CacheError::Blob(BlobError::NotFound { .. })
            | CacheError::Store(StoreError::Blob(BlobError::NotFound { .. }))
            | CacheError::Store(StoreError::NoBlob { .. }) => true,
            CacheError::Entry { source, .. } => source.is_entry_fault(),
            _ => false,
        }
    }

    /// Whether this failure is a cancellation, however deep it was raised.
    fn is_cancelled(&self) -> bool {
        matches!(self, CacheError::Cancelled) || crate::cancel::is_cancelled_error(self)
    }
}

/// Refuses declared paths that must never be archived or restored into.
fn check_roots(patterns: &[String], location: &Location) -> Result<(), CacheError> {
    for (pattern, root) in paths::declared_roots(patterns, &location.workspace, &location.home) {
        if let Some(reason) = refused_root(&root) {
            return Err(CacheError::RefusedPath {
                path: pattern.to_string(),
                reason,
            });
        }
    }
    Ok(())
}

/// `Cache Size: ~N MB (B B)` with the toolkit's rounding (`Math.round`).
pub fn size_line(bytes: u64) -> String {
    let mb = bytes.saturating_add(512 * 1024) / (1024 * 1024);
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

impl Location {
    /// The same location with absolute, normalized paths: archive names and the paths a
    /// restore may write are computed from these, never from the process's current directory.
    pub fn absolute(&self) -> Result<Location, CacheError> {
        let absolute = |path: &PathBuf| {
            std::path::absolute(path)
                .map(|p| paths::normalize(&p))
                .map_err(|source| CacheError::Io {
                    path: path.clone(),
                    source,
                })
        };
        Ok(Location {
            workspace: absolute(&self.workspace)?,
            home: absolute(&self.home)?,
            windows: self.windows,
        })
    }
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
    /// Where the download reports progress.
    pub progress: OnProgress,
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
    /// When this job's restore of the key missed (the post-job save of `actions/cache`): the
    /// save event then records how long the job's steps took since, for analytics.
    pub missed_at: Option<crate::clock::EpochMillis>,
    /// Where the upload reports progress.
    pub progress: OnProgress,
}

/// What a save did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveOutcome {
    /// A new entry was committed.
    Saved(Box<Entry>),
    /// The entry already exists (or another job is creating it); nothing was written.
    AlreadyExists,
    /// A cache server accepted and committed the archive (`size` bytes).
    Uploaded {
        /// Archive size in bytes.
        size: u64,
    },
}

/// A sink for user-facing log lines.
pub type Log<'a> = &'a mut dyn FnMut(LogLevel, &str);

/// The native cache: a store (index + blobs), a clock and options.
#[derive(Debug)]
pub struct Cache {
    store: Store,
    clock: Arc<dyn Clock>,
    options: CacheOptions,
    /// Whether the read-only warning was shown (once per cache, not per step).
    read_only_warned: std::sync::atomic::AtomicBool,
    /// Set by [`Cache::defer_lookup_records`]: lookups' writes go to a background writer.
    recorder: std::sync::OnceLock<deferred::Recorder>,
}

/// Aborts a reservation unless it was committed, so no error path leaves a stuck row.
struct ReservationGuard<'a> {
    index: &'a Index,
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
    /// A cache over an index and a blob store.
    pub fn new(
        index: Index,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        options: CacheOptions,
    ) -> Self {
        Self::with_store(Store::new(index, blobs), clock, options)
    }

    /// A cache over an assembled store.
    pub fn with_store(store: Store, clock: Arc<dyn Clock>, options: CacheOptions) -> Self {
        Self {
            store,
            clock,
            options,
            read_only_warned: std::sync::atomic::AtomicBool::new(false),
            recorder: std::sync::OnceLock::new(),
        }
    }

    /// From now on [`Cache::lookup_entry`] answers from one read and leaves marking the entry
    /// used and recording the lookup's event to a background writer that batches them (a server
    /// answering many lookups). [`Cache::index`] waits for that writer, so readers in this
    /// process see every lookup answered before they asked.
    pub fn defer_lookup_records(&self) {
        self.recorder
            .get_or_init(|| deferred::Recorder::start(self.store.index().clone()));
    }

    /// `Some(warning)` when the store cannot be written; logged the first time only.
    fn warn_read_only(&self, log: Log<'_>) -> Option<String> {
        let warning = self.store.read_only()?;
        if !self
            .read_only_warned
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            log(LogLevel::Warning, &warning);
        }
        Some(warning)
    }

    /// The store, for management commands.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The index, once the lookups answered so far are recorded
    /// ([`Cache::defer_lookup_records`]).
    pub fn index(&self) -> &Index {
        if let Some(recorder) = self.recorder.get() {
            recorder.flush();
        }
        self.store.index()
    }

    /// The options in effect.
    pub fn options(&self) -> &CacheOptions {
        &self.options
    }

    /// Makes saves and restores in flight stop, cleanly, once `cancel` is cancelled.
    pub fn set_cancel(&mut self, cancel: Cancel) {
        self.options.cancel = cancel;
    }

    fn elapsed_ms(&self, start: i64) -> u64 {
        u64::try_from(self.clock.now_millis().saturating_sub(start)).unwrap_or(0)
    }

    /// Records a metrics event; a failure to record never fails a step.
    pub fn record(&self, event: NewEvent, log: Log<'_>) {
        self.record_detailed(event, &EventDetail::default(), log);
    }

    /// Records a metrics event with its analytics details; a failure never fails a step.
    pub fn record_detailed(&self, event: NewEvent, detail: &EventDetail, log: Log<'_>) {
        if let Err(err) = self.index().record_event_detail(&event, detail) {
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
    ) -> NewEvent {
        NewEvent {
            repository: scope.repository.clone(),
            scope: scope.git_ref.clone(),
            kind,
            key: key.to_string(),
            matched_key: matched_key.map(str::to_string),
            bytes: Some(bytes),
            duration_ms: Some(self.elapsed_ms(start)),
        }
    }

    /// Restores the first matching entry. `Err` only for validation errors (they fail the
    /// step); any other failure is logged as `Failed to restore: ...` and is a miss.
    pub fn restore(
        &self,
        request: &RestoreRequest,
        log: Log<'_>,
    ) -> Result<RestoreOutcome, CacheError> {
        transfer::validate_restore(request)?;
        self.warn_read_only(log);
        let start = self.clock.now_millis();
        let (outcome, event) = match self.try_restore(request, log) {
            Ok(outcome) => {
                let event = match &outcome {
                    RestoreOutcome::Hit {
                        matched_key, size, ..
                    } => {
                        let kind = Self::lookup_event_kind(&request.primary_key, Some(matched_key));
                        let bytes = if request.lookup_only { 0 } else { *size };
                        let key = &request.primary_key;
                        self.event(kind, &request.scope, key, Some(matched_key), bytes, start)
                    }
                    RestoreOutcome::Miss => self.event(
                        EventKind::Miss,
                        &request.scope,
                        &request.primary_key,
                        None,
                        0,
                        start,
                    ),
                };
                (outcome, event)
            }
            Err(err) => {
                transfer::log_restore_failure(err, log);
                let event = self.event(
                    EventKind::Error,
                    &request.scope,
                    &request.primary_key,
                    None,
                    0,
                    start,
                );
                (RestoreOutcome::Miss, event)
            }
        };
        let matched = event.matched_key.as_deref();
        let detail = EventDetail {
            restore_keys: request.restore_keys.clone(),
            level: matched.and_then(|m| analyze::served_level(&transfer::all_keys(request), m)),
            steps_ms: None,
        };
        self.record_detailed(event, &detail, log);
        Ok(outcome)
    }

    fn try_restore(
        &self,
        request: &RestoreRequest,
        log: Log<'_>,
    ) -> Result<RestoreOutcome, CacheError> {
        let (keys, version) = transfer::lookup_keys(request, self.options.compression);
        let found = self.find_entry(&request.scope, keys.clone(), version.clone())?;
        let matched = found.as_ref().map(|hit| hit.matched_key.as_str());
        transfer::log_lookup(request, &keys, &version, matched, log);
        let Some(hit) = found else {
            return Ok(RestoreOutcome::Miss);
        };
        let matched_key = hit.matched_key;
        let exact = is_exact_match(&request.primary_key, Some(&matched_key));
        let size = hit.entry.size_bytes;
        if request.lookup_only {
            log(LogLevel::Info, "Lookup only - skipping download");
            return Ok(RestoreOutcome::Hit {
                matched_key,
                exact,
                size,
            });
        }
        log(LogLevel::Info, &size_line(size));
        let location = request.location.absolute()?;
        check_roots(&request.paths, &location)?;
        if let Err(err) = self.extract_entry(&hit.entry, request, &location, log) {
            if err.is_entry_fault() || self.blob_is_broken(&hit.entry) {
                self.mark_broken(&hit.entry, log);
            }
            return Err(CacheError::Entry {
                key: hit.entry.key.clone(),
                digest: hit.entry.blob_digest.clone().unwrap_or_default(),
                source: Box::new(err),
            });
        }
        log(LogLevel::Info, "Cache restored successfully");
        Ok(RestoreOutcome::Hit {
            matched_key,
            exact,
            size,
        })
    }

    fn extract_entry(
        &self,
        entry: &Entry,
        request: &RestoreRequest,
        location: &Location,
        log: Log<'_>,
    ) -> Result<(), CacheError> {
        let reader = self.store.open_entry(entry)?;
        transfer::extract_archive(
            reader,
            Some(entry.size_bytes),
            &request.paths,
            location,
            entry.roots.as_deref(),
            self.store.local_paths(),
            &self.options,
            &request.progress,
            log,
        )
    }

    /// Whether the entry's blob is missing or no longer matches its digest.
    fn blob_is_broken(&self, entry: &Entry) -> bool {
        match entry.blob_digest.as_deref() {
            None => true,
            Some(digest) => match self.store.blobs().open(digest) {
                Err(BlobError::NotFound { .. }) => true,
                Err(_) => false,
                Ok(mut reader) => std::io::copy(&mut reader, &mut std::io::sink())
                    .is_err_and(|e| e.kind() == std::io::ErrorKind::InvalidData),
            },
        }
    }

    /// After a restore failed for the entry's own reason: the entry can never be restored, so
    /// it is marked broken: lookups pass over it, the next save of its key replaces it and the
    /// next prune removes it.
    fn mark_broken(&self, entry: &Entry, log: Log<'_>) {
        match self.index().mark_broken(&entry.id) {
            Ok(_) => log(
                LogLevel::Info,
                &format!(
                    "Cache entry {} cannot be restored; it is marked broken and the next save of this key replaces it",
                    entry.key
                ),
            ),
            Err(err) => log(
                LogLevel::Debug,
                &format!(
                    "could not mark broken cache entry {}: {}",
                    entry.id,
                    crate::error::chain(&err)
                ),
            ),
        }
    }

    /// Saves the files `request.paths` matches under `request.key` in the current ref's scope.
    /// `Ok(AlreadyExists)` when the entry exists (logged as the toolkit does); every `Err` is
    /// for the caller to show as a warning: a save never fails a job.
    pub fn save(&self, request: &SaveRequest, log: Log<'_>) -> Result<SaveOutcome, CacheError> {
        transfer::validate_save(request)?;
        if self.warn_read_only(log).is_some() {
            return Err(CacheError::ReadOnly);
        }
        let start = self.clock.now_millis();
        let busy = self.options.cancel.enter();
        let result = match self.try_save(request, log) {
            Err(err) if err.is_cancelled() => Err(CacheError::Cancelled),
            other => other,
        };
        drop(busy);
        let (kind, bytes) = match &result {
            Ok(SaveOutcome::Saved(entry)) => (EventKind::Save, entry.size_bytes),
            Ok(SaveOutcome::Uploaded { size }) => (EventKind::Save, *size),
            Ok(SaveOutcome::AlreadyExists) => (EventKind::Skip, 0),
            Err(CacheError::NothingToSave) => return result,
            Err(_) => (EventKind::Error, 0),
        };
        let detail = EventDetail {
            steps_ms: request
                .missed_at
                .map(|missed| u64::try_from(start.saturating_sub(missed)).unwrap_or(0)),
            ..EventDetail::default()
        };
        let event = self.event(kind, &request.scope, &request.key, None, bytes, start);
        self.record_save(event, &detail, log);
        result
    }

    fn try_save(&self, request: &SaveRequest, log: Log<'_>) -> Result<SaveOutcome, CacheError> {
        let plan = transfer::plan_save(request, self.store.local_paths(), log)?;
        let planned = self.options.compression;
        let roots = plan.roots.clone();
        let Some(mut guard) = self.reserve(request, planned, roots.as_deref(), log)? else {
            return Ok(SaveOutcome::AlreadyExists);
        };
        let mut writer = self.store.blobs().writer()?;
        let frames = self.store.frames();
        let stats = transfer::write_archive(
            &plan,
            planned,
            &self.options,
            frames.map(|f| f as &dyn crate::archive::FrameSource),
            writer.as_mut(),
        )?;
        let actual = stats.compression.unwrap_or(planned);
        if actual != planned {
            // zstd failed and the archive fell back to gzip: the version must say gzip.
            log(
                LogLevel::Debug,
                &format!("archive written with {}", actual.method()),
            );
            drop(guard);
            let Some(again) = self.reserve(request, actual, roots.as_deref(), log)? else {
                return Ok(SaveOutcome::AlreadyExists);
            };
            guard = again;
        }
        // The blob is made durable before its row is committed.
        let entry = self.store.commit_blob(guard.id(), writer)?;
        guard.disarm();
        if stats.reused_bytes > 0 {
            log(
                LogLevel::Debug,
                &format!(
                    "{} bytes of the archive were compressed by an earlier save; their frames were copied",
                    stats.reused_bytes
                ),
            );
        }
        if let (Some(map), Some(digest)) = (frames, entry.blob_digest.as_deref()) {
            // Only a hint for later saves: failing to write it loses nothing.
            if let Err(err) = map.record(digest, &stats.frames) {
                log(
                    LogLevel::Debug,
                    &format!("could not record the archive's frames: {err}"),
                );
            }
        }
        log(LogLevel::Info, &size_line(entry.size_bytes));
        Ok(SaveOutcome::Saved(Box::new(entry)))
    }

    fn reserve(
        &self,
        request: &SaveRequest,
        compression: Compression,
        roots: Option<&str>,
        log: Log<'_>,
    ) -> Result<Option<ReservationGuard<'_>>, CacheError> {
        let version = cache_version(
            &request.paths,
            compression,
            request.location.windows,
            request.enable_cross_os_archive,
        );
        let entry = NewEntry {
            repository: request.scope.repository.clone(),
            scope: request.scope.git_ref.clone(),
            key: request.key.clone(),
            version,
            paths: request.paths.clone(),
            roots: roots.map(str::to_string),
            compression: compression.method().to_string(),
            created_by_run: Some(request.run_id.clone()).filter(|r| !r.is_empty()),
        };
        Ok(self.reserve_row(&entry, log)?.map(|id| ReservationGuard {
            index: self.index(),
            id: Some(id),
        }))
    }

    /// Applies the eviction policy (the index records an `evict` event per entry) and removes
    /// blobs nothing references any more; returns the entries evicted (or that would be, with
    /// `dry_run`).
    pub fn prune(&self, dry_run: bool) -> Result<Vec<Entry>, CacheError> {
        let mut policy = self.options.eviction.clone();
        policy.dry_run = dry_run;
        Ok(self.store.evict(&policy)?)
    }

    /// Deletes one entry (and its blob unless another entry shares it).
    pub fn delete(&self, id: &str) -> Result<Option<Entry>, CacheError> {
        Ok(self.store.delete(id)?)
    }

    /// Re-hashes blobs and reconciles blobs with rows (see [`Store::verify`]).
    pub fn verify(&self, dry_run: bool) -> Result<VerifyReport, CacheError> {
        Ok(self.store.verify(&VerifyOptions {
            rehash: true,
            dry_run,
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_line_rounds_like_math_round() {
        let rows = [
            (0, "Cache Size: ~0 MB (0 B)"),
            (524_287, "Cache Size: ~0 MB (524287 B)"),
            (524_288, "Cache Size: ~1 MB (524288 B)"),
            (1_572_864, "Cache Size: ~2 MB (1572864 B)"),
            (10_485_760, "Cache Size: ~10 MB (10485760 B)"),
        ];
        for (bytes, expected) in rows {
            assert_eq!(size_line(bytes), expected);
        }
    }

    #[test]
    fn locations_become_absolute() {
        let cwd = std::env::current_dir().expect("cwd");
        let location = Location {
            workspace: PathBuf::from("ws/./a/../b"),
            home: PathBuf::from("/home/u/"),
            windows: false,
        };
        let absolute = location.absolute().expect("absolute");
        assert_eq!(absolute.workspace, cwd.join("ws/b"));
        assert_eq!(absolute.home, PathBuf::from("/home/u"));
    }

    #[test]
    fn readable_scopes_in_order_without_repeats() {
        let scope = |git_ref: &str, base: Option<&str>, default: Option<&str>| Scope {
            repository: "o/r".into(),
            git_ref: git_ref.into(),
            base_ref: base.map(str::to_string),
            default_branch: default.map(str::to_string),
        };
        let rows: &[(Scope, &[&str])] = &[
            (
                scope("refs/heads/main", None, Some("refs/heads/main")),
                &["refs/heads/main"],
            ),
            (
                scope("refs/heads/f", None, Some("refs/heads/main")),
                &["refs/heads/f", "refs/heads/main"],
            ),
            (
                scope(
                    "refs/pull/1/merge",
                    Some("refs/heads/dev"),
                    Some("refs/heads/main"),
                ),
                &["refs/pull/1/merge", "refs/heads/dev", "refs/heads/main"],
            ),
            (scope("refs/heads/f", Some(""), None), &["refs/heads/f"]),
        ];
        for (scope, expected) in rows {
            assert_eq!(scope.readable(), *expected, "{scope:?}");
        }
    }
}
