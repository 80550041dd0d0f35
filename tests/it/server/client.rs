//! `runner exec` as a client of `runner serve`: `--cache-server`, GitHub's job environment
//! (v2 and v1), and a server that is down. The entries land in the server's store.

use std::path::Path;
use std::process::Command;

use super::{REPO, Srv};
use crate::cache::{MAIN, snapshot};
use crate::support::{runner_bin, write_tree};

const WORKFLOW: &str = r#"on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/cache@v4
        id: cache
        with:
          path: deps
          key: deps-${{ hashFiles('lock') }}
          restore-keys: deps-
      - if: steps.cache.outputs.cache-hit != 'true'
        run: mkdir -p deps/sub && cp lock deps/lock && echo installed > deps/sub/x && echo INST""ALLED
      - run: echo "hit=${{ steps.cache.outputs.cache-hit }}"
"#;

struct Run {
    ok: bool,
    log: String,
}

fn exec(ws: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(runner_bin());
    cmd.args(["exec", "workflow.yml", "--repository", REPO, "--ref", MAIN])
        .args(args)
        .current_dir(ws)
        .env("NO_COLOR", "1")
        // A local store that must stay empty: entries go to the server.
        .env("RUNNER_CACHE_DIR", ws.join(".local-store"))
        .env_remove("RUNNER_CACHE_DB")
        .env_remove("RUNNER_CACHE_SERVER")
        .env_remove("RUNNER_CACHE_TOKEN")
        .env_remove("ACTIONS_RESULTS_URL")
        .env_remove("ACTIONS_CACHE_URL")
        .env_remove("ACTIONS_RUNTIME_TOKEN")
        .env_remove("ACTIONS_CACHE_SERVICE_V2");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run runner exec");
    Run {
        ok: out.status.success(),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The entries of the workspace's local store (which only counts runs here).
fn local_entries(ws: &Path) -> Vec<String> {
    let dir = ws.join(".local-store");
    if !dir.join("index.sqlite").exists() {
        return Vec::new();
    }
    let clock = std::sync::Arc::new(runner::clock::SystemClock);
    let store = runner::store::Store::open(&dir, None, clock).expect("open local store");
    crate::support::committed_keys(store.index())
}

fn workspace(srv: &Srv, name: &str, lock: &str) -> std::path::PathBuf {
    let ws = srv.h.dir.path().join(name);
    write_tree(&ws, &[("workflow.yml", WORKFLOW), ("lock", lock)]);
    ws
}

/// Saves from one workspace and restores into another through the server, over `args`/`env`.
fn round_trip(srv: &Srv, tag: &str, args: &[&str], env: &[(&str, &str)], expect_backend: &str) {
    let first = workspace(srv, &format!("{tag}-1"), tag);
    let run = exec(&first, args, env);
    assert!(run.ok, "{}", run.log);
    assert!(run.log.contains(expect_backend), "{}", run.log);
    assert!(run.log.contains("INSTALLED"), "{}", run.log);
    assert!(
        run.log.contains("Cache saved with key: deps-"),
        "{}",
        run.log
    );
    let saved = snapshot(&first.join("deps"));
    let keys = srv.h.keys();
    assert!(keys.iter().any(|k| k.starts_with("deps-")), "{keys:?}");
    assert!(local_entries(&first).is_empty(), "the local store was used");

    let second = workspace(srv, &format!("{tag}-2"), tag);
    let run = exec(&second, args, env);
    assert!(run.ok, "{}", run.log);
    assert!(
        run.log.contains("Cache restored successfully"),
        "{}",
        run.log
    );
    assert!(run.log.contains("hit=true"), "{}", run.log);
    assert!(!run.log.contains("INSTALLED"), "{}", run.log);
    assert_eq!(snapshot(&second.join("deps")), saved);
}

#[test]
fn exec_with_cache_server_round_trips() {
    let srv = Srv::start();
    let token = srv.token();
    round_trip(
        &srv,
        "flag",
        &["--cache-server", &srv.base, "--cache-token", &token],
        &[],
        "Cache backend: cache server",
    );
    // A restore key on another lock hits the entry saved above, as a partial hit.
    let third = workspace(&srv, "flag-3", "other");
    let run = exec(
        &third,
        &["--cache-server", &srv.base, "--cache-token", &token],
        &[],
    );
    assert!(run.ok, "{}", run.log);
    assert!(
        run.log.contains("Cache hit for restore-key: deps-"),
        "{}",
        run.log
    );
    assert!(run.log.contains("hit=false"), "{}", run.log);
}

#[test]
fn github_job_environment_selects_the_server_v2_and_v1() {
    let srv = Srv::start();
    let token = srv.token();
    let results = format!("{}/", srv.base);
    round_trip(
        &srv,
        "v2",
        &[],
        &[
            ("ACTIONS_RESULTS_URL", &results),
            ("ACTIONS_RUNTIME_TOKEN", &token),
            ("ACTIONS_CACHE_SERVICE_V2", "true"),
        ],
        "(v2, from ACTIONS_RESULTS_URL and ACTIONS_RUNTIME_TOKEN",
    );
    round_trip(
        &srv,
        "v1",
        &[],
        &[
            ("ACTIONS_CACHE_URL", &results),
            ("ACTIONS_RUNTIME_TOKEN", &token),
        ],
        "(v1, from ACTIONS_CACHE_URL and ACTIONS_RUNTIME_TOKEN",
    );
}

/// An archive over 128 MiB goes up in blocks and comes back whole.
#[test]
fn a_big_archive_goes_up_in_blocks() {
    let srv = Srv::start();
    let token = srv.token();
    let ws = srv.h.dir.path().join("big-1");
    let workflow = r#"on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/cache@v4
        id: c
        with: {path: big, key: big}
      - if: steps.c.outputs.cache-hit != 'true'
        run: mkdir -p big && head -c 140000000 /dev/urandom > big/blob
"#;
    write_tree(&ws, &[("workflow.yml", workflow)]);
    let args = [
        "--cache-server",
        srv.base.as_str(),
        "--cache-token",
        token.as_str(),
    ];
    let run = exec(&ws, &args, &[]);
    assert!(run.log.contains("Cache saved with key: big"), "{}", run.log);
    let before = std::fs::read(ws.join("big/blob")).expect("read");
    let ws2 = srv.h.dir.path().join("big-2");
    write_tree(&ws2, &[("workflow.yml", workflow)]);
    let run = exec(&ws2, &args, &[]);
    assert!(
        run.log.contains("Cache restored successfully"),
        "{}",
        run.log
    );
    assert!(std::fs::read(ws2.join("big/blob")).expect("read") == before);
}

/// A server that is down: the restore is a miss with a warning, the save a warning, and the
/// job succeeds.
#[test]
fn a_server_that_is_down_is_a_miss_and_the_job_goes_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let ws = dir.path().join("ws");
    write_tree(&ws, &[("workflow.yml", WORKFLOW), ("lock", "x")]);
    let url = format!("http://127.0.0.1:{port}");
    let run = exec(&ws, &["--cache-server", &url, "--cache-token", "t"], &[]);
    assert!(run.ok, "{}", run.log);
    assert!(run.log.contains("Failed to restore: "), "{}", run.log);
    assert!(run.log.contains("Failed to save: "), "{}", run.log);
    assert!(run.log.contains("INSTALLED"), "{}", run.log);
}

/// The server sends a blob as it is on disk (its digest was checked when it was written); a
/// blob damaged since is caught by the archive's own checksum where it is unpacked: a miss
/// with a warning, and the job goes on to install. The client reports the entry, the server
/// checks the blob and marks the entry broken, and the job's save replaces it.
#[test]
fn a_blob_damaged_on_the_server_is_a_miss_with_a_warning() {
    let srv = Srv::start();
    let token = srv.token();
    let args = [
        "--cache-server",
        srv.base.as_str(),
        "--cache-token",
        token.as_str(),
    ];
    let first = workspace(&srv, "damaged-1", "damaged");
    let run = exec(&first, &args, &[]);
    assert!(
        run.log.contains("Cache saved with key: deps-"),
        "{}",
        run.log
    );
    let root = srv.h.dir.path().join("store/blobs-v1");
    let blobs: Vec<_> = crate::support::files_below(&root)
        .into_iter()
        .filter(|p| !p.starts_with(root.join("tmp")))
        .collect();
    assert_eq!(blobs.len(), 1, "{blobs:?}");
    let mut bytes = std::fs::read(&blobs[0]).expect("read blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&blobs[0], &bytes).expect("damage blob");

    let second = workspace(&srv, "damaged-2", "damaged");
    let run = exec(&second, &args, &[]);
    assert!(run.ok, "{}", run.log);
    assert!(run.log.contains("Failed to restore: "), "{}", run.log);
    assert!(run.log.contains("INSTALLED"), "{}", run.log);
    assert!(!run.log.contains("hit=true"), "{}", run.log);
    // The client reported it; the server found the blob damaged and marked the entry broken,
    // so this run's post-job save replaced it, and the next run restores.
    assert!(
        run.log.contains("the server marked it broken"),
        "{}",
        run.log
    );
    assert!(
        run.log.contains("Cache saved with key: deps-"),
        "{}",
        run.log
    );
    let third = workspace(&srv, "damaged-3", "damaged");
    let run = exec(&third, &args, &[]);
    assert!(
        run.log.contains("Cache restored successfully"),
        "{}",
        run.log
    );
    assert!(run.log.contains("hit=true"), "{}", run.log);
}

#[test]
fn cache_backend_server_without_a_server_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_tree(dir.path(), &[("workflow.yml", WORKFLOW), ("lock", "x")]);
    let out = Command::new(runner_bin())
        .args(["exec", "workflow.yml", "--cache-backend", "server"])
        .current_dir(dir.path())
        .env_remove("RUNNER_CACHE_SERVER")
        .env_remove("ACTIONS_RUNTIME_TOKEN")
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--cache-backend server needs a cache server"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `runner exec --cache-server` keeps downloaded archives in a local tier keyed by the digest
/// the server names: a later restore of the same entry reads the tier, even once the server can
/// no longer serve the bytes; with the tier off, that restore is a miss.
#[test]
fn downloads_are_kept_in_a_local_tier() {
    let srv = Srv::start();
    let token = srv.token();
    let args = ["--cache-server", srv.base.as_str(), "--cache-token", &token];
    let tier = srv.h.dir.path().join("tier");
    let tier_dir = tier.display().to_string();
    let env = [("RUNNER_CACHE_TIER_DIR", tier_dir.as_str())];
    let saver = workspace(&srv, "tier-1", "tiered");
    assert!(exec(&saver, &args, &env).ok);
    let tier_blobs = || -> Vec<String> {
        let local = runner::store::blob::LocalBlobStore::new(&tier).expect("tier");
        use runner::store::blob::BlobStore;
        local
            .list()
            .expect("list")
            .into_iter()
            .map(|b| b.digest)
            .collect()
    };
    assert!(tier_blobs().is_empty(), "a save does not fill the tier");
    let first = workspace(&srv, "tier-2", "tiered");
    let run = exec(&first, &args, &env);
    assert!(run.log.contains("hit=true"), "{}", run.log);
    let key = srv.h.keys().into_iter().next().expect("a key");
    let blob = srv.h.blob_file(&key);
    let digest = blob
        .file_name()
        .and_then(|n| n.to_str())
        .expect("digest")
        .to_string();
    assert_eq!(tier_blobs(), vec![digest], "the download was kept");
    // The server loses the bytes; the tier still has them.
    std::fs::remove_file(&blob).expect("remove the server's blob");
    let second = workspace(&srv, "tier-3", "tiered");
    let run = exec(&second, &args, &env);
    assert!(run.ok, "{}", run.log);
    assert!(run.log.contains("hit=true"), "{}", run.log);
    assert_eq!(
        snapshot(&second.join("deps")),
        snapshot(&first.join("deps"))
    );
    let off = [
        ("RUNNER_CACHE_TIER_DIR", tier_dir.as_str()),
        ("RUNNER_CACHE_TIER", "off"),
    ];
    let third = workspace(&srv, "tier-4", "tiered");
    let run = exec(&third, &args, &off);
    assert!(run.ok, "{}", run.log);
    assert!(run.log.contains("Failed to restore: "), "{}", run.log);
}
