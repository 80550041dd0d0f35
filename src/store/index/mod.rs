//! The cache index: diesel models and queries over SQLite and PostgreSQL through one code path,
//! with `schema.sql` applied as a versioned migration. Holds no archive bytes.
//!
//! CONTRACT (other modules code against these names; extend, don't rename):
//! - [`Index::open`]`(url, clock)` with `sqlite://PATH` or `postgres://...`.
//! - [`Index::lookup`]`(&LookupQuery) -> Option<LookupHit>`: per scope in order, exact key then
//!   newest prefix match of the primary key, then each restore key (exact, newest prefix); keys
//!   compared case-insensitively; prefix matching as an index range scan.
//! - [`Index::reserve`]`(&NewEntry) -> Reserved(id) | AlreadyExists`, [`Index::commit`]`(id, blob)`,
//!   [`Index::abort`]`(id)`.
//! - [`Index::record_event`], [`Index::list`], [`Index::get`], [`Index::find_by_key`],
//!   [`Index::delete`], [`Index::stats`], [`Index::evict`], [`Index::referenced_digests`].
//! - [`Index::mark_broken`] (never looked up again, evicted by the next prune, replaced by the
//!   next reserve), [`Index::next_run_number`], [`Index::abandoned_reservations`],
//!   [`Index::maintenance_lease`], [`Index::read_only`], [`Index::set_reservation_owner`].
//! - A reservation records its owner ([`crate::store::owner::Owner`]); one whose owner is dead
//!   is taken over by the next `reserve` and removed by `evict` at once.
//!
//! The API is synchronous; async callers wrap it in `spawn_blocking`.

mod audit;
mod conn;
mod history;
mod page;
mod policy;
mod prefix;
mod schema;
mod tally;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::r2d2::{Pool, PooledConnection};
use diesel::result::DatabaseErrorKind;
use diesel::sql_types::BigInt;

use crate::clock::{Clock, EpochMillis};
use crate::store::blob::BlobInfo;
use crate::store::owner::{self, Owner};
pub use audit::{AuditRecord, Deletion, MANUAL};
pub use conn::AnyConnection;
use conn::{Manager, Target, write_tx};
pub use history::{BulkEntry, DAY_MILLIS, DayActivity, Eviction, KeyMatch, RestoredKey};
pub use page::EntryPage;
pub use policy::{
    DEFAULT_MAX_SIZE_BYTES, DEFAULT_RESERVATION_TTL_MS, DEFAULT_TTL_DAYS, EvictionPolicy,
    parse_size,
};
pub use prefix::prefix_upper_bound;
use schema::{cache_entries, cache_events};
pub use tally::{EventTally, KeyTally, RepoUsage};

/// Errors from the index. Database errors name the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The store URL is not one we understand.
    #[error("invalid cache database URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Connecting to the database failed.
    #[error("cannot open cache database {url}: {source}")]
    Connect {
        /// The URL, password hidden.
        url: String,
        /// The underlying error.
        source: diesel::ConnectionError,
    },
    /// No pooled connection became available.
    #[error("cache database {url}: {source}")]
    Pool {
        /// The URL, password hidden.
        url: String,
        /// The underlying error.
        source: diesel::r2d2::PoolError,
    },
    /// A query failed.
    #[error("cache index {index}: {operation} failed: {source}")]
    Query {
        /// The index URL, password hidden.
        index: String,
        /// What we were doing.
        operation: &'static str,
        /// The underlying error.
        source: diesel::result::Error,
    },
    /// Applying a schema migration failed.
    #[error("cache index {index}: applying schema version {version} failed: {source}")]
    Migration {
        /// The index URL, password hidden.
        index: String,
        /// The migration's version.
        version: i64,
        /// The underlying error.
        source: diesel::result::Error,
    },
    /// The database was migrated by a newer runner.
    #[error(
        "cache index schema version {found} is newer than this runner supports ({supported}); upgrade runner"
    )]
    SchemaTooNew {
        /// The version found in the database.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// `commit`/`abort` of an id that is not an open reservation (unknown, committed already, or
    /// taken over after it went stale).
    #[error("cache entry {id} is not an open reservation")]
    NotReserved {
        /// The reservation id.
        id: String,
    },
    /// A key the database cannot store.
    #[error("invalid cache key {key:?}: {reason}")]
    InvalidKey {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// A value out of the range the index stores.
    #[error("{field} value {value} is out of range")]
    OutOfRange {
        /// The field.
        field: &'static str,
        /// The value.
        value: u64,
    },
    /// A stored row does not make sense (edited by hand, or a bug).
    #[error("cache index row {id} is corrupt: {field}: {reason}")]
    CorruptRow {
        /// The row id.
        id: String,
        /// The column.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A setting (environment variable) has a bad value.
    #[error("{name}={value:?}: {reason}")]
    InvalidSetting {
        /// The variable name.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl IndexError {
    /// Whether SQLite refused a lock outright (`database is locked`): worth retrying.
    pub(crate) fn is_sqlite_busy(&self) -> bool {
        match self {
            IndexError::Query { source, .. } | IndexError::Migration { source, .. } => matches!(
                source,
                diesel::result::Error::DatabaseError(_, info)
                    if info.message().contains("database is locked")
            ),
            _ => false,
        }
    }
}

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

const RESERVED: &str = "reserved";
const COMMITTED: &str = "committed";

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
    /// When a restore found it unusable ([`Index::mark_broken`]); never looked up then.
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

/// The outcome of [`Index::reserve`].
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

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cache_entries)]
struct EntryRow {
    id: String,
    repository: String,
    scope: String,
    key: String,
    key_lower: String,
    version: String,
    paths: String,
    compression: String,
    blob_digest: Option<String>,
    size_bytes: i64,
    state: String,
    created_at: i64,
    last_accessed_at: i64,
    access_count: i64,
    created_by_run: Option<String>,
    roots: Option<String>,
    broken_at: Option<i64>,
    owner: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cache_events)]
