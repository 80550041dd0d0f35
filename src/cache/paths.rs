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
    for (_, absolute) in declared_roots(patterns, workspace, home) {
        if !roots.contains(&absolute) {
            roots.push(absolute);
        }
    }
    roots
}

/// Each include pattern with the absolute literal prefix it resolves to here and now.
pub(crate) fn declared_roots<'a>(
    patterns: &'a [String],
    workspace: &Path,
    home: &Path,
) -> Vec<(&'a str, PathBuf)> {
    patterns
        .iter()
        .filter(|p| !p.starts_with('!'))
        .map(|pattern| {
            let expanded = expand_tilde(pattern, home);
            let mut literal = PathBuf::new();
            for segment in Path::new(&expanded).components() {
                let text = segment.as_os_str().to_string_lossy();
                if has_glob(&text) {
                    break;
                }
                literal.push(segment.as_os_str());
            }
            (pattern.as_str(), normalize(&workspace.join(literal)))
        })
        .collect()
}

/// How one declared path resolved when its entry was saved: the pattern as written and the
/// archive name its files were stored under (workspace-relative, `../` above it). Kept in the
/// index so a restore can put those files where the same pattern resolves now, from any
/// workspace depth or `HOME`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SavedRoot {
    /// The `path:` line.
    pub path: String,
    /// The archive name prefix of its files.
    pub name: String,
}

/// The roots to record for a save of `patterns` from `workspace`.
pub(crate) fn saved_roots(patterns: &[String], workspace: &Path, home: &Path) -> Vec<SavedRoot> {
    declared_roots(patterns, workspace, home)
        .into_iter()
        .map(|(path, absolute)| SavedRoot {
            path: path.to_string(),
            name: crate::archive::archive_name(workspace, &absolute)
                .display()
                .to_string(),
        })
        .collect()
}

/// Where a restore puts each saved root now: the archive name recorded at save time mapped to
/// the place the same pattern resolves in this workspace and home. Entries saved before roots
/// were recorded (`saved` is `None`) map every pattern to its own current name, which is
/// what they were archived under when the workspace and home were where they are now.
pub(crate) fn restore_roots(
    saved: Option<&[SavedRoot]>,
    patterns: &[String],
    workspace: &Path,
    home: &Path,
) -> Vec<crate::archive::Root> {
    let now = declared_roots(patterns, workspace, home);
    let mut roots: Vec<crate::archive::Root> = Vec::new();
    for (pattern, dest) in now {
        let name = match saved {
            Some(saved) => match saved.iter().find(|r| r.path == pattern) {
                Some(root) => PathBuf::from(&root.name),
                None => continue,
            },
            None => crate::archive::archive_name(workspace, &dest),
        };
        if !roots.iter().any(|r| r.name == name) {
            roots.push(crate::archive::Root { name, dest });
        }
    }
    roots
}

/// Why a declared path may not be cached at all, if it may not: the file system root, and the
/// kernel's virtual trees, whose files change under a reader and whose writes reach devices.
pub(crate) fn refused_root(root: &Path) -> Option<&'static str> {
    const VIRTUAL: [&str; 3] = ["/proc", "/sys", "/dev"];
    if root == Path::new("/") {
        return Some("it is the file system root");
    }
    for dir in VIRTUAL {
        let dir = Path::new(dir);
        if root.starts_with(dir) || dir.starts_with(root) {
            return Some("it is or contains a kernel file system (/proc, /sys, /dev)");
        }
    }
    None
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
    fn refused_root_rows() {
        let rows = [
            ("/", true),
            ("/proc", true),
            ("/proc/self", true),
            ("/sys/fs", true),
            ("/dev", true),
            ("/home/u/.npm", false),
            ("/ws/devices", false),
            ("/procfs", false),
        ];
        for (root, refused) in rows {
            assert_eq!(refused_root(Path::new(root)).is_some(), refused, "{root}");
        }
    }

    #[test]
    fn restore_roots_follow_the_pattern_to_where_it_resolves_now() {
        let patterns = vec!["~/.npm".to_string(), "node_modules".to_string()];
        let saved = saved_roots(&patterns, Path::new("/a/b/ws"), Path::new("/home/u"));
        assert_eq!(
            saved,
            vec![
                SavedRoot {
                    path: "~/.npm".into(),
                    name: "../../../home/u/.npm".into()
                },
                SavedRoot {
                    path: "node_modules".into(),
                    name: "node_modules".into()
                },
            ]
        );
        let roots = restore_roots(Some(&saved), &patterns, Path::new("/w"), Path::new("/root"));
        let got: Vec<(PathBuf, PathBuf)> = roots.into_iter().map(|r| (r.name, r.dest)).collect();
        assert_eq!(
            got,
            vec![
                ("../../../home/u/.npm".into(), "/root/.npm".into()),
                ("node_modules".into(), "/w/node_modules".into()),
            ]
        );
        // Entries from before roots were recorded: names as they would be archived now.
        let legacy = restore_roots(None, &patterns, Path::new("/w"), Path::new("/root"));
        assert_eq!(legacy[0].name, PathBuf::from("../root/.npm"));
        assert_eq!(legacy[0].dest, PathBuf::from("/root/.npm"));
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
