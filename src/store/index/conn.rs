//! Connections: the backend enum, the r2d2 manager that opens and configures them, write
//! transactions that do not deadlock on SQLite, and the versioned migration runner.

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;

use super::{IndexError, q};

/// One connection type over both backends, so every query is written once.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// A PostgreSQL server.
    Postgres(diesel::PgConnection),
    /// A SQLite file.
    Sqlite(diesel::SqliteConnection),
}

/// How long a SQLite writer waits for another process's write lock before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The schema version `schema.sql` describes. A change to `schema.sql` bumps it; a database of
/// an older version is rebuilt from `schema.sql` keeping its rows (see [`rebuild`]), so a column
/// added later must be nullable or have a default.
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// The one canonical DDL.
const SCHEMA: &str = include_str!("../../../schema.sql");

/// PostgreSQL has no collation named "BINARY"; `schema.sql` orders key_lower by it (SQLite's
/// built-in bytewise order), so it is made a copy of "C" first.
const PG_PRELUDE: &str = "CREATE COLLATION IF NOT EXISTS \"BINARY\" FROM \"C\"";

/// The database a URL names.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// `sqlite://PATH`.
    Sqlite(PathBuf),
    /// `postgres://...` or `postgresql://...`, passed to libpq as is.
    Postgres(String),
}

impl Target {
    /// Parses a store URL.
    pub(crate) fn parse(url: &str) -> Result<Self, IndexError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(IndexError::InvalidUrl {
                    url: url.to_string(),
                    reason: "missing file path after sqlite://".into(),
                });
            }
            return Ok(Target::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Target::Postgres(url.to_string()));
        }
        Err(IndexError::InvalidUrl {
            url: redact(url),
            reason: "expected sqlite://PATH or postgres://...".into(),
        })
    }

    /// The URL with any password hidden, for messages.
    pub(crate) fn display(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("sqlite://{}", path.display()),
            Target::Postgres(url) => redact(url),
        }
    }
}

/// Hides the password of `scheme://user:password@host/...`.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}

/// Opens and configures connections for the pool.
#[derive(Debug)]
pub(crate) struct Manager {
    pub(crate) target: Target,
    /// For a SQLite file that cannot be written: how to open it without writing.
    pub(crate) read_only: Option<ReadOnly>,
}

/// Ways to open a SQLite file that cannot be written, tried in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOnly {
    /// `mode=ro`: read-only, still sharing locks and the WAL index with writers; needs the
    /// `-shm` file to exist or be creatable.
    Mode,
    /// `immutable=1`: no locks and no `-shm` at all; for a file on a read-only medium, which
    /// nobody can be writing.
    Immutable,
}

/// `path` as a SQLite URI filename with the given query.
fn sqlite_uri(path: &str, query: &str) -> String {
    let mut uri = String::from("file:");
    for c in path.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    format!("{uri}?{query}")
}

impl Manager {
    /// Opens one configured connection.
    pub(crate) fn open(&self) -> Result<AnyConnection, diesel::ConnectionError> {
        match &self.target {
            Target::Sqlite(path) => {
                let path = path.to_str().ok_or_else(|| {
                    diesel::ConnectionError::InvalidConnectionUrl(format!(
                        "{}: SQLite path is not valid UTF-8",
                        path.display()
                    ))
                })?;
                let mut conn = match self.read_only {
                    None => diesel::SqliteConnection::establish(path)?,
                    Some(ReadOnly::Mode) => {
                        diesel::SqliteConnection::establish(&sqlite_uri(path, "mode=ro"))?
                    }
                    Some(ReadOnly::Immutable) => {
                        diesel::SqliteConnection::establish(&sqlite_uri(path, "immutable=1"))?
                    }
                };
                // The busy timeout first: any later statement may need a lock another process
                // holds (for instance while it switches a fresh file to WAL).
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                    SQLITE_BUSY_TIMEOUT.as_millis()
                ))
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                // schema.sql declares key_lower COLLATE "C"; bytewise order is what SQLite's
                // BINARY does and what the prefix range scan needs.
                register_c_collation(&mut conn)
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(AnyConnection::Sqlite(conn))
            }
            Target::Postgres(url) => Ok(AnyConnection::Postgres(diesel::PgConnection::establish(
                url,
            )?)),
        }
    }
}

