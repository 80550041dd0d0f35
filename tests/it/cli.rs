//! Integration tests: cli. Snapshot tests of what `runner exec` prints (insta, with filters for
//! temp paths, durations and times), and one test per convention of the command line.

use std::path::Path;

use serde_json::Value;

use crate::support::{run_output, run_runner as runner, runner_command, write_tree};

/// Replaces what changes between runs: temp paths, durations, uuids.
fn settings(dir: &Path) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    if let Ok(canonical) = dir.canonicalize() {
        s.add_filter(
            &regex_escape(&canonical.display().to_string()),
            "[WORKSPACE]",
        );
    }
    s.add_filter(&regex_escape(&dir.display().to_string()), "[WORKSPACE]");
    let tmp = std::env::temp_dir().join("runner-job-");
    s.add_filter(
        &format!("{}[A-Za-z0-9]+", regex_escape(&tmp.display().to_string())),
        "[JOBTMP]",
    );
    s.add_filter(r"\b\d+\.\d{2}s\b", "[DURATION]");
    s.add_filter(r"\b\d+m\d{2}s\b", "[DURATION]");
    s.add_filter(r#""duration": [0-9.e-]+"#, r#""duration": "[DURATION]""#);
    s.add_filter(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", "[TIME]");
    s.add_filter(r#"_ms": \d+"#, r#"_ms": "[MS]""#);
    s.set_prepend_module_to_snapshot(false);
    s
}

/// Escapes regex metacharacters in a literal path.
fn regex_escape(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

const CI_WORKFLOW: &str = r#"name: ci
on: push
jobs:
  build:
    runs-on: ubuntu-latest
    outputs:
      version: ${{ steps.version.outputs.value }}
    steps:
      - uses: actions/checkout@v4
      - id: version
        name: Read version
        run: |
          echo "::group::Details"
          echo "reading Cargo.toml"
          echo "::endgroup::"
          echo "value=1.2.3" >> "$GITHUB_OUTPUT"
      - name: Flaky check
        continue-on-error: true
        run: |
          echo "::warning file=src/lib.rs,line=4::looks odd"
          exit 3
      - name: Uses a secret
        run: echo "token=${{ secrets.TOKEN }}"
  test:
    needs: build
    runs-on: ubuntu-latest
    strategy:
      matrix:
        os: [linux, mac]
    steps:
      - name: Test on ${{ matrix.os }}
        run: echo "testing ${{ needs.build.outputs.version }} on ${{ matrix.os }}"
      - name: Fail on mac
        if: matrix.os == 'mac'
        run: exit 1
      - name: Cleanup
        if: always()
        run: echo cleanup
"#;

#[test]
fn exec_summary_table_and_log() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("ci.yml", CI_WORKFLOW)]);
    let run = runner(
        dir.path(),
        &["exec", "ci.yml", "--secret", "TOKEN=hunter2-secret"],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stdout.contains("hunter2-secret") && !run.stderr.contains("hunter2-secret"));
    settings(dir.path()).bind(|| {
        insta::assert_snapshot!("exec_summary_table", run.stdout);
        insta::assert_snapshot!("exec_log", run.stderr);
    });
}

#[test]
fn exec_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("ci.yml", CI_WORKFLOW)]);
    let run = runner(dir.path(), &["exec", "ci.yml", "--dry-run"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stderr, "", "a dry run starts no job");
    settings(dir.path()).bind(|| insta::assert_snapshot!("exec_dry_run", run.stdout));
}

