//! Database rows and their conversion to the model; key checks and ids.

use diesel::prelude::*;

use super::schema::{cache_entries, cache_events};
use super::{Entry, EntryState, IndexError, NewEvent};
use crate::clock::EpochMillis;
use crate::store::owner;

pub(super) const RESERVED: &str = "reserved";
pub(super) const COMMITTED: &str = "committed";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cache_entries)]
pub(super) struct EntryRow {
    pub(super) id: String,
    pub(super) repository: String,
    pub(super) scope: String,
    pub(super) key: String,
    pub(super) key_lower: String,
    pub(super) version: String,
    pub(super) paths: String,
    pub(super) compression: String,
    pub(super) blob_digest: Option<String>,
    pub(super) size_bytes: i64,
    pub(super) state: String,
    pub(super) created_at: i64,
    pub(super) last_accessed_at: i64,
    pub(super) access_count: i64,
    pub(super) created_by_run: Option<String>,
    pub(super) roots: Option<String>,
    pub(super) broken_at: Option<i64>,
    pub(super) owner: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cache_events)]
pub(super) struct EventRow {
    pub(super) id: String,
    pub(super) at: i64,
    pub(super) repository: String,
    pub(super) scope: String,
    pub(super) kind: String,
    pub(super) key: String,
    pub(super) matched_key: Option<String>,
    pub(super) bytes: Option<i64>,
    pub(super) duration_ms: Option<i64>,
    pub(super) reason: Option<String>,
}

impl EntryRow {
    /// A reservation past `ttl_ms` at `now`, or whose owner is known to be dead.
    pub(super) fn is_abandoned(&self, now: EpochMillis, ttl_ms: i64) -> bool {
        self.state == RESERVED
            && (self.created_at < now.saturating_sub(ttl_ms)
                || owner::is_dead(self.owner.as_deref()))
    }

    pub(super) fn into_entry(self) -> Result<Entry, IndexError> {
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

pub(super) fn to_i64(field: &'static str, value: u64) -> Result<i64, IndexError> {
    i64::try_from(value).map_err(|_| IndexError::OutOfRange { field, value })
}

pub(super) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// The lowercase form keys are matched by. Unicode-aware, like JavaScript's `toLowerCase`.
pub fn key_lower(key: &str) -> String {
    key.to_lowercase()
}

pub(super) fn check_key(key: &str) -> Result<(), IndexError> {
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

pub(super) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(super) fn event_row(
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
