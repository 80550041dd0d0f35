//! The expression contexts a job sees, and the [`Host`] that hands them to the evaluator.

use std::path::PathBuf;

use indexmap::IndexMap;

use crate::expr::{Host, StatusFunction, Value};

/// The job's state as the status functions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobState {
    /// A step (or, for a job's `if:`, a needed job) failed.
    pub failed: bool,
    /// The run was cancelled (job timeout, Ctrl-C).
    pub cancelled: bool,
    /// A needed job was skipped or cancelled: `success()` is false but `failure()` is not true.
    pub blocked: bool,
}

/// Named contexts plus what `hashFiles` and the status functions need.
#[derive(Debug, Clone, Default)]
pub struct Contexts {
    map: IndexMap<String, Value>,
    /// The workspace `hashFiles` resolves patterns in.
    pub workspace: PathBuf,
    /// What `success()`/`failure()`/`cancelled()` answer.
    pub state: JobState,
}

impl Contexts {
    /// Contexts rooted at `workspace`.
    pub fn new(workspace: PathBuf) -> Self {
        Self {
            workspace,
            ..Self::default()
        }
    }

    /// Sets (or replaces) a context; names are case-insensitive.
    pub fn set(&mut self, name: &str, value: Value) {
        self.map.insert(name.to_ascii_lowercase(), value);
    }

    /// A context by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(&name.to_ascii_lowercase())
    }

    /// A mutable context by name, created as an empty object when missing.
    pub fn object_mut(&mut self, name: &str) -> &mut IndexMap<String, Value> {
        let entry = self
            .map
            .entry(name.to_ascii_lowercase())
            .or_insert_with(|| Value::Object(IndexMap::new()));
        if !matches!(entry, Value::Object(_)) {
            *entry = Value::Object(IndexMap::new());
        }
        match entry {
            Value::Object(map) => map,
            // Just made an object above.
            _ => unreachable!("context was replaced by an object"),
        }
    }
}

impl Host for Contexts {
    fn context(&self, name: &str) -> Option<&Value> {
        self.get(name)
    }

    fn hash_files(&self, patterns: &[String]) -> Result<String, String> {
        // A leading `--follow-symbolic-links` argument is an option, as on GitHub.
        crate::glob::hash_files_args(&self.workspace, patterns)
            .map_err(|e| format!("hashFiles({}) failed: {e}", patterns.join(", ")))
    }

    fn status(&self, function: StatusFunction) -> bool {
        match function {
            StatusFunction::Always => true,
            StatusFunction::Cancelled => self.state.cancelled,
            StatusFunction::Failure => self.state.failed && !self.state.cancelled,
            StatusFunction::Success => {
                !self.state.failed && !self.state.cancelled && !self.state.blocked
            }
        }
    }
}

/// A string value.
pub fn s(text: impl Into<String>) -> Value {
    Value::String(text.into())
}

/// An object from string pairs.
pub fn string_object<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k.clone(), s(v.clone())))
            .collect(),
    )
}

/// `runner.os` as GitHub spells it.
pub fn runner_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "macOS",
        "windows" => "Windows",
        _ => "Linux",
    }
}

/// `runner.arch` as GitHub spells it.
pub fn runner_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "ARM64",
        "arm" => "ARM",
        "x86" => "X86",
        _ => "X64",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_functions() {
        let rows = [
            // failed, cancelled → success, failure, cancelled, always
            (false, false, [true, false, false, true]),
            (true, false, [false, true, false, true]),
            (false, true, [false, false, true, true]),
            (true, true, [false, false, true, true]),
        ];
        for (failed, cancelled, expected) in rows {
            let mut c = Contexts::new(PathBuf::from("/"));
            c.state = JobState {
                failed,
                cancelled,
                blocked: false,
            };
            let got = [
                c.status(StatusFunction::Success),
                c.status(StatusFunction::Failure),
                c.status(StatusFunction::Cancelled),
                c.status(StatusFunction::Always),
            ];
            assert_eq!(got, expected, "failed={failed} cancelled={cancelled}");
        }
    }

    #[test]
    fn contexts_are_case_insensitive() {
        let mut c = Contexts::new(PathBuf::from("/"));
        c.set("GitHub", s("x"));
        assert_eq!(c.context("github"), Some(&s("x")));
        c.object_mut("steps").insert("a".into(), s("1"));
        assert_eq!(c.context("STEPS").and_then(|v| v.get("a")), Some(&s("1")));
    }
}
