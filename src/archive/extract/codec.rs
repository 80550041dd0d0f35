//! The codec side of a restore: the decoder picked by magic bytes, and the decoded stream
//! handed to the parser thread in shared chunks, so file contents go from the decoder's output
//! to `write` as slices of them, never copied in between.

use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender};

use super::super::ArchiveError;
use super::corrupt;

/// zstd window limit: archives made with `zstd --long=30/31` decode.
const WINDOW_LOG_MAX: u32 = 31;

/// The decoder for `input`: zstd or gzip by their magic bytes, else plain tar.
pub(super) fn open_decoder<'a>(
    input: &'a mut dyn Read,
) -> Result<Box<dyn Read + 'a>, ArchiveError> {
    let mut buffered = BufReader::with_capacity(1 << 20, input);
    let head = buffered.fill_buf().map_err(corrupt)?;
    if head.is_empty() {
        return Err(ArchiveError::Corrupt {
            reason: "the archive is empty".into(),
        });
    }
    Ok(if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        let mut z = zstd::stream::read::Decoder::with_buffer(buffered).map_err(corrupt)?;
        z.window_log_max(WINDOW_LOG_MAX).map_err(corrupt)?;
        Box::new(z)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    })
}

/// Decoded bytes per chunk handed from the decoder to the parser.
const CHUNK: usize = 1 << 20;

/// One buffer of decoded bytes, shared by the slices of it that jobs hold; the buffer goes back
/// to the decoder when the last one is dropped (fresh 1 MiB buffers cost page faults and
/// zeroing).
pub(super) struct Chunk {
    buf: Vec<u8>,
    home: Sender<Vec<u8>>,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // The decoder may be gone already; then the buffer is simply freed.
        let _ = self.home.send(std::mem::take(&mut self.buf));
    }
}

/// Bytes `start..end` of a chunk.
pub(super) struct Slice {
    chunk: Arc<Chunk>,
    start: usize,
    end: usize,
}

impl Slice {
    /// The bytes.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.chunk.buf[self.start..self.end]
    }
}

/// What the decoding thread sends: a chunk, or the error that ended decoding.
pub(super) type ChunkMsg = std::io::Result<Chunk>;

/// The parser's side of the decoded stream: reads headers by copy and contents as slices.
pub(super) struct ChunkStream {
    rx: Option<Receiver<ChunkMsg>>,
    chunk: Option<Arc<Chunk>>,
    pos: usize,
    /// Chunks received so far.
    pub(super) chunks: u64,
}

impl ChunkStream {
    /// Reads the chunks from `rx`.
    pub(super) fn new(rx: Receiver<ChunkMsg>) -> Self {
        ChunkStream {
            rx: Some(rx),
            chunk: None,
            pos: 0,
            chunks: 0,
        }
    }

    /// The current chunk while it has unread bytes, else the next one; `None` at the end.
    fn current(&mut self) -> std::io::Result<Option<Arc<Chunk>>> {
        loop {
            if let Some(c) = &self.chunk
                && self.pos < c.buf.len()
            {
                return Ok(Some(Arc::clone(c)));
            }
            // Let go of a used chunk before waiting for the next.
            self.chunk = None;
            let Some(rx) = &self.rx else { return Ok(None) };
            match rx.recv() {
                Ok(Ok(chunk)) => {
                    self.chunk = Some(Arc::new(chunk));
                    self.pos = 0;
                    self.chunks += 1;
                }
                Ok(Err(e)) => {
                    self.rx = None;
                    return Err(e);
                }
                // The decoder is done: end of stream.
                Err(_) => self.rx = None,
            }
        }
    }

    /// Up to `n` bytes (at least one) from the current chunk as a slice; `None` at the end.
    pub(super) fn slice(&mut self, n: usize) -> std::io::Result<Option<Slice>> {
        let Some(chunk) = self.current()? else {
            return Ok(None);
        };
        let start = self.pos;
        let end = chunk.buf.len().min(start + n);
        self.pos = end;
        Ok(Some(Slice { chunk, start, end }))
    }

    /// Fills `out` entirely; false if the stream ended first (after any bytes).
    pub(super) fn read_exact(&mut self, out: &mut [u8]) -> std::io::Result<bool> {
        let mut filled = 0;
        while filled < out.len() {
            let Some(s) = self.slice(out.len() - filled)? else {
                return Ok(false);
            };
            let b = s.bytes();
            out[filled..filled + b.len()].copy_from_slice(b);
            filled += b.len();
        }
        Ok(true)
    }

    /// `n` bytes as slices appended to `out`; false if the stream ended first.
    pub(super) fn slices(&mut self, mut n: u64, out: &mut Vec<Slice>) -> std::io::Result<bool> {
        while n > 0 {
            let Some(s) = self.slice(n.min(CHUNK as u64) as usize)? else {
                return Ok(false);
            };
            n -= (s.end - s.start) as u64;
            out.push(s);
        }
        Ok(true)
    }

    /// Skips `n` bytes; false if the stream ended first.
    pub(super) fn skip(&mut self, mut n: u64) -> std::io::Result<bool> {
        while n > 0 {
            let Some(s) = self.slice(n.min(CHUNK as u64) as usize)? else {
                return Ok(false);
            };
            n -= (s.end - s.start) as u64;
        }
        Ok(true)
    }

    /// Reads to the end of the stream, so the codec checks its trailer (zstd checksum, gzip CRC).
    pub(super) fn drain(&mut self) -> std::io::Result<()> {
        while self.skip(u64::MAX)? {}
        Ok(())
    }
}

/// Reads the decoder to its end in chunks and sends them on; stops early when the parser has
/// gone (it failed). Progress is reported here, in decoded (tar) bytes.
pub(super) fn pump(
    decoder: &mut dyn Read,
    tx: &SyncSender<ChunkMsg>,
    free: (&Sender<Vec<u8>>, &Receiver<Vec<u8>>),
    progress: Option<&dyn Fn(u64)>,
) {
    let mut total = 0u64;
    loop {
        let mut buf = free.1.try_recv().unwrap_or_default();
        // Zero-filled once per buffer; a reused one only grows back to its old length.
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        let mut failure = None;
        while filled < CHUNK {
            match decoder.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        buf.truncate(filled);
        total += filled as u64;
        let last = filled < CHUNK || failure.is_some();
        let chunk = Chunk {
            buf,
            home: free.0.clone(),
        };
        if filled > 0 && tx.send(Ok(chunk)).is_err() {
            return;
        }
        if let Some(e) = failure {
            let _ = tx.send(Err(e));
            return;
        }
        if let Some(cb) = progress {
            cb(total);
        }
        if last {
            return;
        }
    }
}
