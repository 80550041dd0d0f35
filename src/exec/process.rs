//! Runs one step process in its own process group, streams its stdout and stderr line by line,
//! and kills the whole group on timeout or cancellation.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::ExecError;

/// How long a killed group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long to keep reading after the process exited, for output still in flight from
/// background processes that inherited its pipes (they are left running, as on GitHub).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(300);
/// Poll interval for timeouts and cancellation.
const TICK: Duration = Duration::from_millis(50);

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The complete environment (the parent's is not inherited).
    pub env: IndexMap<String, String>,
    /// The working directory.
    pub cwd: PathBuf,
    /// Kill the group after this long.
    pub timeout: Option<Duration>,
    /// Kill the group when this becomes true (job timeout, Ctrl-C).
    pub cancel: Arc<AtomicBool>,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal (not by us).
    Signal(i32),
    /// We killed it because the timeout passed.
    TimedOut,
    /// We killed it because the run was cancelled.
    Cancelled,
}

/// Runs `spec`, calling `on_line` for every line of output (without the line ending) in the
/// order lines arrive. Returns the process group id with the exit so callers can clean up.
pub fn run(
    spec: &ProcessSpec,
    on_line: &mut dyn FnMut(Stream, &str),
) -> Result<(Exit, i32), ExecError> {
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .env_clear()
        .envs(&spec.env)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A new process group so a timeout can kill everything the step started.
        .process_group(0);
    let mut child = command.spawn().map_err(|source| ExecError::Spawn {
        program: spec.program.clone(),
        cwd: spec.cwd.clone(),
        source,
    })?;
    let pgid = i32::try_from(child.id()).unwrap_or(0);
    let (tx, rx) = mpsc::channel::<(Stream, Option<String>)>();
    if let Some(out) = child.stdout.take() {
        spawn_reader(out, Stream::Stdout, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        spawn_reader(err, Stream::Stderr, tx.clone());
    }
    drop(tx);

    let started = Instant::now();
    let mut open_streams = 2;
    let mut exit: Option<Exit> = None;
    let mut exited_at: Option<Instant> = None;
    let mut killed: Option<(Exit, Instant, bool)> = None;
    loop {
        match rx.recv_timeout(TICK) {
            Ok((stream, Some(line))) => on_line(stream, &line),
            Ok((_, None)) => open_streams -= 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => open_streams = 0,
        }
        if exit.is_none() {
            match child.try_wait() {
                Ok(Some(status)) => {
                    exit = Some(match (killed, status.code(), status.signal()) {
                        (Some((why, _, _)), _, _) => why,
                        (None, Some(code), _) => Exit::Code(code),
                        (None, None, Some(sig)) => Exit::Signal(sig),
                        (None, None, None) => Exit::Code(1),
                    });
                    exited_at = Some(Instant::now());
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(ExecError::Spawn {
                        program: spec.program.clone(),
                        cwd: spec.cwd.clone(),
                        source,
                    });
                }
            }
        }
        if exit.is_none() {
            match &mut killed {
                None => {
                    let why = if spec.cancel.load(Ordering::SeqCst) {
                        Some(Exit::Cancelled)
                    } else if spec.timeout.is_some_and(|t| started.elapsed() >= t) {
                        Some(Exit::TimedOut)
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        kill_group(pgid, libc::SIGTERM);
                        killed = Some((why, Instant::now(), false));
                    }
                }
                Some((_, at, hard)) => {
                    if !*hard && at.elapsed() >= KILL_GRACE {
                        kill_group(pgid, libc::SIGKILL);
                        *hard = true;
                    }
                }
            }
        }
        if let Some(exit) = exit {
            let drained = exited_at.is_some_and(|at| at.elapsed() >= DRAIN_AFTER_EXIT);
            if open_streams == 0 || drained {
                if matches!(exit, Exit::TimedOut | Exit::Cancelled) {
                    // Nothing of a killed step may survive it.
                    kill_group(pgid, libc::SIGKILL);
                }
                return Ok((exit, pgid));
            }
        }
    }
}

/// Sends `signal` to every process in the group; a group that is already gone is fine.
pub fn kill_group(pgid: i32, signal: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// The variable that marks every process a job started, as GitHub's runner does, so that
/// processes left running after the job's last step can be found and stopped.
pub const TRACKING_VAR: &str = "RUNNER_TRACKING_ID";

/// Kills every process whose environment has `RUNNER_TRACKING_ID=<tracking_id>` (Linux: read
/// from `/proc`; elsewhere nothing is found). Returns the pids that were signalled.
pub fn kill_tracked(tracking_id: &str) -> Vec<i32> {
    let needle = format!("{TRACKING_VAR}={tracking_id}");
    let mut killed = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return killed;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if u32::try_from(pid).is_ok_and(|p| p == me) {
            continue;
        }
        // Unreadable (another user's process, already gone): not ours.
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ
            .split(|b| *b == 0)
            .any(|var| var == needle.as_bytes())
        {
            // SAFETY: kill(2) on a pid we just found; no memory is involved.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            killed.push(pid);
        }
    }
    killed
}

fn spawn_reader<R: Read + Send + 'static>(
    pipe: R,
    stream: Stream,
    tx: mpsc::Sender<(Stream, Option<String>)>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                    let line = String::from_utf8_lossy(&buf).into_owned();
                    if tx.send((stream, Some(line))).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send((stream, None));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str, timeout: Option<Duration>) -> ProcessSpec {
        let mut env = IndexMap::new();
        env.insert("PATH".to_string(), "/usr/bin:/bin".to_string());
        ProcessSpec {
            program: PathBuf::from("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            env,
            cwd: std::env::temp_dir(),
            timeout,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    fn collect(spec: &ProcessSpec) -> (Exit, Vec<(Stream, String)>) {
        let mut lines = Vec::new();
        let (exit, _) = run(spec, &mut |s, l| lines.push((s, l.to_string()))).unwrap();
        (exit, lines)
    }

    #[test]
    fn exit_codes_and_streams() {
        let (exit, lines) = collect(&spec("echo out; echo err >&2; exit 3", None));
        assert_eq!(exit, Exit::Code(3));
        assert!(lines.contains(&(Stream::Stdout, "out".into())));
        assert!(lines.contains(&(Stream::Stderr, "err".into())));
        let (exit, lines) = collect(&spec("printf 'a\\r\\nno-newline'", None));
        assert_eq!(exit, Exit::Code(0));
        assert_eq!(
            lines,
            vec![
                (Stream::Stdout, "a".into()),
                (Stream::Stdout, "no-newline".into())
            ]
        );
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let mut pids = Vec::new();
        let (exit, lines) = collect(&spec(
            "sleep 30 & echo $!; sleep 30",
            Some(Duration::from_millis(300)),
        ));
        assert_eq!(exit, Exit::TimedOut);
        for (_, line) in &lines {
            pids.push(line.trim().parse::<i32>().unwrap());
        }
        assert_eq!(pids.len(), 1, "{lines:?}");
        // The background grandchild must be dead (gone, or a zombie waiting to be reaped).
        let alive = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| !s.contains(") Z "))
                .unwrap_or(false)
        };
        let mut waited = 0;
        while alive(pids[0]) && waited < 100 {
            std::thread::sleep(Duration::from_millis(50));
            waited += 1;
        }
        assert!(
            !alive(pids[0]),
            "grandchild {} survived the timeout",
            pids[0]
        );
    }
}
