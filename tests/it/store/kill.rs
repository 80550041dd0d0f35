//! `runner exec` killed with SIGKILL at random moments of a job that restores and saves a cache:
//! after every kill the store holds no damage (`verify` finds nothing to repair, every committed
//! row has its blob, every leftover reservation belongs to a dead process), and a full run
//! afterwards saves and restores as usual.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runner::store::VerifyOptions;
use runner::store::index::{EntryState, ListFilter};
use runner::store::owner::{Liveness, Owner};

use super::Harness;
use crate::support::{runner_bin, write_tree};

crate::backend_matrix!(crate::store::Harness: kill_9_at_random_moments_leaves_a_consistent_store);

const KILLS: usize = 12;

const WORKFLOW: &str = r#"on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/cache@v4
        with:
          path: deps
          key: ${{ env.KEY }}
          restore-keys: deps-
      - run: mkdir -p deps && head -c 3000000 /dev/urandom > deps/noise
"#;

/// A small deterministic generator: tests must not depend on a random crate's seed handling.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

fn exec(h: &Harness, ws: &std::path::Path, key: &str) -> Command {
    let mut cmd = Command::new(runner_bin());
    cmd.args(["exec", "workflow.yml", "--repository", "octo/app"])
        .args(["--ref", "refs/heads/main", "--env", &format!("KEY={key}")])
        .current_dir(ws)
        .env("HOME", ws.join("home"))
        .env("RUNNER_CACHE_DIR", h.dir.path())
        .env("RUNNER_CACHE_DB", &h.url)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

fn run_to_end(h: &Harness, ws: &std::path::Path, key: &str) -> String {
    let out = exec(h, ws, key).output().expect("run runner exec");
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}: {log}", h.backend);
    log
}

fn assert_consistent(h: &Harness, after: &str) {
    let store = h.reopen();
    let report = store
        .verify(&VerifyOptions {
            rehash: true,
            dry_run: true,
        })
        .expect("verify");
    assert!(
        report.rows_without_blob.is_empty() && report.corrupt_blobs.is_empty(),
        "{} after {after}: {report:?}",
        h.backend
    );
    let rows = store
        .index()
        .list(&ListFilter {
            include_reserved: true,
            ..ListFilter::default()
        })
        .expect("list");
    for row in rows {
        match row.state {
            EntryState::Committed => {
                let digest = row
                    .blob_digest
                    .as_deref()
                    .expect("committed row has a digest");
                assert!(
                    store.blobs().contains(digest).expect("contains"),
                    "{} after {after}: {} has no blob",
                    h.backend,
                    row.key
                );
            }
            EntryState::Reserved => {
                let owner = row.owner.as_deref().and_then(Owner::parse);
                assert_eq!(
                    owner.map(|o| o.liveness()),
                    Some(Liveness::Dead),
                    "{} after {after}: reservation {} is not reclaimable",
                    h.backend,
                    row.key
                );
            }
        }
    }
}

fn kill_9_at_random_moments_leaves_a_consistent_store(h: &Harness) {
    let ws = tempfile::tempdir().expect("workspace");
    write_tree(ws.path(), &[("workflow.yml", WORKFLOW)]);
    // How long a whole run takes here, to spread the kills over it.
    let started = Instant::now();
    let log = run_to_end(h, ws.path(), "deps-0");
    assert!(log.contains("Cache saved with key: deps-0"), "{log}");
    let span = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    eprintln!("{}: run takes {span} ms, seed {seed}", h.backend);
    let mut rng = Lcg(seed);
    for i in 1..=KILLS {
        let delay = rng.below(span + span / 4);
        let mut child = exec(h, ws.path(), &format!("deps-{i}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn runner exec");
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill();
        child.wait().expect("wait runner exec");
        assert_consistent(h, &format!("kill {i} at {delay} ms"));
    }
    // The killed saves block nothing: each of their keys saves (or, if the killed run got that
    // far, restores) at once.
    for i in 1..=KILLS {
        let key = format!("deps-{i}");
        let log = run_to_end(h, ws.path(), &key);
        assert!(
            log.contains(&format!("Cache saved with key: {key}"))
                || log.contains(&format!("Cache restored from key: {key}")),
            "{}: {log}",
            h.backend
        );
        assert!(!log.contains("another job may be creating"), "{log}");
    }
    let key = format!("deps-{KILLS}");
    let log = run_to_end(h, ws.path(), &key);
    assert!(
        log.contains(&format!("Cache restored from key: {key}")),
        "{}: {log}",
        h.backend
    );
    assert_consistent(h, "the full runs");
}
