//! Reads the live schema from each backend's catalog.

use diesel::prelude::*;
#[cfg(feature = "postgres")]
use diesel::sql_types::Bool;
use diesel::sql_types::{BigInt, Text};

use super::{AnyConnection, ColumnDescription, IndexDescription, IndexError, SchemaDescription, q};

const OP: &str = "describe schema";

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    r#type: String,
    #[diesel(sql_type = BigInt)]
    notnull: i64,
    #[diesel(sql_type = BigInt)]
    pk: i64,
}

#[derive(QueryableByName)]
struct SqliteIndex {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = BigInt)]
    unique: i64,
    #[diesel(sql_type = Text)]
    origin: String,
}

#[cfg(feature = "postgres")]
#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

#[cfg(feature = "postgres")]
#[derive(QueryableByName)]
struct PgIndexColumn {
    #[diesel(sql_type = Text)]
    index_name: String,
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    #[diesel(sql_type = Text)]
    column_name: String,
}

use super::conn::quote;

/// The primary key indexes of the current schema's tables, as (index, table).
#[cfg(feature = "postgres")]
pub(super) fn pg_primary_key_indexes(
    c: &mut diesel::PgConnection,
    index: &str,
) -> Result<Vec<(String, String)>, IndexError> {
    #[derive(QueryableByName)]
    struct Pk {
        #[diesel(sql_type = Text)]
        index_name: String,
        #[diesel(sql_type = Text)]
        table_name: String,
    }
    let rows: Vec<Pk> = diesel::sql_query(
        "SELECT i.relname::text AS index_name, t.relname::text AS table_name \
         FROM pg_index ix \
         JOIN pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_class t ON t.oid = ix.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = current_schema() AND ix.indisprimary \
         AND t.relname <> 'schema_migrations'",
    )
    .load(c)
    .map_err(q(index, OP))?;
    Ok(rows
        .into_iter()
        .map(|r| (r.index_name, r.table_name))
        .collect())
}

pub(super) fn describe(
    conn: &mut AnyConnection,
    index: &str,
) -> Result<SchemaDescription, IndexError> {
    let mut out = SchemaDescription::default();
    match conn {
        AnyConnection::Sqlite(c) => {
            let tables: Vec<Name> = diesel::sql_query(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> 'schema_migrations' \
                 ORDER BY name",
            )
            .load(c)
            .map_err(q(index, OP))?;
            for table in tables {
                let columns: Vec<SqliteColumn> =
                    diesel::sql_query(format!("PRAGMA table_info({})", quote(&table.name)))
                        .load(c)
                        .map_err(q(index, OP))?;
                out.tables.insert(
                    table.name.clone(),
                    columns
                        .into_iter()
                        .map(|col| ColumnDescription {
                            name: col.name,
                            sql_type: col.r#type.to_ascii_uppercase(),
                            not_null: col.notnull != 0 || col.pk != 0,
                        })
                        .collect(),
                );
                let indexes: Vec<SqliteIndex> =
                    diesel::sql_query(format!("PRAGMA index_list({})", quote(&table.name)))
                        .load(c)
                        .map_err(q(index, OP))?;
                for found in indexes.into_iter().filter(|i| i.origin == "c") {
                    let columns: Vec<Name> = diesel::sql_query(format!(
                        "SELECT name FROM pragma_index_info({}) ORDER BY seqno",
                        quote_literal(&found.name)
                    ))
                    .load(c)
                    .map_err(q(index, OP))?;
                    out.indexes.insert(
                        found.name,
                        IndexDescription {
                            table: table.name.clone(),
                            columns: columns.into_iter().map(|n| n.name).collect(),
                            unique: found.unique != 0,
                        },
                    );
                }
            }
        }
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(c) => {
            let columns: Vec<PgColumn> = diesel::sql_query(
                "SELECT table_name::text AS table_name, column_name::text AS column_name, \
                 data_type::text AS data_type, is_nullable::text AS is_nullable \
                 FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name <> 'schema_migrations' \
                 ORDER BY table_name, ordinal_position",
            )
            .load(c)
            .map_err(q(index, OP))?;
            for col in columns {
                out.tables
                    .entry(col.table_name)
                    .or_default()
                    .push(ColumnDescription {
                        name: col.column_name,
                        sql_type: col.data_type.to_ascii_uppercase(),
                        not_null: col.is_nullable == "NO",
                    });
            }
            let index_columns: Vec<PgIndexColumn> = diesel::sql_query(
                "SELECT i.relname::text AS index_name, t.relname::text AS table_name, \
                 ix.indisunique AS is_unique, a.attname::text AS column_name \
                 FROM pg_index ix \
                 JOIN pg_class i ON i.oid = ix.indexrelid \
                 JOIN pg_class t ON t.oid = ix.indrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) \
                 JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
                 WHERE n.nspname = current_schema() AND NOT ix.indisprimary \
                 AND t.relname <> 'schema_migrations' \
                 ORDER BY i.relname, k.ord",
            )
            .load(c)
            .map_err(q(index, OP))?;
            for col in index_columns {
                out.indexes
                    .entry(col.index_name)
                    .or_insert_with(|| IndexDescription {
                        table: col.table_name,
                        columns: Vec::new(),
                        unique: col.is_unique,
                    })
                    .columns
                    .push(col.column_name);
            }
        }
    }
    Ok(out)
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
