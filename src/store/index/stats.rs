//! Metrics events and the statistics computed from them.

use diesel::dsl::{count_star, sql};
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::rows::{COMMITTED, EventRow, event_row, to_u64};
use super::schema::{cache_entries, cache_events};
use super::{Event, EventKind, Index, IndexError, KeyHits, NewEvent, Stats};
use crate::clock::EpochMillis;

impl Index {
    /// Records a metrics event stamped with the clock (nothing, on a read-only index).
    pub fn record_event(&self, event: &NewEvent) -> Result<(), IndexError> {
        // Metrics are not worth a warning per lookup on a read-only store; `read_only` said it.
        if self.read_only.is_some() {
            return Ok(());
        }
        let row = event_row(event, self.clock.now_millis(), None)?;
        let mut conn = self.conn()?;
        let _gate = self.write_gate();
        diesel::insert_into(cache_events::table)
            .values(&row)
            .execute(&mut conn)
            .map_err(self.q("record event"))?;
        Ok(())
    }

    /// Events at or after `since`, oldest first (for tests and exports).
    pub fn events(&self, since: EpochMillis) -> Result<Vec<Event>, IndexError> {
        use cache_events::dsl as v;
        let mut conn = self.conn()?;
        let rows: Vec<EventRow> = v::cache_events
            .filter(v::at.ge(since))
            .order((v::at.asc(), v::id.asc()))
            .select(EventRow::as_select())
            .load(&mut conn)
            .map_err(self.q("list events"))?;
        rows.into_iter()
            .map(|r| {
                let kind = EventKind::parse(&r.kind).ok_or_else(|| IndexError::CorruptRow {
                    id: r.id.clone(),
                    field: "kind",
                    reason: format!("unknown event kind {:?}", r.kind),
                })?;
                Ok(Event {
                    at: r.at,
                    reason: r.reason,
                    event: NewEvent {
                        repository: r.repository,
                        scope: r.scope,
                        kind,
                        key: r.key,
                        matched_key: r.matched_key,
                        bytes: r.bytes.map(to_u64),
                        duration_ms: r.duration_ms.map(to_u64),
                    },
                })
            })
            .collect()
    }

    /// Current content, plus events at or after `since`, optionally for one repository.
    pub fn stats(&self, since: EpochMillis, repository: Option<&str>) -> Result<Stats, IndexError> {
        use cache_entries::dsl as e;
        use cache_events::dsl as v;
        const OP: &str = "stats";
        const TOP_KEYS: i64 = 10;
        // SUM over BIGINT is NUMERIC on PostgreSQL; cast back so both backends give a BIGINT.
        let sum_size = || sql::<BigInt>("CAST(COALESCE(SUM(size_bytes), 0) AS BIGINT)");
        let sum_bytes = || sql::<BigInt>("CAST(COALESCE(SUM(bytes), 0) AS BIGINT)");
        let mut conn = self.conn()?;

        let mut entries = e::cache_entries
            .group_by(e::state)
            .select((e::state, count_star(), sum_size()))
            .into_boxed();
        if let Some(repository) = repository {
            entries = entries.filter(e::repository.eq(repository.to_string()));
        }
        let by_state: Vec<(String, i64, i64)> = entries.load(&mut conn).map_err(self.q(OP))?;
        let mut stats = Stats::default();
        for (state, count, size) in by_state {
            match state.as_str() {
                COMMITTED => {
                    stats.entries = to_u64(count);
                    stats.total_size_bytes = to_u64(size);
                }
                _ => stats.reserved += to_u64(count),
            }
        }

        let mut events = v::cache_events
            .filter(v::at.ge(since))
            .group_by(v::kind)
            .select((v::kind, count_star(), sum_bytes()))
            .into_boxed();
        if let Some(repository) = repository {
            events = events.filter(v::repository.eq(repository.to_string()));
        }
        let by_kind: Vec<(String, i64, i64)> = events.load(&mut conn).map_err(self.q(OP))?;
        for (kind, count, bytes) in by_kind {
            let Some(kind) = EventKind::parse(&kind) else {
                continue;
            };
            stats.events.insert(kind, to_u64(count));
            match kind {
                EventKind::HitExact | EventKind::HitPartial => {
                    stats.bytes_restored += to_u64(bytes)
                }
                EventKind::Save => stats.bytes_saved += to_u64(bytes),
                _ => {}
            }
        }
        let hits = stats.count(EventKind::HitExact) + stats.count(EventKind::HitPartial);
        let lookups = hits + stats.count(EventKind::Miss);
        stats.hit_rate = if lookups == 0 {
            0.0
        } else {
            hits as f64 / lookups as f64
        };

        let mut top = v::cache_events
            .filter(v::at.ge(since))
            .filter(
                v::kind
                    .eq(EventKind::HitExact.as_str())
                    .or(v::kind.eq(EventKind::HitPartial.as_str())),
            )
            .filter(v::matched_key.is_not_null())
            .group_by(v::matched_key)
            .select((v::matched_key, count_star()))
            .order((count_star().desc(), v::matched_key.asc()))
            .limit(TOP_KEYS)
            .into_boxed();
        if let Some(repository) = repository {
            top = top.filter(v::repository.eq(repository.to_string()));
        }
        let top: Vec<(Option<String>, i64)> = top.load(&mut conn).map_err(self.q(OP))?;
        stats.top_keys = top
            .into_iter()
            .filter_map(|(key, hits)| {
                key.map(|key| KeyHits {
                    key,
                    hits: to_u64(hits),
                })
            })
            .collect();
        Ok(stats)
    }
}
