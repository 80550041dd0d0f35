//! Integration tests: the embedding API — events a run reports (stamped with job, step, stream
//! and time), the base environment of step processes, `ACT=true`, and [`CacheStep`]. Real processes, a real
//! store and real archives.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::cache::{Harness, MAIN};
use runner::cache::{Cache, CacheInputs, CacheOptions, CacheStep, PostOutcome, Restored};
use runner::clock::ManualClock;
use runner::exec::{
    ActionRegistry, BaseEnv, Direction, EventKind, LogLevel, Recorder, RunOptions, RunReport,
    Runner, Status, Stream,
};
use runner::store::Store;

/// 2023-11-14T22:13:20Z, the clock every event is stamped with.
const T0: i64 = 1_700_000_000_000;

/// Runs `workflow` in `workspace` with `registry`, recording every event.
fn run_with(
    workspace: &Path,
    workflow: &str,
    registry: ActionRegistry,
    base_env: BaseEnv,
) -> (RunReport, Arc<Recorder>) {
    let wf = runner::workflow::parse(Path::new("ci.yml"), workflow).expect("workflow parses");
    let events = Recorder::new();
    let options = RunOptions {
        workspace: workspace.to_path_buf(),
        events: events.clone(),
        clock: Arc::new(ManualClock::new(T0)),
        base_env,
        ..RunOptions::default()
    };
    let report = Runner::new(wf, options, registry).run().expect("run");
    (report, events)
}

fn run(workspace: &Path, workflow: &str) -> (RunReport, Arc<Recorder>) {
    run_with(
        workspace,
        workflow,
        ActionRegistry::new(),
        BaseEnv::default(),
    )
}

/// `(step, stream, line)` of every output line.
fn output_lines(events: &Recorder) -> Vec<(Option<String>, Stream, String)> {
    events
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Output { line, stream } => Some((e.step, stream, line)),
            _ => None,
        })
        .collect()
}

#[test]
fn events_carry_job_step_stream_and_time() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = r#"
on: push
jobs:
  build:
    runs-on: windows-latest
    steps:
      - id: hello
        run: |
          echo out
          echo err >&2
      - run: echo two
"#;
    let (report, events) = run(dir.path(), workflow);
    assert!(report.success(), "{report:?}");
    let lines = output_lines(&events);
    let hello = Some("hello".to_string());
    assert!(
        lines.contains(&(hello.clone(), Stream::Stdout, "out".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(hello, Stream::Stderr, "err".into())),
        "{lines:?}"
    );
    assert!(
        lines.contains(&(Some("2".into()), Stream::Stdout, "two".into())),
        "{lines:?}"
    );
    let all = events.events();
    assert!(
        all.iter().all(|e| e.at == T0),
        "every event is stamped by the clock"
    );
    assert!(
        all.iter().all(|e| e.job.as_deref() == Some("build")),
        "{all:?}"
    );
    // Job-level events name the job and no step; step events name their step.
    for e in &all {
        match &e.kind {
            EventKind::JobStarted { .. } | EventKind::JobFinished { .. } => {
                assert_eq!(e.step, None, "{e:?}")
            }
            EventKind::Warning { message } => {
                assert!(message.contains("windows-latest"), "{message}");
                assert_eq!(e.step, None);
            }
            EventKind::StepStarted { name } | EventKind::StepFinished { name, .. } => {
                let want = if name == "Run echo two" { "2" } else { "hello" };
                assert_eq!(e.step.as_deref(), Some(want), "{e:?}");
            }
            _ => {}
        }
    }
    // One flat JSON object per event, as `--json-events` writes it.
    let json = serde_json::to_value(
        all.iter()
            .find(|e| matches!(&e.kind, EventKind::Output { line, .. } if line == "err"))
            .expect("the err line"),
    )
    .expect("serialize");
    assert_eq!(
        json,
        serde_json::json!({"at": T0, "job": "build", "step": "hello",
            "event": "output", "line": "err", "stream": "stderr"})
    );
}