struct EventRow {
    id: String,
    at: i64,
    repository: String,
    scope: String,
    kind: String,
    key: String,
    matched_key: Option<String>,
    bytes: Option<i64>,
    duration_ms: Option<i64>,
    reason: Option<String>,
}

impl EntryRow {
    /// A reservation past `ttl_ms` at `now`, or whose owner is known to be dead.
    fn is_abandoned(&self, now: EpochMillis, ttl_ms: i64) -> bool {
        self.state == RESERVED
            && (self.created_at < now.saturating_sub(ttl_ms)
                || owner::is_dead(self.owner.as_deref()))
    }

    fn into_entry(self) -> Result<Entry, IndexError> {
        let corrupt = |field: &'static str, reason: String| IndexError::CorruptRow {
            id: self.id.clone(),
            field,
            reason,
        };
        let paths: Vec<String> =
            serde_json::from_str(&self.paths).map_err(|e| corrupt("paths", e.to_string()))?;
        let state = match self.state.as_str() {
            RESERVED => EntryState::Reserved,
            COMMITTED => EntryState::Committed,
            other => return Err(corrupt("state", format!("unknown state {other:?}"))),
        };
        let size_bytes = u64::try_from(self.size_bytes)
            .map_err(|_| corrupt("size_bytes", format!("negative: {}", self.size_bytes)))?;
        let access_count = u64::try_from(self.access_count)
            .map_err(|_| corrupt("access_count", format!("negative: {}", self.access_count)))?;
        Ok(Entry {
            id: self.id,
            repository: self.repository,
            scope: self.scope,
            key: self.key,
            version: self.version,
            paths,
            compression: self.compression,
            blob_digest: self.blob_digest,
            size_bytes,
            state,
            created_at: self.created_at,
            last_accessed_at: self.last_accessed_at,
            access_count,
            created_by_run: self.created_by_run,
            roots: self.roots,
            broken_at: self.broken_at,
            owner: self.owner,
        })
    }
}

fn to_i64(field: &'static str, value: u64) -> Result<i64, IndexError> {
    i64::try_from(value).map_err(|_| IndexError::OutOfRange { field, value })
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The lowercase form keys are matched by. Unicode-aware, like JavaScript's `toLowerCase`.
pub fn key_lower(key: &str) -> String {
    key.to_lowercase()
}

fn check_key(key: &str) -> Result<(), IndexError> {
    if key.is_empty() {
        return Err(IndexError::InvalidKey {
            key: key.to_string(),
            reason: "empty",
        });
    }
    if key.contains('\0') {
        return Err(IndexError::InvalidKey {
            key: key.to_string(),
            reason: "contains a NUL character",
        });
    }
    Ok(())
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Held while maintenance (prune, verify) runs. On PostgreSQL it is a session advisory lock on
/// a connection of its own, so with several servers sharing the index one node maintains at a
/// time; it is released on drop, or by the server when the connection dies with its process.
/// SQLite serialises writers itself and needs no lease.
pub struct MaintenanceLease {
    conn: Option<Conn>,
}

/// The advisory lock class of maintenance ("runn" in ASCII). The lock's second key is the
/// `cache_entries` table's OID, so the lease is one per index: every node on one database and
/// schema shares it, while indexes in other schemas of the same database (a test per schema, or
/// two deployments) never hold each other up.
const MAINTENANCE_LOCK_CLASS: i32 = 0x7275_6e6e;

/// The second key: the OID of this search path's `cache_entries`.
const MAINTENANCE_LOCK_OBJECT: &str = "('cache_entries'::regclass)::oid::int";

impl Drop for MaintenanceLease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.as_mut()
            && let AnyConnection::Postgres(c) = &mut **conn
        {
            // A failed unlock leaves the lock to end with the connection.
            let sql = format!("SELECT pg_advisory_unlock($1, {MAINTENANCE_LOCK_OBJECT})");
            let _ = diesel::sql_query(sql)
                .bind::<diesel::sql_types::Integer, _>(MAINTENANCE_LOCK_CLASS)
                .execute(c);
        }
    }
}

impl std::fmt::Debug for MaintenanceLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaintenanceLease").finish_non_exhaustive()
    }
}

/// A handle on the index database: a connection pool plus the injected clock. Cheap to share by
/// reference across threads.
pub struct Index {
    pool: Pool<Manager>,
    clock: Arc<dyn Clock>,
    backend: Backend,
    url: String,
    reservation_ttl_ms: i64,
    owner: Option<String>,
    read_only: Option<String>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("url", &self.url)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

type Conn = PooledConnection<Manager>;

/// Maps a diesel error to [`IndexError::Query`] naming the index and the operation.
pub(crate) fn q<'a>(
    index: &'a str,
    operation: &'static str,
) -> impl Fn(diesel::result::Error) -> IndexError + 'a {
    move |source| IndexError::Query {
        index: index.to_string(),
        operation,
        source,
    }
}

