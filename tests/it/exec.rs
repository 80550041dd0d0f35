//! Integration tests: exec. The fixture harness runs every `fixtures/<case>/` through the real
//! `runner` binary, one test per case (`fixture::<case>`); adding a case is a directory and a
//! line in `fixtures!`.
//!
//! A case is a directory with `workflow.yml`, the files the workflow needs, and `expect.yml`:
//!
//! ```yaml
//! args: [--job, build]         # extra arguments to `runner exec workflow.yml --json`
//! env: {KEY: value}            # extra environment for the runner process
//! before: "shell commands"     # run in the workspace before this run (sh -c)
//! git: {branch: feature, remote: https://github.com/o/r.git}  # make the workspace a checkout
//! exit: 1                      # expected exit code (default 0)
//! stdout: [substring, ...]     # must appear (stdout is the JSON report unless json: false)
//! stderr: [substring, ...]     # must appear in the log
//! not_output: [text, ...]      # must appear in neither stream (masking)
//! job_names: [a, "b (x, 1)"]   # exactly the job runs, in order
//! jobs:                        # by display name (or id when unique)
//!   build:
//!     result: failure
//!     outputs: {k: v}
//!     steps:                   # by step id, else by display name
//!       first: {outcome: failure, conclusion: success, outputs: {k: v}}
//!     step_count: 3
//! files: {path: "exact contents"}      # relative to the workspace, after the run
//! files_contain: {path: [substring]}
//! absent: [path]
//! runs: [ {...}, {...} ]       # instead of the keys above: several runs of the same workspace,
//!                              # sharing HOME and RUNNER_CACHE_DIR (cache fixtures)
//! requires: [python3]          # skip the case (with a message) when a tool is not on PATH
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::Value as Json;

use crate::support::{copy_dir, repo_root, runner_bin};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GitSetup {
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    remote: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepExpect {
    outcome: Option<String>,
    conclusion: Option<String>,
    #[serde(default)]
    outputs: indexmap::IndexMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobExpect {
    result: Option<String>,
    #[serde(default)]
    outputs: indexmap::IndexMap<String, String>,
    #[serde(default)]
    steps: indexmap::IndexMap<String, StepExpect>,
    step_count: Option<usize>,
    summary_contains: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunExpect {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    workflow: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: indexmap::IndexMap<String, String>,
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    git: Option<GitSetup>,
    #[serde(default = "default_json")]
    json: bool,
    #[serde(default)]
    exit: i32,
    #[serde(default)]
    stdout: Vec<String>,
    #[serde(default)]
    stderr: Vec<String>,
    #[serde(default)]
    not_output: Vec<String>,
    #[serde(default)]
    job_names: Option<Vec<String>>,
    #[serde(default)]
    jobs: indexmap::IndexMap<String, JobExpect>,
    #[serde(default)]
    files: indexmap::IndexMap<String, String>,
    #[serde(default)]
    files_contain: indexmap::IndexMap<String, Vec<String>>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    runs: Vec<RunExpect>,
    #[serde(default)]
    requires: Vec<String>,
}

fn default_json() -> bool {
    true
}

/// The fixture directories (those with an `expect.yml`), sorted.
fn fixture_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("fixtures"))
        .expect("fixtures/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("expect.yml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn git(workspace: &Path, args: &[&str]) -> Result<(), String> {
    let status = Command::new("git")
        .arg("-C")
        .arg(workspace)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .map_err(|e| format!("git {args:?}: {e}"))?;
    if !status.status.success() {
        return Err(format!(
            "git {args:?}: {}",
            String::from_utf8_lossy(&status.stderr)
        ));
    }
    Ok(())
}

/// Finds a job in the JSON report by display name, else by id when only one run has it.
fn find_job<'a>(report: &'a Json, key: &str) -> Option<&'a Json> {
    let jobs = report.get("jobs")?.as_array()?;
    jobs.iter()
        .find(|j| j.get("name").and_then(Json::as_str) == Some(key))
        .or_else(|| {
            let by_id: Vec<&Json> = jobs
                .iter()
                .filter(|j| j.get("id").and_then(Json::as_str) == Some(key))
                .collect();
            (by_id.len() == 1).then(|| by_id[0])
        })
}

fn find_step<'a>(job: &'a Json, key: &str) -> Option<&'a Json> {
    let steps = job.get("steps")?.as_array()?;
    steps
        .iter()
        .find(|s| s.get("id").and_then(Json::as_str) == Some(key))
        .or_else(|| {
            steps
                .iter()
                .find(|s| s.get("name").and_then(Json::as_str) == Some(key))
        })
}

