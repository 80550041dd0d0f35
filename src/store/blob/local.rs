//! Blobs as files in a local directory: `blobs-v1/ab/blake3-abcdef…` (two-hex-digit shards, the
//! first two of the digest; sha256 blobs from before BLAKE3 are `blobs-v1/ab/abcdef…`), temporary
//! files in `blobs-v1/tmp/` on the same file system so the final rename is atomic. A temporary
//! file's name carries its writer ([`Owner::file_token`]), so the file of a writer that was
//! killed is removed by the next writer instead of lingering until it is old.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use tempfile::NamedTempFile;

use super::verify::DigestWriter;
use super::{
    BlobError, BlobInfo, BlobStat, BlobStore, BlobWriter, LAYOUT_DIR, ListedBlob, check_digest,
    shard_of,
};
use crate::clock::EpochMillis;
use crate::store::owner::{Liveness, Owner};

/// Every temporary file name starts with this.
const TEMP_PREFIX: &str = "blob-";

/// Content-addressed blobs in a directory.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    root: PathBuf,
    tmp: PathBuf,
    read_only: Option<String>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl LocalBlobStore {
    /// Opens (creating) the store under `dir`; blobs go to `dir/blobs-v1/`. An existing store
    /// that cannot be written (a read-only mount, a full disk) opens read-only: blobs can be
    /// read, and starting a write fails (see [`LocalBlobStore::read_only`]).
    pub fn new(dir: impl AsRef<Path>) -> Result<Self, BlobError> {
        let root = dir.as_ref().join(LAYOUT_DIR);
        let tmp = root.join("tmp");
        let read_only = match fs::create_dir_all(&tmp) {
            Ok(()) => None,
            Err(err) if root.is_dir() => Some(
                BlobError::Io {
                    path: tmp.clone(),
                    source: err,
                }
                .to_string(),
            ),
            Err(err) => return Err(io_err(&tmp)(err)),
        };
        Ok(Self {
            root,
            tmp,
            read_only,
        })
    }

    /// Why the store could not be opened for writing, or `None` if it could.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// The layout directory (`dir/blobs-v1`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob with this digest lives.
    pub fn path_of(&self, digest: &str) -> Result<PathBuf, BlobError> {
        Ok(self.root.join(shard_of(digest)?).join(digest))
    }
}

/// A blob being written to a temporary file.
struct LocalWriter {
    out: DigestWriter<BufWriter<NamedTempFile>>,
    store: LocalBlobStore,
}

impl Write for LocalWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl BlobWriter for LocalWriter {
    fn finish(self: Box<Self>) -> Result<BlobInfo, BlobError> {
        let LocalWriter { out, store } = *self;
        let (digest, size, buffered) = out.finish();
        let tmp_path = store.tmp.clone();
        let temp = buffered.into_inner().map_err(|e| BlobError::Io {
            path: tmp_path.clone(),
            source: e.into_error(),
        })?;
        let (file, temp_path) = temp.into_parts();
        let from = temp_path.to_path_buf();
        // A temporary file that does not become the blob is removed when `temp_path` drops.
        store.install(&digest, size, &file, &from, |dest| {
            temp_path.persist(dest).map_err(|e| e.error)
        })?;
        Ok(BlobInfo { digest, size })
    }
}

fn mtime_millis(meta: &fs::Metadata) -> Option<EpochMillis> {
    let since = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    i64::try_from(since.as_millis()).ok()
}

impl LocalBlobStore {
    /// Makes `file` (at `from`, holding `size` bytes that hash to `digest`) the blob of that
    /// digest, `rename` moving it to the blob's path. `Ok(false)`, with `rename` never called,
    /// when the same bytes are stored already: the caller drops its file.
    fn install(
        &self,
        digest: &str,
        size: u64,
        file: &File,
        from: &Path,
        rename: impl FnOnce(&Path) -> io::Result<()>,
    ) -> Result<bool, BlobError> {
        let dest = self.path_of(digest)?;
        // The same bytes are stored already (another entry's archive, or the same tree saved
        // under another key): keep that file and drop this one before it is ever written back,
        // so a duplicate save costs no disk writes. Its mtime is refreshed, which protects it
        // from orphan removal until the row is committed; if that fails (it was removed a
        // moment ago), this copy is stored as usual.
        if fs::metadata(&dest).is_ok_and(|m| m.is_file() && m.len() == size)
            && refresh_mtime(&dest).is_ok()
        {
            return Ok(false);
        }
        // Data on disk before the name points at it, so a crash never exposes a short blob.
        file.sync_all().map_err(io_err(from))?;
        let shard = dest
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.root.clone());
        fs::create_dir_all(&shard).map_err(io_err(&shard))?;
        rename(&dest).map_err(|source| BlobError::Io { path: dest, source })?;
        // The rename is durable only once the directory entry is.
        File::open(&shard)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&shard))?;
        Ok(true)
    }
}

