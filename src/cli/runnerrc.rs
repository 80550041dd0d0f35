//! `.runnerrc`: default flags for `runner exec`, as `.actrc` is for act. `$HOME/.runnerrc` is
//! read first, then `./.runnerrc`, then the command line, so for a single-valued flag the
//! command line wins and list flags (`--secret`, `--var`) add up. One flag per line
//! (`--flag value`, `--flag=value` or `-s NAME`), blank lines and `#` comments skipped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// File name looked for in `$HOME` and the current directory.
pub const FILE_NAME: &str = ".runnerrc";

/// `args` with the `.runnerrc` flags inserted right after the `exec` verb; other verbs are
/// left alone.
pub fn with_defaults(args: Vec<OsString>) -> anyhow::Result<Vec<OsString>> {
    let Some(verb) = verb_position(&args) else {
        return Ok(args);
    };
    if args[verb] != "exec" {
        return Ok(args);
    }
    let mut files: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::home_dir() {
        files.push(home.join(FILE_NAME));
    }
    files.push(PathBuf::from(FILE_NAME));
    let mut defaults = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for file in files {
        // Run from $HOME, both names are one file: read it once.
        let same = file.canonicalize().ok();
        if let Some(real) = &same {
            if seen.contains(real) {
                continue;
            }
            seen.push(real.clone());
        }
        if file.is_file() {
            defaults.extend(read(&file)?);
        }
    }
    let mut out = args;
    let tail = out.split_off(verb + 1);
    out.extend(defaults);
    out.extend(tail);
    Ok(out)
}

/// Where the verb is: the first argument after the program name that is neither a flag nor
/// the value of the global `--color` flag.
fn verb_position(args: &[OsString]) -> Option<usize> {
    let mut i = 1;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--color" {
            i += 2;
            continue;
        }
        if !arg.to_string_lossy().starts_with('-') {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The arguments of one file.
fn read(path: &Path) -> anyhow::Result<Vec<OsString>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(parse(&text))
}

/// One flag per line: `--flag value` is split once at the first blank, so values keep theirs.
fn parse(text: &str) -> Vec<OsString> {
    let mut args = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(char::is_whitespace) {
            Some((flag, value)) if flag.starts_with('-') && !flag.contains('=') => {
                args.push(OsString::from(flag));
                args.push(OsString::from(value.trim()));
            }
            _ => args.push(OsString::from(line)),
        }
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_to_args() {
        let text =
            "# defaults\n\n-n\n--secret-file .secrets\n--var NAME=a b\n  -s TOKEN  \n--env=A=1\n";
        let args: Vec<String> = parse(text)
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-n",
                "--secret-file",
                ".secrets",
                "--var",
                "NAME=a b",
                "-s",
                "TOKEN",
                "--env=A=1"
            ]
        );
    }

    #[test]
    fn verb_after_global_flags() {
        let args: Vec<OsString> = ["runner", "--color", "never", "-q", "exec", "ci.yml"]
            .into_iter()
            .map(OsString::from)
            .collect();
        assert_eq!(verb_position(&args), Some(4));
    }
}
