//! `shell:` → the command line that runs a step's script file, as the runner builds it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::ExecError;

/// How a script is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellCommand {
    /// The resolved executable.
    pub program: PathBuf,
    /// Arguments with `{0}` replaced by the script path.
    pub args: Vec<String>,
    /// The line shown in the log, e.g. `bash --noprofile --norc -eo pipefail {0}`.
    pub display: String,
    /// Extension of the script file (`.sh`, `.py`, or empty).
    pub extension: &'static str,
}

/// Built-in shells: name → (argument format, script extension).
fn builtin(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "bash" => Some(("--noprofile --norc -eo pipefail {0}", ".sh")),
        "sh" => Some(("-e {0}", ".sh")),
        "python" => Some(("{0}", ".py")),
        "pwsh" | "powershell" => Some(("-command \". '{0}'\"", ".ps1")),
        "cmd" => Some(("/D /E:ON /V:OFF /S /C \"CALL \"{0}\"\"", ".cmd")),
        _ => None,
    }
}

/// The script file extension a `shell:` value needs (known before the file is written).
pub fn extension_for(shell: Option<&str>) -> &'static str {
    let Some(shell) = shell.map(str::trim).filter(|s| !s.is_empty()) else {
        return ".sh";
    };
    let command = shell.split_whitespace().next().unwrap_or(shell);
    let name = Path::new(command)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(command);
    builtin(name).map_or("", |(_, ext)| ext)
}

/// Resolves `shell` (None = the default) for `script`, looking executables up in `path_var`.
pub fn resolve(
    shell: Option<&str>,
    script: &Path,
    path_var: &str,
) -> Result<ShellCommand, ExecError> {
    let script_str = script.to_string_lossy();
    let shell = shell.map(str::trim).filter(|s| !s.is_empty());
    let (command, format, display_name) = match shell {
        None => {
            // An unspecified shell is `bash -e {0}` (no pipefail, unlike an explicit
            // `shell: bash`), falling back to `sh -e {0}`: what GitHub's runner logs and runs.
            if let Some(bash) = which("bash", path_var) {
                (bash, "-e {0}".to_string(), "bash")
            } else {
                let sh = which("sh", path_var)
                    .ok_or_else(|| ExecError::ShellNotFound { shell: "sh".into() })?;
                (sh, "-e {0}".to_string(), "sh")
            }
        }
        Some(shell) => {
            let (name, rest) = match shell.split_once(' ') {
                Some((name, rest)) => (name, rest.trim()),
                None => (shell, ""),
            };
            let format = if rest.is_empty() {
                builtin(name).map(|(f, _)| f.to_string()).ok_or_else(|| {
                    ExecError::InvalidShell {
                        shell: shell.to_string(),
                    }
                })?
            } else {
                rest.to_string()
            };
            if !format.contains("{0}") {
                return Err(ExecError::InvalidShell {
                    shell: shell.to_string(),
                });
            }
            let program = which(name, path_var)
                .or_else(|| {
                    // Many systems ship only `python3`; accept it for `shell: python`.
                    (name == "python")
                        .then(|| which("python3", path_var))
                        .flatten()
                })
                .ok_or_else(|| ExecError::ShellNotFound {
                    shell: name.to_string(),
                })?;
            (program, format, name)
        }
    };
    let args = split_args(&format)
        .into_iter()
        .map(|a| a.replace("{0}", &script_str))
        .collect();
    Ok(ShellCommand {
        program: command,
        args,
        display: format!("{display_name} {format}"),
        extension: extension_for(shell),
    })
}

/// Finds an executable by name in `path_var` (a name with a `/` is used as is).
pub fn which(name: &str, path_var: &str) -> Option<PathBuf> {
    let is_exec = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_exec(&p).then_some(p);
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| is_exec(p))
}

/// Splits an argument format on whitespace, honouring single and double quotes.
fn split_args(format: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_arg = false;
    let mut quote: Option<char> = None;
    for c in format.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_arg = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut current));
                    in_arg = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        args.push(current);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shells() {
        let path = std::env::var("PATH").unwrap_or_default();
        let script = Path::new("/tmp/s.sh");
        let cases: &[(Option<&str>, &[&str], &str)] = &[
            (None, &["-e", "/tmp/s.sh"], ".sh"),
            (
                Some("bash"),
                &["--noprofile", "--norc", "-eo", "pipefail", "/tmp/s.sh"],
                ".sh",
            ),
            (Some("sh"), &["-e", "/tmp/s.sh"], ".sh"),
            (Some("bash -x {0}"), &["-x", "/tmp/s.sh"], ".sh"),
            (
                Some("sh -c 'cat \"{0}\"'"),
                &["-c", "cat \"/tmp/s.sh\""],
                ".sh",
            ),
            (Some("env X=1 {0}"), &["X=1", "/tmp/s.sh"], ""),
        ];
        for (shell, args, ext) in cases {
            let cmd = resolve(*shell, script, &path).unwrap();
            assert_eq!(cmd.args, *args, "{shell:?}");
            assert_eq!(cmd.extension, *ext, "{shell:?}");
        }
        for bad in ["fish", "bash -x"] {
            assert!(
                matches!(
                    resolve(Some(bad), script, &path),
                    Err(ExecError::InvalidShell { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            resolve(Some("no-such-shell-xyz {0}"), script, &path),
            Err(ExecError::ShellNotFound { .. })
        ));
        // Without bash on PATH the default falls back to `sh -e {0}`.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/bin/sh", dir.path().join("sh")).unwrap();
        let cmd = resolve(None, script, &dir.path().to_string_lossy()).unwrap();
        assert_eq!(cmd.args, ["-e", "/tmp/s.sh"]);
        assert_eq!(cmd.display, "sh -e {0}");
    }
}
