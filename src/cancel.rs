//! Cooperative cancellation: the CLI (or an embedder) turns SIGTERM/SIGINT into a [`Cancel`]
//! that long operations poll, so a cancelled save aborts its reservation and removes its
//! temporary blob instead of dying half-way. The library installs no signal handlers itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A shared cancellation flag plus a count of operations that must finish cleaning up before
/// the process may exit.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    cancelled: Arc<AtomicBool>,
    busy: Arc<AtomicUsize>,
}

impl PartialEq for Cancel {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.cancelled, &other.cancelled)
    }
}

impl Eq for Cancel {}

impl Cancel {
    /// A token nobody has cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// A token over an existing flag, such as the step runner's `RunOptions::cancel`, so one
    /// Ctrl-C stops steps and cache transfers alike.
    pub fn from_flag(flag: Arc<AtomicBool>) -> Self {
        Self {
            cancelled: flag,
            busy: Arc::default(),
        }
    }

    /// Asks every holder to stop.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Marks a critical section (a save) until the guard drops, so a signal handler can wait
    /// for its clean abort before exiting.
    pub fn enter(&self) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::SeqCst);
        BusyGuard {
            busy: self.busy.clone(),
        }
    }

    /// How many critical sections are open.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::SeqCst)
    }

    /// An I/O error once cancelled, for readers and writers to return from `read`/`write`.
    /// Not `ErrorKind::Interrupted`: `write_all` and `read_exact` retry those.
    pub fn check_io(&self) -> std::io::Result<()> {
        if self.is_cancelled() {
            Err(std::io::Error::other(Cancelled))
        } else {
            Ok(())
        }
    }
}

/// Ends a critical section opened by [`Cancel::enter`].
#[derive(Debug)]
pub struct BusyGuard {
    busy: Arc<AtomicUsize>,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The error a cancelled operation fails with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Whether `err` (or one of its causes) is a cancellation.
pub fn is_cancelled_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if e.is::<Cancelled>() {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.get_ref().is_some_and(|inner| inner.is::<Cancelled>())
        {
            return true;
        }
        cause = e.source();
    }
    false
}
