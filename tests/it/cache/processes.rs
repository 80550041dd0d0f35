//! Several `runner exec` processes saving into one store at once (needs `runner exec` with the
//! cache handlers registered).

use std::process::{Command, Stdio};

use super::{Harness, MAIN};
use crate::support::{runner_bin, write_tree};

const WORKFLOW: &str = r#"on: push
jobs:
  save:
    runs-on: ubuntu-latest
    steps:
      - run: mkdir -p deps && echo "$CONTENT" > deps/v && head -c 200000 /dev/urandom > deps/noise
      - uses: actions/cache/save@v4
        with: {path: deps, key: "${{ env.KEY }}"}
"#;

/// Eight processes: four save the key `shared`, four their own key. Exactly one `shared`
/// entry and four others exist afterwards, every row has its blob and no blob is orphaned.
fn parallel_processes_share_one_store(h: &Harness, db_url: &str) {
    let mut children = Vec::new();
    for i in 0..8 {
        let ws = h.dir.path().join(format!("ws{i}"));
        write_tree(&ws, &[("workflow.yml", WORKFLOW)]);
        let key = if i % 2 == 0 {
            "shared".to_string()
        } else {
            format!("own-{i}")
        };
        let child = Command::new(runner_bin())
            .args([
                "exec",
                "workflow.yml",
                "--repository",
                "octo/app",
                "--ref",
                MAIN,
            ])
            .args([
                "--env",
                &format!("KEY={key}"),
                "--env",
                &format!("CONTENT={i}"),
            ])
            .current_dir(&ws)
            .env("HOME", h.home())
            .env("RUNNER_CACHE_DIR", h.store_dir())
            .env("RUNNER_CACHE_DB", db_url)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runner exec");
        children.push(child);
    }
    let mut saved_shared = 0;
    for child in children {
        let out = child.wait_with_output().expect("wait");
        let log = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "a save never fails the job:\n{log}");
        if log.contains("Cache saved with key: shared") {
            saved_shared += 1;
        } else if log.contains("shared") {
            assert!(
                log.contains("Unable to reserve cache with key shared, another job may be creating this cache."),
                "{log}"
            );
        }
    }
    assert_eq!(saved_shared, 1);
    let keys = h.keys();
    assert_eq!(keys, ["own-1", "own-3", "own-5", "own-7", "shared"]);
    let report = h.cache.verify(true).expect("verify");
    assert!(report.rows_without_blob.is_empty(), "{report:?}");
    assert!(report.corrupt_blobs.is_empty(), "{report:?}");
    let blobs =
        runner::store::blob::BlobStore::list(h.cache.store().blobs().as_ref()).expect("list blobs");
    assert_eq!(
        blobs.len(),
        5,
        "one blob per entry, none orphaned: {blobs:?}"
    );
}

#[test]
fn parallel_processes_sqlite() {
    let h = Harness::sqlite();
    let url = h.url.clone();
    parallel_processes_share_one_store(&h, &url);
}

#[test]
fn parallel_processes_postgres() {
    if let Some(h) = Harness::postgres() {
        let url = h.url.clone();
        parallel_processes_share_one_store(&h, &url);
    }
}
