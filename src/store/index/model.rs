//! The public data model of the index: entries, queries, events, statistics, schema.

use std::collections::BTreeMap;

use crate::clock::EpochMillis;

/// Which database an index lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Whether an entry's bytes are in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// A save is in progress; invisible to lookups.
    Reserved,
    /// The blob is durable; visible to lookups.
    Committed,
}

impl EntryState {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryState::Reserved => "reserved",
            EntryState::Committed => "committed",
        }
    }
}

/// One cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Application-generated id (uuid v7).
    pub id: String,
    /// The repository (`owner/name`) that owns it.
    pub repository: String,
    /// The git ref that wrote it (`refs/heads/main`).
    pub scope: String,
    /// The key as saved (original case).
    pub key: String,
    /// The cache version (hash of paths and compression).
    pub version: String,
    /// The `path` lines it was saved with.
    pub paths: Vec<String>,
    /// Compression method (`zstd-without-long`, `gzip`).
    pub compression: String,
    /// The blob's sha256; `None` while reserved.
    pub blob_digest: Option<String>,
    /// Archive size in bytes (0 while reserved).
    pub size_bytes: u64,
    /// Reserved or committed.
    pub state: EntryState,
    /// When it was committed (when reserved, for a reservation).
    pub created_at: EpochMillis,
    /// The last lookup that returned it.
    pub last_accessed_at: EpochMillis,
    /// How many lookups returned it.
    pub access_count: u64,
    /// The run that saved it, if known.
    pub created_by_run: Option<String>,
    /// How each declared path resolved at save time (JSON from the cache layer), if recorded.
    pub roots: Option<String>,
    /// When a restore found it unusable ([`Index::mark_broken`](super::Index::mark_broken)); never looked up then.
    pub broken_at: Option<EpochMillis>,
    /// Who holds the reservation (see [`crate::store::owner::Owner::to_text`]); `None` once
    /// committed, or for a reservation without a checkable owner.
    pub owner: Option<String>,
}

/// What a save wants to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    /// The repository.
    pub repository: String,
    /// The scope (git ref) to write to.
    pub scope: String,
    /// The primary key.
    pub key: String,
    /// The cache version.
    pub version: String,
    /// The `path` lines.
    pub paths: Vec<String>,
    /// Compression method.
    pub compression: String,
    /// The run saving it, if known.
    pub created_by_run: Option<String>,
    /// How each declared path resolved (JSON), returned later in [`Entry::roots`].
    pub roots: Option<String>,
}

/// The outcome of [`Index::reserve`](super::Index::reserve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// The caller owns the new row with this id and must `commit` or `abort` it.
    Reserved(String),
    /// An entry (committed, or a live reservation) already has this identity.
    AlreadyExists,
}

/// A restore lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupQuery {
    /// The repository.
    pub repository: String,
    /// Readable scopes, most specific first.
    pub scopes: Vec<String>,
    /// The primary key, then the restore keys, in order.
    pub keys: Vec<String>,
    /// The cache version; matched exactly.
    pub version: String,
}

/// A use of an entry found by [`super::Index::find`], recorded later by
/// [`super::Index::record_lookups`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryUse {
    /// The entry's id.
    pub id: String,
    /// When it was used.
    pub at: EpochMillis,
}

/// A lookup answered by [`super::Index::find`], to be recorded by
/// [`super::Index::record_lookups`]: the entry it used, if any, and its event.
#[derive(Debug, Clone)]
pub struct LookupRecord {
    /// The entry found.
    pub used: Option<EntryUse>,
    /// The lookup's event.
    pub event: NewEvent,
    /// The event's analytics details.
    pub detail: super::EventDetail,
    /// When the lookup happened.
    pub at: EpochMillis,
}

/// A lookup result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupHit {
    /// The entry found (access time and count already updated).
    pub entry: Entry,
    /// The entry's key as stored (`cache-matched-key`).
    pub matched_key: String,
    /// True only for a case-insensitive exact match of the primary key (`cache-hit`).
    pub exact: bool,
}

