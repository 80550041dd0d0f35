//! YAML quirks GitHub workflows rely on: anchors, merge keys, block scalars, the `on:` key,
//! YAML 1.2 booleans, numbers used as strings, CRLF files, and warnings for what we ignore.

use runner::expr::Value;
use runner::workflow::{OrExpr, Pos, StepKind};

use super::{at, load, load_ok};

#[test]
fn anchors_and_aliases_reuse_env_and_steps() {
    let src = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    env: &env\n      A: one\n    steps: &steps\n      - run: echo $A\n  b:\n    runs-on: ubuntu-latest\n    env: *env\n    steps: *steps\n";
    let wf = load_ok(src);
    let b = &wf.jobs["b"];
    assert_eq!(b.env["A"].raw, "one");
    // An alias points at what it repeats.
    assert_eq!(b.env["A"].pos, at(src, "one"));
    assert_eq!(b.steps[0].run().map(|r| r.raw.as_str()), Some("echo $A"));
    assert_eq!(b.steps[0].pos, wf.jobs["a"].steps[0].pos);
}

#[test]
fn merge_keys_are_rejected_at_their_line() {
    // GitHub reads YAML 1.2, which has no merge keys: `<<` is refused where it is written.
    let src = "on: push\nenv: &base\n  A: one\n  B: two\njobs:\n  a:\n    runs-on: x\n    env:\n      B: mine\n      <<: *base\n      C: three\n    steps: [{run: echo}]\n";
    let err = super::load(src).expect_err("merge keys are an error");
    let runner::workflow::WorkflowError::Invalid { errors, .. } = err else {
        panic!("not a load error: {err}");
    };
    let got: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [(
            10,
            7,
            "Unexpected value '<<' (YAML merge keys are not supported by GitHub)"
        )]
    );
}

#[test]
fn block_scalars_keep_their_exact_text() {
    let src = "on: push\njobs:\n  a:\n    runs-on: x\n    steps:\n      - run: |\n          one\n            indented\n\n          two\n      - run: |-\n          stripped\n      - run: >\n          folded\n          line\n\n          para\n      - run: >-\n          a\n          b\n      - run: |+\n          kept\n\n      - run: 'single ''quoted'''\n      - run: \"tab\\there\"\n";
    let wf = load_ok(src);
    let runs: Vec<&str> = wf.jobs["a"]
        .steps
        .iter()
        .map(|s| s.run().map_or("", |r| r.raw.as_str()))
        .collect();
    assert_eq!(
        runs,
        [
            "one\n  indented\n\ntwo\n",
            "stripped",
            "folded line\npara\n",
            "a b",
            "kept\n\n",
            "single 'quoted'",
            "tab\there",
        ]
    );
    let folded = wf.jobs["a"].steps[2].run().expect("run");
    assert_eq!(
        folded.pos_at(folded.raw.find("para").expect("para")),
        at(src, "para")
    );
    assert_eq!(
        folded.pos_at(folded.raw.find("line").expect("line")),
        at(src, "line\n")
    );
}

#[test]
fn on_is_a_string_key_and_yes_no_stay_strings() {
    let src = "on:\n  push:\n  workflow_dispatch:\njobs:\n  a:\n    runs-on: x\n    env:\n      FLAG: yes\n      OFF: off\n      T: True\n      N: ~\n    steps: [{run: echo}]\n";
    let wf = load_ok(src);
    let events: Vec<(&str, Pos)> = wf.events.iter().map(|e| (e.as_str(), e.pos)).collect();
    assert_eq!(
        events,
        [
            ("push", Pos::new(2, 3)),
            ("workflow_dispatch", Pos::new(3, 3))
        ]
    );
    let env: Vec<(&str, &str)> = wf.jobs["a"]
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.raw.as_str()))
        .collect();
    // Booleans keep their spelling as text; null is the empty string.
    assert_eq!(
        env,
        [("FLAG", "yes"), ("OFF", "off"), ("T", "True"), ("N", "")]
    );
    let on = wf.on.as_ref().expect("on");
    assert_eq!(on.get("push").map(|p| p.literal_value()), Some(Value::Null));

    for (yaml, want) in [
        ("on: push\n", vec!["push"]),
        ("on: [push, pull_request]\n", vec!["push", "pull_request"]),
        (
            "\"on\": {schedule: [{cron: '0 0 * * *'}]}\n",
            vec!["schedule"],
        ),
    ] {
        let wf = load_ok(&format!(
            "{yaml}jobs:\n  a:\n    runs-on: x\n    steps: [{{run: echo}}]\n"
        ));
        let got: Vec<&str> = wf.events.iter().map(|e| e.as_str()).collect();
        assert_eq!(got, want, "{yaml}");
    }
}

