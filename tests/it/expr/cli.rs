//! `runner eval`, run as a real process.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{runner_bin, write_tree};

use super::CONTEXTS;

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(runner_bin())
        .arg("eval")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run runner eval")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn contexts_file(dir: &Path) -> String {
    write_tree(dir, &[("contexts.json", CONTEXTS)]);
    dir.join("contexts.json").display().to_string()
}

/// (arguments after `eval`, expected stdout). `CTX` is replaced by the contexts file.
const PRINTS: &[(&[&str], &str)] = &[
    (&["1 == 1"], "true\n"),
    (&["'a''b'"], "\"a'b\"\n"),
    (&["3"], "3\n"),
    (&["null"], "null\n"),
    (&["format('{0}', 1e15)"], "\"1E+15\"\n"),
    (
        &["fromJSON('{\"b\": [1], \"a\": {}}')"],
        "{\n  \"b\": [\n    1\n  ],\n  \"a\": {}\n}\n",
    ),
    (
        &["--contexts", "CTX", "github.event.commits.*.id"],
        "[\n  \"a1\",\n  \"b2\"\n]\n",
    ),
    (&["--contexts", "CTX", "Matrix.OS"], "\"ubuntu-latest\"\n"),
    (
        &[
            "--contexts",
            "CTX",
            "--template",
            "npm-${{ matrix.os }}-${{ matrix.node }}",
        ],
        "\"npm-ubuntu-latest-18\"\n",
    ),
    (
        &[
            "--contexts",
            "CTX",
            "--condition",
            "github.event_name == 'push'",
        ],
        "true\n",
    ),
    (&["--condition", "failure()"], "false\n"),
    (&["--condition", "always()"], "true\n"),
    (&["-1 == -1"], "true\n"),
];

#[test]
fn prints_results_as_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx = contexts_file(dir.path());
    for (args, want) in PRINTS {
        let args: Vec<&str> = args
            .iter()
            .map(|a| if *a == "CTX" { ctx.as_str() } else { a })
            .collect();
        let out = run(&args, dir.path());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), *want, "{args:?}");
    }
}

#[test]
fn syntax_error_exits_2_with_a_caret_under_the_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(&["1 == == 2"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        stderr(&out),
        "error: unexpected '==': expected an expression\n  1 == == 2\n       ^\n"
    );
}

#[test]
fn unknown_context_exits_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx = contexts_file(dir.path());
    let out = run(
        &["--contexts", &ctx, "github.ref == secrets.TOKEN"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: Unrecognized named-value: 'secrets'\n  github.ref == secrets.TOKEN\n                ^\n"
    );
    // Without a contexts file there are no contexts at all.
    let out = run(&["github.ref"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("Unrecognized named-value: 'github'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn function_errors_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(&["format('{1}', 'a')"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("references more arguments than were supplied: {1}"),
        "{}",
        stderr(&out)
    );
    let out = run(&["hashFiles('--bogus', '*.lock')"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid glob option '--bogus'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_contexts_files_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tree(dir.path(), &[("array.json", "[1]"), ("broken.json", "{")]);
    for (file, want) in [
        ("array.json", "expected a JSON object"),
        ("broken.json", "parsing contexts file"),
        ("missing.json", "reading contexts file"),
    ] {
        let path = dir.path().join(file).display().to_string();
        let out = run(&["--contexts", &path, "1"], dir.path());
        assert_eq!(out.status.code(), Some(2), "{file}");
        let err = stderr(&out);
        assert!(err.contains(want) && err.contains(file), "{file}: {err}");
    }
}

#[test]
fn hash_files_hashes_the_workspace() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tree(
        dir.path(),
        &[("ws/b/x.lock", "b\n"), ("ws/b/other.txt", "x")],
    );
    let ws = dir.path().join("ws").display().to_string();
    let want = "\"c606dd677840d364890dce4afe87cfa83260633ed6020d197e8837f553dbbb89\"\n";
    for expr in [
        "hashFiles('**/*.lock')",
        "hashFiles('--follow-symbolic-links', '**/*.lock')",
        "hashFiles('b/x.lock')",
    ] {
        let out = run(&["--workspace", &ws, expr], dir.path());
        assert_eq!(out.status.code(), Some(0), "{expr}: {}", stderr(&out));
        assert_eq!(stdout(&out), want, "{expr}");
    }
    let out = run(&["--workspace", &ws, "hashFiles('nothing/*')"], dir.path());
    assert_eq!(stdout(&out), "\"\"\n");
}

#[test]
fn check_exits_1_when_the_result_is_falsy() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (expr, code, printed) in [
        ("1 == 1", 0, "true\n"),
        ("''", 1, "\"\"\n"),
        ("null", 1, "null\n"),
        ("'x'", 0, "\"x\"\n"),
    ] {
        let out = run(&["--check", expr], dir.path());
        assert_eq!(out.status.code(), Some(code), "{expr}");
        assert_eq!(stdout(&out), printed, "{expr}");
    }
    let out = run(&["--check", "--condition", "failure()"], dir.path());
    assert_eq!(out.status.code(), Some(1));
}
