//! Assembling an upload while its parts arrive, so finalizing it has little left to do.
//!
//! An upload in parts (v1 chunks, Azure blocks) is only ordered by the request that finalizes
//! it: the block list, or the chunks' offsets. Until then this module guesses the order (a v1
//! chunk starts where the bytes so far end; an Azure SDK block id ends in its zero-padded
//! index), and copies each part into a new blob, hashing it, as soon as the part that comes
//! before it is in. At finalize, if the real order begins with
//! the parts copied, only the rest is copied ([`Assemblies::take`]); if not, or if any copied
//! part was staged again since, the early copy is dropped and finalize assembles from the start
//! as it would have anyway. A guess can only cost time, never change what is stored.
//!
//! Only for staging this node alone sees: with shared staging another node may receive a part
//! again without this one knowing.
//!
//! The assembler picks the next part among those whose arrival [`Assemblies::received`] has
//! recorded, not from a listing of staging. A part is on disk a moment before its request
//! records it, and an assembler that took it in that moment would have its own claim read as
//! the part being staged again, spoiling an upload that was sent once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Inner;
use super::staging::{self, Part, block_index};
use crate::store::blob::BlobWriter;

/// The uploads being assembled early on this node.
#[derive(Debug)]
pub(super) struct Assemblies {
    enabled: bool,
    uploads: Mutex<HashMap<String, Arc<Upload>>>,
}

/// One upload's early assembly.
struct Upload {
    /// The reservation it was begun for: an upload id is reused by the next save of its key.
    reservation: String,
    /// Which parts arrived and which the assembler took.
    parts: Mutex<Parts>,
    spoiled: AtomicBool,
    /// Set by `take` and `forget`: the assembler stops after the part it is copying.
    stopped: AtomicBool,
    state: Mutex<State>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("reservation", &self.reservation)
            .field("spoiled", &self.spoiled.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The parts of an upload as its requests and its assembler see them.
#[derive(Default)]
struct Parts {
    /// Parts whose request recorded them (the assembler copies nothing else).
    arrived: HashSet<Part>,
    /// Parts the assembler has copied or is copying; one arriving again after that spoils it.
    claimed: HashSet<Part>,
}

impl Parts {
    /// Records that `part` arrived; false when it arrived again after the assembler took it,
    /// so what was copied may not be what is staged now.
    fn arrive(&mut self, part: &Part) -> bool {
        if self.claimed.contains(part) {
            return false;
        }
        self.arrived.insert(part.clone());
        true
    }

    /// The arrived part that comes after `copied` (`bytes` long), taken for copying.
    fn claim_next(&mut self, copied: &[Part], bytes: u64) -> Option<Part> {
        let next = successor(copied, bytes, self.arrived.difference(&self.claimed))?;
        self.claimed.insert(next.clone());
        Some(next)
    }
}

#[derive(Default)]
struct State {
    /// The blob being written; made at the first part.
    writer: Option<Box<dyn BlobWriter>>,
    /// Parts copied into it, in order.
    copied: Vec<Part>,
    /// Bytes copied.
    bytes: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The part of `parts` that comes after `copied` (`bytes` long), if exactly one can.
fn successor<'a>(
    copied: &[Part],
    bytes: u64,
    parts: impl IntoIterator<Item = &'a Part>,
) -> Option<Part> {
    let mut candidates = parts.into_iter().filter(|part| match part {
        Part::Range { start, .. } => {
            *start == bytes && copied.iter().all(|p| matches!(p, Part::Range { .. }))
        }
        Part::Block(id) => {
            let Some((prefix, index)) = block_index(id) else {
                return false;
            };
            let same_prefix = match copied.first() {
                None => true,
                Some(Part::Block(first)) => block_index(first).is_some_and(|(p, _)| p == prefix),
                Some(_) => false,
            };
            same_prefix && index == copied.len() as u64
        }
        Part::Blob | Part::BlockList => false,
    });
    let first = candidates.next()?;
    candidates.next().is_none().then(|| first.clone())
}

impl Assemblies {
    /// Early assembly on (`enabled`) or off.
    pub(super) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            uploads: Mutex::new(HashMap::new()),
        }
    }

    /// Whether uploads are assembled early (and their blocks written in place) here.
    pub(super) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Starts tracking upload `id` for `reservation` (replacing any earlier upload of the id).
    pub(super) fn begin(&self, id: &str, reservation: &str) {
        if !self.enabled {
            return;
        }
        let upload = Arc::new(Upload {
            reservation: reservation.to_string(),
            parts: Mutex::new(Parts::default()),
            spoiled: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            state: Mutex::new(State::default()),
        });
        if let Some(old) = lock(&self.uploads).insert(id.to_string(), upload) {
            old.stopped.store(true, Ordering::SeqCst);
        }
    }

    /// Drops upload `id`'s early assembly (its blob, never finished, leaves nothing).
    pub(super) fn forget(&self, id: &str) {
        if let Some(old) = lock(&self.uploads).remove(id) {
            old.stopped.store(true, Ordering::SeqCst);
        }
    }

    /// Part `part` of upload `id` is now staged: copies what can be copied, on a blocking
    /// thread, and returns at once.
    pub(super) fn received(inner: &Arc<Inner>, id: &str, part: &Part) {
        let Some(upload) = lock(&inner.assemblies.uploads).get(id).cloned() else {
            return;
        };
        // Staged again after the assembler read it (or while it reads it): what it copied may
        // not be what is staged now.
        if !lock(&upload.parts).arrive(part) {
            upload.spoiled.store(true, Ordering::SeqCst);
            return;
        }
        let inner = Arc::clone(inner);
        let id = id.to_string();
        tokio::task::spawn_blocking(move || advance(&inner, &id, &upload));
    }

