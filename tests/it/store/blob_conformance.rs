//! One conformance suite run against every blob store and wrapper: local, memory, S3 (when
//! `RUNNER_TEST_S3_URL` names a bucket on a real S3-compatible server), and each of them inside
//! `Verified`. Each case is a function of a [`Subject`]; `conformance!` makes one test per pair.

use std::io::{Read, Write};
use std::sync::{Arc, Barrier};

// `digest`: the name a store gives some bytes (BLAKE3).
use runner::store::blob::{
    BlobError, BlobInfo, BlobStore, LocalBlobStore, MemoryBlobStore, RemoteWrites, Tiered,
    Verified, digest_of as digest,
};

/// Overwrites the bytes stored under a digest, bypassing the store.
type Tamper = Box<dyn Fn(&str, &[u8])>;

/// A store under test, and how to alter a stored blob's bytes behind its back.
pub struct Subject {
    pub name: &'static str,
    pub store: Arc<dyn BlobStore>,
    /// Whether reads check the digest (the store is inside `Verified`).
    pub verified: bool,
    tamper: Tamper,
    _dir: Option<tempfile::TempDir>,
}

use crate::support::{
    blob_digests as digests, blob_noise as noise, read_blob as read_all, write_blob,
};

/// [`write_blob`], then background uploads joined, so stat and list answer from the remote's
/// final state.
fn put(store: &dyn BlobStore, bytes: &[u8]) -> BlobInfo {
    let info = write_blob(store, bytes);
    store.flush().expect("flush");
    info
}

pub fn local(verified: bool) -> Option<Subject> {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalBlobStore::new(dir.path()).expect("local store");
    let paths = local.clone();
    let tamper = Box::new(move |digest: &str, bytes: &[u8]| {
        std::fs::write(paths.path_of(digest).expect("path"), bytes).expect("tamper");
    });
    let store: Arc<dyn BlobStore> = if verified {
        Arc::new(Verified::new(local))
    } else {
        Arc::new(local)
    };
    Some(Subject {
        name: if verified { "verified(local)" } else { "local" },
        store,
        verified,
        tamper,
        _dir: Some(dir),
    })
}

pub fn memory(verified: bool) -> Option<Subject> {
    let memory = MemoryBlobStore::new();
    let handle = memory.clone();
    let tamper = Box::new(move |digest: &str, bytes: &[u8]| {
        handle.tamper(digest, bytes).expect("tamper");
    });
    let store: Arc<dyn BlobStore> = if verified {
        Arc::new(Verified::new(memory))
    } else {
        Arc::new(memory)
    };
    Some(Subject {
        name: if verified {
            "verified(memory)"
        } else {
            "memory"
        },
        store,
        verified,
        tamper,
        _dir: None,
    })
}

/// `RUNNER_TEST_S3_URL` and a fresh prefix in its bucket, or `None` with the reason printed.
pub fn s3_test_url() -> Option<(String, String)> {
    let Some(base) = std::env::var("RUNNER_TEST_S3_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: RUNNER_TEST_S3_URL is not set (see .ci/run)");
        return None;
    };
    let prefix = format!("t-{}", uuid::Uuid::new_v4().simple());
    let url = format!("{}/{prefix}", base.trim_end_matches('/'));
    Some((base, url))
}

