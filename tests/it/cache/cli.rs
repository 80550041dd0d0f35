//! `runner cache` as a process over a store the tests fill through the library.

use std::process::{Command, Output};

use runner::exec::LogLevel::Info;

use super::{FEATURE, Harness, MAIN};
use crate::support::{runner_bin, write_tree};

const SAVE: &str = "actions/cache/save@v4";
const RESTORE: &str = "actions/cache/restore@v4";

fn runner_cache(h: &Harness, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(runner_bin());
    cmd.arg("cache")
        .args(args)
        .current_dir(h.dir.path())
        .env("RUNNER_CACHE_DIR", h.store_dir())
        .env_remove("RUNNER_CACHE_DB")
        .env_remove("RUNNER_CACHE_TTL_DAYS")
        .env_remove("RUNNER_CACHE_MAX_SIZE")
        .stdin(std::process::Stdio::null());
    // Later settings win, so a test can point RUNNER_CACHE_DB at PostgreSQL.
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run runner cache")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(out)))
}

/// Three entries of different sizes: two on main (`deps-small`, `deps-big`), one on the feature
/// branch (`feat`, in between).
fn filled() -> Harness {
    let h = Harness::sqlite();
    let main = h.job(MAIN);
    write_tree(&h.workspace(), &[("deps/a", "small")]);
    h.main(SAVE, &main, &[("path", "deps"), ("key", "deps-small")])
        .ok()
        .expect_line(Info, "Cache saved with key: deps-small");
    h.clock.advance(60_000);
    let big: String = (0..50_000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    write_tree(&h.workspace(), &[("deps/b", &big)]);
    h.main(SAVE, &main, &[("path", "deps"), ("key", "deps-big")])
        .ok();
    h.clock.advance(60_000);
    std::fs::remove_dir_all(h.workspace().join("deps")).expect("remove deps");
    let medium: String = (0..5_000)
        .map(|i| char::from(b'a' + (i * 11 % 26) as u8))
        .collect();
    write_tree(&h.workspace(), &[("deps/c", &medium)]);
    h.main(SAVE, &h.job(FEATURE), &[("path", "deps"), ("key", "feat")])
        .ok();
    h.clock.advance(60_000);
    h.main(RESTORE, &main, &[("path", "deps"), ("key", "deps-small")])
        .ok();
    h.main(RESTORE, &main, &[("path", "deps"), ("key", "nothing")])
        .ok();
    h
}

/// The keys of a list of entries, or of a document's `entries`.
fn keys(value: &serde_json::Value) -> Vec<String> {
    value
        .get("entries")
        .unwrap_or(value)
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["key"].as_str().expect("key").to_string())
        .collect()
}

