//! Where the bytes of an upload wait until it is finalized: v1 chunks at their offsets, v2
//! blocks by id, or one whole body. Behind a small trait with two implementations: a directory
//! ([`LocalStaging`]: this node's, or one next to shared blobs on a shared file system) and an
//! S3-compatible bucket ([`ObjectStaging`]). Uploads of one entry may reach different servers,
//! so with shared blobs the staging is shared too ([`open`]), and any node can finalize.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

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
    /// A staging location (the blob store's URL) that cannot be used.
    #[error("staging next to blob store URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The staging bucket's URL or client is unusable.
    #[cfg(feature = "s3")]
    #[error("staging in the blob store's bucket")]
    Connect {
        /// Why (the blob store's own connection error).
        #[source]
        source: crate::store::blob::BlobError,
    },
    /// The object store refused or failed a request (after its retries).
    #[cfg(feature = "s3")]
    #[error("object storage: {operation} {key}")]
    Remote {
        /// What was attempted.
        operation: &'static str,
        /// The object key involved.
        key: String,
        /// The client's error.
        #[source]
        source: object_store::Error,
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
    /// The server process that reserved it.
    pub owner_pid: u32,
    /// That process as [`crate::store::owner::Owner::to_text`], so any node on the same host
    /// can tell whether it died (a dead owner's uploads are reclaimed); `None` when unknown.
    #[serde(default)]
    pub owner: Option<String>,
}

/// One staged piece of an upload.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// This staging as a local directory, which can also hold blocks in place
    /// ([`LocalStaging::put_block_in_place`]); `None` for other stagings.
    fn local(&self) -> Option<&LocalStaging>;
}

/// Staging in a local directory: `<dir>/<upload id>/{meta.json, parts}`.
///
/// Azure SDK blocks can also be written in place: each at its offset (its index times the
/// block size) in one `assembly` file, with a `<part>.at` file saying where, so that an upload
/// sent in the SDK's order is its blob already at finalize ([`LocalStaging::seal_in_place`])
/// and its bytes are written once instead of twice (staged, then copied). A guess that turns
/// out wrong only costs the copy: the parts read back from their places like any others.
#[derive(Debug, Clone)]
pub struct LocalStaging {
    root: PathBuf,
    locks: Arc<Mutex<HashMap<String, Arc<InPlaceLocks>>>>,
}

/// Serialises what touches one upload's `assembly` file: writers of one place take turns, and
/// sealing waits for every writer and turns later ones away.
#[derive(Debug, Default)]
struct InPlaceLocks {
    /// `true` once finalize took the file; writers then stage as usual.
    sealed: RwLock<bool>,
    /// One lock per offset, so two bodies of the same block never interleave.
    places: Mutex<HashMap<u64, Arc<Mutex<()>>>>,
}

const META_FILE: &str = "meta.json";
/// The file blocks are written into at their offsets.
const ASSEMBLY_FILE: &str = "assembly";
/// The block size and id prefix in-place offsets are computed from (`<size> <hex prefix>`),
/// fixed by the first block that arrives.
const LAYOUT_FILE: &str = "layout";
/// The suffix of the file saying where an in-place part lies (`<offset> <len>`).
const IN_PLACE_SUFFIX: &str = ".at";

/// Digits at the end of an Azure SDK block id that hold its index (the SDK pads the index to
/// at least six, its limit of 100,000 uncommitted blocks).
const INDEX_DIGITS: usize = 6;