/// An S3 store under a fresh prefix of the bucket `RUNNER_TEST_S3_URL` names, on the server
/// `AWS_ENDPOINT_URL` points at; `None` (with the reason printed) when unset.
#[cfg(feature = "s3")]
pub fn s3(verified: bool) -> Option<Subject> {
    use runner::store::blob::S3BlobStore;
    let (base, url) = s3_test_url()?;
    let s3 = S3BlobStore::from_url(&url).expect("s3 store");
    let bucket = base
        .trim_start_matches("s3://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let keys = s3.clone();
    // Overwrite the object with a client of its own, behind the store's back.
    let tamper = Box::new(move |digest: &str, bytes: &[u8]| {
        use object_store::ObjectStore;
        let client = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(&bucket)
            .with_allow_http(true)
            .build()
            .expect("s3 client");
        let key = object_store::path::Path::from(keys.key_of(digest).expect("key"));
        let payload = object_store::PutPayload::from(bytes.to_vec());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(client.put(&key, payload))
            .expect("tamper");
    });
    let store: Arc<dyn BlobStore> = if verified {
        Arc::new(Verified::new(s3))
    } else {
        Arc::new(s3)
    };
    Some(Subject {
        name: if verified { "verified(s3)" } else { "s3" },
        store,
        verified,
        tamper,
        _dir: None,
    })
}

#[cfg(not(feature = "s3"))]
pub fn s3(_verified: bool) -> Option<Subject> {
    eprintln!("skipped: built without the `s3` feature");
    None
}

/// A local tier in front of `remote` (memory when `None`), optionally verified, writing to the
/// remote through or in the background; tampering alters both tiers (after the uploads).
fn tiered_over(
    remote: Option<Subject>,
    verified: bool,
    writes: RemoteWrites,
    name: &'static str,
) -> Option<Subject> {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalBlobStore::new(dir.path()).expect("local store");
    let local_paths = local.clone();
    let remote = match remote {
        Some(remote) => remote,
        None => memory(false)?,
    };
    let tiered = Tiered::new(local, remote.store.clone()).with_remote_writes(writes);
    let uploads = tiered.clone();
    let store: Arc<dyn BlobStore> = if verified {
        Arc::new(Verified::new(tiered))
    } else {
        Arc::new(tiered)
    };
    let remote_tamper = remote.tamper;
    Some(Subject {
        name,
        store,
        verified,
        tamper: Box::new(move |digest, bytes| {
            uploads.flush().expect("uploads");
            std::fs::write(local_paths.path_of(digest).expect("path"), bytes).expect("tamper");
            remote_tamper(digest, bytes);
        }),
        _dir: Some(dir),
    })
}

pub fn tiered(verified: bool) -> Option<Subject> {
    let name = if verified {
        "verified(tiered(local, memory))"
    } else {
        "tiered(local, memory)"
    };
    tiered_over(None, verified, RemoteWrites::Through, name)
}

pub fn tiered_background() -> Option<Subject> {
    let name = "verified(tiered(local, memory), background uploads)";
    tiered_over(None, true, RemoteWrites::Background, name)
}

pub fn tiered_s3() -> Option<Subject> {
    let name = "verified(tiered(local, s3))";
    tiered_over(Some(s3(false)?), true, RemoteWrites::Through, name)
}

pub fn tiered_s3_background() -> Option<Subject> {
    let name = "verified(tiered(local, s3), background uploads)";
    tiered_over(Some(s3(false)?), true, RemoteWrites::Background, name)
}

/// `conformance!(case, ...)` makes `case::local`, `case::verified_local`, `case::memory`, ….
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[test]
                fn local() { if let Some(s) = super::local(false) { super::$case(&s) } }
                #[test]
                fn verified_local() { if let Some(s) = super::local(true) { super::$case(&s) } }
                #[test]
                fn memory() { if let Some(s) = super::memory(false) { super::$case(&s) } }
                #[test]
                fn verified_memory() { if let Some(s) = super::memory(true) { super::$case(&s) } }
                #[test]
                fn s3() { if let Some(s) = super::s3(false) { super::$case(&s) } }
                #[test]
                fn verified_s3() { if let Some(s) = super::s3(true) { super::$case(&s) } }
                #[test]
                fn tiered() { if let Some(s) = super::tiered(false) { super::$case(&s) } }
                #[test]
                fn verified_tiered() { if let Some(s) = super::tiered(true) { super::$case(&s) } }
                #[test]
                fn verified_tiered_background() { if let Some(s) = super::tiered_background() { super::$case(&s) } }
                #[test]
                fn verified_tiered_s3() { if let Some(s) = super::tiered_s3() { super::$case(&s) } }
                #[test]
                fn verified_tiered_s3_background() { if let Some(s) = super::tiered_s3_background() { super::$case(&s) } }
            }
        )*
    };
}

conformance!(
    put_get_round_trip,
    stat_and_list_report_size_and_age,
    identical_bytes_are_stored_once,
    delete_removes_and_tolerates_missing,
    a_missing_blob_is_not_found,
    bad_digests_are_refused,
    interrupted_writes_leave_nothing_visible,
    concurrent_writers_of_one_digest,
    corrupt_blob_is_detected_when_verified,
    ranges_read_from_their_offset,
);

/// Bigger than one S3 part (8 MiB), so the multipart path is exercised too.
const BIG: usize = 8 * 1024 * 1024 * 2 + 12_345;

