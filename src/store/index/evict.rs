//! Removing entries: the maintenance lease, single deletes and the eviction policy.

use std::collections::BTreeSet;

use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::BigInt;

#[cfg(feature = "postgres")]
use super::AnyConnection;
use super::conn::write_tx;
use super::rows::{COMMITTED, EntryRow, event_row, to_u64};
use super::schema::{cache_entries, cache_events};
use super::{Backend, Conn, Entry, EventKind, EvictionPolicy, Index, IndexError, NewEvent};

/// Held while maintenance (prune, verify) runs. On PostgreSQL it is a session advisory lock on
/// a connection of its own, so with several servers sharing the index one node maintains at a
/// time; it is released on drop, or by the server when the connection dies with its process.
/// SQLite serialises writers itself and needs no lease.
pub struct MaintenanceLease {
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    conn: Option<Conn>,
}

/// The advisory lock class of maintenance ("runn" in ASCII). The lock's second key is the
/// `cache_entries` table's OID, so the lease is one per index: every node on one database and
/// schema shares it, while indexes in other schemas of the same database (a test per schema, or
/// two deployments) never hold each other up.
#[cfg(feature = "postgres")]
const MAINTENANCE_LOCK_CLASS: i32 = 0x7275_6e6e;

/// The second key: the OID of this search path's `cache_entries`.
#[cfg(feature = "postgres")]
const MAINTENANCE_LOCK_OBJECT: &str = "('cache_entries'::regclass)::oid::int";

impl MaintenanceLease {
    /// Whether the lease is a database lock other nodes see (PostgreSQL), not a no-op.
    pub fn is_shared(&self) -> bool {
        self.conn.is_some()
    }
}

impl Drop for MaintenanceLease {
    fn drop(&mut self) {
        #[cfg(feature = "postgres")]
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

impl Index {
    /// Takes the maintenance lease: waits for it with `wait`, else returns `None` when another
    /// process holds it.
    pub fn maintenance_lease(&self, wait: bool) -> Result<Option<MaintenanceLease>, IndexError> {
        if self.backend == Backend::Sqlite {
            return Ok(Some(MaintenanceLease { conn: None }));
        }
        self.advisory_lease(wait)
    }

    /// The PostgreSQL advisory lock behind [`Index::maintenance_lease`].
    #[cfg(feature = "postgres")]
    fn advisory_lease(&self, wait: bool) -> Result<Option<MaintenanceLease>, IndexError> {
        #[derive(QueryableByName)]
        struct Locked {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            locked: bool,
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

    /// Without PostgreSQL support no index needs a lease.
    #[cfg(not(feature = "postgres"))]
    fn advisory_lease(&self, _wait: bool) -> Result<Option<MaintenanceLease>, IndexError> {
        Ok(Some(MaintenanceLease { conn: None }))
    }

    /// Deletes an entry (any state); returns it if it existed. The blob is the caller's business
    /// (it may be shared): see [`crate::store::Store::delete`].
    pub fn delete(&self, id: &str) -> Result<Option<Entry>, IndexError> {
        use cache_entries::dsl as e;
        let mut conn = self.conn()?;
        let _gate = self.write_gate();
        let row: Option<EntryRow> = diesel::delete(e::cache_entries.filter(e::id.eq(id)))
            .returning(cache_entries::all_columns)
            .get_result(&mut conn)
            .optional()
            .map_err(self.q("delete"))?;
        row.map(EntryRow::into_entry).transpose()
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
        let _gate = self.write_gate();
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
}
