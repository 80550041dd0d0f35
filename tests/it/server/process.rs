//! `runner serve` and `runner token` as processes: startup rules, logs, SIGTERM, kill -9.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{TWIRP, encode, put_block_list, version};
use crate::support::{http, runner_bin, upload_in_progress};

const SECRET: &str = "process-test-secret";

/// A `runner serve` process on an ephemeral port over `dir`.
struct Served {
    child: Child,
    base: String,
    log: std::sync::mpsc::Receiver<String>,
}

fn serve(dir: &std::path::Path, extra: &[&str]) -> Served {
    let mut child = Command::new(runner_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .env("RUNNER_CACHE_DIR", dir)
        .env_remove("RUNNER_CACHE_DB")
        // The filter comes from the test's --log, never from whoever runs the suite.
        .env_remove("RUST_LOG")
        .env("RUNNER_SERVE_TOKEN_SECRET", SECRET)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runner serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let base = loop {
        let line = rx.recv().expect("runner serve exited before listening");
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on ".len()..];
            break rest.split(['"', ' ']).next().expect("url").to_string();
        }
    };
    Served {
        child,
        base,
        log: rx,
    }
}

fn token(repo: &str) -> String {
    let out = Command::new(runner_bin())
        .args([
            "token",
            "--repo",
            repo,
            "--ref",
            "refs/heads/main",
            "--ttl",
            "1h",
        ])
        .env("RUNNER_SERVE_TOKEN_SECRET", SECRET)
        .output()
        .expect("runner token");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

fn twirp(base: &str, token: &str, method: &str, body: Value) -> crate::support::HttpReply {
    let auth = format!("Bearer {token}");
    http(
        "POST",
        &format!("{base}{TWIRP}{method}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(body.to_string().as_bytes()),
    )
}

fn create(base: &str, token: &str, key: &str) -> crate::support::HttpReply {
    twirp(
        base,
        token,
        "CreateCacheEntry",
        json!({"key": key, "version": version(9)}),
    )
}

/// Starts an upload of `key` and stages two blocks, leaving it unfinished; returns its URL.
fn start_upload(base: &str, token: &str, key: &str) -> String {
    let created = create(base, token, key);
    assert_eq!(created.status, 200, "{}", created.text());
    let url = created.json()["signed_upload_url"]
        .as_str()
        .expect("url")
        .to_string();
    for i in 0..2u8 {
        let reply = http(
            "PUT",
            &format!("{url}&comp=block&blockid={}", encode(&block_id(i))),
            &[],
            Some(&[i; 4096]),
        );
        assert_eq!(reply.status, 201);
    }
    url
}

/// The base64 id of block `i` of [`start_upload`].
fn block_id(i: u8) -> String {
    STANDARD.encode([i; 48])
}

/// Saves `key` whole: [`start_upload`]'s two blocks, their list, and finalize.
fn save(base: &str, token: &str, key: &str) {
    let url = start_upload(base, token, key);
    put_block_list(&url, &[block_id(0), block_id(1)]);
    let done = twirp(
        base,
        token,
        "FinalizeCacheEntryUpload",
        json!({"key": key, "version": version(9), "size_bytes": "8192"}),
    );
    assert_eq!(done.status, 200, "{}", done.text());
}

fn cache_cmd(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(runner_bin())
        .arg("cache")
        .args(args)
        // Outside any checkout, so `-R` defaults to every repository, not this clone's origin.
        .current_dir(dir)
        .env("RUNNER_CACHE_DIR", dir)
        .env_remove("RUNNER_CACHE_DB")
        .output()
        .expect("runner cache");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn serve_refuses_to_start_without_a_secret_unless_told_to_be_insecure() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(runner_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUNNER_CACHE_DIR", dir.path())
        .env_remove("RUNNER_SERVE_TOKEN_SECRET")
        .output()
        .expect("runner serve");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no token secret"));

    let mut child = Command::new(runner_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--insecure-no-auth"])
        .env("RUNNER_CACHE_DIR", dir.path())
        .env_remove("RUNNER_SERVE_TOKEN_SECRET")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let first = BufReader::new(child.stderr.take().expect("stderr"))
        .lines()
        .next()
        .expect("a line")
        .expect("text");
    assert!(first.contains("INSECURE"), "{first}");
    child.kill().expect("kill");
    let _ = child.wait();
}

/// `--log` (or `RUST_LOG`) chooses the events logged: by default requests and nothing at
/// debug; asked for, one module's debug events (how finalize assembled the upload) and the
/// cache's own messages; a filter that does not parse stops startup with the reason.
#[test]
fn the_log_filter_chooses_the_events_and_a_bad_one_is_refused() {
    let debug_lines = |extra: &[&str]| -> Vec<Value> {
        let dir = tempfile::tempdir().expect("dir");
        let mut args = vec!["--log-format", "json"];
        args.extend_from_slice(extra);
        let mut served = serve(dir.path(), &args);
        save(&served.base, &token("octo/app"), "logged");
        // SAFETY: kill(2) on the child we spawned; no memory is involved.
        unsafe { libc::kill(served.child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(served.child.wait().expect("wait").code(), Some(0));
        let lines: Vec<Value> = served
            .log
            .try_iter()
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect();
        assert!(
            lines.iter().any(|l| l["message"] == "request"
                && l["route"] == format!("{TWIRP}FinalizeCacheEntryUpload")),
            "the request lines are there either way: {lines:?}"
        );
        lines
            .into_iter()
            .filter(|l| l["level"] == "DEBUG")
            .collect()
    };
    let quiet = debug_lines(&[]);
    assert!(quiet.is_empty(), "no debug events by default: {quiet:?}");
    // Empty is unset, as for every variable: the default, not silence (checked by debug_lines).
    let empty = debug_lines(&["--log", ""]);
    assert!(empty.is_empty(), "{empty:?}");
    let loud = debug_lines(&["--log", "info,runner::server=debug,runner::cache=debug"]);
    let assembling = loud
        .iter()
        .find(|l| l["message"] == "assembling")
        .unwrap_or_else(|| panic!("finalize's debug event: {loud:?}"));
    assert_eq!(assembling["parts"], 2);
    // Block ids without an index are not guessed at: finalize copied both.
    assert_eq!(assembling["assembled_early"], 0);
    assert!(
        loud.iter().all(|l| l["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("runner::"))),
        "only the modules asked for: {loud:?}"
    );

    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(runner_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUNNER_CACHE_DIR", dir.path())
        .env("RUNNER_SERVE_TOKEN_SECRET", SECRET)
        .env("RUST_LOG", "runner=loud")
        .output()
        .expect("runner serve");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'runner=loud'") && stderr.contains("--log"),
        "{stderr}"
    );
}

#[test]
fn sigterm_exits_0_and_leaves_no_partial_entry() {
    let dir = tempfile::tempdir().expect("dir");
    let mut served = serve(dir.path(), &["--log-format", "json"]);
    let token = token("octo/app");
    start_upload(&served.base, &token, "in-flight");
    assert_eq!(create(&served.base, &token, "in-flight").status, 409);
    // SAFETY: kill(2) on the child we spawned; no memory is involved.
    unsafe { libc::kill(served.child.id() as libc::pid_t, libc::SIGTERM) };
    let status = served.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    let lines: Vec<String> = served.log.try_iter().collect();
    let request = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "request" && l["status"] == 201)
        .unwrap_or_else(|| panic!("a JSON request line: {lines:?}"));
    for field in ["method", "route", "repo", "key", "status", "bytes", "ms"] {
        assert!(!request[field].is_null(), "{field} in {request}");
    }
    assert_eq!(request["repo"], "octo/app");
    assert_eq!(request["bytes"], 4096);
    // A refused request still says whose and which key.
    let conflict = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "request" && l["status"] == 409)
        .unwrap_or_else(|| panic!("a 409 request line: {lines:?}"));
    assert_eq!(
        (conflict["repo"].clone(), conflict["key"].clone()),
        (json!("octo/app"), json!("in-flight"))
    );
    assert!(
        conflict["error"]
            .as_str()
            .is_some_and(|e| e.contains("another job"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("aborted unfinished uploads")),
        "{lines:?}"
    );
    assert!(cache_cmd(dir.path(), &["list"]).contains("No cache entries"));
    // Restarted, the same key saves at once.
    let mut again = serve(dir.path(), &[]);
    assert_eq!(create(&again.base, &token, "in-flight").status, 200);
    again.child.kill().expect("kill");
    let _ = again.child.wait();
}

#[test]
fn kill_9_during_an_upload_leaves_nothing_to_repair() {
    let dir = tempfile::tempdir().expect("dir");
    let mut served = serve(dir.path(), &[]);
    let token = token("octo/app");
    start_upload(&served.base, &token, "killed");
    served.child.kill().expect("kill -9");
    let _ = served.child.wait();
    assert!(cache_cmd(dir.path(), &["list"]).contains("No cache entries"));
    // The restarted server reclaims the dead server's upload: the key saves at once.
    let mut again = serve(dir.path(), &[]);
    let created = create(&again.base, &token, "killed");
    assert_eq!(created.status, 200, "{}", created.text());
    let url = created.json()["signed_upload_url"]
        .as_str()
        .expect("url")
        .to_string();
    assert_eq!(
        http(
            "PUT",
            &url,
            &[("x-ms-blob-type", "BlockBlob")],
            Some(b"complete")
        )
        .status,
        201
    );
    let done = twirp(
        &again.base,
        &token,
        "FinalizeCacheEntryUpload",
        json!({"key": "killed", "version": version(9), "size_bytes": "8"}),
    );
    assert_eq!(done.status, 200, "{}", done.text());
    again.child.kill().expect("kill");
    let _ = again.child.wait();
    let verify = cache_cmd(dir.path(), &["verify", "--json"]);
    let report: Value = serde_json::from_str(&verify).expect("verify JSON");
    for field in ["corrupt_blobs", "orphan_blobs", "rows_without_blob"] {
        assert_eq!(
            report[field].as_array().map(Vec::len),
            Some(0),
            "{field}: {verify}"
        );
    }
    assert!(cache_cmd(dir.path(), &["list"]).contains("killed"));
}

#[test]
fn sigterm_during_an_upload_body_aborts_it_and_exits_0() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().expect("dir");
    let mut served = serve(dir.path(), &[]);
    let token = token("octo/app");
    let created = create(&served.base, &token, "mid-body");
    let url = created.json()["signed_upload_url"]
        .as_str()
        .expect("url")
        .to_string();
    // A body that never finishes: 1 MB announced, 10 bytes sent, the socket kept open.
    let path = url.trim_start_matches(&served.base).to_string();
    let mut socket =
        std::net::TcpStream::connect(served.base.trim_start_matches("http://")).expect("connect");
    write!(
        socket,
        "PUT {path} HTTP/1.1\r\nHost: x\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: 1000000\r\n\r\n0123456789"
    )
    .expect("send");
    socket.flush().expect("flush");
    // The request is in the handler once its bytes are being written.
    let staging = dir.path().join("staging-v1");
    while !upload_in_progress(&staging, dir.path()) {
        std::thread::yield_now();
    }
    // SAFETY: kill(2) on the child we spawned; no memory is involved.
    unsafe { libc::kill(served.child.id() as libc::pid_t, libc::SIGTERM) };
    let status = served.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
    drop(socket);
    assert_eq!(
        std::fs::read_dir(&staging).expect("staging").count(),
        0,
        "nothing staged is left"
    );
    assert!(cache_cmd(dir.path(), &["list"]).contains("No cache entries"));
}
