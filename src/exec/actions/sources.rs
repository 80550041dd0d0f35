//! Where an action's files come from: `./path` in the workspace, `owner/repo[/path]@ref` from a
//! git base URL (cloned once per repository and ref into the action cache, reused offline), or
//! `docker://image` (never run here).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A parsed `uses:` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionRef {
    /// `./path`, relative to the workspace.
    Local(String),
    /// `owner/repo[/path]@ref`.
    Repo {
        /// `owner`
        owner: String,
        /// `repo`
        repo: String,
        /// The subdirectory holding `action.yml`, if any.
        path: Option<String>,
        /// The git ref (tag, branch or commit).
        reference: String,
    },
    /// `docker://image`.
    Docker(String),
}

impl ActionRef {
    /// Parses `uses`; `None` for a value the workflow loader would have refused.
    pub fn parse(uses: &str) -> Option<Self> {
        if let Some(image) = uses.strip_prefix("docker://") {
            return Some(Self::Docker(image.to_string()));
        }
        if uses.starts_with("./") || uses == "." {
            return Some(Self::Local(uses.to_string()));
        }
        let (name, reference) = uses.split_once('@')?;
        let mut parts = name.splitn(3, '/');
        let owner = parts.next().filter(|p| !p.is_empty())?;
        let repo = parts.next().filter(|p| !p.is_empty())?;
        let path = parts
            .next()
            .map(|p| p.trim_matches('/').to_string())
            .filter(|p| !p.is_empty());
        if reference.is_empty() {
            return None;
        }
        Some(Self::Repo {
            owner: owner.to_string(),
            repo: repo.to_string(),
            path,
            reference: reference.to_string(),
        })
    }

    /// True for actions from a repository (whose `pre` runs, as on GitHub).
    pub fn is_remote(&self) -> bool {
        matches!(self, Self::Repo { .. })
    }
}

/// Why an action's files could not be found or fetched.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// `--offline` and the action is not in the action cache.
    #[error("action '{uses}' is not in the action cache ({}) and --offline forbids fetching it", dir.display())]
    NotCached {
        /// The `uses:` value.
        uses: String,
        /// Where it would be.
        dir: PathBuf,
    },
    /// `git` failed to fetch it.
    #[error("cannot fetch action '{uses}' from {url}: {message}")]
    Fetch {
        /// The `uses:` value.
        uses: String,
        /// The repository URL tried last.
        url: String,
        /// git's own error output.
        message: String,
    },
    /// A local action directory does not exist.
    #[error("local action directory {} does not exist", dir.display())]
    NoLocalDir {
        /// The directory.
        dir: PathBuf,
    },
    /// A part of the `uses:` value would leave its directory.
    #[error("action '{uses}' has a path that leaves its directory")]
    BadPath {
        /// The `uses:` value.
        uses: String,
    },
    /// The action cache could not be written.
    #[error("cannot write the action cache at {}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Finds action directories: the workspace for `./path`, the action cache (filled from the git
/// base URL) for `owner/repo@ref`.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Base URL repositories are cloned from (`https://github.com`, `file:///srv/git`).
    pub base_url: String,
    /// `<cache dir>/actions-v1`.
    pub cache_root: PathBuf,
    /// Use only what is cached.
    pub offline: bool,
}

/// A path component that stays where it is put.
fn safe_component(part: &str) -> bool {
    !part.is_empty() && part != "." && part != ".." && !part.contains('\\')
}

impl Sources {
    /// The directory holding the action's `action.yml`, fetching it when needed.
    pub fn locate(
        &self,
        uses: &str,
        action: &ActionRef,
        workspace: &Path,
    ) -> Result<PathBuf, SourceError> {
        match action {
            ActionRef::Local(rel) => {
                let dir = workspace.join(rel.trim_start_matches("./"));
                if dir.is_dir() {
                    Ok(dir)
                } else {
                    Err(SourceError::NoLocalDir { dir })
                }
            }
            ActionRef::Docker(_) => Err(SourceError::BadPath {
                uses: uses.to_string(),
            }),
            ActionRef::Repo {
                owner,
                repo,
                path,
                reference,
            } => {
                let mut parts = [owner.as_str(), repo.as_str()]
                    .into_iter()
                    .chain(reference.split('/'))
                    .chain(path.iter().flat_map(|p| p.split('/')));
                if !parts.all(safe_component) {
                    return Err(SourceError::BadPath {
                        uses: uses.to_string(),
                    });
                }
                let checkout = self.checkout(uses, owner, repo, reference)?;
                Ok(match path {
                    Some(p) => checkout.join(p),
                    None => checkout,
                })
            }
        }
    }

