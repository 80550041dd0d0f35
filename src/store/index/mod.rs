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

mod analytics;
mod audit;
mod conn;
mod evict;
mod history;
mod introspect;
mod lookup;
mod model;
mod page;
mod policy;
mod prefix;
mod reserve;
mod rows;
mod schema;
mod stats;
mod tally;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::r2d2::{Pool, PooledConnection};

use crate::clock::Clock;
use crate::store::owner::Owner;
pub use analytics::{DetailedEvent, EventDetail};
pub use audit::{AuditRecord, Deletion, MANUAL};
pub use conn::AnyConnection;
use conn::{Manager, Target};
pub use evict::MaintenanceLease;
pub use history::{BulkEntry, DAY_MILLIS, DayActivity, Eviction, KeyMatch, RestoredKey};
pub use model::{
    Backend, ColumnDescription, Entry, EntryState, EntryUse, Event, EventKind, IndexDescription,
    KeyHits, ListFilter, ListSort, LookupHit, LookupQuery, LookupRecord, NewEntry, NewEvent,
    Reservation, SchemaDescription, Stats,
};
pub use page::EntryPage;
pub use policy::{
    DEFAULT_MAX_SIZE_BYTES, DEFAULT_RESERVATION_TTL_MS, DEFAULT_TTL_DAYS, EvictionPolicy,
    parse_size,
};
pub use prefix::prefix_upper_bound;
pub use rows::key_lower;
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

/// A handle on the index database: a connection pool plus the injected clock. Cheap to share by
/// reference across threads; a clone shares the pool and this process's write gate.
#[derive(Clone)]
pub struct Index {
    pool: Pool<Manager>,
    clock: Arc<dyn Clock>,
    backend: Backend,
    url: String,
    reservation_ttl_ms: i64,
    owner: Option<String>,
    read_only: Option<String>,
    /// This process's SQLite writers queue here; see [`Index::write_gate`].
    writers: Arc<std::sync::Mutex<()>>,
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
            writers: Arc::default(),
        })
    }

    /// Queues this process's writes to a SQLite index before they reach SQLite's own lock.
    /// SQLite's busy handler retries after sleeping 1, 2, 5, 10… ms, so eight lookups each
    /// marking an entry used waited milliseconds for a lock held for microseconds (the p99 of a
    /// lookup under load); a mutex hands it over at once. Writers in other processes still
    /// meet the busy timeout. PostgreSQL locks rows, so it needs no gate. Never held while
    /// taking a second pooled connection, so it cannot deadlock against the pool.
    pub(super) fn write_gate(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(
                self.writers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            ),
            Backend::Postgres => None,
        }
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
            #[cfg(feature = "postgres")]
            AnyConnection::Postgres(_) => Ok(None),
        }
    }

    /// The live schema as the database reports it (for the schema test and `cache verify`).
    pub fn describe_schema(&self) -> Result<SchemaDescription, IndexError> {
        let mut conn = self.conn()?;
        introspect::describe(&mut conn, &self.url)
    }
}

/// Column names per table as diesel knows them (to compare with [`Index::describe_schema`]).
pub fn diesel_columns() -> Vec<(&'static str, Vec<&'static str>)> {
    schema::diesel_columns()
}

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
        assert_eq!(index.lookup_on(&mut conn, &query, true)?, None);
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
