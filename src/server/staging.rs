//! Where the bytes of an upload wait until it is finalized: v1 chunks at their offsets, v2
//! blocks by id, or one whole body. Behind a small trait so staging can later move to the
//! shared blob store (uploads of one entry may reach different servers).

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::blob::{BlobInfo, is_valid_digest};

/// The buffer bulk copies move through.
pub const COPY_BUFFER: usize = 1024 * 1024;

/// Errors from staging. Every I/O error names its path.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The upload's metadata file is unreadable.
    #[error("{path}: corrupt upload metadata")]
    Corrupt {
        /// The metadata file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// Reading the request body failed (client gone, or over a limit).
    #[error("reading the upload body")]
    Body {
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The body's length differs from what the request declared.
    #[error("body has {actual} bytes, the request declared {expected}")]
    Length {
        /// Declared.
        expected: u64,
        /// Received.
        actual: u64,
    },
}

/// What is known about an upload between reservation and finalize.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadMeta {
    /// The staging id (`[0-9a-z-]`, never a path).
    pub id: String,
    /// The index reservation it will commit.
    pub reservation: String,
    /// The repository.
    pub repository: String,
    /// The ref it writes to.
    pub scope: String,
    /// The key.
    pub key: String,
    /// The version.
    pub version: String,
    /// The size the client announced (v1 `cacheSize`), if any.
    pub declared_size: Option<u64>,
    /// When the save began, on the cache's clock (for the save event's duration).
    pub started_at: i64,
    /// When it expires, on the server's clock (milliseconds).
    pub expires_at: i64,
    /// The server process that reserved it; a dead owner's uploads are reclaimed at start.
    pub owner_pid: u32,
}

/// One staged piece of an upload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The whole archive in one body (Azure Put Blob). Its bytes went straight into the blob
    /// store as they arrived (written once); the part holds only their digest and size.
    Blob,
    /// A v1 chunk: bytes `start..=end`.
    Range {
        /// First byte offset.
        start: u64,
        /// Last byte offset (inclusive, as in `Content-Range`).
        end: u64,
    },
    /// An Azure block, by its decoded id bytes.
    Block(Vec<u8>),
    /// The committed block list (Azure Put Block List), as decoded ids in order.
    BlockList,
}

impl Part {
    fn file_name(&self) -> String {
        match self {
            Part::Blob => "blob".to_string(),
            Part::Range { start, end } => format!("range-{start:020}-{end:020}"),
            Part::Block(id) => format!("block-{}", hex::encode(id)),
            Part::BlockList => "blocklist".to_string(),
        }
    }

    fn parse(name: &str) -> Option<Self> {
        if name == "blob" {
            return Some(Part::Blob);
        }
        if name == "blocklist" {
            return Some(Part::BlockList);
        }
        if let Some(range) = name.strip_prefix("range-") {
            let (start, end) = range.split_once('-')?;
            return Some(Part::Range {
                start: start.parse().ok()?,
                end: end.parse().ok()?,
            });
        }
        let block = name.strip_prefix("block-")?;
        hex::decode(block).ok().map(Part::Block)
    }
}

/// Staged uploads. Every method is required; implementations must make `put_part` atomic (a
/// part is either absent or complete).
pub trait Staging: Send + Sync + std::fmt::Debug {
    /// Creates an upload (replacing any leftover of the same id).
    fn create(&self, meta: &UploadMeta) -> Result<(), StagingError>;
    /// The upload's metadata; `None` if it does not exist.
    fn meta(&self, id: &str) -> Result<Option<UploadMeta>, StagingError>;
    /// Stores `body` as `part`, replacing an earlier copy; fails (storing nothing) if the
    /// body fails or its length is not `expected_len`. Returns the bytes stored.
    fn put_part(
        &self,
        id: &str,
        part: &Part,
        body: &mut dyn Read,
        expected_len: Option<u64>,
    ) -> Result<u64, StagingError>;
    /// Removes a part if present.
    fn remove_part(&self, id: &str, part: &Part) -> Result<(), StagingError>;
    /// The parts staged so far with their sizes, sorted.
    fn parts(&self, id: &str) -> Result<Vec<(Part, u64)>, StagingError>;
    /// Reads a part.
    fn open_part(&self, id: &str, part: &Part) -> Result<Box<dyn Read + Send>, StagingError>;
    /// Removes the upload and everything staged for it.
    fn remove(&self, id: &str) -> Result<(), StagingError>;
    /// Every upload's metadata (for expiry and reclaiming).
    fn list(&self) -> Result<Vec<UploadMeta>, StagingError>;
}

