//! `Cache` directly: versions, codecs, eviction by size, pruning.

use runner::archive::Compression;
use runner::cache::{
    CacheOptions, Location, RestoreOutcome, RestoreRequest, SaveOutcome, SaveRequest, Scope,
    cache_version,
};
use runner::exec::LogLevel;
use runner::store::blob::{BlobError, BlobInfo, BlobStat, BlobStore, BlobWriter, ListedBlob};
use std::sync::Arc;

use super::{Harness, MAIN};
use crate::support::write_tree;

fn scope() -> Scope {
    Scope {
        repository: "octo/app".into(),
        git_ref: MAIN.into(),
        base_ref: None,
        default_branch: None,
    }
}

fn location(h: &Harness) -> Location {
    Location {
        workspace: h.workspace(),
        home: h.home(),
        windows: false,
    }
}

fn save(h: &Harness, cache: &runner::cache::Cache, paths: &[&str], key: &str) -> SaveOutcome {
    let request = SaveRequest {
        scope: scope(),
        location: location(h),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        key: key.into(),
        enable_cross_os_archive: false,
        run_id: "1".into(),
        ..Default::default()
    };
    let mut log = |_: LogLevel, _: &str| {};
    cache.save(&request, &mut log).expect("save")
}

fn restore(h: &Harness, cache: &runner::cache::Cache, paths: &[&str], key: &str) -> RestoreOutcome {
    let request = RestoreRequest {
        scope: scope(),
        location: location(h),
        paths: paths.iter().map(|p| p.to_string()).collect(),
        primary_key: key.into(),
        restore_keys: vec![],
        enable_cross_os_archive: false,
        lookup_only: false,
        ..Default::default()
    };
    let mut log = |_: LogLevel, _: &str| {};
    cache.restore(&request, &mut log).expect("restore")
}

/// Bytes zstd cannot shrink, so archive sizes are predictable.
fn noise(len: usize, seed: u64) -> String {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 90) as u8)
        })
        .collect()
}

#[test]
fn stored_version_is_the_toolkit_version() {
    let h = Harness::sqlite();
    write_tree(&h.home(), &[(".npm/x", "x")]);
    let SaveOutcome::Saved(entry) = save(&h, &h.cache, &["~/.npm"], "npm") else {
        panic!("not saved");
    };
    assert_eq!(
        entry.version,
        "c242501c19ada3dcced7a83b074ccb8e79f816602d4125493924624b38591de2"
    );
    assert_eq!(entry.compression, "zstd-without-long");
    assert_eq!(entry.paths, ["~/.npm"]);
    assert_eq!(entry.created_by_run.as_deref(), Some("1"));
}

#[test]
fn gzip_entries_are_only_seen_by_gzip_lookups() {
    let h = Harness::sqlite_with(CacheOptions {
        compression: Compression::Gzip,
        ..CacheOptions::default()
    });
    write_tree(&h.workspace(), &[("deps/a", "a")]);
    let SaveOutcome::Saved(entry) = save(&h, &h.cache, &["deps"], "gz") else {
        panic!("not saved");
    };
    assert_eq!(entry.compression, "gzip");
    let deps = vec!["deps".to_string()];
    assert_eq!(
        entry.version,
        cache_version(&deps, Compression::Gzip, false, false)
    );
    let zstd = runner::cache::Cache::with_store(
        runner::store::Store::open(
            &h.store_dir(),
            Some(&h.url),
            std::sync::Arc::new(h.clock.clone()),
        )
        .expect("open"),
        std::sync::Arc::new(h.clock.clone()),
        CacheOptions::default(),
    );
    std::fs::remove_dir_all(h.workspace().join("deps")).expect("remove");
    assert_eq!(restore(&h, &zstd, &["deps"], "gz"), RestoreOutcome::Miss);
    assert!(matches!(
        restore(&h, &h.cache, &["deps"], "gz"),
        RestoreOutcome::Hit { exact: true, .. }
    ));
    assert_eq!(
        std::fs::read_to_string(h.workspace().join("deps/a")).expect("read"),
        "a"
    );
}

#[test]
fn eviction_by_size_drops_the_least_recently_used() {
    let mut options = CacheOptions::default();
    // Three archives of ~16 KB (20 KB of 90 distinct characters) do not fit in 40 KB; two do.
    options.eviction.max_size_bytes = 40 * 1024;
    let h = Harness::sqlite_with(options);
    for (i, key) in ["a", "b"].iter().enumerate() {
        write_tree(&h.workspace(), &[("deps/f", &noise(20 * 1024, i as u64))]);
        save(&h, &h.cache, &["deps"], key);
        h.clock.advance(60_000);
    }
    // Using `a` makes `b` the least recently used.
    assert!(matches!(
        restore(&h, &h.cache, &["deps"], "a"),
        RestoreOutcome::Hit { .. }
    ));
    h.clock.advance(60_000);
    write_tree(&h.workspace(), &[("deps/f", &noise(20 * 1024, 9))]);
    save(&h, &h.cache, &["deps"], "c");
    let keys = h.keys();
    assert_eq!(keys, ["a", "c"]);
}

