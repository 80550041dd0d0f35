//! The three cache actions, step by step, with GitHub's log lines and outputs.

use runner::exec::LogLevel::{Info, Warning};

use super::{DAY, FEATURE, Harness, MAIN, snapshot};
use crate::support::write_tree;

const CACHE: &str = "actions/cache@v4";
const RESTORE: &str = "actions/cache/restore@v4";
const SAVE: &str = "actions/cache/save@v4";

fn deps(h: &Harness, version: &str) {
    write_tree(
        &h.workspace(),
        &[
            ("deps/lib/a.txt", &format!("a {version}")),
            ("deps/lib/nested/b.bin", "bbbbbbbb"),
            ("deps/README", "readme"),
            ("src/main.rs", "fn main() {}"),
        ],
    );
}

fn remove(h: &Harness, rel: &str) {
    let path = h.workspace().join(rel);
    if path.exists() {
        std::fs::remove_dir_all(&path).expect("remove dir");
    }
}

fn miss_then_save_then_exact_hit(h: &Harness) {
    let job = h.job(MAIN);
    deps(h, "1");
    let inputs = [("path", "deps"), ("key", "deps-1")];

    let first = h.main(CACHE, &job, &inputs);
    first
        .ok()
        .expect_line(Info, "Cache not found for input keys: deps-1");
    assert_eq!(first.output("cache-hit"), None, "unset on a miss");
    assert_eq!(first.post_condition.as_deref(), Some("success()"));
    assert_eq!(
        first.state.get("CACHE_KEY").map(String::as_str),
        Some("deps-1")
    );
    assert!(!first.state.contains_key("CACHE_RESULT"));

    let saved = h.post(CACHE, &job, &inputs, &first);
    saved.ok().expect_line(Info, "Cache saved with key: deps-1");
    assert!(
        saved
            .lines(Info)
            .iter()
            .any(|l| l.starts_with("Cache Size: ~0 MB (")),
        "{:?}",
        saved.logs
    );
    assert_eq!(h.entry_count(), 1);

    let before = snapshot(&h.workspace().join("deps"));
    remove(h, "deps");
    let second = h.main(CACHE, &job, &inputs);
    second
        .ok()
        .expect_line(Info, "Cache hit for: deps-1")
        .expect_line(Info, "Cache restored successfully")
        .expect_line(Info, "Cache restored from key: deps-1");
    assert_eq!(second.output("cache-hit"), Some("true"));
    assert_eq!(snapshot(&h.workspace().join("deps")), before);

    let post = h.post(CACHE, &job, &inputs, &second);
    post.ok().expect_line(
        Info,
        "Cache hit occurred on the primary key deps-1, not saving cache.",
    );
    assert_eq!(h.entry_count(), 1);

    let stats = h.cache.index().stats(0, Some("octo/app")).expect("stats");
    use runner::store::index::EventKind;
    assert_eq!(stats.count(EventKind::Miss), 1);
    assert_eq!(stats.count(EventKind::Save), 1);
    assert_eq!(stats.count(EventKind::HitExact), 1);
    assert_eq!(stats.count(EventKind::Skip), 1);
    assert!(stats.bytes_saved > 0 && stats.bytes_restored == stats.bytes_saved);
}

fn keys_match_case_insensitively(h: &Harness) {
    let job = h.job(MAIN);
    deps(h, "1");
    h.main(SAVE, &job, &[("path", "deps"), ("key", "Linux-Deps-ABC")])
        .ok()
        .expect_line(Info, "Cache saved with key: Linux-Deps-ABC");
    remove(h, "deps");
    let step = h.main(CACHE, &job, &[("path", "deps"), ("key", "linux-deps-abc")]);
    step.ok()
        .expect_line(Info, "Cache restored from key: Linux-Deps-ABC");
    assert_eq!(step.output("cache-hit"), Some("true"));
    // The same key in another case is the same entry.
    h.main(SAVE, &job, &[("path", "deps"), ("key", "LINUX-DEPS-ABC")])
        .ok()
        .expect_line(
            Info,
            "Failed to save: Unable to reserve cache with key LINUX-DEPS-ABC, another job may be creating this cache.",
        );
}

