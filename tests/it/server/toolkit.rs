//! The unmodified `@actions/cache` client (Node) against the server, over v1 and over v2 (single
//! Put Blob, and Put Block + Put Block List past the Azure SDK's 128 MiB single-shot size).
//! Runs when `RUNNER_TEST_ACTIONS_CACHE` names a `node_modules` directory holding
//! `@actions/cache` (e.g. after `npm install @actions/cache@4` there) and `node` is on PATH.

use std::process::Command;

use super::Srv;

fn run_client(s: &Srv, modules: &str, v2: bool, key: &str, size: u64) -> String {
    let work = s.h.dir.path().join(format!("node-{key}"));
    std::fs::create_dir_all(&work).expect("work dir");
    let script = crate::support::repo_root().join("tests/it/server/toolkit_client.js");
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .args(["data", key, &size.to_string()])
        .current_dir(&work)
        .env("NODE_PATH", modules)
        .env("ACTIONS_RUNTIME_TOKEN", s.token())
        .env("RUNNER_TEMP", s.h.dir.path().join("node-tmp"))
        .env_remove("ACTIONS_CACHE_SERVICE_V2")
        .env_remove("GITHUB_SERVER_URL");
    if v2 {
        cmd.env("ACTIONS_RESULTS_URL", format!("{}/", s.base))
            .env("ACTIONS_CACHE_SERVICE_V2", "true");
    } else {
        cmd.env("ACTIONS_CACHE_URL", format!("{}/", s.base));
    }
    let out = cmd.output().expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_toolkit_client_saves_and_restores_over_v1_and_v2() {
    let Ok(modules) = std::env::var("RUNNER_TEST_ACTIONS_CACHE") else {
        eprintln!(
            "skipped: RUNNER_TEST_ACTIONS_CACHE (a node_modules with @actions/cache) is not set"
        );
        return;
    };
    let s = Srv::start();
    let rows = [
        (true, "v2-small", 1_000u64),
        (true, "v2-blocks", 150_000_000),
        (false, "v1-chunks", 80_000_000),
    ];
    for (v2, key, size) in rows {
        let out = run_client(&s, &modules, v2, key, size);
        let saved = out
            .lines()
            .find_map(|l| l.strip_prefix("saved "))
            .unwrap_or("");
        assert!(
            saved.parse::<i64>().is_ok_and(|id| id != -1),
            "{key}: {out}"
        );
        assert!(
            out.contains(&format!("restored {key} hello {key}")),
            "{key}: {out}"
        );
        assert!(
            out.contains("another job may be creating this cache"),
            "{key}: {out}"
        );
        assert!(out.contains("again -1"), "{key}: {out}");
    }
    assert_eq!(
        crate::support::committed_keys(s.h.cache.index()),
        ["v1-chunks", "v2-blocks", "v2-small"]
    );
}