/// An Azure SDK block id's prefix and index (its last six bytes as a number).
pub fn block_index(id: &[u8]) -> Option<(&[u8], u64)> {
    let split = id.len().checked_sub(INDEX_DIGITS)?;
    let (prefix, digits) = id.split_at(split);
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let index = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((prefix, index))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An upload's blocks, sealed in place in the order of a plan: the file holds exactly the
/// plan's bytes. Writers of the upload stage as usual from now on.
#[derive(Debug)]
pub struct SealedAssembly {
    /// The `assembly` file, cut to the plan's length.
    pub path: PathBuf,
    /// Its length.
    pub len: u64,
}

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
        Ok(Self {
            root,
            locks: Arc::default(),
        })
    }

    fn in_place_locks(&self, id: &str) -> Arc<InPlaceLocks> {
        Arc::clone(lock(&self.locks).entry(id.to_string()).or_default())
    }

    /// Where block `part` of upload `id` goes in place, if it can: an Azure SDK id with the
    /// prefix of the upload's layout, `len` bytes (no more than the layout's block size), and
    /// ending within `limit`. The first block whose length is a power of two fixes the layout:
    /// the SDK cuts a file into blocks of one such size and a last, shorter one, and sends
    /// several at once, so the short one may well arrive first.
    pub fn in_place_offset(&self, id: &str, part: &Part, len: u64, limit: u64) -> Option<u64> {
        let Part::Block(block) = part else {
            return None;
        };
        let (prefix, index) = block_index(block)?;
        if len == 0 {
            return None;
        }
        let dir = self.dir(id);
        let path = dir.join(LAYOUT_FILE);
        // First writer wins, and the file appears whole (written aside, then linked into place
        // unless one is there already), so a reader never sees a half-written layout.
        if len.is_power_of_two()
            && !path.exists()
            && let Ok(mut temp) = tempfile::Builder::new()
                .prefix(".layout-")
                .tempfile_in(&dir)
            && write!(temp, "{len} {}", hex::encode(prefix)).is_ok()
        {
            let _ = temp.persist_noclobber(&path);
        }
        let text = fs::read_to_string(&path).ok()?;
        let (size, layout_prefix) = text.split_once(' ')?;
        let size: u64 = size.parse().ok()?;
        if layout_prefix != hex::encode(prefix) || len > size {
            return None;
        }
        let offset = index.checked_mul(size)?;
        (offset.checked_add(len)? <= limit).then_some(offset)
    }

    /// Whether upload `id` writes blocks in place (its layout is fixed): finalize then seals the
    /// assembly file, and copying blocks early would write them twice.
    pub fn writes_in_place(&self, id: &str) -> bool {
        self.dir(id).join(LAYOUT_FILE).exists()
    }

    /// Writes `body` (exactly `len` bytes) as block `part` at `offset` of the upload's
    /// assembly file, replacing an earlier copy of the part. `Ok(None)` when the upload is
    /// sealed already: stage the part as usual. A failed body leaves the part absent.
    pub fn put_block_in_place(
        &self,
        id: &str,
        part: &Part,
        body: &mut dyn Read,
        len: u64,
        offset: u64,
    ) -> Result<Option<u64>, StagingError> {
        let locks = self.in_place_locks(id);
        let sealed = locks.sealed.read().unwrap_or_else(PoisonError::into_inner);
        if *sealed {
            return Ok(None);
        }
        let place = Arc::clone(lock(&locks.places).entry(offset).or_default());
        let _turn = lock(&place);
        let dir = self.dir(id);
        let marker = dir.join(format!("{}{IN_PLACE_SUFFIX}", part.file_name()));
        // The old copy's bytes are about to be overwritten: it is gone from here on.
        remove_if_present(&marker)?;
        let path = dir.join(ASSEMBLY_FILE);
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut buf = vec![0u8; COPY_BUFFER];
        let mut written = 0u64;
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) if is_body_error(&source) => {
                    return Err(StagingError::Body { source });
                }
                Err(source) => return Err(StagingError::Io { path, source }),
            };
            if written + n as u64 > len {
                return Err(StagingError::Length {
                    expected: len,
                    actual: written + n as u64,
                });
            }
            file.write_all_at(buf.get(..n).unwrap_or_default(), offset + written)
                .map_err(io_err(&path))?;
            written += n as u64;
        }
        if written != len {
            return Err(StagingError::Length {
                expected: len,
                actual: written,
            });
        }
        start_writeback(&file, offset, len);
        Self::write_atomically(
            &dir,
            &marker,
            &mut format!("{offset} {len}").as_bytes(),
            None,
        )?;
        // The newest copy of a part wins, wherever it went.
        remove_if_present(&dir.join(part.file_name()))?;
        Ok(Some(written))
    }

    /// Seals upload `id`'s assembly file as the blob of `plan`, if every part of the plan that
    /// was written in place lies where the plan puts it (each where the one before it ends):
    /// parts staged as files (a block that came before the layout was known, say) are copied to
    /// their places, and the file is cut to the plan's length. Waits for in-place writers;
    /// later ones stage as usual. `Ok(None)`: nothing is in place, or something is elsewhere;
    /// assemble by copying.
    pub fn seal_in_place(
        &self,
        id: &str,
        plan: &[Part],
    ) -> Result<Option<SealedAssembly>, StagingError> {
        let locks = self.in_place_locks(id);
        let mut sealed = locks.sealed.write().unwrap_or_else(PoisonError::into_inner);
        *sealed = true;
        let dir = self.dir(id);
        // (where it goes, and its file if it is not in place there)
        let mut copies = Vec::new();
        let mut in_place = 0usize;
        let mut end = 0u64;
        for part in plan {
            let file_path = dir.join(part.file_name());
            let len = match File::open(&file_path) {
                Ok(file) => {
                    let len = file.metadata().map_err(io_err(&file_path))?.len();
                    copies.push((end, file, file_path));
                    len
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => match read_place(&dir, part)? {
                    Some((offset, len)) if offset == end => {
                        in_place += 1;
                        len
                    }
                    _ => return Ok(None),
                },
                Err(source) => {
                    return Err(StagingError::Io {
                        path: file_path,
                        source,
                    });
                }
            };
            end += len;
        }
        if in_place == 0 {
            return Ok(None);
        }
        let path = dir.join(ASSEMBLY_FILE);
        let mut file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut buf = vec![0u8; COPY_BUFFER];
        for (at, mut from, from_path) in copies {
            file.seek(io::SeekFrom::Start(at)).map_err(io_err(&path))?;
            // As in `assemble`, a failed copy names the part it came from.
            copy_large(&mut from, &mut file, &mut buf).map_err(io_err(&from_path))?;
        }
        file.set_len(end).map_err(io_err(&path))?;
        Ok(Some(SealedAssembly { path, len: end }))
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

/// Removes `path`; a missing file is not an error.
fn remove_if_present(path: &Path) -> Result<(), StagingError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StagingError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Where an in-place part lies (`offset`, `len`), if it is in place.
fn read_place(dir: &Path, part: &Part) -> Result<Option<(u64, u64)>, StagingError> {
    let path = dir.join(format!("{}{IN_PLACE_SUFFIX}", part.file_name()));
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StagingError::Io { path, source }),
    };
    let place = text
        .split_once(' ')
        .and_then(|(offset, len)| Some((offset.parse().ok()?, len.parse().ok()?)));
    place.map(Some).ok_or_else(|| StagingError::Io {
        path,
        source: io::Error::new(io::ErrorKind::InvalidData, "not an offset and a length"),
    })
}

