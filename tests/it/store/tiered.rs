//! The tiered blob store beyond the conformance suite: read-through copies, per-tier counters,
//! the local tier's size and age bounds, and background uploads joined by `flush`.

use std::io::{Read, Write};
use std::sync::Arc;

use runner::clock::ManualClock;
use runner::store::blob::{
    BlobError, BlobStore, LocalBlobStore, MemoryBlobStore, RemoteWrites, TierLimits, TierStats,
    Tiered, Verified,
};

use crate::support::{
    FaultyBlobStore, blob_digests, blob_noise as noise, read_blob as read_all, write_blob as put,
};

fn temp_files(local: &LocalBlobStore) -> usize {
    std::fs::read_dir(local.root().join("tmp"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A read the local tier misses streams from the remote and leaves a local copy, so the next read
/// is a local hit; a copy is kept only when the whole blob was read. Each tier counts.
#[test]
fn reads_fill_the_local_tier_and_count_per_tier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalBlobStore::new(dir.path()).expect("local");
    let remote = MemoryBlobStore::new();
    let tiered = Tiered::new(local.clone(), remote.clone());
    let bytes = noise(300_000, 7);
    let info = put(&remote, &bytes);
    // A reader dropped half-way leaves no local copy.
    let mut half = vec![0u8; 1000];
    tiered
        .open(&info.digest)
        .expect("open")
        .read_exact(&mut half)
        .expect("read");
    assert!(local.stat(&info.digest).expect("stat").is_none());
    assert_eq!(temp_files(&local), 0, "the partial copy is removed");
    assert_eq!(read_all(&tiered, &info.digest).expect("read"), bytes);
    assert!(local.stat(&info.digest).expect("stat").is_some(), "copied");
    assert_eq!(read_all(&tiered, &info.digest).expect("read"), bytes);
    assert!(matches!(
        tiered.open(&"0".repeat(64)),
        Err(BlobError::NotFound { .. })
    ));
    assert_eq!(
        tiered.stats(),
        TierStats {
            local_hits: 1,
            local_misses: 3,
            remote_hits: 2,
            remote_misses: 1,
            ..TierStats::default()
        }
    );
    // Writes reach both tiers.
    let written = put(&tiered, b"written through");
    assert!(remote.stat(&written.digest).expect("stat").is_some());
    assert!(local.stat(&written.digest).expect("stat").is_some());
}

/// A remote read that fails or ends early leaves no file in the local tier, and the verified
/// reader reports it.
#[test]
fn a_failed_or_short_remote_read_leaves_no_local_copy() {
    let bytes = noise(200_000, 8);
    for short in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = LocalBlobStore::new(dir.path()).expect("local");
        let remote = FaultyBlobStore::default();
        let info = put(&remote.inner, &bytes);
        remote.set(|f| {
            if short {
                f.short_reads_after = Some(50_000);
            } else {
                f.cut_reads_after = Some(50_000);
            }
        });
        let tiered = Verified::new(Tiered::new(local.clone(), remote.clone()));
        let err = read_all(&tiered, &info.digest).expect_err("a broken read");
        if short {
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
        }
        assert!(blob_digests(&local).is_empty(), "short={short}");
        assert_eq!(temp_files(&local), 0, "short={short}");
        // Once the remote heals, the next read fills the tier.
        remote.set(|f| *f = Default::default());
        assert_eq!(read_all(&tiered, &info.digest).expect("read"), bytes);
        assert_eq!(blob_digests(&local), vec![info.digest.clone()]);
    }
}

/// Above its size bound the local tier drops the least recently used blob; a read counts as a
/// use, not only the write.
#[test]
fn the_local_tier_keeps_the_most_recently_used_within_its_size() {
    let clock = ManualClock::new(super::T0);
    let local = MemoryBlobStore::with_clock(Arc::new(clock.clone()));
    let remote = MemoryBlobStore::new();
    let tiered = Tiered::new(local.clone(), remote.clone())
        .with_clock(Arc::new(clock.clone()))
        .with_limits(TierLimits {
            max_bytes: 250_000,
            ttl_ms: 30 * super::DAY,
        });
    let [a, b, c] = [1, 2, 3].map(|seed| put(&remote, &noise(100_000, seed)).digest);
    for digest in [&a, &b, &a, &c] {
        read_all(&tiered, digest).expect("read");
        clock.advance(super::MINUTE);
    }
    let mut want = vec![a.clone(), c.clone()];
    want.sort();
    assert_eq!(blob_digests(&local), want, "b was used least recently");
    assert_eq!(tiered.stats().local_evictions, 1);
    // The remote keeps everything.
    assert_eq!(remote.list().expect("list").len(), 3);
}

/// Blobs unused for longer than the TTL leave the local tier, judged by file times, so a later
/// process trims what an earlier one used; a read refreshes a blob's time.
#[test]
fn blobs_unused_past_the_ttl_leave_the_local_tier() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalBlobStore::new(dir.path()).expect("local");
    let remote = MemoryBlobStore::new();
    let limits = TierLimits {
        max_bytes: u64::MAX,
        ttl_ms: 7 * super::DAY,
    };
    let first = Tiered::new(local.clone(), remote.clone()).with_limits(limits);
    let used = put(&first, b"read again later").digest;
    let unused = put(&first, b"never read again").digest;
    drop(first);
    let eight_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(8 * 86_400);
    for digest in [&used, &unused] {
        std::fs::File::options()
            .write(true)
            .open(local.path_of(digest).expect("path"))
            .and_then(|f| f.set_modified(eight_days_ago))
            .expect("age the file");
    }
    // Another process.
    let second = Tiered::new(local.clone(), remote.clone()).with_limits(limits);
    read_all(&second, &used).expect("local hit");
    assert_eq!(second.stats().local_hits, 1);
    assert_eq!(second.trim().expect("trim"), 1);
    assert_eq!(blob_digests(&local), vec![used]);
    // The remote still has it: the next read is a remote hit that fills the tier again.
    assert_eq!(
        read_all(&second, &unused).expect("read"),
        b"never read again"
    );
    assert_eq!(second.stats().remote_hits, 1);
    assert!(local.stat(&unused).expect("stat").is_some());
}

