//! What the web UI shows about a store, read from `cache_entries` and `cache_events` (usage per
//! repository is [`Index::usage`]): activity per day, top keys, recent evictions and which
//! requested keys an entry served. Every query is bounded (a page, a top-N, a time window) so a
//! page costs the same at 100,000 entries as at 100.

use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::rows::{COMMITTED, EntryRow, check_key, new_id, to_i64, to_u64};
use super::schema::{cache_entries, cache_events};
use super::{AnyConnection, Entry, EventKind, Index, IndexError, NewEntry, key_lower};
use crate::clock::EpochMillis;
use crate::store::blob::BlobInfo;

/// One day in milliseconds; activity is bucketed by UTC day.
pub const DAY_MILLIS: i64 = 24 * 60 * 60 * 1000;

/// Lookups and bytes of one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayActivity {
    /// The day's first millisecond (UTC midnight).
    pub day: EpochMillis,
    /// Exact primary-key hits.
    pub exact: u64,
    /// Restore-key or prefix hits.
    pub partial: u64,
    /// Misses.
    pub miss: u64,
    /// Bytes restored by hits.
    pub bytes_restored: u64,
    /// Bytes saved.
    pub bytes_saved: u64,
}

/// An eviction event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eviction {
    /// When.
    pub at: EpochMillis,
    /// The repository.
    pub repository: String,
    /// The entry's scope.
    pub scope: String,
    /// The entry's key.
    pub key: String,
    /// Its size.
    pub bytes: u64,
    /// Why (`unused`, `size`, `broken`, ...).
    pub reason: String,
}

/// Which requested key a restore asked with when it got an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMatch {
    /// The primary key the restore asked for.
    pub requested: String,
    /// Whether that was an exact hit (else a restore key or prefix matched).
    pub exact: bool,
    /// How many restores.
    pub count: u64,
    /// The latest of them.
    pub last_at: EpochMillis,
}

/// A key restores got, with how often, in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredKey {
    /// The repository.
    pub repository: String,
    /// The entry key restores matched.
    pub key: String,
    /// How many restores.
    pub restores: u64,
    /// Bytes they restored.
    pub bytes: u64,
}

/// A committed entry to insert directly, with its history (imports and large test stores).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkEntry {
    /// Identity and metadata.
    pub entry: NewEntry,
    /// The blob it points at.
    pub blob: BlobInfo,
    /// When it was committed.
    pub created_at: EpochMillis,
    /// Its last use.
    pub last_accessed_at: EpochMillis,
    /// How many lookups returned it.
    pub access_count: u64,
}

impl Index {
    /// Hits, misses and bytes per UTC day from `since`'s day through today, oldest first; days
    /// without events are present with zeros, so a chart's bars line up with the calendar.
    pub fn daily_activity(
        &self,
        repository: Option<&str>,
        since: EpochMillis,
    ) -> Result<Vec<DayActivity>, IndexError> {
        use cache_events::dsl as v;
        let first = since.div_euclid(DAY_MILLIS) * DAY_MILLIS;
        let today = self.clock.now_millis().div_euclid(DAY_MILLIS) * DAY_MILLIS;
        // Integer division truncates toward zero on both backends; `at` is never negative.
        let day = || sql::<BigInt>(&format!("(at / {DAY_MILLIS})"));
        let kinds = [
            EventKind::HitExact,
            EventKind::HitPartial,
            EventKind::Miss,
            EventKind::Save,
        ]
        .map(EventKind::as_str);
        let mut query = v::cache_events
            .filter(v::at.ge(first))
            .filter(v::kind.eq_any(kinds))
            .group_by((day(), v::kind))
            .select((
                day(),
                sql::<Text>("kind"),
                count_star(),
                sql::<BigInt>("CAST(COALESCE(SUM(bytes), 0) AS BIGINT)"),
            ))
            .into_boxed();
        if let Some(repository) = repository {
            query = query.filter(v::repository.eq(repository.to_string()));
        }
        let mut conn = self.conn()?;
        let rows: Vec<(i64, String, i64, i64)> =
            query.load(&mut conn).map_err(self.q("daily activity"))?;
        let days = usize::try_from((today - first) / DAY_MILLIS + 1).unwrap_or(0);
        let mut out: Vec<DayActivity> = (0..days)
            .map(|i| DayActivity {
                day: first + i as i64 * DAY_MILLIS,
                ..DayActivity::default()
            })
            .collect();
        for (day, kind, count, bytes) in rows {
            let Some(slot) = usize::try_from(day - first / DAY_MILLIS)
                .ok()
                .and_then(|i| out.get_mut(i))
            else {
                continue;
            };
            let (count, bytes) = (to_u64(count), to_u64(bytes));
            match EventKind::parse(&kind) {
                Some(EventKind::HitExact) => {
                    slot.exact += count;
                    slot.bytes_restored += bytes;
                }
                Some(EventKind::HitPartial) => {
                    slot.partial += count;
                    slot.bytes_restored += bytes;
                }
                Some(EventKind::Miss) => slot.miss += count,
                Some(EventKind::Save) => slot.bytes_saved += bytes,
                _ => {}
            }
        }
        Ok(out)
    }

