//! Archive blobs named by a digest of their bytes (BLAKE3, `blake3-<hex>`; blobs written before
//! BLAKE3 keep their bare sha256 hex names and are still read and checked). The [`BlobStore`] trait, its
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
pub(crate) use s3::S3Connection;
#[cfg(feature = "s3")]
pub use s3::{S3BlobStore, S3Options};
pub use tiered::{
    FillingReader, LocalTier, RemoteWrites, TierLimits, TierStats, Tiered, trim_local,
};
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
        /// The digest asked for.
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
    /// A digest that is neither `blake3-` nor nothing (sha256) before 64 lowercase hex
    /// characters (never turned into a path).
    #[error(
        "invalid blob digest {digest:?}: expected `blake3-` and 64 lowercase hex characters (or 64 for a sha256)"
    )]
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
    /// Background uploads to a remote tier failed; the blobs named exist nowhere else now.
    #[error("{} background upload(s) to the remote store failed: {}", digests.len(), digests.join(", "))]
    UploadsFailed {
        /// The digests the remote did not get.
        digests: Vec<String>,
        /// The first failure.
        #[source]
        source: Box<BlobError>,
    },
    /// A setting from the environment that cannot be used.
    #[error("{name}={value:?}: {reason}")]
    BadSetting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
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

/// The prefix of a BLAKE3 blob name; the 64 lowercase hex characters of the digest follow.
pub const BLAKE3_PREFIX: &str = "blake3-";

/// How a blob's name was computed from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    /// BLAKE3 (every blob written now): about a quarter of sha256's cost per byte on one core
    /// here, which a save through the server waits for at finalize.
    Blake3,
    /// sha256, the bare hex names of blobs written before BLAKE3; still read and checked.
    Sha256,
}

impl DigestAlgorithm {
    /// The algorithm and the 64 hex characters of a well-formed digest, `None` otherwise.
    pub fn parse(digest: &str) -> Option<(DigestAlgorithm, &str)> {
        let (algorithm, hex) = match digest.strip_prefix(BLAKE3_PREFIX) {
            Some(hex) => (DigestAlgorithm::Blake3, hex),
            None => (DigestAlgorithm::Sha256, digest),
        };
        let well_formed =
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        well_formed.then_some((algorithm, hex))
    }

    /// The blob name for raw digest bytes computed with this algorithm.
    pub fn name(self, raw: &[u8]) -> String {
        match self {
            DigestAlgorithm::Blake3 => format!("{BLAKE3_PREFIX}{}", hex::encode(raw)),
            DigestAlgorithm::Sha256 => hex::encode(raw),
        }
    }
}

/// The name of a blob holding `bytes`, as a writer computes it now (BLAKE3).
pub fn digest_of(bytes: &[u8]) -> String {
    DigestAlgorithm::Blake3.name(blake3::hash(bytes).as_bytes())
}

/// Whether `digest` is a well-formed blob name: `blake3-` and 64 lowercase hex characters, or
/// (a blob written before BLAKE3) the 64 lowercase hex characters of its sha256.
pub fn is_valid_digest(digest: &str) -> bool {
    DigestAlgorithm::parse(digest).is_some()
}

