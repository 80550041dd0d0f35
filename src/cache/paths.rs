//! Turning the `path:` lines into what glob and archive need: `~` expanded against the job's
//! home, and the directories a restore may write into.

use std::path::{Component, Path, PathBuf};

/// Expands a leading `~` (alone or followed by a separator) to `home`, keeping a leading `!`.
pub fn expand_tilde(pattern: &str, home: &Path) -> String {
    let (bang, rest) = match pattern.strip_prefix('!') {
        Some(rest) => ("!", rest),
        None => ("", pattern),
    };
    let expanded = if rest == "~" {
        home.display().to_string()
    } else if let Some(tail) = rest.strip_prefix("~/").or_else(|| rest.strip_prefix("~\\")) {
        home.join(tail).display().to_string()
    } else {
        rest.to_string()
    };
    format!("{bang}{expanded}")
}

/// Removes `.` and resolves `..` without touching the disk.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn has_glob(segment: &str) -> bool {
    segment.contains(['*', '?', '['])
}

/// The directories (or files) a restore of `patterns` may write: for each include pattern, its
/// absolute literal prefix up to the first segment with a wildcard.
pub fn allowed_roots(patterns: &[String], workspace: &Path, home: &Path) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    for pattern in patterns.iter().filter(|p| !p.starts_with('!')) {
        let expanded = expand_tilde(pattern, home);
        let mut literal = PathBuf::new();
        for segment in Path::new(&expanded).components() {
            let text = segment.as_os_str().to_string_lossy();
            if has_glob(&text) {
                break;
            }
            literal.push(segment.as_os_str());
        }
        let absolute = normalize(&workspace.join(literal));
        if !roots.contains(&absolute) {
            roots.push(absolute);
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_rows() {
        let home = Path::new("/home/u");
        let rows = [
            ("~", "/home/u"),
            ("~/.npm", "/home/u/.npm"),
            ("!~/.npm/_logs", "!/home/u/.npm/_logs"),
            ("~user/x", "~user/x"),
            ("a/~/b", "a/~/b"),
            ("node_modules", "node_modules"),
        ];
        for (input, expected) in rows {
            assert_eq!(expand_tilde(input, home), expected, "{input}");
        }
    }

    #[test]
    fn allowed_root_rows() {
        let ws = Path::new("/ws");
        let home = Path::new("/home/u");
        let rows: &[(&[&str], &[&str])] = &[
            (&["node_modules"], &["/ws/node_modules"]),
            (&["~/.npm", "!~/.npm/_logs"], &["/home/u/.npm"]),
            (&["**/target"], &["/ws"]),
            (
                &["packages/*/dist", "packages/a/dist"],
                &["/ws/packages", "/ws/packages/a/dist"],
            ),
            (&["../outside/x"], &["/outside/x"]),
            (&["/abs/dir", "./b/../c"], &["/abs/dir", "/ws/c"]),
        ];
        for (patterns, expected) in rows {
            let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
            let got = allowed_roots(&patterns, ws, home);
            let expected: Vec<PathBuf> = expected.iter().map(PathBuf::from).collect();
            assert_eq!(got, expected, "{patterns:?}");
        }
    }
}