    /// The `limit` keys hits matched most since `since`, optionally in one repository: read from
    /// the events of the window (by the events index), not by ranking every entry.
    pub fn top_restored(
        &self,
        repository: Option<&str>,
        since: EpochMillis,
        limit: usize,
    ) -> Result<Vec<RestoredKey>, IndexError> {
        use cache_events::dsl as v;
        let hits = [EventKind::HitExact, EventKind::HitPartial].map(EventKind::as_str);
        let mut query = v::cache_events
            .filter(v::at.ge(since))
            .filter(v::kind.eq_any(hits))
            .filter(v::matched_key.is_not_null())
            .group_by((v::repository, v::matched_key))
            .select((
                v::repository,
                v::matched_key,
                count_star(),
                sql::<BigInt>("CAST(COALESCE(SUM(bytes), 0) AS BIGINT)"),
            ))
            .order((count_star().desc(), v::matched_key.asc()))
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .into_boxed();
        if let Some(repository) = repository {
            query = query.filter(v::repository.eq(repository.to_string()));
        }
        let mut conn = self.conn()?;
        let rows: Vec<(String, Option<String>, i64, i64)> =
            query.load(&mut conn).map_err(self.q("top restored keys"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(repository, key, restores, bytes)| {
                Some(RestoredKey {
                    repository,
                    key: key?,
                    restores: to_u64(restores),
                    bytes: to_u64(bytes),
                })
            })
            .collect())
    }

    /// The `limit` largest committed entries of `repository`, largest first (read in the order
    /// of the `(repository, state, size_bytes)` index, so it costs `limit` rows).
    pub fn largest_entries(
        &self,
        repository: &str,
        limit: usize,
    ) -> Result<Vec<Entry>, IndexError> {
        use cache_entries::dsl as e;
        let mut conn = self.conn()?;
        let rows = e::cache_entries
            .select(EntryRow::as_select())
            .filter(e::repository.eq(repository))
            .filter(e::state.eq(COMMITTED))
            .order((e::size_bytes.desc(), e::id.desc()))
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .load(&mut conn)
            .map_err(self.q("largest entries"))?;
        rows.into_iter().map(EntryRow::into_entry).collect()
    }

