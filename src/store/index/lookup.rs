//! Reading entries: the restore lookup (exact, then newest prefix, per key per scope) and the
//! plain queries `cache list`, `cache verify` and GC use.

use std::collections::BTreeSet;

use diesel::prelude::*;

use super::rows::{COMMITTED, EntryRow, key_lower};
use super::schema::cache_entries;
use super::{
    AnyConnection, Entry, Index, IndexError, ListFilter, LookupHit, LookupQuery, LookupRecord,
    conn, prefix_upper_bound,
};

impl Index {
    /// Finds the entry a restore should use, and marks it used. See the module docs for the
    /// order. Empty keys are ignored.
    pub fn lookup(&self, query: &LookupQuery) -> Result<Option<LookupHit>, IndexError> {
        let mut conn = self.conn()?;
        self.lookup_on(&mut conn, query, true)
    }

    /// [`Index::lookup`] without marking the entry used: a read only, for a caller that records
    /// the use later with [`Index::record_lookups`] (a server answering before it writes).
    pub fn find(&self, query: &LookupQuery) -> Result<Option<LookupHit>, IndexError> {
        let mut conn = self.conn()?;
        self.lookup_on(&mut conn, query, false)
    }

    /// Applies lookups answered by [`Index::find`]: marks each found entry used at its time and
    /// inserts each lookup's event, in one write transaction, so a batch of lookups costs one
    /// commit. An entry deleted meanwhile is passed over.
    pub fn record_lookups(&self, records: &[LookupRecord]) -> Result<(), IndexError> {
        use cache_entries::dsl as e;
        const OP: &str = "record lookups";
        if self.read_only.is_some() || records.is_empty() {
            return Ok(());
        }
        let events = records
            .iter()
            .map(|r| super::analytics::event_values(&r.event, &r.detail, r.at))
            .collect::<Result<Vec<_>, _>>()?;
        let mut conn = self.conn()?;
        let _gate = self.write_gate();
        conn::write_tx(&mut conn, &self.url, OP, |conn| {
            for used in records.iter().filter_map(|r| r.used.as_ref()) {
                diesel::update(e::cache_entries.filter(e::id.eq(&used.id)))
                    .set((
                        e::last_accessed_at.eq(used.at),
                        e::access_count.eq(e::access_count + 1),
                    ))
                    .execute(conn)
                    .map_err(self.q(OP))?;
            }
            super::analytics::insert_events(conn, &events).map_err(self.q(OP))?;
            Ok(())
        })
    }

    pub(super) fn lookup_on(
        &self,
        conn: &mut AnyConnection,
        query: &LookupQuery,
        record: bool,
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
                // Only the id, then the row by its key: selecting the whole row here makes
                // SQLite leave the covering index (a lookup at 100,000 entries went from 1.6 ms
                // to 9 ms when a deferred lookup read the row in this query).
                let base = || search_query(query, scope);
                let exact: Option<String> = base()
                    .filter(e::key_lower.eq(lower))
                    .first(conn)
                    .optional()
                    .map_err(self.q(OP))?;
                if let Some(id) = exact
                    && let Some(hit) = self.touch(conn, &id, *position == 0, record)?
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
                    && let Some(hit) = self.touch(conn, &id, false, record)?
                {
                    return Ok(Some(hit));
                }
            }
        }
        Ok(None)
    }

    /// Marks a found row used (unless `record` is false); `None` if it vanished meanwhile
    /// (deleted or evicted).
    fn touch(
        &self,
        conn: &mut AnyConnection,
        id: &str,
        exact: bool,
        record: bool,
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
        let gate = record.then(|| self.write_gate());
        let updated = match self.read_only {
            Some(_) => None,
            None if !record => None,
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
        drop(gate);
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

    /// Entries matching `filter`, sorted and limited.
    pub fn list(&self, filter: &ListFilter) -> Result<Vec<Entry>, IndexError> {
        let mut query = super::page::sorted(filter, false);
        if let Some(limit) = filter.limit {
            query = query.limit(i64::try_from(limit).unwrap_or(i64::MAX));
        }
        let mut conn = self.conn()?;
        let rows: Vec<EntryRow> = query.load(&mut conn).map_err(self.q("list"))?;
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