/// Registers the bytewise "C" collation and proves its direction with a query: diesel 2.3 hands
/// the callback its operands in swapped order, and a future fix must not silently invert every
/// range scan.
fn register_c_collation(conn: &mut diesel::SqliteConnection) -> QueryResult<()> {
    use diesel::sql_types::Integer;
    conn.register_collation("C", |a: &str, b: &str| a.as_bytes().cmp(b.as_bytes()))?;
    let probe = || {
        diesel::select(diesel::dsl::sql::<Integer>(
            "CASE WHEN 'a' < 'b' COLLATE \"C\" THEN 1 ELSE 0 END",
        ))
    };
    if probe().get_result::<i32>(conn)? == 1 {
        return Ok(());
    }
    conn.register_collation("C", |a: &str, b: &str| b.as_bytes().cmp(a.as_bytes()))?;
    if probe().get_result::<i32>(conn)? == 1 {
        Ok(())
    } else {
        Err(diesel::result::Error::QueryBuilderError(
            "SQLite collation \"C\" does not order 'a' before 'b'".into(),
        ))
    }
}

impl diesel::r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        self.open().map_err(diesel::r2d2::Error::ConnectionError)
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        conn.is_broken()
    }
}

/// Creates the directory that will hold a SQLite file.
pub(crate) fn ensure_parent(path: &Path) -> Result<(), IndexError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|source| IndexError::Io {
                path: parent.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

/// Runs `f` in a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the write lock is taken
/// up front and waits on the busy timeout, instead of a deferred read lock failing to upgrade
/// with SQLITE_BUSY while another process writes.
pub(crate) fn write_tx<T>(
    conn: &mut AnyConnection,
    index: &str,
    operation: &'static str,
    f: impl FnOnce(&mut AnyConnection) -> Result<T, IndexError>,
) -> Result<T, IndexError> {
    let begun = match conn {
        AnyConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")
        }
        AnyConnection::Postgres(c) => AnsiTransactionManager::begin_transaction(c),
    };
    begun.map_err(q(index, operation))?;
    match f(conn) {
        Ok(value) => {
            <AnyConnection as Connection>::TransactionManager::commit_transaction(conn)
                .map_err(q(index, operation))?;
            Ok(value)
        }
        Err(err) => {
            // The original error matters more than a failed rollback; a broken connection is
            // dropped by the pool.
            let _ = <AnyConnection as Connection>::TransactionManager::rollback_transaction(conn);
            Err(err)
        }
    }
}

diesel::table! {
    schema_migrations (version) {
        version -> BigInt,
        applied_at -> BigInt,
    }
}

