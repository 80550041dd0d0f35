//! zstd archives as a run of independent frames, one per chunk of tar bytes. Chunks end at
//! entry boundaries chosen by the entry's name (content-defined), so an unchanged stretch of a
//! tree cuts into the same chunks on every save. That buys two things: chunks compress on all
//! cores with no window handed between threads, and a chunk whose bytes a store has compressed
//! before is not compressed again: its frame is copied from the blob that holds it
//! ([`FrameSource`]). A zstd stream may hold any number of frames and every decoder reads them
//! as one stream, so GNU tar and `zstd -d` read the archive as before.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// zstd level `zstd -T0` uses by default.
pub(super) const LEVEL: i32 = 3;
/// A chunk ends at the first entry boundary picked by its name once it holds this many bytes.
const CHUNK_MIN: usize = 4 << 20;
/// One entry boundary in `2^CUT_BITS` is a cut point (by a hash of the entry's name): with a
/// `node_modules`' 14 KB per entry, chunks of about 6 MiB. Independent frames of that size
/// cost well under 1% of size against one frame (level 3's window is 2 MiB).
const CUT_BITS: u32 = 7;
/// A chunk is cut at exactly this many bytes whatever it holds (a large file spans chunks).
const CHUNK_MAX: usize = 16 << 20;

/// A BLAKE3 digest.
pub type Digest = [u8; 32];

/// One frame of an archive: the tar bytes it holds and where it lies in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRecord {
    /// BLAKE3 of the tar bytes the frame decompresses to.
    pub chunk: Digest,
    /// Offset of the frame in the archive.
    pub offset: u64,
    /// Length of the frame in bytes.
    pub len: u64,
    /// BLAKE3 of the frame itself, checked before a frame is copied into another archive.
    pub frame: Digest,
}

/// A frame compressed before, as a [`FrameSource`] hands it out.
pub struct Frame {
    /// The frame's bytes.
    pub bytes: Vec<u8>,
    /// Their BLAKE3 digest, already checked against the one recorded with the frame.
    pub digest: Digest,
}

/// Frames compressed by earlier saves, looked up by what they decompress to. The digests are
/// BLAKE3, so a chunk crafted to collide with another's is out of reach: a frame found here
/// holds exactly the bytes the save would have compressed.
pub trait FrameSource: Send + Sync {
    /// The frame whose tar bytes have BLAKE3 digest `chunk`, its bytes checked against their
    /// recorded digest; `None` when there is none or it cannot be read intact.
    fn frame(&self, chunk: &Digest) -> Option<Frame>;
}

/// The name hash that picks cut points: FNV-1a, fixed forever (a change would move every cut
/// and lose one save's worth of reuse, nothing else).
pub(super) fn is_cut_point(name: &[u8]) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in name {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 40) & ((1 << CUT_BITS) - 1) == 0
}

/// What a worker sends back: the frame, its digest and the chunk buffer for reuse.
type Done = io::Result<(Vec<u8>, Digest, Vec<u8>)>;

struct Job {
    chunk: Vec<u8>,
    reply: SyncSender<Done>,
}

/// A frame on its way to the output, in archive order.
enum Slot {
    Ready { frame: Frame, chunk: Digest },
    Compressing { done: Receiver<Done>, chunk: Digest },
}

/// How the frames are compressed.
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameParams {
    /// Worker threads (at least one).
    pub workers: usize,
    /// zstd window log, `None` for level 3's own.
    pub window_log: Option<u32>,
}

/// Writes tar bytes as independent frames into `out`.
pub(super) struct Framed<'w> {
    /// `None` only once [`Framed::finish`] has handed it back.
    out: Option<&'w mut dyn Write>,
    source: Option<&'w dyn FrameSource>,
    chunk: Vec<u8>,
    /// Bytes written to `out` so far: the next frame's offset.
    pos: u64,
    slots: VecDeque<Slot>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    free: Vec<Vec<u8>>,
    depth: usize,
    records: Vec<FrameRecord>,
    /// Tar bytes whose frames were copied instead of compressed.
    reused: u64,
}