fn put_get_round_trip(s: &Subject) {
    let big = noise(BIG, 1);
    let cases: &[&[u8]] = &[
        b"",
        b"hello",
        &noise(300_000, 2),
        "ünïcödé".as_bytes(),
        &big,
    ];
    for bytes in cases {
        let info = put(s.store.as_ref(), bytes);
        assert_eq!(
            (info.digest.clone(), info.size),
            (digest(bytes), bytes.len() as u64),
            "{}",
            s.name
        );
        let back = read_all(s.store.as_ref(), &info.digest).expect("read");
        assert!(back == *bytes, "{}: {} bytes differ", s.name, bytes.len());
    }
}

fn ranges_read_from_their_offset(s: &Subject) {
    let big = noise(BIG, 9);
    let info = put(s.store.as_ref(), &big);
    let size = big.len() as u64;
    // The Azure SDK's 4 MiB blocks, a range across an S3 part boundary, the last byte, a
    // range cut short by the end, and an empty one.
    let cases = [
        (0, 4 << 20),
        (4 << 20, 4 << 20),
        ((8 << 20) - 10, 20),
        (size - 1, 1),
        (size - 100, 1000),
        (17, 0),
    ];
    for (start, len) in cases {
        let mut reader = s
            .store
            .open_range(&info.digest, start, len)
            .unwrap_or_else(|e| panic!("{}: open_range({start}, {len}): {e}", s.name));
        let mut got = Vec::new();
        reader.read_to_end(&mut got).expect("read range");
        let end = usize::try_from((start + len).min(size)).expect("fits");
        let want = &big[usize::try_from(start).expect("fits")..end];
        assert!(
            got == want,
            "{}: range {start}+{len} gave {} bytes, want {}",
            s.name,
            got.len(),
            want.len()
        );
    }
    let missing = "0".repeat(64);
    assert!(
        matches!(
            s.store.open_range(&missing, 0, 1),
            Err(BlobError::NotFound { .. })
        ),
        "{}: a missing blob's range is not found",
        s.name
    );
}

fn stat_and_list_report_size_and_age(s: &Subject) {
    let bytes = noise(1000, 3);
    let info = put(s.store.as_ref(), &bytes);
    let stat = s
        .store
        .stat(&info.digest)
        .expect("stat")
        .expect("stat finds the blob");
    assert_eq!(stat.size, 1000, "{}", s.name);
    let listed = s.store.list().expect("list");
    assert_eq!(listed.len(), 1, "{}", s.name);
    assert_eq!(
        (
            listed[0].digest.as_str(),
            listed[0].size,
            listed[0].modified_at
        ),
        (info.digest.as_str(), 1000, stat.modified_at),
        "{}: list and stat agree",
        s.name
    );
    // Every store here can tell an age; a wrapper must not lose it.
    let age = stat.modified_at.expect("an age");
    let now = runner::clock::Clock::now_millis(&runner::clock::SystemClock);
    assert!(
        (now - age).abs() < 24 * 3600 * 1000,
        "{}: age {age} is not today ({now})",
        s.name
    );
    assert!(s.store.contains(&info.digest).expect("contains"));
    assert_eq!(
        s.store.modified_at(&info.digest).expect("age"),
        stat.modified_at
    );
}

fn identical_bytes_are_stored_once(s: &Subject) {
    let a = put(s.store.as_ref(), b"same bytes");
    let b = put(s.store.as_ref(), b"same bytes");
    put(s.store.as_ref(), b"other bytes");
    assert_eq!(a, b);
    let mut want = vec![digest(b"same bytes"), digest(b"other bytes")];
    want.sort();
    assert_eq!(digests(s.store.as_ref()), want, "{}", s.name);
}

fn delete_removes_and_tolerates_missing(s: &Subject) {
    let keep = put(s.store.as_ref(), b"keep");
    let gone = put(s.store.as_ref(), b"gone");
    s.store.delete(&gone.digest).expect("delete");
    assert!(s.store.stat(&gone.digest).expect("stat").is_none());
    assert!(matches!(
        s.store.open(&gone.digest),
        Err(BlobError::NotFound { .. })
    ));
    s.store
        .delete(&gone.digest)
        .expect("deleting again is fine");
    assert_eq!(digests(s.store.as_ref()), vec![keep.digest], "{}", s.name);
}

