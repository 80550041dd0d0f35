//! The live schema matches `schema.sql` (and diesel's view of it) on every backend; migrations
//! run once, even when several openers race on a fresh database.

use std::collections::BTreeMap;
use std::sync::Arc;

use diesel::prelude::*;
use runner::clock::ManualClock;
use runner::store::index::{
    ColumnDescription, Index, IndexDescription, SchemaDescription, diesel_columns,
};

use super::{Harness, PgSchema, T0};
use crate::both_backends;

both_backends!(
    live_schema_matches_schema_sql,
    schema_drift_is_detected,
    concurrent_first_opens_migrate_once,
    key_lower_uses_code_point_collation,
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

/// Runs raw SQL against the harness database, outside the index.
fn raw_execute(h: &Harness, sql: &str) {
    if let Some(path) = h.url.strip_prefix("sqlite://") {
        let mut conn = diesel::SqliteConnection::establish(path).expect("open sqlite");
        diesel::sql_query(sql).execute(&mut conn).expect(sql);
    } else {
        let mut conn = diesel::PgConnection::establish(&h.url).expect("open postgres");
        diesel::sql_query(sql).execute(&mut conn).expect(sql);
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
    raw_execute(h, "DROP INDEX cache_entries_lru");
    raw_execute(h, "ALTER TABLE cache_events ADD COLUMN extra TEXT");
    let live = h.index().describe_schema().expect("describe");
    assert!(!live.indexes.contains_key("cache_entries_lru"));
    assert_eq!(
        live.tables["cache_events"].last().map(|c| c.name.as_str()),
        Some("extra")
    );
    assert_ne!(live, expected);
}

fn concurrent_first_opens_migrate_once(h: &Harness) {
    // A database nobody has opened yet.
    let _pg;
    let url = if h.backend == "sqlite" {
        format!(
            "sqlite://{}",
            h.dir.path().join("fresh/index.sqlite").display()
        )
    } else {
        _pg = PgSchema::create().expect("postgres configured");
        _pg.url()
    };
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
    assert_eq!(migration_versions(&url), vec![1], "{}", h.backend);
    // And opening once more changes nothing.
    drop(opened);
    Index::open(&url, clock).expect("reopen");
    assert_eq!(migration_versions(&url), vec![1]);
}

/// Prefix ranges are only prefixes under code-point order; a linguistic default collation (often
/// en_US on PostgreSQL) would break them, so key_lower must carry the "C" collation everywhere.
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
    assert_eq!(colls, vec![Some("C".to_string())], "{}", h.backend);
}
