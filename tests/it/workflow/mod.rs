//! Integration tests: workflow loading, validation, job order and matrix expansion.

mod errors;
mod load;
mod matrix;
mod quirks;
mod triggers;

use std::path::PathBuf;

use runner::workflow::{self, Pos, Workflow, WorkflowError};

/// A workflow file written to a fresh temp dir (kept alive by the returned guard).
pub struct File {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
}

pub fn write(yaml: &str) -> File {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ci.yml");
    std::fs::write(&path, yaml).expect("write workflow");
    File { _dir: dir, path }
}

/// Loads `yaml` from a real file named `ci.yml`.
pub fn load(yaml: &str) -> Result<Workflow, WorkflowError> {
    let file = write(yaml);
    workflow::load(&file.path)
}

/// Loads `yaml`, failing the test with the rendered errors if it does not load.
pub fn load_ok(yaml: &str) -> Workflow {
    match load(yaml) {
        Ok(w) => w,
        Err(e) => panic!("workflow should load:\n{e}"),
    }
}

/// The position of the `nth` (0-based) occurrence of `needle` in `src` (1-based, characters).
pub fn at_nth(src: &str, needle: &str, nth: usize) -> Pos {
    let (offset, _) = src
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("{needle:?} #{nth} not in source"));
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Pos::new(line, src[line_start..offset].chars().count() + 1)
}

/// The position of the only occurrence of `needle` in `src`.
pub fn at(src: &str, needle: &str) -> Pos {
    assert_eq!(
        src.matches(needle).count(),
        1,
        "{needle:?} must be unique in the source"
    );
    at_nth(src, needle, 0)
}
