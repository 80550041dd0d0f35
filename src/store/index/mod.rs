//! The cache index: diesel models and queries over SQLite and PostgreSQL through one code path,
//! with `schema.sql` applied as a versioned migration. Holds no archive bytes.
//!
//! CONTRACT (sketch the cache issue builds out; extend, don't rename):
//! - `Index::open(url, clock)` with `sqlite://PATH` or `postgres://...`.
//! - `Index::lookup(&LookupQuery) -> Option<(Entry, MatchKind)>`: per scope in order, exact key then
//!   newest prefix match of the primary key, then each restore key (exact, newest prefix); keys
//!   compared case-insensitively; prefix matching as an index range scan.
//! - `Index::reserve(NewEntry) -> Reserved | AlreadyExists`, `commit(id, blob)`, `abort(id)`.
//! - `record_event`, `list`, `delete`, `stats`, `evict(policy)`.