fn restore_keys_choose_the_newest_match(h: &Harness) {
    let job = h.job(MAIN);
    for (i, key) in ["npm-aaa", "npm-bbb", "other-ccc"].iter().enumerate() {
        deps(h, key);
        h.main(SAVE, &job, &[("path", "deps"), ("key", key)]).ok();
        h.clock.advance(60_000 * (i as i64 + 1));
    }
    remove(h, "deps");
    let step = h.main(
        CACHE,
        &job,
        &[
            ("path", "deps"),
            ("key", "npm-zzz"),
            ("restore-keys", "nomatch-\n  npm-\n other-"),
        ],
    );
    step.ok()
        .expect_line(Info, "Cache hit for restore-key: npm-bbb")
        .expect_line(Info, "Cache restored from key: npm-bbb");
    assert_eq!(step.output("cache-hit"), Some("false"));
    assert_eq!(
        step.state.get("CACHE_RESULT").map(String::as_str),
        Some("npm-bbb")
    );
    let restored = std::fs::read_to_string(h.workspace().join("deps/lib/a.txt")).expect("read");
    assert_eq!(restored, "a npm-bbb");
    // A partial hit still saves under the primary key in the post step.
    deps(h, "zzz");
    h.post(CACHE, &job, &[("path", "deps"), ("key", "npm-zzz")], &step)
        .ok()
        .expect_line(Info, "Cache saved with key: npm-zzz");
}

fn primary_key_prefix_match_is_partial(h: &Harness) {
    let job = h.job(MAIN);
    deps(h, "long");
    h.main(SAVE, &job, &[("path", "deps"), ("key", "deps-linux-123")])
        .ok();
    remove(h, "deps");
    let step = h.main(CACHE, &job, &[("path", "deps"), ("key", "deps-linux")]);
    step.ok()
        .expect_line(Info, "Cache restored from key: deps-linux-123");
    assert_eq!(step.output("cache-hit"), Some("false"));
    assert!(h.workspace().join("deps/lib/a.txt").exists());
}

fn feature_branch_reads_main_but_not_the_reverse(h: &Harness) {
    let main = h.job(MAIN);
    let feature = h.job(FEATURE);
    deps(h, "main");
    h.main(SAVE, &main, &[("path", "deps"), ("key", "k-main")])
        .ok();
    deps(h, "feature");
    h.main(SAVE, &feature, &[("path", "deps"), ("key", "k-feature")])
        .ok();
    remove(h, "deps");

    let step = h.main(CACHE, &feature, &[("path", "deps"), ("key", "k-main")]);
    step.ok()
        .expect_line(Info, "Cache restored from key: k-main");
    assert_eq!(step.output("cache-hit"), Some("true"));
    // A save after that hit goes to the feature scope only, and is skipped as an exact hit.
    remove(h, "deps");
    let step = h.main(CACHE, &main, &[("path", "deps"), ("key", "k-feature")]);
    step.ok()
        .expect_line(Info, "Cache not found for input keys: k-feature");
    assert!(!h.workspace().join("deps").exists());

    // A pull request reads its base branch.
    let mut pr = h.job("refs/pull/7/merge");
    pr.base_ref = Some(FEATURE.into());
    let step = h.main(RESTORE, &pr, &[("path", "deps"), ("key", "k-feature")]);
    step.ok();
    assert_eq!(step.output("cache-matched-key"), Some("k-feature"));

    // The same key saved on main and on the feature branch are two entries.
    deps(h, "feature2");
    h.main(SAVE, &feature, &[("path", "deps"), ("key", "k-main")])
        .ok()
        .expect_line(Info, "Cache saved with key: k-main");
    let scopes: Vec<String> = h
        .cache
        .index()
        .list(&Default::default())
        .expect("list")
        .into_iter()
        .filter(|e| e.key == "k-main")
        .map(|e| e.scope)
        .collect();
    assert_eq!(scopes.len(), 2, "{scopes:?}");
}