impl Index {
    /// Opens (creating and migrating if needed) the index at `url`: `sqlite://PATH` or
    /// `postgres://...`. The clock stamps every write and drives eviction.
    pub fn open(url: &str, clock: Arc<dyn Clock>) -> Result<Self, IndexError> {
        let target = Target::parse(url)?;
        let display = target.display();
        let backend = match &target {
            Target::Sqlite(path) => {
                conn::ensure_parent(path)?;
                Backend::Sqlite
            }
            Target::Postgres(_) => Backend::Postgres,
        };
        let mut manager = Manager {
            target,
            read_only: None,
        };
        // One direct connection first: a wrong URL fails now with the real error instead of a
        // pool timeout, and it runs the migrations.
        let migrated = manager
            .open()
            .map_err(|source| IndexError::Connect {
                url: display.clone(),
                source,
            })
            .and_then(|mut first| conn::migrate(&mut first, &display, clock.now_millis()));
        let read_only = match migrated {
            Ok(_) => None,
            Err(err) => Some(Self::open_read_only(&mut manager, &display, err)?),
        };
        let pool = Pool::builder()
            .max_size(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 8,
            })
            .min_idle(Some(0))
            // A SQLite file connection does not go stale; a server connection may.
            .test_on_check_out(backend == Backend::Postgres)
            .connection_timeout(Duration::from_secs(30))
            .build_unchecked(manager);
        Ok(Self {
            pool,
            clock,
            backend,
            url: display,
            reservation_ttl_ms: DEFAULT_RESERVATION_TTL_MS,
            owner: Owner::current().map(Owner::to_text),
            read_only,
        })
    }

    /// After opening for writing failed with `err`: a SQLite file that exists and is already at
    /// this build's schema is opened read-only instead (a read-only mount, a full disk), so
    /// restores keep working. Returns why it is read-only; any other case fails with `err`.
    fn open_read_only(
        manager: &mut Manager,
        display: &str,
        err: IndexError,
    ) -> Result<String, IndexError> {
        if !matches!(&manager.target, Target::Sqlite(path) if path.is_file()) {
            return Err(err);
        }
        for mode in [conn::ReadOnly::Mode, conn::ReadOnly::Immutable] {
            manager.read_only = Some(mode);
            let Ok(mut c) = manager.open() else {
                continue;
            };
            if conn::schema_version(&mut c, display).is_ok_and(|v| v == conn::SCHEMA_VERSION) {
                return Ok(err.to_string());
            }
        }
        manager.read_only = None;
        Err(err)
    }

    /// Why the index was opened read-only (lookups work, writes fail), or `None` if writable.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// Which backend this index uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL it was opened with, password hidden.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The injected clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Sets after how long an uncommitted reservation may be taken over by another saver.
    pub fn set_reservation_ttl(&mut self, ttl_ms: i64) {
        self.reservation_ttl_ms = ttl_ms;
    }

    /// Sets who new reservations belong to: by default this process, so that once it dies its
    /// reservations are reclaimed at once. `None` leaves them to the reservation TTL, for
    /// reservations that outlive the process making them (a server reserving for a client whose
    /// upload may reach another server).
    pub fn set_reservation_owner(&mut self, owner: Option<&Owner>) {
        self.owner = owner.map(Owner::to_text);
    }

    fn q<'a>(
        &'a self,
        operation: &'static str,
    ) -> impl Fn(diesel::result::Error) -> IndexError + 'a {
        q(&self.url, operation)
    }

    fn conn(&self) -> Result<Conn, IndexError> {
        self.pool.get().map_err(|source| IndexError::Pool {
            url: self.url.clone(),
            source,
        })
    }

    /// Finds the entry a restore should use, and marks it used. See the module docs for the
    /// order. Empty keys are ignored.
    pub fn lookup(&self, query: &LookupQuery) -> Result<Option<LookupHit>, IndexError> {
        let mut conn = self.conn()?;
        self.lookup_on(&mut conn, query)
    }

    fn lookup_on(
        &self,
        conn: &mut AnyConnection,
        query: &LookupQuery,
    ) -> Result<Option<LookupHit>, IndexError> {
        use cache_entries::dsl as e;
        const OP: &str = "lookup";
        let keys: Vec<(usize, String)> = query
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| !k.is_empty())
            .map(|(i, k)| (i, key_lower(k)))
            .collect();
        for scope in &query.scopes {
            for (position, lower) in &keys {
                let base = || search_query(query, scope);
                let exact: Option<String> = base()
                    .filter(e::key_lower.eq(lower))
                    .first(conn)
                    .optional()
                    .map_err(self.q(OP))?;
                if let Some(id) = exact
                    && let Some(hit) = self.touch(conn, &id, *position == 0)?
                {
                    return Ok(Some(hit));
                }
                let mut prefixed = base().filter(e::key_lower.gt(lower));
                if let Some(upper) = prefix_upper_bound(lower) {
                    prefixed = prefixed.filter(e::key_lower.lt(upper));
                }
                let newest: Option<String> = prefixed
                    .order((e::created_at.desc(), e::id.desc()))
                    .first(conn)
                    .optional()
                    .map_err(self.q(OP))?;
                if let Some(id) = newest
                    && let Some(hit) = self.touch(conn, &id, false)?
                {
                    return Ok(Some(hit));
                }
            }
        }
        Ok(None)
    }

    /// Marks a found row used; `None` if it vanished meanwhile (deleted or evicted).
    fn touch(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        exact: bool,
    ) -> Result<Option<LookupHit>, IndexError> {
        use cache_entries::dsl as e;
        let now = self.clock.now_millis();
        let found = || {
            e::cache_entries
                .filter(e::id.eq(id))
                .filter(e::state.eq(COMMITTED))
                .filter(e::broken_at.is_null())
        };
        // Recording the use is best effort: a read-only or full store still restores.
        let updated = match self.read_only {
            Some(_) => None,
            None => diesel::update(found())
                .set((
                    e::last_accessed_at.eq(now),
                    e::access_count.eq(e::access_count + 1),
                ))
                .returning(cache_entries::all_columns)
                .get_result::<EntryRow>(conn)
                .optional()
                .ok(),
        };
        let updated = match updated {
            Some(row) => row,
            None => found()
                .select(EntryRow::as_select())
                .first(conn)
                .optional()
                .map_err(self.q("lookup"))?,
        };
        let Some(row) = updated else {
            return Ok(None);
        };
        let entry = row.into_entry()?;
        Ok(Some(LookupHit {
            matched_key: entry.key.clone(),
            entry,
            exact,
        }))
    }

    /// Reserves the identity (repository, scope, lower(key), version) for a save. An existing
    /// row is taken over (atomically: the unique index and a compare-and-set decide races) when
    /// it is a reservation older than the reservation TTL, a reservation whose owner is known
    /// to be dead, or a broken entry. The taken row gets a new id, so an old owner's commit fails
    /// with [`IndexError::NotReserved`].
    pub fn reserve(&self, new: &NewEntry) -> Result<Reservation, IndexError> {
        use cache_entries::dsl as e;
        const OP: &str = "reserve";
        check_key(&new.key)?;
        let now = self.clock.now_millis();
        let paths = serde_json::to_string(&new.paths).map_err(|err| IndexError::CorruptRow {
            id: String::new(),
            field: "paths",
            reason: err.to_string(),
        })?;
        let lower = key_lower(&new.key);
        let row = EntryRow {
            id: new_id(),
            repository: new.repository.clone(),
            scope: new.scope.clone(),
            key: new.key.clone(),
            key_lower: lower.clone(),
            version: new.version.clone(),
            paths,
            compression: new.compression.clone(),
            blob_digest: None,
            size_bytes: 0,
            state: RESERVED.to_string(),
            created_at: now,
            last_accessed_at: now,
            access_count: 0,
            created_by_run: new.created_by_run.clone(),
            roots: new.roots.clone(),
            broken_at: None,
            owner: self.owner.clone(),
        };
        let mut conn = self.conn()?;
        match diesel::insert_into(e::cache_entries)
            .values(&row)
            .execute(&mut conn)
        {
            Ok(_) => return Ok(Reservation::Reserved(row.id)),
            Err(diesel::result::Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(source) => return Err(self.q(OP)(source)),
        }
        let held: Option<EntryRow> = e::cache_entries
            .filter(e::repository.eq(&new.repository))
            .filter(e::version.eq(&new.version))
            .filter(e::scope.eq(&new.scope))
            .filter(e::key_lower.eq(&lower))
            .select(EntryRow::as_select())
            .first(&mut conn)
            .optional()
            .map_err(self.q(OP))?;
        let Some(held) = held else {
            // Deleted in between; the unique index settles who gets the next insert.
            return Ok(Reservation::AlreadyExists);
        };
        let replaceable =
            held.broken_at.is_some() || held.is_abandoned(now, self.reservation_ttl_ms);
        if !replaceable {
            return Ok(Reservation::AlreadyExists);
        }
        // Compare-and-set on the id (a taker changes it) and the state seen: two takers cannot
        // both win, and a reservation committed meanwhile is not replaced.
        let taken = diesel::update(e::cache_entries)
            .filter(e::id.eq(&held.id))
            .filter(e::state.eq(&held.state))
            .set((
                e::id.eq(&row.id),
                e::key.eq(&row.key),
                e::paths.eq(&row.paths),
                e::compression.eq(&row.compression),
                e::blob_digest.eq(None::<String>),
                e::size_bytes.eq(0),
                e::state.eq(RESERVED),
                e::created_at.eq(now),
                e::last_accessed_at.eq(now),
                e::access_count.eq(0),
                e::created_by_run.eq(&row.created_by_run),
                e::roots.eq(&row.roots),
                e::broken_at.eq(None::<i64>),
                e::owner.eq(&row.owner),
            ))
            .execute(&mut conn)
            .map_err(self.q(OP))?;
        Ok(if taken == 1 {
            Reservation::Reserved(row.id)
        } else {
            Reservation::AlreadyExists
        })
    }

    /// Takes the maintenance lease: waits for it with `wait`, else returns `None` when another
    /// process holds it.
    pub fn maintenance_lease(&self, wait: bool) -> Result<Option<MaintenanceLease>, IndexError> {
        #[derive(QueryableByName)]
        struct Locked {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            locked: bool,
        }
        if self.backend == Backend::Sqlite {
            return Ok(Some(MaintenanceLease { conn: None }));
        }
        let mut conn = self.conn()?;
        let AnyConnection::Postgres(c) = &mut *conn else {
            return Ok(Some(MaintenanceLease { conn: None }));
        };
        let sql = if wait {
            format!("SELECT pg_advisory_lock($1, {MAINTENANCE_LOCK_OBJECT}) IS NOT NULL AS locked")
        } else {
            format!("SELECT pg_try_advisory_lock($1, {MAINTENANCE_LOCK_OBJECT}) AS locked")
        };
        let got: Locked = diesel::sql_query(sql)
            .bind::<diesel::sql_types::Integer, _>(MAINTENANCE_LOCK_CLASS)
            .get_result(c)
            .map_err(self.q("take the maintenance lease"))?;
        Ok(got.locked.then_some(MaintenanceLease { conn: Some(conn) }))
    }

    /// Reservations nobody will commit: older than the reservation TTL, or held by an owner
    /// known to be dead. `prune` removes them, and the next save of their key takes them over.
    pub fn abandoned_reservations(&self) -> Result<Vec<Entry>, IndexError> {
        let now = self.clock.now_millis();
        let mut conn = self.conn()?;
        self.abandoned_on(&mut conn, now, self.reservation_ttl_ms)?
            .into_iter()
            .map(EntryRow::into_entry)
            .collect()
    }

    fn abandoned_on(
        &self,
        conn: &mut AnyConnection,
        now: EpochMillis,
        ttl_ms: i64,
    ) -> Result<Vec<EntryRow>, IndexError> {
        use cache_entries::dsl as e;
        let reserved: Vec<EntryRow> = e::cache_entries
            .filter(e::state.eq(RESERVED))
            .select(EntryRow::as_select())
            .order((e::created_at.asc(), e::id.asc()))
            .load(conn)
            .map_err(self.q("list abandoned reservations"))?;
        Ok(reserved
            .into_iter()
            .filter(|r| r.is_abandoned(now, ttl_ms))
            .collect())
    }

    /// Marks a committed entry broken (its archive cannot be restored): lookups skip it from
    /// now on, the next prune evicts it, and a save of the same identity replaces it. Returns
    /// whether a committed entry was marked.
    pub fn mark_broken(&self, id: &str) -> Result<bool, IndexError> {
        use cache_entries::dsl as e;
        let now = self.clock.now_millis();
        let mut conn = self.conn()?;
        let n = diesel::update(e::cache_entries.filter(e::id.eq(id)))
            .filter(e::state.eq(COMMITTED))
            .filter(e::broken_at.is_null())
            .set(e::broken_at.eq(now))
            .execute(&mut conn)
            .map_err(self.q("mark broken"))?;
        Ok(n == 1)
    }

    /// The next run number of `workflow` (the workflow file) in `repository`: 1, 2, 3, ...,
    /// incremented atomically, so concurrent runs never share one.
    pub fn next_run_number(&self, repository: &str, workflow: &str) -> Result<u64, IndexError> {
        use diesel::sql_types::Text;
        #[derive(QueryableByName)]
        struct Number {
            #[diesel(sql_type = BigInt)]
            last_number: i64,
        }
        const OP: &str = "next run number";
        // `$n` placeholders are positional on PostgreSQL and, each used once, on SQLite.
        const SQL: &str = "INSERT INTO run_numbers (repository, workflow, last_number) \
            VALUES ($1, $2, 1) ON CONFLICT (repository, workflow) \
            DO UPDATE SET last_number = run_numbers.last_number + 1 RETURNING last_number";
        let query = diesel::sql_query(SQL)
            .bind::<Text, _>(repository)
            .bind::<Text, _>(workflow);
        let mut conn = self.conn()?;
        let number: Number = match &mut *conn {
            AnyConnection::Sqlite(c) => query.get_result(c),
            AnyConnection::Postgres(c) => query.get_result(c),
        }
        .map_err(self.q(OP))?;
        Ok(to_u64(number.last_number))
    }

    /// Makes a reservation visible, pointing at a blob that is already durable. Its creation
    /// time becomes now, so "newest" means newest visible.
    pub fn commit(&self, id: &str, blob: &BlobInfo) -> Result<Entry, IndexError> {
        use cache_entries::dsl as e;
        let now = self.clock.now_millis();
        let size = to_i64("size_bytes", blob.size)?;
        let mut conn = self.conn()?;
        let row: Option<EntryRow> = diesel::update(e::cache_entries.filter(e::id.eq(id)))
            .filter(e::state.eq(RESERVED))
            .set((
                e::state.eq(COMMITTED),
                e::owner.eq(None::<String>),
                e::blob_digest.eq(&blob.digest),
                e::size_bytes.eq(size),
                e::created_at.eq(now),
                e::last_accessed_at.eq(now),
            ))
            .returning(cache_entries::all_columns)
            .get_result(&mut conn)
            .optional()
            .map_err(self.q("commit"))?;
        match row {
            Some(row) => row.into_entry(),
            None => Err(IndexError::NotReserved { id: id.to_string() }),
        }
    }

    /// Drops a reservation (the save failed). Returns whether it was still open.
    pub fn abort(&self, id: &str) -> Result<bool, IndexError> {
        use cache_entries::dsl as e;
        let mut conn = self.conn()?;
        let n = diesel::delete(e::cache_entries.filter(e::id.eq(id)))
            .filter(e::state.eq(RESERVED))
            .execute(&mut conn)
            .map_err(self.q("abort"))?;
        Ok(n == 1)
    }

    /// Records a metrics event stamped with the clock (nothing, on a read-only index).
    pub fn record_event(&self, event: &NewEvent) -> Result<(), IndexError> {
        // Metrics are not worth a warning per lookup on a read-only store; `read_only` said it.
        if self.read_only.is_some() {
            return Ok(());
        }
        let row = event_row(event, self.clock.now_millis(), None)?;
        let mut conn = self.conn()?;
        diesel::insert_into(cache_events::table)
            .values(&row)
            .execute(&mut conn)
            .map_err(self.q("record event"))?;
        Ok(())
    }

    /// Events at or after `since`, oldest first (for tests and exports).
    pub fn events(&self, since: EpochMillis) -> Result<Vec<Event>, IndexError> {
        use cache_events::dsl as v;
        let mut conn = self.conn()?;
        let rows: Vec<EventRow> = v::cache_events
            .filter(v::at.ge(since))
            .order((v::at.asc(), v::id.asc()))
            .select(EventRow::as_select())
            .load(&mut conn)
            .map_err(self.q("list events"))?;
        rows.into_iter()
            .map(|r| {
                let kind = EventKind::parse(&r.kind).ok_or_else(|| IndexError::CorruptRow {
                    id: r.id.clone(),
                    field: "kind",
                    reason: format!("unknown event kind {:?}", r.kind),
                })?;
                Ok(Event {
                    at: r.at,
                    reason: r.reason,
                    event: NewEvent {
                        repository: r.repository,
                        scope: r.scope,
                        kind,
                        key: r.key,
                        matched_key: r.matched_key,
                        bytes: r.bytes.map(to_u64),
                        duration_ms: r.duration_ms.map(to_u64),
                    },
                })
            })
            .collect()
    }

    /// Entries matching `filter`, sorted and limited.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<Entry>, IndexError> {
        use cache_entries::dsl as e;
        let mut query = e::cache_entries.select(EntryRow::as_select()).into_boxed();
        if !filter.include_reserved {
            query = query.filter(e::state.eq(COMMITTED));
        }
        if let Some(repository) = &filter.repository {
            query = query.filter(e::repository.eq(repository.clone()));
        }
        if let Some(scope) = &filter.scope {
            query = query.filter(e::scope.eq(scope.clone()));
        }
        if let Some(prefix) = filter.key_prefix.as_deref().filter(|p| !p.is_empty()) {
            let lower = key_lower(prefix);
            if let Some(upper) = prefix_upper_bound(&lower) {
                query = query.filter(e::key_lower.lt(upper));
            }
            query = query.filter(e::key_lower.ge(lower));
        }
        query = match filter.sort {
            ListSort::Created => query.order((e::created_at.desc(), e::id.desc())),
            ListSort::LastUsed => query.order((e::last_accessed_at.desc(), e::id.desc())),
            ListSort::Size => query.order((e::size_bytes.desc(), e::id.desc())),
        };
        if let Some(limit) = filter.limit {
            query = query.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let mut conn = self.conn()?;
        let rows = query.load(&mut conn).map_err(self.q("list"))?;
        rows.into_iter().map(EntryRow::into_entry).collect()
    }

    /// The entry with this id, in any state.
    pub fn get(&self, id: &str) -> Result<Option<Entry>, IndexError> {
        use cache_entries::dsl as e;
        let mut conn = self.conn()?;
        let row = e::cache_entries
            .filter(e::id.eq(id))
            .select(EntryRow::as_select())
            .first(&mut conn)
            .optional()
            .map_err(self.q("get"))?;
        row.map(EntryRow::into_entry).transpose()
    }

    /// Committed entries whose key equals `key` (case-insensitive), optionally limited to a
    /// repository and scope; newest first. Several versions or scopes may share a key.
    pub fn find_by_key(
        &self,
        repository: Option<&str>,
        scope: Option<&str>,
        key: &str,
    ) -> Result<Vec<Entry>, IndexError> {
        use cache_entries::dsl as e;
        let mut query = e::cache_entries
            .select(EntryRow::as_select())
            .filter(e::key_lower.eq(key_lower(key)))
            .filter(e::state.eq(COMMITTED))
            .into_boxed();
        if let Some(repository) = repository {
            query = query.filter(e::repository.eq(repository.to_string()));
        }
        if let Some(scope) = scope {
            query = query.filter(e::scope.eq(scope.to_string()));
        }
        let mut conn = self.conn()?;
        let rows = query
            .order((e::created_at.desc(), e::id.desc()))
            .load(&mut conn)
            .map_err(self.q("find by key"))?;
        rows.into_iter().map(EntryRow::into_entry).collect()
    }

    /// Committed entries whose blob is `digest` (blobs are shared by identical archives).
    pub fn find_by_digest(&self, digest: &str) -> Result<Vec<Entry>, IndexError> {
        use cache_entries::dsl as e;
        let mut conn = self.conn()?;
        let rows = e::cache_entries
            .filter(e::blob_digest.eq(digest))
            .select(EntryRow::as_select())
            .load(&mut conn)
            .map_err(self.q("find by digest"))?;
        rows.into_iter().map(EntryRow::into_entry).collect()
    }

    /// Deletes an entry (any state); returns it if it existed. The blob is the caller's business
    /// (it may be shared): see [`crate::store::Store::delete`].
    pub fn delete(&self, id: &str) -> Result<Option<Entry>, IndexError> {
        use cache_entries::dsl as e;
        let mut conn = self.conn()?;
        let row: Option<EntryRow> = diesel::delete(e::cache_entries.filter(e::id.eq(id)))
            .returning(cache_entries::all_columns)
            .get_result(&mut conn)
            .optional()
            .map_err(self.q("delete"))?;
        row.map(EntryRow::into_entry).transpose()
    }

    /// Whether any row (committed or not) still points at `digest`.
    pub fn is_referenced(&self, digest: &str) -> Result<bool, IndexError> {
        use cache_entries::dsl as e;
        let mut conn = self.conn()?;
        let n: i64 = e::cache_entries
            .filter(e::blob_digest.eq(digest))
            .count()
            .get_result(&mut conn)
            .map_err(self.q("check blob reference"))?;
        Ok(n > 0)
    }

    /// Every blob digest a row points at.
    pub fn referenced_digests(&self) -> Result<BTreeSet<String>, IndexError> {
        use cache_entries::dsl as e;
        let mut conn = self.conn()?;
        let digests: Vec<Option<String>> = e::cache_entries
            .filter(e::blob_digest.is_not_null())
            .select(e::blob_digest)
            .distinct()
            .load(&mut conn)
            .map_err(self.q("list blob references"))?;
        Ok(digests.into_iter().flatten().collect())
    }

    /// Current content, plus events at or after `since`, optionally for one repository.
    pub fn stats(&self, since: EpochMillis, repository: Option<&str>) -> Result<Stats, IndexError> {
        use cache_entries::dsl as e;
        use cache_events::dsl as v;
        const OP: &str = "stats";
        const TOP_KEYS: i64 = 10;
        // SUM over BIGINT is NUMERIC on PostgreSQL; cast back so both backends give a BIGINT.
        let sum_size = || sql::<BigInt>("CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT)");
        let sum_bytes = || sql::<BigInt>("CAST(COALESCE(SUM(bytes), 0) AS BIGINT)");
        let mut conn = self.conn()?;

        let mut entries = e::cache_entries
            .group_by(e::state)
            .select((e::state, count_star(), sum_size()))
            .into_boxed();
        if let Some(repository) = repository {
            entries = entries.filter(e::repository.eq(repository.to_string()));
        }
        let by_state: Vec<(String, i64, i64)> = entries.load(&mut conn).map_err(self.q(OP))?;
        let mut stats = Stats::default();
        for (state, count, size) in by_state {
            match state.as_str() {
                COMMITTED => {
                    stats.entries = to_u64(count);
                    stats.total_size_bytes = to_u64(size);
                }
                _ => stats.reserved += to_u64(count),
            }
        }

        let mut events = v::cache_events
            .filter(v::at.ge(since))
            .group_by(v::kind)
            .select((v::kind, count_star(), sum_bytes()))
            .into_boxed();
        if let Some(repository) = repository {
            events = events.filter(v::repository.eq(repository.to_string()));
        }
        let by_kind: Vec<(String, i64, i64)> = events.load(&mut conn).map_err(self.q(OP))?;
        for (kind, count, bytes) in by_kind {
            let Some(kind) = EventKind::parse(&kind) else {
                continue;
            };
            stats.events.insert(kind, to_u64(count));
            match kind {
                EventKind::HitExact | EventKind::HitPartial => {
                    stats.bytes_restored += to_u64(bytes)
                }
                EventKind::Save => stats.bytes_saved += to_u64(bytes),
                _ => {}
            }
        }
        let hits = stats.count(EventKind::HitExact) + stats.count(EventKind::HitPartial);
        let lookups = hits + stats.count(EventKind::Miss);
        stats.hit_rate = if lookups == 0 {
            0.0
        } else {
            hits as f64 / lookups as f64
        };

        let mut top = v::cache_events
            .filter(v::at.ge(since))
            .filter(
                v::kind
                    .eq(EventKind::HitExact.as_str())
                    .or(v::kind.eq(EventKind::HitPartial.as_str())),
            )
            .filter(v::matched_key.is_not_null())
            .group_by(v::matched_key)
            .select((v::matched_key, count_star()))
            .order((count_star().desc(), v::matched_key.asc()))
            .limit(TOP_KEYS)
            .into_boxed();
        if let Some(repository) = repository {
            top = top.filter(v::repository.eq(repository.to_string()));
        }
        let top: Vec<(Option<String>, i64)> = top.load(&mut conn).map_err(self.q(OP))?;
        stats.top_keys = top
            .into_iter()
            .filter_map(|(key, hits)| {
                key.map(|key| KeyHits {
                    key,
                    hits: to_u64(hits),
                })
            })
            .collect();
        Ok(stats)
    }

    /// Applies the eviction policy: abandoned reservations (older than the reservation TTL, or
    /// held by a dead owner), broken entries, entries unused for `ttl_days`, then
    /// least-recently-used entries until each repository fits its size budget. Returns what was
    /// (or, with `dry_run`, would be) removed; records an `evict` event with its reason per
    /// removed entry. Only rows committed before it started are candidates, and each is deleted
    /// only if it is still as it was seen (a reservation not committed meanwhile, an entry not
    /// used meanwhile). Blobs are the caller's business: see [`crate::store::Store::evict`].
    pub fn evict(&self, policy: &EvictionPolicy) -> Result<Vec<Entry>, IndexError> {
        use cache_entries::dsl as e;
        const OP: &str = "evict";
        let now = self.clock.now_millis();
        let mut conn = self.conn()?;
        write_tx(&mut conn, &self.url, OP, |conn| {
            let mut doomed: Vec<(EntryRow, Option<&'static str>)> = self
                .abandoned_on(conn, now, policy.reservation_ttl_ms)?
                .into_iter()
                .map(|r| (r, None))
                .collect();
            let committed = || {
                e::cache_entries
                    .filter(e::state.eq(COMMITTED))
                    .filter(e::created_at.le(now))
                    .select(EntryRow::as_select())
            };
            doomed.extend(
                committed()
                    .filter(e::broken_at.is_not_null())
                    .order((e::broken_at.asc(), e::id.asc()))
                    .load(conn)
                    .map_err(self.q(OP))?
                    .into_iter()
                    .map(|r| (r, Some("broken"))),
            );
            doomed.extend(
                committed()
                    .filter(e::broken_at.is_null())
                    .filter(e::last_accessed_at.lt(now.saturating_sub(policy.ttl_millis())))
                    .order((e::last_accessed_at.asc(), e::id.asc()))
                    .load(conn)
                    .map_err(self.q(OP))?
                    .into_iter()
                    .map(|r| (r, Some("unused"))),
            );
            let aged: BTreeSet<String> = doomed.iter().map(|(r, _)| r.id.clone()).collect();

            let budget = i64::try_from(policy.max_size_bytes).unwrap_or(i64::MAX);
            let sum_size = sql::<BigInt>("CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT)");
            let totals: Vec<(String, i64)> = e::cache_entries
                .filter(e::state.eq(COMMITTED))
                .filter(e::created_at.le(now))
                .group_by(e::repository)
                .select((e::repository, sum_size))
                .load(conn)
                .map_err(self.q(OP))?;
            for (repository, mut total) in totals {
                total -= doomed
                    .iter()
                    .filter(|(r, _)| r.repository == repository && r.state == COMMITTED)
                    .map(|(r, _)| r.size_bytes)
                    .sum::<i64>();
                if total <= budget {
                    continue;
                }
                let lru: Vec<EntryRow> = committed()
                    .filter(e::repository.eq(&repository))
                    .order((e::last_accessed_at.asc(), e::created_at.asc(), e::id.asc()))
                    .load(conn)
                    .map_err(self.q(OP))?;
                for row in lru {
                    if total <= budget {
                        break;
                    }
                    if aged.contains(&row.id) {
                        continue;
                    }
                    total -= row.size_bytes;
                    doomed.push((row, Some("size")));
                }
            }

            if policy.dry_run {
                return doomed.into_iter().map(|(r, _)| r.into_entry()).collect();
            }
            let mut removed = Vec::with_capacity(doomed.len());
            for (row, reason) in doomed {
                let n = diesel::delete(e::cache_entries.filter(e::id.eq(&row.id)))
                    .filter(e::state.eq(&row.state))
                    .filter(e::last_accessed_at.eq(row.last_accessed_at))
                    .execute(conn)
                    .map_err(self.q(OP))?;
                if n == 0 {
                    continue;
                }
                if let Some(reason) = reason {
                    let event = NewEvent {
                        repository: row.repository.clone(),
                        scope: row.scope.clone(),
                        kind: EventKind::Evict,
                        key: row.key.clone(),
                        matched_key: None,
                        bytes: Some(to_u64(row.size_bytes)),
                        duration_ms: None,
                    };
                    diesel::insert_into(cache_events::table)
                        .values(event_row(&event, now, Some(reason))?)
                        .execute(conn)
                        .map_err(self.q(OP))?;
                }
                removed.push(row.into_entry()?);
            }
            Ok(removed)
        })
    }

    /// SQLite's `PRAGMA integrity_check` (`["ok"]` when healthy); `None` on PostgreSQL, which has
    /// no built-in equivalent. Run through the index because the file's "C" collation is only
    /// known to runner's connections.
    pub fn integrity_check(&self) -> Result<Option<Vec<String>>, IndexError> {
        #[derive(QueryableByName)]
        struct Check {
            #[diesel(sql_type = diesel::sql_types::Text)]
            integrity_check: String,
        }
        let mut conn = self.conn()?;
        match &mut *conn {
            AnyConnection::Sqlite(c) => {
                let rows: Vec<Check> = diesel::sql_query("PRAGMA integrity_check")
                    .load(c)
                    .map_err(self.q("integrity check"))?;
                Ok(Some(rows.into_iter().map(|r| r.integrity_check).collect()))
            }
            AnyConnection::Postgres(_) => Ok(None),
        }
    }

    /// The live schema as the database reports it (for the schema test and `cache verify`).
    pub fn describe_schema(&self) -> Result<SchemaDescription, IndexError> {
        let mut conn = self.conn()?;
        introspect::describe(&mut conn, &self.url)
    }
}

/// The committed entries of one (repository, version, scope), selecting only `id`: every
/// column the lookup filters, orders or returns is in the covering index cache_entries_newest,
/// so SQLite searches it without visiting table rows; `touch` then reads the one row found.
fn search_query<'a>(
    query: &'a LookupQuery,
    scope: &'a str,
) -> cache_entries::BoxedQuery<'a, conn::MultiBackend, diesel::sql_types::Text> {
    use cache_entries::dsl as e;
    e::cache_entries
        .filter(e::repository.eq(&query.repository))
        .filter(e::version.eq(&query.version))
        .filter(e::scope.eq(scope))
        .filter(e::state.eq(COMMITTED))
        .filter(e::broken_at.is_null())
        .select(e::id)
        .into_boxed()
}