    /// `<cache>/owner/repo/ref/`, cloned on first use.
    fn checkout(
        &self,
        uses: &str,
        owner: &str,
        repo: &str,
        reference: &str,
    ) -> Result<PathBuf, SourceError> {
        let repo_dir = self.cache_root.join(owner).join(repo);
        // One directory per ref, also for refs with a `/` (`releases/v1` next to `releases`).
        let dir = repo_dir.join(reference.replace('%', "%25").replace('/', "%2F"));
        if dir.is_dir() {
            return Ok(dir);
        }
        if self.offline {
            return Err(SourceError::NotCached {
                uses: uses.to_string(),
                dir,
            });
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SourceError::Io { path, source }
        };
        std::fs::create_dir_all(&repo_dir).map_err(io(&repo_dir))?;
        let staging = tempfile::Builder::new()
            .prefix(".fetch-")
            .tempdir_in(&repo_dir)
            .map_err(io(&repo_dir))?;
        let base = self.base_url.trim_end_matches('/');
        let mut last = (String::new(), String::new());
        let mut fetched = false;
        for url in [
            format!("{base}/{owner}/{repo}"),
            format!("{base}/{owner}/{repo}.git"),
        ] {
            match fetch(staging.path(), &url, reference) {
                Ok(()) => {
                    fetched = true;
                    break;
                }
                Err(message) => last = (url, message),
            }
        }
        if !fetched {
            return Err(SourceError::Fetch {
                uses: uses.to_string(),
                url: last.0,
                message: last.1,
            });
        }
        // The clone becomes visible in one rename, so a half-fetched action is never reused.
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let staged = staging.keep();
        if let Err(source) = std::fs::rename(&staged, &dir) {
            let _ = std::fs::remove_dir_all(&staged);
            // Another run fetched the same action meanwhile: use its copy.
            if !dir.is_dir() {
                return Err(SourceError::Io { path: dir, source });
            }
        }
        Ok(dir)
    }
}

/// `git init` + a shallow fetch of `reference` + checkout into `dir`; git's stderr on failure.
fn fetch(dir: &Path, url: &str, reference: &str) -> Result<(), String> {
    let git = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    };
    git(&["init", "-q"])?;
    git(&["fetch", "-q", "--depth", "1", url, reference])?;
    git(&[
        "-c",
        "advice.detachedHead=false",
        "checkout",
        "-q",
        "FETCH_HEAD",
    ])?;
    // The history is not needed to run the action.
    let _ = std::fs::remove_dir_all(dir.join(".git"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_values() {
        let repo = |owner: &str, repo: &str, path: Option<&str>, reference: &str| ActionRef::Repo {
            owner: owner.into(),
            repo: repo.into(),
            path: path.map(Into::into),
            reference: reference.into(),
        };
        let rows = [
            ("./x", Some(ActionRef::Local("./x".into()))),
            (
                "docker://alpine:3",
                Some(ActionRef::Docker("alpine:3".into())),
            ),
            ("a/b@v1", Some(repo("a", "b", None, "v1"))),
            (
                "a/b/c/d@releases/v1",
                Some(repo("a", "b", Some("c/d"), "releases/v1")),
            ),
            ("a/b@", None),
            ("a@v1", None),
            ("a/b", None),
        ];
        for (uses, expected) in rows {
            assert_eq!(ActionRef::parse(uses), expected, "{uses}");
        }
    }

    #[test]
    fn paths_that_leave_the_action_cache_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let sources = Sources {
            base_url: "file:///nowhere".into(),
            cache_root: tmp.path().join("actions-v1"),
            offline: true,
        };
        for uses in ["a/b@../../x", "../b@v1", "a/b/../../..@v1", "a/..@v1"] {
            let action = ActionRef::parse(uses).unwrap();
            let err = sources.locate(uses, &action, tmp.path()).unwrap_err();
            assert!(matches!(err, SourceError::BadPath { .. }), "{uses}: {err}");
        }
    }
}