/// Starts writing `len` bytes at `offset` of `file` back to disk without waiting, so the fsync
/// at finalize finds most of an upload on disk already (the blocks arrive over the upload's
/// whole time; finalize would otherwise wait for all of them). A hint: failure is ignored.
fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(len),
    ) else {
        return;
    };
    // SAFETY: sync_file_range only reads the descriptor and integers; no memory is passed.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
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
    fn local(&self) -> Option<&LocalStaging> {
        Some(self)
    }

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
        let n = Self::write_atomically(&dir, &dir.join(part.file_name()), body, expected_len)?;
        // The newest copy of a part wins, wherever it went.
        remove_if_present(&dir.join(format!("{}{IN_PLACE_SUFFIX}", part.file_name())))?;
        Ok(n)
    }

    fn remove_part(&self, id: &str, part: &Part) -> Result<(), StagingError> {
        let dir = self.dir(id);
        remove_if_present(&dir.join(format!("{}{IN_PLACE_SUFFIX}", part.file_name())))?;
        remove_if_present(&dir.join(part.file_name()))
    }

    fn parts(&self, id: &str) -> Result<Vec<(Part, u64)>, StagingError> {
        let dir = self.dir(id);
        let mut parts = Vec::new();
        for file in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let file = file.map_err(io_err(&dir))?;
            let name = file.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if let Some(stem) = name.strip_suffix(IN_PLACE_SUFFIX) {
                if let Some(part) = Part::parse(stem)
                    && let Some((_, len)) = read_place(&dir, &part)?
                {
                    parts.push((part, len));
                }
                continue;
            }
            let Some(part) = Part::parse(name) else {
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
        // A part caught between its two copies (a put replacing the other): one is enough.
        parts.dedup_by(|a, b| a.0 == b.0);
        Ok(parts)
    }

    fn open_part(&self, id: &str, part: &Part) -> Result<Box<dyn Read + Send>, StagingError> {
        let dir = self.dir(id);
        let path = dir.join(part.file_name());
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some((offset, len)) = read_place(&dir, part)? else {
                    return Err(StagingError::Io { path, source: e });
                };
                let path = dir.join(ASSEMBLY_FILE);
                let mut file = File::open(&path).map_err(io_err(&path))?;
                file.seek(io::SeekFrom::Start(offset))
                    .map_err(io_err(&path))?;
                return Ok(Box::new(io::BufReader::with_capacity(
                    256 * 1024,
                    file.take(len),
                )));
            }
            Err(source) => return Err(StagingError::Io { path, source }),
        };
        Ok(Box::new(io::BufReader::with_capacity(256 * 1024, file)))
    }

    fn remove(&self, id: &str) -> Result<(), StagingError> {
        let dir = self.dir(id);
        lock(&self.locks).remove(id);
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

/// Where uploads are staged when the blobs are shared: next to the blobs, so any node that sees
/// the blobs sees every staged part. `s3://bucket/prefix` stages objects under
/// `prefix/staging-v1/<upload id>/<part>` in that bucket; `file:///dir` (or a plain path) stages
/// in `dir/staging-v1/` (shared when `dir` is). `None` stages in `local_dir` on this node only.
/// Returns the staging and whether it is shared.
pub fn open(
    blobs_url: Option<&str>,
    local_dir: &Path,
) -> Result<(std::sync::Arc<dyn Staging>, bool), StagingError> {
    let Some(url) = blobs_url.filter(|u| !u.trim().is_empty()) else {
        return Ok((std::sync::Arc::new(LocalStaging::new(local_dir)?), false));
    };
    if url.starts_with("s3://") {
        #[cfg(feature = "s3")]
        return Ok((std::sync::Arc::new(ObjectStaging::from_url(url)?), true));
        #[cfg(not(feature = "s3"))]
        return Err(StagingError::Url {
            url: url.to_string(),
            reason: "this build has no S3 support (cargo feature `s3`)".to_string(),
        });
    }
    let dir = match url.split_once("://") {
        Some(("file", path)) => path,
        Some(_) => {
            return Err(StagingError::Url {
                url: url.to_string(),
                reason: "unsupported scheme: use file:// or s3://".to_string(),
            });
        }
        None => url,
    };
    let staging = LocalStaging::new(Path::new(dir).join(SHARED_DIR))?;
    Ok((std::sync::Arc::new(staging), true))
}

/// The staging namespace next to shared blobs (a directory, or a key prefix).
pub const SHARED_DIR: &str = "staging-v1";

#[cfg(feature = "s3")]
pub use object::ObjectStaging;

#[cfg(feature = "s3")]
mod object {
    //! Staging as objects in an S3-compatible bucket. An object appears only once its PUT (or
    //! multipart upload) completes, which is what makes `put_part` atomic.

    use std::future::Future;
    use std::io::{self, Read};
    use std::path::PathBuf;
    use std::sync::Arc;

    use futures_util::StreamExt as _;
    use futures_util::stream::BoxStream;
    use object_store::aws::AmazonS3;
    use object_store::path::Path as ObjectPath;
    use object_store::{ObjectStore, PutPayload, WriteMultipart};

    use crate::clock::Clock as _;
    use crate::store::blob::{S3Connection, S3Options};

    use super::{META_FILE, Part, SHARED_DIR, Staging, StagingError, UploadMeta, is_body_error};

    /// Bytes per multipart part; a part no bigger than this is one PUT.
    const PART_SIZE: usize = 8 * 1024 * 1024;
    /// Parts of one staged piece uploading at once.
    const PARTS_IN_FLIGHT: usize = 2;
    /// A staged upload without metadata this old is a crash's leftover.
    const STALE_MS: i64 = 10 * 60 * 1000;

    /// Staged uploads in a bucket: `<prefix>/staging-v1/<upload id>/{meta.json, parts}`.
    #[derive(Debug, Clone)]
    pub struct ObjectStaging(Arc<Shared>);

    /// The bucket's connection (the S3 blob store's), shared with open part readers.
    #[derive(Debug)]
    struct Shared {
        conn: S3Connection,
        client: Arc<AmazonS3>,
        root: String,
    }

    impl ObjectStaging {
        /// Staging in `s3://bucket/prefix`, connected as the S3 blob store of the same URL is
        /// (credentials, region and endpoint from the usual `AWS_*` variables; the same timeouts
        /// and retries).
        pub fn from_url(url: &str) -> Result<Self, StagingError> {
            let conn = S3Connection::connect(url, &S3Options::default())
                .map_err(|source| StagingError::Connect { source })?;
            Ok(Self(Arc::new(Shared {
                client: conn.client.clone(),
                root: conn.root(SHARED_DIR),
                conn,
            })))
        }
    }

    impl Shared {
        /// Runs `fut` from sync code (a blocking thread of the server, or none at all).
        fn run<F: Future>(&self, fut: F) -> Result<F::Output, StagingError> {
            self.conn.block_on(fut).ok_or_else(|| StagingError::Io {
                path: PathBuf::from(&self.conn.url),
                source: io::Error::other("the staging runtime has shut down"),
            })
        }

        fn dir(&self, id: &str) -> String {
            let safe: String = id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            format!("{}/{safe}", self.root)
        }

        fn key(&self, id: &str, name: &str) -> String {
            format!("{}/{name}", self.dir(id))
        }

        fn remote(
            operation: &'static str,
            key: &str,
        ) -> impl FnOnce(object_store::Error) -> StagingError {
            let key = key.to_string();
            move |source| StagingError::Remote {
                operation,
                key,
                source,
            }
        }

        fn get_bytes(&self, key: &str) -> Result<Option<bytes::Bytes>, StagingError> {
            let path = ObjectPath::from(key);
            let client = self.client.clone();
            match self.run(async move {
                match client.get(&path).await {
                    Ok(got) => got.bytes().await,
                    Err(err) => Err(err),
                }
            })? {
                Ok(bytes) => Ok(Some(bytes)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(err) => Err(Self::remote("get", key)(err)),
            }
        }

        fn list_under(&self, prefix: &str) -> Result<Vec<object_store::ObjectMeta>, StagingError> {
            let listed = self
                .conn
                .list_under(prefix)
                .ok_or_else(|| StagingError::Io {
                    path: PathBuf::from(&self.conn.url),
                    source: io::Error::other("the staging runtime has shut down"),
                })?;
            listed.map_err(Self::remote("list", prefix))
        }

        fn delete_key(&self, key: &str) -> Result<(), StagingError> {
            let path = ObjectPath::from(key);
            let client = self.client.clone();
            match self.run(async move { client.delete(&path).await })? {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(err) => Err(Self::remote("delete", key)(err)),
            }
        }

        /// Streams `body` to `key`: one PUT when it fits in a part, else a multipart upload
        /// that is completed only if the whole body arrived with the expected length.
        fn put_stream(
            &self,
            key: &str,
            body: &mut dyn Read,
            expected_len: Option<u64>,
        ) -> Result<u64, StagingError> {
            let path = ObjectPath::from(key);
            let read_err = |source: io::Error| {
                if is_body_error(&source) {
                    StagingError::Body { source }
                } else {
                    StagingError::Io {
                        path: PathBuf::from(key),
                        source,
                    }
                }
            };
            let mut first = Vec::with_capacity(
                PART_SIZE.min(usize::try_from(expected_len.unwrap_or(0)).unwrap_or(PART_SIZE) + 1),
            );
            let n = (&mut *body)
                .take(PART_SIZE as u64 + 1)
                .read_to_end(&mut first)
                .map_err(read_err)?;
            let check = |written: u64| match expected_len {
                Some(expected) if expected != written => Err(StagingError::Length {
                    expected,
                    actual: written,
                }),
                _ => Ok(()),
            };
            let client = self.client.clone();
            if n <= PART_SIZE {
                check(n as u64)?;
                let payload = PutPayload::from(first);
                self.run(async move { client.put(&path, payload).await })?
                    .map_err(Self::remote("put", key))?;
                return Ok(n as u64);
            }
            let upload = self
                .run({
                    let (client, path) = (client.clone(), path.clone());
                    async move { client.put_multipart(&path).await }
                })?
                .map_err(Self::remote("start upload", key))?;
            let rt = self.conn.enter();
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            let mut total = n as u64;
            writer.write(&first);
            drop(first);
            let mut buf = vec![0u8; super::COPY_BUFFER];
            let streamed: Result<(), StagingError> = loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break check(total),
                    Ok(n) => n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Err(err) => break Err(read_err(err)),
                };
                match self.run(writer.wait_for_capacity(PARTS_IN_FLIGHT)) {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => break Err(Self::remote("upload part", key)(err)),
                    Err(err) => break Err(err),
                }
                writer.write(&buf[..n]);
                total += n as u64;
            };
            let done = match streamed {
                Ok(()) => self
                    .run(writer.finish())?
                    .map(|_| total)
                    .map_err(Self::remote("complete upload", key)),
                Err(err) => {
                    let _ = self.run(writer.abort());
                    Err(err)
                }
            };
            drop(rt);
            done
        }
    }

    /// A staged part's bytes, pulled from the response body chunk by chunk.
    struct ObjectReader {
        staging: Arc<Shared>,
        key: String,
        body: BoxStream<'static, object_store::Result<bytes::Bytes>>,
        chunk: bytes::Bytes,
    }

    impl Read for ObjectReader {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            while self.chunk.is_empty() {
                if buf.is_empty() {
                    return Ok(0);
                }
                let next = self
                    .staging
                    .run(self.body.next())
                    .map_err(io::Error::other)?;
                match next {
                    None => return Ok(0),
                    Some(Ok(chunk)) => self.chunk = chunk,
                    Some(Err(err)) => {
                        return Err(io::Error::other(Shared::remote("get", &self.key)(err)));
                    }
                }
            }
            let n = buf.len().min(self.chunk.len());
            buf[..n].copy_from_slice(&self.chunk.split_to(n));
            Ok(n)
        }
    }

    impl Staging for ObjectStaging {
        fn local(&self) -> Option<&super::LocalStaging> {
            None
        }

        fn create(&self, meta: &UploadMeta) -> Result<(), StagingError> {
            self.remove(&meta.id)?;
            let key = self.0.key(&meta.id, META_FILE);
            let json = serde_json::to_vec(meta).map_err(|source| StagingError::Corrupt {
                path: PathBuf::from(&key),
                source,
            })?;
            self.0.put_stream(&key, &mut json.as_slice(), None)?;
            Ok(())
        }

        fn meta(&self, id: &str) -> Result<Option<UploadMeta>, StagingError> {
            let key = self.0.key(id, META_FILE);
            let Some(bytes) = self.0.get_bytes(&key)? else {
                return Ok(None);
            };
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StagingError::Corrupt {
                    path: PathBuf::from(key),
                    source,
                })
        }

        fn put_part(
            &self,
            id: &str,
            part: &Part,
            body: &mut dyn Read,
            expected_len: Option<u64>,
        ) -> Result<u64, StagingError> {
            self.0
                .put_stream(&self.0.key(id, &part.file_name()), body, expected_len)
        }

        fn remove_part(&self, id: &str, part: &Part) -> Result<(), StagingError> {
            self.0.delete_key(&self.0.key(id, &part.file_name()))
        }

        fn parts(&self, id: &str) -> Result<Vec<(Part, u64)>, StagingError> {
            let mut parts: Vec<(Part, u64)> = self
                .0
                .list_under(&self.0.dir(id))?
                .into_iter()
                .filter_map(|meta| {
                    let part = Part::parse(meta.location.filename()?)?;
                    Some((part, meta.size))
                })
                .collect();
            parts.sort();
            Ok(parts)
        }

        fn open_part(&self, id: &str, part: &Part) -> Result<Box<dyn Read + Send>, StagingError> {
            let key = self.0.key(id, &part.file_name());
            let path = ObjectPath::from(key.as_str());
            let client = self.0.client.clone();
            let body = match self.0.run(async move { client.get(&path).await })? {
                Ok(got) => got.into_stream(),
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(StagingError::Io {
                        path: PathBuf::from(key),
                        source: io::Error::from(io::ErrorKind::NotFound),
                    });
                }
                Err(err) => return Err(Shared::remote("get", &key)(err)),
            };
            Ok(Box::new(ObjectReader {
                staging: self.0.clone(),
                key,
                body,
                chunk: bytes::Bytes::new(),
            }))
        }

        fn remove(&self, id: &str) -> Result<(), StagingError> {
            for meta in self.0.list_under(&self.0.dir(id))? {
                self.0.delete_key(meta.location.as_ref())?;
            }
            Ok(())
        }

        fn list(&self) -> Result<Vec<UploadMeta>, StagingError> {
            let root = ObjectPath::from(self.0.root.as_str());
            let client = self.0.client.clone();
            let listed = self
                .0
                .run(async move { client.list_with_delimiter(Some(&root)).await })?
                .map_err(Shared::remote("list", &self.0.root))?;
            let now = crate::clock::SystemClock.now_millis();
            let mut out = Vec::new();
            for dir in listed.common_prefixes {
                let Some(id) = dir.filename().map(ToString::to_string) else {
                    continue;
                };
                match self.meta(&id) {
                    Ok(Some(meta)) => out.push(meta),
                    Ok(None) | Err(StagingError::Corrupt { .. }) => {
                        // Parts without metadata: a crash inside `create`, unless that is
                        // happening right now.
                        let newest = self
                            .0
                            .list_under(&self.0.dir(&id))?
                            .iter()
                            .map(|m| m.last_modified.timestamp_millis())
                            .max()
                            .unwrap_or(0);
                        if newest < now.saturating_sub(STALE_MS) {
                            self.remove(&id)?;
                        }
                    }
                    Err(err) => return Err(err),
                }
            }
            Ok(out)
        }
    }
}