fn str_at<'a>(v: &'a Json, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Json::as_str)
}

fn check_map(
    errors: &mut Vec<String>,
    what: &str,
    got: Option<&Json>,
    want: &indexmap::IndexMap<String, String>,
) {
    for (k, v) in want {
        let actual = got.and_then(|o| o.get(k)).and_then(Json::as_str);
        if actual != Some(v.as_str()) {
            errors.push(format!("{what} output {k}: expected {v:?}, got {actual:?}"));
        }
    }
}

/// Runs one run of a case and returns what did not match.
fn run_once(
    case: &Path,
    workspace: &Path,
    home: &Path,
    cache: &Path,
    run: &RunExpect,
) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(g) = &run.git {
        let branch = g.branch.as_deref().unwrap_or("main");
        let mut steps: Vec<Vec<&str>> = vec![
            vec!["init", "-q", "-b", branch],
            vec!["add", "-A"],
            vec!["commit", "-q", "-m", "fixture"],
        ];
        if let Some(remote) = &g.remote {
            steps.push(vec!["remote", "add", "origin", remote]);
        }
        for args in steps {
            if let Err(e) = git(workspace, &args) {
                return vec![e];
            }
        }
    }
    if let Some(before) = &run.before {
        let status = Command::new("sh")
            .args(["-c", before])
            .current_dir(workspace)
            .env("HOME", home)
            .status();
        if !status.is_ok_and(|s| s.success()) {
            return vec![format!("before: {before:?} failed")];
        }
    }
    let workflow = run.workflow.as_deref().unwrap_or("workflow.yml");
    let mut cmd = Command::new(runner_bin());
    cmd.arg("exec").arg(workflow);
    if run.json {
        cmd.arg("--json");
    }
    cmd.args(&run.args)
        .current_dir(workspace)
        .env("HOME", home)
        .env("RUNNER_CACHE_DIR", cache)
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("NO_COLOR", "1")
        .env_remove("GITHUB_ACTIONS")
        .envs(&run.env);
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) => return vec![format!("cannot run runner: {e}")],
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code().unwrap_or(-1);
    if code != run.exit {
        errors.push(format!("exit code: expected {}, got {code}", run.exit));
    }
    for s in &run.stdout {
        if !stdout.contains(s.as_str()) {
            errors.push(format!("stdout lacks {s:?}"));
        }
    }
    for s in &run.stderr {
        if !stderr.contains(s.as_str()) {
            errors.push(format!("stderr lacks {s:?}"));
        }
    }
    for s in &run.not_output {
        if stdout.contains(s.as_str()) || stderr.contains(s.as_str()) {
            errors.push(format!("output contains {s:?}, which must not appear"));
        }
    }
    let needs_report = run.job_names.is_some() || !run.jobs.is_empty();
    if needs_report {
        match serde_json::from_str::<Json>(&stdout) {
            Err(e) => errors.push(format!("stdout is not a JSON report: {e}")),
            Ok(report) => check_report(&mut errors, &report, run),
        }
    }
    for (rel, want) in &run.files {
        match std::fs::read_to_string(workspace.join(rel)) {
            Ok(got) if got == *want => {}
            Ok(got) => errors.push(format!("file {rel}: expected {want:?}, got {got:?}")),
            Err(e) => errors.push(format!("file {rel}: {e}")),
        }
    }
    for (rel, wants) in &run.files_contain {
        match std::fs::read_to_string(workspace.join(rel)) {
            Ok(got) => {
                for want in wants {
                    if !got.contains(want.as_str()) {
                        errors.push(format!("file {rel} lacks {want:?}: {got:?}"));
                    }
                }
            }
            Err(e) => errors.push(format!("file {rel}: {e}")),
        }
    }
    for rel in &run.absent {
        if workspace.join(rel).exists() {
            errors.push(format!("{rel} exists but must not"));
        }
    }
    if !errors.is_empty() {
        errors.push(format!(
            "case {} ({})\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            case.display(),
            run.description.as_deref().unwrap_or("")
        ));
    }
    errors
}

