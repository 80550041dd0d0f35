//! The live schema matches `schema.sql` (and diesel's view of it) on every backend; migrations
//! run once, even when several openers race on a fresh database.

use std::collections::BTreeMap;
use std::sync::Arc;

use diesel::prelude::*;
use runner::clock::ManualClock;
use runner::store::index::{
    ColumnDescription, Index, IndexDescription, SchemaDescription, diesel_columns,
};

use super::{Harness, PgSchema, T0, raw_execute};
use crate::both_backends;

both_backends!(
    live_schema_matches_schema_sql,
    schema_drift_is_detected,
    concurrent_first_opens_migrate_once,
    key_lower_uses_code_point_collation,
    version_1_database_is_upgraded_keeping_its_rows,
    version_2_database_is_upgraded_keeping_its_rows,
    stock_shells_read_and_write_the_index,
);

/// Splits `schema.sql` into statements with comments removed.
fn statements(sql: &str) -> Vec<String> {
    let without_comments: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    without_comments
        .split(';')
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Splits on commas outside parentheses.
fn top_level_items(body: &str) -> Vec<String> {
    let (mut depth, mut current, mut out) = (0i32, String::new(), Vec::new());
    for c in body.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// What `schema.sql` declares, in the shape [`Index::describe_schema`] reports.
fn expected_from_schema_sql() -> SchemaDescription {
    let sql = std::fs::read_to_string(crate::support::repo_root().join("schema.sql"))
        .expect("read schema.sql");
    let mut out = SchemaDescription::default();
    for stmt in statements(&sql) {
        let upper = stmt.to_ascii_uppercase();
        if let Some(rest) = upper.strip_prefix("CREATE TABLE ") {
            let name = rest
                .split_whitespace()
                .next()
                .expect("table name")
                .to_ascii_lowercase();
            let open = stmt.find('(').expect("(");
            let close = stmt.rfind(')').expect(")");
            let mut columns = Vec::new();
            for item in top_level_items(&stmt[open + 1..close]) {
                let mut words = item.split_whitespace();
                let first = words.next().expect("column name");
                if ["PRIMARY", "UNIQUE", "CHECK", "CONSTRAINT", "FOREIGN"]
                    .contains(&first.to_ascii_uppercase().as_str())
                {
                    continue;
                }
                let item_upper = item.to_ascii_uppercase();
                columns.push(ColumnDescription {
                    name: first.to_string(),
                    sql_type: words.next().expect("column type").to_ascii_uppercase(),
                    not_null: item_upper.contains("NOT NULL") || item_upper.contains("PRIMARY KEY"),
                });
            }
            out.tables.insert(name, columns);
        } else if upper.starts_with("CREATE INDEX ") || upper.starts_with("CREATE UNIQUE INDEX ") {
            let unique = upper.starts_with("CREATE UNIQUE");
            let words: Vec<&str> = stmt.split_whitespace().collect();
            let at = words
                .iter()
                .position(|w| w.eq_ignore_ascii_case("INDEX"))
                .expect("INDEX");
            let name = words[at + 1].to_string();
            let table = words[at + 3].to_string();
            let open = stmt.find('(').expect("(");
            let close = stmt.rfind(')').expect(")");
            let columns = top_level_items(&stmt[open + 1..close]);
            out.indexes.insert(
                name,
                IndexDescription {
                    table,
                    columns,
                    unique,
                },
            );
        } else {
            panic!("schema.sql has a statement this test does not understand: {stmt}");
        }
    }
    out
}

fn live_schema_matches_schema_sql(h: &Harness) {
    let expected = expected_from_schema_sql();
    assert!(
        expected.tables.contains_key("cache_entries") && expected.indexes.len() >= 4,
        "{expected:?}"
    );
    let live = h.index().describe_schema().expect("describe");
    assert_eq!(
        live, expected,
        "{}: live schema differs from schema.sql",
        h.backend
    );
    // And diesel's table! definitions name the same columns in the same order.
    let from_diesel: BTreeMap<String, Vec<String>> = diesel_columns()
        .into_iter()
        .map(|(t, cols)| {
            (
                t.to_string(),
                cols.into_iter().map(str::to_string).collect(),
            )
        })
        .collect();
    let from_live: BTreeMap<String, Vec<String>> = live
        .tables
        .iter()
        .map(|(t, cols)| (t.clone(), cols.iter().map(|c| c.name.clone()).collect()))
        .collect();
    assert_eq!(from_diesel, from_live, "{}", h.backend);
}

/// A database of the harness's backend that nobody has opened yet (and its schema guard).
fn fresh_database(h: &Harness, name: &str) -> (String, Option<PgSchema>) {
    if h.backend == "sqlite" {
        let path = h.dir.path().join(name).join("index.sqlite");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        (format!("sqlite://{}", path.display()), None)
    } else {
        let pg = PgSchema::create().expect("postgres configured");
        (pg.url(), Some(pg))
    }
}

fn migration_versions(url: &str) -> Vec<i64> {
    #[derive(QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        version: i64,
    }
    let sql = "SELECT version FROM schema_migrations ORDER BY version";
    let rows: Vec<V> = if let Some(path) = url.strip_prefix("sqlite://") {
        let mut conn = diesel::SqliteConnection::establish(path).expect("open sqlite");
        diesel::sql_query(sql).load(&mut conn).expect(sql)
    } else {
        let mut conn = diesel::PgConnection::establish(url).expect("open postgres");
        diesel::sql_query(sql).load(&mut conn).expect(sql)
    };
    rows.into_iter().map(|v| v.version).collect()
}

/// The comparison above must be able to fail: break the live schema and watch it notice.
fn schema_drift_is_detected(h: &Harness) {
    let expected = expected_from_schema_sql();
    raw_execute(&h.url, "DROP INDEX cache_entries_lru");
    raw_execute(&h.url, "ALTER TABLE cache_events ADD COLUMN extra TEXT");
    let live = h.index().describe_schema().expect("describe");
    assert!(!live.indexes.contains_key("cache_entries_lru"));
    assert_eq!(
        live.tables["cache_events"].last().map(|c| c.name.as_str()),
        Some("extra")
    );
    assert_ne!(live, expected);
}

fn concurrent_first_opens_migrate_once(h: &Harness) {
    let (url, _pg) = fresh_database(h, "fresh");
    let clock = Arc::new(ManualClock::new(T0));
    let opened: Vec<Result<Index, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (url, clock) = (url.clone(), clock.clone());
                s.spawn(move || Index::open(&url, clock).map_err(|e| e.to_string()))
            })
            .collect();
        handles
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect()
    });
    for result in &opened {
        assert!(result.is_ok(), "{}: {result:?}", h.backend);
    }
    assert_eq!(migration_versions(&url), vec![3], "{}", h.backend);
    // And opening once more changes nothing.
    drop(opened);
    Index::open(&url, clock).expect("reopen");
    assert_eq!(migration_versions(&url), vec![3]);
}

