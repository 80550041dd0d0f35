//! Rendering error chains: one place turns an error and its `source()` causes into one line.

use std::error::Error;

/// `err` and each of its causes, joined with `: `, each printed once.
///
/// Messages are meant to leave their cause to `#[source]`; for those that still embed it in
/// their own text (`{path}: {source}`), a cause whose text the line already ends with is not
/// repeated, so the chain never reads `...: No such file (os error 2): No such file (os error 2)`.
pub fn chain(err: &dyn Error) -> String {
    let mut line = err.to_string();
    let mut cause = err.source();
    while let Some(source) = cause {
        let text = source.to_string();
        if !text.is_empty() && !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = source.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("reading {path}")]
    struct Leaves {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct Embeds {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("restoring key k")]
    struct Outer {
        #[source]
        source: Embeds,
    }

    fn not_found() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::NotFound, "no such file")
    }

    #[test]
    fn each_cause_once() {
        let leaves = Leaves {
            path: "a".into(),
            source: not_found(),
        };
        assert_eq!(chain(&leaves), "reading a: no such file");
        let embeds = Embeds {
            path: "a".into(),
            source: not_found(),
        };
        assert_eq!(chain(&embeds), "a: no such file");
        let outer = Outer { source: embeds };
        assert_eq!(chain(&outer), "restoring key k: a: no such file");
    }
}