/// Kinds of metrics events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// Exact primary-key hit.
    HitExact,
    /// Restore-key or prefix hit.
    HitPartial,
    /// Nothing found.
    Miss,
    /// An entry was saved.
    Save,
    /// A save was skipped (exact hit, or already being created).
    Skip,
    /// An entry was evicted.
    Evict,
    /// A restore or save failed.
    Error,
}

impl EventKind {
    /// Every kind, in stored order.
    pub const ALL: [EventKind; 7] = [
        EventKind::HitExact,
        EventKind::HitPartial,
        EventKind::Miss,
        EventKind::Save,
        EventKind::Skip,
        EventKind::Evict,
        EventKind::Error,
    ];

    /// The stored spelling.
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

    /// Parses the stored spelling.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A metrics event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The repository.
    pub repository: String,
    /// The scope involved.
    pub scope: String,
    /// What happened.
    pub kind: EventKind,
    /// The primary key of the step.
    pub key: String,
    /// The key of the entry restored, for hits.
    pub matched_key: Option<String>,
    /// Bytes restored or saved.
    pub bytes: Option<u64>,
    /// How long it took.
    pub duration_ms: Option<u64>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When, in epoch milliseconds.
    pub at: EpochMillis,
    /// The rest, as recorded.
    pub event: NewEvent,
    /// Why, for evictions: `unused`, `size` or `broken`.
    pub reason: Option<String>,
}

/// How `list` sorts (always descending: newest, most recently used, largest first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListSort {
    /// By creation time.
    #[default]
    Created,
    /// By last access.
    LastUsed,
    /// By size.
    Size,
}

/// Filters for `list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only keys starting with this (case-insensitive).
    pub key_prefix: Option<String>,
    /// Only this scope.
    pub scope: Option<String>,
    /// Only this repository.
    pub repository: Option<String>,
    /// Sort order.
    pub sort: ListSort,
    /// At most this many entries.
    pub limit: Option<usize>,
    /// Include reservations (saves in progress).
    pub include_reserved: bool,
}

/// Hits for one key in [`Stats::top_keys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHits {
    /// The matched key.
    pub key: String,
    /// Hits (exact and partial) in the window.
    pub hits: u64,
}

/// Store statistics: current content, and events since a time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stats {
    /// Committed entries.
    pub entries: u64,
    /// Their total size.
    pub total_size_bytes: u64,
    /// Open reservations.
    pub reserved: u64,
    /// Events per kind in the window.
    pub events: BTreeMap<EventKind, u64>,
    /// Hits / (hits + misses) in the window, 0 without lookups.
    pub hit_rate: f64,
    /// Bytes restored by hits in the window.
    pub bytes_restored: u64,
    /// Bytes saved in the window.
    pub bytes_saved: u64,
    /// Most-hit keys in the window, most hits first.
    pub top_keys: Vec<KeyHits>,
}

impl Stats {
    /// Events of one kind in the window.
    pub fn count(&self, kind: EventKind) -> u64 {
        self.events.get(&kind).copied().unwrap_or(0)
    }
}

/// One column of the live schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColumnDescription {
    /// Column name.
    pub name: String,
    /// Declared type, uppercase (`TEXT`, `BIGINT`).
    pub sql_type: String,
    /// Whether NULL is refused.
    pub not_null: bool,
}

/// One secondary index of the live schema.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct IndexDescription {
    /// The table.
    pub table: String,
    /// Indexed columns in order.
    pub columns: Vec<String>,
    /// Whether it is unique.
    pub unique: bool,
}

/// The live schema (tables other than `schema_migrations`, and named indexes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaDescription {
    /// Columns per table, in declaration order.
    pub tables: BTreeMap<String, Vec<ColumnDescription>>,
    /// Indexes by name (primary keys excluded).
    pub indexes: BTreeMap<String, IndexDescription>,
}