#[test]
fn prune_dry_run_reports_without_removing() {
    let h = Harness::sqlite();
    write_tree(&h.workspace(), &[("deps/a", "a")]);
    save(&h, &h.cache, &["deps"], "old");
    h.clock.advance(8 * super::DAY);
    let would = h.cache.prune(true).expect("dry run");
    assert_eq!(
        would.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(),
        ["old"]
    );
    assert_eq!(h.entry_count(), 1);
    let gone = h.cache.prune(false).expect("prune");
    assert_eq!(gone.len(), 1);
    assert_eq!(h.entry_count(), 0);
}

/// A blob store whose writes fail with ENOSPC once `limit` bytes were written: the disk fills
/// up in the middle of a save. Everything else is the real local store underneath.
#[derive(Debug)]
struct DiskFullAfter {
    inner: Arc<dyn BlobStore>,
    limit: u64,
}

struct FullWriter {
    inner: Box<dyn BlobWriter>,
    left: u64,
}

impl std::io::Write for FullWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.write(&buf[..n])?;
        self.left -= n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl BlobWriter for FullWriter {
    fn finish(self: Box<Self>) -> Result<BlobInfo, BlobError> {
        self.inner.finish()
    }
}

impl BlobStore for DiskFullAfter {
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        Ok(Box::new(FullWriter {
            inner: self.inner.writer()?,
            left: self.limit,
        }))
    }
    fn open(&self, digest: &str) -> Result<Box<dyn std::io::Read + Send>, BlobError> {
        self.inner.open(digest)
    }
    fn open_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn std::io::Read + Send>, BlobError> {
        self.inner.open_range(digest, start, len)
    }
    fn stat(&self, digest: &str) -> Result<Option<BlobStat>, BlobError> {
        self.inner.stat(digest)
    }
    fn delete(&self, digest: &str) -> Result<(), BlobError> {
        self.inner.delete(digest)
    }
    fn list(&self) -> Result<Vec<ListedBlob>, BlobError> {
        self.inner.list()
    }
    fn remove_stale_temp(&self, older_than: i64) -> Result<usize, BlobError> {
        self.inner.remove_stale_temp(older_than)
    }
    fn flush(&self) -> Result<(), BlobError> {
        self.inner.flush()
    }
    fn presigned_get(
        &self,
        digest: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        self.inner.presigned_get(digest, expires_in)
    }
    fn tier_stats(&self) -> Option<runner::store::blob::TierStats> {
        self.inner.tier_stats()
    }
    // Never takes a file, so every new blob goes through the writer this double wraps.
    fn adopt_file(
        &self,
        _path: &std::path::Path,
    ) -> Result<Option<runner::store::blob::BlobInfo>, runner::store::blob::BlobError> {
        Ok(None)
    }
}

/// A save that fails half-way (the disk fills up while the archive streams into the blob
/// store) leaves no reservation, no entry and no blob behind, and is only a warning.
#[test]
fn failed_save_leaves_nothing_behind() {
    use runner::exec::LogLevel::Warning;

    let h = Harness::sqlite_wrapped(
        CacheOptions::default(),
        Some(|inner| Arc::new(DiskFullAfter { inner, limit: 64 })),
    );
    // Random bytes, so the archive cannot shrink below the limit.
    let noise: String = (0..200_000u32)
        .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
        .collect();
    write_tree(&h.workspace(), &[("deps/a", noise.as_str())]);
    let job = h.job(MAIN);
    let step = h.main(
        "actions/cache/save@v4",
        &job,
        &[("path", "deps"), ("key", "disk-full")],
    );
    step.ok();
    let warnings = step.lines(Warning);
    assert!(
        warnings.first().is_some_and(
            |w| w.starts_with("Failed to save: ") && w.contains("No space left on device")
        ),
        "{warnings:?}"
    );
    assert_eq!(warnings.get(1).copied(), Some("Cache save failed."));
    let filter = runner::store::index::ListFilter {
        include_reserved: true,
        ..Default::default()
    };
    assert!(h.cache.index().list(&filter).expect("list").is_empty());
    let blobs = h.cache.store().blobs().list().expect("list blobs");
    assert!(blobs.is_empty(), "{blobs:?}");
    let tmp = h.store_dir().join("blobs-v1/tmp");
    let leftovers: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    // The identity is free again: the reservation was aborted, not left to expire.
    let paths = vec!["deps".to_string()];
    let again = runner::store::index::NewEntry {
        repository: "octo/app".into(),
        scope: MAIN.into(),
        key: "disk-full".into(),
        version: cache_version(&paths, Compression::Zstd, false, false),
        paths,
        compression: "zstd-without-long".into(),
        created_by_run: None,
        roots: None,
    };
    assert!(matches!(
        h.cache.index().reserve(&again).expect("reserve"),
        runner::store::index::Reservation::Reserved(_)
    ));
}

