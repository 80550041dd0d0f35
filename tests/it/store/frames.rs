//! Frame records (`frames-v1/`): where each archive's frames lie, checked on every use.

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use runner::archive::{Compression, CreateOptions, FrameSource, create_with};
use runner::clock::ManualClock;
use runner::store::Store;
use runner::store::blob::LocalBlobStore;

#[test]
fn recorded_frames_are_read_back_checked_and_dropped_when_their_blob_is_not_intact() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    for i in 0..1500u32 {
        let pkg = ws.join(format!("deps/p{}", i / 10));
        fs::create_dir_all(&pkg).unwrap();
        let text: String = (0..8000u32)
            .map(|j| char::from(b'a' + ((i * 7 + j * j) % 23) as u8))
            .collect();
        fs::write(pkg.join(format!("{i}.txt")), text).unwrap();
    }
    let mut out = Vec::new();
    let stats = create_with(
        &ws,
        &[PathBuf::from("deps")],
        &CreateOptions::new(Compression::Zstd),
        &mut out,
    )
    .unwrap();
    assert!(stats.frames.len() >= 2, "{} frames", stats.frames.len());

    let store_dir = dir.path().join("store");
    let store = Store::open(&store_dir, None, Arc::new(ManualClock::new(0))).unwrap();
    let mut writer = store.blobs().writer().unwrap();
    writer.write_all(&out).unwrap();
    let digest = writer.finish().unwrap().digest;
    let map = store.frames().expect("a local store keeps frame records");
    map.record(&digest, &stats.frames).unwrap();
    let records = || {
        crate::support::files_below(&store_dir.join("frames-v1"))
            .into_iter()
            .filter(|p| !p.starts_with(store_dir.join("frames-v1/tmp")))
            .count()
    };
    assert_eq!(records(), stats.frames.len());
    for r in &stats.frames {
        let frame = map.frame(&r.chunk).expect("recorded frame");
        assert!(frame.bytes == out[r.offset as usize..(r.offset + r.len) as usize]);
        assert_eq!(frame.digest, r.frame);
    }
    assert!(map.frame(&[7u8; 32]).is_none(), "an unknown chunk");

    // A byte of the second frame flipped in the blob: that frame is refused and its record
    // dropped; the first is still good.
    let path = LocalBlobStore::new(&store_dir)
        .unwrap()
        .path_of(&digest)
        .unwrap();
    let second = &stats.frames[1];
    let mut file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(second.offset + second.len / 2))
        .unwrap();
    let flipped = !out[(second.offset + second.len / 2) as usize];
    file.write_all(&[flipped]).unwrap();
    drop(file);
    assert!(map.frame(&second.chunk).is_none());
    assert_eq!(records(), stats.frames.len() - 1);
    assert!(map.frame(&stats.frames[0].chunk).is_some());

    // Once the blob is gone, pruning drops every record pointing into it.
    fs::remove_file(&path).unwrap();
    let removed = map.prune(&|d| d != digest).unwrap();
    assert_eq!(removed, (stats.frames.len() - 1) as u64);
    assert_eq!(records(), 0);
}

#[test]
fn stores_over_remote_blobs_keep_no_frame_records() {
    let dir = tempfile::tempdir().unwrap();
    let blobs_dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}", blobs_dir.path().display());
    let store = Store::open_with_blobs(dir.path(), None, Some(&url), Arc::new(ManualClock::new(0)))
        .unwrap();
    assert!(store.frames().is_none());
}