/// Bytes zstd cannot shrink, so the archive passes the progress threshold.
fn incompressible(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn cache_transfers_report_progress_as_events_of_their_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workspace = dir.path().join("ws");
    std::fs::create_dir_all(workspace.join("big")).expect("mkdir");
    std::fs::write(workspace.join("big/blob"), incompressible(10 << 20)).expect("write");
    let clock = ManualClock::new(T0);
    let store =
        Store::open(&dir.path().join("store"), None, Arc::new(clock.clone())).expect("open store");
    let cache = Arc::new(Cache::with_store(
        store,
        Arc::new(clock),
        CacheOptions::default(),
    ));
    let registry = || {
        let mut registry = ActionRegistry::new();
        runner::cache::register(&mut registry, cache.clone());
        registry
    };
    let workflow = r#"
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/cache@v4
        with:
          path: big
          key: big-1
"#;
    let progress = |events: &Recorder| -> Vec<(Option<String>, Direction, bool)> {
        events
            .events()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Progress { transfer } => {
                    Some((e.step, transfer.direction, transfer.done))
                }
                _ => None,
            })
            .collect()
    };
    let (report, events) = run_with(&workspace, workflow, registry(), BaseEnv::default());
    assert!(report.success(), "{report:?}");
    let saved = progress(&events);
    assert!(saved.len() >= 2, "{saved:?}");
    assert!(saved.iter().all(|(step, direction, _)| {
        step.as_deref() == Some("post:1") && *direction == Direction::Save
    }));
    assert_eq!(
        saved.iter().filter(|(_, _, done)| *done).count(),
        1,
        "{saved:?}"
    );

    std::fs::remove_dir_all(workspace.join("big")).expect("rm");
    let (report, events) = run_with(&workspace, workflow, registry(), BaseEnv::default());
    assert!(report.success(), "{report:?}");
    assert_eq!(
        report.jobs[0].steps[0]
            .outputs
            .get("cache-hit")
            .map(String::as_str),
        Some("true")
    );
    let restored = progress(&events);
    assert!(restored.len() >= 2, "{restored:?}");
    assert!(restored.iter().all(|(step, direction, _)| {
        step.as_deref() == Some("1") && *direction == Direction::Restore
    }));
    assert!(workspace.join("big/blob").is_file());
}