/// Prefix ranges are only prefixes under code-point order; a linguistic default collation (often
/// en_US on PostgreSQL) would break them, so key_lower must carry a bytewise collation
/// everywhere: SQLite's built-in BINARY, and on PostgreSQL a "BINARY" that copies "C".
fn key_lower_uses_code_point_collation(h: &Harness) {
    #[derive(QueryableByName)]
    struct Coll {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        coll: Option<String>,
    }
    let rows: Vec<Coll> = if let Some(path) = h.url.strip_prefix("sqlite://") {
        let mut conn = diesel::SqliteConnection::establish(path).expect("open sqlite");
        diesel::sql_query(
            "SELECT coll FROM pragma_index_xinfo('cache_entries_lookup') WHERE name = 'key_lower'",
        )
        .load(&mut conn)
        .expect("index_xinfo")
    } else {
        let mut conn = diesel::PgConnection::establish(&h.url).expect("open postgres");
        diesel::sql_query(
            "SELECT collation_name::text AS coll FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = 'cache_entries' \
             AND column_name = 'key_lower'",
        )
        .load(&mut conn)
        .expect("information_schema")
    };
    let colls: Vec<Option<String>> = rows.into_iter().map(|r| r.coll).collect();
    assert_eq!(colls, vec![Some("BINARY".to_string())], "{}", h.backend);
    if h.backend == "postgres" {
        let mut conn = diesel::PgConnection::establish(&h.url).expect("open postgres");
        let rows: Vec<Coll> = diesel::sql_query(
            "SELECT collcollate::text AS coll FROM pg_collation WHERE collname = 'BINARY' \
             AND collnamespace = current_schema()::regnamespace",
        )
        .load(&mut conn)
        .expect("pg_collation");
        assert_eq!(
            rows.into_iter().map(|r| r.coll).collect::<Vec<_>>(),
            vec![Some("C".to_string())]
        );
    }
}

