//! Archive blobs named by the sha256 of their bytes. The [`BlobStore`] trait, its
//! implementations (a local directory, memory, S3-compatible object storage) and wrappers
//! ([`Verified`], [`Tiered`]).
//!
//! Every trait method is required, so a wrapper cannot silently lose one (an age that reads as
//! "unknown" would let a cleanup delete a blob whose row is about to be committed). Stores name
//! blobs by the digest they compute while writing; [`Verified`] checks it on every read.

mod local;
mod memory;
#[cfg(feature = "s3")]
mod s3;
mod tiered;
mod verify;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::EpochMillis;
pub use local::LocalBlobStore;
pub use memory::MemoryBlobStore;
#[cfg(feature = "s3")]
pub use s3::S3BlobStore;
pub use tiered::{TierStats, Tiered};
pub use verify::{DigestWriter, Verified, VerifyingReader};

/// The layout directory (and key prefix); bump the version if the layout changes.
pub const LAYOUT_DIR: &str = "blobs-v1";

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
    /// A blob store URL that cannot be used.
    #[error("blob store URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The object store refused or failed a request (after its retries).
    #[cfg(feature = "s3")]
    #[error("object storage: {operation} {key}")]
    Remote {
        /// What was attempted (`put`, `get`, `list`, …).
        operation: &'static str,
        /// The object key (or bucket URL) involved.
        key: String,
        /// The client's error.
        #[source]
        source: object_store::Error,
    },
}

/// Whether `digest` is a well-formed lowercase hex sha256.
pub fn is_valid_digest(digest: &str) -> bool {
    digest.len() == 64
        && digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `Err(InvalidDigest)` unless `digest` is well formed, so no store turns it into a path or key.
pub fn check_digest(digest: &str) -> Result<(), BlobError> {
    if is_valid_digest(digest) {
        Ok(())
    } else {
        Err(BlobError::InvalidDigest {
            digest: digest.to_string(),
        })
    }
}

/// A blob that has been durably stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// Lowercase hex sha256 of the bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// What a store knows about one stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobStat {
    /// Size in bytes.
    pub size: u64,
    /// When it was last written, if the store can tell. An unknown age must be treated as
    /// "just written": cleanups keep such a blob.
    pub modified_at: Option<EpochMillis>,
}

/// One blob of a listing: its name and what [`BlobStore::stat`] would say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    /// Lowercase hex sha256 of the bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written, if the store can tell.
    pub modified_at: Option<EpochMillis>,
}

impl From<ListedBlob> for BlobInfo {
    fn from(blob: ListedBlob) -> Self {
        BlobInfo {
            digest: blob.digest,
            size: blob.size,
        }
    }
}

/// An in-progress blob: write bytes, then [`BlobWriter::finish`] to make it durable and visible
/// under the sha256 of what was written. Dropping it without finishing leaves nothing visible.
pub trait BlobWriter: Write + Send {
    /// Makes the blob durable and visible under its digest.
    fn finish(self: Box<Self>) -> Result<BlobInfo, BlobError>;
}

/// Where archive bytes live. Every method is required (see the module docs).
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// Starts a new blob; its bytes stream through the writer (never held whole in memory by a
    /// store meant for archives).
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError>;
    /// Opens a blob for reading, or [`BlobError::NotFound`]. The bytes are not checked here:
    /// wrap the store in [`Verified`] for that.
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, BlobError>;
    /// Opens `len` bytes of a blob starting at `start`, without reading what comes before
    /// (ranged downloads: the Azure SDK fetches an archive as many 4 MiB ranges at once, so
    /// reading from the start for each would be quadratic). A range past the end is cut short.
    /// Never checked against the digest: a part cannot be; whole reads go through [`Self::open`].
    fn open_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, BlobError>;
    /// Size and age of a blob, `Ok(None)` if there is none.
    fn stat(&self, digest: &str) -> Result<Option<BlobStat>, BlobError>;
    /// Removes a blob; removing a missing blob is not an error.
    fn delete(&self, digest: &str) -> Result<(), BlobError>;
    /// Every stored blob with its age, sorted by digest (for `verify` and orphan removal).
    fn list(&self) -> Result<Vec<ListedBlob>, BlobError>;
    /// Removes leftovers of interrupted writes: those of writers known to be dead at once, the
    /// others once older than `older_than` (a live writer's are kept where the store can tell);
    /// returns how many.
    fn remove_stale_temp(&self, older_than: EpochMillis) -> Result<usize, BlobError>;
}

impl dyn BlobStore {
    /// Whether a blob exists.
    pub fn contains(&self, digest: &str) -> Result<bool, BlobError> {
        Ok(self.stat(digest)?.is_some())
    }

    /// When the blob was last written; `Ok(None)` for a missing blob or an unknown age.
    pub fn modified_at(&self, digest: &str) -> Result<Option<EpochMillis>, BlobError> {
        Ok(self.stat(digest)?.and_then(|s| s.modified_at))
    }
}

/// A shared store is a store, so wrappers can hold `Arc<dyn BlobStore>`.
impl<S: BlobStore + ?Sized> BlobStore for Arc<S> {
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        (**self).writer()
    }
    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, BlobError> {
        (**self).open(digest)
    }
    fn open_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, BlobError> {
        (**self).open_range(digest, start, len)
    }
    fn stat(&self, digest: &str) -> Result<Option<BlobStat>, BlobError> {
        (**self).stat(digest)
    }
    fn delete(&self, digest: &str) -> Result<(), BlobError> {
        (**self).delete(digest)
    }
    fn list(&self) -> Result<Vec<ListedBlob>, BlobError> {
        (**self).list()
    }
    fn remove_stale_temp(&self, older_than: EpochMillis) -> Result<usize, BlobError> {
        (**self).remove_stale_temp(older_than)
    }
}

/// Opens the blob store a `RUNNER_CACHE_BLOBS` URL names, verified on read: `file:///dir` (or a
/// plain path) for a local directory, `s3://bucket/prefix` for S3-compatible object storage
/// (credentials, region and `AWS_ENDPOINT_URL` from the environment). Returns the store and,
/// for a local directory that could not be opened for writing, why.
pub fn open_url(url: &str) -> Result<(Arc<dyn BlobStore>, Option<String>), BlobError> {
    if let Some(rest) = url.strip_prefix("s3://") {
        #[cfg(feature = "s3")]
        {
            let _ = rest;
            let store = S3BlobStore::from_url(url)?;
            return Ok((Arc::new(Verified::new(store)), None));
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = rest;
            return Err(BlobError::BadUrl {
                url: url.to_string(),
                reason: "this build has no S3 support (cargo feature `s3`)".to_string(),
            });
        }
    }
    let dir = match url.split_once("://") {
        Some(("file", path)) => path,
        Some((scheme, _)) => {
            return Err(BlobError::BadUrl {
                url: url.to_string(),
                reason: format!("unsupported scheme {scheme:?}: use file:// or s3://"),
            });
        }
        None => url,
    };
    if dir.is_empty() {
        return Err(BlobError::BadUrl {
            url: url.to_string(),
            reason: "no directory".to_string(),
        });
    }
    let store = LocalBlobStore::new(dir)?;
    let read_only = store.read_only().map(str::to_string);
    Ok((Arc::new(Verified::new(store)), read_only))
}