#[test]
fn list_filters_and_sorts() {
    let h = filled();
    let rows: &[(&[&str], &[&str])] = &[
        (&["list", "--json"], &["feat", "deps-big", "deps-small"]),
        (
            &["list", "--json", "--sort", "size"],
            &["deps-big", "feat", "deps-small"],
        ),
        (
            &["list", "--json", "--sort", "last-used"],
            &["deps-small", "feat", "deps-big"],
        ),
        (
            &["list", "--json", "--key", "DEPS-"],
            &["deps-big", "deps-small"],
        ),
        (&["list", "--json", "--ref", FEATURE], &["feat"]),
        (
            &["list", "--json", "-R", "octo/app", "--limit", "1"],
            &["feat"],
        ),
        (&["list", "--json", "-R", "other/repo"], &[]),
    ];
    for (args, expected) in rows {
        let out = runner_cache(&h, args, &[]);
        assert_eq!(keys(&json(&out)), *expected, "{args:?}");
    }
    let out = runner_cache(&h, &["list"], &[]);
    assert!(out.status.success());
    let text = stdout(&out);
    let header = text.lines().next().expect("header");
    assert!(
        header.starts_with("KEY") && header.contains("LAST USED"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[test]
fn show_and_delete_by_key_or_id() {
    let h = filled();
    let out = runner_cache(&h, &["show", "DEPS-SMALL", "--json"], &[]);
    let shown = json(&out);
    assert_eq!(keys(&shown), ["deps-small"]);
    let id = shown["entries"][0]["id"].as_str().expect("id").to_string();
    assert_eq!(shown["entries"][0]["ref"], MAIN);
    assert_eq!(shown["entries"][0]["paths"], serde_json::json!(["deps"]));
    let out = runner_cache(&h, &["show", &id], &[]);
    assert!(
        stdout(&out).contains("Key:         deps-small"),
        "{}",
        stdout(&out)
    );

    let out = runner_cache(&h, &["show", "missing"], &[]);
    assert_eq!(out.status.code(), Some(1));

    // Wrong ref: nothing to delete.
    let out = runner_cache(&h, &["delete", "deps-big", "--ref", FEATURE], &[]);
    assert_eq!(out.status.code(), Some(1));
    let out = runner_cache(&h, &["delete", "deps-big", "--ref", MAIN, "--json"], &[]);
    assert_eq!(json(&out)["deleted"], 1);
    let out = runner_cache(&h, &["delete", &id], &[]);
    assert!(out.status.success());
    assert_eq!(
        keys(&json(&runner_cache(&h, &["list", "--json"], &[]))),
        ["feat"]
    );
}

#[test]
fn clear_needs_confirmation() {
    let h = filled();
    let out = runner_cache(&h, &["clear"], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    assert_eq!(h.entry_count(), 3);
    let out = runner_cache(&h, &["clear", "--yes", "-R", "other/repo"], &[]);
    assert!(out.status.success());
    assert_eq!(h.entry_count(), 3);
    let out = runner_cache(&h, &["clear", "--yes", "-R", "octo/app", "--json"], &[]);
    assert_eq!(json(&out)["deleted"], 3);
    assert_eq!(h.entry_count(), 0);
}

#[test]
fn stats_counts_events() {
    let h = filled();
    let out = runner_cache(&h, &["stats", "--since", "5000w", "--json"], &[]);
    let stats = json(&out);
    assert_eq!(stats["entries"], 3);
    assert_eq!(stats["saves"], 3);
    assert_eq!(stats["hits_exact"], 1);
    assert_eq!(stats["misses"], 1);
    assert_eq!(stats["lookups"], 2);
    assert_eq!(stats["top_keys"][0]["key"], "deps-small");
    let small = h
        .cache
        .index()
        .list(&Default::default())
        .expect("list")
        .into_iter()
        .find(|e| e.key == "deps-small")
        .expect("entry");
    assert_eq!(stats["bytes_restored"], small.size_bytes);
    // The events happened at the test clock's time, long before the real last week.
    let out = runner_cache(&h, &["stats", "--json"], &[]);
    assert_eq!(json(&out)["lookups"], 0);
    let out = runner_cache(&h, &["stats", "--since", "5000w"], &[]);
    let text = stdout(&out);
    assert!(text.contains("Exact hits:   1 (50.0%)"), "{text}");
    let out = runner_cache(&h, &["stats", "--since", "soon"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn prune_applies_the_ttl() {
    let h = filled();
    // The entries were last used at the test clock's time, months before the real now.
    let out = runner_cache(&h, &["prune", "--dry-run", "--json"], &[]);
    let report = json(&out);
    assert_eq!(report["evicted"].as_array().expect("array").len(), 3);
    assert_eq!(h.entry_count(), 3);
    let out = runner_cache(&h, &["prune"], &[("RUNNER_CACHE_TTL_DAYS", "100000")]);
    assert!(
        stdout(&out).starts_with("Evicted 0 entries"),
        "{}",
        stdout(&out)
    );
    let out = runner_cache(&h, &["prune"], &[]);
    assert!(
        stdout(&out).starts_with("Evicted 3 entries"),
        "{}",
        stdout(&out)
    );
    assert_eq!(h.entry_count(), 0);
    let out = runner_cache(&h, &["prune"], &[("RUNNER_CACHE_MAX_SIZE", "lots")]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn verify_removes_rows_without_blobs() {
    let h = filled();
    std::fs::remove_file(h.blob_file("deps-big")).expect("remove blob");
    let out = runner_cache(&h, &["verify", "--dry-run", "--json"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(keys(&report["rows_without_blob"]), ["deps-big"]);
    assert_eq!(h.entry_count(), 3);
    let out = runner_cache(&h, &["verify"], &[]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("Rows without blob: 1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(h.entry_count(), 2);
    let out = runner_cache(&h, &["verify", "--json"], &[]);
    let report = json(&out);
    assert_eq!(report["rows_without_blob"], serde_json::json!([]));
}

/// The CLI reads a PostgreSQL index when `RUNNER_CACHE_DB` points at one.
#[test]
fn list_and_delete_on_postgres() {
    let Some(h) = Harness::postgres() else {
        return;
    };
    let main = h.job(MAIN);
    write_tree(&h.workspace(), &[("deps/a", "a")]);
    h.main(SAVE, &main, &[("path", "deps"), ("key", "pg-one")])
        .ok();
    h.main(
        SAVE,
        &h.job(FEATURE),
        &[("path", "deps"), ("key", "pg-two")],
    )
    .ok();
    let db = [("RUNNER_CACHE_DB", h.url.as_str())];
    let out = runner_cache(&h, &["list", "--json"], &db);
    assert_eq!(keys(&json(&out)), ["pg-two", "pg-one"]);
    let out = runner_cache(&h, &["delete", "PG-ONE", "--json"], &db);
    assert_eq!(json(&out)["deleted"], 1);
    let out = runner_cache(&h, &["stats", "--since", "5000w", "--json"], &db);
    let stats = json(&out);
    assert_eq!(stats["entries"], 1);
    assert_eq!(stats["saves"], 2);
}

/// The human output, with ids filtered.
#[test]
fn human_output_snapshots() {
    let h = filled();
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[id]",
    );
    settings.add_filter(r"[0-9a-f]{64}", "[digest]");
    // Archive sizes depend on file times inside the tar; the layout is what is checked here.
    settings.add_filter(r"\b\d+ B\b", "[n] B");
    settings.bind(|| {
        insta::assert_snapshot!("list", stdout(&runner_cache(&h, &["list"], &[])));
        insta::assert_snapshot!(
            "show",
            stdout(&runner_cache(&h, &["show", "deps-small"], &[]))
        );
        insta::assert_snapshot!(
            "stats",
            stdout(&runner_cache(&h, &["stats", "--since", "5000w"], &[]))
        );
    });
}

/// Without `--repository`, the current checkout's `origin` picks the repository, as in
/// `runner exec`.
#[test]
fn repository_defaults_to_the_origin_remote() {
    let h = filled();
    let other = h.job(MAIN);
    let other = runner::exec::JobInfo {
        repository: "someone/else".into(),
        ..other
    };
    write_tree(&h.workspace(), &[("deps/z", "z")]);
    h.main(SAVE, &other, &[("path", "deps"), ("key", "elsewhere")])
        .ok();
    let checkout = h.dir.path().join("checkout");
    std::fs::create_dir_all(&checkout).expect("mkdir");
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .arg("-C")
            .arg(&checkout)
            .args(args)
            .status()
            .expect("run git")
            .success();
        assert!(ok, "git {args:?}");
    };
    git(&["init", "-q"]);
    git(&[
        "remote",
        "add",
        "origin",
        "https://github.com/someone/else.git",
    ]);
    let mut cmd = Command::new(runner_bin());
    let out = cmd
        .args(["cache", "list", "--json"])
        .current_dir(&checkout)
        .env("RUNNER_CACHE_DIR", h.store_dir())
        .env_remove("RUNNER_CACHE_DB")
        .output()
        .expect("run runner cache");
    assert_eq!(keys(&json(&out)), ["elsewhere"]);
    // Outside a checkout: every repository.
    let out = runner_cache(&h, &["list", "--json"], &[]);
    assert_eq!(keys(&json(&out)).len(), 4);
}