fn event_row(
    event: &NewEvent,
    at: EpochMillis,
    reason: Option<&str>,
) -> Result<EventRow, IndexError> {
    Ok(EventRow {
        id: new_id(),
        at,
        repository: event.repository.clone(),
        scope: event.scope.clone(),
        kind: event.kind.as_str().to_string(),
        key: event.key.clone(),
        matched_key: event.matched_key.clone(),
        bytes: event.bytes.map(|b| to_i64("bytes", b)).transpose()?,
        duration_ms: event
            .duration_ms
            .map(|d| to_i64("duration_ms", d))
            .transpose()?,
        reason: reason.map(str::to_string),
    })
}

/// Column names per table as diesel knows them (to compare with [`Index::describe_schema`]).
pub fn diesel_columns() -> Vec<(&'static str, Vec<&'static str>)> {
    schema::diesel_columns()
}

mod introspect;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(QueryableByName)]
    struct PlanRow {
        #[diesel(sql_type = diesel::sql_types::Text)]
        detail: String,
    }

    /// The prefix search must be a range scan answered from the covering index alone: no table
    /// scan, no table row visits, no LIKE.
    #[test]
    fn prefix_search_is_an_index_only_range_scan_on_sqlite() -> Result<(), IndexError> {
        let dir = tempfile::tempdir().map_err(|source| IndexError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let url = format!("sqlite://{}", dir.path().join("i.sqlite").display());
        let index = Index::open(&url, Arc::new(crate::clock::ManualClock::new(0)))?;
        let query = LookupQuery {
            repository: "o/r".into(),
            scopes: vec!["refs/heads/main".into()],
            keys: vec!["npm-".into()],
            version: "v".into(),
        };
        // Record the SQL the real lookup sends.
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let mut conn = index.conn()?;
        let sink = Arc::clone(&seen);
        conn.set_instrumentation(move |event: diesel::connection::InstrumentationEvent<'_>| {
            if let diesel::connection::InstrumentationEvent::StartQuery { query, .. } = event
                && let Ok(mut seen) = sink.lock()
            {
                seen.push(query.to_string());
            }
        });
        assert_eq!(index.lookup_on(&mut conn, &query)?, None);
        let statements = seen.lock().map(|s| s.clone()).unwrap_or_default();
        let sql = statements
            .iter()
            .find(|s| s.contains("ORDER BY"))
            .map(|s| s.split(" -- binds:").next().unwrap_or_default().to_string())
            .unwrap_or_default();
        assert!(sql.contains("key_lower"), "{statements:?}");
        assert!(!sql.to_ascii_uppercase().contains("LIKE"), "{sql}");
        let plan: Vec<PlanRow> = diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
            .load(&mut *conn)
            .map_err(index.q("explain"))?;
        let plan: Vec<String> = plan.into_iter().map(|r| r.detail).collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("USING COVERING INDEX cache_entries_newest")
                    && d.contains("key_lower>? AND key_lower<?")),
            "{sql}\n{plan:?}"
        );
        assert!(!plan.iter().any(|d| d.starts_with("SCAN")), "{plan:?}");
        Ok(())
    }
}