/// A variable of this process that a clean environment does not keep, if there is one.
fn inherited_only_variable() -> Option<(String, String)> {
    std::env::vars().find(|(k, v)| {
        !BaseEnv::CLEAN_NAMES.contains(&k.as_str())
            && !k.starts_with("GITHUB_")
            && !k.starts_with("RUNNER_")
            && !v.is_empty()
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// The value `name` has in a step, by the line the step prints.
fn step_sees(base_env: BaseEnv, name: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = format!(
        "on: push\njobs:\n  env:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo \"[${{{name}:-unset}}]\"\n"
    );
    let (report, events) = run_with(dir.path(), &workflow, ActionRegistry::new(), base_env);
    assert!(report.success(), "{report:?}");
    output_lines(&events)
        .into_iter()
        .find_map(|(_, _, line)| {
            line.strip_prefix('[')?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .expect("the step printed the value")
}

#[test]
fn the_base_environment_is_clean_by_default_and_inherited_or_explicit_on_request() {
    let Some((name, value)) = inherited_only_variable() else {
        eprintln!("skipped: this process has no variable outside the clean set to look for");
        return;
    };
    assert_eq!(
        step_sees(BaseEnv::default(), &name),
        "unset",
        "{name} leaked"
    );
    assert_eq!(step_sees(BaseEnv::Inherit, &name), value);
    let explicit = BaseEnv::Explicit(
        [
            (
                "PATH".to_string(),
                std::env::var("PATH").unwrap_or_default(),
            ),
            ("ONLY_THIS".to_string(), "yes".to_string()),
        ]
        .into(),
    );
    assert_eq!(step_sees(explicit.clone(), "ONLY_THIS"), "yes");
    assert_eq!(step_sees(explicit, &name), "unset");
    if std::env::var("HOME").is_ok() {
        assert_ne!(
            step_sees(BaseEnv::Clean, "HOME"),
            "unset",
            "a clean env keeps HOME"
        );
    }
}

#[test]
fn act_is_true_so_deploy_steps_guarded_by_it_do_not_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = r#"
on: push
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - run: echo "act=$ACT"
      - if: ${{ !env.ACT }}
        run: echo DEPLOYING TO PRODUCTION
"#;
    let (report, events) = run(dir.path(), workflow);
    let lines: Vec<String> = output_lines(&events)
        .into_iter()
        .map(|(_, _, l)| l)
        .collect();
    assert!(lines.contains(&"act=true".to_string()), "{lines:?}");
    assert!(!lines.iter().any(|l| l.contains("DEPLOYING")), "{lines:?}");
    assert_eq!(report.jobs[0].steps[1].conclusion, Status::Skipped);
}

/// `uses: actions/cache@v4` as one value: restore, then the post-job save, over a real store.
fn cache_step_restores_and_saves_with_the_actions_conditions(h: &Harness) {
    let ws = h.workspace();
    std::fs::create_dir_all(ws.join("deps")).expect("mkdir");
    std::fs::write(ws.join("deps/lib.txt"), "v1").expect("write");
    let job = h.job(MAIN);
    let inputs = |key: &str| CacheInputs {
        key: key.into(),
        paths: vec!["deps".into()],
        restore_keys: vec!["deps-".into()],
        ..CacheInputs::default()
    };
    let lines = Arc::new(Mutex::new(Vec::new()));
    let log = {
        let lines = lines.clone();
        move |_: LogLevel, line: &str| lines.lock().expect("log").push(line.to_string())
    };

    // A miss, then a failed job: the action's post-if (success()) keeps the save from running.
    let mut step = CacheStep::new(h.cache.clone(), job.clone(), inputs("deps-1"));
    let restored = step.restore().expect("restore");
    assert_eq!(
        restored,
        Restored {
            cache_hit: None,
            matched_key: None
        }
    );
    assert_eq!(step.post(Status::Failure), PostOutcome::Skipped);
    assert!(h.keys().is_empty());

    // A miss, then a successful job: saved.
    let mut step = CacheStep::new(h.cache.clone(), job.clone(), inputs("deps-1")).on_log(log);
    assert!(!step.restore().expect("restore").cache_hit());
    assert_eq!(step.post(Status::Success), PostOutcome::Saved);
    assert_eq!(h.keys(), vec!["deps-1".to_string()]);
    let logged = lines.lock().expect("log").clone();
    assert!(
        logged.contains(&"Cache saved with key: deps-1".to_string()),
        "{logged:?}"
    );

    // An exact hit restores the files and skips the save, as the action does.
    std::fs::remove_dir_all(ws.join("deps")).expect("rm");
    let mut step = CacheStep::new(h.cache.clone(), job.clone(), inputs("deps-1"));
    let restored = step.restore().expect("restore");
    assert!(restored.cache_hit());
    assert_eq!(restored.matched_key.as_deref(), Some("deps-1"));
    assert_eq!(
        std::fs::read_to_string(ws.join("deps/lib.txt")).expect("restored"),
        "v1"
    );
    assert_eq!(step.post(Status::Success), PostOutcome::Skipped);

    // A restore-key hit is partial, and the post step saves the new key.
    let mut step = CacheStep::new(h.cache.clone(), job.clone(), inputs("deps-2"));
    let restored = step.restore().expect("restore");
    assert_eq!(restored.cache_hit, Some(false));
    assert_eq!(restored.matched_key.as_deref(), Some("deps-1"));
    assert_eq!(step.post(Status::Success), PostOutcome::Saved);
    assert_eq!(h.keys(), vec!["deps-1".to_string(), "deps-2".to_string()]);

    // Validation fails the step, as on GitHub.
    let mut step = CacheStep::new(h.cache.clone(), job, inputs(""));
    let err = step.restore().expect_err("no key");
    assert_eq!(err.message, "Input required and not supplied: key");
}

crate::backend_matrix!(crate::cache::Harness: cache_step_restores_and_saves_with_the_actions_conditions);

#[allow(dead_code)]
#[path = "../../examples/embed_cache_step.rs"]
mod embed_cache_step;

#[allow(dead_code)]
#[path = "../../examples/embed_job.rs"]
mod embed_job;

#[test]
fn the_cache_step_example_misses_then_hits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ws, store) = (dir.path().join("ws"), dir.path().join("store"));
    std::fs::create_dir_all(&ws).expect("mkdir");
    let first = embed_cache_step::cache_step(&ws, &store).expect("first run");
    assert_eq!(first, "cache-hit=false matched-key= post=Saved");
    std::fs::remove_dir_all(ws.join("deps")).expect("rm");
    let second = embed_cache_step::cache_step(&ws, &store).expect("second run");
    assert_eq!(second, "cache-hit=true matched-key=deps-v1 post=Skipped");
    assert_eq!(
        std::fs::read_to_string(ws.join("deps/lib.txt")).expect("restored"),
        "built"
    );
}

#[test]
fn the_job_example_runs_a_workflow_with_its_cache_step() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (ws, store) = (dir.path().join("ws"), dir.path().join("store"));
    std::fs::create_dir_all(&ws).expect("mkdir");
    let workflow = dir.path().join("ci.yml");
    std::fs::write(
        &workflow,
        r#"
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - id: cache
        uses: actions/cache@v4
        with:
          path: out
          key: out-1
      - if: steps.cache.outputs.cache-hit != 'true'
        run: mkdir -p out && echo built > out/file && echo building
"#,
    )
    .expect("write workflow");
    let (ok, log) = embed_job::run_job(&workflow, &ws, &store).expect("first run");
    assert!(ok, "{log:?}");
    assert!(log.contains(&"build/2 | building".to_string()), "{log:?}");
    std::fs::remove_dir_all(ws.join("out")).expect("rm");
    let (ok, log) = embed_job::run_job(&workflow, &ws, &store).expect("second run");
    assert!(ok, "{log:?}");
    assert!(!log.iter().any(|l| l.ends_with("| building")), "{log:?}");
    assert!(
        log.contains(&"build/cache | Cache restored from key: out-1".to_string()),
        "{log:?}"
    );
}

/// Tokio-based runners move these into `spawn_blocking`.
#[test]
fn the_embedding_types_can_move_to_a_blocking_thread() {
    fn send<T: Send + 'static>() {}
    send::<Runner>();
    send::<CacheStep>();
    send::<RunOptions>();
}