fn entries_are_immutable(h: &Harness) {
    let job = h.job(MAIN);
    deps(h, "first");
    let first = h.main(CACHE, &job, &[("path", "deps"), ("key", "imm")]);
    h.post(CACHE, &job, &[("path", "deps"), ("key", "imm")], &first)
        .ok()
        .expect_line(Info, "Cache saved with key: imm");
    deps(h, "second");
    // A second job that missed (it started before the first saved) saves the same key.
    let second = h.post(CACHE, &job, &[("path", "deps"), ("key", "imm")], &first);
    second.ok().expect_line(
        Info,
        "Failed to save: Unable to reserve cache with key imm, another job may be creating this cache.",
    );
    assert!(
        !second
            .lines(Info)
            .iter()
            .any(|l| l.starts_with("Cache saved"))
    );
    assert!(second.lines(Warning).is_empty(), "{:?}", second.logs);
    // The save action reports the failed save as a warning.
    h.main(SAVE, &job, &[("path", "deps"), ("key", "imm")])
        .ok()
        .expect_line(Warning, "Cache save failed.");
    assert_eq!(h.entry_count(), 1);
    remove(h, "deps");
    h.main(RESTORE, &job, &[("path", "deps"), ("key", "imm")])
        .ok();
    let restored = std::fs::read_to_string(h.workspace().join("deps/lib/a.txt")).expect("read");
    assert_eq!(restored, "a first");
}

fn lookup_only_finds_without_downloading(h: &Harness) {
    let job = h.job(MAIN);
    deps(h, "1");
    h.main(SAVE, &job, &[("path", "deps"), ("key", "look-1")])
        .ok();
    remove(h, "deps");
    for (uses, key, hit) in [(CACHE, "look-1", "true"), (RESTORE, "look", "false")] {
        let step = h.main(
            uses,
            &job,
            &[("path", "deps"), ("key", key), ("lookup-only", "TRUE")],
        );
        step.ok()
            .expect_line(Info, "Lookup only - skipping download")
            .expect_line(Info, "Cache found and can be restored from key: look-1");
        assert_eq!(step.output("cache-hit"), Some(hit), "{uses}");
        assert!(!h.workspace().join("deps").exists(), "{uses} downloaded");
    }
}

fn fail_on_cache_miss_fails_the_step(h: &Harness) {
    let job = h.job(MAIN);
    for uses in [CACHE, RESTORE] {
        let step = h.main(
            uses,
            &job,
            &[
                ("path", "deps"),
                ("key", "absent"),
                ("restore-keys", "abs-"),
                ("fail-on-cache-miss", "true"),
            ],
        );
        let err = step.result.as_ref().expect_err("fails");
        assert_eq!(
            err.message,
            "Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: absent"
        );
        assert_eq!(step.output("cache-hit"), None);
    }
    // Any other value than `true` is false.
    h.main(
        CACHE,
        &job,
        &[
            ("path", "deps"),
            ("key", "absent"),
            ("fail-on-cache-miss", "yes"),
        ],
    )
    .ok();
}