/// A compressor with our settings; building one up front checks them, so a refusal still leaves
/// the caller free to fall back to gzip before a byte is written.
fn compressor(params: FrameParams) -> io::Result<zstd::bulk::Compressor<'static>> {
    use zstd::stream::raw::CParameter;
    let mut c = zstd::bulk::Compressor::new(LEVEL)?;
    c.set_parameter(CParameter::ChecksumFlag(true))?;
    if let Some(log) = params.window_log {
        c.set_parameter(CParameter::WindowLog(log))?;
    }
    Ok(c)
}

fn worker(jobs: Arc<Mutex<Receiver<Job>>>, mut c: zstd::bulk::Compressor<'static>) {
    loop {
        let job = {
            let rx = jobs.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        let Ok(Job { chunk, reply }) = job else {
            return;
        };
        let mut frame = Vec::with_capacity(zstd::zstd_safe::compress_bound(chunk.len()));
        let done = c.compress_to_buffer(&chunk[..], &mut frame).map(|_| {
            let digest = *blake3::hash(&frame).as_bytes();
            (frame, digest, chunk)
        });
        // The writer went away (an error upstream): nothing left to do.
        let _ = reply.send(done);
    }
}

/// One compressor per worker, with the settings checked: built before the archive's writer is
/// taken, so a refusal leaves it free for the gzip fallback.
pub(super) struct Compressors(Vec<zstd::bulk::Compressor<'static>>);

impl Compressors {
    /// Builds `params.workers` compressors (at least one).
    pub(super) fn new(params: FrameParams) -> io::Result<Self> {
        (0..params.workers.max(1))
            .map(|_| compressor(params))
            .collect::<io::Result<Vec<_>>>()
            .map(Compressors)
    }
}

impl<'w> Framed<'w> {
    /// Starts a worker per compressor.
    pub(super) fn new(
        out: &'w mut dyn Write,
        compressors: Compressors,
        source: Option<&'w dyn FrameSource>,
    ) -> Self {
        let workers = compressors.0.len();
        let (tx, rx) = sync_channel::<Job>(workers);
        let rx = Arc::new(Mutex::new(rx));
        let handles = compressors
            .0
            .into_iter()
            .map(|c| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || worker(rx, c))
            })
            .collect();
        Framed {
            out: Some(out),
            source,
            chunk: Vec::with_capacity(CHUNK_MAX),
            pos: 0,
            slots: VecDeque::new(),
            jobs: Some(tx),
            workers: handles,
            free: Vec::new(),
            depth: workers * 2 + 1,
            records: Vec::new(),
            reused: 0,
        }
    }

    /// Appends tar bytes; a chunk reaching [`CHUNK_MAX`] is cut right there.
    pub(super) fn write_all(&mut self, mut b: &[u8]) -> io::Result<()> {
        while !b.is_empty() {
            let take = b.len().min(CHUNK_MAX - self.chunk.len());
            self.chunk.extend_from_slice(&b[..take]);
            b = &b[take..];
            if self.chunk.len() == CHUNK_MAX {
                self.seal()?;
            }
        }
        Ok(())
    }

    /// Marks the end of an entry whose name is a cut point ([`is_cut_point`]): the chunk ends
    /// here once it is big enough.
    pub(super) fn cut_point(&mut self) -> io::Result<()> {
        if self.chunk.len() >= CHUNK_MIN {
            self.seal()?;
        }
        Ok(())
    }

    /// Ends the current chunk: its frame is copied from the source when one holds it, else
    /// compressed by a worker.
    fn seal(&mut self) -> io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let fresh = self
            .free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(CHUNK_MAX));
        let chunk = std::mem::replace(&mut self.chunk, fresh);
        let digest = *blake3::hash(&chunk).as_bytes();
        if let Some(frame) = self.source.and_then(|s| s.frame(&digest)) {
            self.reused += chunk.len() as u64;
            self.recycle(chunk);
            self.slots.push_back(Slot::Ready {
                frame,
                chunk: digest,
            });
        } else {
            let (reply, done) = sync_channel(1);
            let jobs = self
                .jobs
                .as_ref()
                .ok_or_else(|| io::Error::other("frame workers stopped"))?;
            jobs.send(Job { chunk, reply })
                .map_err(|_| io::Error::other("frame workers stopped"))?;
            self.slots.push_back(Slot::Compressing {
                done,
                chunk: digest,
            });
        }
        self.drain(self.depth)
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < self.depth {
            buf.clear();
            self.free.push(buf);
        }
    }

    /// Writes finished frames in order, waiting while more than `keep` are in flight.
    fn drain(&mut self, keep: usize) -> io::Result<()> {
        while let Some(front) = self.slots.front() {
            let must_wait = self.slots.len() > keep;
            let ready = match front {
                Slot::Ready { .. } => true,
                Slot::Compressing { done, .. } if must_wait => {
                    let result = done
                        .recv()
                        .map_err(|_| io::Error::other("a frame worker stopped"))?;
                    let chunk = match self.slots.pop_front() {
                        Some(Slot::Compressing { chunk, .. }) => chunk,
                        _ => return Err(io::Error::other("frame queue out of order")),
                    };
                    self.finish_compressed(result, chunk)?;
                    continue;
                }
                Slot::Compressing { done, .. } => match done.try_recv() {
                    Ok(result) => {
                        let chunk = match self.slots.pop_front() {
                            Some(Slot::Compressing { chunk, .. }) => chunk,
                            _ => return Err(io::Error::other("frame queue out of order")),
                        };
                        self.finish_compressed(result, chunk)?;
                        continue;
                    }
                    Err(std::sync::mpsc::TryRecvError::Empty) => false,
                    Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                        return Err(io::Error::other("a frame worker stopped"));
                    }
                },
            };
            if !ready {
                break;
            }
            if let Some(Slot::Ready { frame, chunk }) = self.slots.pop_front() {
                self.emit(&frame.bytes, frame.digest, chunk)?;
            }
        }
        Ok(())
    }

    fn finish_compressed(&mut self, result: Done, chunk: Digest) -> io::Result<()> {
        let (frame, digest, buf) = result?;
        self.recycle(buf);
        self.emit(&frame, digest, chunk)
    }

    fn emit(&mut self, frame: &[u8], digest: Digest, chunk: Digest) -> io::Result<()> {
        self.out
            .as_mut()
            .ok_or_else(|| io::Error::other("archive output already handed back"))?
            .write_all(frame)?;
        self.records.push(FrameRecord {
            chunk,
            offset: self.pos,
            len: frame.len() as u64,
            frame: digest,
        });
        self.pos += frame.len() as u64;
        Ok(())
    }

    /// Writes the last chunk and every frame still in flight; gives the writer back, with the
    /// frames written and the tar bytes reused.
    pub(super) fn finish(mut self) -> io::Result<Finished<'w>> {
        self.seal()?;
        self.drain(0)?;
        self.stop();
        let out = self
            .out
            .take()
            .ok_or_else(|| io::Error::other("archive output already handed back"))?;
        Ok(Finished {
            records: std::mem::take(&mut self.records),
            reused: self.reused,
            out,
        })
    }

    fn stop(&mut self) {
        self.jobs = None;
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Framed<'_> {
    fn drop(&mut self) {
        // An error path: let the workers see the closed queue and end.
        self.slots.clear();
        self.stop();
    }
}

/// What [`Framed::finish`] hands back.
pub(super) struct Finished<'w> {
    /// The writer, for a frame after these.
    pub out: &'w mut dyn Write,
    /// The frames written, in order.
    pub records: Vec<FrameRecord>,
    /// Tar bytes whose frames were copied rather than compressed.
    pub reused: u64,
}
