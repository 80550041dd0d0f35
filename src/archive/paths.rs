//! Lexical path arithmetic shared by create and extract: both sides must agree on where a name
//! lands without touching the file system (symlinks in the target are never followed).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Makes `p` absolute against `base` (itself made absolute against the current directory) and
/// resolves `.` and `..` lexically.
pub(crate) fn absolute(base: &Path, p: &Path) -> PathBuf {
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else if base.is_absolute() {
        base.join(p)
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(base)
            .join(p)
    };
    normalize(&joined)
}

/// Resolves `.` and `..` of an absolute path lexically; `..` at the root stays at the root.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The archive name of absolute `target` relative to absolute `workspace`: `/`-separated,
/// `../` for each level above the workspace, `.` for the workspace itself.
pub(crate) fn relative_name(workspace: &Path, target: &Path) -> Vec<u8> {
    let ws: Vec<&OsStr> = normal_parts(workspace);
    let tg: Vec<&OsStr> = normal_parts(target);
    let common = ws.iter().zip(&tg).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&[u8]> = Vec::new();
    parts.extend(std::iter::repeat_n(&b".."[..], ws.len() - common));
    parts.extend(tg[common..].iter().map(|s| s.as_bytes()));
    if parts.is_empty() {
        return b".".to_vec();
    }
    parts.join(&b'/')
}

fn normal_parts(p: &Path) -> Vec<&OsStr> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names() {
        let rows: &[(&str, &str, &str)] = &[
            ("/w/s", "/w/s/a/b", "a/b"),
            ("/w/s", "/w/s", "."),
            ("/w/s", "/w/t/x", "../t/x"),
            ("/w/s", "/home/u/.npm", "../../home/u/.npm"),
            ("/w/s", "/w", ".."),
            ("/", "/a", "a"),
        ];
        for (ws, target, want) in rows {
            let got = relative_name(Path::new(ws), Path::new(target));
            assert_eq!(String::from_utf8_lossy(&got), *want, "{ws} {target}");
        }
    }

    #[test]
    fn absolute_and_normalize() {
        assert_eq!(
            absolute(Path::new("/w/s"), Path::new("a/../b")),
            Path::new("/w/s/b")
        );
        assert_eq!(
            absolute(Path::new("/w/s"), Path::new("/x/./y")),
            Path::new("/x/y")
        );
        assert_eq!(normalize(Path::new("/../a")), Path::new("/a"));
    }
}