impl BlobStore for LocalBlobStore {
    fn adopt_file(&self, path: &Path) -> Result<Option<BlobInfo>, BlobError> {
        if self.read_only.is_some() {
            return Ok(None);
        }
        let file = File::open(path).map_err(io_err(path))?;
        let mut reader = io::BufReader::with_capacity(1024 * 1024, file);
        let mut hashed = DigestWriter::new(io::sink());
        io::copy(&mut reader, &mut hashed).map_err(io_err(path))?;
        let (digest, size, _) = hashed.finish();
        let file = reader.into_inner();
        match self.install(&digest, size, &file, path, |dest| fs::rename(path, dest)) {
            Ok(true) => {}
            Ok(false) => fs::remove_file(path).map_err(io_err(path))?,
            // Another file system: the caller copies the bytes instead.
            Err(BlobError::Io { source, .. }) if source.raw_os_error() == Some(libc::EXDEV) => {
                return Ok(None);
            }
            Err(err) => return Err(err),
        }
        Ok(Some(BlobInfo { digest, size }))
    }

    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        // A killed writer's file can be the size of a whole archive; the next save clears it.
        self.remove_stale_temp(EpochMillis::MIN)?;
        let prefix = match Owner::current() {
            Some(owner) => format!("{TEMP_PREFIX}{}-", owner.file_token()),
            None => TEMP_PREFIX.to_string(),
        };
        // 0666 less the umask, like any file the user creates (tempfile's default is 0600), so a
        // store shared by a group stays readable by it.
        let temp = tempfile::Builder::new()
            .prefix(&prefix)
            .suffix(".partial")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(&self.tmp)
            .map_err(io_err(&self.tmp))?;
        Ok(Box::new(LocalWriter {
            out: DigestWriter::new(BufWriter::with_capacity(256 * 1024, temp)),
            store: self.clone(),
        }))
    }

    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, BlobError> {
        let path = self.path_of(digest)?;
        match File::open(&path) {
            Ok(file) => Ok(Box::new(io::BufReader::with_capacity(256 * 1024, file))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(BlobError::NotFound {
                digest: digest.to_string(),
            }),
            Err(source) => Err(BlobError::Io { path, source }),
        }
    }

    fn open_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, BlobError> {
        let path = self.path_of(digest)?;
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobError::NotFound {
                    digest: digest.to_string(),
                });
            }
            Err(source) => return Err(BlobError::Io { path, source }),
        };
        if let Err(source) = io::Seek::seek(&mut file, io::SeekFrom::Start(start)) {
            return Err(BlobError::Io { path, source });
        }
        // Ranges are big (4 MiB from the Azure SDK) and read in 1 MiB chunks: no buffer needed.
        Ok(Box::new(io::Read::take(file, len)))
    }

    fn stat(&self, digest: &str) -> Result<Option<BlobStat>, BlobError> {
        let path = self.path_of(digest)?;
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => Ok(Some(BlobStat {
                size: meta.len(),
                modified_at: mtime_millis(&meta),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(BlobError::Io { path, source }),
        }
    }

    fn delete(&self, digest: &str) -> Result<(), BlobError> {
        let path = self.path_of(digest)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(BlobError::Io { path, source }),
        }
    }

    fn list(&self) -> Result<Vec<ListedBlob>, BlobError> {
        let mut out = Vec::new();
        for shard in fs::read_dir(&self.root).map_err(io_err(&self.root))? {
            let shard = shard.map_err(io_err(&self.root))?;
            let shard_name = shard.file_name();
            let Some(shard_name) = shard_name.to_str() else {
                continue;
            };
            // Only two-hex-digit shard directories; `tmp/` and stray files are not blobs.
            if shard_name.len() != 2 || !shard_name.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let shard_path = shard.path();
            for file in fs::read_dir(&shard_path).map_err(io_err(&shard_path))? {
                let file = file.map_err(io_err(&shard_path))?;
                let name = file.file_name();
                let Some(name) = name.to_str() else {
                    continue;
                };
                if shard_of(name).ok() != Some(shard_name) {
                    continue;
                }
                let path = file.path();
                let meta = file.metadata().map_err(io_err(&path))?;
                if meta.is_file() {
                    out.push(ListedBlob {
                        digest: name.to_string(),
                        size: meta.len(),
                        modified_at: mtime_millis(&meta),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Removes the temporary files of writers known to be dead at once, keeps those of live
    /// writers however old, and removes the rest (unnamed, or of a writer this process cannot
    /// check) once older than `older_than`.
    fn remove_stale_temp(&self, older_than: EpochMillis) -> Result<usize, BlobError> {
        let mut removed = 0;
        let entries = match fs::read_dir(&self.tmp) {
            Ok(entries) => entries,
            // A read-only store without a tmp/ has no leftovers.
            Err(e) if e.kind() == io::ErrorKind::NotFound && self.read_only.is_some() => {
                return Ok(0);
            }
            Err(source) => return Err(io_err(&self.tmp)(source)),
        };
        for file in entries {
            let file = file.map_err(io_err(&self.tmp))?;
            let path = file.path();
            let owner = file
                .file_name()
                .to_str()
                .and_then(|name| Owner::from_file_name(name, TEMP_PREFIX))
                .map(|owner| owner.liveness());
            let cutoff = match owner {
                Some(Liveness::Alive) => continue,
                Some(Liveness::Dead) => EpochMillis::MAX,
                Some(Liveness::Unknown) | None => older_than,
            };
            let meta = match file.metadata() {
                Ok(meta) => meta,
                // Finished (renamed) by its writer meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(BlobError::Io { path, source }),
            };
            if meta.is_file() && mtime_millis(&meta).is_some_and(|t| t < cutoff) {
                match fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(BlobError::Io { path, source }),
                }
            }
        }
        Ok(removed)
    }

    /// Every write is durable when `finish` returns.
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
}

/// The file's mtime is the blob's last use.
impl super::LocalTier for LocalBlobStore {
    fn touch(&self, digest: &str) -> Result<(), BlobError> {
        let path = self.path_of(digest)?;
        match refresh_mtime(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other.map_err(io_err(&path)),
        }
    }
}

/// Sets a blob file's mtime to now: its last use, which keeps orphan removal and the local
/// tier's LRU off it.
fn refresh_mtime(path: &Path) -> io::Result<()> {
    File::options()
        .write(true)
        .open(path)?
        .set_modified(std::time::SystemTime::now())
}