fn check_report(errors: &mut Vec<String>, report: &Json, run: &RunExpect) {
    if let Some(names) = &run.job_names {
        let got: Vec<&str> = report
            .get("jobs")
            .and_then(Json::as_array)
            .map(|jobs| jobs.iter().filter_map(|j| str_at(j, "name")).collect())
            .unwrap_or_default();
        if got != names.iter().map(String::as_str).collect::<Vec<_>>() {
            errors.push(format!("job runs: expected {names:?}, got {got:?}"));
        }
    }
    for (key, want) in &run.jobs {
        let Some(job) = find_job(report, key) else {
            errors.push(format!("no job {key:?} in the report"));
            continue;
        };
        if let Some(result) = &want.result
            && str_at(job, "result") != Some(result.as_str())
        {
            errors.push(format!(
                "job {key}: result {:?}, expected {result:?}",
                str_at(job, "result")
            ));
        }
        check_map(
            errors,
            &format!("job {key}"),
            job.get("outputs"),
            &want.outputs,
        );
        if let Some(n) = want.step_count {
            let got = job
                .get("steps")
                .and_then(Json::as_array)
                .map_or(0, Vec::len);
            if got != n {
                errors.push(format!("job {key}: {got} steps, expected {n}"));
            }
        }
        if let Some(s) = &want.summary_contains
            && !str_at(job, "summary").unwrap_or("").contains(s.as_str())
        {
            errors.push(format!("job {key}: summary lacks {s:?}"));
        }
        for (skey, swant) in &want.steps {
            let Some(step) = find_step(job, skey) else {
                errors.push(format!("job {key}: no step {skey:?}"));
                continue;
            };
            for (field, want) in [
                ("outcome", &swant.outcome),
                ("conclusion", &swant.conclusion),
            ] {
                if let Some(w) = want
                    && str_at(step, field) != Some(w.as_str())
                {
                    errors.push(format!(
                        "job {key} step {skey}: {field} {:?}, expected {w:?}",
                        str_at(step, field)
                    ));
                }
            }
            check_map(
                errors,
                &format!("job {key} step {skey}"),
                step.get("outputs"),
                &swant.outputs,
            );
        }
    }
}

fn run_case(case: &Path) -> Vec<String> {
    let text = match std::fs::read_to_string(case.join("expect.yml")) {
        Ok(t) => t,
        Err(e) => return vec![format!("{}: {e}", case.display())],
    };
    let expect: RunExpect = match serde_yaml::from_str(&text) {
        Ok(e) => e,
        Err(e) => return vec![format!("{}/expect.yml: {e}", case.display())],
    };
    let path_var = std::env::var("PATH").unwrap_or_default();
    if let Some(missing) = expect
        .requires
        .iter()
        .find(|tool| !std::env::split_paths(&path_var).any(|dir| dir.join(tool.as_str()).is_file()))
    {
        eprintln!(
            "skipping fixture {}: {missing} is not on PATH",
            case.display()
        );
        return Vec::new();
    }
    let Ok(root) = tempfile::tempdir() else {
        return vec!["cannot create a temp dir".into()];
    };
    let workspace = root.path().join("workspace");
    let home = root.path().join("home");
    let cache = root.path().join("cache");
    for dir in [&home, &cache] {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return vec![format!("{}: {e}", dir.display())];
        }
    }
    if let Err(e) = copy_dir(case, &workspace, &["expect.yml"]) {
        return vec![format!("copy {}: {e}", case.display())];
    }
    if expect.runs.is_empty() {
        run_once(case, &workspace, &home, &cache, &expect)
    } else {
        let mut errors = Vec::new();
        for (i, run) in expect.runs.iter().enumerate() {
            let errs = run_once(case, &workspace, &home, &cache, run);
            errors.extend(errs.into_iter().map(|e| format!("run {}: {e}", i + 1)));
        }
        errors
    }
}

