//! The life of a save: reserve, commit or abort, taking over abandoned reservations and
//! broken entries; run numbers.

use diesel::prelude::*;
use diesel::result::DatabaseErrorKind;
use diesel::sql_types::BigInt;

use super::rows::{COMMITTED, EntryRow, RESERVED, check_key, key_lower, new_id, to_i64, to_u64};
use super::schema::cache_entries;
use super::{AnyConnection, Entry, Index, IndexError, NewEntry, Reservation};
use crate::clock::EpochMillis;
use crate::store::blob::BlobInfo;

impl Index {
    /// Reserves the identity (repository, scope, lower(key), version) for a save. An existing
    /// row is taken over (atomically: the unique index and a compare-and-set decide races) when
    /// it is a reservation older than the reservation TTL, a reservation whose owner is known
    /// to be dead, or a broken entry. The taken row gets a new id, so an old owner's commit fails
    /// with [`IndexError::NotReserved`].
    pub fn reserve(&self, new: &NewEntry) -> Result<Reservation, IndexError> {
        use cache_entries::dsl as e;
        const OP: &str = "reserve";
        check_key(&new.key)?;
        let now = self.clock.now_millis();
        let paths = serde_json::to_string(&new.paths).map_err(|err| IndexError::CorruptRow {
            id: String::new(),
            field: "paths",
            reason: err.to_string(),
        })?;
        let lower = key_lower(&new.key);
        let row = EntryRow {
            id: new_id(),
            repository: new.repository.clone(),
            scope: new.scope.clone(),
            key: new.key.clone(),
            key_lower: lower.clone(),
            version: new.version.clone(),
            paths,
            compression: new.compression.clone(),
            blob_digest: None,
            size_bytes: 0,
            state: RESERVED.to_string(),
            created_at: now,
            last_accessed_at: now,
            access_count: 0,
            created_by_run: new.created_by_run.clone(),
            roots: new.roots.clone(),
            broken_at: None,
            owner: self.owner.clone(),
        };
        let mut conn = self.conn()?;
        let _gate = self.write_gate();
        match diesel::insert_into(e::cache_entries)
            .values(&row)
            .execute(&mut conn)
        {
            Ok(_) => return Ok(Reservation::Reserved(row.id)),
            Err(diesel::result::Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => {}
            Err(source) => return Err(self.q(OP)(source)),
        }
        let held: Option<EntryRow> = e::cache_entries
            .filter(e::repository.eq(&new.repository))
            .filter(e::version.eq(&new.version))
            .filter(e::scope.eq(&new.scope))
            .filter(e::key_lower.eq(&lower))
            .select(EntryRow::as_select())
            .first(&mut conn)
            .optional()
            .map_err(self.q(OP))?;
        let Some(held) = held else {
            // Deleted in between; the unique index settles who gets the next insert.
            return Ok(Reservation::AlreadyExists);
        };
        let replaceable =
            held.broken_at.is_some() || held.is_abandoned(now, self.reservation_ttl_ms);
        if !replaceable {
            return Ok(Reservation::AlreadyExists);
        }
        // Compare-and-set on the id (a taker changes it) and the state seen: two takers cannot
        // both win, and a reservation committed meanwhile is not replaced.
        let taken = diesel::update(e::cache_entries)
            .filter(e::id.eq(&held.id))
            .filter(e::state.eq(&held.state))
            .set((
                e::id.eq(&row.id),
                e::key.eq(&row.key),
                e::paths.eq(&row.paths),
                e::compression.eq(&row.compression),
                e::blob_digest.eq(None::<String>),
                e::size_bytes.eq(0),
                e::state.eq(RESERVED),
                e::created_at.eq(now),
                e::last_accessed_at.eq(now),
                e::access_count.eq(0),
                e::created_by_run.eq(&row.created_by_run),
                e::roots.eq(&row.roots),
                e::broken_at.eq(None::<i64>),
                e::owner.eq(&row.owner),
            ))
            .execute(&mut conn)
            .map_err(self.q(OP))?;
        Ok(if taken == 1 {
            Reservation::Reserved(row.id)
        } else {
            Reservation::AlreadyExists
        })
    }

    /// Reservations nobody will commit: older than the reservation TTL, or held by an owner
    /// known to be dead. `prune` removes them, and the next save of their key takes them over.
    pub fn abandoned_reservations(&self) -> Result<Vec<Entry>, IndexError> {
        let now = self.clock.now_millis();
        let mut conn = self.conn()?;
        self.abandoned_on(&mut conn, now, self.reservation_ttl_ms)?
            .into_iter()
            .map(EntryRow::into_entry)
            .collect()
    }

    pub(super) fn abandoned_on(
        &self,
        conn: &mut AnyConnection,
        now: EpochMillis,
        ttl_ms: i64,
    ) -> Result<Vec<EntryRow>, IndexError> {
        use cache_entries::dsl as e;
        let reserved: Vec<EntryRow> = e::cache_entries
            .filter(e::state.eq(RESERVED))
            .select(EntryRow::as_select())
            .order((e::created_at.asc(), e::id.asc()))
            .load(conn)
            .map_err(self.q("list abandoned reservations"))?;
        Ok(reserved
            .into_iter()
            .filter(|r| r.is_abandoned(now, ttl_ms))
            .collect())
    }

    /// Marks a committed entry broken (its archive cannot be restored): lookups skip it from
    /// now on, the next prune evicts it, and a save of the same identity replaces it. Returns
    /// whether a committed entry was marked.
    pub fn mark_broken(&self, id: &str) -> Result<bool, IndexError> {
        use cache_entries::dsl as e;
        let now = self.clock.now_millis();
        let mut conn = self.conn()?;
        let _gate = self.write_gate();
        let n = diesel::update(e::cache_entries.filter(e::id.eq(id)))
            .filter(e::state.eq(COMMITTED))
            .filter(e::broken_at.is_null())
            .set(e::broken_at.eq(now))
            .execute(&mut conn)
            .map_err(self.q("mark broken"))?;
        Ok(n == 1)
    }

    /// The next run number of `workflow` (the workflow file) in `repository`: 1, 2, 3, ...,
    /// incremented atomically, so concurrent runs never share one.
    pub fn next_run_number(&self, repository: &str, workflow: &str) -> Result<u64, IndexError> {
        use diesel::sql_types::Text;
        #[derive(QueryableByName)]
        struct Number {
            #[diesel(sql_type = BigInt)]
            last_number: i64,
        }
        const OP: &str = "next run number";
        // `$n` placeholders are positional on PostgreSQL and, each used once, on SQLite.
        const SQL: &str = "INSERT INTO run_numbers (repository, workflow, last_number) \
            VALUES ($1, $2, 1) ON CONFLICT (repository, workflow) \
            DO UPDATE SET last_number = run_numbers.last_number + 1 RETURNING last_number";
        let query = diesel::sql_query(SQL)
            .bind::<Text, _>(repository)
            .bind::<Text, _>(workflow);
        let mut conn = self.conn()?;
        let number: Number = match &mut *conn {
            AnyConnection::Sqlite(c) => query.get_result(c),
            #[cfg(feature = "postgres")]
            AnyConnection::Postgres(c) => query.get_result(c),
        }
        .map_err(self.q(OP))?;
        Ok(to_u64(number.last_number))
    }

    /// Makes a reservation visible, pointing at a blob that is already durable. Its creation
    /// time becomes now, so "newest" means newest visible.
    pub fn commit(&self, id: &str, blob: &BlobInfo) -> Result<Entry, IndexError> {
        use cache_entries::dsl as e;
        let now = self.clock.now_millis();
        let size = to_i64("size_bytes", blob.size)?;
        let mut conn = self.conn()?;
        let _gate = self.write_gate();
        let row: Option<EntryRow> = diesel::update(e::cache_entries.filter(e::id.eq(id)))
            .filter(e::state.eq(RESERVED))
            .set((
                e::state.eq(COMMITTED),
                e::owner.eq(None::<String>),
                e::blob_digest.eq(&blob.digest),
                e::size_bytes.eq(size),
                e::created_at.eq(now),
                e::last_accessed_at.eq(now),
            ))
            .returning(cache_entries::all_columns)
            .get_result(&mut conn)
            .optional()
            .map_err(self.q("commit"))?;
        match row {
            Some(row) => row.into_entry(),
            None => Err(IndexError::NotReserved { id: id.to_string() }),
        }
    }

    /// Drops a reservation (the save failed). Returns whether it was still open.
    pub fn abort(&self, id: &str) -> Result<bool, IndexError> {
        use cache_entries::dsl as e;
        let mut conn = self.conn()?;
        let _gate = self.write_gate();
        let n = diesel::delete(e::cache_entries.filter(e::id.eq(id)))
            .filter(e::state.eq(RESERVED))
            .execute(&mut conn)
            .map_err(self.q("abort"))?;
        Ok(n == 1)
    }
}
