//! Hashing adapters: a writer that hashes what passes through, a reader that checks the digest
//! when it reaches the end, and [`Verified`], the store wrapper that puts that reader on every
//! read of any [`BlobStore`].

use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::{
    BlobError, BlobStat, BlobStore, BlobWriter, DigestAlgorithm, ListedBlob, check_digest,
};
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

    fn adopt_file(&self, path: &std::path::Path) -> Result<Option<super::BlobInfo>, BlobError> {
        // Named by hashing the bytes, so there is nothing to check against.
        self.inner.adopt_file(path)
    }
}

/// A running digest of one of the [`DigestAlgorithm`]s.
#[derive(Debug, Clone)]
enum ContentHasher {
    /// BLAKE3 (boxed: its state is about 2 KiB).
    Blake3(Box<blake3::Hasher>),
    /// sha256, for blobs named before BLAKE3.
    Sha256(Sha256),
}

impl ContentHasher {
    /// A hasher of `algorithm`.
    fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Blake3 => ContentHasher::Blake3(Box::default()),
            DigestAlgorithm::Sha256 => ContentHasher::Sha256(Sha256::new()),
        }
    }

    /// Hashes `bytes`.
    fn update(&mut self, bytes: &[u8]) {
        match self {
            ContentHasher::Blake3(hasher) => {
                hasher.update(bytes);
            }
            ContentHasher::Sha256(hasher) => hasher.update(bytes),
        }
    }

    /// The blob name of everything hashed.
    fn finish(self) -> String {
        match self {
            ContentHasher::Blake3(hasher) => {
                DigestAlgorithm::Blake3.name(hasher.finalize().as_bytes())
            }
            ContentHasher::Sha256(hasher) => DigestAlgorithm::Sha256.name(&hasher.finalize()),
        }
    }
}

/// Passes writes through to `inner` while hashing them (BLAKE3, the name of every blob written
/// now) and counting bytes.
#[derive(Debug)]
pub struct DigestWriter<W> {
    inner: W,
    hasher: ContentHasher,
    written: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            hasher: ContentHasher::new(DigestAlgorithm::Blake3),
            written: 0,
        }
    }

    /// The wrapped writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The blob name (digest) and size of everything written, and the wrapped writer.
    pub fn finish(self) -> (String, u64, W) {
        (self.hasher.finish(), self.written, self.inner)
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
    hasher: ContentHasher,
    expected: String,
    outcome: Option<Result<(), String>>,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, expecting its bytes to hash to `expected`, a blob name (its algorithm
    /// says which hash; a malformed one is hashed as BLAKE3 and so never matches).
    pub fn new(inner: R, expected: impl Into<String>) -> Self {
        let expected = expected.into();
        let algorithm = DigestAlgorithm::parse(&expected)
            .map_or(DigestAlgorithm::Blake3, |(algorithm, _)| algorithm);
        Self {
            inner,
            hasher: ContentHasher::new(algorithm),
            expected,
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
        // The outcome is kept from here on, so the hasher left behind is never used.
        let actual = std::mem::replace(
            &mut self.hasher,
            ContentHasher::new(DigestAlgorithm::Blake3),
        )
        .finish();
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

    fn b3(bytes: &[u8]) -> String {
        super::super::digest_of(bytes)
    }

    #[test]
    fn reader_checks_each_algorithm_by_the_name_it_is_given() {
        let data = b"hello blob";
        for expected in [sha(data), b3(data)] {
            let mut out = Vec::new();
            VerifyingReader::new(&data[..], expected.clone())
                .read_to_end(&mut out)
                .unwrap_or_else(|err| panic!("{expected}: {err}"));
            assert_eq!(out, data);
        }
        // The other algorithm's name for the same bytes is a mismatch, reported in the
        // algorithm the name asked for.
        let err = VerifyingReader::new(&b"hello blub"[..], b3(data))
            .read_to_end(&mut Vec::new())
            .expect_err("altered bytes");
        assert!(err.to_string().contains(&b3(b"hello blub")), "{err}");
        assert!(b3(data).starts_with("blake3-") && b3(data).len() == 71);
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
            (b3(b"hello blob"), 10, b"hello blob".to_vec())
        );
    }
}