/// With background uploads a write finishes once the local copy is durable; the blob is
/// readable (and stat-able, so a save can commit) at once, and `flush` joins the upload.
#[test]
fn background_uploads_return_early_and_flush_joins_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalBlobStore::new(dir.path()).expect("local");
    let remote = FaultyBlobStore::default();
    remote.set(|f| f.hold_writes = true);
    let tiered =
        Tiered::new(local.clone(), remote.clone()).with_remote_writes(RemoteWrites::Background);
    let bytes = noise(300_000, 9);
    let info = put(&tiered, &bytes);
    assert!(
        remote.inner.stat(&info.digest).expect("stat").is_none(),
        "finish waited for the remote"
    );
    assert!(tiered.stat(&info.digest).expect("stat").is_some());
    assert_eq!(
        tiered
            .list()
            .expect("list")
            .into_iter()
            .map(|b| b.digest)
            .collect::<Vec<_>>(),
        vec![info.digest.clone()]
    );
    assert_eq!(read_all(&tiered, &info.digest).expect("read"), bytes);
    assert_eq!(tiered.stats().uploads_pending, 1);
    remote.release();
    tiered.flush().expect("flush");
    assert!(remote.inner.stat(&info.digest).expect("stat").is_some());
    let stats = tiered.stats();
    assert_eq!((stats.uploads_pending, stats.uploads_done), (0, 1));
}