/// One test per fixture directory, so a failing case names itself (`cargo test --test it
/// fixture::cache_hit`); `every_fixture_directory_has_a_test` keeps this list complete.
macro_rules! fixtures {
    ($($test:ident => $dir:literal),* $(,)?) => {
        mod fixture {
            $(
                #[test]
                fn $test() {
                    super::check_case($dir);
                }
            )*
        }

        /// The directories the list above names.
        const FIXTURES: &[&str] = &[$($dir),*];
    };
}

fixtures! {
    action_composite => "action-composite",
    action_composite_defaults => "action-composite-defaults",
    action_load_error => "action-load-error",
    action_node => "action-node",
    background_processes => "background-processes",
    basic_outputs => "basic-outputs",
    cache_corrupt_blob => "cache-corrupt-blob",
    cache_eviction_size => "cache-eviction-size",
    cache_exclusions => "cache-exclusions",
    cache_fail_on_miss => "cache-fail-on-miss",
    cache_failed_step => "cache-failed-step",
    cache_gzip => "cache-gzip",
    cache_hit => "cache-hit",
    cache_home => "cache-home",
    cache_immutable => "cache-immutable",
    cache_key_validation => "cache-key-validation",
    cache_lookup_only => "cache-lookup-only",
    cache_prefix => "cache-prefix",
    cache_pull_request => "cache-pull-request",
    cache_restore_keys => "cache-restore-keys",
    cache_rolling_run_number => "cache-rolling-run-number",
    cache_scopes => "cache-scopes",
    cache_scopes_no_origin_head => "cache-scopes-no-origin-head",
    cache_split => "cache-split",
    continue_on_error => "continue-on-error",
    default_shell_pipefail => "default-shell-pipefail",
    demo => "demo",
    dry_run => "dry-run",
    expression_runtime_error => "expression-runtime-error",
    failed_needs => "failed-needs",
    file_command_error => "file-command-error",
    flags_override => "flags-override",
    github_context_git => "github-context-git",
    github_env_path => "github-env-path",
    hashfiles => "hashfiles",
    job_continue_on_error => "job-continue-on-error",
    job_if => "job-if",
    job_if_error => "job-if-error",
    job_selection => "job-selection",
    job_timeout_cancelled => "job-timeout-cancelled",
    load_error_duplicate_step_id => "load-error-duplicate-step-id",
    load_error_expression => "load-error-expression",
    load_error_missing_need => "load-error-missing-need",
    load_error_needs_cycle => "load-error-needs-cycle",
    load_error_no_run_or_uses => "load-error-no-run-or-uses",
    load_error_run_and_uses => "load-error-run-and-uses",
    load_error_unknown_key => "load-error-unknown-key",
    load_error_yaml => "load-error-yaml",
    masking => "masking",
    matrix_fail_fast => "matrix-fail-fast",
    matrix_filter => "matrix-filter",
    matrix_include_exclude => "matrix-include-exclude",
    multi_run_shared_home => "multi-run-shared-home",
    multiline_outputs => "multiline-outputs",
    needs_chain => "needs-chain",
    realistic_ci => "realistic-ci",
    shell_python => "shell-python",
    shells => "shells",
    state_and_summary => "state-and-summary",
    status_functions => "status-functions",
    step_debug => "step-debug",
    step_failure => "step-failure",
    step_timeout => "step-timeout",
    unsupported_action_fails => "unsupported-action-fails",
    unsupported_action_skipped => "unsupported-action-skipped",
    workflow_commands => "workflow-commands",
    workflow_dispatch_inputs => "workflow-dispatch-inputs",
    working_directory => "working-directory",
}

/// Runs `fixtures/<name>/` and fails with every mismatch it found.
fn check_case(name: &str) {
    let case = repo_root().join("fixtures").join(name);
    let failures = run_case(&case);
    assert!(
        failures.is_empty(),
        "[{name}] {}",
        failures.join(&format!("\n[{name}] "))
    );
}

