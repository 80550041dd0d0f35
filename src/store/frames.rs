//! Where the frames of archives in the local blob store lie, by the BLAKE3 digest of the tar
//! bytes each decompresses to ([`crate::archive::FrameRecord`]), so a save copies a chunk's frame
//! instead of compressing it again: saving a tree that is mostly what an earlier save held (a
//! rolling key, one bumped dependency) costs reading it, not compressing it.
//!
//! On disk: `frames-v1/ab/abcdef…` (the chunk digest), one line `<blob> <offset> <len> <frame>`
//! per file, written to `frames-v1/tmp/` and renamed into place. A record is a hint, never
//! trusted: the frame is read from its blob and must hash to the recorded frame digest before it
//! is used; a record whose blob is gone or whose bytes differ is removed, and the save
//! compresses that chunk as usual.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::blob::{BlobError, BlobStore};
use crate::archive::{Digest, Frame, FrameRecord, FrameSource};

/// The directory of frame records inside a store directory.
pub const FRAMES_DIR: &str = "frames-v1";

/// Frames longer than this are never read back whole (a record claiming more is ignored): the
/// archive writer cuts chunks at 16 MiB, and a frame is at most a little over its chunk.
const MAX_FRAME: u64 = 17 << 20;

/// The frame records of one local store.
#[derive(Debug)]
pub struct FrameMap {
    dir: PathBuf,
    blobs: Arc<dyn BlobStore>,
    /// Distinguishes this process's temporary record files.
    seq: AtomicU64,
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn unhex(s: &str) -> Option<Digest> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// One parsed record: the blob, and where in it the frame lies.
struct Record {
    blob: String,
    offset: u64,
    len: u64,
    frame: Digest,
}

fn parse(line: &str) -> Option<Record> {
    let mut parts = line.split_ascii_whitespace();
    let blob = parts.next()?;
    let record = Record {
        blob: blob.to_string(),
        offset: parts.next()?.parse().ok()?,
        len: parts.next()?.parse().ok()?,
        frame: unhex(parts.next()?)?,
    };
    let blob_ok = crate::store::blob::is_valid_digest(blob);
    (blob_ok && parts.next().is_none() && record.len <= MAX_FRAME).then_some(record)
}

impl FrameMap {
    /// The records under `store_dir/frames-v1/`, for frames in `blobs`.
    pub fn new(store_dir: &Path, blobs: Arc<dyn BlobStore>) -> Self {
        FrameMap {
            dir: store_dir.join(FRAMES_DIR),
            blobs,
            seq: AtomicU64::new(0),
        }
    }

    fn path_of(&self, chunk: &Digest) -> PathBuf {
        let name = hex::encode(chunk);
        self.dir.join(&name[..2]).join(name)
    }

    /// Records where each of `frames` lies in blob `blob`. Newer records replace older ones
    /// (the newest blob is the one eviction keeps longest); a record that already says this
    /// (the same archive saved again) is left as it is.
    pub fn record(&self, blob: &str, frames: &[FrameRecord]) -> Result<(), BlobError> {
        let tmp_dir = self.dir.join("tmp");
        fs::create_dir_all(&tmp_dir).map_err(io_at(&tmp_dir))?;
        for f in frames {
            let path = self.path_of(&f.chunk);
            let line = format!("{blob} {} {} {}\n", f.offset, f.len, hex::encode(f.frame));
            if fs::read_to_string(&path).is_ok_and(|old| old == line) {
                continue;
            }
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(io_at(parent))?;
            }
            let tmp = tmp_dir.join(format!(
                "{}-{}",
                std::process::id(),
                self.seq.fetch_add(1, Ordering::Relaxed)
            ));
            let written = fs::File::create(&tmp)
                .and_then(|mut file| file.write_all(line.as_bytes()))
                .and_then(|()| fs::rename(&tmp, &path));
            if let Err(err) = written {
                let _ = fs::remove_file(&tmp);
                return Err(io_at(&path)(err));
            }
        }
        Ok(())
    }

    /// Removes the records whose blob `live` says is gone; returns how many. Reads every record:
    /// for maintenance, and for evictions that deleted blobs.
    pub fn prune(&self, live: &dyn Fn(&str) -> bool) -> Result<u64, BlobError> {
        let mut removed = 0;
        let shards = match fs::read_dir(&self.dir) {
            Ok(shards) => shards,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(err) => return Err(io_at(&self.dir)(err)),
        };
        for shard in shards {
            let shard = shard.map_err(io_at(&self.dir))?.path();
            if !shard.is_dir() || shard.file_name().is_some_and(|n| n == "tmp") {
                continue;
            }
            for file in fs::read_dir(&shard).map_err(io_at(&shard))? {
                let path = file.map_err(io_at(&shard))?.path();
                let keep = fs::read_to_string(&path)
                    .ok()
                    .and_then(|s| parse(&s))
                    .is_some_and(|r| live(&r.blob));
                if !keep {
                    let _ = fs::remove_file(&path);
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// The recorded frame, read from its blob; `Err` with why it cannot be used.
    fn read(&self, path: &Path) -> Result<Frame, String> {
        let text = fs::read_to_string(path).map_err(|e| e.to_string())?;
        let record = parse(&text).ok_or("unreadable record")?;
        let mut reader = self
            .blobs
            .open_range(&record.blob, record.offset, record.len)
            .map_err(|e| e.to_string())?;
        let mut bytes = Vec::with_capacity(record.len as usize);
        reader.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        let digest = *blake3::hash(&bytes).as_bytes();
        if bytes.len() as u64 != record.len || digest != record.frame {
            return Err("frame bytes differ from the record".into());
        }
        Ok(Frame { bytes, digest })
    }
}

impl FrameSource for FrameMap {
    fn frame(&self, chunk: &Digest) -> Option<Frame> {
        let path = self.path_of(chunk);
        match self.read(&path) {
            Ok(frame) => Some(frame),
            Err(_) => {
                // Gone (no record, or its blob was evicted) or altered: compress instead, and
                // drop a record that can never be used.
                if path.exists() {
                    let _ = fs::remove_file(&path);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_only_when_whole_and_well_formed() {
        let blob = "ab".repeat(32);
        let frame = "cd".repeat(32);
        let rows = [
            (format!("{blob} 0 10 {frame}\n"), true),
            (format!("{blob} 5 10 {frame}"), true),
            (format!("{blob} 5 10"), false),
            (format!("{blob} x 10 {frame}"), false),
            (format!("{blob} 0 10 {frame} extra"), false),
            (format!("{} 0 10 {frame}", "AB".repeat(32)), false),
            (format!("../../etc 0 10 {frame}"), false),
            (format!("{blob} 0 {} {frame}", MAX_FRAME + 1), false),
        ];
        for (line, ok) in rows {
            assert_eq!(parse(&line).is_some(), ok, "{line}");
        }
    }
}