    /// The `limit` latest evictions, newest first, optionally in one repository.
    pub fn recent_evictions(
        &self,
        repository: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Eviction>, IndexError> {
        use cache_events::dsl as v;
        let mut query = v::cache_events
            .filter(v::kind.eq(EventKind::Evict.as_str()))
            .select((v::at, v::repository, v::scope, v::key, v::bytes, v::reason))
            .order((v::at.desc(), v::id.desc()))
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .into_boxed();
        if let Some(repository) = repository {
            query = query.filter(v::repository.eq(repository.to_string()));
        }
        let mut conn = self.conn()?;
        type Row = (i64, String, String, String, Option<i64>, Option<String>);
        let rows: Vec<Row> = query.load(&mut conn).map_err(self.q("recent evictions"))?;
        Ok(rows
            .into_iter()
            .map(|(at, repository, scope, key, bytes, reason)| Eviction {
                at,
                repository,
                scope,
                key,
                bytes: bytes.map(to_u64).unwrap_or(0),
                reason: reason.unwrap_or_default(),
            })
            .collect())
    }

    /// The keys restores asked with when they got `entry` (its repository's hits whose matched
    /// key is the entry's), since `since`, most restores first.
    pub fn entry_matches(
        &self,
        entry: &Entry,
        since: EpochMillis,
    ) -> Result<Vec<KeyMatch>, IndexError> {
        use cache_events::dsl as v;
        let hits = [EventKind::HitExact, EventKind::HitPartial].map(EventKind::as_str);
        let mut conn = self.conn()?;
        let rows: Vec<(String, String, i64, i64)> = v::cache_events
            .filter(v::repository.eq(&entry.repository))
            .filter(v::at.ge(since))
            .filter(v::kind.eq_any(hits))
            .filter(v::matched_key.eq(&entry.key))
            .group_by((v::key, v::kind))
            .select((
                v::key,
                v::kind,
                count_star(),
                sql::<BigInt>("CAST(MAX(at) AS BIGINT)"),
            ))
            .order((count_star().desc(), v::key.asc()))
            .limit(20)
            .load(&mut conn)
            .map_err(self.q("entry matches"))?;
        Ok(rows
            .into_iter()
            .map(|(requested, kind, count, last_at)| KeyMatch {
                requested,
                exact: kind == EventKind::HitExact.as_str(),
                count: to_u64(count),
                last_at,
            })
            .collect())
    }

    /// Inserts committed entries in one transaction, as if saved at their `created_at` (for
    /// imports and stores of 100,000 entries in tests); the caller has stored their blobs.
    pub fn bulk_insert(&self, entries: &[BulkEntry]) -> Result<(), IndexError> {
        const OP: &str = "bulk insert";
        let mut rows = Vec::with_capacity(entries.len());
        for b in entries {
            check_key(&b.entry.key)?;
            rows.push(EntryRow {
                id: new_id(),
                repository: b.entry.repository.clone(),
                scope: b.entry.scope.clone(),
                key: b.entry.key.clone(),
                key_lower: key_lower(&b.entry.key),
                version: b.entry.version.clone(),
                paths: serde_json::to_string(&b.entry.paths).unwrap_or_else(|_| "[]".into()),
                compression: b.entry.compression.clone(),
                blob_digest: Some(b.blob.digest.clone()),
                size_bytes: to_i64("size_bytes", b.blob.size)?,
                state: COMMITTED.to_string(),
                created_at: b.created_at,
                last_accessed_at: b.last_accessed_at,
                access_count: to_i64("access_count", b.access_count)?,
                created_by_run: b.entry.created_by_run.clone(),
                roots: b.entry.roots.clone(),
                broken_at: None,
                owner: None,
            });
        }
        let mut conn = self.conn()?;
        super::conn::write_tx(&mut conn, &self.url, OP, |conn| {
            // Chunks keep each statement under SQLite's bound-parameter limit (32,766).
            for chunk in rows.chunks(1000) {
                let insert = diesel::insert_into(cache_entries::table).values(chunk);
                // A multi-row VALUES is per backend in diesel (no DEFAULT keyword on SQLite).
                match conn {
                    AnyConnection::Sqlite(c) => insert.execute(c),
                    #[cfg(feature = "postgres")]
                    AnyConnection::Postgres(c) => insert.execute(c),
                }
                .map_err(self.q(OP))?;
            }
            Ok(())
        })
    }
}
