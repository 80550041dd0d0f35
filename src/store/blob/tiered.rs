//! A local tier in front of a remote store: reads try the local copy first, and a miss streams
//! from the remote into the local tier while it is being served; writes go to both, the remote
//! first (it is the truth: stat, list and GC ask it). The local tier is only a cache, so its
//! failures never fail a read or a write.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{BlobError, BlobInfo, BlobStat, BlobStore, BlobWriter, ListedBlob};
use crate::clock::EpochMillis;

/// How often each tier answered a read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Reads served by the local copy.
    pub local_hits: u64,
    /// Reads the local tier missed and the remote served (copied into the local tier).
    pub remote_hits: u64,
    /// Reads neither tier had.
    pub misses: u64,
}

#[derive(Debug, Default)]
struct Counters {
    local_hits: AtomicU64,
    remote_hits: AtomicU64,
    misses: AtomicU64,
}

/// `local` in front of `remote` (see the module docs). Clones share counters.
#[derive(Debug, Clone)]
pub struct Tiered<L, R> {
    local: L,
    remote: R,
    counters: Arc<Counters>,
}

impl<L: BlobStore, R: BlobStore> Tiered<L, R> {
    /// Puts `local` in front of `remote`.
    pub fn new(local: L, remote: R) -> Self {
        Self {
            local,
            remote,
            counters: Arc::default(),
        }
    }

    /// Read counters per tier so far.
    pub fn stats(&self) -> TierStats {
        TierStats {
            local_hits: self.counters.local_hits.load(Ordering::Relaxed),
            remote_hits: self.counters.remote_hits.load(Ordering::Relaxed),
            misses: self.counters.misses.load(Ordering::Relaxed),
        }
    }

    /// The local tier.
    pub fn local(&self) -> &L {
        &self.local
    }

    /// The remote tier.
    pub fn remote(&self) -> &R {
        &self.remote
    }
}

/// Writes to the remote and, while it works, to the local tier.
struct TieredWriter {
    remote: Box<dyn BlobWriter>,
    local: Option<Box<dyn BlobWriter>>,
}

impl Write for TieredWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.remote.write(buf)?;
        if let Some(local) = self.local.as_mut() {
            let accepted = buf.get(..n).unwrap_or(buf);
            if local.write_all(accepted).is_err() {
                self.local = None;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.remote.flush()
    }
}

impl BlobWriter for TieredWriter {
    fn finish(self: Box<Self>) -> Result<BlobInfo, BlobError> {
        let TieredWriter { remote, local } = *self;
        // Remote first: a local copy of a blob the remote does not have would be served alone.
        let info = remote.finish()?;
        if let Some(local) = local {
            let _ = local.finish();
        }
        Ok(info)
    }
}

/// Serves the remote's bytes and copies them into the local tier; the copy becomes visible only
/// if the whole blob was read and hashes to its name.
struct ReadThrough<L> {
    remote: Box<dyn Read + Send>,
    copy: Option<Box<dyn BlobWriter>>,
    local: L,
    digest: String,
}

impl<L: BlobStore> Read for ReadThrough<L> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.remote.read(buf)?;
        if n == 0 && !buf.is_empty() {
            if let Some(copy) = self.copy.take()
                && let Ok(info) = copy.finish()
                && info.digest != self.digest
            {
                let _ = self.local.delete(&info.digest);
            }
            return Ok(0);
        }
        if let (Some(copy), Some(read)) = (self.copy.as_mut(), buf.get(..n))
            && copy.write_all(read).is_err()
        {
            self.copy = None;
        }
        Ok(n)
    }
}

impl<L, R> BlobStore for Tiered<L, R>
where
    L: BlobStore + Clone + 'static,
    R: BlobStore,
{
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        Ok(Box::new(TieredWriter {
            remote: self.remote.writer()?,
            local: self.local.writer().ok(),
        }))
    }

    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, BlobError> {
        match self.local.open(digest) {
            Ok(reader) => {
                self.counters.local_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(reader);
            }
            Err(err @ BlobError::InvalidDigest { .. }) => return Err(err),
            // Missing or unreadable locally: the remote decides.
            Err(_) => {}
        }
        match self.remote.open(digest) {
            Ok(remote) => {
                self.counters.remote_hits.fetch_add(1, Ordering::Relaxed);
                Ok(Box::new(ReadThrough {
                    remote,
                    copy: self.local.writer().ok(),
                    local: self.local.clone(),
                    digest: digest.to_string(),
                }))
            }
            Err(err) => {
                if matches!(err, BlobError::NotFound { .. }) {
                    self.counters.misses.fetch_add(1, Ordering::Relaxed);
                }
                Err(err)
            }
        }
    }

    fn open_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, BlobError> {
        // A part is never copied into the local tier (it could not be checked); the local copy,
        // when there is one, serves it.
        match self.local.open_range(digest, start, len) {
            Ok(reader) => Ok(reader),
            Err(err @ BlobError::InvalidDigest { .. }) => Err(err),
            Err(_) => self.remote.open_range(digest, start, len),
        }
    }

    fn stat(&self, digest: &str) -> Result<Option<BlobStat>, BlobError> {
        self.remote.stat(digest)
    }

    fn delete(&self, digest: &str) -> Result<(), BlobError> {
        self.remote.delete(digest)?;
        self.local.delete(digest)
    }

    fn list(&self) -> Result<Vec<ListedBlob>, BlobError> {
        self.remote.list()
    }

    fn remove_stale_temp(&self, older_than: EpochMillis) -> Result<usize, BlobError> {
        Ok(
            self.remote.remove_stale_temp(older_than)?
                + self.local.remove_stale_temp(older_than)?,
        )
    }
}