#[test]
fn every_fixture_directory_has_a_test() {
    let dirs: Vec<String> = fixture_dirs()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let listed: Vec<String> = FIXTURES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        dirs, listed,
        "add the new fixture directory to fixtures! in tests/it/exec.rs"
    );
}

/// Library embedding: handlers registered by the caller, post hooks, state, and events.
mod embedding {
    use std::path::Path;
    use std::sync::{Arc, Mutex};

    use runner::exec::{
        ActionContext, ActionError, ActionHandler, ActionRegistry, EventKind, Recorder, RunOptions,
        Runner, Status,
    };

    /// A real handler that records what it sees in a shared journal.
    struct Journal {
        entries: Arc<Mutex<Vec<String>>>,
    }

    impl ActionHandler for Journal {
        fn run(&self, ctx: &mut ActionContext<'_>) -> Result<(), ActionError> {
            let tag = ctx.input("tag").unwrap_or("").to_string();
            self.entries.lock().unwrap().push(format!("main {tag}"));
            if tag == "boom" {
                return Err(ActionError::new("boom requested"));
            }
            ctx.set_output("echo", format!("out-{tag}"));
            ctx.save_state("tag", tag.clone());
            let condition = ctx.input("post-if").unwrap_or("always()").to_string();
            ctx.register_post(&condition);
            ctx.info(&format!("ran {tag} in {}", ctx.job.workspace.display()));
            Ok(())
        }

        fn post(&self, ctx: &mut ActionContext<'_>) -> Result<(), ActionError> {
            let tag = ctx.get_state("tag").unwrap_or("<none>").to_string();
            assert_eq!(
                ctx.env.get("STATE_tag"),
                Some(&tag),
                "state is also in the env"
            );
            self.entries.lock().unwrap().push(format!("post {tag}"));
            Ok(())
        }
    }

    fn run(workflow: &str, registry: ActionRegistry) -> (runner::exec::RunReport, Vec<EventKind>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ci.yml");
        std::fs::write(&path, workflow).unwrap();
        let wf = runner::workflow::parse(Path::new("ci.yml"), workflow).unwrap();
        let events = Recorder::new();
        let options = RunOptions {
            workspace: dir.path().to_path_buf(),
            events: events.clone(),
            ..RunOptions::default()
        };
        let report = Runner::new(wf, options, registry).run().unwrap();
        (report, events.kinds())
    }

    fn registry(entries: &Arc<Mutex<Vec<String>>>) -> ActionRegistry {
        let mut registry = ActionRegistry::new();
        registry.register(
            "acme/journal",
            Arc::new(Journal {
                entries: entries.clone(),
            }),
        );
        registry
    }

    #[test]
    fn post_hooks_run_in_reverse_with_their_state_and_conditions() {
        let entries = Arc::new(Mutex::new(Vec::new()));
        let workflow = r#"on: push
jobs:
  build:
    runs-on: x
    steps:
      - id: one
        uses: acme/journal@v1
        with: {tag: one}
      - id: two
        uses: Acme/Journal@main
        with: {tag: two, post-if: success()}
      - id: three
        uses: acme/journal@v1
        with: {tag: three, post-if: failure()}
      - run: echo "${{ steps.two.outputs.echo }}" > "${{ github.workspace }}/seen.txt"; exit 1
"#;
        let (report, events) = run(workflow, registry(&entries));
        assert_eq!(
            *entries.lock().unwrap(),
            [
                "main one",
                "main two",
                "main three",
                "post three",
                "post one"
            ],
            "post steps run in reverse order, each only if its condition holds"
        );
        let job = &report.jobs[0];
        assert_eq!(job.result, Status::Failure);
        let steps: Vec<(&str, Status)> = job
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.outcome))
            .collect();
        assert_eq!(
            steps[4..],
            [
                ("Post Run acme/journal@v1", Status::Success),
                ("Post Run Acme/Journal@main", Status::Skipped),
                ("Post Run acme/journal@v1", Status::Success),
            ]
        );
        assert_eq!(
            job.steps[1].outputs.get("echo").map(String::as_str),
            Some("out-two")
        );
        assert!(events.iter().any(
            |e| matches!(e, EventKind::Output { line, .. } if line.starts_with("ran one in "))
        ));
    }

    #[test]
    fn handler_errors_fail_the_step_and_skip_its_post() {
        let entries = Arc::new(Mutex::new(Vec::new()));
        let workflow = r#"on: push
jobs:
  build:
    runs-on: x
    steps:
      - id: bad
        uses: acme/journal@v1
        with: {tag: boom}
      - if: always()
        run: echo "${{ steps.bad.outcome }}"
"#;
        let (report, events) = run(workflow, registry(&entries));
        assert_eq!(*entries.lock().unwrap(), ["main boom"]);
        assert_eq!(report.jobs[0].steps[0].outcome, Status::Failure);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, EventKind::Output { line, .. } if line == "failure"))
        );
        assert!(events.iter().any(
            |e| matches!(e, EventKind::Annotation { message, .. } if message == "boom requested")
        ));
    }
}