    /// Upload `id`'s early assembly, if it is the beginning of `plan`: the blob writer holding
    /// the first `n` parts of `plan`, and `n`. `None` means assemble from the start.
    pub(super) fn take(
        &self,
        id: &str,
        reservation: &str,
        plan: &[Part],
    ) -> Option<(Box<dyn BlobWriter>, usize)> {
        let upload = lock(&self.uploads).remove(id)?;
        upload.stopped.store(true, Ordering::SeqCst);
        // Waits for the part being copied, if any.
        let mut state = lock(&upload.state);
        if upload.reservation != reservation
            || upload.spoiled.load(Ordering::SeqCst)
            || !plan.starts_with(&state.copied)
        {
            return None;
        }
        let n = state.copied.len();
        state.writer.take().map(|writer| (writer, n))
    }
}

/// Copies parts into the upload's blob for as long as the next one has arrived (one that has
/// not yet is copied by the pass its own request starts).
fn advance(inner: &Inner, id: &str, upload: &Upload) {
    let mut state = lock(&upload.state);
    loop {
        if upload.stopped.load(Ordering::SeqCst) || upload.spoiled.load(Ordering::SeqCst) {
            return;
        }
        let Some(next) = lock(&upload.parts).claim_next(&state.copied, state.bytes) else {
            return;
        };
        match copy_part(inner, id, &next, &mut state) {
            Ok(n) => {
                state.bytes += n;
                state.copied.push(next);
            }
            Err(()) => {
                // Finalize copies everything itself, and reports what fails then.
                state.writer = None;
                upload.spoiled.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}

fn copy_part(inner: &Inner, id: &str, part: &Part, state: &mut State) -> Result<u64, ()> {
    if state.writer.is_none() {
        state.writer = Some(inner.cache.store().blobs().writer().map_err(drop)?);
    }
    let writer = state.writer.as_mut().ok_or(())?;
    let n = staging::copy_parts(
        inner.staging.as_ref(),
        id,
        std::slice::from_ref(part),
        writer,
    )
    .map_err(drop)?;
    // Into the file (the page cache), no further: nothing starts its writeback, so when the
    // same bytes are stored already (a rolling key over unchanged content) this copy is
    // usually dropped at finalize before the kernel writes it out.
    writer.flush().map_err(drop)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(prefix: &str, index: usize) -> Part {
        Part::Block(format!("{prefix}{index:012}").into_bytes())
    }

    /// The order CI once hit: the assembler, copying block 0, saw block 1 on disk before block
    /// 1's request recorded it. Taking it then made that request's record look like block 1
    /// staged again, and an upload sent once lost its early copy.
    #[test]
    fn only_a_recorded_arrival_is_taken_and_only_a_later_one_spoils() {
        let p = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        let mut parts = Parts::default();
        assert!(parts.arrive(&block(p, 0)));
        assert_eq!(parts.claim_next(&[], 0), Some(block(p, 0)));
        // Block 1 not recorded yet (it may be on disk already): left for its own request's pass.
        assert_eq!(parts.claim_next(&[block(p, 0)], 10), None);
        assert!(
            parts.arrive(&block(p, 1)),
            "its first arrival spoils nothing"
        );
        assert_eq!(parts.claim_next(&[block(p, 0)], 10), Some(block(p, 1)));
        assert_eq!(
            parts.claim_next(&[block(p, 0)], 10),
            None,
            "a part is copied once"
        );
        // Staged again after it was taken: what was copied may be stale.
        assert!(!parts.arrive(&block(p, 1)));
        // Arriving twice before it is taken is no harm: the copy reads the newest.
        assert!(parts.arrive(&block(p, 2)));
        assert!(parts.arrive(&block(p, 2)));
        assert_eq!(
            parts.claim_next(&[block(p, 0), block(p, 1)], 20),
            Some(block(p, 2))
        );
    }

    #[test]
    fn the_next_part_is_the_one_a_client_sends_next() {
        let p = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        let staged = vec![block(p, 2), block(p, 0), block(p, 1)];
        assert_eq!(successor(&[], 0, &staged), Some(block(p, 0)));
        assert_eq!(successor(&[block(p, 0)], 10, &staged), Some(block(p, 1)));
        assert_eq!(
            successor(&[block(p, 0), block(p, 1), block(p, 2)], 30, &staged),
            None
        );
        // Another upload's prefix is never next; two candidates for one place are no guess.
        let other = vec![block("other", 1)];
        assert_eq!(successor(&[block(p, 0)], 10, &other), None);
        let two = vec![block(p, 0), block("other", 0)];
        assert_eq!(successor(&[], 0, &two), None);
        // Ids that do not end in digits are never guessed.
        let random = vec![Part::Block(b"no index here".to_vec())];
        assert_eq!(successor(&[], 0, &random), None);
        // v1 chunks: the one that starts where the bytes end.
        let ranges = vec![
            Part::Range { start: 0, end: 9 },
            Part::Range { start: 10, end: 19 },
        ];
        assert_eq!(
            successor(&[Part::Range { start: 0, end: 9 }], 10, &ranges),
            Some(Part::Range { start: 10, end: 19 })
        );
    }
}
