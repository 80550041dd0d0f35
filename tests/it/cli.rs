//! Integration tests: cli. Snapshot tests of what `runner exec` prints (insta, with filters for
//! temp paths and durations).

use std::path::Path;

use crate::support::{run_runner as runner, write_tree};

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
    let mut s = settings(dir.path());
    s.add_filter(r#""duration": [0-9.e-]+"#, r#""duration": "[DURATION]""#);
    s.bind(|| insta::assert_snapshot!("exec_json_report", run.stdout));
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
