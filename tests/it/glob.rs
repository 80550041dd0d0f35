//! Integration tests: glob patterns, the ordered walk, hashFiles and cache path resolution, over
//! real trees in temp dirs. Expected hashes are computed here from the expected file list (in
//! the expected walk order), so each row checks both the selection and the order.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use runner::glob::{
    GlobError, GlobOptions, HashOptions, archive_roots, glob, hash_files, resolve_paths,
};
use sha2::{Digest, Sha256};

use crate::support::{runner_bin, write_tree};

/// The runner's documented example: `b/x.lock` containing `b\n`.
const EXAMPLE_HASH: &str = "c606dd677840d364890dce4afe87cfa83260633ed6020d197e8837f553dbbb89";

/// The shared tree: nested dirs, dotfiles, spaces, unicode, glob characters in names.
const TREE: &[(&str, &str)] = &[
    ("a.txt", "a\n"),
    ("a-b.txt", "a-b\n"),
    ("B.txt", "B\n"),
    ("b/x.lock", "b\n"),
    ("b/c/y.txt", "y\n"),
    ("b/c/d/deep.js", "deep\n"),
    (".env", "env\n"),
    (".hidden/h.txt", "h\n"),
    ("sp ace/f.txt", "space\n"),
    ("ünï/日本.txt", "unicode\n"),
    ("z[1]/k.txt", "k\n"),
    ("{a,b}.md", "brace\n"),
    ("src/main.js", "main\n"),
    ("src/lib/util.js", "util\n"),
    ("src/lib/util.test.js", "test\n"),
    ("node_modules/p/package.json", "p\n"),
    ("node_modules/p/node_modules/q/package.json", "q\n"),
];

/// Every file of `TREE` in the runner's walk order: depth first, names sorted bytewise.
const ALL_IN_ORDER: &[&str] = &[
    ".env",
    ".hidden/h.txt",
    "B.txt",
    "a-b.txt",
    "a.txt",
    "b/c/d/deep.js",
    "b/c/y.txt",
    "b/x.lock",
    "node_modules/p/node_modules/q/package.json",
    "node_modules/p/package.json",
    "sp ace/f.txt",
    "src/lib/util.js",
    "src/lib/util.test.js",
    "src/main.js",
    "z[1]/k.txt",
    "{a,b}.md",
    "ünï/日本.txt",
];

fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tree(dir.path(), TREE);
    dir
}

fn strings(patterns: &[&str]) -> Vec<String> {
    patterns.iter().map(|p| (*p).to_owned()).collect()
}

/// sha256 over the raw sha256 of each file, in the given order; `""` for none.
fn expected_hash(root: &Path, files: &[&str]) -> String {
    if files.is_empty() {
        return String::new();
    }
    let mut total = Sha256::new();
    for file in files {
        let bytes = std::fs::read(root.join(file)).expect("read expected file");
        total.update(Sha256::digest(&bytes));
    }
    hex::encode(total.finalize())
}

fn hash(root: &Path, patterns: &[&str]) -> Result<String, GlobError> {
    hash_files(root, &strings(patterns), &HashOptions::default())
}

fn hash_follow(root: &Path, patterns: &[&str]) -> Result<String, GlobError> {
    hash_files(
        root,
        &strings(patterns),
        &HashOptions {
            follow_symbolic_links: true,
        },
    )
}

/// Relative paths of a glob's result (`.` for the root itself).
fn relative(root: &Path, paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| match p.strip_prefix(root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
            Ok(rel) => rel.to_string_lossy().into_owned(),
            Err(_) => p.to_string_lossy().into_owned(),
        })
        .collect()
}

#[test]
fn documented_example_hash() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tree(dir.path(), &[("b/x.lock", "b\n")]);
    for pattern in ["**", "b/x.lock", "**/*.lock", "b", "b/", "./b/*"] {
        assert_eq!(
            hash(dir.path(), &[pattern]).expect("hash"),
            EXAMPLE_HASH,
            "pattern {pattern:?}"
        );
    }
}

