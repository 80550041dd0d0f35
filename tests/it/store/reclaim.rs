//! A save killed with SIGKILL while writing leaves a reservation and a partial temporary file;
//! both belong to a dead process, so the next save of the key (or the next prune) reclaims them
//! at once instead of waiting out the reservation TTL. The saver is this test binary re-run with
//! `RUNNER_STORE_SAVER_*` set, so that only [`saver_child`] does anything.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use runner::clock::SystemClock;
use runner::store::Store;
use runner::store::index::{EvictionPolicy, ListFilter, Reservation};

use super::{Harness, MINUTE, Spec, raw_execute};

crate::backend_matrix!(crate::store::Harness:
    a_killed_save_is_reclaimed_by_the_next_save,
    a_killed_save_is_reclaimed_by_prune,
    another_hosts_reservation_waits_for_the_ttl,
);

const KEY: &str = "killed-save";

/// The child side; a no-op unless a parent test started this process.
#[test]
fn saver_child() {
    let (Ok(dir), Ok(url)) = (
        std::env::var("RUNNER_STORE_SAVER_DIR"),
        std::env::var("RUNNER_STORE_SAVER_DB"),
    ) else {
        return;
    };
    let store = Store::open(
        std::path::Path::new(&dir),
        Some(&url),
        Arc::new(SystemClock),
    )
    .expect("saver: open store");
    let Reservation::Reserved(id) = store
        .index()
        .reserve(&Spec::new("refs/heads/main", KEY).new_entry())
        .expect("saver: reserve")
    else {
        panic!("saver: key already reserved");
    };
    let mut writer = store.blobs().writer().expect("saver: writer");
    writer.write_all(&vec![7u8; 1 << 20]).expect("saver: write");
    writer.flush().expect("saver: flush");
    println!("READY {id}");
    std::io::stdout().flush().expect("saver: stdout");
    // Killed here, mid-save.
    std::thread::sleep(std::time::Duration::from_secs(60));
}

/// Starts a saver and waits until it holds the reservation and has written a partial blob.
fn start_saver(h: &Harness) -> (Child, String) {
    let exe = std::env::current_exe().expect("test binary path");
    let mut child = Command::new(exe)
        .args(["--exact", "store::reclaim::saver_child", "--nocapture"])
        .env("RUNNER_STORE_SAVER_DIR", h.dir.path())
        .env("RUNNER_STORE_SAVER_DB", &h.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn saver");
    let stdout = child.stdout.take().expect("saver stdout");
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read saver output");
        if let Some((_, id)) = line.split_once("READY ") {
            return (child, id.to_string());
        }
    }
    let status = child.wait().expect("wait saver");
    panic!("{}: saver exited before it was ready: {status}", h.backend);
}

