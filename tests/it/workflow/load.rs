//! Realistic workflows load into exact model values and positions.

use runner::expr::Value;
use runner::workflow::{
    OrExpr, Pos, StepKind, Text, TreeKind, expand_matrix, job_order, with_needs,
};

use super::{at, at_nth, load_ok};

const RUST_CI: &str = r#"name: CI

on:
  push:
    branches: [main]
  pull_request:

env:
  CARGO_TERM_COLOR: always
  RUST_BACKTRACE: 1

defaults:
  run:
    shell: bash

jobs:
  fmt:
    name: Rustfmt
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: cargo fmt --all --check

  test:
    name: Test ${{ matrix.rust }} on ${{ matrix.os }}
    needs: fmt
    runs-on: ${{ matrix.os }}
    timeout-minutes: 30
    strategy:
      fail-fast: false
      matrix:
        os: [ubuntu-latest, macos-latest]
        rust: [stable, "1.88"]
        include:
          - os: ubuntu-latest
            rust: nightly
            experimental: true
    continue-on-error: ${{ matrix.experimental == true }}
    env:
      RUSTFLAGS: -D warnings
    steps:
      - uses: actions/checkout@v4
      - name: Install Rust
        uses: dtolnay/rust-toolchain@master
        with:
          toolchain: ${{ matrix.rust }}
      - name: Cache cargo
        id: cache
        uses: actions/cache@v4
        with:
          path: |
            ~/.cargo/registry
            ~/.cargo/git
            target
          key: ${{ runner.os }}-cargo-${{ hashFiles('**/Cargo.lock') }}
          restore-keys: |
            ${{ runner.os }}-cargo-
      - name: Build
        run: cargo build --locked --all-targets
      - name: Test
        if: steps.cache.outputs.cache-hit != 'true' || success()
        run: |
          cargo test --locked
          echo "done" >> "$GITHUB_STEP_SUMMARY"
        timeout-minutes: 20
        working-directory: ./crates

  release:
    needs: [fmt, test]
    if: github.ref == 'refs/heads/main'
    runs-on: ubuntu-latest
    outputs:
      version: ${{ steps.ver.outputs.version }}
    steps:
      - id: ver
        run: echo "version=1.0" >> "$GITHUB_OUTPUT"
"#;

const NODE_CI: &str = r#"name: Node CI
on: [push, pull_request]
permissions:
  contents: read
jobs:
  build:
    runs-on: ${{ matrix.os }}
    strategy:
      matrix:
        os: [ubuntu-latest, windows-latest]
        node: [18, 20.10, '22']
        exclude:
          - os: windows-latest
            node: 18
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@v4
        with:
          node-version: ${{ matrix.node }}
          cache: npm
      - name: Cache node modules
        uses: actions/cache@v4
        env:
          cache-name: cache-node-modules
        with:
          path: ~/.npm
          key: ${{ runner.os }}-build-${{ env.cache-name }}-${{ hashFiles('**/package-lock.json') }}
          restore-keys: |
            ${{ runner.os }}-build-${{ env.cache-name }}-
            ${{ runner.os }}-build-
            ${{ runner.os }}-
      - run: npm ci
      - run: npm test -- --coverage
        env:
          CI: true
"#;

fn text(t: Option<&Text>) -> &str {
    t.map_or("<none>", |t| t.raw.as_str())
}

fn with_of(step: &runner::workflow::Step) -> &indexmap::IndexMap<String, Text> {
    match &step.kind {
        StepKind::Uses { with, .. } => with,
        StepKind::Run { .. } => panic!("step {} is a run step", step.index),
    }
}