/// Ctrl-C (SIGINT to the runner) kills the running step's process group, skips normal steps,
/// still runs `if: always()` steps, and exits 1.
#[test]
fn interrupt_cancels_the_run() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().unwrap();
    crate::support::write_tree(
        dir.path(),
        &[(
            "ci.yml",
            "on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - id: long\n        run: echo started; sleep 60\n      - id: normal\n        run: touch normal.txt\n      - id: cleanup\n        if: always()\n        run: echo \"${{ job.status }} ${{ steps.long.outcome }}\" > cleanup.txt\n",
        )],
    );
    let mut child = Command::new(runner_bin())
        .args(["exec", "ci.yml", "--json"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let out_thread =
        std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    // Wait until the step is running, then interrupt.
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("runner ended before the step started: {log}");
        }
        log.push_str(&line);
        if line.contains("started") {
            break;
        }
    }
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: signalling the child we spawned.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let rest = std::io::read_to_string(stderr).unwrap_or_default();
    log.push_str(&rest);
    let status = child.wait().unwrap();
    let report: Json = serde_json::from_str(&out_thread.join().unwrap()).unwrap();
    // 128 + SIGINT, as a shell reports a process Ctrl-C stopped; the report says why.
    assert_eq!(status.code(), Some(130), "{log}");
    assert_eq!(str_at(&report, "result"), Some("cancelled"), "{log}");
    let job = find_job(&report, "build").unwrap();
    assert_eq!(str_at(job, "result"), Some("cancelled"), "{log}");
    let outcome = |id: &str| {
        find_step(job, id)
            .and_then(|s| str_at(s, "outcome"))
            .map(str::to_string)
    };
    assert_eq!(outcome("long").as_deref(), Some("cancelled"));
    assert_eq!(outcome("normal").as_deref(), Some("skipped"));
    assert_eq!(outcome("cleanup").as_deref(), Some("success"));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("cleanup.txt")).unwrap(),
        "cancelled cancelled\n"
    );
    assert!(!dir.path().join("normal.txt").exists());
}

/// Step output: every line reaches the log, memory stays bounded however much a step prints.
mod output {
    use std::process::{Command, Stdio};

    use crate::support::{runner_bin, write_tree};

    /// A one-step workflow running `script` (a block scalar), in a fresh workspace.
    fn workspace(script: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let body: String = script.lines().map(|l| format!("          {l}\n")).collect();
        let yaml = format!(
            "on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - run: |\n{body}"
        );
        write_tree(dir.path(), &[("ci.yml", &yaml)]);
        dir
    }