/// A background upload that fails is named by `flush`; the store withdraws the entry that was
/// committed to it and the local copy goes, so nothing points at bytes the remote lacks.
#[test]
fn a_failed_background_upload_withdraws_its_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalBlobStore::new(dir.path().join("tier")).expect("local");
    let remote = FaultyBlobStore::default();
    remote.set(|f| f.fail_writes = true);
    let tiered =
        Tiered::new(local.clone(), remote.clone()).with_remote_writes(RemoteWrites::Background);
    let clock = Arc::new(ManualClock::new(super::T0));
    let url = runner::store::sqlite_url(&dir.path().join("index.sqlite"));
    let index = runner::store::index::Index::open(&url, clock).expect("index");
    let store = runner::store::Store::new(index, Arc::new(Verified::new(tiered.clone())));
    let spec = super::Spec::new("refs/heads/main", "background");
    let entry = super::save_into(&store, &spec, b"bytes the remote never gets");
    let id = entry.id.clone();
    let digest = entry.blob_digest.expect("digest");
    let err = store.flush().expect_err("the upload failed");
    let text = runner::error::chain(&err);
    assert!(
        text.contains(&digest) && text.contains("refused the upload"),
        "{text}"
    );
    assert!(store.index().get(&id).expect("get").is_none(), "withdrawn");
    assert!(local.stat(&digest).expect("stat").is_none());
    assert!(remote.inner.list().expect("list").is_empty());
    assert_eq!(tiered.stats().uploads_failed, 1);
    // What metrics read, through the store's `dyn BlobStore`.
    assert_eq!(
        store.blobs().tier_stats().map(|s| s.uploads_failed),
        Some(1)
    );
    // Flushed: nothing more to report.
    store.flush().expect("second flush");
}

/// Write-through: a remote that refuses the write fails the save and leaves no local copy.
#[test]
fn a_refused_write_through_leaves_no_local_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local = LocalBlobStore::new(dir.path()).expect("local");
    let remote = FaultyBlobStore::default();
    remote.set(|f| f.fail_writes = true);
    let tiered = Tiered::new(local.clone(), remote.clone());
    let mut w = tiered.writer().expect("writer");
    w.write_all(b"refused").expect("write");
    assert!(w.finish().is_err());
    assert!(blob_digests(&local).is_empty());
    assert_eq!(temp_files(&local), 0);
}

/// `actions/cache/save` over a tier with background uploads: the step returns before the remote
/// has the archive and registers a post step, which joins the upload; a failed upload is a
/// warning there and the entry is withdrawn. Over a store without background uploads the step
/// registers no post step, as on GitHub.
#[test]
fn a_save_step_leaves_its_upload_to_a_post_step() {
    use crate::cache::{Harness, MAIN};
    use runner::exec::LogLevel::Warning;
    let inputs = [("path", "deps"), ("key", "bg")];
    for fail in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = LocalBlobStore::new(dir.path()).expect("local");
        let remote = FaultyBlobStore::default();
        remote.set(|f| {
            f.hold_writes = true;
            f.fail_writes = fail;
        });
        let tiered =
            Tiered::new(local, remote.clone()).with_remote_writes(RemoteWrites::Background);
        let h = Harness::sqlite_over(Default::default(), Arc::new(Verified::new(tiered)));
        crate::support::write_tree(&h.workspace(), &[("deps/a", "installed")]);
        let job = h.job(MAIN);
        let step = h.main("actions/cache/save@v4", &job, &inputs);
        step.ok();
        assert_eq!(step.post_condition.as_deref(), Some("always()"));
        assert!(
            remote.inner.list().expect("list").is_empty(),
            "the step waited for the upload"
        );
        assert_eq!(h.keys(), vec!["bg".to_string()]);
        remote.release();
        let post = h.post("actions/cache/save@v4", &job, &inputs, &step);
        post.ok();
        let warnings = post.lines(Warning);
        if fail {
            assert!(
                warnings
                    .iter()
                    .any(|w| w.starts_with("Failed to save: 1 background upload")),
                "{warnings:?}"
            );
            assert!(h.keys().is_empty(), "the entry was withdrawn");
        } else {
            assert!(warnings.is_empty(), "{warnings:?}");
            assert_eq!(remote.inner.list().expect("list").len(), 1);
            assert_eq!(h.keys(), vec!["bg".to_string()]);
        }
    }
    let h = Harness::sqlite();
    crate::support::write_tree(&h.workspace(), &[("deps/a", "installed")]);
    let step = h.main("actions/cache/save@v4", &h.job(MAIN), &inputs);
    step.ok();
    assert_eq!(step.post_condition, None);
}
