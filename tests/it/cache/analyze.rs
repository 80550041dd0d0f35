//! `runner cache analyze` over stores built by real `runner exec` runs of the fixture workflows
//! in tests/fixtures/analyze/: each finding appears, with the numbers the recorded events give.

use std::path::PathBuf;
use std::sync::Arc;

use runner::clock::SystemClock;
use runner::store::index::{DetailedEvent, EventKind, Index};
use serde_json::Value;

use crate::support::{PgSchema, RunOutput, repo_root, run_runner_env};

const REPO: &str = "octo/app";

/// A workspace holding one fixture workflow, and its store (SQLite, or a PostgreSQL schema).
struct Project {
    dir: tempfile::TempDir,
    workflow: &'static str,
    env: Vec<(&'static str, String)>,
    pg: Option<PgSchema>,
}

impl Project {
    fn new(workflow: &'static str, env: &[(&'static str, &str)], pg: Option<PgSchema>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = repo_root().join("tests/fixtures/analyze").join(workflow);
        std::fs::copy(&source, dir.path().join(workflow))
            .unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        let mut env: Vec<(&'static str, String)> =
            env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        if let Some(pg) = &pg {
            env.push(("RUNNER_CACHE_DB", pg.url()));
        }
        Self {
            dir,
            workflow,
            env,
            pg,
        }
    }

    fn runner(&self, args: &[&str], extra: &[(&str, &str)]) -> RunOutput {
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        env.extend_from_slice(extra);
        let out = run_runner_env(self.dir.path(), args, &env);
        assert_eq!(
            out.code, 0,
            "runner {args:?}\n{}\n{}",
            out.stdout, out.stderr
        );
        out
    }

    fn exec(&self, run_number: &str) {
        self.runner(
            &[
                "exec",
                self.workflow,
                "--repository",
                REPO,
                "--ref",
                "refs/heads/main",
                "--run-number",
                run_number,
            ],
            &[],
        );
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.runner(args, &[]);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}\n{}", out.stdout))
    }

    fn analyze(&self) -> Value {
        let report = self.json(&["cache", "analyze", "--json", "-R", REPO]);
        assert_eq!(report["schema"], "runner.cache.analyze/1", "{report:#}");
        report
    }

    /// The events the runs recorded, read through the library.
    fn events(&self) -> Vec<DetailedEvent> {
        let url = match &self.pg {
            Some(pg) => pg.url(),
            None => format!(
                "sqlite://{}",
                self.store_dir().join("index.sqlite").display()
            ),
        };
        let index = Index::open(&url, Arc::new(SystemClock)).expect("open the index");
        index.detailed_events(0, Some(REPO)).expect("events")
    }

    fn store_dir(&self) -> PathBuf {
        self.dir.path().join(".runner-cache")
    }
}

/// The findings of `kind`.
fn findings<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

fn kinds(report: &Value) -> Vec<String> {
    let mut kinds: Vec<String> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["kind"].as_str().unwrap_or_default().to_string())
        .collect();
    kinds.sort();
    kinds
}

fn bytes_of(events: &[DetailedEvent], kind: EventKind, key: &str) -> u64 {
    events
        .iter()
        .filter(|e| e.event.event.kind == kind && e.event.event.key == key)
        .map(|e| e.event.event.bytes.unwrap_or(0))
        .sum()
}