#[test]
fn exec_json_report() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("ci.yml", CI_WORKFLOW)]);
    let run = runner(dir.path(), &["exec", "ci.yml", "--json", "--job", "build"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let report = one_document(&run.stdout);
    assert_eq!(report["schema"], "runner.exec.report/1");
    assert_eq!(report["result"], "success");
    settings(dir.path()).bind(|| insta::assert_snapshot!("exec_json_report", run.stdout));
}

/// One row per error message: name, files, arguments, expected exit code.
#[test]
fn exec_error_messages() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "error_unknown_key",
            "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    step:\n      - run: echo\n",
            &["exec", "ci.yml"],
        ),
        (
            "error_needs_cycle",
            "on: push\njobs:\n  a:\n    needs: b\n    runs-on: x\n    steps:\n      - run: echo a\n  b:\n    needs: a\n    runs-on: x\n    steps:\n      - run: echo b\n",
            &["exec", "ci.yml"],
        ),
        (
            "error_bad_expression",
            "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - if: ${{ success( }}\n        run: echo a\n",
            &["exec", "ci.yml"],
        ),
        (
            "error_no_such_job",
            "on: push\njobs:\n  build:\n    runs-on: x\n    steps:\n      - run: echo a\n  test:\n    runs-on: x\n    steps:\n      - run: echo b\n",
            &["exec", "ci.yml", "--job", "deploy"],
        ),
        (
            "error_matrix_filter",
            "on: push\njobs:\n  t:\n    runs-on: x\n    strategy:\n      matrix:\n        os: [linux, mac]\n    steps:\n      - run: echo a\n",
            &["exec", "ci.yml", "--matrix", "os:windows"],
        ),
        ("error_missing_workflow", "", &["exec", "missing.yml"]),
        (
            "error_bad_env_flag",
            "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo a\n",
            &["exec", "ci.yml", "--env", "NOEQUALS"],
        ),
    ];
    for (name, workflow, args) in cases {
        let dir = tempfile::tempdir().unwrap();
        if !workflow.is_empty() {
            write_tree(dir.path(), &[("ci.yml", workflow)]);
        }
        let run = runner(dir.path(), args);
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        assert_eq!(run.stdout, "", "{name}: errors go to stderr");
        settings(dir.path()).bind(|| insta::assert_snapshot!(*name, run.stderr));
    }
}

