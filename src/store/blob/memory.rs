//! Blobs in memory, for tests and embedders that need no persistence. Writes are staged per
//! writer and become visible only on `finish`, like the other stores.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use super::verify::DigestWriter;
use super::{BlobError, BlobInfo, BlobStat, BlobStore, BlobWriter, ListedBlob, check_digest};
use crate::clock::{Clock, EpochMillis, SystemClock};

#[derive(Debug)]
struct Stored {
    bytes: Arc<[u8]>,
    modified_at: EpochMillis,
}

#[derive(Debug, Default)]
struct Inner {
    blobs: BTreeMap<String, Stored>,
}

/// Content-addressed blobs held in memory; clones share the same blobs.
#[derive(Debug, Clone)]
pub struct MemoryBlobStore {
    inner: Arc<Mutex<Inner>>,
    clock: Arc<dyn Clock>,
    /// Report every age as unknown, like a store without timestamps.
    ages_known: bool,
}

impl Default for MemoryBlobStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBlobStore {
    /// An empty store whose blob ages come from the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store whose blob ages come from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::default(),
            clock,
            ages_known: true,
        }
    }

    /// The same blobs, seen through a store that cannot tell their ages (as some object stores
    /// and wrappers cannot): what cleanups must cope with.
    pub fn without_ages(&self) -> Self {
        Self {
            ages_known: false,
            ..self.clone()
        }
    }

    /// Replaces the bytes stored under `digest` (which must exist) without renaming them: how
    /// tests model a bit flip on disk.
    pub fn tamper(&self, digest: &str, bytes: &[u8]) -> Result<(), BlobError> {
        let mut inner = self.lock();
        let stored = inner
            .blobs
            .get_mut(digest)
            .ok_or_else(|| BlobError::NotFound {
                digest: digest.to_string(),
            })?;
        stored.bytes = Arc::from(bytes);
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking writer cannot leave the map half-updated (every update is one insert).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn age(&self, stored: &Stored) -> Option<EpochMillis> {
        self.ages_known.then_some(stored.modified_at)
    }
}

/// A blob being staged in memory.
struct MemoryWriter {
    out: DigestWriter<Vec<u8>>,
    store: MemoryBlobStore,
}

impl Write for MemoryWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl BlobWriter for MemoryWriter {
    fn finish(self: Box<Self>) -> Result<BlobInfo, BlobError> {
        let MemoryWriter { out, store } = *self;
        let (digest, size, bytes) = out.finish();
        let modified_at = store.clock.now_millis();
        store.lock().blobs.insert(
            digest.clone(),
            Stored {
                bytes: Arc::from(bytes),
                modified_at,
            },
        );
        Ok(BlobInfo { digest, size })
    }
}

impl BlobStore for MemoryBlobStore {
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        Ok(Box::new(MemoryWriter {
            out: DigestWriter::new(Vec::new()),
            store: self.clone(),
        }))
    }

    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, BlobError> {
        check_digest(digest)?;
        let inner = self.lock();
        let stored = inner.blobs.get(digest).ok_or_else(|| BlobError::NotFound {
            digest: digest.to_string(),
        })?;
        Ok(Box::new(Cursor::new(stored.bytes.clone())))
    }

    fn open_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, BlobError> {
        let mut reader = self.open(digest)?;
        io::copy(&mut (&mut reader).take(start), &mut io::sink()).map_err(|source| {
            BlobError::Io {
                path: PathBuf::from(digest),
                source,
            }
        })?;
        Ok(Box::new(reader.take(len)))
    }

    fn stat(&self, digest: &str) -> Result<Option<BlobStat>, BlobError> {
        check_digest(digest)?;
        Ok(self.lock().blobs.get(digest).map(|stored| BlobStat {
            size: stored.bytes.len() as u64,
            modified_at: self.age(stored),
        }))
    }

    fn delete(&self, digest: &str) -> Result<(), BlobError> {
        check_digest(digest)?;
        self.lock().blobs.remove(digest);
        Ok(())
    }

    fn list(&self) -> Result<Vec<ListedBlob>, BlobError> {
        Ok(self
            .lock()
            .blobs
            .iter()
            .map(|(digest, stored)| ListedBlob {
                digest: digest.clone(),
                size: stored.bytes.len() as u64,
                modified_at: self.age(stored),
            })
            .collect())
    }

    /// Unfinished writes live only in their writers, so there is never anything to remove.
    fn remove_stale_temp(&self, _older_than: EpochMillis) -> Result<usize, BlobError> {
        Ok(0)
    }

    /// Every write is complete when `finish` returns.
    fn flush(&self) -> Result<(), BlobError> {
        Ok(())
    }

    /// Only this process can read these bytes.
    fn presigned_get(
        &self,
        digest: &str,
        _expires_in: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        check_digest(digest)?;
        Ok(None)
    }

    fn tier_stats(&self) -> Option<super::TierStats> {
        None
    }

    fn adopt_file(&self, _path: &std::path::Path) -> Result<Option<BlobInfo>, BlobError> {
        Ok(None)
    }
}

impl super::LocalTier for MemoryBlobStore {
    fn touch(&self, digest: &str) -> Result<(), BlobError> {
        check_digest(digest)?;
        let now = self.clock.now_millis();
        if let Some(stored) = self.lock().blobs.get_mut(digest) {
            stored.modified_at = now;
        }
        Ok(())
    }
}
