//! Load errors and warnings that point at the workflow source.

use std::fmt;
use std::path::{Path, PathBuf};

use super::model::Pos;

/// A message about one place in a workflow file: `ci.yml:14:17: message`, then the line and a
/// caret under the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The workflow file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column in characters.
    pub column: usize,
    /// What is wrong, e.g. `unknown key 'runs_on' (did you mean 'runs-on'?)`.
    pub message: String,
    /// The text of line `line` (without its line break), empty when the line does not exist.
    pub source_line: String,
}

/// A load error; the same shape as a warning.
pub type LoadError = Diagnostic;

impl Diagnostic {
    /// A diagnostic at `pos` in `source` (the file's text) of the file `path`.
    pub fn new(path: &Path, source: &str, pos: Pos, message: impl Into<String>) -> Self {
        let lines: Vec<&str> = source
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        // The text after a final line break is not a line of its own.
        let count = if source.ends_with('\n') {
            lines.len() - 1
        } else {
            lines.len()
        };
        let (mut line, mut column) = (pos.line.max(1), pos.column.max(1));
        if count == 0 {
            (line, column) = (1, 1);
        } else if line > count {
            // libyaml reports "end of stream" errors on a line past the end: point at the end of
            // the last line instead, so the caret has something to stand under.
            line = count;
            column = lines[count - 1].chars().count() + 1;
        }
        let source_line = lines
            .get(line - 1)
            .map(|l| l.to_string())
            .unwrap_or_default();
        Self {
            path: path.to_path_buf(),
            line,
            column,
            message: message.into(),
            source_line,
        }
    }

    /// Where it points.
    pub fn pos(&self) -> Pos {
        Pos::new(self.line, self.column)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )?;
        if !self.source_line.is_empty() {
            // Keep tabs so the caret lines up however the terminal renders them.
            let pad: String = self
                .source_line
                .chars()
                .take(self.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n  {}\n  {pad}^", self.source_line)?;
        }
        Ok(())
    }
}

/// Why a workflow could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// The file could not be read.
    #[error("cannot read workflow {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not a valid workflow; every problem found, in file order.
    #[error("{}", render_all(errors))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// At least one error.
        errors: Vec<LoadError>,
    },
}

impl WorkflowError {
    /// The load errors (empty for I/O errors).
    pub fn errors(&self) -> &[LoadError] {
        match self {
            WorkflowError::Io { .. } => &[],
            WorkflowError::Invalid { errors, .. } => errors,
        }
    }
}

fn render_all(errors: &[LoadError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}
