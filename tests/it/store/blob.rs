//! What only the local blob store does: its on-disk layout, temporary files and permissions.
//! Behaviour every store shares is in `blob_conformance`.

use std::io::{Read, Write};

// `digest`: the name a store gives some bytes (BLAKE3).
use runner::store::blob::{BlobStore, LocalBlobStore, digest_of as digest};

use crate::support::blob_digests;

fn put(store: &LocalBlobStore, bytes: &[u8]) -> runner::store::blob::BlobInfo {
    let mut w = store.writer().expect("writer");
    // Several writes, as an archiver streams.
    for chunk in bytes.chunks(7) {
        w.write_all(chunk).expect("write");
    }
    w.finish().expect("finish")
}

fn read_all(store: &LocalBlobStore, digest: &str) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    store.open(digest).expect("open").read_to_end(&mut out)?;
    Ok(out)
}

fn tmp_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("blobs-v1/tmp"))
        .expect("tmp dir")
        .count()
}

#[test]
fn blobs_live_in_two_hex_digit_shards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalBlobStore::new(dir.path()).expect("store");
    let cases: &[&[u8]] = &[b"", b"hello", &[0u8; 300_000]];
    for bytes in cases {
        let info = put(&store, bytes);
        let path = dir
            .path()
            .join("blobs-v1")
            .join(&info.digest["blake3-".len()..][..2])
            .join(&info.digest);
        assert_eq!(
            std::fs::read(&path).expect("blob file"),
            *bytes,
            "layout blobs-v1/ab/blake3-abcd.."
        );
        assert_eq!(read_all(&store, &info.digest).expect("read"), *bytes);
    }
    assert_eq!(tmp_files(dir.path()), 0);
}

/// A blob written before BLAKE3 (named by its bare sha256) is still listed, read and checked.
#[test]
fn sha256_blobs_from_before_blake3_are_still_read_and_checked() {
    use sha2::{Digest as _, Sha256};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalBlobStore::new(dir.path()).expect("store");
    let data = b"an archive saved by an older runner".to_vec();
    let sha = hex::encode(Sha256::digest(&data));
    let shard = dir.path().join("blobs-v1").join(&sha[..2]);
    std::fs::create_dir_all(&shard).expect("shard");
    std::fs::write(shard.join(&sha), &data).expect("old blob");
    assert_eq!(blob_digests(&store), vec![sha.clone()]);
    let verified = runner::store::blob::Verified::new(store.clone());
    let read = |digest: &str| {
        let mut out = Vec::new();
        verified
            .open(digest)
            .expect("open")
            .read_to_end(&mut out)
            .map(|_| out)
    };
    assert_eq!(read(&sha).expect("read"), data);
    // Its bytes changed on disk: the sha256 check catches it.
    std::fs::write(shard.join(&sha), b"an archive saved by an older runneR").expect("flip");
    assert!(read(&sha).is_err(), "altered sha256 blob is refused");
}

#[test]
fn an_unfinished_writer_leaves_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalBlobStore::new(dir.path()).expect("store");
    {
        let mut w = store.writer().expect("writer");
        w.write_all(b"half an archive").expect("write");
        assert_eq!(tmp_files(dir.path()), 1);
    }
    assert_eq!(tmp_files(dir.path()), 0);
    assert!(store.list().expect("list").is_empty());
    assert!(
        store
            .stat(&digest(b"half an archive"))
            .expect("stat")
            .is_none()
    );
}

#[test]
fn list_ignores_what_is_not_a_blob() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalBlobStore::new(dir.path()).expect("store");
    let info = put(&store, b"real");
    let root = dir.path().join("blobs-v1");
    crate::support::write_tree(
        &root,
        &[
            ("README", "x"),
            ("zz/zz00", "x"),
            (
                &format!("{}/{}", &info.digest["blake3-".len()..][..2], "short"),
                "x",
            ),
            (&format!("ff/{}", "0".repeat(64)), "wrong shard"),
        ],
    );
    let mut w = store.writer().expect("writer");
    w.write_all(b"in progress").expect("write");
    assert_eq!(blob_digests(&store), vec![info.digest]);
    drop(w);
}

#[test]
fn stale_temp_files_are_removed_fresh_ones_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalBlobStore::new(dir.path()).expect("store");
    let tmp = dir.path().join("blobs-v1/tmp");
    for name in ["old.partial", "new.partial"] {
        std::fs::write(tmp.join(name), b"x").expect("write");
    }
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(tmp.join("old.partial"))
        .and_then(|f| f.set_modified(hour_ago))
        .expect("set mtime");
    let now = runner::clock::Clock::now_millis(&runner::clock::SystemClock);
    assert_eq!(store.remove_stale_temp(now - 60_000).expect("remove"), 1);
    assert!(!tmp.join("old.partial").exists());
    assert!(tmp.join("new.partial").exists());
}

/// Blobs get the permissions of any file the user creates (0666 less the umask), so a store
/// shared by a group can be read by it; tempfile's 0600 must not leak into the store.
#[test]
fn blobs_are_created_with_the_process_umask() {
    use std::os::unix::fs::PermissionsExt;
    let Some(umask) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
        })
    else {
        eprintln!("skipped: cannot read this process's umask from /proc/self/status");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalBlobStore::new(dir.path()).expect("store");
    let info = put(&store, b"shared by a group");
    let path = store.path_of(&info.digest).expect("path");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o666 & !umask, "{}", path.display());
}

/// Storing bytes already stored keeps the stored file (no second copy is written back to disk)
/// and refreshes its mtime, which keeps orphan removal off it until the new row is committed.
#[test]
fn a_blob_stored_again_keeps_its_file_and_refreshes_its_mtime() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalBlobStore::new(dir.path()).expect("store");
    let first = put(&store, b"the same archive twice");
    let path = store.path_of(&first.digest).expect("path");
    let day_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(86_400);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_modified(day_ago))
        .expect("set mtime");
    let inode = std::fs::metadata(&path).expect("stat").ino();
    let again = put(&store, b"the same archive twice");
    assert_eq!(again, first);
    let meta = std::fs::metadata(&path).expect("stat");
    assert_eq!(meta.ino(), inode, "the stored file is kept, not replaced");
    let age = std::time::SystemTime::now()
        .duration_since(meta.modified().expect("mtime"))
        .unwrap_or_default();
    assert!(age.as_secs() < 3600, "mtime refreshed: {age:?} old");
    assert_eq!(
        tmp_files(dir.path()),
        0,
        "the duplicate's temporary file is gone"
    );
    assert_eq!(
        read_all(&store, &first.digest).expect("read"),
        b"the same archive twice"
    );
}
