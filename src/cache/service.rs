//! Entry-level operations for callers that move the archive bytes themselves (`runner serve`):
//! the same lookup, reservation, commit, events and eviction as [`Cache::restore`] and
//! [`Cache::save`], which are built on them.

use super::{Cache, CacheError, Log, Scope, key};
use crate::clock::EpochMillis;
use crate::exec::LogLevel;
use crate::store::blob::BlobWriter;
use crate::store::index::{
    Deletion, Entry, EntryUse, EventDetail, EventKind, LookupHit, LookupQuery, LookupRecord,
    NewEntry, NewEvent, Reservation,
};

/// What the server stores as an entry's compression: the client compressed the archive and the
/// version (which names the codec) is opaque to us; restores detect the codec by magic bytes.
pub const CLIENT_COMPRESSION: &str = "client";

impl Cache {
    /// The milliseconds of the injected clock, to pass back to [`Cache::commit_entry`].
    pub fn now_millis(&self) -> EpochMillis {
        self.clock.now_millis()
    }

    /// The index lookup of a restore: `keys` (primary first) in the scope's readable refs.
    pub(crate) fn find_entry(
        &self,
        scope: &Scope,
        keys: Vec<String>,
        version: String,
    ) -> Result<Option<LookupHit>, CacheError> {
        let query = LookupQuery {
            repository: scope.repository.clone(),
            scopes: scope.readable(),
            keys,
            version,
        };
        // The lookup's own writes: now, or by the deferred writer.
        if self.recorder.get().is_some() {
            Ok(self.store.index().find(&query)?)
        } else {
            Ok(self.store.index().lookup(&query)?)
        }
    }

    /// A client could not restore the entry `key` (exactly) and `version` name in the scope's
    /// readable refs. The client's word alone is not enough (any job that can read an entry
    /// could then break it for every other), so the blob is checked here, as a local restore
    /// checks it after a failure: when it is gone or no longer matches its digest the entry
    /// is marked broken, so the next save of its key replaces it. `None`: no such entry;
    /// `Some(broken)` otherwise.
    pub fn check_reported_entry(
        &self,
        scope: &Scope,
        key: &str,
        version: &str,
        log: Log<'_>,
    ) -> Result<Option<bool>, CacheError> {
        key::validate_key(key)?;
        let found = self.find_entry(scope, vec![key.to_string()], version.to_string())?;
        let Some(hit) = found.filter(|hit| hit.entry.key == key) else {
            return Ok(None);
        };
        let broken = self.blob_is_broken(&hit.entry);
        if broken {
            self.mark_broken(&hit.entry, log);
        }
        Ok(Some(broken))
    }

    /// The metrics event of a lookup: a hit (exact when the match is the primary key) carrying
    /// `bytes`, or a miss.
    pub(crate) fn lookup_event_kind(primary: &str, matched: Option<&str>) -> EventKind {
        match matched {
            None => EventKind::Miss,
            Some(m) if key::is_exact_match(primary, Some(m)) => EventKind::HitExact,
            Some(_) => EventKind::HitPartial,
        }
    }

    /// Finds the entry a restore of `keys` (primary key first, then restore keys) would use,
    /// without downloading it, and records the hit or miss as [`Cache::restore`] does. The
    /// caller streams the blob itself (`store().open_entry`).
    pub fn lookup_entry(
        &self,
        scope: &Scope,
        keys: &[String],
        version: &str,
        log: Log<'_>,
    ) -> Result<Option<LookupHit>, CacheError> {
        // No keys can match nothing; the protocols reject an empty list before asking.
        let Some((primary, restore_keys)) = keys.split_first() else {
            return Ok(None);
        };
        key::validate_restore_keys(primary, restore_keys)?;
        let start = self.clock.now_millis();
        let found = self.find_entry(scope, keys.to_vec(), version.to_string());
        let (kind, matched, bytes) = match &found {
            Ok(Some(hit)) => (
                Self::lookup_event_kind(primary, Some(&hit.matched_key)),
                Some(hit.matched_key.as_str()),
                hit.entry.size_bytes,
            ),
            Ok(None) => (EventKind::Miss, None, 0),
            Err(_) => (EventKind::Error, None, 0),
        };
        let event = self.event(kind, scope, primary, matched, bytes, start);
        let detail = EventDetail {
            restore_keys: restore_keys.to_vec(),
            level: matched.and_then(|m| super::analyze::served_level(keys, m)),
            steps_ms: None,
        };
        if let Some(recorder) = self.recorder.get() {
            let at = self.clock.now_millis();
            let record = LookupRecord {
                used: found
                    .as_ref()
                    .ok()
                    .and_then(Option::as_ref)
                    .map(|hit| EntryUse {
                        id: hit.entry.id.clone(),
                        at,
                    }),
                event,
                detail,
                at,
            };
            if let Err(record) = recorder.push(record) {
                // The writer is gone: write it here.
                if let Err(err) = self.store.index().record_lookups(&[*record]) {
                    log(
                        LogLevel::Debug,
                        &format!("could not record cache event: {err}"),
                    );
                }
            }
        } else {
            self.record_detailed(event, &detail, log);
        }
        found
    }

