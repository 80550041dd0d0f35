//! Maintenance running while saves commit: `verify` and `prune` decide from what was there when
//! they started, so no save that reported success loses its entry or its blob.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use runner::store::index::{EvictionPolicy, IndexError, ListFilter, Reservation};
use runner::store::{StoreError, VerifyOptions};

use super::{Harness, Spec};

crate::backend_matrix!(crate::store::Harness:
    saves_survive_verify_and_prune_running_alongside,
    a_blob_removed_under_a_commit_withdraws_the_entry,
);

const SAVERS: usize = 3;
const SAVES_EACH: usize = 25;

fn bytes(key: &str) -> Vec<u8> {
    format!("{key}\n").repeat(500).into_bytes()
}

fn saves_survive_verify_and_prune_running_alongside(h: &Harness) {
    let stop = AtomicBool::new(false);
    let saved: Vec<String> = std::thread::scope(|s| {
        let maintenance = s.spawn(|| {
            let store = h.reopen();
            // Every reservation counts as stale, so a prune may take any save's reservation;
            // that save then fails (and says so) instead of reporting success.
            let prune = EvictionPolicy {
                reservation_ttl_ms: 0,
                ..EvictionPolicy::default()
            };
            let mut rounds = 0u32;
            while !stop.load(Ordering::Relaxed) || rounds < 5 {
                rounds += 1;
                let report = store
                    .verify(&VerifyOptions {
                        rehash: rounds.is_multiple_of(2),
                        dry_run: false,
                    })
                    .expect("verify");
                assert!(
                    report.rows_without_blob.is_empty() && report.corrupt_blobs.is_empty(),
                    "{}: verify found damage that is not there: {report:?}",
                    h.backend
                );
                h.clock.advance(1);
                store.evict(&prune).expect("prune");
            }
            rounds
        });
        let savers: Vec<_> = (0..SAVERS)
            .map(|t| {
                s.spawn(move || {
                    let store = h.reopen();
                    let mut saved = Vec::new();
                    for i in 0..SAVES_EACH {
                        let key = format!("key-{t}-{i}");
                        let spec = Spec::new("refs/heads/main", &key);
                        let Reservation::Reserved(id) =
                            store.index().reserve(&spec.new_entry()).expect("reserve")
                        else {
                            panic!("{key} reserved twice");
                        };
                        let mut writer = store.blobs().writer().expect("writer");
                        writer.write_all(&bytes(&key)).expect("write");
                        match store.commit_blob(&id, writer) {
                            Ok(_) => saved.push(key),
                            Err(StoreError::Index(IndexError::NotReserved { .. })) => {}
                            Err(err) => panic!("commit {key}: {err}"),
                        }
                    }
                    saved
                })
            })
            .collect();
        let saved = savers
            .into_iter()
            .flat_map(|t| t.join().expect("saver"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        let rounds = maintenance.join().expect("maintenance");
        eprintln!("{}: {rounds} verify+prune rounds", h.backend);
        saved
    });
    assert!(!saved.is_empty(), "{}: no save succeeded", h.backend);
    let mut lost = Vec::new();
    for key in &saved {
        let found = h.index().find_by_key(None, None, key).expect("find");
        let Some(entry) = found.first() else {
            lost.push(key.clone());
            continue;
        };
        let mut read = Vec::new();
        h.store
            .open_entry(entry)
            .and_then(|mut r| {
                r.read_to_end(&mut read).map_err(|source| {
                    StoreError::Blob(runner::store::blob::BlobError::Io {
                        path: key.into(),
                        source,
                    })
                })
            })
            .unwrap_or_else(|e| panic!("{}: {key}: blob unreadable: {e}", h.backend));
        assert_eq!(read, bytes(key), "{}: {key}", h.backend);
    }
    assert!(
        lost.is_empty(),
        "{}: {} of {} saves lost their entry: {lost:?}",
        h.backend,
        lost.len(),
        saved.len()
    );
    // Every save finished one way or the other: no reservation is left behind.
    let all = h
        .index()
        .list(&ListFilter {
            include_reserved: true,
            ..ListFilter::default()
        })
        .expect("list");
    assert_eq!(all.len(), saved.len(), "{}", h.backend);
}

/// Blobs in a local directory, where a cleanup removes every blob right after its writer
/// finishes: the moment between a save's rename and its commit.
#[derive(Debug)]
struct CleanedUnderfoot(runner::store::blob::LocalBlobStore);

struct CleanedWriter {
    inner: Box<dyn runner::store::blob::BlobWriter>,
    store: runner::store::blob::LocalBlobStore,
}

impl Write for CleanedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl runner::store::blob::BlobWriter for CleanedWriter {
    fn finish(
        self: Box<Self>,
    ) -> Result<runner::store::blob::BlobInfo, runner::store::blob::BlobError> {
        use runner::store::blob::BlobStore;
        let info = self.inner.finish()?;
        self.store.delete(&info.digest)?;
        Ok(info)
    }
}

impl runner::store::blob::BlobStore for CleanedUnderfoot {
    fn writer(
        &self,
    ) -> Result<Box<dyn runner::store::blob::BlobWriter>, runner::store::blob::BlobError> {
        Ok(Box::new(CleanedWriter {
            inner: self.0.writer()?,
            store: self.0.clone(),
        }))
    }
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, runner::store::blob::BlobError> {
        self.0.open(digest)
    }
    fn open_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, runner::store::blob::BlobError> {
        self.0.open_range(digest, start, len)
    }
    fn stat(
        &self,
        digest: &str,
    ) -> Result<Option<runner::store::blob::BlobStat>, runner::store::blob::BlobError> {
        self.0.stat(digest)
    }
    fn delete(&self, digest: &str) -> Result<(), runner::store::blob::BlobError> {
        self.0.delete(digest)
    }
    fn list(&self) -> Result<Vec<runner::store::blob::ListedBlob>, runner::store::blob::BlobError> {
        self.0.list()
    }
    fn remove_stale_temp(&self, older_than: i64) -> Result<usize, runner::store::blob::BlobError> {
        self.0.remove_stale_temp(older_than)
    }
    fn flush(&self) -> Result<(), runner::store::blob::BlobError> {
        self.0.flush()
    }
    fn presigned_get(
        &self,
        digest: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, runner::store::blob::BlobError> {
        self.0.presigned_get(digest, expires_in)
    }
    fn tier_stats(&self) -> Option<runner::store::blob::TierStats> {
        self.0.tier_stats()
    }
    // Never takes a file, so every new blob goes through the writer this double wraps.
    fn adopt_file(
        &self,
        _path: &std::path::Path,
    ) -> Result<Option<runner::store::blob::BlobInfo>, runner::store::blob::BlobError> {
        Ok(None)
    }
}

fn a_blob_removed_under_a_commit_withdraws_the_entry(h: &Harness) {
    let index = runner::store::index::Index::open(&h.url, std::sync::Arc::new(h.clock.clone()))
        .expect("open index");
    let blobs = runner::store::blob::LocalBlobStore::new(h.dir.path()).expect("blobs");
    let store = runner::store::Store::new(index, std::sync::Arc::new(CleanedUnderfoot(blobs)));
    let spec = Spec::new("refs/heads/main", "cleaned");
    let Reservation::Reserved(id) = store.index().reserve(&spec.new_entry()).expect("reserve")
    else {
        panic!("refused");
    };
    let mut writer = store.blobs().writer().expect("writer");
    writer.write_all(b"bytes a cleanup removes").expect("write");
    let result = store.commit_blob(&id, writer);
    assert!(
        matches!(result, Err(StoreError::BlobRemoved { .. })),
        "{}: {result:?}",
        h.backend
    );
    assert!(
        crate::support::committed_keys(store.index()).is_empty(),
        "{}: an entry without bytes was left committed",
        h.backend
    );
    // And the key is free for the next save.
    assert!(matches!(
        store.index().reserve(&spec.new_entry()).expect("reserve"),
        Reservation::Reserved(_)
    ));
}
