//! Several real processes share one store and save the same and different keys at once: exactly
//! one entry per key, every blob intact, no orphan blobs, no leftover reservations.
//!
//! The processes are this test binary itself, re-run with `RUNNER_STORE_CHILD_*` set so that
//! only [`child_entry`] does anything.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;

use runner::clock::SystemClock;
use runner::store::Store;
use runner::store::index::{ListFilter, LookupQuery, Reservation};

use super::{Harness, Spec};

const CHILDREN: usize = 6;
const KEYS_PER_CHILD: usize = 8;

crate::backend_matrix!(crate::store::Harness: parallel_processes_save_each_key_once);

fn blob_bytes(key: &str, child: &str) -> Vec<u8> {
    // Big enough that writes overlap in time; content names the writer.
    format!("{key} written by child {child}\n")
        .repeat(2000)
        .into_bytes()
}

/// The child side; a no-op unless the parent test started this process.
#[test]
fn child_entry() {
    let (Ok(dir), Ok(url), Ok(child)) = (
        std::env::var("RUNNER_STORE_CHILD_DIR"),
        std::env::var("RUNNER_STORE_CHILD_DB"),
        std::env::var("RUNNER_STORE_CHILD_ID"),
    ) else {
        return;
    };
    let store = Store::open(
        std::path::Path::new(&dir),
        Some(&url),
        Arc::new(SystemClock),
    )
    .expect("child: open store");
    for k in 0..KEYS_PER_CHILD {
        for key in [format!("shared-{k}"), format!("own-{child}-{k}")] {
            let spec = Spec::new("refs/heads/main", &key);
            match store
                .index()
                .reserve(&spec.new_entry())
                .expect("child: reserve")
            {
                Reservation::Reserved(id) => {
                    let mut writer = store.blobs().writer().expect("child: writer");
                    writer
                        .write_all(&blob_bytes(&key, &child))
                        .expect("child: write");
                    store.commit_blob(&id, writer).expect("child: commit");
                    println!("RESULT saved {key}");
                }
                Reservation::AlreadyExists => println!("RESULT exists {key}"),
            }
            // Readers run alongside the writers.
            store
                .index()
                .lookup(&LookupQuery {
                    repository: "octo/repo".into(),
                    scopes: vec!["refs/heads/main".into()],
                    keys: vec![
                        format!("shared-{}", (k + 1) % KEYS_PER_CHILD),
                        "shared-".into(),
                    ],
                    version: "v1".into(),
                })
                .expect("child: lookup");
        }
    }
}

fn parallel_processes_save_each_key_once(h: &Harness) {
    let exe = std::env::current_exe().expect("test binary path");
    let children: Vec<_> = (0..CHILDREN)
        .map(|i| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "store::concurrency::child_entry",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("RUNNER_STORE_CHILD_DIR", h.dir.path())
                .env("RUNNER_STORE_CHILD_DB", &h.url)
                .env("RUNNER_STORE_CHILD_ID", i.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn child")
        })
        .collect();
    // Which child saved each key, per the children's own reports.
    let mut saved_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().expect("wait child");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: child {i} failed:\n{stdout}\n{}",
            h.backend,
            String::from_utf8_lossy(&out.stderr)
        );
        for line in stdout.lines() {
            // libtest's "test ... " banner may share the first line.
            if let Some((_, key)) = line.split_once("RESULT saved ") {
                saved_by
                    .entry(key.to_string())
                    .or_default()
                    .push(i.to_string());
            }
        }
    }
    let mut want_keys: BTreeSet<String> =
        (0..KEYS_PER_CHILD).map(|k| format!("shared-{k}")).collect();
    for i in 0..CHILDREN {
        want_keys.extend((0..KEYS_PER_CHILD).map(|k| format!("own-{i}-{k}")));
    }
    assert_eq!(
        saved_by.keys().cloned().collect::<BTreeSet<_>>(),
        want_keys,
        "{}",
        h.backend
    );
    for (key, savers) in &saved_by {
        assert_eq!(savers.len(), 1, "{}: {key} saved by {savers:?}", h.backend);
    }

    let all = h
        .index()
        .list(&ListFilter {
            include_reserved: true,
            ..ListFilter::default()
        })
        .expect("list");
    assert_eq!(
        all.len(),
        want_keys.len(),
        "{}: one row per key, no reservations left",
        h.backend
    );
    for entry in &all {
        let winner = &saved_by[&entry.key][0];
        let mut bytes = Vec::new();
        h.store
            .open_entry(entry)
            .expect("open blob")
            .read_to_end(&mut bytes)
            .expect("blob verifies");
        assert_eq!(
            bytes,
            blob_bytes(&entry.key, winner),
            "{}: {}",
            h.backend,
            entry.key
        );
    }
    let blobs: BTreeSet<String> = h
        .store
        .blobs()
        .list()
        .expect("list blobs")
        .into_iter()
        .map(|b| b.digest)
        .collect();
    assert_eq!(
        blobs,
        h.index().referenced_digests().expect("digests"),
        "{}: orphan or missing blobs",
        h.backend
    );
    let tmp = std::fs::read_dir(h.blob_dir().join("tmp"))
        .expect("tmp")
        .count();
    assert_eq!(tmp, 0, "{}: leftover temporary files", h.backend);
    let check = h.index().integrity_check().expect("integrity check");
    if h.backend == "sqlite" {
        assert_eq!(check, Some(vec!["ok".to_string()]));
    }
}