    #[test]
    fn lines_printed_just_before_exit_all_arrive_with_their_commands() {
        let dir = workspace("seq 1 300000\necho '::warning::X'");
        let out = Command::new(runner_bin())
            .args(["exec", "ci.yml"])
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .expect("run runner");
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            &log[log.len().saturating_sub(2000)..]
        );
        let numbers: Vec<&str> = log
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
            .collect();
        assert_eq!(numbers.len(), 300_000, "lines of `seq 1 300000` in the log");
        assert!(
            numbers
                .iter()
                .zip(1..)
                .all(|(line, n)| line.parse::<u32>().is_ok_and(|v| v == n)),
            "lines arrive once each, in order"
        );
        assert!(
            log.contains("Warning: X"),
            "the warning command after them is honoured"
        );
    }

    /// The peak resident memory of `runner exec` (its VmHWM in /proc, sampled until it exits;
    /// the high-water mark only grows, so the last sample bounds it from below) while one step
    /// prints a single 256 MiB line and then 1 GiB of 1 KiB lines inside a folded group. (wait4's ru_maxrss would
    /// also count the test process's own image, which a forked child starts from.)
    #[test]
    fn memory_stays_bounded_on_a_gigabyte_of_output() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

        if !std::path::Path::new("/proc/self/status").exists() {
            eprintln!("skipped: no /proc to read VmHWM from");
            return;
        }
        let dir = workspace(
            r#"head -c 256M /dev/zero | tr '\0' y
echo
echo '::group::a folded group holds the gigabyte'
yes "$(head -c 1023 /dev/zero | tr '\0' x)" | head -c 1G
echo '::endgroup::'
echo '::notice::done'"#,
        );
        let mut child = Command::new(runner_bin())
            .args(["exec", "ci.yml"])
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run runner");
        let pid = child.id();
        let done = Arc::new(AtomicBool::new(false));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let sampler = {
            let (done, peak_kib) = (done.clone(), peak_kib.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
                        .ok()
                        .and_then(|s| {
                            s.lines()
                                .find_map(|l| l.strip_prefix("VmHWM:"))
                                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                        });
                    if let Some(kib) = hwm {
                        peak_kib.fetch_max(kib, Ordering::SeqCst);
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            })
        };
        // Keep the tail of the log only; the test itself must not hold a gigabyte.
        let mut stderr = child.stderr.take().expect("stderr");
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = std::io::Read::read(&mut stderr, &mut buf) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 1 << 17 {
                tail.drain(..tail.len() - 4096);
            }
        }
        let tail = String::from_utf8_lossy(&tail).into_owned();
        let status = child.wait().expect("wait for runner");
        done.store(true, Ordering::SeqCst);
        sampler.join().expect("sampler thread");
        assert_eq!(status.code(), Some(0), "{tail}");
        let peak_mib = peak_kib.load(Ordering::SeqCst) / 1024;
        eprintln!("peak RSS (VmHWM) of runner exec: {peak_mib} MiB");
        assert!(peak_mib > 0, "VmHWM was never read");
        assert!(peak_mib < 200, "peak RSS {peak_mib} MiB");
        assert!(
            tail.contains("line truncated"),
            "the long line is cut and says so: {tail}"
        );
        assert!(tail.contains("Notice: done"), "{tail}");
        assert!(
            tail.contains("a folded group holds the gigabyte (1048576 lines folded)"),
            "{tail}"
        );
    }
}

/// `github.run_number` / `run_attempt` and typed `workflow_dispatch` / `workflow_call` inputs.
mod run_inputs {
    use crate::support::{run_runner, write_tree};

    const DISPATCH: &str = r#"on:
  workflow_dispatch:
    inputs:
      level: {type: choice, options: [info, debug], default: info}
      dry: {type: boolean, default: true}
      count: {type: number, default: 3}
      name: {default: world}
      unset: {type: boolean}
jobs:
  a:
    runs-on: x
    steps:
      - run: echo 'level=${{ toJSON(inputs.level) }} dry=${{ toJSON(inputs.dry) }} count=${{ toJSON(inputs.count) }} name=${{ inputs.name }} unset=${{ toJSON(inputs.unset) }} event=${{ toJSON(github.event.inputs.dry) }} run=${{ github.run_number }}.${{ github.run_attempt }}' "env=$GITHUB_RUN_NUMBER.$GITHUB_RUN_ATTEMPT"
"#;

    const CALL: &str = r#"on:
  workflow_call:
    inputs:
      tag: {type: string, required: true}
      n: {type: number, default: 1}
jobs:
  a:
    runs-on: x
    steps:
      - run: echo 'tag=${{ toJSON(inputs.tag) }} n=${{ toJSON(inputs.n) }}'
"#;

