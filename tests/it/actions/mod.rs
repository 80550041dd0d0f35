//! `uses:` actions that really run: actions fetched from a git base URL into the action cache
//! and reused offline, `--list`, composite depth, and `@actions/cache` through the embedded
//! cache server.

use std::path::Path;

use crate::support::{bare_action_repo, on_path, run_runner, write_tree};

const JS_ACTION: &[(&str, &str)] = &[
    (
        "action.yml",
        "name: hello\nruns:\n  using: node20\n  pre: pre.js\n  main: main.js\n  post: post.js\n",
    ),
    (
        "pre.js",
        "const fs = require('fs');\n\
         fs.appendFileSync(process.env.GITHUB_STATE, 'from_pre=yes\\n');\n\
         fs.writeFileSync(process.env.GITHUB_WORKSPACE + '/pre.txt', process.env.GITHUB_ACTION_REPOSITORY + '@' + process.env.GITHUB_ACTION_REF + '\\n');\n",
    ),
    (
        "main.js",
        "require('fs').writeFileSync(process.env.GITHUB_WORKSPACE + '/main.txt', 'pre state: ' + process.env.STATE_from_pre + '\\n');\n",
    ),
    (
        "post.js",
        "require('fs').writeFileSync(process.env.GITHUB_WORKSPACE + '/post.txt', 'post\\n');\n",
    ),
    (
        "sub/action.yml",
        "name: sub\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      run: echo sub > \"$GITHUB_WORKSPACE/sub.txt\"\n",
    ),
];

const REMOTE_WORKFLOW: &str = "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: acme/hello@v1\n      - uses: acme/hello/sub@v1\n";

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("<{}: {e}>", path.display()))
}

