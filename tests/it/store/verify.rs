//! `Store::verify` / `gc_orphans`: blobs without rows, rows without blobs, corrupt blobs.

use std::io::Write;

use runner::store::VerifyOptions;

use super::{Harness, Spec};

crate::backend_matrix!(crate::store::Harness:
    removes_orphans_and_dangling_rows,
    rehash_removes_corrupt_blobs_with_their_rows,
    dry_run_and_grace_period_keep_everything,
);

fn orphan(h: &Harness, bytes: &[u8]) -> String {
    let mut w = h.store.blobs().writer().expect("writer");
    w.write_all(bytes).expect("write");
    w.finish().expect("finish").digest
}

fn keys(h: &Harness) -> Vec<String> {
    crate::support::committed_keys(h.index())
}

fn removes_orphans_and_dangling_rows(h: &Harness) {
    let kept = h.save(&Spec::new("refs/heads/main", "kept"), b"kept bytes");
    let dangling = h.save(&Spec::new("refs/heads/main", "dangling"), b"dangling bytes");
    let lost = dangling.blob_digest.clone().expect("digest");
    h.store
        .blobs()
        .delete(&lost)
        .expect("delete blob behind the index's back");
    let stray = orphan(h, b"nobody points here");
    // An open reservation is not a dangling row.
    h.index()
        .reserve(&Spec::new("refs/heads/main", "saving").new_entry())
        .expect("reserve");

    let mut store = h.reopen();
    store.set_blob_grace(0);
    let report = store.gc_orphans(false).expect("gc");
    assert_eq!(
        report
            .orphan_blobs
            .iter()
            .map(|b| b.digest.clone())
            .collect::<Vec<_>>(),
        vec![stray.clone()]
    );
    assert_eq!(
        report
            .rows_without_blob
            .iter()
            .map(|e| e.key.as_str())
            .collect::<Vec<_>>(),
        vec!["dangling"]
    );
    assert!(report.corrupt_blobs.is_empty());
    assert!(!h.store.blobs().contains(&stray).expect("contains"));
    assert!(
        h.store
            .blobs()
            .contains(kept.blob_digest.as_deref().expect("digest"))
            .expect("contains")
    );
    assert_eq!(keys(h), vec!["kept"]);
    // A second pass finds nothing.
    let again = store.gc_orphans(false).expect("gc");
    assert!(
        again.orphan_blobs.is_empty() && again.rows_without_blob.is_empty(),
        "{again:?}"
    );
}

fn rehash_removes_corrupt_blobs_with_their_rows(h: &Harness) {
    let good = h.save(&Spec::new("refs/heads/main", "good"), b"good bytes");
    let bad = h.save(&Spec::new("refs/heads/main", "bad"), b"bad bytes");
    let bad_digest = bad.blob_digest.clone().expect("digest");
    let shard = runner::store::blob::shard_of(&bad_digest).expect("digest");
    let path = h.blob_dir().join(shard).join(&bad_digest);
    std::fs::write(&path, b"bit rot").expect("tamper");

    let mut store = h.reopen();
    store.set_blob_grace(0);
    // Without re-hashing, a present blob looks fine.
    let quick = store
        .verify(&VerifyOptions {
            rehash: false,
            dry_run: true,
        })
        .expect("verify");
    assert!(quick.corrupt_blobs.is_empty());
    let report = store
        .verify(&VerifyOptions {
            rehash: true,
            dry_run: false,
        })
        .expect("verify");
    assert_eq!(report.blobs_checked, 2);
    assert_eq!(report.corrupt_blobs, vec![bad_digest.clone()]);
    assert_eq!(
        report
            .rows_without_blob
            .iter()
            .map(|e| e.id.clone())
            .collect::<Vec<_>>(),
        vec![bad.id]
    );
    assert!(!path.exists());
    assert_eq!(keys(h), vec!["good"]);
    assert!(
        h.store
            .blobs()
            .contains(good.blob_digest.as_deref().expect("digest"))
            .expect("contains")
    );
}

fn dry_run_and_grace_period_keep_everything(h: &Harness) {
    let dangling = h.save(&Spec::new("refs/heads/main", "dangling"), b"dangling bytes");
    h.store
        .blobs()
        .delete(dangling.blob_digest.as_deref().expect("digest"))
        .expect("delete");
    let stray = orphan(h, b"fresh orphan");
    let mut store = h.reopen();
    store.set_blob_grace(0);
    let dry = store
        .verify(&VerifyOptions {
            rehash: true,
            dry_run: true,
        })
        .expect("verify");
    assert_eq!(
        (dry.orphan_blobs.len(), dry.rows_without_blob.len()),
        (1, 1)
    );
    assert!(h.store.blobs().contains(&stray).expect("contains"));
    assert_eq!(keys(h), vec!["dangling"]);
    // With the default grace period a just-written blob may belong to a save about to commit.
    let graceful = h.store.gc_orphans(false).expect("gc");
    assert!(graceful.orphan_blobs.is_empty(), "{graceful:?}");
    assert!(h.store.blobs().contains(&stray).expect("contains"));
}