/// Three runs of ci.yml: a key holding the run number (and its rolling variant with a restore
/// key), a stable key with a mistyped restore key, and the time the stable key's restores save.
fn keys_rates_and_time_saved(pg: Option<PgSchema>) {
    let project = Project::new("ci.yml", &[], pg);
    for run in ["1", "2", "3"] {
        project.exec(run);
    }
    let report = project.analyze();

    // 3 jobs x 3 runs: deps misses 3 times, index misses once then hits its restore key,
    // tools misses once then hits exactly.
    let totals = &report["totals"];
    assert_eq!(
        [
            &totals["lookups"],
            &totals["hits_exact"],
            &totals["hits_partial"],
            &totals["misses"]
        ],
        [9, 2, 2, 5],
        "{report:#}"
    );
    // `runner cache stats` reads the same events, so the numbers agree.
    let stats = project.json(&["cache", "stats", "--json", "-R", REPO]);
    for (ours, theirs) in [
        ("lookups", "lookups"),
        ("hits_exact", "hits_exact"),
        ("hits_partial", "hits_partial"),
        ("misses", "misses"),
        ("bytes_restored", "bytes_restored"),
        ("bytes_saved", "bytes_saved"),
    ] {
        assert_eq!(totals[ours], stats[theirs], "{ours}: {stats:#}");
    }

    let prefixes: Vec<(String, u64, u64, u64, u64)> = report["prefixes"]
        .as_array()
        .expect("prefixes")
        .iter()
        .map(|p| {
            (
                p["prefix"].as_str().unwrap_or_default().to_string(),
                p["lookups"].as_u64().unwrap_or(99),
                p["hits_exact"].as_u64().unwrap_or(99),
                p["hits_partial"].as_u64().unwrap_or(99),
                p["misses"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(
        prefixes,
        vec![
            ("deps".to_string(), 3, 0, 0, 3),
            ("index".to_string(), 3, 0, 2, 1),
            ("tools".to_string(), 3, 2, 0, 1),
        ]
    );
    let levels: Vec<(Value, Value, Value, Value)> = report["levels"]
        .as_array()
        .expect("levels")
        .iter()
        .map(|l| {
            (
                l["level"].clone(),
                l["label"].clone(),
                l["exact_matches"].clone(),
                l["prefix_matches"].clone(),
            )
        })
        .collect();
    assert_eq!(
        levels,
        vec![
            (0.into(), "key".into(), 2.into(), 0.into()),
            (1.into(), "restore-keys[1]".into(), 0.into(), 2.into()),
        ]
    );

    assert_eq!(
        kinds(&report),
        [
            "restore_key_never_matches",
            "time_saved",
            "volatile_key",
            "volatile_key"
        ],
        "{report:#}"
    );
    let volatile = findings(&report, "volatile_key");
    let deps = volatile
        .iter()
        .find(|f| f["shape"] == "deps-{n}")
        .unwrap_or_else(|| panic!("no deps-{{n}} finding: {report:#}"));
    assert_eq!(deps["part"], "run_number");
    assert_eq!(deps["keys_saved"], 3);
    assert_eq!(deps["partial_hits"], 0);
    assert_eq!(deps["severity"], "warning");
    assert_eq!(
        deps["examples"],
        serde_json::json!(["deps-1", "deps-2", "deps-3"])
    );
    let recommendation = deps["recommendation"].as_str().unwrap_or_default();
    assert!(
        recommendation.contains("run number") && recommendation.contains("restore-keys: deps-"),
        "{recommendation}"
    );
    let rolling = volatile
        .iter()
        .find(|f| f["shape"] == "index-{n}")
        .unwrap_or_else(|| panic!("no index-{{n}} finding: {report:#}"));
    assert_eq!(
        (
            &rolling["keys_saved"],
            &rolling["partial_hits"],
            &rolling["severity"]
        ),
        (&3.into(), &2.into(), &"info".into())
    );

    let typo = findings(&report, "restore_key_never_matches");
    assert_eq!(typo[0]["restore_key"], "tools-v0-");
    assert_eq!(typo[0]["tried"], 1);
    assert_eq!(typo[0]["closest_saved_key"], "tools-v1");
    let recommendation = typo[0]["recommendation"].as_str().unwrap_or_default();
    assert!(recommendation.contains("`tools-`"), "{recommendation}");

    // Time saved: the miss run's steps (with a `sleep 1`) against the two exact restores, as
    // the events recorded them.
    let events = project.events();
    let steps: Vec<u64> = events
        .iter()
        .filter(|e| e.event.event.kind == EventKind::Save && e.event.event.key == "tools-v1")
        .filter_map(|e| e.detail.steps_ms)
        .collect();
    assert_eq!(
        steps.len(),
        1,
        "one save after the miss carries its steps time"
    );
    assert!(steps[0] >= 1000, "the steps slept a second: {steps:?}");
    let restores: Vec<i64> = events
        .iter()
        .filter(|e| e.event.event.kind == EventKind::HitExact)
        .map(|e| e.event.event.duration_ms.unwrap_or(0) as i64)
        .collect();
    assert_eq!(restores.len(), 2);
    let time = findings(&report, "time_saved");
    assert_eq!(time[0]["prefix"], "tools");
    assert_eq!(time[0]["hits"], 2);
    assert_eq!(time[0]["mean_miss_steps_ms"], steps[0]);
    assert_eq!(
        time[0]["saved_ms"],
        2 * steps[0] as i64 - restores.iter().sum::<i64>()
    );

    let text = project
        .runner(&["cache", "analyze", "-R", REPO], &[])
        .stdout;
    assert!(
        text.contains("Findings (4):")
            && text.contains("deps-{n}")
            && text.contains("-> ")
            && text.contains("restore-keys[1]"),
        "{text}"
    );
}

/// Runs each scenario on SQLite and, when configured, on PostgreSQL.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(None);
                }
                #[test]
                fn postgres() {
                    if let Some(pg) = crate::support::PgSchema::create() {
                        super::$name(Some(pg));
                    }
                }
            }
        )*
    };
}

