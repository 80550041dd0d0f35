//! Hashing adapters: a writer that hashes what passes through, a reader that checks the digest
//! when it reaches the end, and [`Verified`], the store wrapper that puts that reader on every
//! read of any [`BlobStore`].

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::{BlobError, BlobStat, BlobStore, BlobWriter, ListedBlob, check_digest};
use crate::clock::EpochMillis;

/// A store whose reads fail at end of stream with [`BlobError::DigestMismatch`] (as an
/// `io::Error` of kind `InvalidData`) unless the bytes hash to the blob's name, so a bit flip on
/// disk or a tampered object is never extracted silently. Writes are named by the digest the
/// inner store computed while writing.
#[derive(Debug, Clone)]
pub struct Verified<S> {
    inner: S,
}

impl<S: BlobStore> Verified<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }

    /// The unchecked store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

impl<S: BlobStore> BlobStore for Verified<S> {
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        self.inner.writer()
    }

    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, BlobError> {
        check_digest(digest)?;
        let reader = self.inner.open(digest)?;
        Ok(Box::new(VerifyingReader::new(reader, digest)))
    }

    fn open_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, BlobError> {
        check_digest(digest)?;
        self.inner.open_range(digest, start, len)
    }

    fn stat(&self, digest: &str) -> Result<Option<BlobStat>, BlobError> {
        self.inner.stat(digest)
    }

    fn delete(&self, digest: &str) -> Result<(), BlobError> {
        self.inner.delete(digest)
    }

    fn list(&self) -> Result<Vec<ListedBlob>, BlobError> {
        self.inner.list()
    }

    fn remove_stale_temp(&self, older_than: EpochMillis) -> Result<usize, BlobError> {
        self.inner.remove_stale_temp(older_than)
    }

    fn flush(&self) -> Result<(), BlobError> {
        self.inner.flush()
    }

    fn presigned_get(
        &self,
        digest: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        check_digest(digest)?;
        self.inner.presigned_get(digest, expires_in)
    }

    fn tier_stats(&self) -> Option<super::TierStats> {
        self.inner.tier_stats()
    }
}

/// Passes writes through to `inner` while hashing them and counting bytes.
#[derive(Debug)]
pub struct DigestWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// The wrapped writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The lowercase hex sha256 and size of everything written, and the wrapped writer.
    pub fn finish(self) -> (String, u64, W) {
        (
            hex::encode(self.hasher.finalize()),
            self.written,
            self.inner,
        )
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Hash only what the inner writer accepted, so short writes stay consistent.
        if let Some(accepted) = buf.get(..n) {
            self.hasher.update(accepted);
        }
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads `inner` and, at end of stream, fails with [`BlobError::DigestMismatch`] (wrapped in an
/// `io::Error` of kind `InvalidData`) unless the bytes hash to `expected`. Consumers that read to
/// the end therefore never accept altered bytes silently.
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    hasher: Sha256,
    expected: String,
    outcome: Option<Result<(), String>>,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, expecting its bytes to hash to `expected` (lowercase hex sha256).
    pub fn new(inner: R, expected: impl Into<String>) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            expected: expected.into(),
            outcome: None,
        }
    }

    fn mismatch(&self, actual: &str) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            BlobError::DigestMismatch {
                digest: self.expected.clone(),
                actual: actual.to_string(),
            },
        )
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.outcome {
            Some(Ok(())) => return Ok(0),
            Some(Err(actual)) => return Err(self.mismatch(actual)),
            None => {}
        }
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            if let Some(read) = buf.get(..n) {
                self.hasher.update(read);
            }
            return Ok(n);
        }
        let actual = hex::encode(std::mem::take(&mut self.hasher).finalize());
        if actual == self.expected {
            self.outcome = Some(Ok(()));
            Ok(0)
        } else {
            let err = self.mismatch(&actual);
            self.outcome = Some(Err(actual));
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn reader_accepts_matching_and_rejects_altered_bytes() {
        let data = b"hello blob".to_vec();
        let cases: &[(&[u8], bool)] =
            &[(b"hello blob", true), (b"hello blub", false), (b"", false)];
        for (bytes, ok) in cases {
            let mut out = Vec::new();
            let result = VerifyingReader::new(*bytes, sha(&data)).read_to_end(&mut out);
            assert_eq!(result.is_ok(), *ok, "{bytes:?}");
            if let Err(err) = result {
                assert_eq!(err.kind(), io::ErrorKind::InvalidData);
                assert!(err.to_string().contains(&sha(bytes)), "{err}");
            }
        }
    }

    #[test]
    fn reader_keeps_failing_after_a_mismatch() {
        let mut reader = VerifyingReader::new(&b"abc"[..], sha(b"xyz"));
        let mut out = Vec::new();
        assert!(reader.read_to_end(&mut out).is_err());
        assert!(reader.read(&mut [0u8; 4]).is_err());
    }

    #[test]
    fn writer_hashes_and_counts() {
        let mut w = DigestWriter::new(Vec::new());
        w.write_all(b"hello ")
            .and_then(|()| w.write_all(b"blob"))
            .expect("write to Vec");
        let (digest, size, inner) = w.finish();
        assert_eq!(
            (digest, size, inner),
            (sha(b"hello blob"), 10, b"hello blob".to_vec())
        );
    }
}