/// A store written by schema version 1 (the DDL as it was, kept in schema_v1.sql) is rebuilt to
/// today's schema.sql on open, and keeps every entry and event.
fn version_1_database_is_upgraded_keeping_its_rows(h: &Harness) {
    let (url, _pg) = fresh_database(h, "v1");
    let v1 = include_str!("schema_v1.sql");
    raw_execute(
        &url,
        &format!(
            "CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, \
             applied_at BIGINT NOT NULL); INSERT INTO schema_migrations VALUES (1, 0); {v1}; \
             INSERT INTO cache_entries VALUES ('id-1', 'octo/repo', 'refs/heads/main', \
             'Npm-Linux-1', 'npm-linux-1', 'v1', '[\"~/.npm\"]', 'zstd', '{digest}', 7, \
             'committed', {T0}, {T0}, 3, 'run-9'); \
             INSERT INTO cache_entries VALUES ('id-2', 'octo/repo', 'refs/heads/main', 'Open', \
             'open', 'v1', '[]', 'zstd', NULL, 0, 'reserved', {T0}, {T0}, 0, NULL); \
             INSERT INTO cache_events VALUES ('ev-1', {T0}, 'octo/repo', 'refs/heads/main', \
             'save', 'Npm-Linux-1', NULL, 7, 12)",
            digest = "a".repeat(64)
        ),
    );
    let index = Index::open(&url, Arc::new(ManualClock::new(T0))).expect("open v1 database");
    assert_eq!(migration_versions(&url), vec![1, 3], "{}", h.backend);
    assert_eq!(
        index.describe_schema().expect("describe"),
        expected_from_schema_sql(),
        "{}: the upgrade does not lead to schema.sql",
        h.backend
    );
    let hit = index
        .lookup(&runner::store::index::LookupQuery {
            repository: "octo/repo".into(),
            scopes: vec!["refs/heads/main".into()],
            keys: vec!["npm-".into()],
            version: "v1".into(),
        })
        .expect("lookup")
        .expect("the old entry is found by prefix");
    assert_eq!(
        (
            hit.entry.id.as_str(),
            hit.entry.key.as_str(),
            hit.entry.access_count,
            hit.entry.created_by_run.as_deref(),
            hit.entry.roots.as_deref(),
            hit.entry.broken_at,
        ),
        ("id-1", "Npm-Linux-1", 4, Some("run-9"), None, None)
    );
    let all = index
        .list(&runner::store::index::ListFilter {
            include_reserved: true,
            ..Default::default()
        })
        .expect("list");
    assert_eq!(all.len(), 2, "{}", h.backend);
    let events = index.events(0).expect("events");
    assert_eq!(
        events
            .iter()
            .map(|e| (e.event.key.as_str(), e.event.bytes, e.reason.as_deref()))
            .collect::<Vec<_>>(),
        vec![("Npm-Linux-1", Some(7), None)]
    );
    drop(index);
    // Reopening does not rebuild again.
    Index::open(&url, Arc::new(ManualClock::new(T0))).expect("reopen");
    assert_eq!(migration_versions(&url), vec![1, 3]);
}

