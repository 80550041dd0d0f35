//! Shared test helpers. Keep them here, not copied into area modules.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `runner` binary built for this test run.
pub fn runner_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runner"))
}

/// The repository root (where `fixtures/` lives).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `files` (relative path → contents) under `root`, creating parent directories.
pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, contents) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create test dir");
        }
        std::fs::write(&path, contents).expect("write test file");
    }
}
