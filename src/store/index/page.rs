//! One page of the entries a filter matches, and how many match in all, both from the database
//! (`LIMIT`/`OFFSET` and `COUNT`), so a repository of 100,000 entries lists a page of 30 without
//! loading the rest (GitHub's REST caches API pages this way).

use diesel::prelude::*;

use super::conn::MultiBackend;
use super::schema::cache_entries;
use super::{COMMITTED, Entry, EntryRow, Index, IndexError, ListFilter, ListSort, key_lower};
use super::{prefix_upper_bound, to_u64};

/// A page of entries and the number of all entries the filter matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPage {
    /// Every matching entry, not just this page's.
    pub total: u64,
    /// This page, in the order asked for.
    pub entries: Vec<Entry>,
}

/// The rows `filter` matches (its sort and limit aside).
fn matching(filter: &ListFilter) -> cache_entries::BoxedQuery<'static, MultiBackend> {
    use cache_entries::dsl as e;
    let mut query = e::cache_entries.into_boxed();
    if !filter.include_reserved {
        query = query.filter(e::state.eq(COMMITTED));
    }
    if let Some(repository) = &filter.repository {
        query = query.filter(e::repository.eq(repository.clone()));
    }
    if let Some(scope) = &filter.scope {
        query = query.filter(e::scope.eq(scope.clone()));
    }
    if let Some(prefix) = filter.key_prefix.as_deref().filter(|p| !p.is_empty()) {
        let lower = key_lower(prefix);
        if let Some(upper) = prefix_upper_bound(&lower) {
            query = query.filter(e::key_lower.lt(upper));
        }
        query = query.filter(e::key_lower.ge(lower));
    }
    query
}

impl Index {
    /// Entries `filter` matches, sorted by `filter.sort` (ascending or descending, ties by id),
    /// `limit` of them after skipping `offset`; `filter.limit` is ignored.
    pub fn list_page(
        &self,
        filter: &ListFilter,
        ascending: bool,
        offset: u64,
        limit: u64,
    ) -> Result<EntryPage, IndexError> {
        use cache_entries::dsl as e;
        const OP: &str = "list a page";
        let mut conn = self.conn()?;
        let total: i64 = matching(filter)
            .count()
            .get_result(&mut conn)
            .map_err(self.q(OP))?;
        let query = matching(filter).select(EntryRow::as_select());
        let query = match (filter.sort, ascending) {
            (ListSort::Created, false) => query.order((e::created_at.desc(), e::id.desc())),
            (ListSort::Created, true) => query.order((e::created_at.asc(), e::id.asc())),
            (ListSort::LastUsed, false) => query.order((e::last_accessed_at.desc(), e::id.desc())),
            (ListSort::LastUsed, true) => query.order((e::last_accessed_at.asc(), e::id.asc())),
            (ListSort::Size, false) => query.order((e::size_bytes.desc(), e::id.desc())),
            (ListSort::Size, true) => query.order((e::size_bytes.asc(), e::id.asc())),
        };
        let rows: Vec<EntryRow> = query
            .offset(i64::try_from(offset).unwrap_or(i64::MAX))
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .load(&mut conn)
            .map_err(self.q(OP))?;
        Ok(EntryPage {
            total: to_u64(total),
            entries: rows
                .into_iter()
                .map(EntryRow::into_entry)
                .collect::<Result<_, _>>()?,
        })
    }
}
