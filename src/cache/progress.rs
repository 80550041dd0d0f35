//! Byte counting for large saves and restores. Nothing is drawn here: a transfer past
//! [`PROGRESS_THRESHOLD`] reports [`Transfer`]s to the request's [`OnProgress`], and the
//! embedder (the CLI's bar on a terminal, its lines in a CI log) decides how they look.

use std::io::{Read, Write};
use std::time::Instant;

use crate::cancel::Cancel;
use crate::exec::{Direction, ProgressFn, Transfer};

/// Archives smaller than this finish too fast for progress to help; they report nothing.
pub const PROGRESS_THRESHOLD: u64 = 8 * 1024 * 1024;

/// Past the threshold, a report at most once per this many bytes.
const REPORT_EVERY: u64 = 1024 * 1024;

/// Where a save or restore reports progress; unset by default (nothing is reported).
#[derive(Clone, Default)]
pub struct OnProgress(Option<ProgressFn>);

impl OnProgress {
    /// Reports to `report`.
    pub fn new(report: ProgressFn) -> Self {
        Self(Some(report))
    }
}

impl From<Option<ProgressFn>> for OnProgress {
    fn from(report: Option<ProgressFn>) -> Self {
        Self(report)
    }
}

impl std::fmt::Debug for OnProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "OnProgress(set)"
        } else {
            "OnProgress(unset)"
        })
    }
}

/// Where progress goes is not part of what a request asks for: two requests that differ only
/// in it are the same request.
impl PartialEq for OnProgress {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for OnProgress {}

/// Counts bytes through a reader or writer and reports them once they pass the threshold.
pub(crate) struct Progress {
    direction: Direction,
    total: Option<u64>,
    bytes: u64,
    reported_at: Option<u64>,
    started: Instant,
    report: Option<ProgressFn>,
    cancel: Cancel,
}

impl Progress {
    /// A transfer of `total` bytes (restore), or an open-ended one (save); `enabled` false
    /// (`CacheOptions::progress`) reports nothing.
    pub(crate) fn new(
        direction: Direction,
        total: Option<u64>,
        on: &OnProgress,
        enabled: bool,
    ) -> Self {
        Self {
            direction,
            total,
            bytes: 0,
            reported_at: None,
            started: Instant::now(),
            report: on.0.clone().filter(|_| enabled),
            cancel: Cancel::default(),
        }
    }

    /// Fails the transfer's next read or write once `cancel` is cancelled.
    pub(crate) fn cancel_on(mut self, cancel: &Cancel) -> Self {
        self.cancel = cancel.clone();
        self
    }

    fn advance(&mut self, n: usize) {
        self.bytes += n as u64;
        let due = match self.reported_at {
            None => self.bytes >= PROGRESS_THRESHOLD,
            Some(at) => self.bytes - at >= REPORT_EVERY,
        };
        if due {
            self.send(false);
        }
    }

    fn send(&mut self, done: bool) {
        let Some(report) = &self.report else {
            return;
        };
        self.reported_at = Some(self.bytes);
        report(&Transfer {
            direction: self.direction,
            bytes: self.bytes,
            total: self.total,
            elapsed_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            done,
        });
    }

    /// Sends the last report, if the transfer reported at all.
    pub(crate) fn finish(&mut self) {
        if self.reported_at.is_some() {
            self.send(true);
        }
    }
}

/// A reader that advances a [`Progress`].
pub(crate) struct ProgressReader<'a, R> {
    /// The wrapped reader.
    pub inner: R,
    /// The count it advances.
    pub progress: &'a mut Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.progress.cancel.check_io()?;
        let n = self.inner.read(buf)?;
        self.progress.advance(n);
        Ok(n)
    }
}

/// A writer that advances a [`Progress`].
pub(crate) struct ProgressWriter<'a, W: ?Sized> {
    /// The count it advances.
    pub progress: &'a mut Progress,
    /// The wrapped writer.
    pub inner: &'a mut W,
}

impl<W: Write + ?Sized> Write for ProgressWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.progress.cancel.check_io()?;
        let n = self.inner.write(buf)?;
        self.progress.advance(n);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn recording() -> (OnProgress, Arc<Mutex<Vec<Transfer>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        let on = OnProgress::new(Arc::new(move |t: &Transfer| {
            if let Ok(mut seen) = sink.lock() {
                seen.push(t.clone());
            }
        }));
        (on, seen)
    }

    #[test]
    fn reports_only_past_the_threshold_when_enabled_then_once_done() {
        let chunk = vec![7u8; 1024 * 1024];
        for (enabled, megabytes, reports) in [(true, 7, 0), (true, 10, 4), (false, 10, 0)] {
            let (on, seen) = recording();
            let mut progress = Progress::new(Direction::Save, None, &on, enabled);
            let mut sink: Vec<u8> = Vec::new();
            let mut writer = ProgressWriter {
                progress: &mut progress,
                inner: &mut sink,
            };
            for _ in 0..megabytes {
                writer.write_all(&chunk).expect("write");
            }
            progress.finish();
            let seen = seen.lock().map(|s| s.clone()).unwrap_or_default();
            // 8, 9 and 10 MiB, then the final report.
            assert_eq!(
                seen.len(),
                reports,
                "enabled={enabled} {megabytes} MB: {seen:?}"
            );
            if let Some(last) = seen.last() {
                assert!(last.done);
                assert_eq!(last.bytes, megabytes * 1024 * 1024);
                assert_eq!(last.direction, Direction::Save);
                assert!(seen[..seen.len() - 1].iter().all(|t| !t.done));
            }
            assert_eq!(
                sink.len() as u64,
                megabytes * 1024 * 1024,
                "bytes pass through"
            );
        }
        let data = vec![1u8; 3000];
        let (on, seen) = recording();
        let mut progress = Progress::new(Direction::Restore, Some(3000), &on, true);
        let mut reader = ProgressReader {
            inner: &data[..],
            progress: &mut progress,
        };
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        progress.finish();
        assert_eq!(out, data);
        assert_eq!(progress.bytes, 3000);
        assert!(seen.lock().map(|s| s.is_empty()).unwrap_or(false));
    }
}
