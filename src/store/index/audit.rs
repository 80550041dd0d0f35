//! The audit log: every deletion through the REST API or the UI, with who asked (the admin
//! token's holder), what (the entry as it was) and when. The deletion, its `evict` event
//! (reason `manual`) and its audit row are one transaction, so the log never misses one.

use diesel::prelude::*;

use super::conn::write_tx;
use super::schema::{cache_audit, cache_entries, cache_events};
use super::{
    COMMITTED, Entry, EntryRow, EventKind, Index, IndexError, NewEvent, event_row, new_id, to_i64,
    to_u64,
};
use crate::clock::EpochMillis;

/// The eviction reason of an entry deleted on request (next to `unused`, `size`, `broken`).
pub const MANUAL: &str = "manual";

/// Who deletes, and through what request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deletion {
    /// The admin token's holder, `name (token 1a2b3c4d)`.
    pub actor: String,
    /// What was asked, e.g. `DELETE /repos/o/r/actions/caches?key=k`.
    pub request: String,
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When, in epoch milliseconds.
    pub at: EpochMillis,
    /// Who.
    pub actor: String,
    /// Through what request.
    pub request: String,
    /// The deleted entry's id.
    pub entry_id: String,
    /// Its repository.
    pub repository: String,
    /// Its scope (git ref).
    pub scope: String,
    /// Its key.
    pub key: String,
    /// Its version.
    pub version: String,
    /// Its size.
    pub size_bytes: u64,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cache_audit)]
struct AuditRow {
    id: String,
    at: i64,
    actor: String,
    request: String,
    entry_id: String,
    repository: String,
    scope: String,
    key: String,
    version: String,
    size_bytes: i64,
}

impl Index {
    /// Deletes committed entry `id` on `by`'s request, recording an `evict` event (reason
    /// [`MANUAL`]) and an audit row in the same transaction; the entry if it existed. Its blob
    /// is the caller's business (see [`crate::store::Store::delete_audited`]).
    pub fn delete_audited(&self, id: &str, by: &Deletion) -> Result<Option<Entry>, IndexError> {
        use cache_entries::dsl as e;
        const OP: &str = "delete (audited)";
        let now = self.clock.now_millis();
        let mut conn = self.conn()?;
        write_tx(&mut conn, &self.url, OP, |conn| {
            let row: Option<EntryRow> = diesel::delete(e::cache_entries.filter(e::id.eq(id)))
                .filter(e::state.eq(COMMITTED))
                .returning(cache_entries::all_columns)
                .get_result(conn)
                .optional()
                .map_err(self.q(OP))?;
            let Some(row) = row else {
                return Ok(None);
            };
            let entry = row.into_entry()?;
            let event = NewEvent {
                repository: entry.repository.clone(),
                scope: entry.scope.clone(),
                kind: EventKind::Evict,
                key: entry.key.clone(),
                matched_key: None,
                bytes: Some(entry.size_bytes),
                duration_ms: None,
            };
            diesel::insert_into(cache_events::table)
                .values(event_row(&event, now, Some(MANUAL))?)
                .execute(conn)
                .map_err(self.q(OP))?;
            let audit = AuditRow {
                id: new_id(),
                at: now,
                actor: by.actor.clone(),
                request: by.request.clone(),
                entry_id: entry.id.clone(),
                repository: entry.repository.clone(),
                scope: entry.scope.clone(),
                key: entry.key.clone(),
                version: entry.version.clone(),
                size_bytes: to_i64("size_bytes", entry.size_bytes)?,
            };
            diesel::insert_into(cache_audit::table)
                .values(&audit)
                .execute(conn)
                .map_err(self.q(OP))?;
            Ok(Some(entry))
        })
    }

    /// The newest `limit` audit rows, newest first, optionally for one repository.
    pub fn audit_log(
        &self,
        repository: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, IndexError> {
        use cache_audit::dsl as a;
        let mut query = a::cache_audit.select(AuditRow::as_select()).into_boxed();
        if let Some(repository) = repository {
            query = query.filter(a::repository.eq(repository.to_string()));
        }
        let mut conn = self.conn()?;
        let rows = query
            .order((a::at.desc(), a::id.desc()))
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .load(&mut conn)
            .map_err(self.q("read the audit log"))?;
        Ok(rows
            .into_iter()
            .map(|r| AuditRecord {
                at: r.at,
                actor: r.actor,
                request: r.request,
                entry_id: r.entry_id,
                repository: r.repository,
                scope: r.scope,
                key: r.key,
                version: r.version,
                size_bytes: to_u64(r.size_bytes),
            })
            .collect())
    }
}