#[test]
fn rust_ci_loads_with_exact_values_and_positions() {
    let src = RUST_CI;
    let wf = load_ok(src);
    assert!(wf.warnings.is_empty(), "{:?}", wf.warnings);
    let name = wf.name.as_ref().expect("name");
    assert_eq!((name.value.as_str(), name.pos), ("CI", Pos::new(1, 7)));
    let events: Vec<(&str, Pos)> = wf.events.iter().map(|e| (e.as_str(), e.pos)).collect();
    assert_eq!(
        events,
        [
            ("push", at(src, "push")),
            ("pull_request", at(src, "pull_request"))
        ]
    );
    assert_eq!(
        wf.on
            .as_ref()
            .and_then(|on| on.get("push"))
            .and_then(|p| p.get("branches"))
            .map(|b| b.literal_value()),
        Some(Value::Array(vec![Value::String("main".into())]))
    );
    let env: Vec<(&str, &str)> = wf
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.raw.as_str()))
        .collect();
    assert_eq!(
        env,
        [("CARGO_TERM_COLOR", "always"), ("RUST_BACKTRACE", "1")]
    );
    assert_eq!(wf.env["RUST_BACKTRACE"].pos, at(src, "1\n"));
    assert_eq!(text(wf.defaults.shell.as_ref()), "bash");
    assert_eq!(
        wf.jobs.keys().collect::<Vec<_>>(),
        ["fmt", "test", "release"]
    );

    let fmt = &wf.jobs["fmt"];
    assert_eq!(fmt.id.pos, Pos::new(17, 3));
    assert_eq!(text(fmt.name.as_ref()), "Rustfmt");
    let runs_on = fmt.runs_on.as_ref().expect("runs-on");
    assert_eq!(runs_on.labels.len(), 1);
    assert_eq!(runs_on.labels[0].raw, "ubuntu-latest");
    assert_eq!(fmt.steps.len(), 2);
    let checkout = fmt.steps[0].uses().expect("uses");
    assert_eq!(checkout.value, "actions/checkout@v4");
    assert_eq!(checkout.pos, at_nth(src, "actions/checkout@v4", 0));
    assert_eq!(fmt.steps[0].pos, Pos::new(21, 9));
    assert_eq!(
        fmt.steps[1].run().map(|r| r.raw.as_str()),
        Some("cargo fmt --all --check")
    );
    assert_eq!(fmt.steps[1].default_name(), "Run cargo fmt --all --check");
    assert_eq!(fmt.steps[1].index, 1);

    let test = &wf.jobs["test"];
    let test_name = test.name.as_ref().expect("name");
    assert_eq!(test_name.raw, "Test ${{ matrix.rust }} on ${{ matrix.os }}");
    assert!(!test_name.value.is_literal());
    assert_eq!(test_name.pos, at(src, "Test ${{"));
    let needs: Vec<(&str, Pos)> = test.needs.iter().map(|n| (n.as_str(), n.pos)).collect();
    let needs_at = at(src, "needs: fmt");
    assert_eq!(
        needs,
        [("fmt", Pos::new(needs_at.line, needs_at.column + 7))]
    );
    assert_eq!(
        test.runs_on.as_ref().expect("runs-on").labels[0].raw,
        "${{ matrix.os }}"
    );
    assert_eq!(
        test.timeout_minutes.as_ref().and_then(OrExpr::literal),
        Some(&30.0)
    );
    assert_eq!(
        test.timeout_minutes.as_ref().map(OrExpr::pos),
        Some(at(src, "30"))
    );
    let strategy = test.strategy.as_ref().expect("strategy");
    assert_eq!(
        strategy.fail_fast.as_ref().and_then(OrExpr::literal),
        Some(&false)
    );
    assert_eq!(strategy.max_parallel, None);
    let matrix = strategy.matrix.as_ref().expect("matrix");
    assert_eq!(
        matrix.get("rust").map(|r| r.literal_value()),
        Some(Value::Array(vec![
            Value::String("stable".into()),
            Value::String("1.88".into())
        ]))
    );
    let include = matrix.get("include").expect("include");
    let TreeKind::Seq(items) = &include.kind else {
        panic!("include is not a list")
    };
    assert_eq!(
        items[0].get("experimental").map(|e| e.literal_value()),
        Some(Value::Bool(true))
    );
    assert_eq!(items[0].pos, at(src, "os: ubuntu-latest"));
    match &test.continue_on_error {
        Some(OrExpr::Expr(t)) => {
            assert_eq!(t.raw, "${{ matrix.experimental == true }}");
            assert_eq!(t.pos, at(src, "${{ matrix.experimental"));
        }
        other => panic!("continue-on-error: {other:?}"),
    }
    assert_eq!(text(test.env.get("RUSTFLAGS")), "-D warnings");
    assert_eq!(test.steps.len(), 5);
    let toolchain = &with_of(&test.steps[1])["toolchain"];
    assert_eq!(toolchain.raw, "${{ matrix.rust }}");
    assert_eq!(toolchain.pos, at(src, "${{ matrix.rust }}\n"));

    let cache = &test.steps[2];
    assert_eq!(
        cache.id.as_ref().map(|i| (i.as_str(), i.pos)),
        Some(("cache", at(src, "cache\n")))
    );
    assert_eq!(text(cache.name.as_ref()), "Cache cargo");
    let with = with_of(cache);
    assert_eq!(
        with.keys().collect::<Vec<_>>(),
        ["path", "key", "restore-keys"]
    );
    assert_eq!(
        with["path"].raw,
        "~/.cargo/registry\n~/.cargo/git\ntarget\n"
    );
    assert_eq!(with["path"].pos, at(src, "~/.cargo/registry"));
    let git_offset = with["path"].raw.find("~/.cargo/git").expect("offset");
    assert_eq!(with["path"].pos_at(git_offset), at(src, "~/.cargo/git"));
    let key = &with["key"];
    assert_eq!(
        key.raw,
        "${{ runner.os }}-cargo-${{ hashFiles('**/Cargo.lock') }}"
    );
    let hash_offset = key.raw.find("hashFiles").expect("offset");
    assert_eq!(
        key.pos_at(hash_offset),
        at(src, "hashFiles('**/Cargo.lock')")
    );
    assert_eq!(with["restore-keys"].raw, "${{ runner.os }}-cargo-\n");

    let test_step = &test.steps[4];
    let cond = test_step.if_.as_ref().expect("if");
    assert_eq!(
        cond.raw,
        "steps.cache.outputs.cache-hit != 'true' || success()"
    );
    assert_eq!(cond.pos, at(src, "steps.cache.outputs.cache-hit"));
    let StepKind::Run {
        run,
        shell,
        working_directory,
    } = &test_step.kind
    else {
        panic!("not a run step")
    };
    assert_eq!(
        run.raw,
        "cargo test --locked\necho \"done\" >> \"$GITHUB_STEP_SUMMARY\"\n"
    );
    assert_eq!(run.pos, at(src, "cargo test --locked"));
    assert_eq!(
        run.pos_at(run.raw.find("echo").expect("echo")),
        at(src, "echo \"done\"")
    );
    assert_eq!(shell, &None);
    assert_eq!(text(working_directory.as_ref()), "./crates");
    assert_eq!(
        test_step.timeout_minutes.as_ref().and_then(OrExpr::literal),
        Some(&20.0)
    );
    assert_eq!(test_step.default_name(), "Run cargo test --locked");

    let release = &wf.jobs["release"];
    let needs: Vec<&str> = release.needs.iter().map(|n| n.as_str()).collect();
    assert_eq!(needs, ["fmt", "test"]);
    assert_eq!(
        release.if_.as_ref().map(|c| c.raw.as_str()),
        Some("github.ref == 'refs/heads/main'")
    );
    assert_eq!(
        text(release.outputs.get("version")),
        "${{ steps.ver.outputs.version }}"
    );

    assert_eq!(job_order(&wf), ["fmt", "test", "release"]);
    assert_eq!(with_needs(&wf, "test"), ["fmt", "test"]);
    assert_eq!(with_needs(&wf, "release"), ["fmt", "test", "release"]);
    assert!(with_needs(&wf, "nope").is_empty());
}

