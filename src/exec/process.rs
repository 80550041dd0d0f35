//! Runs one step process in its own process group, streams its stdout and stderr line by line,
//! and kills the whole group on timeout or cancellation.
//!
//! Output is read on the calling thread with poll(2), one bounded chunk at a time, and each line
//! is handed to the caller before more is read: a step that prints faster than the log is
//! written blocks on its full pipe (backpressure) instead of growing a backlog in memory, and a
//! single line is capped at [`MAX_LINE_BYTES`].
//!
//! When the step's process exits, its pipes may still be held open by background processes it
//! started. As GitHub's runner does, we keep reading until both pipes reach end-of-file, for at
//! most [`DRAIN_AFTER_EXIT`]; then whatever is already readable is read, and the step ends with
//! the background processes left running (they are stopped when the job ends).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indexmap::IndexMap;

use super::ExecError;

/// How long a killed group gets between SIGTERM and SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for end-of-file on the pipes after the process exited, while background
/// processes that inherited them may still write (GitHub's runner waits 5 seconds).
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(5);
/// How much is still read once [`DRAIN_AFTER_EXIT`] has passed: what is already in the pipes
/// (a pipe holds 64 KiB), bounded so a background process writing flat out cannot hold the step.
const FINAL_DRAIN_BYTES: usize = 1 << 20;
/// The longest line passed on; the rest of a longer line is dropped (and counted in a note
/// appended to it) so one line without a newline cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// How much is read from a pipe at once.
const CHUNK: usize = 64 * 1024;
/// Poll interval for timeouts and cancellation.
const TICK: Duration = Duration::from_millis(50);

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
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

/// One of the child's output pipes and the line being assembled from it.
struct Pipe {
    file: Option<File>,
    stream: Stream,
    line: Vec<u8>,
    /// Bytes of the current line dropped past [`MAX_LINE_BYTES`].
    dropped: u64,
}

impl Pipe {
    fn new(fd: Option<OwnedFd>, stream: Stream) -> Self {
        Self {
            file: fd.map(File::from),
            stream,
            line: Vec::new(),
            dropped: 0,
        }
    }

    /// Splits `bytes` into lines, passing each complete one on.
    fn feed(&mut self, bytes: &[u8], on_line: &mut dyn FnMut(Stream, &str)) {
        let mut rest = bytes;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            self.push(&rest[..nl]);
            self.emit(on_line);
            rest = &rest[nl + 1..];
        }
        self.push(rest);
    }

    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_LINE_BYTES.saturating_sub(self.line.len());
        let keep = bytes.len().min(room);
        self.line.extend_from_slice(&bytes[..keep]);
        self.dropped += (bytes.len() - keep) as u64;
    }

    fn emit(&mut self, on_line: &mut dyn FnMut(Stream, &str)) {
        if self.line.last() == Some(&b'\r') && self.dropped == 0 {
            self.line.pop();
        }
        let line = if self.dropped == 0 {
            String::from_utf8_lossy(&self.line).into_owned()
        } else {
            // Cut at a character boundary so the kept part stays valid text.
            let mut end = self.line.len();
            while end > 0 && self.line.get(end).is_some_and(|b| b & 0xC0 == 0x80) {
                end -= 1;
            }
            let kept = String::from_utf8_lossy(&self.line[..end]).into_owned();
            let total = self.line.len() as u64 + self.dropped;
            format!("{kept}… (line truncated: {total} bytes, the first {end} shown)")
        };
        self.line.clear();
        self.dropped = 0;
        on_line(self.stream, &line);
    }

    /// Reads one chunk and returns its length; 0 once the pipe is closed (its last partial line
    /// passed on).
    fn read(&mut self, buf: &mut [u8], on_line: &mut dyn FnMut(Stream, &str)) -> usize {
        let Some(file) = &mut self.file else {
            return 0;
        };
        match file.read(buf) {
            Ok(0) | Err(_) => {
                // EOF, or a pipe error that ends the stream the same way.
                self.close(on_line);
                0
            }
            Ok(n) => {
                self.feed(&buf[..n], on_line);
                n
            }
        }
    }

    fn close(&mut self, on_line: &mut dyn FnMut(Stream, &str)) {
        if self.file.take().is_some() && (!self.line.is_empty() || self.dropped > 0) {
            self.emit(on_line);
        }
    }
}