#[test]
fn numbers_keep_their_source_text_where_strings_are_expected() {
    let src = "on: push\nenv:\n  VERSION: 1.10\n  HEX: 0x1F\n  TAGGED: !!str 3.0\njobs:\n  a:\n    runs-on: x\n    strategy:\n      matrix:\n        python: [3.10, '3.11', 3.9]\n      max-parallel: 2\n    timeout-minutes: ${{ matrix.t }}\n    steps:\n      - uses: actions/setup-python@v5\n        with:\n          python-version: 3.10\n          retries: 003\n";
    let wf = load_ok(src);
    assert_eq!(wf.env["VERSION"].raw, "1.10");
    assert_eq!(wf.env["HEX"].raw, "0x1F");
    assert_eq!(wf.env["TAGGED"].raw, "3.0");
    let job = &wf.jobs["a"];
    let StepKind::Uses { with, .. } = &job.steps[0].kind else {
        panic!("uses step")
    };
    assert_eq!(with["python-version"].raw, "3.10");
    assert_eq!(with["retries"].raw, "003");
    let strategy = job.strategy.as_ref().expect("strategy");
    assert_eq!(
        strategy.max_parallel.as_ref().and_then(OrExpr::literal),
        Some(&2.0)
    );
    let python = strategy
        .matrix
        .as_ref()
        .and_then(|m| m.get("python"))
        .expect("python");
    // As on GitHub, an unquoted 3.10 is the number 3.1 in the matrix context.
    assert_eq!(
        python.literal_value(),
        Value::Array(vec![
            Value::Number(3.1),
            Value::String("3.11".into()),
            Value::Number(3.9)
        ])
    );
    match &job.timeout_minutes {
        Some(OrExpr::Expr(t)) => assert_eq!(t.raw, "${{ matrix.t }}"),
        other => panic!("timeout-minutes: {other:?}"),
    }
}

#[test]
fn runs_on_forms() {
    for (yaml, labels, group) in [
        ("runs-on: ubuntu-latest", vec!["ubuntu-latest"], None),
        (
            "runs-on: [self-hosted, linux, x64]",
            vec!["self-hosted", "linux", "x64"],
            None,
        ),
        (
            "runs-on:\n      group: big\n      labels: [linux]",
            vec!["linux"],
            Some("big"),
        ),
        (
            "runs-on:\n      group: big\n      labels: gpu",
            vec!["gpu"],
            Some("big"),
        ),
    ] {
        let wf = load_ok(&format!(
            "on: push\njobs:\n  a:\n    {yaml}\n    steps: [{{run: echo}}]\n"
        ));
        let runs_on = wf.jobs["a"].runs_on.as_ref().expect("runs-on");
        let got: Vec<&str> = runs_on.labels.iter().map(|l| l.raw.as_str()).collect();
        assert_eq!(got, labels, "{yaml}");
        assert_eq!(
            runs_on.group.as_ref().map(|g| g.raw.as_str()),
            group,
            "{yaml}"
        );
    }
}

#[test]
fn unsupported_features_load_with_positioned_warnings() {
    let src = "on: push\nconcurrency: ci\njobs:\n  a:\n    runs-on: x\n    container: node:20\n    services:\n      db: {image: postgres}\n    environment: prod\n    defaults:\n      run:\n        shell: cmd\n    steps: [{run: echo}]\n  call:\n    uses: org/repo/.github/workflows/x.yml@main\n    with: {a: 1}\n";
    let wf = load_ok(src);
    let warnings: Vec<(usize, usize, &str)> = wf
        .warnings
        .iter()
        .map(|w| (w.line, w.column, w.message.as_str()))
        .collect();
    assert_eq!(
        warnings,
        [
            (
                2,
                1,
                "'concurrency' is not supported when running locally and is ignored"
            ),
            (
                6,
                5,
                "'container' is not supported when running locally and is ignored"
            ),
            (
                7,
                5,
                "'services' is not supported when running locally and is ignored"
            ),
            (
                9,
                5,
                "'environment' is not supported when running locally and is ignored"
            ),
            (12, 16, "shell 'cmd' is only available on Windows runners"),
            (
                15,
                11,
                "job 'call' calls a reusable workflow, which is not supported locally; it will be skipped"
            ),
            (
                16,
                5,
                "'with' is not supported when running locally and is ignored"
            ),
        ]
    );
    let call = &wf.jobs["call"];
    assert_eq!(
        call.uses.as_ref().map(|u| u.as_str()),
        Some("org/repo/.github/workflows/x.yml@main")
    );
    assert!(call.steps.is_empty());
    // Warnings render like errors.
    let shown = wf.warnings[0].to_string();
    assert!(shown.ends_with(":2:1: 'concurrency' is not supported when running locally and is ignored\n  concurrency: ci\n  ^"), "{shown}");
}

#[test]
fn crlf_files_and_non_ascii_columns() {
    let src = "on: push\r\njobs:\r\n  a:\r\n    runs-on: x\r\n    steps:\r\n      - run: echo \"héllo wörld\" ${{ ) }}\r\n";
    let err = load(src).expect_err("bad expression");
    let e = &err.errors()[0];
    // Columns count characters: 'é' and 'ö' are one column each.
    assert_eq!((e.line, e.column), (6, 37));
    assert_eq!(e.source_line, "      - run: echo \"héllo wörld\" ${{ ) }}");
    let ok = load_ok(
        "on: push\r\njobs:\r\n  a:\r\n    runs-on: x\r\n    steps:\r\n      - run: |\r\n          one\r\n          two\r\n",
    );
    assert_eq!(
        ok.jobs["a"].steps[0].run().map(|r| r.raw.as_str()),
        Some("one\ntwo\n")
    );
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let wf = load_ok("\u{feff}on: push\njobs:\n  a:\n    runs-on: x\n    steps: [{run: echo}]\n");
    let events: Vec<(&str, Pos)> = wf.events.iter().map(|e| (e.as_str(), e.pos)).collect();
    assert_eq!(events, [("push", Pos::new(1, 5))]);
}