/// Staging in a local directory: `<dir>/<upload id>/{meta.json, parts}`.
#[derive(Debug, Clone)]
pub struct LocalStaging {
    root: PathBuf,
}

const META_FILE: &str = "meta.json";

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StagingError + '_ {
    move |source| StagingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl LocalStaging {
    /// Staging under `root` (created).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StagingError> {
        let root = root.into();
        fs::create_dir_all(&root).map_err(io_err(&root))?;
        Ok(Self { root })
    }

    fn dir(&self, id: &str) -> PathBuf {
        // Ids are made by the server and checked by the routes; this keeps them a single
        // path component regardless.
        let safe: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        self.root.join(safe)
    }

    /// Writes `body` to a temporary file in `dir` and renames it to `dest`.
    fn write_atomically(
        dir: &Path,
        dest: &Path,
        body: &mut dyn Read,
        expected_len: Option<u64>,
    ) -> Result<u64, StagingError> {
        let temp = tempfile::Builder::new()
            .prefix(".part-")
            .tempfile_in(dir)
            .map_err(io_err(dir))?;
        let mut out = BufWriter::with_capacity(128 * 1024, temp);
        let copied = io::copy(body, &mut out);
        let written = match copied {
            Ok(n) => n,
            Err(source) if is_body_error(&source) => {
                return Err(StagingError::Body { source });
            }
            Err(source) => {
                return Err(StagingError::Io {
                    path: dest.to_path_buf(),
                    source,
                });
            }
        };
        if let Some(expected) = expected_len
            && expected != written
        {
            return Err(StagingError::Length {
                expected,
                actual: written,
            });
        }
        let temp = out.into_inner().map_err(|e| StagingError::Io {
            path: dest.to_path_buf(),
            source: e.into_error(),
        })?;
        temp.persist(dest).map_err(|e| StagingError::Io {
            path: dest.to_path_buf(),
            source: e.error,
        })?;
        Ok(written)
    }
}

/// Whether a directory was last changed more than ten minutes ago.
fn is_stale(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(600))
}

/// Errors the body bridge reports (the client went away, a limit was hit).
pub fn is_body_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::FileTooLarge
    )
}

impl Staging for LocalStaging {
    fn create(&self, meta: &UploadMeta) -> Result<(), StagingError> {
        let dir = self.dir(&meta.id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(StagingError::Io { path: dir, source }),
        }
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let json = serde_json::to_vec(meta).map_err(|source| StagingError::Corrupt {
            path: dir.join(META_FILE),
            source,
        })?;
        Self::write_atomically(&dir, &dir.join(META_FILE), &mut json.as_slice(), None)?;
        Ok(())
    }

    fn meta(&self, id: &str) -> Result<Option<UploadMeta>, StagingError> {
        let path = self.dir(id).join(META_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StagingError::Io { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| StagingError::Corrupt { path, source })
    }

    fn put_part(
        &self,
        id: &str,
        part: &Part,
        body: &mut dyn Read,
        expected_len: Option<u64>,
    ) -> Result<u64, StagingError> {
        let dir = self.dir(id);
        Self::write_atomically(&dir, &dir.join(part.file_name()), body, expected_len)
    }

    fn remove_part(&self, id: &str, part: &Part) -> Result<(), StagingError> {
        let path = self.dir(id).join(part.file_name());
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StagingError::Io { path, source }),
        }
    }

    fn parts(&self, id: &str) -> Result<Vec<(Part, u64)>, StagingError> {
        let dir = self.dir(id);
        let mut parts = Vec::new();
        for file in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let file = file.map_err(io_err(&dir))?;
            let Some(part) = file.file_name().to_str().and_then(Part::parse) else {
                continue;
            };
            match file.metadata() {
                Ok(meta) => parts.push((part, meta.len())),
                // Replaced by a concurrent put meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StagingError::Io {
                        path: file.path(),
                        source,
                    });
                }
            }
        }
        parts.sort();
        Ok(parts)
    }

    fn open_part(&self, id: &str, part: &Part) -> Result<Box<dyn Read + Send>, StagingError> {
        let path = self.dir(id).join(part.file_name());
        let file = File::open(&path).map_err(io_err(&path))?;
        Ok(Box::new(io::BufReader::with_capacity(256 * 1024, file)))
    }

    fn remove(&self, id: &str) -> Result<(), StagingError> {
        let dir = self.dir(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StagingError::Io { path: dir, source }),
        }
    }

    fn list(&self) -> Result<Vec<UploadMeta>, StagingError> {
        let mut out = Vec::new();
        for dir in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let dir = dir.map_err(io_err(&self.root))?;
            let Some(id) = dir.file_name().to_str().map(str::to_string) else {
                continue;
            };
            match self.meta(&id) {
                Ok(Some(meta)) => out.push(meta),
                // Created but its metadata never written (a crash inside `create`), unless
                // that is happening right now.
                Ok(None) if is_stale(&dir.path()) => self.remove(&id)?,
                Ok(None) => {}
                // A directory whose metadata never landed (crash at create): remove it.
                Err(StagingError::Corrupt { .. }) => self.remove(&id)?,
                Err(err) => return Err(err),
            }
        }
        Ok(out)
    }
}