/// This project's own CI workflow loads and plans, with the cache key built from the real
/// `hashFiles('Cargo.lock')` of this checkout and the cache step handled natively.
#[test]
fn own_ci_workflow_plans() {
    let root = crate::support::repo_root();
    let lock_hash =
        runner::glob::hash_files(root, &["Cargo.lock".to_string()], &Default::default())
            .expect("hash Cargo.lock");
    assert_eq!(
        lock_hash.len(),
        64,
        "Cargo.lock is committed, so the hash is not empty"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let run = runner(
        dir.path(),
        &[
            "exec",
            &root.join(".github/workflows/ci.yml").display().to_string(),
            "--workspace",
            &root.display().to_string(),
            "--dry-run",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout
            .contains(&format!("with.key: cargo-Linux-{lock_hash}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("uses actions/cache@v4 (built in)"),
        "{}",
        run.stdout
    );
}

/// Parses stdout as exactly one JSON document (trailing text fails).
fn one_document(stdout: &str) -> Value {
    serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{stdout}"))
}

/// A workflow whose plan has a matrix fed by a job's outputs, a step decided by an earlier
/// step's output, and a cache step with restore keys.
const PLAN_WORKFLOW: &str = r#"on: push
jobs:
  setup:
    runs-on: ubuntu-latest
    outputs:
      legs: ${{ steps.legs.outputs.json }}
    steps:
      - id: legs
        run: echo 'json=["a","b"]' >> "$GITHUB_OUTPUT"
  build:
    needs: setup
    runs-on: ubuntu-latest
    strategy:
      matrix:
        leg: ${{ fromJSON(needs.setup.outputs.legs) }}
    steps:
      - run: echo building
  test:
    needs: [setup]
    runs-on: ubuntu-latest
    strategy:
      matrix:
        os: [linux, mac]
    steps:
      - id: cache
        uses: actions/cache@v4
        with:
          path: deps
          key: deps-${{ matrix.os }}-1
          restore-keys: |
            deps-${{ matrix.os }}-
            deps-
      - if: steps.cache.outputs.cache-hit != 'true'
        run: echo install
      - if: matrix.os == 'mac'
        run: echo mac only
"#;

/// `--dry-run --json` is one plan document: jobs in order with needs, matrix legs, each step's
/// kind, `if:`, `with:` and cache keys; a matrix from needed outputs is decided at run time.
#[test]
fn dry_run_json_is_a_plan() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("ci.yml", PLAN_WORKFLOW)]);
    let run = runner(dir.path(), &["exec", "ci.yml", "-n", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let plan = one_document(&run.stdout);
    assert_eq!(plan["schema"], "runner.exec.plan/1");
    let jobs: Vec<(&str, &str)> = plan["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["id"].as_str().unwrap(), j["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        jobs,
        [
            ("setup", "setup"),
            ("build", "build (decided at run time)"),
            ("test", "test (linux)"),
            ("test", "test (mac)")
        ]
    );
    assert_eq!(plan["jobs"][1]["matrix"], "decided at run time");
    let mac = &plan["jobs"][3];
    assert_eq!(mac["needs"], serde_json::json!(["setup"]));
    assert_eq!(mac["matrix"], serde_json::json!({"os": "mac"}));
    assert_eq!(mac["steps"][0]["kind"], "uses");
    assert_eq!(mac["steps"][0]["uses"], "actions/cache@v4");
    assert_eq!(
        mac["steps"][0]["cache"],
        serde_json::json!({"lookup": ["deps-mac-1", "deps-mac-", "deps-"], "save": "deps-mac-1"})
    );
    assert_eq!(mac["steps"][1]["if"]["value"], "decided at run time");
    assert_eq!(mac["steps"][2]["if"]["value"], "true");
    assert_eq!(plan["jobs"][2]["steps"][2]["if"]["value"], "false");
    settings(dir.path()).bind(|| insta::assert_snapshot!("exec_plan_json", run.stdout));
}

/// With `--json`, a failure is still one document on stdout, and the error is on stderr once.
#[test]
fn json_errors_are_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let rows: &[(&[&str], i32)] = &[
        (&["exec", "missing.yml", "--json"], 2),
        (&["exec", "missing.yml", "--json", "--no-such-flag"], 2),
        (&["cache", "show", "nothing-here", "--json"], 1),
        (&["cache", "list", "--json", "--fields", "key,nope"], 2),
    ];
    for (args, code) in rows {
        let run = runner(dir.path(), args);
        assert_eq!(run.code, *code, "{args:?}: {}", run.stderr);
        let doc = one_document(&run.stdout);
        assert_eq!(doc["schema"], "runner.error/1", "{args:?}");
        assert_eq!(doc["exit_code"], *code, "{args:?}");
        assert!(run.stderr.contains("error"), "{args:?}: {}", run.stderr);
    }
}

/// An I/O error reads `what: cause` with the cause once.
#[test]
fn each_cause_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            (
                "ci.yml",
                "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo a\n",
            ),
            ("not-a-dir", ""),
        ],
    );
    let rows: &[&[&str]] = &[
        &["exec", "ci.yml", "--event-file", "missing.json"],
        &["exec", "ci.yml", "--env-file", "missing.env"],
        &["hash-files", "--workspace", "missing-dir", "x"],
        &["cache", "--cache-dir", "not-a-dir/store", "list"],
    ];
    for args in rows {
        let run = runner(dir.path(), args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        let lines: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(lines.len(), 1, "{args:?}: {}", run.stderr);
        let line = lines[0];
        for cause in ["No such file or directory", "Not a directory"] {
            assert!(line.matches(cause).count() <= 1, "{args:?}: {line}");
        }
        assert!(line.contains("(os error"), "{args:?}: {line}");
    }
}