/// Waits up to `wait` for output on the open pipes and reads one chunk from each that has
/// some. Returns the number of bytes read.
fn pump(
    pipes: &mut [Pipe; 2],
    buf: &mut [u8],
    wait: Duration,
    on_line: &mut dyn FnMut(Stream, &str),
) -> usize {
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(2);
    let mut which: Vec<usize> = Vec::with_capacity(2);
    for (i, pipe) in pipes.iter().enumerate() {
        if let Some(file) = &pipe.file {
            fds.push(libc::pollfd {
                fd: file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            which.push(i);
        }
    }
    if fds.is_empty() {
        std::thread::sleep(wait);
        return 0;
    }
    let timeout = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    let nfds = libc::nfds_t::try_from(fds.len()).unwrap_or(2);
    // SAFETY: `fds` is a live array of `nfds` pollfd structs for the duration of the call.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout) };
    if ready <= 0 {
        // Nothing yet, or interrupted by a signal (Ctrl-C is seen through `cancel`).
        return 0;
    }
    let mut total = 0;
    for (fd, i) in fds.iter().zip(which) {
        if fd.revents != 0 {
            // Readable, hung up or in error: a read will not block and tells which.
            total += pipes[i].read(buf, on_line);
        }
    }
    total
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
    let mut pipes = [
        Pipe::new(child.stdout.take().map(OwnedFd::from), Stream::Stdout),
        Pipe::new(child.stderr.take().map(OwnedFd::from), Stream::Stderr),
    ];
    let mut buf = vec![0u8; CHUNK];

    let started = Instant::now();
    let mut exit: Option<Exit> = None;
    let mut exited_at: Option<Instant> = None;
    let mut killed: Option<(Exit, Instant, bool)> = None;
    loop {
        pump(&mut pipes, &mut buf, TICK, on_line);
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
            if matches!(exit, Exit::TimedOut | Exit::Cancelled) {
                // Nothing of a killed step may survive it, nor hold its pipes open.
                kill_group(pgid, libc::SIGKILL);
            }
            let all_closed = pipes.iter().all(|p| p.file.is_none());
            if !all_closed && exited_at.is_some_and(|at| at.elapsed() >= DRAIN_AFTER_EXIT) {
                let mut read = 0;
                while read < FINAL_DRAIN_BYTES {
                    let n = pump(&mut pipes, &mut buf, Duration::ZERO, on_line);
                    if n == 0 {
                        break;
                    }
                    read += n;
                }
                for pipe in &mut pipes {
                    pipe.close(on_line);
                }
            }
            if pipes.iter().all(|p| p.file.is_none()) {
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

    #[test]
    fn a_background_process_holding_the_pipe_does_not_hold_the_step() {
        // The background writer keeps stdout open for 30 s; the step ends once the drain window
        // after its shell's exit has passed, with the line written inside that window.
        let mut lines = Vec::new();
        let (exit, pgid) = run(
            &spec("(sleep 1; echo late; sleep 30) & echo early; exit 4", None),
            &mut |s, l| lines.push((s, l.to_string())),
        )
        .unwrap();
        kill_group(pgid, libc::SIGKILL);
        assert_eq!(exit, Exit::Code(4));
        assert_eq!(
            lines,
            vec![
                (Stream::Stdout, "early".into()),
                (Stream::Stdout, "late".into())
            ]
        );
    }

    #[test]
    fn a_line_longer_than_the_cap_is_cut_and_says_so() {
        let (_, lines) = collect(&spec(
            "head -c 3000000 /dev/zero | tr '\\0' a; printf '\\r\\nnext\\n'",
            None,
        ));
        assert_eq!(
            lines.len(),
            2,
            "{:?}",
            lines.iter().map(|l| l.1.len()).collect::<Vec<_>>()
        );
        let (kept, note) = lines[0].1.split_at(MAX_LINE_BYTES);
        assert!(kept.bytes().all(|b| b == b'a'));
        assert_eq!(
            note,
            "… (line truncated: 3000001 bytes, the first 1048576 shown)"
        );
        assert_eq!(lines[1], (Stream::Stdout, "next".into()));
    }
}
