//! Store-wide totals for `/metrics`, read from the events and entries tables at scrape time, so
//! every server in front of one index reports the same numbers `runner cache stats` shows.

use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::rows::{COMMITTED, to_u64};
use super::schema::{cache_entries, cache_events};
use super::{EventKind, Index, IndexError};

/// Events of one kind (and eviction reason) for one repository, since the store began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTally {
    /// The repository.
    pub repository: String,
    /// What happened.
    pub kind: EventKind,
    /// Why, for evictions (`unused`, `size`, `broken`, `manual`).
    pub reason: Option<String>,
    /// How many.
    pub count: u64,
    /// Their bytes (restored, saved or evicted).
    pub bytes: u64,
}

/// Lookups of one primary key with one outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTally {
    /// The repository.
    pub repository: String,
    /// `HitExact`, `HitPartial` or `Miss`.
    pub kind: EventKind,
    /// The primary key looked up.
    pub key: String,
    /// How many times.
    pub count: u64,
}

/// Committed entries of one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoUsage {
    /// The repository.
    pub repository: String,
    /// How many.
    pub entries: u64,
    /// Their total size.
    pub size_bytes: u64,
}

impl Index {
    /// Every event counted by repository, kind and reason.
    pub fn event_tallies(&self) -> Result<Vec<EventTally>, IndexError> {
        use cache_events::dsl as v;
        // SUM over BIGINT is NUMERIC on PostgreSQL; cast back so both backends give a BIGINT.
        let sum_bytes = sql::<BigInt>("CAST(COALESCE(SUM(bytes), 0) AS BIGINT)");
        let mut conn = self.conn()?;
        let rows: Vec<(String, String, Option<String>, i64, i64)> = v::cache_events
            .group_by((v::repository, v::kind, v::reason))
            .select((v::repository, v::kind, v::reason, count_star(), sum_bytes))
            .load(&mut conn)
            .map_err(self.q("tally events"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(repository, kind, reason, count, bytes)| {
                Some(EventTally {
                    repository,
                    kind: EventKind::parse(&kind)?,
                    reason,
                    count: to_u64(count),
                    bytes: to_u64(bytes),
                })
            })
            .collect())
    }

    /// Lookups (hits and misses) counted by repository, outcome and primary key.
    pub fn lookup_key_tallies(&self) -> Result<Vec<KeyTally>, IndexError> {
        use cache_events::dsl as v;
        let lookups = [EventKind::HitExact, EventKind::HitPartial, EventKind::Miss];
        let mut conn = self.conn()?;
        let rows: Vec<(String, String, String, i64)> = v::cache_events
            .filter(v::kind.eq_any(lookups.map(EventKind::as_str)))
            .group_by((v::repository, v::kind, v::key))
            .select((v::repository, v::kind, v::key, count_star()))
            .load(&mut conn)
            .map_err(self.q("tally lookups by key"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(repository, kind, key, count)| {
                Some(KeyTally {
                    repository,
                    kind: EventKind::parse(&kind)?,
                    key,
                    count: to_u64(count),
                })
            })
            .collect())
    }

    /// Committed entries and their bytes per repository (one repository, or all), by name.
    pub fn usage(&self, repository: Option<&str>) -> Result<Vec<RepoUsage>, IndexError> {
        use cache_entries::dsl as e;
        let sum_size = sql::<BigInt>("CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT)");
        // Grouped by state too, and reservations dropped here: a `state =` filter makes SQLite
        // walk the state index and sort (66 ms at 100,000 entries) instead of reading the
        // (repository, state, size_bytes) index in order (10 ms).
        let mut query = e::cache_entries
            .group_by((e::repository, e::state))
            .select((e::repository, e::state, count_star(), sum_size))
            .order(e::repository.asc())
            .into_boxed();
        if let Some(repository) = repository {
            query = query.filter(e::repository.eq(repository.to_string()));
        }
        let mut conn = self.conn()?;
        let rows: Vec<(String, String, i64, i64)> = query
            .load(&mut conn)
            .map_err(self.q("usage per repository"))?;
        Ok(rows
            .into_iter()
            .filter(|(_, state, _, _)| state == COMMITTED)
            .map(|(repository, _, entries, size)| RepoUsage {
                repository,
                entries: to_u64(entries),
                size_bytes: to_u64(size),
            })
            .collect())
    }

    /// One cheap query, to tell that the index answers (`/readyz`).
    pub fn ping(&self) -> Result<(), IndexError> {
        use cache_entries::dsl as e;
        let mut conn = self.conn()?;
        e::cache_entries
            .select(e::id)
            .limit(1)
            .load::<String>(&mut conn)
            .map_err(self.q("ping"))?;
        Ok(())
    }
}