fn restore_and_save_actions_split(h: &Harness) {
    let job = h.job(MAIN);
    deps(h, "1");
    let inputs = [
        ("path", "deps"),
        ("key", "split-1"),
        ("restore-keys", "split-"),
    ];
    let restore = h.main(RESTORE, &job, &inputs);
    restore.ok();
    assert_eq!(restore.output("cache-primary-key"), Some("split-1"));
    assert_eq!(restore.output("cache-matched-key"), None);
    assert_eq!(restore.output("cache-hit"), None);
    assert_eq!(restore.post_condition, None, "no post step");
    assert!(restore.state.is_empty());

    h.main(SAVE, &job, &[("path", "deps"), ("key", "split-1")])
        .ok()
        .expect_line(Info, "Cache saved with key: split-1");
    remove(h, "deps");
    let restore = h.main(RESTORE, &job, &inputs);
    restore.ok();
    assert_eq!(restore.output("cache-primary-key"), Some("split-1"));
    assert_eq!(restore.output("cache-matched-key"), Some("split-1"));
    assert_eq!(restore.output("cache-hit"), Some("true"));
    assert!(h.workspace().join("deps/README").exists());
}

fn exclusions_are_not_saved(h: &Harness) {
    let job = h.job(MAIN);
    let tree = [
        ("deps/keep/a", "a"),
        ("deps/skip/b", "b"),
        ("deps/c.log", "c"),
        ("deps/d.txt", "d"),
    ];
    // An exclusion removes what the include patterns match themselves. As in the toolkit
    // (actions/toolkit#713), excluding inside a matched directory excludes nothing: the
    // directory is archived whole.
    let rows: &[(&str, &[&str])] = &[
        ("deps/*\n! deps/skip\n!deps/**/*.log", &["d.txt", "keep/a"]),
        ("deps\n!deps/skip", &["c.log", "d.txt", "keep/a", "skip/b"]),
    ];
    for (i, (paths, expected)) in rows.iter().enumerate() {
        write_tree(&h.workspace(), &tree);
        let key = format!("excl-{i}");
        h.main(SAVE, &job, &[("path", paths), ("key", &key)]).ok();
        remove(h, "deps");
        h.main(RESTORE, &job, &[("path", paths), ("key", &key)])
            .ok();
        let files: Vec<String> = snapshot(&h.workspace().join("deps"))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(files, *expected, "{paths:?}");
        remove(h, "deps");
    }
}

fn home_paths_outside_the_workspace(h: &Harness) {
    let job = h.job(MAIN);
    write_tree(
        &h.home(),
        &[(".tool/cache/x", "x"), (".tool/cache/y/z", "z")],
    );
    let before = snapshot(&h.home().join(".tool"));
    h.main(SAVE, &job, &[("path", "~/.tool/cache"), ("key", "home")])
        .ok()
        .expect_line(Info, "Cache saved with key: home");
    std::fs::remove_dir_all(h.home().join(".tool")).expect("remove");
    let step = h.main(RESTORE, &job, &[("path", "~/.tool/cache"), ("key", "home")]);
    step.ok();
    assert_eq!(step.output("cache-hit"), Some("true"));
    assert_eq!(snapshot(&h.home().join(".tool")), before);
    // The version is computed from the line as written: `~/...` and its expansion differ.
    let expanded = h.home().join(".tool/cache").display().to_string();
    h.main(RESTORE, &job, &[("path", &expanded), ("key", "home")])
        .ok()
        .expect_line(Info, "Cache not found for input keys: home");
}