/// A store of schema version 2 (kept in schema_v2.sql) gains the audit log on open and keeps
/// its entries and events, eviction reasons included.
fn version_2_database_is_upgraded_keeping_its_rows(h: &Harness) {
    let (url, _pg) = fresh_database(h, "v2");
    let v2 = include_str!("schema_v2.sql");
    let prelude = if h.backend == "sqlite" {
        ""
    } else {
        "CREATE COLLATION IF NOT EXISTS \"BINARY\" FROM \"C\";"
    };
    raw_execute(
        &url,
        &format!(
            "{prelude} CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, \
             applied_at BIGINT NOT NULL); INSERT INTO schema_migrations VALUES (2, 0); {v2}; \
             INSERT INTO cache_entries VALUES ('id-1', 'octo/repo', 'refs/heads/main', \
             'Npm-Linux-1', 'npm-linux-1', 'v1', '[\"~/.npm\"]', 'zstd', '{digest}', 7, \
             'committed', {T0}, {T0}, 3, 'run-9', NULL, NULL, NULL); \
             INSERT INTO cache_events VALUES ('ev-1', {T0}, 'octo/repo', 'refs/heads/main', \
             'evict', 'Old-1', NULL, 5, NULL, 'size')",
            digest = "a".repeat(64)
        ),
    );
    let index = Index::open(&url, Arc::new(ManualClock::new(T0))).expect("open v2 database");
    assert_eq!(migration_versions(&url), vec![2, 3], "{}", h.backend);
    assert_eq!(
        index.describe_schema().expect("describe"),
        expected_from_schema_sql(),
        "{}: the upgrade does not lead to schema.sql",
        h.backend
    );
    let all = index
        .list(&runner::store::index::ListFilter::default())
        .expect("list");
    assert_eq!(
        all.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["id-1"]
    );
    let events = index.events(0).expect("events");
    assert_eq!(
        events
            .iter()
            .map(|e| (e.event.key.as_str(), e.reason.as_deref()))
            .collect::<Vec<_>>(),
        vec![("Old-1", Some("size"))]
    );
    assert_eq!(index.audit_log(None, 10).expect("audit log"), vec![]);
}

/// The stock sqlite3 and psql shells (without runner's connection setup) can query the index
/// through its indexes and change rows.
fn stock_shells_read_and_write_the_index(h: &Harness) {
    let saved = h.save(
        &super::Spec::new("refs/heads/main", "Shell-Key"),
        b"shell bytes",
    );
    h.index()
        .reserve(&super::Spec::new("refs/heads/main", "stuck").new_entry())
        .expect("reserve");
    let sql = "SELECT key FROM cache_entries WHERE repository = 'octo/repo' AND version = 'v1' \
               AND scope = 'refs/heads/main' AND key_lower >= 'shell' AND key_lower < 'shelm' \
               ORDER BY key_lower; \
               UPDATE cache_entries SET last_accessed_at = 5 WHERE key = 'Shell-Key'; \
               DELETE FROM cache_entries WHERE state = 'reserved';";
    let (program, args): (&str, Vec<String>) = match h.url.strip_prefix("sqlite://") {
        Some(path) => ("sqlite3", vec![path.to_string(), sql.to_string()]),
        None => (
            "psql",
            vec![
                h.url.clone(),
                "-X".into(),
                "-A".into(),
                "-t".into(),
                "-v".into(),
                "ON_ERROR_STOP=1".into(),
                "-c".into(),
                sql.to_string(),
            ],
        ),
    };
    let out = match std::process::Command::new(program).args(&args).output() {
        Ok(out) => out,
        Err(err) => {
            eprintln!("skipped: cannot run the stock {program} shell: {err}");
            return;
        }
    };
    assert!(
        out.status.success(),
        "{program}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "Shell-Key"),
        "{program}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let entry = h.index().get(&saved.id).expect("get").expect("still there");
    assert_eq!(entry.last_accessed_at, 5);
    let all = h
        .index()
        .list(&runner::store::index::ListFilter {
            include_reserved: true,
            ..Default::default()
        })
        .expect("list");
    assert_eq!(
        all.len(),
        1,
        "{}: the shell removed the reservation",
        h.backend
    );
}