/// `--json-events`: one JSON line per event with its time, job and step; the last line is the
/// overall result.
#[test]
fn json_events_stream() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("ci.yml", CI_WORKFLOW)]);
    let run = runner(
        dir.path(),
        &[
            "exec",
            "ci.yml",
            "-j",
            "build",
            "--json-events",
            "-s",
            "TOKEN=hunter2-secret",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("hunter2-secret"));
    let lines: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["schema"] == "runner.exec.event/1"
        && l["time"].is_string()
        && l["time_ms"].is_i64()));
    let events: Vec<&str> = lines.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events.first(), Some(&"job_started"));
    assert_eq!(events.last(), Some(&"run_finished"));
    assert_eq!(lines.last().unwrap()["result"], "success");
    let output = lines
        .iter()
        .find(|l| l["event"] == "output" && l["line"] == "value=1.2.3")
        .map(|_| ())
        .is_none();
    assert!(output, "GITHUB_OUTPUT lines are not step output");
    let reading = lines
        .iter()
        .find(|l| l["event"] == "output" && l["line"] == "reading Cargo.toml")
        .expect("an output line");
    assert_eq!(reading["job_name"], "build");
    assert_eq!(reading["step_name"], "Read version");
    assert_eq!(reading["job"], "build");
    assert_eq!(reading["step"], "version");
    assert_eq!(reading["stream"], "stdout");
    let shape: Vec<&Value> = lines[..3]
        .iter()
        .chain([reading, lines.last().unwrap()])
        .collect();
    let shape = serde_json::to_string_pretty(&shape).unwrap();
    settings(dir.path()).bind(|| insta::assert_snapshot!("exec_json_events", shape));
    assert_eq!(run.stderr, "", "the log is left out");
}

/// `--color`, `NO_COLOR` and `CLICOLOR_FORCE`: the flag wins, then NO_COLOR, then
/// CLICOLOR_FORCE, then whether stdout is a terminal (here it is not).
#[test]
fn color_choice() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[(
            "ci.yml",
            "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo a\n",
        )],
    );
    // Flags, NO_COLOR, CLICOLOR_FORCE, coloured.
    type Row<'a> = (&'a [&'a str], Option<&'a str>, Option<&'a str>, bool);
    let rows: &[Row] = &[
        (&[], None, None, false),
        (&[], Some("1"), None, false),
        (&[], None, Some("1"), true),
        (&[], None, Some("0"), false),
        (&[], Some("1"), Some("1"), false),
        (&["--color", "always"], Some("1"), None, true),
        (&["--color", "never"], None, Some("1"), false),
        (&["--color=auto"], None, None, false),
    ];
    for (flags, no_color, force, colored) in rows {
        let mut args = vec!["exec", "ci.yml"];
        args.extend_from_slice(flags);
        let mut cmd = runner_command(dir.path(), &args);
        cmd.env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        if let Some(v) = force {
            cmd.env("CLICOLOR_FORCE", v);
        }
        let run = run_output(cmd.output().unwrap());
        assert_eq!(run.code, 0, "{flags:?}: {}", run.stderr);
        assert_eq!(
            run.stdout.contains("\x1b["),
            *colored,
            "{flags:?} NO_COLOR={no_color:?} CLICOLOR_FORCE={force:?}: {:?}",
            run.stdout
        );
    }
}

/// act's habits: -j, -n, -l, -s, -e, --var, --input, --env-file, and `ACT=true`, so a step
/// guarded by `if: ${{ !env.ACT }}` does not run here.
#[test]
fn act_habits() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = r#"on:
  workflow_dispatch:
    inputs:
      level:
        type: number
        default: 1
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - name: Show
        run: echo "secret=${{ secrets.TOKEN }} var=${{ vars.COLOR }} pr=${{ github.event.number }} input=${{ inputs.level }} file=$FROM_FILE act=$ACT"
      - name: Deploy
        if: ${{ !env.ACT }}
        run: echo DEPLOYING TO PRODUCTION
  other:
    runs-on: ubuntu-latest
    steps:
      - run: echo other