fn key_validation_errors(h: &Harness) {
    let job = h.job(MAIN);
    deps(h, "1");
    let long = "k".repeat(513);
    let eleven: String = (0..10).map(|i| format!("r{i}\n")).collect();
    let rows: Vec<(&str, String, String)> = vec![
        (
            "long",
            long.clone(),
            format!("Key Validation Error: {long} cannot be larger than 512 characters."),
        ),
        (
            "comma",
            "a,b".to_string(),
            "Key Validation Error: a,b cannot contain commas.".to_string(),
        ),
    ];
    for (name, key, message) in &rows {
        for uses in [CACHE, RESTORE] {
            let step = h.main(uses, &job, &[("path", "deps"), ("key", key)]);
            let err = step.result.as_ref().expect_err(name);
            assert_eq!(&err.message, message, "{name} {uses}");
        }
        let step = h.main(SAVE, &job, &[("path", "deps"), ("key", key)]);
        step.ok()
            .expect_line(Warning, message)
            .expect_line(Warning, "Cache save failed.");
    }
    let step = h.main(
        CACHE,
        &job,
        &[("path", "deps"), ("key", "k"), ("restore-keys", &eleven)],
    );
    assert_eq!(
        step.result.expect_err("eleven keys").message,
        "Key Validation Error: Keys are limited to a maximum of 10."
    );
    let step = h.main(
        CACHE,
        &job,
        &[("path", "deps"), ("key", "k"), ("restore-keys", "x,y")],
    );
    assert_eq!(
        step.result.expect_err("comma in restore key").message,
        "Key Validation Error: x,y cannot contain commas."
    );
    // In the post step, a bad key is a warning and the step succeeds.
    let first = h.main(CACHE, &job, &[("path", "deps"), ("key", "ok")]);
    let mut state = first;
    state.state.insert("CACHE_KEY".into(), "bad,key".into());
    h.post(CACHE, &job, &[("path", "deps"), ("key", "ok")], &state)
        .ok()
        .expect_line(
            Warning,
            "Key Validation Error: bad,key cannot contain commas.",
        );
    assert_eq!(h.entry_count(), 0);
}

fn missing_inputs_and_paths(h: &Harness) {
    let job = h.job(MAIN);
    let step = h.main(CACHE, &job, &[("path", "deps")]);
    assert_eq!(
        step.result.expect_err("no key").message,
        "Input required and not supplied: key"
    );
    let step = h.main(CACHE, &job, &[("path", " \n "), ("key", "k")]);
    assert_eq!(
        step.result.expect_err("no path").message,
        "Input required and not supplied: path"
    );
    let step = h.main(SAVE, &job, &[("path", "nothing/here"), ("key", "k")]);
    step.ok()
        .expect_line(
            Warning,
            "Path Validation Error: Path(s) specified in the action for caching do(es) not exist, hence no cache is being saved.",
        )
        .expect_line(Warning, "Cache save failed.");
    h.main(SAVE, &job, &[("path", "deps")])
        .ok()
        .expect_line(Warning, "Key is not specified.");
    // No ref: the action refuses to work, with a warning.
    let mut detached = h.job("");
    detached.git_ref.clear();
    h.main(CACHE, &detached, &[("path", "deps"), ("key", "k")])
        .ok()
        .expect_line(
            Warning,
            "Event Validation Error: The event type  is not supported because it's not tied to a branch or tag ref.",
        );
    // Deprecated and no-op inputs are accepted.
    let step = h.main(
        CACHE,
        &job,
        &[
            ("path", "deps"),
            ("key", "k"),
            ("save-always", "true"),
            ("upload-chunk-size", "1024"),
            ("enableCrossOsArchive", "true"),
        ],
    );
    step.ok();
    assert!(
        step.lines(Warning)
            .iter()
            .any(|l| l.starts_with("Input 'save-always' has been deprecated with message: ")),
        "{:?}",
        step.logs
    );
}