fn remove(dir: &Path, names: &[&str]) {
    for name in names {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

#[test]
fn a_repository_action_is_fetched_once_runs_its_pre_and_is_reused_offline() {
    if !on_path("node") || !on_path("git") {
        eprintln!("skipped: node and git are needed to run a fetched JavaScript action");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let git_root = tmp.path().join("git");
    bare_action_repo(&git_root, "acme", "hello", "v1", JS_ACTION);
    let ws = tmp.path().join("ws");
    write_tree(&ws, &[("ci.yml", REMOTE_WORKFLOW)]);
    let url = format!("file://{}", git_root.display());

    let first = run_runner(&ws, &["exec", "ci.yml", "--actions-url", &url]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    // As on GitHub, a repository action's `pre` runs before the first step, and its state
    // reaches the main script.
    assert_eq!(read(&ws.join("pre.txt")), "acme/hello@v1\n");
    assert_eq!(read(&ws.join("main.txt")), "pre state: yes\n");
    assert_eq!(read(&ws.join("post.txt")), "post\n");
    assert_eq!(read(&ws.join("sub.txt")), "sub\n");
    let cached = ws.join(".runner-cache/actions-v1/acme/hello/v1");
    assert!(cached.join("action.yml").is_file(), "{}", first.stderr);
    assert!(
        first.stderr.contains("Pre Run acme/hello@v1"),
        "{}",
        first.stderr
    );

    // The repository is gone: --offline runs both actions from the action cache.
    std::fs::remove_dir_all(&git_root).expect("remove the git server");
    remove(&ws, &["pre.txt", "main.txt", "post.txt", "sub.txt"]);
    let offline = run_runner(&ws, &["exec", "ci.yml", "--offline"]);
    assert_eq!(offline.code, 0, "{}\n{}", offline.stdout, offline.stderr);
    assert_eq!(read(&ws.join("main.txt")), "pre state: yes\n");
    assert_eq!(read(&ws.join("sub.txt")), "sub\n");

    // A ref that was never fetched says which action is missing, and fails the step.
    write_tree(
        &ws,
        &[(
            "ci.yml",
            &REMOTE_WORKFLOW.replace("acme/hello/sub@v1", "acme/hello@v2"),
        )],
    );
    let missing = run_runner(&ws, &["exec", "ci.yml", "--offline"]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing
            .stderr
            .contains("action 'acme/hello@v2' is not in the action cache"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_fetch_that_fails_names_the_action_and_leaves_no_partial_copy() {
    if !on_path("git") {
        eprintln!("skipped: git is not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = tmp.path().join("ws");
    write_tree(&ws, &[("ci.yml", REMOTE_WORKFLOW)]);
    let url = format!("file://{}", tmp.path().join("no-such-server").display());
    let run = run_runner(&ws, &["exec", "ci.yml", "--actions-url", &url]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot fetch action 'acme/hello@v1' from file://"),
        "{}",
        run.stderr
    );
    let repo_dir = ws.join(".runner-cache/actions-v1/acme/hello");
    let leftovers: Vec<_> = std::fs::read_dir(&repo_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn list_says_how_each_step_would_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = tmp.path();
    write_tree(
        ws,
        &[
            (
                "ci.yml",
                "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - uses: actions/cache@v4\n        with: {path: x, key: k}\n      - uses: ./comp\n      - name: JS\n        uses: ./js\n      - uses: docker://alpine:3\n      - uses: acme/missing@v1\n      - run: echo hi\n",
            ),
            (
                "comp/action.yml",
                "runs:\n  using: composite\n  steps:\n    - run: echo\n      shell: bash\n",
            ),
            (
                "js/action.yml",
                "runs:\n  using: node24\n  main: index.js\n",
            ),
        ],
    );
    let run = run_runner(ws, &["exec", "ci.yml", "--list", "--offline"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "build");
    assert_eq!(lines[1], "  Run actions/checkout@v4: native");
    assert_eq!(lines[2], "  Run actions/cache@v4: native");
    assert_eq!(lines[3], "  Run ./comp: composite");
    assert_eq!(lines[4], "  JS (./js): node (node24)");
    assert_eq!(
        lines[5],
        "  Run docker://alpine:3: not run: Docker actions are not supported"
    );
    assert!(
        lines[6].starts_with(
            "  Run acme/missing@v1: not run: action 'acme/missing@v1' is not in the action cache"
        ),
        "{}",
        lines[6]
    );
    assert_eq!(lines[7], "  Run echo hi: run");
    // --cache-action=node hands actions/cache to the real action (here: not in the cache).
    let node = run_runner(
        ws,
        &[
            "exec",
            "ci.yml",
            "--list",
            "--offline",
            "--cache-action",
            "node",
        ],
    );
    assert!(
        node.stdout.contains(
            "  Run actions/cache@v4: not run: action 'actions/cache@v4' is not in the action cache"
        ),
        "{}",
        node.stdout
    );
}

#[test]
fn composite_actions_nested_too_deep_fail_instead_of_recursing_forever() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = tmp.path();
    write_tree(
        ws,
        &[
            (
                "ci.yml",
                "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: ./loop\n",
            ),
            (
                "loop/action.yml",
                "runs:\n  using: composite\n  steps:\n    - uses: ./loop\n",
            ),
        ],
    );
    let run = run_runner(ws, &["exec", "ci.yml"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("composite actions are nested more than 10 deep"),
        "{}",
        run.stderr
    );
}

/// `node_modules` holding `@actions/cache@4`, installed once per build directory from the npm
/// registry; `None` (with the reason) when node, npm or the network is missing.
fn toolkit_modules() -> Result<std::path::PathBuf, String> {
    if !on_path("node") || !on_path("npm") {
        return Err("node and npm are needed for the @actions/cache test".into());
    }
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("actions-cache-npm");
    let modules = root.join("node_modules");
    if modules.join("@actions/cache/package.json").is_file() {
        return Ok(modules);
    }
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let out = std::process::Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--silent",
            "@actions/cache@4",
        ])
        .current_dir(&root)
        .output()
        .map_err(|e| format!("cannot run npm: {e}"))?;
    if !out.status.success() || !modules.join("@actions/cache/package.json").is_file() {
        return Err(format!(
            "npm install @actions/cache@4 failed (no network?): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(modules)
}

#[test]
fn an_action_built_on_actions_cache_saves_and_restores_through_the_embedded_server() {
    let modules = match toolkit_modules() {
        Ok(m) => m,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = tmp.path();
    crate::support::copy_dir(
        &crate::support::repo_root().join("fixtures/actions"),
        &ws.join(".github/actions"),
        &[],
    )
    .expect("copy the fixture actions");
    // A composite action wrapping a JavaScript action with post that uses @actions/cache.
    write_tree(
        ws,
        &[(
            "ci.yml",
            "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - id: build\n        uses: ./.github/actions/cached-build\n        with:\n          key: deps-${{ runner.os }}-1\n      - run: echo \"hit=${{ steps.build.outputs.cache-hit }}\" > hit.txt\n",
        )],
    );
    let node_path = format!("NODE_PATH={}", modules.display());
    let args = [
        "exec",
        "ci.yml",
        "--repository",
        "acme/app",
        "--ref",
        "refs/heads/main",
        "--env",
        &node_path,
    ];
    let first = run_runner(ws, &args);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert!(
        first.stderr.contains("cache miss for deps-Linux-1"),
        "{}",
        first.stderr
    );
    assert!(first.stderr.contains("saved cache id"), "{}", first.stderr);
    assert!(
        !first.stderr.contains("saved cache id -1"),
        "{}",
        first.stderr
    );
    // The token the action printed is masked.
    assert!(first.stderr.contains("token: ***"), "{}", first.stderr);
    assert!(!first.stderr.contains("token: eyJ"), "{}", first.stderr);

    // The entry is in our store, next to native ones, under the job's repository and ref.
    let list = run_runner(ws, &["cache", "list", "-R", "acme/app", "--json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.contains("deps-Linux-1"), "{}", list.stdout);
    assert!(list.stdout.contains("refs/heads/main"), "{}", list.stdout);

    std::fs::remove_dir_all(ws.join("deps")).expect("remove deps");
    std::fs::remove_file(ws.join("built.txt")).expect("remove built.txt");
    let second = run_runner(ws, &args);
    assert_eq!(second.code, 0, "{}\n{}", second.stdout, second.stderr);
    assert!(
        second.stderr.contains("restored from key: deps-Linux-1"),
        "{}",
        second.stderr
    );
    assert_eq!(read(&ws.join("deps/lib.txt")), "built\n");
    assert!(
        !ws.join("built.txt").exists(),
        "the build ran despite the hit"
    );
}

#[test]
fn an_older_node_and_a_missing_required_input_are_warnings_and_post_if_is_honoured() {
    if !on_path("node") {
        eprintln!("skipped: node is not on PATH");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let ws = tmp.path();
    write_tree(
        ws,
        &[
            (
                "ci.yml",
                "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: ./new\n",
            ),
            (
                "new/action.yml",
                "inputs:\n  name:\n    required: true\nruns:\n  using: node24\n  main: main.js\n  post: post.js\n  post-if: failure()\n",
            ),
            ("new/main.js", "console.log('main ran');\n"),
            ("new/post.js", "console.log('post ran');\n"),
            // Reports an old version, runs the real node otherwise.
            (
                "old-node",
                "#!/bin/sh\nif [ \"$1\" = --version ]; then echo v16.20.0; exit 0; fi\nexec node \"$@\"\n",
            ),
        ],
    );
    let old_node = ws.join("old-node");
    std::fs::set_permissions(
        &old_node,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let run = run_runner(
        ws,
        &["exec", "ci.yml", "--node", &old_node.display().to_string()],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains("main ran"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("this action asks for node24, but the host's node is v16"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("post ran"), "{}", run.stderr);
    assert!(
        run.stderr.contains("Input required and not supplied: name"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("Post Run ./new (skipped: if: failure() was false)"),
        "{}",
        run.stderr
    );
}

#[test]
fn cache_action_node_runs_the_javascript_actions_cache_instead_of_the_native_one() {
    if !on_path("node") || !on_path("git") {
        eprintln!("skipped: node and git are needed to run a fetched JavaScript action");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let git_root = tmp.path().join("git");
    // A stand-in for actions/cache that reports what it was given.
    bare_action_repo(
        &git_root,
        "actions",
        "cache",
        "v4",
        &[
            (
                "action.yml",
                "inputs:\n  key: {required: true}\n  path: {required: true}\nruns:\n  using: node20\n  main: main.js\n",
            ),
            (
                "main.js",
                "console.log(`js cache key=${process.env.INPUT_KEY} server=${process.env.ACTIONS_RESULTS_URL ? 'yes' : 'no'} v2=${process.env.ACTIONS_CACHE_SERVICE_V2}`);\n",
            ),
        ],
    );
    let ws = tmp.path().join("ws");
    write_tree(
        &ws,
        &[(
            "ci.yml",
            "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/cache@v4\n        with: {key: k1, path: x}\n",
        )],
    );
    let url = format!("file://{}", git_root.display());
    let run = run_runner(
        &ws,
        &[
            "exec",
            "ci.yml",
            "--actions-url",
            &url,
            "--cache-action",
            "node",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("js cache key=k1 server=yes v2=true"),
        "{}",
        run.stderr
    );
    // By default the same step is native: nothing is fetched for it.
    let native = run_runner(&ws, &["exec", "ci.yml", "--offline"]);
    assert_eq!(native.code, 0, "{}", native.stderr);
    assert!(!native.stderr.contains("js cache"), "{}", native.stderr);
}

/// `pre-if` decides whether a repository action's `pre` runs (with the job's contexts), and a
/// skipped `pre` is reported with its condition; the main step still runs.
#[test]
fn pre_if_false_skips_the_pre_step_and_says_why() {
    if !on_path("node") || !on_path("git") {
        eprintln!("skipped: node and git are needed to run a fetched JavaScript action");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let git_root = tmp.path().join("git");
    let manifest = "name: hello\nruns:\n  using: node20\n  pre: pre.js\n  pre-if: runner.os == 'NotThisOs'\n  main: main.js\n";
    let files: Vec<(&str, &str)> = JS_ACTION
        .iter()
        .map(|&(name, body)| {
            if name == "action.yml" {
                (name, manifest)
            } else {
                (name, body)
            }
        })
        .collect();
    bare_action_repo(&git_root, "acme", "hello", "v1", &files);
    let ws = tmp.path().join("ws");
    let workflow = "on: push\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: acme/hello@v1\n";
    write_tree(&ws, &[("ci.yml", workflow)]);
    let url = format!("file://{}", git_root.display());
    let run = run_runner(&ws, &["exec", "ci.yml", "--actions-url", &url]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(!ws.join("pre.txt").exists(), "pre ran: {}", run.stderr);
    assert!(
        run.stderr
            .contains("pre-if: runner.os == 'NotThisOs' was false"),
        "{}",
        run.stderr
    );
    // The main step ran, without the state a pre would have saved.
    assert_eq!(read(&ws.join("main.txt")), "pre state: undefined\n");
}
