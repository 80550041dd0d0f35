//! Integration tests: the expression language (`runner::expr`) and `runner eval`.

mod cli;
mod errors;
mod eval;
mod operators;
mod props;
mod templates;

use runner::expr::{Host, StatusFunction, Value};

/// The contexts every table evaluates against (also written to a file for the CLI tests).
pub const CONTEXTS: &str = r#"{
  "github": {"event_name": "push", "ref": "refs/heads/main", "event": {"number": 42, "draft": false, "labels": [], "commits": [{"id": "a1", "message": "first", "author": {"name": "Mona"}}, {"id": "b2", "message": "second", "author": {"name": "Lisa"}}]}},
  "env": {"EMPTY": "", "ZERO": "0", "NUM": "42", "HEX": "0x10", "NAME": "Value"},
  "matrix": {"os": "ubuntu-latest", "node": 18, "flags": ["a", "b"]},
  "steps": {"build": {"outputs": {"result": "ok"}, "outcome": "success"}},
  "nums": [3, 1, 2],
  "objs": {"x": {"y": 1}, "z": {"y": 2}, "w": 5}
}"#;

/// A host over [`CONTEXTS`] with a configurable job status; `hashFiles` reports the patterns
/// it was given so tests can check argument conversion.
pub struct TestHost {
    contexts: Value,
    /// What `success()`/`failure()`/`cancelled()` answer.
    pub status: JobStatus,
}

/// The job state a condition is evaluated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Success,
    Failure,
    Cancelled,
}

impl TestHost {
    pub fn new() -> Self {
        Self::with_status(JobStatus::Success)
    }

    pub fn with_status(status: JobStatus) -> Self {
        let json: serde_json::Value = serde_json::from_str(CONTEXTS).expect("test contexts parse");
        TestHost {
            contexts: Value::from_json(json),
            status,
        }
    }
}

impl Host for TestHost {
    fn context(&self, name: &str) -> Option<&Value> {
        self.contexts.get(name)
    }

    fn hash_files(&self, patterns: &[String]) -> Result<String, String> {
        if patterns.iter().any(|p| p == "fail") {
            return Err("hashFiles failed on purpose".to_string());
        }
        Ok(format!("hash[{}]", patterns.join("|")))
    }

    fn status(&self, function: StatusFunction) -> bool {
        match function {
            StatusFunction::Always => true,
            StatusFunction::Success => self.status == JobStatus::Success,
            StatusFunction::Failure => self.status == JobStatus::Failure,
            StatusFunction::Cancelled => self.status == JobStatus::Cancelled,
        }
    }
}

/// Parses and evaluates `source` against a [`TestHost`].
pub fn eval(source: &str) -> Result<Value, String> {
    let expr = runner::expr::parse(source).map_err(|e| format!("parse: {e}"))?;
    runner::expr::evaluate(&expr, &TestHost::new()).map_err(|e| format!("eval: {e}"))
}