on_both_backends!(
    keys_rates_and_time_saved,
    size_evictions_before_restore_and_the_budget_needed,
    duplicate_content_and_keys_that_never_hit,
);

/// budget.yml saves two 40 KB entries under a 60K budget: the first is evicted by size before
/// any restore, and the budget that would have kept it is both entries' size.
fn size_evictions_before_restore_and_the_budget_needed(pg: Option<PgSchema>) {
    let project = Project::new("budget.yml", &[("RUNNER_CACHE_MAX_SIZE", "60K")], pg);
    project.exec("1");
    let report = project.analyze();
    assert_eq!(kinds(&report), ["evicted_before_restore"], "{report:#}");
    let events = project.events();
    let a = bytes_of(&events, EventKind::Save, "big-a");
    let b = bytes_of(&events, EventKind::Save, "big-b");
    assert!(a > 40_000 && b > 40_000, "{a} {b}");
    let finding = findings(&report, "evicted_before_restore")[0];
    assert_eq!(finding["keys"], serde_json::json!(["big-a"]));
    assert_eq!(finding["evictions"], 1);
    assert_eq!(finding["bytes"], a);
    assert_eq!(finding["budget_bytes"], 60 * 1024);
    assert_eq!(finding["budget_needed_bytes"], a + b);
    let setting = runner::cache::analyze::budget_setting(a + b);
    let recommendation = finding["recommendation"].as_str().unwrap_or_default();
    assert!(
        recommendation.contains(&format!("RUNNER_CACHE_MAX_SIZE={setting}")),
        "{recommendation}"
    );
}

/// store.yml saves one tree under two keys (one archive, stored once) and an entry nothing
/// restores; after everything expires (TTL 0), the entries never restored are reported.
fn duplicate_content_and_keys_that_never_hit(pg: Option<PgSchema>) {
    let project = Project::new("store.yml", &[], pg);
    project.exec("1");
    let report = project.analyze();
    assert_eq!(kinds(&report), ["duplicate_content"], "{report:#}");
    let events = project.events();
    let size = bytes_of(&events, EventKind::Save, "lint-a");
    assert_eq!(size, bytes_of(&events, EventKind::Save, "lint-b"));
    let dupe = findings(&report, "duplicate_content")[0];
    assert_eq!(dupe["keys"], serde_json::json!(["lint-a", "lint-b"]));
    assert_eq!(dupe["size_bytes"], size);
    assert_eq!(dupe["dedup_saved_bytes"], size);

    project.runner(&["cache", "prune"], &[("RUNNER_CACHE_TTL_DAYS", "0")]);
    let report = project.analyze();
    assert_eq!(kinds(&report), ["never_hit", "never_hit"], "{report:#}");
    let never: Vec<(Value, Value, Value)> = findings(&report, "never_hit")
        .iter()
        .map(|f| (f["prefix"].clone(), f["keys"].clone(), f["bytes"].clone()))
        .collect();
    let orphan = bytes_of(&project.events(), EventKind::Save, "orphan-x");
    assert_eq!(
        never,
        vec![
            ("lint".into(), serde_json::json!(["lint-b"]), size.into()),
            (
                "orphan".into(),
                serde_json::json!(["orphan-x"]),
                orphan.into()
            ),
        ]
    );
}