#[test]
fn hash_files_selects_and_orders_like_the_runner() {
    // (patterns, the files hashed in order)
    let rows: &[(&[&str], &[&str])] = &[
        (&["**"], ALL_IN_ORDER),
        (&["*"], ALL_IN_ORDER), // implicit descendants: `*` also means `*/**`
        (&["."], ALL_IN_ORDER),
        (
            &["**/*.txt"],
            &[
                ".hidden/h.txt",
                "B.txt",
                "a-b.txt",
                "a.txt",
                "b/c/y.txt",
                "sp ace/f.txt",
                "z[1]/k.txt",
                "ünï/日本.txt",
            ],
        ),
        (&["b"], &["b/c/d/deep.js", "b/c/y.txt", "b/x.lock"]),
        (&["b/"], &["b/c/d/deep.js", "b/c/y.txt", "b/x.lock"]),
        (&["b/**"], &["b/c/d/deep.js", "b/c/y.txt", "b/x.lock"]),
        // `*/` matches directories only, each then implies its descendants.
        (&["b/*/"], &["b/c/d/deep.js", "b/c/y.txt"]),
        (&["*.txt/"], &[]),
        (
            &["**/node_modules/**/package.json"],
            &[
                "node_modules/p/node_modules/q/package.json",
                "node_modules/p/package.json",
            ],
        ),
        (
            &["src/**/util*.js"],
            &["src/lib/util.js", "src/lib/util.test.js"],
        ),
        (&["**/lib/*.test.js"], &["src/lib/util.test.js"]),
        // Dotfiles match `*` and `**`, and `.*` names them explicitly.
        (&[".*"], &[".env", ".hidden/h.txt"]),
        (&["?.txt"], &["B.txt", "a.txt"]),
        (&["[ab].txt"], &["a.txt"]),
        (&["[!a].txt"], &["B.txt"]),
        (&["[A-Z].txt"], &["B.txt"]),
        // No brace expansion: `{a,b}` is literal.
        (&["{a,b}.md"], &["{a,b}.md"]),
        (&["{a,b}.txt"], &[]),
        (&["sp ace/*"], &["sp ace/f.txt"]),
        (&["ünï/**"], &["ünï/日本.txt"]),
        (&["**/日本.txt"], &["ünï/日本.txt"]),
        // `[1]` is a class; escape the bracket to name the directory.
        (&["z[[]1]/*"], &["z[1]/k.txt"]),
        (&["z\\[1]/*"], &["z[1]/k.txt"]),
        (&["z[1]/*"], &[]),
        // Negation, and later patterns overriding earlier ones.
        (&["b/**", "!**/*.txt"], &["b/c/d/deep.js", "b/x.lock"]),
        (
            &["b/**", "!b/c/**", "b/c/y.txt"],
            &["b/c/y.txt", "b/x.lock"],
        ),
        (&["b/**", "b/c/y.txt", "!b/c/**"], &["b/x.lock"]),
        (&["!!b/x.lock"], &["b/x.lock"]),
        (&["b", "!b/c"], &["b/x.lock"]),
        // Roots are walked in pattern order; descendants of an earlier root are not repeated.
        (&["src/main.js", "b/x.lock"], &["src/main.js", "b/x.lock"]),
        (&["b/x.lock", "src/main.js"], &["b/x.lock", "src/main.js"]),
        (
            &["b/c/**", "b/**"],
            &["b/c/d/deep.js", "b/c/y.txt", "b/x.lock"],
        ),
        (&["b/x.lock", "b/x.lock"], &["b/x.lock"]),
        // One argument holding several lines, with comments and blank lines.
        (
            &["# lock files first\n  b/x.lock  \n\n#src/**\na.txt\n"],
            &["b/x.lock", "a.txt"],
        ),
        (&["nothing/**"], &[]),
        (&["**/*.none"], &[]),
        (&["#b/**"], &[]),
    ];
    let dir = tree();
    for (patterns, files) in rows {
        assert_eq!(
            hash(dir.path(), patterns).expect("hash"),
            expected_hash(dir.path(), files),
            "patterns {patterns:?}"
        );
    }
}

#[test]
fn pattern_order_changes_the_result() {
    let dir = tree();
    let forward = hash(dir.path(), &["src/main.js", "b/x.lock"]).expect("hash");
    let backward = hash(dir.path(), &["b/x.lock", "src/main.js"]).expect("hash");
    assert_ne!(forward, backward);
    assert!(!forward.is_empty());
}

#[test]
fn relative_segments_are_refused() {
    let dir = tree();
    for pattern in [
        "../x",
        "b/../a.txt",
        "b/..",
        "**/..",
        "!b/..",
        "b/./x.lock",
        "b/[.]/x",
    ] {
        let err = hash(dir.path(), &["**", pattern]).expect_err(pattern);
        assert!(
            matches!(&err, GlobError::InvalidPattern { reason, .. } if reason.contains("'..'")),
            "pattern {pattern:?}: {err}"
        );
    }
}

