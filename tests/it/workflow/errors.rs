//! One row per load error kind: the file, line, column and message of every error reported.

use super::{load, write};

/// `(case, workflow text, expected errors as (line, column, message))`. A message ending in `…`
/// is compared as a prefix (the expression module words its own errors).
type Case = (
    &'static str,
    &'static str,
    &'static [(usize, usize, &'static str)],
);

const HEAD: &str = "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n";

const CASES: &[Case] = &[
    (
        "malformed YAML",
        "      - run: echo: hi\n",
        &[(
            6,
            18,
            "invalid YAML: mapping values are not allowed in this context",
        )],
    ),
    (
        "YAML ending inside a quoted string points at the end of the last line",
        "      - run: \"open\n",
        &[(
            6,
            19,
            "invalid YAML: found unexpected end of stream (while scanning a quoted scalar)",
        )],
    ),
    (
        "unknown step key with suggestion",
        "      - run: echo hi\n        working_directory: src\n",
        &[(
            7,
            9,
            "unknown key 'working_directory' in a step (did you mean 'working-directory'?)",
        )],
    ),
    (
        "unknown root key",
        "!root\non: push\nfoo: bar\njobs:\n  a:\n    runs-on: x\n    steps: [{run: a}]\n",
        &[(2, 1, "unknown key 'foo' in the workflow")],
    ),
    (
        "both run and uses",
        "      - run: echo hi\n        uses: actions/checkout@v4\n",
        &[(7, 9, "a step cannot have both 'run' and 'uses'")],
    ),
    (
        "neither run nor uses",
        "      - name: nothing\n        env:\n          A: b\n",
        &[(6, 9, "a step needs either 'run' or 'uses'")],
    ),
    (
        "duplicate step ids",
        "      - id: build\n        run: make\n      - id: build\n        run: make test\n",
        &[(8, 13, "duplicate step id 'build' (first used on line 6)")],
    ),
    (
        "needs names a missing job",
        "      - run: make\n  test:\n    needs: [biuld]\n    runs-on: ubuntu-latest\n    steps:\n      - run: make test\n",
        &[(
            8,
            13,
            "job 'test' needs 'biuld', which is not a job in this workflow (did you mean 'build'?)",
        )],
    ),
    (
        "needs cycle",
        "!root\non: push\njobs:\n  a:\n    needs: c\n    runs-on: x\n    steps: [{run: a}]\n  b:\n    needs: a\n    runs-on: x\n    steps: [{run: b}]\n  c:\n    needs: b\n    runs-on: x\n    steps: [{run: c}]\n",
        &[(8, 12, "'needs' form a cycle: a → c → b → a")],
    ),
    (
        "job needs itself",
        "!root\non: push\njobs:\n  a:\n    needs: [a]\n    runs-on: x\n    steps: [{run: a}]\n",
        &[(4, 13, "'needs' form a cycle: a → a")],
    ),
    (
        "bad expression in a plain scalar",
        "      - run: echo ${{ hashfile('x') }}\n",
        &[(6, 23, "unrecognized function 'hashfile'…")],
    ),
    (
        "bad expression inside a block scalar",
        "      - run: |\n          echo one\n          echo ${{ github.sha ) }}\n",
        &[(8, 31, "…")],
    ),
    (
        "bad expression inside a double-quoted scalar with escapes",
        "      - run: \"echo \\\"${{ 1 + }}\\\"\"\n",
        &[(6, 28, "…")],
    ),
    (
        "matrix used in workflow env",
        "!root\non: push\nenv:\n  A: ${{ matrix.os }}\njobs:\n  a:\n    runs-on: x\n    steps: [{run: x}]\n",
        &[(
            3,
            10,
            "Unrecognized named-value: 'matrix' (available here: github, inputs, vars, secrets)",
        )],
    ),
    (
        "matrix used in a job if",
        "      - run: x\n  b:\n    if: matrix.os == 'a'\n    runs-on: x\n    steps: [{run: x}]\n",
        &[(
            8,
            9,
            "Unrecognized named-value: 'matrix' (available here: github, inputs, vars, needs)",
        )],
    ),
    (
        "steps used in runs-on",
        "!root\non: push\njobs:\n  a:\n    runs-on: ${{ steps.x.outputs.os }}\n    steps: [{run: x}]\n",
        &[(
            4,
            18,
            "Unrecognized named-value: 'steps' (available here: github, inputs, vars, secrets, needs, strategy, matrix)",
        )],
    ),
    (
        "hashFiles outside a step",
        "!root\non: push\njobs:\n  a:\n    runs-on: x\n    env:\n      K: ${{ hashFiles('x') }}\n    steps: [{run: x}]\n",
        &[(6, 14, "the function 'hashFiles' is not available here")],
    ),
    (
        "status function outside if",
        "      - run: echo ${{ success() }}\n",
        &[(6, 23, "the function 'success' is not available here")],
    ),
    (
        "bad if condition",
        "      - run: make\n        if: foo(1)\n",
        &[(7, 13, "unrecognized function 'foo'…")],
    ),
    (
        "timeout-minutes is not a number",
        "      - run: make\n        timeout-minutes: soon\n",
        &[(7, 26, "'timeout-minutes' must be a number, found 'soon'")],
    ),
    (
        "continue-on-error is not a boolean",
        "      - run: make\n        continue-on-error: maybe\n",
        &[(
            7,
            28,
            "'continue-on-error' must be true or false, found 'maybe'",
        )],
    ),
    (
        "steps is not a list",
        "!root\non: push\njobs:\n  build:\n    runs-on: x\n    steps: echo hi\n",
        &[(5, 12, "'steps' must be a list, found a string 'echo hi'")],
    ),
    (
        "env is not a mapping",
        "      - run: make\n        env: [A, B]\n",
        &[(7, 14, "'env' must be a mapping, found a list")],
    ),
    (
        "missing jobs",
        "!root\nname: nothing\non: push\n",
        &[(1, 1, "the workflow is missing 'jobs'")],
    ),
    (
        "missing on",
        "!root\njobs:\n  build:\n    runs-on: x\n    steps: [{run: x}]\n",
        &[(1, 1, "the workflow is missing 'on'")],
    ),
    (
        "missing runs-on",
        "!root\non: push\njobs:\n  build:\n    steps:\n      - run: make\n",
        &[(3, 3, "job 'build' is missing 'runs-on'")],
    ),
    (
        "missing steps",
        "!root\non: push\njobs:\n  build:\n    runs-on: x\n",
        &[(3, 3, "job 'build' is missing 'steps'")],
    ),
    (
        "empty file",
        "!root\n",
        &[(
            1,
            1,
            "the workflow file is empty (it needs 'on' and 'jobs')",
        )],
    ),
    (
        "no jobs",
        "!root\non: push\njobs: {}\n",
        &[(2, 7, "'jobs' must define at least one job")],
    ),
    (
        "root is a list",
        "!root\n- a\n- b\n",
        &[(1, 1, "a workflow must be a mapping, found a list")],
    ),
    (
        "with on a run step",
        "      - run: make\n        with:\n          a: b\n",
        &[(7, 9, "'with' is only valid in a step with 'uses'")],
    ),
    (
        "shell on a uses step",
        "      - uses: actions/checkout@v4\n        shell: bash\n",
        &[(7, 9, "'shell' is only valid in a step with 'run'")],
    ),
    (
        "uses without a ref",
        "      - uses: actions/checkout\n",
        &[(
            6,
            15,
            "expected '{owner}/{repo}[/path]@{ref}', './path' or 'docker://image' in 'uses', found 'actions/checkout'",
        )],
    ),
    (
        "expression in uses",
        "      - uses: actions/${{ matrix.a }}@v1\n",
        &[(6, 23, "expressions are not allowed in 'uses'")],
    ),
    (
        "duplicate key",
        "!root\non: push\njobs:\n  build:\n    runs-on: a\n    runs-on: b\n    steps: [{run: x}]\n",
        &[(5, 5, "'runs-on' is already defined on line 4")],
    ),
    (
        "invalid job id",
        "!root\non: push\njobs:\n  1build:\n    runs-on: x\n    steps: [{run: x}]\n",
        &[(
            3,
            3,
            "invalid job id '1build': ids must start with a letter or '_' and contain only letters, digits, '-' and '_'",
        )],
    ),
    (
        "reserved job id",
        "!root\non: push\njobs:\n  __build:\n    runs-on: x\n    steps: [{run: x}]\n",
        &[(
            3,
            3,
            "invalid job id '__build': ids starting with '__' are reserved",
        )],
    ),
    (
        "invalid step id",
        "      - id: my step\n        run: make\n",
        &[(
            6,
            13,
            "invalid step id 'my step': ids must start with a letter or '_' and contain only letters, digits, '-' and '_'",
        )],
    ),
    (
        "matrix include is not a list",
        "      - run: make\n    strategy:\n      matrix:\n        os: [a]\n        include: linux\n",
        &[(
            10,
            18,
            "matrix 'include' must be a list of mappings, found a string 'linux'",
        )],
    ),
    (
        "matrix vector is not a list",
        "      - run: make\n    strategy:\n      matrix:\n        os: linux\n",
        &[(9, 13, "matrix 'os' must be a list, found a string 'linux'")],
    ),
    (
        "several errors are all reported, in file order",
        "      - run: make\n        uses: a/b@v1\n      - id: x\n        run: ${{ ) }}\n",
        &[
            (7, 9, "a step cannot have both 'run' and 'uses'"),
            (9, 18, "…"),
        ],
    ),
];

