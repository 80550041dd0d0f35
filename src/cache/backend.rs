//! What the cache needs from an index, as a trait, so `cache/` never speaks SQL and an embedding
//! runner (or the server) can hand us the index it already has. `store::index::Index` implements
//! it in `store_backend.rs`.

use std::collections::HashSet;

use crate::clock::EpochMillis;
use crate::store::blob::BlobInfo;

/// The boxed error an index reports; kept opaque because backends differ.
pub type BackendError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// One committed cache entry as the cache sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntryInfo {
    /// Stable id (application-generated).
    pub id: String,
    /// `owner/name`.
    pub repository: String,
    /// The git ref that wrote it.
    pub scope: String,
    /// The key as written by the saver.
    pub key: String,
    /// The cache version (see [`crate::cache::cache_version`]).
    pub version: String,
    /// The `path` lines of the saver, as written.
    pub paths: Vec<String>,
    /// Compression method name (`zstd-without-long`, `gzip`).
    pub compression: String,
    /// sha256 of the archive blob.
    pub blob_digest: String,
    /// Archive size in bytes.
    pub size: u64,
    /// When it was committed (epoch ms).
    pub created_at: EpochMillis,
    /// When it was last restored (epoch ms).
    pub last_accessed_at: EpochMillis,
    /// How many times it was restored.
    pub access_count: u64,
    /// The run that saved it.
    pub created_by_run: String,
}

/// A restore lookup: per scope in order, exact key then newest prefix match, for each key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupRequest {
    /// `owner/name`.
    pub repository: String,
    /// Readable scopes in order (current ref, PR base, default branch).
    pub scopes: Vec<String>,
    /// The primary key followed by the restore keys.
    pub keys: Vec<String>,
    /// Only entries with exactly this version match.
    pub version: String,
}

/// The entry a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupResult {
    /// The entry.
    pub entry: EntryInfo,
}

/// A row to reserve before writing its blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntryRequest {
    /// `owner/name`.
    pub repository: String,
    /// The current ref (writes go only there).
    pub scope: String,
    /// The primary key.
    pub key: String,
    /// The cache version.
    pub version: String,
    /// The `path` lines as written.
    pub paths: Vec<String>,
    /// Compression method name.
    pub compression: String,
    /// `github.run_id` of the saver.
    pub created_by_run: String,
}

/// The outcome of a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The row is ours until commit or abort; this is its id.
    Reserved(String),
    /// Someone already created (or is creating) this entry.
    AlreadyExists,
}

/// What a metrics event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The primary key matched exactly.
    HitExact,
    /// A prefix or restore key matched.
    HitPartial,
    /// Nothing matched.
    Miss,
    /// An entry was saved.
    Save,
    /// A save was skipped (exact hit, or the entry already exists).
    Skip,
    /// An entry was evicted.
    Evict,
    /// A restore or save failed.
    Error,
}

impl EventKind {
    /// The name stored in the index.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::HitExact => "hit_exact",
            EventKind::HitPartial => "hit_partial",
            EventKind::Miss => "miss",
            EventKind::Save => "save",
            EventKind::Skip => "skip",
            EventKind::Evict => "evict",
            EventKind::Error => "error",
        }
    }
}

/// A metrics event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// `owner/name`.
    pub repository: String,
    /// The ref of the step that caused it.
    pub scope: String,
    /// The primary key asked for (or the evicted entry's key).
    pub key: String,
    /// The key of the entry restored, when there was one.
    pub matched_key: Option<String>,
    /// Archive bytes moved.
    pub bytes: u64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

/// Eviction rules applied after each save and by `runner cache prune`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvictionPolicy {
    /// Entries not accessed for this long are removed (milliseconds).
    pub max_idle_ms: i64,
    /// Least-recently-used entries above this total size per repository are removed.
    pub max_bytes_per_repository: u64,
    /// Reservations older than this are considered abandoned (milliseconds).
    pub reservation_timeout_ms: i64,
}

/// How to order a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListOrder {
    /// Newest created first.
    #[default]
    Created,
    /// Most recently used first.
    LastUsed,
    /// Largest first.
    Size,
}

/// Which entries a listing returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListFilter {
    /// Only this repository.
    pub repository: Option<String>,
    /// Only keys starting with this (case-insensitive).
    pub key_prefix: Option<String>,
    /// Only this scope (git ref).
    pub scope: Option<String>,
    /// Sort order.
    pub order: ListOrder,
    /// At most this many rows.
    pub limit: Option<u64>,
}

/// Totals over a time window for `runner cache stats`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct StatsReport {
    /// Committed entries.
    pub entries: u64,
    /// Sum of their sizes.
    pub total_bytes: u64,
    /// Exact hits in the window.
    pub hits_exact: u64,
    /// Partial hits in the window.
    pub hits_partial: u64,
    /// Misses in the window.
    pub misses: u64,
    /// Saves in the window.
    pub saves: u64,
    /// Errors in the window.
    pub errors: u64,
    /// Archive bytes restored in the window.
    pub bytes_restored: u64,
    /// Archive bytes saved in the window.
    pub bytes_saved: u64,
    /// Most restored keys in the window, with their hit counts.
    pub top_keys: Vec<(String, u64)>,
}

/// The index operations the cache performs.
pub trait CacheIndex: Send + Sync + std::fmt::Debug {
    /// Finds the entry to restore (see [`LookupRequest`]) and marks it used at `now`.
    fn lookup(&self, request: &LookupRequest) -> Result<Option<LookupResult>, BackendError>;
    /// Reserves a row for a new entry.
    fn reserve(&self, entry: &NewEntryRequest) -> Result<Reservation, BackendError>;
    /// Commits a reserved row once its blob is durable.
    fn commit(&self, id: &str, blob: &BlobInfo) -> Result<(), BackendError>;
    /// Gives up a reservation.
    fn abort(&self, id: &str) -> Result<(), BackendError>;
    /// Records a metrics event.
    fn record_event(&self, event: &Event) -> Result<(), BackendError>;
    /// Committed entries matching `filter`.
    fn list(&self, filter: &ListFilter) -> Result<Vec<EntryInfo>, BackendError>;
    /// One entry by id.
    fn get(&self, id: &str) -> Result<Option<EntryInfo>, BackendError>;
    /// Deletes entries by id; returns how many rows went.
    fn delete(&self, ids: &[String]) -> Result<u64, BackendError>;
    /// Totals and event counts since `since` (epoch ms), optionally for one repository.
    fn stats(
        &self,
        repository: Option<&str>,
        since: EpochMillis,
    ) -> Result<StatsReport, BackendError>;
    /// Applies `policy` (or only reports, with `dry_run`); returns the entries removed.
    fn evict(&self, policy: &EvictionPolicy, dry_run: bool)
    -> Result<Vec<EntryInfo>, BackendError>;
    /// Digests referenced by any row (committed or reserved), so orphan removal spares them.
    fn referenced_digests(&self) -> Result<HashSet<String>, BackendError>;
}