/// Writes a block list (decoded ids, in order) as the `BlockList` part.
pub fn put_block_list(
    staging: &dyn Staging,
    id: &str,
    blocks: &[Vec<u8>],
) -> Result<(), StagingError> {
    let mut text = String::new();
    for block in blocks {
        text.push_str(&hex::encode(block));
        text.push('\n');
    }
    staging.put_part(id, &Part::BlockList, &mut text.as_bytes(), None)?;
    Ok(())
}

/// Reads the `BlockList` part back.
pub fn read_block_list(staging: &dyn Staging, id: &str) -> Result<Vec<Vec<u8>>, StagingError> {
    let mut text = String::new();
    staging
        .open_part(id, &Part::BlockList)?
        .read_to_string(&mut text)
        .map_err(|source| StagingError::Io {
            path: PathBuf::from(id).join("blocklist"),
            source,
        })?;
    Ok(text
        .lines()
        .filter_map(|line| hex::decode(line).ok())
        .collect())
}

/// Records that upload `id`'s whole archive is the stored blob `info` (the `Blob` part).
pub fn put_blob_ref(staging: &dyn Staging, id: &str, info: &BlobInfo) -> Result<(), StagingError> {
    let text = format!("{} {}\n", info.digest, info.size);
    staging.put_part(id, &Part::Blob, &mut text.as_bytes(), None)?;
    Ok(())
}

/// Reads the `Blob` part back.
pub fn read_blob_ref(staging: &dyn Staging, id: &str) -> Result<BlobInfo, StagingError> {
    let path = || PathBuf::from(id).join(Part::Blob.file_name());
    let mut text = String::new();
    staging
        .open_part(id, &Part::Blob)?
        .read_to_string(&mut text)
        .map_err(|source| StagingError::Io {
            path: path(),
            source,
        })?;
    text.trim()
        .split_once(' ')
        .and_then(|(digest, size)| {
            Some(BlobInfo {
                digest: digest.to_string(),
                size: size.parse().ok()?,
            })
        })
        .filter(|info| is_valid_digest(&info.digest))
        .ok_or_else(|| StagingError::Io {
            path: path(),
            source: io::Error::new(io::ErrorKind::InvalidData, "not a digest and a size"),
        })
}

/// Copies parts in order into `out`; returns the bytes copied.
pub fn copy_parts(
    staging: &dyn Staging,
    id: &str,
    parts: &[Part],
    out: &mut dyn Write,
) -> Result<u64, StagingError> {
    let mut total = 0;
    // io::copy through `dyn` traits moves 8 KiB at a time; big moves keep the hashing writer
    // and the page cache streaming.
    let mut buf = vec![0u8; COPY_BUFFER];
    for part in parts {
        let mut reader = staging.open_part(id, part)?;
        total += copy_large(&mut reader, out, &mut buf).map_err(|source| StagingError::Io {
            path: PathBuf::from(id).join(part.file_name()),
            source,
        })?;
    }
    Ok(total)
}

/// Copies `reader` to `out` through `buf`; returns the bytes copied.
pub fn copy_large(reader: &mut dyn Read, out: &mut dyn Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match reader.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
}