"#;
    write_tree(
        dir.path(),
        &[
            ("ci.yml", workflow),
            ("event.json", r#"{"number": 7}"#),
            ("vars.env", "# local settings\nFROM_FILE=from the file\n"),
        ],
    );
    let run = runner(
        dir.path(),
        &[
            "exec",
            "ci.yml",
            "-j",
            "deploy",
            "-s",
            "TOKEN=hunter2",
            "-e",
            "event.json",
            "--var",
            "COLOR=blue",
            "--input",
            "level=3",
            "--env-file",
            "vars.env",
            "--event",
            "workflow_dispatch",
            "--json",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("secret=*** var=blue pr=7 input=3 file=from the file act=true"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("DEPLOYING"), "{}", run.stderr);
    let report = one_document(&run.stdout);
    let jobs = report["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "-j runs one job");
    assert_eq!(jobs[0]["steps"][1]["outcome"], "skipped");
    assert_eq!(
        jobs[0]["steps"][1]["skip_reason"],
        "if: ${{ !env.ACT }} was false"
    );

    let plan = runner(dir.path(), &["exec", "ci.yml", "-n", "-j", "other"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.starts_with("job other"), "{}", plan.stdout);
    let json = runner(dir.path(), &["exec", "ci.yml", "-l", "--json"]);
    let doc = one_document(&json.stdout);
    assert_eq!(doc["schema"], "runner.exec.list/1");
    assert_eq!(doc["jobs"][0]["steps"][1]["name"], "Deploy");
    assert_eq!(doc["jobs"][0]["steps"][1]["runs"], "run");
    let list = runner(dir.path(), &["exec", "ci.yml", "-l"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stdout.contains("deploy\n  Show: run"),
        "{}",
        list.stdout
    );
}

/// `.runnerrc` holds default flags, one per line: `$HOME`'s first, then the current
/// directory's, then the command line (which wins for single-valued flags).
#[test]
fn runnerrc_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo \"event=${{ github.event_name }} color=${{ vars.COLOR }} size=${{ vars.SIZE }} home=$FROM_HOME\"\n";
    write_tree(
        dir.path(),
        &[
            ("work/ci.yml", workflow),
            (
                "work/.runnerrc",
                "# project defaults\n--var COLOR=blue\n--event pull_request\n",
            ),
            ("home/.runnerrc", "--env FROM_HOME=yes\n--var=SIZE=L\n"),
        ],
    );
    let work = dir.path().join("work");
    let run_in = |args: &[&str]| {
        let mut cmd = runner_command(&work, args);
        cmd.env("HOME", dir.path().join("home"));
        run_output(cmd.output().unwrap())
    };
    let run = run_in(&["exec", "ci.yml"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("event=pull_request color=blue size=L home=yes"),
        "{}",
        run.stderr
    );
    let run = run_in(&["exec", "ci.yml", "--event", "push"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("event=push color=blue"),
        "{}",
        run.stderr
    );
}

/// Options may follow the patterns: `--workspace big` is the option, not two patterns.
#[test]
fn hash_files_options_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(
        dir.path(),
        &[
            ("package.json", "{\"name\": \"here\"}"),
            ("big/package.json", "{\"name\": \"big\"}"),
            ("big/package-lock.json", "{}"),
        ],
    );
    let expected = runner::glob::hash_files(
        &dir.path().join("big"),
        &["package*.json".to_string()],
        &Default::default(),
    )
    .unwrap();
    for args in [
        &["hash-files", "package*.json", "--workspace", "big"][..],
        &["hash-files", "--workspace", "big", "package*.json"][..],
        &["hash-files", "--workspace=big", "--", "package*.json"][..],
    ] {
        let run = runner(dir.path(), args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert_eq!(run.stdout.trim(), expected, "{args:?}");
    }
}

/// A workflow that saves one cache entry under the repository given with --repository.
const SAVE_WORKFLOW: &str = "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: mkdir -p deps && echo x > deps/f\n      - uses: actions/cache/save@v4\n        with:\n          path: deps\n          key: deps-${{ github.repository }}\n";

/// `cache dir`, `-R` on every verb, the settings as flags with their variables in --help, a
/// bad setting refused, and an empty list that says where the entries are.
#[test]
fn cache_verbs_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), &[("ci.yml", SAVE_WORKFLOW)]);
    for repo in ["one/app", "two/app"] {
        let run = runner(dir.path(), &["exec", "ci.yml", "--repository", repo]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let store = dir.path().join(".runner-cache");
    let run = runner(dir.path(), &["cache", "dir"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), store.display().to_string());
    let run = runner(dir.path(), &["cache", "dir", "--cache-dir", "elsewhere"]);
    assert_eq!(run.stdout.trim(), "elsewhere");

    let run = runner(dir.path(), &["cache", "list", "-R", "acme/widgets"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "No cache entries for acme/widgets; 2 entries in 2 other repositories: -R or --all\n"
    );
    let run = runner(dir.path(), &["cache", "list", "-R", "one/app", "--json"]);
    let mut shape = settings(dir.path());
    shape.add_filter(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "[ID]",
    );
    shape.add_filter(r"[0-9a-f]{64}", "[DIGEST]");
    shape.add_filter(r#""size": \d+"#, r#""size": "[SIZE]""#);
    shape.add_filter(r#""created_by_run": "\d+""#, r#""created_by_run": "[RUN]""#);
    shape.bind(|| insta::assert_snapshot!("cache_list_json", run.stdout));
    let run = runner(
        dir.path(),
        &["cache", "list", "--all", "--fields", "key,size"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let doc = one_document(&run.stdout);
    assert_eq!(doc["schema"], "runner.cache.list/1");
    let entries = doc["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for entry in entries {
        let names: Vec<&String> = entry.as_object().unwrap().keys().collect();
        assert_eq!(names, ["key", "size"]);
    }
    for verb in ["list", "stats", "prune", "verify", "clear"] {
        let mut args = vec!["cache", verb, "-R", "one/app", "--json"];
        if verb == "clear" {
            args.push("--yes");
        }
        let run = runner(dir.path(), &args);
        assert_eq!(run.code, 0, "{verb}: {}", run.stderr);
        let doc = one_document(&run.stdout);
        assert!(
            doc["schema"].as_str().unwrap().starts_with("runner.cache."),
            "{verb}"
        );
    }
    let run = runner(dir.path(), &["cache", "list", "--all", "--json"]);
    let all = one_document(&run.stdout);
    let keys: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["deps-two/app"],
        "clear -R removed only one/app's entry"
    );

    let help = runner(dir.path(), &["cache", "list", "--help"]);
    for var in [
        "RUNNER_CACHE_DIR",
        "RUNNER_CACHE_DB",
        "RUNNER_CACHE_TTL_DAYS",
        "RUNNER_CACHE_MAX_SIZE",
        "RUNNER_CACHE_COMPRESSION",
    ] {
        assert!(help.stdout.contains(var), "{var}: {}", help.stdout);
    }
    for (var, value) in [
        ("RUNNER_CACHE_COMPRESSION", "brotli"),
        ("RUNNER_CACHE_TTL_DAYS", "seven"),
        ("RUNNER_CACHE_MAX_SIZE", "lots"),
    ] {
        let mut cmd = runner_command(dir.path(), &["cache", "list"]);
        cmd.env(var, value);
        let run = run_output(cmd.output().unwrap());
        assert_eq!(run.code, 2, "{var}={value}: {}", run.stderr);
        assert!(run.stderr.contains(value), "{var}: {}", run.stderr);
    }
}

/// A cache step moving 9 MiB: off a terminal the log gets actions/cache's progress line (at the
/// end, at least), `--quiet` shows none, and `--json-events` carries progress events.
#[test]
fn cache_progress_off_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: actions/cache@v4\n        with:\n          path: deps\n          key: big-1\n      - run: test -f deps/big || (mkdir -p deps && head -c 9437184 /dev/urandom > deps/big)\n";
    write_tree(dir.path(), &[("ci.yml", workflow)]);
    let save = runner(dir.path(), &["exec", "ci.yml"]);
    assert_eq!(save.code, 0, "{}", save.stderr);
    assert!(save.stderr.contains("  Sent "), "{}", save.stderr);
    std::fs::remove_dir_all(dir.path().join("deps")).unwrap();
    let restore = runner(dir.path(), &["exec", "ci.yml"]);
    assert_eq!(restore.code, 0, "{}", restore.stderr);
    let line = restore
        .stderr
        .lines()
        .find(|l| l.starts_with("  Received "))
        .unwrap_or_else(|| panic!("no progress line: {}", restore.stderr));
    assert!(
        line.contains("(100.0%), ") && line.ends_with(" MBs/sec"),
        "{line}"
    );

    std::fs::remove_dir_all(dir.path().join("deps")).unwrap();
    let quiet = runner(dir.path(), &["exec", "ci.yml", "--quiet"]);
    assert_eq!(quiet.code, 0, "{}", quiet.stderr);
    assert_eq!(quiet.stderr, "", "--quiet shows no log and no progress");

    std::fs::remove_dir_all(dir.path().join("deps")).unwrap();
    let events = runner(dir.path(), &["exec", "ci.yml", "--json-events"]);
    assert_eq!(events.code, 0, "{}", events.stderr);
    let done: Vec<Value> = events
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["event"] == "progress" && l["done"] == true)
        .collect();
    assert_eq!(done.len(), 1, "{}", events.stdout);
    assert_eq!(done[0]["direction"], "restore");
    assert_eq!(done[0]["bytes"], done[0]["total"]);
}

/// On a terminal a transfer is a bar, not the lines CI logs get: run under `script`, which gives
/// the process a pseudo-terminal.
#[test]
fn cache_progress_on_a_terminal_is_a_bar() {
    let script = std::path::Path::new("/usr/bin/script");
    if !script.is_file() {
        eprintln!("skipped: no /usr/bin/script to give the runner a pseudo-terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 64 MiB, so the transfer lasts past the bar's first frame even on fast disks.
    let workflow = "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - uses: actions/cache@v4\n        with:\n          path: deps\n          key: big-1\n      - run: test -f deps/big || (mkdir -p deps && head -c 67108864 /dev/urandom > deps/big)\n";
    write_tree(dir.path(), &[("ci.yml", workflow)]);
    let inner = crate::support::runner_command(dir.path(), &["exec", "ci.yml"]);
    let line = format!("'{}' exec ci.yml", inner.get_program().to_string_lossy());
    let mut cmd = std::process::Command::new(script);
    cmd.args(["-qec", &line, "/dev/null"])
        .current_dir(dir.path());
    for (name, value) in inner.get_envs() {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let out = cmd.output().expect("run script");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    // The save's total is unknown until it ends, so its bar counts bytes and rate, redrawn in
    // place (each frame clears the line).
    assert!(
        shown.contains("  Saving ") && shown.contains("B/s)") && shown.contains("\u{1b}[2K"),
        "no bar on the terminal: {shown}"
    );
    assert!(
        !shown.contains("  Sent "),
        "the CI log lines are for pipes, not terminals: {shown}"
    );
    assert!(shown.contains("Cache saved with key: big-1"), "{shown}");
}

/// `--clean-env` starts steps from PATH, HOME, USER, LANG, TERM and TMPDIR only.
#[test]
fn clean_env() {
    let dir = tempfile::tempdir().unwrap();
    let workflow = "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: echo \"leak=${RUNNER_TEST_LEAK:-none} home=$HOME\"\n";
    write_tree(dir.path(), &[("ci.yml", workflow)]);
    let home = dir.path().display().to_string();
    for (flags, leak) in [(&[][..], "visible"), (&["--clean-env"][..], "none")] {
        let mut args = vec!["exec", "ci.yml"];
        args.extend_from_slice(flags);
        let mut cmd = runner_command(dir.path(), &args);
        cmd.env("RUNNER_TEST_LEAK", "visible");
        let run = run_output(cmd.output().unwrap());
        assert_eq!(run.code, 0, "{flags:?}: {}", run.stderr);
        let expected = format!("leak={leak} home={home}");
        assert!(run.stderr.contains(&expected), "{flags:?}: {}", run.stderr);
    }
}