#[test]
fn node_ci_loads_with_warnings_matrix_and_cache_steps() {
    let src = NODE_CI;
    let wf = load_ok(src);
    let events: Vec<&str> = wf.events.iter().map(|e| e.as_str()).collect();
    assert_eq!(events, ["push", "pull_request"]);
    let warnings: Vec<(usize, usize, &str)> = wf
        .warnings
        .iter()
        .map(|w| (w.line, w.column, w.message.as_str()))
        .collect();
    assert_eq!(
        warnings,
        [(
            3,
            1,
            "'permissions' is not supported when running locally and is ignored"
        )]
    );

    let build = &wf.jobs["build"];
    let matrix = build
        .strategy
        .as_ref()
        .and_then(|s| s.matrix.as_ref())
        .expect("matrix");
    let node = matrix.get("node").expect("node");
    let TreeKind::Seq(items) = &node.kind else {
        panic!("node is not a list")
    };
    let raw: Vec<&str> = items
        .iter()
        .map(|i| i.as_text().expect("scalar").raw.as_str())
        .collect();
    // The source text survives (`20.10`), while the typed value is GitHub's number 20.1.
    assert_eq!(raw, ["18", "20.10", "22"]);
    assert_eq!(
        node.literal_value(),
        Value::Array(vec![
            Value::Number(18.0),
            Value::Number(20.1),
            Value::String("22".into())
        ])
    );
    let combos = expand_matrix(&matrix.literal_value()).expect("expand");
    let shown: Vec<(String, String)> = combos
        .iter()
        .map(|c| (format!("{:?}", c["os"]), format!("{:?}", c["node"])))
        .collect();
    let s = |v: &str| format!("{:?}", Value::String(v.into()));
    let n = |v: f64| format!("{:?}", Value::Number(v));
    assert_eq!(
        shown,
        [
            (s("ubuntu-latest"), n(18.0)),
            (s("ubuntu-latest"), n(20.1)),
            (s("ubuntu-latest"), s("22")),
            (s("windows-latest"), n(20.1)),
            (s("windows-latest"), s("22")),
        ]
    );

    assert_eq!(build.steps.len(), 5);
    let setup = with_of(&build.steps[1]);
    assert!(!setup["node-version"].value.is_literal());
    assert!(setup["cache"].value.is_literal());
    let cache_at = at(src, "cache: npm");
    assert_eq!(
        setup["cache"].pos,
        Pos::new(cache_at.line, cache_at.column + 7)
    );
    let cache = &build.steps[2];
    assert_eq!(cache.uses().map(|u| u.as_str()), Some("actions/cache@v4"));
    assert_eq!(text(cache.env.get("cache-name")), "cache-node-modules");
    let with = with_of(cache);
    assert_eq!(with["path"].raw, "~/.npm");
    assert_eq!(
        with["restore-keys"].raw,
        "${{ runner.os }}-build-${{ env.cache-name }}-\n${{ runner.os }}-build-\n${{ runner.os }}-\n"
    );
    let third = with["restore-keys"]
        .raw
        .rfind("${{ runner.os }}-\n")
        .expect("third line");
    assert_eq!(
        with["restore-keys"].pos_at(third),
        at_nth(src, "${{ runner.os }}-\n", 0)
    );
    let test = &build.steps[4];
    assert_eq!(
        test.run().map(|r| r.raw.as_str()),
        Some("npm test -- --coverage")
    );
    // `CI: true` is a YAML boolean; as an env value it keeps its text.
    assert_eq!(text(test.env.get("CI")), "true");
}
