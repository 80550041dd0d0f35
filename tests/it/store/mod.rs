//! Integration tests: store. Every index test body runs on SQLite and, when
//! `RUNNER_TEST_POSTGRES_URL` is set, on PostgreSQL (a fresh schema per test).

mod blob;
pub(crate) mod blob_conformance;
mod concurrency;
mod eviction;
mod extras;
mod frames;
mod index;
mod kill;
mod races;
mod read_only;
mod reclaim;
#[cfg(feature = "s3")]
mod s3_faults;
mod schema;
mod tiered;
mod verify;

pub use crate::support::PgSchema;
use crate::support::TestBackend;
/// `RUNNER_TEST_S3_URL` and a fresh prefix in it (see [`blob_conformance::s3_test_url`]).
pub use blob_conformance::s3_test_url as blob_conformance_s3_url;
use std::path::PathBuf;
use std::sync::Arc;

use runner::clock::ManualClock;
use runner::store::Store;
use runner::store::blob::BlobInfo;
use runner::store::index::{Entry, Index, NewEntry, Reservation};

/// 2026-01-01T00:00:00Z; tests move the clock from here.
pub const T0: i64 = 1_767_225_600_000;
pub const MINUTE: i64 = 60 * 1000;
pub const DAY: i64 = 24 * 60 * MINUTE;

/// One store on one backend, with a manual clock.
pub struct Harness {
    pub store: Store,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub backend: &'static str,
    // Dropped last: the store's connections go first.
    _pg: Option<PgSchema>,
}

impl Harness {
    pub fn sqlite() -> Self {
        Self::build(TestBackend::sqlite("index.sqlite"))
    }

    pub fn postgres() -> Option<Self> {
        TestBackend::postgres().map(Self::build)
    }

    fn build(backend: TestBackend) -> Self {
        let TestBackend { dir, url, name, pg } = backend;
        let clock = ManualClock::new(T0);
        let store = Store::open(dir.path(), Some(&url), Arc::new(clock.clone()))
            .unwrap_or_else(|e| panic!("open {name} store: {e}"));
        Self {
            store,
            clock,
            dir,
            url,
            backend: name,
            _pg: pg,
        }
    }

    pub fn index(&self) -> &Index {
        self.store.index()
    }

    /// A new handle on the same database (another "process").
    pub fn reopen(&self) -> Store {
        Store::open(
            self.dir.path(),
            Some(&self.url),
            Arc::new(self.clock.clone()),
        )
        .unwrap_or_else(|e| panic!("reopen {} store: {e}", self.backend))
    }

    pub fn blob_dir(&self) -> PathBuf {
        self.dir.path().join("blobs-v1")
    }

    /// Saves an entry with real blob bytes; returns it committed.
    pub fn save(&self, spec: &Spec<'_>, bytes: &[u8]) -> Entry {
        save_into(&self.store, spec, bytes)
    }
}

/// Saves an entry with real blob bytes into `store`; returns it committed.
pub fn save_into(store: &Store, spec: &Spec<'_>, bytes: &[u8]) -> Entry {
    let new = spec.new_entry();
    let Reservation::Reserved(id) = store.index().reserve(&new).expect("reserve") else {
        panic!("{spec:?} already exists");
    };
    let mut writer = store.blobs().writer().expect("blob writer");
    std::io::Write::write_all(&mut writer, bytes).expect("write blob");
    store.commit_blob(&id, writer).expect("commit")
}

/// What an entry is, for table-driven setups.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    pub repository: &'a str,
    pub scope: &'a str,
    pub key: &'a str,
    pub version: &'a str,
}

impl<'a> Spec<'a> {
    pub fn new(scope: &'a str, key: &'a str) -> Self {
        Self {
            repository: "octo/repo",
            scope,
            key,
            version: "v1",
        }
    }

    pub fn new_entry(&self) -> NewEntry {
        NewEntry {
            repository: self.repository.to_string(),
            scope: self.scope.to_string(),
            key: self.key.to_string(),
            version: self.version.to_string(),
            paths: vec!["~/.npm".to_string(), "!~/.npm/_logs".to_string()],
            compression: "zstd-without-long".to_string(),
            created_by_run: Some("run-1".to_string()),
            roots: None,
        }
    }
}

/// A fake blob reference for index-only tests.
pub fn blob_info(n: u64, size: u64) -> BlobInfo {
    BlobInfo {
        digest: format!("{n:064x}"),
        size,
    }
}

/// Runs raw SQL (several statements allowed) against a database, outside the index. SQLite
/// connections know the "C" collation schema version 1 declared.
pub fn raw_execute(url: &str, sql: &str) {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut conn = diesel::SqliteConnection::establish(path).expect("open sqlite");
        conn.register_collation("C", |a: &str, b: &str| b.as_bytes().cmp(a.as_bytes()))
            .expect("collation");
        conn.batch_execute(sql).expect(sql);
    } else {
        let mut conn = diesel::PgConnection::establish(url).expect("open postgres");
        conn.batch_execute(sql).expect(sql);
    }
}
