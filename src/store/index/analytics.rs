//! The queries behind cache analytics (`crate::cache::analyze`): events with the details a
//! finding needs (the restore keys a lookup asked for, the level that served it, the time the
//! job's steps took after a miss), recorded and read back.

use diesel::prelude::*;

use super::rows::{EventRow, event_row, to_i64, to_u64};
use super::schema::cache_events;
use super::{Event, EventKind, Index, IndexError, NewEvent};
use crate::clock::EpochMillis;

/// What analytics needs of an event beyond [`NewEvent`] (all empty for evictions and skips).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventDetail {
    /// The restore keys the lookup asked for after the primary key, in order.
    pub restore_keys: Vec<String>,
    /// Which key served a hit: 0 the primary key, n the n-th restore key.
    pub level: Option<u32>,
    /// On a save after a miss of the same key: how long the job's steps took between the
    /// miss and the save.
    pub steps_ms: Option<u64>,
}

/// A recorded event with its [`EventDetail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailedEvent {
    /// The event.
    pub event: Event,
    /// Its details (empty for events recorded without them, or before schema version 3).
    pub detail: EventDetail,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = cache_events)]
pub(super) struct DetailRow {
    restore_keys: Option<String>,
    match_level: Option<i64>,
    steps_ms: Option<i64>,
}

impl DetailRow {
    fn new(detail: &EventDetail) -> Result<Self, IndexError> {
        let restore_keys = if detail.restore_keys.is_empty() {
            None
        } else {
            serde_json::to_string(&detail.restore_keys).ok()
        };
        Ok(Self {
            restore_keys,
            match_level: detail.level.map(i64::from),
            steps_ms: detail
                .steps_ms
                .map(|ms| to_i64("steps_ms", ms))
                .transpose()?,
        })
    }

    /// Unreadable details (a hand-edited row) read as absent: analytics then counts less,
    /// it does not fail.
    fn into_detail(self) -> EventDetail {
        EventDetail {
            restore_keys: self
                .restore_keys
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or_default(),
            level: self.match_level.and_then(|l| u32::try_from(l).ok()),
            steps_ms: self.steps_ms.map(to_u64),
        }
    }
}

impl EventRow {
    fn into_event(self) -> Result<Event, IndexError> {
        let kind = EventKind::parse(&self.kind).ok_or_else(|| IndexError::CorruptRow {
            id: self.id.clone(),
            field: "kind",
            reason: format!("unknown event kind {:?}", self.kind),
        })?;
        Ok(Event {
            at: self.at,
            reason: self.reason,
            event: NewEvent {
                repository: self.repository,
                scope: self.scope,
                kind,
                key: self.key,
                matched_key: self.matched_key,
                bytes: self.bytes.map(to_u64),
                duration_ms: self.duration_ms.map(to_u64),
            },
        })
    }
}

impl Index {
    /// Records a metrics event with its analytics details, stamped with the clock (nothing, on
    /// a read-only index, as [`Index::record_event`]).
    pub fn record_event_detail(
        &self,
        event: &NewEvent,
        detail: &EventDetail,
    ) -> Result<(), IndexError> {
        if self.read_only.is_some() {
            return Ok(());
        }
        let row = event_row(event, self.clock.now_millis(), None)?;
        let detail = DetailRow::new(detail)?;
        let mut conn = self.conn()?;
        diesel::insert_into(cache_events::table)
            .values((&row, &detail))
            .execute(&mut conn)
            .map_err(self.q("record event"))?;
        Ok(())
    }

    /// Events at or after `since` (of one repository, or all), oldest first, with details.
    pub fn detailed_events(
        &self,
        since: EpochMillis,
        repository: Option<&str>,
    ) -> Result<Vec<DetailedEvent>, IndexError> {
        use cache_events::dsl as v;
        let mut query = v::cache_events
            .filter(v::at.ge(since))
            .order((v::at.asc(), v::id.asc()))
            .select((EventRow::as_select(), DetailRow::as_select()))
            .into_boxed();
        if let Some(repository) = repository {
            query = query.filter(v::repository.eq(repository.to_string()));
        }
        let mut conn = self.conn()?;
        let rows: Vec<(EventRow, DetailRow)> =
            query.load(&mut conn).map_err(self.q("list events"))?;
        rows.into_iter()
            .map(|(event, detail)| {
                Ok(DetailedEvent {
                    event: event.into_event()?,
                    detail: detail.into_detail(),
                })
            })
            .collect()
    }
}

/// The columns of `event` (recorded at `at`) with its details.
pub(super) fn event_values(
    event: &NewEvent,
    detail: &EventDetail,
    at: crate::clock::EpochMillis,
) -> Result<(EventRow, DetailRow), IndexError> {
    Ok((event_row(event, at, None)?, DetailRow::new(detail)?))
}

/// Inserts events made by [`event_values`] on `conn`.
pub(super) fn insert_events(
    conn: &mut super::AnyConnection,
    events: &[(EventRow, DetailRow)],
) -> diesel::QueryResult<()> {
    for (row, detail) in events {
        diesel::insert_into(cache_events::table)
            .values((row, detail))
            .execute(conn)?;
    }
    Ok(())
}
