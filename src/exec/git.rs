//! Facts about the workspace's git checkout: `github.repository` from the origin remote,
//! `github.ref` and `github.sha` from HEAD. Missing git or a non-repository yields nothing.

use std::path::Path;
use std::process::{Command, Stdio};

/// What the checkout tells us; each field is `None` when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitInfo {
    /// `owner/name` from the `origin` remote URL.
    pub repository: Option<String>,
    /// The full ref HEAD points at (`refs/heads/main`); `None` when detached.
    pub git_ref: Option<String>,
    /// HEAD's commit.
    pub sha: Option<String>,
    /// The default branch as a full ref: `refs/remotes/origin/HEAD`, else a local `main` or
    /// `master`.
    pub default_branch: Option<String>,
}

fn git_command(workspace: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C")
        .arg(workspace)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Whether a git command that prints nothing (`show-ref -q`) succeeds.
fn git_succeeds(workspace: &Path, args: &[&str]) -> bool {
    git_command(workspace, args)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn git(workspace: &Path, args: &[&str]) -> Option<String> {
    let out = git_command(workspace, args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Reads the checkout at `workspace` (only if `workspace` itself is inside a work tree).
pub fn inspect(workspace: &Path) -> GitInfo {
    if git(workspace, &["rev-parse", "--is-inside-work-tree"]).as_deref() != Some("true") {
        return GitInfo::default();
    }
    let default_branch = git(
        workspace,
        &["symbolic-ref", "-q", "refs/remotes/origin/HEAD"],
    )
    .and_then(|r| {
        r.strip_prefix("refs/remotes/origin/")
            .map(|b| format!("refs/heads/{b}"))
    })
    // A clone made without `origin/HEAD` (or a repository with no remote): a local `main`,
    // else `master`, so a feature branch can still read the caches its default branch wrote.
    .or_else(|| {
        ["refs/heads/main", "refs/heads/master"]
            .into_iter()
            .find(|r| git_succeeds(workspace, &["show-ref", "-q", "--verify", r]))
            .map(str::to_string)
    });
    GitInfo {
        repository: git(workspace, &["config", "--get", "remote.origin.url"])
            .and_then(|url| repository_from_url(&url)),
        git_ref: git(workspace, &["symbolic-ref", "-q", "HEAD"]),
        sha: git(workspace, &["rev-parse", "-q", "--verify", "HEAD^{commit}"]),
        default_branch,
    }
}

/// `owner/name` from a remote URL (`https://github.com/o/n.git`, `git@github.com:o/n`,
/// `ssh://git@host:22/o/n.git`, a local path `/srv/git/o/n.git`).
pub fn repository_from_url(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix(".git").unwrap_or(url);
    // scp-like `user@host:path` has a ':' before any '/'.
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p)?,
        None => match (url.find(':'), url.find('/')) {
            (Some(c), Some(s)) if c < s => &url[c + 1..],
            (Some(c), None) => &url[c + 1..],
            _ => url,
        },
    };
    let mut parts = path.rsplit('/').filter(|p| !p.is_empty());
    let name = parts.next()?;
    let owner = parts.next()?;
    Some(format!("{owner}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls() {
        let cases = [
            (
                "https://github.com/actions/runner.git",
                Some("actions/runner"),
            ),
            ("https://github.com/actions/runner", Some("actions/runner")),
            ("git@github.com:owner/repo.git", Some("owner/repo")),
            (
                "ssh://git@example.com:2222/team/proj.git",
                Some("team/proj"),
            ),
            ("https://gitlab.com/group/sub/proj.git/", Some("sub/proj")),
            ("/srv/git/o/n.git", Some("o/n")),
            ("justaname", None),
        ];
        for (url, expected) in cases {
            assert_eq!(repository_from_url(url).as_deref(), expected, "{url}");
        }
    }
}