fn a_missing_blob_is_not_found(s: &Subject) {
    let missing = "0".repeat(64);
    assert!(
        matches!(s.store.open(&missing), Err(BlobError::NotFound { digest }) if digest == missing),
        "{}",
        s.name
    );
    assert!(s.store.stat(&missing).expect("stat").is_none());
    s.store.delete(&missing).expect("delete missing");
    assert!(s.store.list().expect("list").is_empty());
}

fn bad_digests_are_refused(s: &Subject) {
    let bad = [
        "",
        "../../etc/passwd",
        &"A".repeat(64),
        &"a".repeat(63),
        &format!("{}/", "a".repeat(63)),
    ];
    for digest in bad {
        let refused = |r: Result<(), BlobError>| matches!(r, Err(BlobError::InvalidDigest { .. }));
        assert!(
            refused(s.store.open(digest).map(drop)),
            "{}: open {digest:?}",
            s.name
        );
        assert!(
            refused(s.store.stat(digest).map(drop)),
            "{}: stat {digest:?}",
            s.name
        );
        assert!(
            refused(s.store.delete(digest)),
            "{}: delete {digest:?}",
            s.name
        );
    }
}

fn interrupted_writes_leave_nothing_visible(s: &Subject) {
    // Small (buffered) and big (an upload under way) writes, both dropped unfinished.
    for len in [100, BIG] {
        let bytes = noise(len, 4);
        {
            let mut w = s.store.writer().expect("writer");
            w.write_all(&bytes).expect("write");
            assert!(
                s.store.list().expect("list").is_empty(),
                "{}: mid-write",
                s.name
            );
        }
        assert!(
            s.store.list().expect("list").is_empty(),
            "{}: {len}",
            s.name
        );
        assert!(s.store.stat(&digest(&bytes)).expect("stat").is_none());
    }
    // A completed write afterwards is unaffected by the abandoned ones.
    let info = put(s.store.as_ref(), b"after");
    assert_eq!(digests(s.store.as_ref()), vec![info.digest], "{}", s.name);
}

fn concurrent_writers_of_one_digest(s: &Subject) {
    const WRITERS: usize = 4;
    let bytes = Arc::new(noise(600_000, 5));
    let barrier = Arc::new(Barrier::new(WRITERS));
    let infos: Vec<BlobInfo> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (bytes, barrier, store) = (bytes.clone(), barrier.clone(), s.store.clone());
                scope.spawn(move || {
                    let mut w = store.writer().expect("writer");
                    let (head, tail) = bytes.split_at(bytes.len() / 2);
                    w.write_all(head).expect("write");
                    // Every writer is half-way before any finishes.
                    barrier.wait();
                    w.write_all(tail).expect("write");
                    w.finish().expect("finish")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect()
    });
    assert!(
        infos.iter().all(|i| i.digest == digest(&bytes)),
        "{}",
        s.name
    );
    assert_eq!(
        digests(s.store.as_ref()),
        vec![digest(&bytes)],
        "{}",
        s.name
    );
    let back = read_all(s.store.as_ref(), &digest(&bytes)).expect("read");
    assert!(back == *bytes, "{}: bytes differ", s.name);
}

fn corrupt_blob_is_detected_when_verified(s: &Subject) {
    let original = b"the archive bytes".to_vec();
    let cases: &[(&str, &[u8])] = &[
        ("flipped byte", b"the archive bytez"),
        ("truncated", b"the archive"),
        ("extended", b"the archive bytes!"),
        ("emptied", b""),
    ];
    for (what, altered) in cases {
        let info = put(s.store.as_ref(), &original);
        (s.tamper)(&info.digest, altered);
        let result = read_all(s.store.as_ref(), &info.digest);
        if !s.verified {
            // The raw store hands back what it holds; checking is `Verified`'s job.
            assert_eq!(result.expect("raw read"), *altered, "{}: {what}", s.name);
            continue;
        }
        let err = result.expect_err(what);
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::InvalidData,
            "{}: {what}",
            s.name
        );
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<BlobError>());
        assert!(
            matches!(inner, Some(BlobError::DigestMismatch { digest, actual }) if *digest == info.digest && *actual == self::digest(altered)),
            "{}: {what}: {err}",
            s.name
        );
    }
}

