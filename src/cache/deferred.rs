//! Lookup records written after the answer: a server answers a lookup from one read and hands
//! the entry's use and the lookup's event to a thread that writes them in batches, one
//! transaction per batch ([`crate::store::index::Index::record_lookups`]). A lookup then costs
//! a read, not a read plus two commits, and a burst of lookups costs one commit.
//!
//! Readers in this process never see a stale view: [`super::Cache::index`] waits for the
//! records queued before it ([`Recorder::flush`]), and dropping the cache writes what is left.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::store::index::{Index, LookupRecord};

/// Records per transaction at most.
const BATCH: usize = 512;
/// How long the writer gathers records after the first before it writes them; also the most a
/// reader's [`Recorder::flush`] waits beyond the write itself.
const GATHER: Duration = Duration::from_millis(2);
/// How long [`Recorder::flush`] waits for the writer at most (a stuck database must not hang
/// readers forever; they then read what is committed).
const FLUSH_WAIT: Duration = Duration::from_secs(10);

/// Queued records not yet written, and the signal that they were.
#[derive(Default)]
struct Pending {
    count: Mutex<u64>,
    written: Condvar,
}

/// The writer thread and its queue.
pub(crate) struct Recorder {
    tx: Mutex<Option<Sender<LookupRecord>>>,
    pending: Arc<Pending>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder").finish_non_exhaustive()
    }
}

impl Recorder {
    /// Starts the writer over `index` (a handle on the same pool and write gate).
    pub(crate) fn start(index: Index) -> Self {
        let (tx, rx) = channel::<LookupRecord>();
        let pending = Arc::new(Pending::default());
        let done = Arc::clone(&pending);
        let worker = std::thread::Builder::new()
            .name("lookup-records".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Gather what arrives within a moment: under load one commit then covers
                    // many lookups, instead of one wake-up and one commit each.
                    let mut batch = vec![first];
                    let until = std::time::Instant::now() + GATHER;
                    while batch.len() < BATCH {
                        let left = until.saturating_duration_since(std::time::Instant::now());
                        match rx.recv_timeout(left) {
                            Ok(record) => batch.push(record),
                            Err(_) => break,
                        }
                    }
                    // Best effort, as when a lookup writes its own record: a read-only or full
                    // store still answers lookups.
                    let _ = index.record_lookups(&batch);
                    let mut count = done.count.lock().unwrap_or_else(|e| e.into_inner());
                    *count = count.saturating_sub(batch.len() as u64);
                    done.written.notify_all();
                }
            })
            .ok();
        Recorder {
            tx: Mutex::new(worker.as_ref().map(|_| tx)),
            pending,
            worker: Mutex::new(worker),
        }
    }

    /// Queues `record`; `Err` gives it back when the writer is gone (the caller writes it).
    pub(crate) fn push(&self, record: LookupRecord) -> Result<(), Box<LookupRecord>> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let Some(tx) = tx.as_ref() else {
            return Err(Box::new(record));
        };
        *self.pending.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        tx.send(record).map_err(|e| {
            let mut count = self.pending.count.lock().unwrap_or_else(|e| e.into_inner());
            *count = count.saturating_sub(1);
            Box::new(e.0)
        })
    }

    /// Waits until every record queued so far is written.
    pub(crate) fn flush(&self) {
        let mut count = self.pending.count.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = std::time::Instant::now() + FLUSH_WAIT;
        while *count > 0 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            count = match self.pending.written.wait_timeout(count, left) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Closing the queue ends the writer once it has written what is queued.
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = worker.join();
        }
    }
}