/// A store written by schema version 2 (before events had details) is upgraded keeping its
/// events; analyze counts them, with their restore level unknown.
#[test]
fn version_2_events_are_kept_and_analyzed() {
    use diesel::Connection as _;
    use diesel::connection::SimpleConnection as _;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("index.sqlite");
    let v2 = std::fs::read_to_string(repo_root().join("tests/it/store/schema_v2.sql"))
        .expect("schema_v2.sql");
    let mut conn =
        diesel::SqliteConnection::establish(&path.display().to_string()).expect("open sqlite");
    conn.batch_execute(&format!(
        "CREATE TABLE schema_migrations (version BIGINT NOT NULL PRIMARY KEY, \
         applied_at BIGINT NOT NULL); INSERT INTO schema_migrations VALUES (2, 0); {v2}; \
         INSERT INTO cache_events VALUES ('e1', 10, '{REPO}', 'refs/heads/main', 'save', \
         'npm-linux-1', NULL, 100, 5, NULL); \
         INSERT INTO cache_events VALUES ('e2', 20, '{REPO}', 'refs/heads/main', 'hit_partial', \
         'npm-linux-2', 'npm-linux-1', 100, 3, NULL); \
         INSERT INTO cache_events VALUES ('e3', 30, '{REPO}', 'refs/heads/main', 'miss', \
         'npm-linux-3', NULL, 0, 1, NULL);"
    ))
    .expect("write a version 2 store");
    drop(conn);
    let url = format!("sqlite://{}", path.display());
    let store = runner::store::Store::open(dir.path(), Some(&url), Arc::new(SystemClock))
        .expect("open and upgrade the store");
    let events = store.index().detailed_events(0, None).expect("events");
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.detail == Default::default()));
    let report = runner::cache::analyze::analyze(&store, &Default::default()).expect("analyze");
    assert_eq!(
        (
            report.totals.lookups,
            report.totals.hits_partial,
            report.totals.misses
        ),
        (2, 1, 1)
    );
    let levels: Vec<(Option<u32>, &str, u64)> = report
        .levels
        .iter()
        .map(|l| (l.level, l.label.as_str(), l.prefix_matches))
        .collect();
    assert_eq!(levels, vec![(None, "unknown", 1)]);
    assert_eq!(report.prefixes[0].prefix, "npm-linux");
}

/// The lookups `runner serve` answers (`Cache::lookup_entry`) record the restore keys asked
/// for and the level that served the hit.
fn server_lookups_record_restore_keys_and_level(h: &super::Harness) {
    crate::support::write_tree(&h.workspace(), &[("deps/a", "a")]);
    let job = h.job(super::MAIN);
    h.main(
        "actions/cache/save@v4",
        &job,
        &[("path", "deps"), ("key", "deps-linux-1")],
    )
    .ok();
    let version = h.cache.index().list(&Default::default()).expect("list")[0]
        .version
        .clone();
    let scope = runner::cache::Scope {
        repository: job.repository.clone(),
        git_ref: job.git_ref.clone(),
        base_ref: None,
        default_branch: None,
    };
    let keys: Vec<String> = ["deps-linux-2", "deps-mac-", "deps-"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    let mut log = |_: runner::exec::LogLevel, _: &str| {};
    let hit = h
        .cache
        .lookup_entry(&scope, &keys, &version, &mut log)
        .expect("lookup")
        .expect("a hit on the second restore key");
    assert_eq!(hit.matched_key, "deps-linux-1");
    let events = h.cache.index().detailed_events(0, None).expect("events");
    let detail = events
        .iter()
        .find(|e| e.event.event.kind == EventKind::HitPartial)
        .map(|e| e.detail.clone());
    assert_eq!(
        detail,
        Some(runner::store::index::EventDetail {
            restore_keys: vec!["deps-mac-".into(), "deps-".into()],
            level: Some(2),
            steps_ms: None,
        })
    );
}

crate::backend_matrix!(crate::cache::Harness: server_lookups_record_restore_keys_and_level);