fn corrupt_or_missing_blob_is_a_miss(h: &Harness) {
    let job = h.job(MAIN);
    deps(h, "1");
    h.main(SAVE, &job, &[("path", "deps"), ("key", "bad")]).ok();
    let blob = h.blob_file("bad");
    let mut bytes = std::fs::read(&blob).expect("read blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, &bytes).expect("corrupt blob");
    remove(h, "deps");

    let step = h.main(CACHE, &job, &[("path", "deps"), ("key", "bad")]);
    step.ok()
        .expect_line(Info, "Cache not found for input keys: bad");
    let warnings = step.lines(Warning);
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("Failed to restore: ")),
        "{:?}",
        step.logs
    );
    assert_eq!(step.output("cache-hit"), None);
    assert!(!h.workspace().join("deps").exists(), "half-restored tree");
    let leftovers: Vec<_> = std::fs::read_dir(h.workspace())
        .expect("read ws")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, ["src"], "staging left behind");

    // The entry is kept but marked broken, so the post step can replace it with a good one.
    assert_eq!((h.entry_count(), h.live_count()), (1, 0));
    deps(h, "2");
    h.post(CACHE, &job, &[("path", "deps"), ("key", "bad")], &step)
        .ok()
        .expect_line(Info, "Cache saved with key: bad");

    let blob = h.blob_file("bad");
    std::fs::remove_file(&blob).expect("remove blob");
    remove(h, "deps");
    let step = h.main(RESTORE, &job, &[("path", "deps"), ("key", "bad")]);
    step.ok()
        .expect_line(Info, "Cache not found for input keys: bad");
    assert!(
        step.lines(Warning)
            .iter()
            .any(|w| w.starts_with("Failed to restore: "))
    );
    assert_eq!(h.live_count(), 0, "a missing blob marks its entry broken");
    let stats = h.cache.index().stats(0, None).expect("stats");
    assert_eq!(stats.count(runner::store::index::EventKind::Error), 2);
}