#[test]
fn files_outside_the_workspace_are_skipped() {
    let outside = tempfile::tempdir().expect("temp dir");
    write_tree(outside.path(), &[("o.txt", "outside\n")]);
    let dir = tree();
    let pattern = format!("{}/**", outside.path().display());
    assert_eq!(hash(dir.path(), &[&pattern]).expect("hash"), "");
    assert_eq!(
        hash(dir.path(), &[&pattern, "a.txt"]).expect("hash"),
        expected_hash(dir.path(), &["a.txt"])
    );
    // The same tree is hashed when it is the workspace.
    assert_eq!(
        hash(outside.path(), &[&pattern]).expect("hash"),
        expected_hash(outside.path(), &["o.txt"])
    );
}

#[test]
fn symlinks_without_following() {
    let dir = tree();
    let root = dir.path();
    symlink("a.txt", root.join("lf")).expect("symlink");
    symlink("b", root.join("ld")).expect("symlink");
    // A link to a file is hashed as the file's content, under the link's name and place.
    assert_eq!(
        hash(root, &["lf"]).expect("hash"),
        expected_hash(root, &["a.txt"])
    );
    // A link to a directory is not descended, whether named or walked over.
    assert_eq!(hash(root, &["ld/**"]).expect("hash"), "");
    assert_eq!(hash(root, &["ld"]).expect("hash"), "");
    let mut with_lf: Vec<&str> = ALL_IN_ORDER.to_vec();
    with_lf.insert(
        with_lf
            .iter()
            .position(|f| *f == "node_modules/p/node_modules/q/package.json")
            .expect("in list"),
        "lf",
    );
    let expected_all = {
        let mut total = Sha256::new();
        for file in &with_lf {
            let real = if *file == "lf" { "a.txt" } else { file };
            total.update(Sha256::digest(
                std::fs::read(root.join(real)).expect("read"),
            ));
        }
        hex::encode(total.finalize())
    };
    assert_eq!(hash(root, &["**"]).expect("hash"), expected_all);
    // A literal path through the link still reaches the file (the OS resolves it).
    assert_eq!(
        hash(root, &["ld/x.lock"]).expect("hash"),
        expected_hash(root, &["b/x.lock"])
    );
}

#[test]
fn symlinks_with_following() {
    let outside = tempfile::tempdir().expect("temp dir");
    write_tree(outside.path(), &[("o.txt", "outside\n")]);
    let dir = tree();
    let root = dir.path();
    symlink("b", root.join("ld")).expect("symlink");
    symlink(outside.path(), root.join("out")).expect("symlink");
    // Descends the linked directory; its files count under the link's path.
    assert_eq!(
        hash_follow(root, &["ld/**"]).expect("hash"),
        expected_hash(root, &["b/c/d/deep.js", "b/c/y.txt", "b/x.lock"])
    );
    // Links leading outside the workspace are followed: the paths are still inside it.
    assert_eq!(
        hash_follow(root, &["out/**"]).expect("hash"),
        expected_hash(outside.path(), &["o.txt"])
    );
    assert_eq!(hash(root, &["out/**"]).expect("hash"), "");
}

#[test]
fn symlink_loop_is_cut_when_following() {
    let dir = tree();
    let root = dir.path();
    symlink("../..", root.join("b/c/up")).expect("symlink");
    symlink(".", root.join("src/self")).expect("symlink");
    // The loops add nothing: each directory already on the chain is skipped.
    assert_eq!(
        hash_follow(root, &["**"]).expect("hash"),
        expected_hash(root, ALL_IN_ORDER)
    );
    // Without following, the links are symlinks to directories: skipped too.
    assert_eq!(
        hash(root, &["**"]).expect("hash"),
        expected_hash(root, ALL_IN_ORDER)
    );
}

#[test]
fn dangling_symlink_fails_unless_following() {
    let dir = tree();
    let root = dir.path();
    symlink("does-not-exist", root.join("b/dangling")).expect("symlink");
    let err = hash(root, &["**"]).expect_err("dangling link must fail");
    assert!(
        matches!(&err, GlobError::DanglingSymlink { path } if path.ends_with("b/dangling")),
        "{err}"
    );
    // Not matched: no error.
    assert_eq!(
        hash(root, &["b/**/*.lock"]).expect("hash"),
        expected_hash(root, &["b/x.lock"])
    );
    // Following links: broken ones are omitted.
    assert_eq!(
        hash_follow(root, &["b/**"]).expect("hash"),
        expected_hash(root, &["b/c/d/deep.js", "b/c/y.txt", "b/x.lock"])
    );
}

