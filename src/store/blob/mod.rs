//! Archive blobs named by the sha256 of their bytes. The [`BlobStore`] trait, the local-directory
//! implementation, and small wrappers.

mod local;
mod verify;

use std::io::{Read, Write};
use std::path::PathBuf;

use crate::clock::EpochMillis;
pub use local::LocalBlobStore;
pub use verify::{DigestWriter, VerifyingReader};

/// Errors from a blob store. Every I/O error names its path.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// No blob with this digest.
    #[error("blob {digest} not found")]
    NotFound {
        /// The sha256 digest asked for.
        digest: String,
    },
    /// The bytes read do not hash to the blob's name.
    #[error("blob {digest} is corrupt: its bytes hash to {actual}")]
    DigestMismatch {
        /// The expected digest (the blob's name).
        digest: String,
        /// What the bytes actually hash to.
        actual: String,
    },
    /// A digest that is not 64 lowercase hex characters (never turned into a path).
    #[error("invalid blob digest {digest:?}: expected 64 lowercase hex characters")]
    InvalidDigest {
        /// The rejected digest.
        digest: String,
    },
}

/// Whether `digest` is a well-formed lowercase hex sha256.
pub fn is_valid_digest(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A blob that has been durably stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Lowercase hex sha256 of the bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// An in-progress blob: write bytes, then [`BlobWriter::finish`] to hash, fsync and rename into
/// place. Dropping it without finishing leaves nothing visible.
pub trait BlobWriter: Write + Send {
    /// Makes the blob durable and visible under its digest.
    fn finish(self: Box<Self>) -> Result<BlobInfo, BlobError>;
}

/// Where archive bytes live.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Starts a new blob.
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError>;
    /// Opens a blob for reading. The reader verifies the digest and fails at end of stream with
    /// [`BlobError::DigestMismatch`] (as an `io::Error`) if the bytes were altered.
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, BlobError>;
    /// Whether a blob exists.
    fn contains(&self, digest: &str) -> Result<bool, BlobError>;
    /// Removes a blob; removing a missing blob is not an error.
    fn delete(&self, digest: &str) -> Result<(), BlobError>;
    /// Every stored digest (for `verify` and orphan removal).
    fn list(&self) -> Result<Vec<BlobInfo>, BlobError>;
    /// When the blob was last written, if the store can tell; `Ok(None)` for a missing blob or a
    /// store without timestamps. Orphan removal spares recently written blobs, whose row may be
    /// about to be committed.
    fn modified_at(&self, digest: &str) -> Result<Option<EpochMillis>, BlobError> {
        let _ = digest;
        Ok(None)
    }
    /// Removes leftovers of interrupted writes: those of writers known to be dead at once, the
    /// others once older than `older_than` (a live writer's are kept where the store can tell);
    /// returns how many.
    fn remove_stale_temp(&self, older_than: EpochMillis) -> Result<usize, BlobError> {
        let _ = older_than;
        Ok(0)
    }
}