/// Cases starting with `!root` are whole files; the others are steps appended to [`HEAD`].
fn source(text: &str) -> String {
    match text.strip_prefix("!root\n") {
        Some(whole) => whole.to_string(),
        None => format!("{HEAD}{text}"),
    }
}

#[test]
fn every_load_error_names_file_line_column_and_message() {
    for (case, text, expected) in CASES {
        let src = source(text);
        let err = match load(&src) {
            Ok(_) => panic!("{case}: loaded but should fail"),
            Err(e) => e,
        };
        let errors = err.errors();
        assert_eq!(
            errors.len(),
            expected.len(),
            "{case}: wrong number of errors:\n{err}"
        );
        for (got, (line, column, message)) in errors.iter().zip(expected.iter()) {
            assert_eq!(
                got.path.file_name().and_then(|n| n.to_str()),
                Some("ci.yml"),
                "{case}"
            );
            assert_eq!((got.line, got.column), (*line, *column), "{case}: {got}");
            match message.strip_suffix('…') {
                Some(prefix) => assert!(got.message.starts_with(prefix), "{case}: {got}"),
                None => assert_eq!(got.message, *message, "{case}"),
            }
            let want_line = src.lines().nth(line - 1).unwrap_or("");
            assert_eq!(got.source_line, want_line, "{case}");
        }
    }
}