#[test]
fn nested_matches_reached_through_workspace_links_restore() {
    // An npm workspaces layout: `node_modules/@app/lib` links to `packages/lib`, which has its
    // own node_modules. `**/node_modules` matches that one twice: as itself, and through the
    // link inside the matched `node_modules`. The archive must name it only as itself, or the
    // restore would have to write through the link (and refuses to).
    let h = Harness::sqlite();
    let ws = h.workspace();
    write_tree(
        &ws,
        &[
            ("node_modules/left-pad/index.js", "pad"),
            ("packages/lib/index.js", "lib"),
            ("packages/lib/node_modules/dep/index.js", "dep"),
        ],
    );
    std::fs::create_dir_all(ws.join("node_modules/@app")).expect("mkdir");
    std::os::unix::fs::symlink("../../packages/lib", ws.join("node_modules/@app/lib"))
        .expect("symlink");
    let paths = ["**/node_modules"];
    assert!(matches!(
        save(&h, &h.cache, &paths, "ws-1"),
        SaveOutcome::Saved(_)
    ));
    std::fs::remove_dir_all(ws.join("node_modules")).expect("rm");
    std::fs::remove_dir_all(ws.join("packages/lib/node_modules")).expect("rm");

    let outcome = restore(&h, &h.cache, &paths, "ws-1");
    assert!(
        matches!(outcome, RestoreOutcome::Hit { exact: true, .. }),
        "{outcome:?}"
    );
    let link = std::fs::read_link(ws.join("node_modules/@app/lib")).expect("link restored");
    assert_eq!(link, std::path::Path::new("../../packages/lib"));
    let read = |p: &str| std::fs::read_to_string(ws.join(p)).expect(p);
    assert_eq!(read("node_modules/left-pad/index.js"), "pad");
    assert_eq!(read("packages/lib/node_modules/dep/index.js"), "dep");
}

/// Saves `deps` under `key`, returning the debug lines logged.
fn save_logged(h: &Harness, key: &str) -> Vec<String> {
    let request = SaveRequest {
        scope: scope(),
        location: location(h),
        paths: vec!["deps".into()],
        key: key.into(),
        run_id: "1".into(),
        ..Default::default()
    };
    let mut lines = Vec::new();
    let mut log = |level: LogLevel, line: &str| {
        if level == LogLevel::Debug {
            lines.push(line.to_string());
        }
    };
    let outcome = h.cache.save(&request, &mut log).expect("save");
    assert!(matches!(outcome, SaveOutcome::Saved(_)), "{outcome:?}");
    lines
}

fn frame_records(h: &Harness) -> usize {
    let dir = h.store_dir().join("frames-v1");
    let Ok(shards) = std::fs::read_dir(&dir) else {
        return 0;
    };
    shards
        .flatten()
        .filter(|s| s.file_name() != "tmp")
        .map(|s| std::fs::read_dir(s.path()).map_or(0, |d| d.count()))
        .sum()
}

#[test]
fn a_save_of_a_tree_saved_before_copies_its_frames_and_deleting_its_blob_drops_them() {
    let h = Harness::sqlite();
    let files: Vec<(String, String)> = (0..900u64)
        .map(|i| (format!("deps/p{}/f{i}.js", i / 30), noise(6000, i) + "\n"))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    write_tree(&h.workspace(), &refs);
    let reused = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.contains("compressed by an earlier save; their frames were copied"))
    };
    assert!(!reused(&save_logged(&h, "deps-1")));
    assert!(frame_records(&h) >= 1);
    // A rolling key: the same tree under the next key copies every frame.
    assert!(reused(&save_logged(&h, "deps-2")));
    let entries = h.cache.index().list(&Default::default()).expect("list");
    let digests: std::collections::BTreeSet<_> =
        entries.iter().map(|e| e.blob_digest.clone()).collect();
    assert_eq!(digests.len(), 1, "the same archive: {entries:?}");
    let ws = h.workspace();
    std::fs::remove_dir_all(ws.join("deps")).unwrap();
    assert!(matches!(
        restore(&h, &h.cache, &["deps"], "deps-2"),
        RestoreOutcome::Hit { exact: true, .. }
    ));
    assert_eq!(
        std::fs::read_to_string(ws.join("deps/p29/f899.js")).unwrap(),
        files[899].1
    );

    // Both entries deleted, the blob with them: the records that point into it go too (a
    // prune has nothing left to drop), and the next save compresses again.
    h.cache.delete(&entries[0].id).expect("delete");
    assert!(frame_records(&h) >= 1, "the blob is still another entry's");
    h.cache.delete(&entries[1].id).expect("delete");
    assert_eq!(frame_records(&h), 0);
    h.cache.prune(false).expect("prune");
    assert!(!reused(&save_logged(&h, "deps-3")));
}