    /// `(workflow file, arguments, exit code, a line the log must contain)`.
    const ROWS: &[(&str, &[&str], i32, &str)] = &[
        (
            "dispatch.yml",
            &["--event", "workflow_dispatch"],
            0,
            r#"level="info" dry=true count=3 name=world unset=false event="true" run=1.1 env=1.1"#,
        ),
        (
            "dispatch.yml",
            &[
                "--event",
                "workflow_dispatch",
                "--input",
                "dry=false",
                "--input",
                "count=2.5",
                "--input",
                "level=debug",
                "--run-number",
                "42",
                "--run-attempt",
                "2",
            ],
            0,
            r#"level="debug" dry=false count=2.5 name=world unset=false event="false" run=42.2 env=42.2"#,
        ),
        (
            "dispatch.yml",
            &["--event", "workflow_dispatch", "--input", "nope=1"],
            2,
            "error: input 'nope': the workflow declares no such workflow_dispatch input (declared: level, dry, count, name, unset)",
        ),
        (
            "dispatch.yml",
            &["--event", "workflow_dispatch", "--input", "dry=yes"],
            2,
            "error: input 'dry': a boolean input takes true or false, not 'yes'",
        ),
        (
            "dispatch.yml",
            &["--event", "workflow_dispatch", "--input", "count=many"],
            2,
            "error: input 'count': a number input takes a number, not 'many'",
        ),
        (
            "dispatch.yml",
            &["--event", "workflow_dispatch", "--input", "level=trace"],
            2,
            "error: input 'level': 'trace' is not one of its options (info, debug)",
        ),
        (
            "dispatch.yml",
            &["--input", "dry=true"],
            2,
            "error: input 'dry': inputs are for workflow_dispatch and workflow_call runs, not 'push'",
        ),
        (
            "call.yml",
            &["--event", "workflow_call", "--input", "tag=v1"],
            0,
            r#"tag="v1" n=1"#,
        ),
        (
            "call.yml",
            &["--event", "workflow_call"],
            2,
            "error: input 'tag': required, and it has no default (pass --input NAME=VALUE)",
        ),
    ];

    #[test]
    fn inputs_and_run_numbers_reach_the_contexts_typed() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_tree(
            dir.path(),
            &[("dispatch.yml", DISPATCH), ("call.yml", CALL)],
        );
        let mut failures = Vec::new();
        for (file, args, code, want) in ROWS {
            let mut all = vec!["exec", file];
            all.extend_from_slice(args);
            let out = run_runner(dir.path(), &all);
            if out.code != *code || !out.stderr.contains(want) {
                failures.push(format!(
                    "{args:?}: expected exit {code} and {want:?}\n  got exit {}:\n{}",
                    out.code, out.stderr
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}

/// `github.run_number` counts runs per repository and workflow file in the store, as GitHub
/// numbers them; `--run-number` overrides it and `--dry-run` does not count.
#[test]
fn run_numbers_count_per_workflow() {
    use crate::support::{runner_bin, write_tree};
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path().join("ws");
    let yaml = "on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - run: echo \"number=${{ github.run_number }}\"\n";
    write_tree(&ws, &[("a.yml", yaml), ("b.yml", yaml)]);
    let run = |workflow: &str, extra: &[&str]| {
        let out = Command::new(runner_bin())
            .args(["exec", workflow, "--repository", "octo/app"])
            .args(extra)
            .current_dir(&ws)
            .env("RUNNER_CACHE_DIR", dir.path().join("store"))
            .env_remove("RUNNER_CACHE_DB")
            .env("NO_COLOR", "1")
            .output()
            .expect("run runner");
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{log}");
        log.lines()
            .find_map(|l| l.trim().strip_prefix("number=").map(str::to_string))
            .unwrap_or_else(|| panic!("no number in {log}"))
    };
    assert_eq!(run("a.yml", &[]), "1");
    assert_eq!(run("a.yml", &[]), "2");
    assert_eq!(run("b.yml", &[]), "1");
    assert_eq!(run("a.yml", &["--run-number", "40"]), "40");
    assert_eq!(run("a.yml", &[]), "3");
}