    /// Reserves `key`/`version` in the scope's current ref for a save whose bytes arrive later.
    /// `Ok(None)` when the entry exists or another saver holds it (logged and recorded as
    /// [`Cache::save`] does).
    pub fn reserve_entry(
        &self,
        scope: &Scope,
        key: &str,
        version: &str,
        run_id: Option<String>,
        log: Log<'_>,
    ) -> Result<Option<String>, CacheError> {
        key::validate_key(key)?;
        let start = self.clock.now_millis();
        let entry = NewEntry {
            repository: scope.repository.clone(),
            scope: scope.git_ref.clone(),
            key: key.to_string(),
            version: version.to_string(),
            paths: Vec::new(),
            // The client's tar names its files relative to its workspace; a restore here maps
            // them as it finds them.
            roots: None,
            compression: CLIENT_COMPRESSION.to_string(),
            created_by_run: run_id.filter(|r| !r.is_empty()),
        };
        let reserved = self.reserve_row(&entry, log);
        match &reserved {
            Ok(Some(_)) => {}
            Ok(None) => self.finish_save(scope, key, EventKind::Skip, 0, start, log),
            Err(_) => self.finish_save(scope, key, EventKind::Error, 0, start, log),
        }
        reserved
    }

    /// Reserves a row; `Ok(None)` (with the toolkit's log line) when the identity is taken.
    pub(crate) fn reserve_row(
        &self,
        entry: &NewEntry,
        log: Log<'_>,
    ) -> Result<Option<String>, CacheError> {
        match self.index().reserve(entry)? {
            Reservation::Reserved(id) => Ok(Some(id)),
            Reservation::AlreadyExists => {
                log(
                    LogLevel::Info,
                    &format!(
                        "Failed to save: Unable to reserve cache with key {}, another job may be creating this cache.",
                        entry.key
                    ),
                );
                Ok(None)
            }
        }
    }

    /// Commits reservation `id` to the blob `writer` holds (made durable first), records the
    /// save and applies eviction, as [`Cache::save`] does. `started_at` is when the save began
    /// ([`Cache::now_millis`] at reservation). On failure the reservation is aborted.
    pub fn commit_entry(
        &self,
        scope: &Scope,
        key: &str,
        id: &str,
        writer: Box<dyn BlobWriter>,
        started_at: EpochMillis,
        log: Log<'_>,
    ) -> Result<Entry, CacheError> {
        match self.store.commit_blob(id, writer) {
            Ok(entry) => {
                self.finish_save(
                    scope,
                    key,
                    EventKind::Save,
                    entry.size_bytes,
                    started_at,
                    log,
                );
                Ok(entry)
            }
            Err(err) => {
                // An abort that fails leaves a reservation that expires on its own.
                let _ = self.index().abort(id);
                self.finish_save(scope, key, EventKind::Error, 0, started_at, log);
                Err(err.into())
            }
        }
    }

    /// Deletes committed entry `id` on `by`'s request (the REST API, the UI): audited and
    /// counted as a `manual` eviction; its blob goes unless another entry shares it.
    pub fn delete_audited(&self, id: &str, by: &Deletion) -> Result<Option<Entry>, CacheError> {
        Ok(self.store.delete_audited(id, by)?)
    }

    /// Drops reservation `id` (the upload failed or was abandoned); whether it was still open.
    pub fn abort_entry(&self, id: &str) -> Result<bool, CacheError> {
        Ok(self.index().abort(id)?)
    }

    /// Records the outcome of a save and, after a successful one, applies eviction.
    pub(crate) fn finish_save(
        &self,
        scope: &Scope,
        key: &str,
        kind: EventKind,
        bytes: u64,
        start: EpochMillis,
        log: Log<'_>,
    ) {
        let event = self.event(kind, scope, key, None, bytes, start);
        self.record_save(event, &EventDetail::default(), log);
    }

    /// Records a save's event with `detail` and, after a successful save, applies eviction.
    pub(crate) fn record_save(&self, event: NewEvent, detail: &EventDetail, log: Log<'_>) {
        let saved = event.kind == EventKind::Save;
        self.record_detailed(event, detail, log);
        if saved && let Err(err) = self.prune(false) {
            log(LogLevel::Warning, &format!("Cache eviction failed: {err}"));
        }
    }
}