/// Brings the schema up to [`SCHEMA_VERSION`]. Safe when several processes open a fresh store
/// at once: SQLite serialises them on the write lock, PostgreSQL on an advisory lock.
pub(crate) fn migrate(conn: &mut AnyConnection, index: &str, now: i64) -> Result<i64, IndexError> {
    // Switching a fresh file to WAL needs an exclusive lock and SQLite answers SQLITE_BUSY at
    // once (the busy handler is not consulted) while another process is doing the same, so
    // several runners opening a new store together retry instead of failing.
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        match migrate_once(conn, index, now) {
            Err(err) if err.is_sqlite_busy() && started.elapsed() < SQLITE_BUSY_TIMEOUT => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

/// The schema version a database is at (0 for an empty one), without changing anything.
pub(crate) fn schema_version(conn: &mut AnyConnection, index: &str) -> Result<i64, IndexError> {
    let current: Option<i64> = schema_migrations::table
        .select(diesel::dsl::max(schema_migrations::version))
        .first(conn)
        .map_err(q(index, "read schema version"))?;
    Ok(current.unwrap_or(0))
}

fn migrate_once(conn: &mut AnyConnection, index: &str, now: i64) -> Result<i64, IndexError> {
    const OP: &str = "migrate";
    if let AnyConnection::Sqlite(c) = conn {
        // Persistent in the file; readers then never block the writer. Skipped when already
        // set, so a store that is already current opens without writing.
        let mode: Vec<JournalMode> = diesel::sql_query("PRAGMA journal_mode")
            .load(c)
            .map_err(q(index, OP))?;
        if !mode
            .iter()
            .any(|m| m.journal_mode.eq_ignore_ascii_case("wal"))
        {
            c.batch_execute("PRAGMA journal_mode = WAL;")
                .map_err(q(index, OP))?;
        }
    }
    // Reading first lets a current store open without a write transaction.
    if let Ok(current) = schema_version(conn, index)
        && current >= SCHEMA_VERSION
    {
        return check_version(current);
    }
    write_tx(conn, index, OP, |conn| {
        if let AnyConnection::Postgres(c) = conn {
            // Arbitrary constant: "runner" in ASCII.
            diesel::sql_query("SELECT pg_advisory_xact_lock(125762000108914)")
                .execute(c)
                .map_err(q(index, OP))?;
        }
        conn.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (\
             version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .map_err(q(index, OP))?;
        let current = schema_version(conn, index)?;
        if current >= SCHEMA_VERSION {
            return check_version(current);
        }
        let applied = if current == 0 {
            create(conn, index)
        } else {
            rebuild(conn, index, current)
        };
        applied.map_err(|err| match err {
            IndexError::Query { index, source, .. } => IndexError::Migration {
                index,
                version: SCHEMA_VERSION,
                source,
            },
            other => other,
        })?;
        diesel::insert_into(schema_migrations::table)
            .values((
                schema_migrations::version.eq(SCHEMA_VERSION),
                schema_migrations::applied_at.eq(now),
            ))
            .execute(conn)
            .map_err(q(index, OP))?;
        Ok(SCHEMA_VERSION)
    })
}

#[derive(QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = diesel::sql_types::Text)]
    journal_mode: String,
}

/// A database this build can use as it is, or the error naming a newer one.
pub(crate) fn check_version(current: i64) -> Result<i64, IndexError> {
    if current > SCHEMA_VERSION {
        return Err(IndexError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(current)
}

/// Applies `schema.sql` to an empty database.
fn create(conn: &mut AnyConnection, index: &str) -> Result<(), IndexError> {
    const OP: &str = "create schema";
    if let AnyConnection::Postgres(c) = conn {
        c.batch_execute(PG_PRELUDE).map_err(q(index, OP))?;
    }
    conn.batch_execute(SCHEMA).map_err(q(index, OP))
}

/// Brings a database of schema version `from` to `schema.sql`: the old tables are renamed aside,
/// `schema.sql` creates the new ones, and every column both share is copied over. SQLite cannot
/// change a column's collation or constraints in place, so this is its documented way of
/// altering a table, done the same way on both backends.
fn rebuild(conn: &mut AnyConnection, index: &str, from: i64) -> Result<(), IndexError> {
    const OP: &str = "upgrade schema";
    let old = super::introspect::describe(conn, index)?;
    let run =
        |conn: &mut AnyConnection, sql: String| conn.batch_execute(&sql).map_err(q(index, OP));
    for name in old.indexes.keys() {
        run(conn, format!("DROP INDEX {}", quote(name)))?;
    }
    let aside = |table: &str| format!("{table}_v{from}");
    for table in old.tables.keys() {
        run(
            conn,
            format!(
                "ALTER TABLE {} RENAME TO {}",
                quote(table),
                quote(&aside(table))
            ),
        )?;
    }
    if let AnyConnection::Postgres(c) = conn {
        // A PostgreSQL primary key index keeps its name when its table is renamed; the new
        // table's would collide with it.
        for (name, table) in super::introspect::pg_primary_key_indexes(c, index)? {
            c.batch_execute(&format!(
                "ALTER INDEX {} RENAME TO {}",
                quote(&name),
                quote(&format!("{table}_pkey"))
            ))
            .map_err(q(index, OP))?;
        }
    }
    create(conn, index)?;
    let new = super::introspect::describe(conn, index)?;
    for (table, columns) in &old.tables {
        if let Some(now) = new.tables.get(table) {
            let shared: Vec<String> = columns
                .iter()
                .filter(|c| now.iter().any(|n| n.name == c.name))
                .map(|c| quote(&c.name))
                .collect();
            let shared = shared.join(", ");
            run(
                conn,
                format!(
                    "INSERT INTO {} ({shared}) SELECT {shared} FROM {}",
                    quote(table),
                    quote(&aside(table))
                ),
            )?;
        }
        run(conn, format!("DROP TABLE {}", quote(&aside(table))))?;
    }
    Ok(())
}

/// Quotes an identifier (they come from the catalog, never from users).
pub(crate) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        let cases = [
            (
                "postgres://u:secret@h:5432/db",
                "postgres://u:***@h:5432/db",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "postgres://h/db?password=x:y@z",
                "postgres://h/db?password=x:y@z",
            ),
            ("sqlite:///tmp/a:b@c", "sqlite:///tmp/a:b@c"),
            ("nonsense", "nonsense"),
        ];
        for (url, want) in cases {
            assert_eq!(redact(url), want, "{url}");
        }
    }

    #[test]
    fn parses_urls() {
        assert!(
            matches!(Target::parse("sqlite:///a/b.db"), Ok(Target::Sqlite(p)) if p == Path::new("/a/b.db"))
        );
        assert!(
            matches!(Target::parse("sqlite://rel.db"), Ok(Target::Sqlite(p)) if p == Path::new("rel.db"))
        );
        assert!(matches!(
            Target::parse("postgresql://h/db"),
            Ok(Target::Postgres(_))
        ));
        for bad in ["sqlite://", "mysql://h/db", "/plain/path", ""] {
            assert!(
                matches!(Target::parse(bad), Err(IndexError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }
}