/// A store that cannot tell a blob's age (some object stores, a wrapper that loses it) must not
/// make eviction delete an unreferenced blob that may have been written a moment ago for a row
/// about to be committed; once the grace period is off, it goes.
#[test]
fn an_unknown_age_is_kept() {
    use runner::store::index::{EvictionPolicy, Index, Reservation};
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = runner::clock::ManualClock::new(super::T0);
    let url = runner::store::sqlite_url(&dir.path().join("index.sqlite"));
    let index = Index::open(&url, Arc::new(clock.clone())).expect("index");
    let memory = MemoryBlobStore::new();
    let ageless: Arc<dyn BlobStore> = Arc::new(Verified::new(memory.without_ages()));
    let mut store = runner::store::Store::new(index, ageless);
    let spec = super::Spec::new("refs/heads/main", "k");
    let Reservation::Reserved(id) = store.index().reserve(&spec.new_entry()).expect("reserve")
    else {
        panic!("refused");
    };
    let mut w = store.blobs().writer().expect("writer");
    w.write_all(b"bytes of unknown age").expect("write");
    let entry = store.commit_blob(&id, w).expect("commit");
    let digest = entry.blob_digest.expect("digest");
    clock.advance(30 * super::DAY);
    let policy = EvictionPolicy {
        ttl_days: 7,
        ..EvictionPolicy::default()
    };
    assert_eq!(store.evict(&policy).expect("evict").len(), 1);
    assert!(
        memory.stat(&digest).expect("stat").is_some(),
        "evicting the entry deleted a blob whose age is unknown"
    );
    // Orphan removal spares it too while blobs are protected by the grace period.
    assert!(store.gc_orphans(false).expect("gc").orphan_blobs.is_empty());
    assert!(memory.stat(&digest).expect("stat").is_some());
    store.set_blob_grace(0);
    assert_eq!(store.gc_orphans(false).expect("gc").orphan_blobs.len(), 1);
    assert!(memory.stat(&digest).expect("stat").is_none());
}

/// A store opened with a blob URL saves and restores through it: the bytes land where the URL
/// says (not in the cache directory) and are verified on read.
fn saves_and_restores_through(url: &str, expect_local_blobs: bool) {
    use runner::store::index::Reservation;
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(runner::clock::ManualClock::new(super::T0));
    let store = runner::store::Store::open_with_blobs(dir.path(), None, Some(url), clock)
        .unwrap_or_else(|e| panic!("open {url}: {e}"));
    let spec = super::Spec::new("refs/heads/main", "by-url");
    let Reservation::Reserved(id) = store.index().reserve(&spec.new_entry()).expect("reserve")
    else {
        panic!("refused");
    };
    let bytes = noise(BIG, 6);
    let mut w = store.blobs().writer().expect("writer");
    w.write_all(&bytes).expect("write");
    let entry = store.commit_blob(&id, w).expect("commit");
    let mut back = Vec::new();
    store
        .open_entry(&entry)
        .expect("open entry")
        .read_to_end(&mut back)
        .expect("read entry");
    assert!(back == bytes, "{url}: bytes differ");
    assert_eq!(
        dir.path().join("blobs-v1").exists(),
        expect_local_blobs,
        "{url}: blobs in the cache directory"
    );
}

#[test]
fn a_file_url_names_the_blob_directory() {
    let blobs = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", blobs.path().display());
    saves_and_restores_through(&url, false);
    assert_eq!(
        std::fs::read_dir(blobs.path().join("blobs-v1"))
            .expect("blobs-v1 where the URL points")
            .count(),
        2,
        "one shard and tmp/"
    );
}

#[test]
fn an_s3_url_puts_blobs_in_the_bucket() {
    let Some((_, url)) = s3_test_url() else {
        return;
    };
    saves_and_restores_through(&url, false);
}

#[test]
fn unusable_blob_urls_are_refused() {
    let cases = [
        ("gs://bucket", "unsupported scheme"),
        ("file://", "no directory"),
        ("s3:///prefix", "no bucket"),
    ];
    for (url, why) in cases {
        let err = runner::store::blob::open_url(url).expect_err(url);
        assert!(
            matches!(&err, BlobError::BadUrl { url: u, reason } if u == url && reason.contains(why)),
            "{url}: {err}"
        );
    }
}