/// The two hex characters of the shard directory (or key prefix) a blob lives under: the first
/// two of its digest, whatever the algorithm, so both kinds share the layout.
pub fn shard_of(digest: &str) -> Result<&str, BlobError> {
    DigestAlgorithm::parse(digest)
        .and_then(|(_, hex)| hex.get(..2))
        .ok_or_else(|| BlobError::InvalidDigest {
            digest: digest.to_string(),
        })
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
    /// The blob's name: the digest of its bytes (see [`DigestAlgorithm`]).
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
    /// The blob's name: the digest of its bytes (see [`DigestAlgorithm`]).
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
/// under the digest of what was written. Dropping it without finishing leaves nothing visible.
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
    /// Waits for writes still under way after their `finish` (a tiered store's background
    /// uploads); [`BlobError::UploadsFailed`] names the blobs that did not make it.
    fn flush(&self) -> Result<(), BlobError>;
    /// A URL a client can GET the blob's bytes from without us, valid for `expires_in` (a
    /// presigned S3 GET), or `None` when the store cannot hand one out. Nobody verifies bytes
    /// fetched that way, so only offer it to clients that check nothing either.
    fn presigned_get(
        &self,
        digest: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, BlobError>;
    /// Hit, miss and upload counters of a tiered store (for metrics); `None` for a store with
    /// no tiers.
    fn tier_stats(&self) -> Option<TierStats>;
    /// Makes the complete file at `path` a blob without copying its bytes (hashed by reading
    /// them once, made durable, renamed into place; `path` is gone after `Ok(Some)`), so bytes
    /// an upload wrote where they belong are written once. `Ok(None)`, with `path` untouched,
    /// when this store cannot take a file (not local, another file system): the caller copies.
    fn adopt_file(&self, path: &std::path::Path) -> Result<Option<BlobInfo>, BlobError>;
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
    fn flush(&self) -> Result<(), BlobError> {
        (**self).flush()
    }
    fn presigned_get(
        &self,
        digest: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, BlobError> {
        (**self).presigned_get(digest, expires_in)
    }
    fn tier_stats(&self) -> Option<TierStats> {
        (**self).tier_stats()
    }
    fn adopt_file(&self, path: &std::path::Path) -> Result<Option<BlobInfo>, BlobError> {
        (**self).adopt_file(path)
    }
}

/// The local tier put in front of a remote blob store: where it lives, its bounds, and when
/// writes reach the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierConfig {
    /// The directory holding the tier's `blobs-v1/`.
    pub dir: PathBuf,
    /// Size and age bounds.
    pub limits: TierLimits,
    /// When writes reach the remote.
    pub writes: RemoteWrites,
}

impl TierConfig {
    /// The tier its settings describe, `None` when `RUNNER_CACHE_TIER=off`: in
    /// `RUNNER_CACHE_TIER_DIR` (else `<cache_dir>/tier`), bounded by `RUNNER_CACHE_TIER_MAX_SIZE`
    /// (`10G`, `500M`, bytes; default 10 GiB) and `RUNNER_CACHE_TIER_TTL_DAYS` (default 7), remote
    /// writes per `RUNNER_CACHE_TIER_UPLOADS` (`through`, the default, or `background`). `setting`
    /// gives each named setting's value (the CLI passes its flags, whose defaults are those
    /// variables); the library itself reads no environment.
    pub fn from_settings(
        cache_dir: &std::path::Path,
        setting: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, BlobError> {
        let var = |name: &str| setting(name).filter(|v| !v.trim().is_empty());
        let bad = |name: &'static str, value: &str, reason: String| BlobError::BadSetting {
            name,
            value: value.to_string(),
            reason,
        };
        if let Some(v) = var("RUNNER_CACHE_TIER") {
            match v.trim() {
                "off" | "0" | "false" => return Ok(None),
                "on" | "1" | "true" => {}
                _ => return Err(bad("RUNNER_CACHE_TIER", &v, "expected on or off".into())),
            }
        }
        let mut limits = TierLimits::default();
        if let Some(v) = var("RUNNER_CACHE_TIER_MAX_SIZE") {
            limits.max_bytes = crate::store::index::parse_size(&v)
                .map_err(|reason| bad("RUNNER_CACHE_TIER_MAX_SIZE", &v, reason))?;
        }
        if let Some(v) = var("RUNNER_CACHE_TIER_TTL_DAYS") {
            let days: u32 = v.trim().parse().map_err(|_| {
                bad(
                    "RUNNER_CACHE_TIER_TTL_DAYS",
                    &v,
                    "expected a whole number of days".into(),
                )
            })?;
            limits.ttl_ms = i64::from(days) * 24 * 3600 * 1000;
        }
        let writes = match var("RUNNER_CACHE_TIER_UPLOADS").as_deref().map(str::trim) {
            None | Some("through") => RemoteWrites::Through,
            Some("background") => RemoteWrites::Background,
            Some(other) => {
                return Err(bad(
                    "RUNNER_CACHE_TIER_UPLOADS",
                    other,
                    "expected through or background".into(),
                ));
            }
        };
        let dir =
            var("RUNNER_CACHE_TIER_DIR").map_or_else(|| cache_dir.join("tier"), PathBuf::from);
        Ok(Some(Self {
            dir,
            limits,
            writes,
        }))
    }
}

/// Opens the blob store a `RUNNER_CACHE_BLOBS` URL names, verified on read: `file:///dir` (or a
/// plain path) for a local directory, `s3://bucket/prefix` for S3-compatible object storage
/// (credentials, region and `AWS_ENDPOINT_URL` from the environment). Returns the store and,
/// for a local directory that could not be opened for writing, why.
pub fn open_url(url: &str) -> Result<(Arc<dyn BlobStore>, Option<String>), BlobError> {
    open_url_tiered(url, None)
}

/// [`open_url`], with `tier` in front of a remote store (a local directory needs none).
pub fn open_url_tiered(
    url: &str,
    tier: Option<&TierConfig>,
) -> Result<(Arc<dyn BlobStore>, Option<String>), BlobError> {
    if let Some(rest) = url.strip_prefix("s3://") {
        #[cfg(feature = "s3")]
        {
            let _ = rest;
            let store = S3BlobStore::from_url(url)?;
            let Some(tier) = tier else {
                return Ok((Arc::new(Verified::new(store)), None));
            };
            let local = LocalBlobStore::new(&tier.dir)?;
            let tiered = Tiered::new(local, store)
                .with_limits(tier.limits)
                .with_remote_writes(tier.writes);
            return Ok((Arc::new(Verified::new(tiered)), None));
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = (rest, tier);
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