fn concurrent_saves_make_one_entry_per_key(h: &Harness) {
    let job = h.job(MAIN);
    deps(h, "1");
    let saved = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..6 {
            let cache = h.reopen();
            let job = job.clone();
            let saved = &saved;
            s.spawn(move || {
                let key = if i % 2 == 0 {
                    "same".to_string()
                } else {
                    format!("own-{i}")
                };
                let mut lines = Vec::new();
                let mut log = |_: runner::exec::LogLevel, l: &str| lines.push(l.to_string());
                let request = runner::cache::SaveRequest {
                    scope: runner::cache::Scope {
                        repository: job.repository.clone(),
                        git_ref: job.git_ref.clone(),
                        base_ref: None,
                        default_branch: None,
                    },
                    location: runner::cache::Location {
                        workspace: job.workspace.clone(),
                        home: job.home.clone(),
                        windows: false,
                    },
                    paths: vec!["deps".into()],
                    key,
                    enable_cross_os_archive: false,
                    run_id: format!("{i}"),
                    ..Default::default()
                };
                if let Ok(runner::cache::SaveOutcome::Saved(_)) = cache.save(&request, &mut log) {
                    saved.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    // One save of `same` wins; the three `own-*` keys all save.
    assert_eq!(saved.load(std::sync::atomic::Ordering::SeqCst), 4);
    assert_eq!(h.entry_count(), 4);
    let report = h.cache.verify(true).expect("verify");
    assert!(report.orphan_blobs.is_empty() && report.rows_without_blob.is_empty());
}

fn eviction_by_age_after_save(h: &Harness) {
    let job = h.job(MAIN);
    deps(h, "old");
    h.main(SAVE, &job, &[("path", "deps"), ("key", "old")]).ok();
    h.clock.advance(3 * DAY);
    deps(h, "used");
    h.main(SAVE, &job, &[("path", "deps"), ("key", "used")])
        .ok();
    h.clock.advance(3 * DAY);
    // Restoring `used` refreshes its last use.
    h.main(RESTORE, &job, &[("path", "deps"), ("key", "used")])
        .ok();
    h.clock.advance(2 * DAY);
    deps(h, "new");
    h.main(SAVE, &job, &[("path", "deps"), ("key", "new")]).ok();
    let keys = h.keys();
    assert_eq!(
        keys,
        ["new", "used"],
        "8 days unused: evicted at the next save"
    );
}

crate::backend_matrix!(crate::cache::Harness:
    miss_then_save_then_exact_hit,
    keys_match_case_insensitively,
    restore_keys_choose_the_newest_match,
    primary_key_prefix_match_is_partial,
    feature_branch_reads_main_but_not_the_reverse,
    entries_are_immutable,
    lookup_only_finds_without_downloading,
    fail_on_cache_miss_fails_the_step,
    restore_and_save_actions_split,
    exclusions_are_not_saved,
    home_paths_outside_the_workspace,
    key_validation_errors,
    missing_inputs_and_paths,
    corrupt_or_missing_blob_is_a_miss,
    concurrent_saves_make_one_entry_per_key,
    eviction_by_age_after_save,
);

/// A store that cannot be opened turns cache steps into warnings; validation still fails.
#[test]
fn unavailable_store_degrades_to_warnings() {
    use std::sync::Arc;

    use runner::cache::{CacheHandle, CacheOptions, register_handle};

    let h = Harness::sqlite();
    let dir = h.store_dir();
    let clock = h.clock.clone();
    let handle = CacheHandle::lazy(move || {
        let store =
            runner::store::Store::open(&dir, Some("mysql://nowhere/db"), Arc::new(clock.clone()))?;
        Ok(runner::cache::Cache::with_store(
            store,
            Arc::new(clock.clone()),
            CacheOptions::default(),
        ))
    });
    let mut registry = runner::exec::ActionRegistry::new();
    register_handle(&mut registry, Arc::new(handle));
    let h = Harness { registry, ..h };
    let job = h.job(MAIN);
    deps(&h, "1");
    let step = h.main(CACHE, &job, &[("path", "deps"), ("key", "k")]);
    step.ok()
        .expect_line(Info, "Cache not found for input keys: k");
    let warning = step.lines(Warning).join("\n");
    assert!(
        warning.starts_with("Failed to restore: cannot open the cache store: ")
            && warning.contains("mysql://nowhere/db"),
        "{warning}"
    );
    let post = h.post(CACHE, &job, &[("path", "deps"), ("key", "k")], &step);
    post.ok();
    assert!(post.lines(Warning)[0].starts_with("Failed to save: cannot open the cache store: "));
    h.main(SAVE, &job, &[("path", "deps"), ("key", "k")])
        .ok()
        .expect_line(Warning, "Cache save failed.");
    let step = h.main(CACHE, &job, &[("path", "deps"), ("key", "a,b")]);
    assert_eq!(
        step.result.expect_err("validation").message,
        "Key Validation Error: a,b cannot contain commas."
    );
    let step = h.main(
        RESTORE,
        &job,
        &[
            ("path", "deps"),
            ("key", "k"),
            ("fail-on-cache-miss", "true"),
        ],
    );
    assert!(step.result.is_err());
}

/// On Windows, the version carries `windows-only` unless `enableCrossOsArchive` is set.
#[test]
fn windows_versions_need_cross_os_archive_to_be_shared() {
    let h = Harness::sqlite();
    let linux = h.job(MAIN);
    let mut windows = h.job(MAIN);
    windows.runner_os = "Windows".into();
    deps(&h, "1");
    h.main(SAVE, &linux, &[("path", "deps"), ("key", "x")]).ok();
    h.main(SAVE, &windows, &[("path", "deps"), ("key", "x")])
        .ok()
        .expect_line(Info, "Cache saved with key: x");
    h.main(SAVE, &windows, &[("path", "deps"), ("key", "x"), ("enableCrossOsArchive", "true")])
        .ok()
        .expect_line(
            Info,
            "Failed to save: Unable to reserve cache with key x, another job may be creating this cache.",
        );
    let mut versions: Vec<String> = h
        .cache
        .index()
        .list(&Default::default())
        .expect("list")
        .into_iter()
        .map(|e| e.version)
        .collect();
    versions.sort();
    let paths = vec!["deps".to_string()];
    let mut expected = vec![
        runner::cache::cache_version(&paths, runner::archive::Compression::Zstd, false, false),
        runner::cache::cache_version(&paths, runner::archive::Compression::Zstd, true, false),
    ];
    expected.sort();
    assert_eq!(versions, expected);
}