/// `runner cache list --reserved` on the harness store: (key, owner status) per reservation, and
/// the text table.
fn list_reserved(h: &Harness) -> (Vec<(String, String)>, String) {
    let run = |json: bool| {
        let mut cmd = Command::new(crate::support::runner_bin());
        cmd.args(["cache", "list", "--reserved"])
            .current_dir(h.dir.path())
            .env("RUNNER_CACHE_DIR", h.dir.path())
            .env("RUNNER_CACHE_DB", &h.url)
            .stdin(Stdio::null());
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run runner cache list");
        assert!(out.status.success(), "{out:?}");
        out.stdout
    };
    let value: serde_json::Value = serde_json::from_slice(&run(true)).expect("json");
    let rows = value["reservations"]
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap_or_default().to_string(),
                r["owner_status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (rows, String::from_utf8_lossy(&run(false)).into_owned())
}

fn kill(mut child: Child) {
    child.kill().expect("SIGKILL the saver");
    // Reaped, so it is gone rather than a zombie (a zombie counts as dead too).
    child.wait().expect("wait saver");
}

fn temp_files(h: &Harness) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(h.blob_dir().join("tmp"))
        .expect("tmp dir")
        .map(|f| f.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn a_killed_save_is_reclaimed_by_the_next_save(h: &Harness) {
    let spec = Spec::new("refs/heads/main", KEY);
    let (child, child_id) = start_saver(h);
    assert_eq!(
        list_reserved(h).0,
        vec![(KEY.to_string(), "alive".to_string())],
        "{}",
        h.backend
    );
    let partial = temp_files(h);
    assert_eq!(partial.len(), 1, "{}: {partial:?}", h.backend);
    // While the saver lives, its reservation and its file are its own.
    assert_eq!(
        h.index().reserve(&spec.new_entry()).expect("reserve"),
        Reservation::AlreadyExists
    );
    drop(h.store.blobs().writer().expect("writer"));
    assert_eq!(
        temp_files(h),
        partial,
        "{}: a live writer's file was removed",
        h.backend
    );

    kill(child);
    let Reservation::Reserved(id) = h.index().reserve(&spec.new_entry()).expect("reserve") else {
        panic!(
            "{}: a dead saver's reservation still blocks the key",
            h.backend
        );
    };
    assert_ne!(id, child_id);
    let mut writer = h.store.blobs().writer().expect("writer");
    let now = temp_files(h);
    assert!(
        now.len() == 1 && !now.contains(&partial[0]),
        "{}: the dead saver's partial file is still there: {now:?}",
        h.backend
    );
    writer.write_all(b"saved after the kill").expect("write");
    let entry = h.store.commit_blob(&id, writer).expect("commit");
    assert_eq!(entry.key, KEY);
    assert_eq!(temp_files(h), Vec::<String>::new());
    assert_eq!(crate::support::committed_keys(h.index()), vec![KEY]);
}

fn a_killed_save_is_reclaimed_by_prune(h: &Harness) {
    let (child, child_id) = start_saver(h);
    kill(child);
    let (rows, text) = list_reserved(h);
    assert_eq!(
        rows,
        vec![(KEY.to_string(), "dead".to_string())],
        "{}",
        h.backend
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with(KEY) && l.contains(" dead ") && l.contains(&child_id)),
        "{text}"
    );
    let report = h
        .store
        .verify(&runner::store::VerifyOptions {
            rehash: true,
            dry_run: true,
        })
        .expect("verify");
    assert_eq!(
        report
            .abandoned_reservations
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        vec![child_id.as_str()],
        "{}: {report:?}",
        h.backend
    );
    assert!(report.rows_without_blob.is_empty() && report.orphan_blobs.is_empty());
    let evicted = h.store.evict(&EvictionPolicy::default()).expect("prune");
    assert_eq!(
        evicted.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        vec![child_id.as_str()],
        "{}",
        h.backend
    );
    assert_eq!(temp_files(h), Vec::<String>::new(), "{}", h.backend);
    let left = h
        .index()
        .list(&ListFilter {
            include_reserved: true,
            ..ListFilter::default()
        })
        .expect("list");
    assert!(left.is_empty(), "{}: {left:?}", h.backend);
}

/// Several hosts may share a PostgreSQL index; a pid there means nothing here.
fn another_hosts_reservation_waits_for_the_ttl(h: &Harness) {
    let spec = Spec::new("refs/heads/main", "elsewhere");
    let Reservation::Reserved(id) = h.index().reserve(&spec.new_entry()).expect("reserve") else {
        panic!("refused");
    };
    let owner = h.index().get(&id).expect("get").and_then(|e| e.owner);
    assert!(
        owner.is_some(),
        "{}: a reservation without an owner",
        h.backend
    );
    let foreign = format!("other-host {} 4026531836 1 1", "0".repeat(32));
    raw_execute(
        &h.url,
        &format!("UPDATE cache_entries SET owner = '{foreign}' WHERE id = '{id}'"),
    );
    assert_eq!(
        h.index().reserve(&spec.new_entry()).expect("reserve"),
        Reservation::AlreadyExists
    );
    assert!(
        h.store
            .evict(&EvictionPolicy::default())
            .expect("prune")
            .is_empty()
    );
    h.clock.advance(61 * MINUTE);
    assert!(matches!(
        h.index().reserve(&spec.new_entry()).expect("reserve"),
        Reservation::Reserved(_)
    ));
}