#[test]
fn workspace_given_through_a_symlink_is_resolved() {
    let dir = tree();
    let link_parent = tempfile::tempdir().expect("temp dir");
    let link = link_parent.path().join("ws");
    symlink(dir.path(), &link).expect("symlink");
    let real = format!(
        "{}/b/x.lock",
        dir.path().canonicalize().expect("real").display()
    );
    assert_eq!(hash(&link, &[&real]).expect("hash"), EXAMPLE_HASH);
    assert_eq!(hash(&link, &["b/x.lock"]).expect("hash"), EXAMPLE_HASH);
}

#[test]
fn resolve_paths_returns_directories_once() {
    let dir = tree();
    let root = dir.path();
    // (patterns, resolved paths relative to the workspace in order, what a save archives: the
    // same without what lies inside a matched directory)
    type Row<'a> = (&'a [&'a str], &'a [&'a str], &'a [&'a str]);
    let rows: &[Row] = &[
        (&["node_modules"], &["node_modules"], &["node_modules"]),
        (&["node_modules/"], &["node_modules"], &["node_modules"]),
        (
            &["**/node_modules"],
            &["node_modules", "node_modules/p/node_modules"],
            &["node_modules"],
        ),
        (
            &["b/x.lock", "src"],
            &["b/x.lock", "src"],
            &["b/x.lock", "src"],
        ),
        (
            &["src/**", "!src/lib/**"],
            &["src", "src/main.js"],
            &["src"],
        ),
        (&["src/*", "!src/lib"], &["src/main.js"], &["src/main.js"]),
        (&["b/*"], &["b/c", "b/x.lock"], &["b/c", "b/x.lock"]),
        (&["b/*/"], &["b/c"], &["b/c"]),
        (&["missing", "b/c/d"], &["b/c/d"], &["b/c/d"]),
        (&["."], &["."], &["."]),
    ];
    for (patterns, expected, archived) in rows {
        let resolved = resolve_paths(root, &strings(patterns)).expect("resolve");
        assert_eq!(
            relative(root, &resolved),
            *expected,
            "patterns {patterns:?}"
        );
        assert!(resolved.iter().all(|p| p.is_absolute()));
        let roots = archive_roots(root, &strings(patterns)).expect("archive roots");
        assert_eq!(relative(root, &roots), *archived, "patterns {patterns:?}");
    }
}

#[test]
fn resolve_paths_home_and_outside() {
    let home = tempfile::tempdir().expect("temp dir");
    write_tree(
        home.path(),
        &[(".npm/_cacache/index", "i\n"), ("other", "o\n")],
    );
    let outside = tempfile::tempdir().expect("temp dir");
    write_tree(outside.path(), &[("tool/bin", "b\n")]);
    let dir = tree();
    let options = GlobOptions {
        implicit_descendants: false,
        home_dir: Some(home.path().to_owned()),
        ..GlobOptions::default()
    };
    let outside_pattern = format!("{}/tool", outside.path().display());
    let resolved = glob(
        dir.path(),
        &strings(&["~/.npm", "!~/.npm/_cacache", &outside_pattern, "b/x.lock"]),
        &options,
    )
    .expect("resolve");
    assert_eq!(
        resolved,
        vec![
            home.path().join(".npm"),
            outside.path().join("tool"),
            dir.path().join("b/x.lock"),
        ]
    );
    // `~` alone and `~/`-prefixed globs.
    let resolved = glob(dir.path(), &strings(&["~/*"]), &options).expect("resolve");
    assert_eq!(
        resolved,
        vec![home.path().join(".npm"), home.path().join("other")]
    );
}

#[test]
fn resolve_paths_relative_workspace_stays_a_prefix() {
    let dir = tree();
    let cwd = std::env::current_dir().expect("cwd");
    // An absolute workspace with `..` components is normalized before rooting patterns.
    let indirect = dir.path().join("b").join("..");
    let resolved = resolve_paths(&indirect, &strings(&["a.txt"])).expect("resolve");
    assert_eq!(resolved, vec![dir.path().join("a.txt")]);
    assert_eq!(std::env::current_dir().expect("cwd"), cwd);
}

#[test]
fn glob_with_implicit_descendants_lists_directories_and_files() {
    let dir = tree();
    let found = glob(dir.path(), &strings(&["b"]), &GlobOptions::default()).expect("glob");
    assert_eq!(
        relative(dir.path(), &found),
        vec![
            "b",
            "b/c",
            "b/c/d",
            "b/c/d/deep.js",
            "b/c/y.txt",
            "b/x.lock"
        ]
    );
}

fn cli(workspace: &Path, args: &[&str]) -> std::process::Output {
    Command::new(runner_bin())
        .arg("hash-files")
        .arg("--workspace")
        .arg(workspace)
        .args(args)
        .output()
        .expect("run runner")
}

#[test]
fn cli_prints_the_hash() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_tree(dir.path(), &[("b/x.lock", "b\n")]);
    let out = cli(dir.path(), &["**/*.lock"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{EXAMPLE_HASH}\n")
    );

    // Without --workspace the current directory is the workspace.
    let out = Command::new(runner_bin())
        .args(["hash-files", "b/*"])
        .current_dir(dir.path())
        .output()
        .expect("run runner");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{EXAMPLE_HASH}\n")
    );
}

#[test]
fn cli_prints_an_empty_line_when_nothing_matched() {
    let dir = tree();
    let out = cli(dir.path(), &["nothing/**"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "\n");
}

#[test]
fn cli_errors_exit_2_with_a_message() {
    let dir = tree();
    symlink("nowhere", dir.path().join("dl")).expect("symlink");
    // (arguments, text expected on stderr)
    let rows: &[(&[&str], &str)] = &[
        (&["a/../b"], "'..' is not allowed"),
        (&["**"], "broken symbolic link"),
        (&["--bogus", "**"], "unexpected argument '--bogus'"),
        // After `--`, hashFiles' own rule: a first argument starting with `--` is its option.
        (&["--", "--bogus", "**"], "invalid glob option '--bogus'"),
    ];
    for (args, message) in rows {
        let out = cli(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "args {args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "args {args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn cli_follow_symbolic_links_anywhere() {
    let dir = tree();
    symlink("b", dir.path().join("ld")).expect("symlink");
    let expected = expected_hash(dir.path(), &["b/c/d/deep.js", "b/c/y.txt", "b/x.lock"]);
    for args in [
        &["--follow-symbolic-links", "ld/**"][..],
        // The command line's options may come anywhere.
        &["ld/**", "--follow-symbolic-links"][..],
        // After `--`, as hashFiles() reads its arguments (case-insensitive, first only).
        &["--", "--FOLLOW-symbolic-links", "ld/**"][..],
    ] {
        let out = cli(dir.path(), args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{expected}\n")
        );
    }
    // After `--` and a pattern it is just another (relative) pattern, matching nothing here.
    let out = cli(dir.path(), &["--", "ld/**", "--follow-symbolic-links"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "\n");
}

#[test]
fn cli_tilde_is_home() {
    let home = tempfile::tempdir().expect("temp dir");
    write_tree(home.path(), &[("x.lock", "b\n")]);
    let dir = tree();
    // Inside the workspace: hashed. Outside: skipped.
    let inside = Command::new(runner_bin())
        .args(["hash-files", "~/x.lock"])
        .env("HOME", home.path())
        .current_dir(home.path())
        .output()
        .expect("run runner");
    assert_eq!(
        String::from_utf8_lossy(&inside.stdout),
        format!("{EXAMPLE_HASH}\n")
    );
    let outside = Command::new(runner_bin())
        .args(["hash-files", "--workspace"])
        .arg(dir.path())
        .arg("~/x.lock")
        .env("HOME", home.path())
        .output()
        .expect("run runner");
    assert_eq!(outside.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&outside.stdout), "\n");
}

#[test]
fn fifo_is_an_error_not_a_hang() {
    let dir = tree();
    let fifo = dir.path().join("b/pipe");
    let status = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(status.success());
    let err = hash(dir.path(), &["b/**"]).expect_err("a fifo cannot be hashed");
    assert!(
        matches!(&err, GlobError::NotAFile { path } if *path == fifo),
        "{err}"
    );
    // Not matched: no error.
    assert_eq!(hash(dir.path(), &["b/*.lock"]).expect("hash"), EXAMPLE_HASH);
}

#[test]
fn hash_files_args_applies_the_first_argument_rule() {
    let dir = tree();
    symlink("b", dir.path().join("ld")).expect("symlink");
    // `ld/x.lock` is not walked as its own root: `ld/**` names an ancestor search path, so
    // the walk of `ld` (in its order) covers it, even though that pattern comes later.
    let args = strings(&["--follow-symbolic-links", "ld/x.lock", "ld/**"]);
    assert_eq!(
        runner::glob::hash_files_args(dir.path(), &args).expect("hash"),
        expected_hash(dir.path(), &["b/c/d/deep.js", "b/c/y.txt", "b/x.lock"])
    );
    let err = runner::glob::hash_files_args(dir.path(), &strings(&["--nope", "**"]))
        .expect_err("unknown option");
    assert!(matches!(err, GlobError::InvalidOption { .. }), "{err}");
}
