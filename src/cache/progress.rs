//! A byte progress bar for large saves and restores. indicatif draws nothing when stderr is not a
//! terminal, so logs and tests stay clean.

use std::io::{Read, Write};

use crate::cancel::Cancel;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Archives smaller than this finish too fast for a bar to help.
pub const PROGRESS_THRESHOLD: u64 = 8 * 1024 * 1024;

fn style(with_total: bool) -> ProgressStyle {
    let template = if with_total {
        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})"
    } else {
        "{msg} {bytes} ({bytes_per_sec})"
    };
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Counts bytes through a reader or writer and shows them once they pass the threshold.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    shown: bool,
    enabled: bool,
    cancel: Cancel,
}

impl Progress {
    /// A bar for a transfer of `total` bytes (restore), or an open-ended one (save).
    pub fn new(message: &'static str, total: Option<u64>, enabled: bool) -> Self {
        let bar = match total {
            Some(total) => ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden()),
        };
        bar.set_style(style(total.is_some()));
        bar.set_message(message);
        Self {
            bar,
            shown: false,
            enabled,
            cancel: Cancel::default(),
        }
    }

    /// Fails the transfer's next read or write once `cancel` is cancelled.
    pub fn cancel_on(mut self, cancel: &Cancel) -> Self {
        self.cancel = cancel.clone();
        self
    }

    fn advance(&mut self, n: usize) {
        self.bar.inc(n as u64);
        if self.enabled && !self.shown && self.bar.position() >= PROGRESS_THRESHOLD {
            self.shown = true;
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// A reader that advances a [`Progress`].
pub struct ProgressReader<'a, R> {
    /// The wrapped reader.
    pub inner: R,
    /// The bar it advances.
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
pub struct ProgressWriter<'a, W: ?Sized> {
    /// The bar it advances.
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
    use super::*;

    #[test]
    fn bar_appears_only_past_the_threshold_and_when_enabled() {
        let chunk = vec![7u8; 1024 * 1024];
        for (enabled, megabytes, shown) in [(true, 7, false), (true, 9, true), (false, 9, false)] {
            let mut progress = Progress::new("test", None, enabled);
            let mut sink: Vec<u8> = Vec::new();
            let mut writer = ProgressWriter {
                progress: &mut progress,
                inner: &mut sink,
            };
            for _ in 0..megabytes {
                writer.write_all(&chunk).expect("write");
            }
            assert_eq!(progress.shown, shown, "enabled={enabled} {megabytes} MB");
            assert_eq!(progress.bar.position(), megabytes * 1024 * 1024);
            assert_eq!(
                sink.len() as u64,
                megabytes * 1024 * 1024,
                "bytes pass through"
            );
            progress.finish();
        }
        let data = vec![1u8; 3000];
        let mut progress = Progress::new("test", Some(3000), true);
        let mut reader = ProgressReader {
            inner: &data[..],
            progress: &mut progress,
        };
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert_eq!(out, data);
        assert_eq!(progress.bar.position(), 3000);
        assert!(!progress.shown);
    }
}