#[test]
fn error_renders_file_line_column_the_line_and_a_caret() {
    let src = format!("{HEAD}      - run: echo ${{{{ hashfile('x') }}}}\n");
    let file = write(&src);
    let err = runner::workflow::load(&file.path).expect_err("must fail");
    let text = err.to_string();
    let first = text.lines().next().unwrap_or("");
    let want = format!(
        "{}:6:23: unrecognized function 'hashfile'",
        file.path.display()
    );
    assert!(first.starts_with(&want), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "        - run: echo ${{ hashfile('x') }}");
    assert_eq!(lines[2], format!("  {}^", " ".repeat(22)));
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("nope.yml");
    let err = runner::workflow::load(&path).expect_err("must fail");
    assert!(
        matches!(&err, runner::workflow::WorkflowError::Io { path: p, .. } if *p == path),
        "{err}"
    );
    assert!(err.to_string().contains("nope.yml"), "{err}");
}

#[test]
fn garbage_never_panics() {
    let inputs = [
        "\u{feff}on: push\n",
        "{{{{",
        "jobs: [",
        "jobs:\n  a:\n    steps:\n      - - - -\n",
        "jobs:\n  a: &x\n    needs: *x\n",
        "jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: ${{",
        "jobs:\n  a:\n    runs-on: x\n    steps:\n      - run: \"\\u00\"\n",
        "\t\tjobs:",
        "jobs:\n  ? [a, b]\n  : c\n",
        "%TAG ! tag:x,2000:\n---\njobs: !foo {}\n",
    ];
    for input in inputs {
        let _ = load(input);
    }
}

const VALID: &str = "name: CI\non: [push]\nenv:\n  A: ${{ github.sha }}\njobs:\n  build:\n    runs-on: ubuntu-latest\n    strategy:\n      matrix:\n        os: [a, b]\n    steps:\n      - id: one\n        if: success() && matrix.os == 'a'\n        run: |\n          echo ${{ matrix.os }}\n      - uses: actions/cache@v4\n        with:\n          key: k-${{ hashFiles('x') }}\n  test:\n    needs: build\n    runs-on: x\n    steps: [{run: \"echo 'hi'\"}]\n";

proptest::proptest! {
    /// Random edits of a valid workflow never panic, and every error points into the file and
    /// shows the line it names.
    #[test]
    fn mutated_workflows_fail_cleanly(
        at in 0usize..VALID.len(),
        cut in 0usize..6,
        insert in "[a-z:\\-\\[\\]{}$&*|>'\"# \\n()=!.]{0,4}",
    ) {
        let at = (0..=at).rev().find(|i| VALID.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + cut).min(VALID.len());
        let end = (end..=VALID.len()).find(|i| VALID.is_char_boundary(*i)).unwrap_or(VALID.len());
        let src = format!("{}{}{}", &VALID[..at], insert, &VALID[end..]);
        let lines: Vec<&str> = src.split('\n').collect();
        match runner::workflow::parse(std::path::Path::new("ci.yml"), &src) {
            Ok(_) => {}
            Err(err) => {
                proptest::prop_assert!(!err.errors().is_empty());
                for e in err.errors() {
                    proptest::prop_assert!(e.line >= 1 && e.line <= lines.len(), "{e}");
                    proptest::prop_assert!(e.column >= 1, "{e}");
                    let want = lines[e.line - 1].strip_suffix('\r').unwrap_or(lines[e.line - 1]);
                    proptest::prop_assert_eq!(e.source_line.as_str(), want);
                }
            }
        }
    }
}
