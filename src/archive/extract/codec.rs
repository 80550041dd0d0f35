//! The codec side of a restore: the decoder picked by magic bytes, and the decoded stream
//! handed to the parser thread in chunks.

use std::io::{BufRead, BufReader, Read};
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

/// The tar parser's side of the decoded stream: chunks sent by the decoding thread.
pub(super) struct ChunkReader {
    rx: Option<Receiver<std::io::Result<Vec<u8>>>>,
    free: Sender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

/// Decoded bytes per chunk handed from the decoder to the parser.
const CHUNK: usize = 1 << 20;

impl ChunkReader {
    /// Reads the chunks from `rx`, handing each used one back on `free`.
    pub(super) fn new(rx: Receiver<std::io::Result<Vec<u8>>>, free: Sender<Vec<u8>>) -> Self {
        ChunkReader {
            rx: Some(rx),
            free,
            chunk: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.chunk.len() {
            let Some(rx) = &self.rx else { return Ok(0) };
            match rx.recv() {
                Ok(Ok(chunk)) => {
                    let used = std::mem::replace(&mut self.chunk, chunk);
                    // The decoder may be gone already; then the buffer is simply dropped.
                    let _ = self.free.send(used);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.rx = None;
                    return Err(e);
                }
                // The decoder is done: end of stream.
                Err(_) => self.rx = None,
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads the decoder to its end in chunks and sends them on; stops early when the parser has
/// gone (it failed). Progress is reported here, in decoded (tar) bytes.
pub(super) fn pump(
    decoder: &mut dyn Read,
    tx: &SyncSender<std::io::Result<Vec<u8>>>,
    free: &Receiver<Vec<u8>>,
    progress: Option<&dyn Fn(u64)>,
) {
    let mut total = 0u64;
    loop {
        let mut buf = free.try_recv().unwrap_or_default();
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
        if filled > 0 && tx.send(Ok(buf)).is_err() {
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
