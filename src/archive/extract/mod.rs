//! Extracting archives safely: decode on this thread ([`codec`]), decide for every entry where
//! it is restored ([`super::policy`]: the declared paths, or their re-rooted places), write file
//! contents on a pool of threads ([`pool`]) into staging directories next to the targets
//! ([`stage`]; every name below a staging directory reached by `openat` without following
//! links), and only when the whole archive was read without error move the staged trees into
//! place, all or nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::sync_channel;

use super::policy::{Decision, EntryHeader, EntryKind, Policy};
use super::tarfmt::Meta;
use super::{ArchiveError, ExtractStats, default_threads, paths};

mod codec;
mod pool;
mod stage;
mod tarread;

use codec::{ChunkMsg, ChunkStream, open_decoder, pump};
use pool::{FileJob, JobKind, WritePool};
use stage::Stager;
use tarread::{TarEntry, TarReader};

/// Files up to this size are handed to the pool as one job; bigger ones in [`PIECE`]s.
const POOL_MAX: u64 = 8 << 20;
/// Bytes per job for files bigger than [`POOL_MAX`].
const PIECE: u64 = 4 << 20;
/// Permission bits we restore: setuid/setgid from a cache archive are dropped on purpose.
const MODE_MASK: u32 = 0o1777;

/// Where the archive entries under one name prefix are restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    /// The archive-relative prefix recorded at save time, lexically normalised (it may begin
    /// with `..` components; empty is the workspace itself).
    pub name: PathBuf,
    /// The absolute path the entries under `name` are restored to now.
    pub dest: PathBuf,
}

/// Options for [`extract_with`].
#[derive(Default)]
pub struct ExtractOptions<'a> {
    /// Threads writing files; 0 means a default for this machine.
    pub write_threads: usize,
    /// Called on the calling thread with the uncompressed (tar) bytes decoded so far.
    pub progress: Option<&'a dyn Fn(u64)>,
    /// Where entries are restored: each entry goes to the root with the longest `name` that is
    /// a component prefix of its name; entries under no root are refused. `None`: each allowed
    /// path is restored where it is (names relative to the workspace).
    pub roots: Option<&'a [Root]>,
    /// Absolute paths a restore never writes: entries at or under them are skipped (counted in
    /// [`ExtractStats::skipped`]), and nothing holding them is replaced.
    pub exclude: Vec<PathBuf>,
}

impl std::fmt::Debug for ExtractOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractOptions")
            .field("write_threads", &self.write_threads)
            .field("progress", &self.progress.is_some())
            .field("roots", &self.roots)
            .field("exclude", &self.exclude)
            .finish()
    }
}

/// Extracts like [`super::extract`], with options. With `opts.roots` set, `allowed` is not used.
pub fn extract_with(
    input: &mut dyn Read,
    workspace: &Path,
    allowed: &[PathBuf],
    opts: &ExtractOptions<'_>,
) -> Result<ExtractStats, ArchiveError> {
    let workspace = paths::absolute(Path::new(""), workspace);
    let roots: Vec<Root> = match opts.roots {
        Some(roots) => roots
            .iter()
            .map(|r| Root {
                name: r.name.clone(),
                dest: paths::absolute(&workspace, &r.dest),
            })
            .collect(),
        None => identity_roots(&workspace, allowed),
    };
    let exclude: Vec<PathBuf> = opts
        .exclude
        .iter()
        .map(|p| paths::absolute(&workspace, p))
        .collect();
    let mut stager = Stager::new(Policy::new(&roots, exclude)?)?;
    let r = extract_staged(input, &mut stager, opts).and_then(|stats| {
        stager.commit()?;
        Ok(stats)
    });
    r.map_err(|e| stager.name_destination(e))
}

fn extract_staged(
    input: &mut dyn Read,
    stager: &mut Stager,
    opts: &ExtractOptions<'_>,
) -> Result<ExtractStats, ArchiveError> {
    let threads = if opts.write_threads == 0 {
        // One writer per core. With contents passed as slices a writer spends its time in the
        // kernel, not copying; measured on 2 cores (bench/exec-cache, with the decoder and the
        // parser on the same cores), 2 writers restore faster than 3.
        default_threads().clamp(2, 8)
    } else {
        opts.write_threads
    };
    let mut decoder = open_decoder(input)?;
    // Decode on this thread (the input need not be Send) while a second thread parses the tar
    // stream and stages entries, like `zstd -d | tar -x`.
    std::thread::scope(|s| {
        let (tx, rx) = sync_channel::<ChunkMsg>(8);
        // Used chunks go back to the decoder: fresh 1 MiB buffers cost page faults and zeroing.
        let (free_tx, free_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let parser = s.spawn(move || {
            let mut reader = TarReader::new(ChunkStream::new(rx));
            let mut pool = WritePool::new(threads);
            let r = stage_all(&mut reader, stager, &mut pool);
            // Workers must be idle before staging can be finished or removed.
            let finished = pool.finish();
            let stats = r?;
            finished?;
            // Read to the end so the codec checks its trailer (zstd checksum, gzip CRC).
            reader.stream.drain().map_err(corrupt)?;
            Ok::<_, ArchiveError>(stats)
        });
        pump(&mut *decoder, &tx, (&free_tx, &free_rx), opts.progress);
        drop(tx);
        parser.join().unwrap_or_else(|_| {
            Err(ArchiveError::Corrupt {
                reason: "the archive reader thread panicked".into(),
            })
        })
    })
}

fn corrupt(e: std::io::Error) -> ArchiveError {
    ArchiveError::Corrupt {
        reason: e.to_string(),
    }
}

fn unsafe_entry(name: &[u8], reason: &str) -> ArchiveError {
    ArchiveError::Unsafe {
        entry: String::from_utf8_lossy(name).into_owned(),
        reason: reason.to_string(),
    }
}

/// Each allowed path restored where it is: its name relative to the workspace, itself as the
/// destination. Paths inside another allowed path are covered by it.
fn identity_roots(workspace: &Path, allowed: &[PathBuf]) -> Vec<Root> {
    use std::os::unix::ffi::OsStrExt;
    let mut declared: Vec<PathBuf> = allowed
        .iter()
        .map(|p| paths::absolute(workspace, p))
        .collect();
    declared.sort_by_key(|p| p.components().count());
    let mut roots: Vec<Root> = Vec::new();
    for path in declared {
        if roots
            .iter()
            .any(|r| super::policy::is_under(&path, &r.dest))
        {
            continue;
        }
        let name = paths::relative_name(workspace, &path);
        roots.push(Root {
            name: PathBuf::from(std::ffi::OsStr::from_bytes(&name)),
            dest: path,
        });
    }
    roots
}

/// The policy's view of a tar type byte.
fn entry_kind(kind: u8) -> EntryKind {
    match kind {
        b'5' => EntryKind::Directory,
        // Regular (old tars: NUL), and contiguous files.
        b'0' | b'\0' | b'7' => EntryKind::File,
        b'2' => EntryKind::Symlink,
        b'1' => EntryKind::HardLink,
        b'3' | b'4' | b'6' => EntryKind::Special,
        other => EntryKind::Other(other),
    }
}

/// Chunks after which the writers get every partly filled batch: a batch waiting for more
/// files would otherwise keep the chunks its slices lie in from going back to the decoder.
const FLUSH_CHUNKS: u64 = 16;

fn stage_all(
    reader: &mut TarReader,
    st: &mut Stager,
    pool: &mut WritePool,
) -> Result<ExtractStats, ArchiveError> {
    let mut stats = ExtractStats::default();
    let mut flushed_at = 0;
    while let Some(entry) = reader.next_entry()? {
        if reader.stream.chunks >= flushed_at + FLUSH_CHUNKS {
            pool.flush()?;
            flushed_at = reader.stream.chunks;
        }
        let TarEntry {
            name,
            link,
            kind,
            size,
            meta,
        } = entry;
        let kind = entry_kind(kind);
        let link = link.filter(|_| matches!(kind, EntryKind::Symlink | EntryKind::HardLink));
        let header = EntryHeader {
            name: &name,
            kind,
            link: link.as_deref(),
        };
        let (di, target, link_to) = match st.policy.decide(&header) {
            Decision::Write { root, target, link } => (root, target, link),
            Decision::Above => continue,
            Decision::Skip => {
                stats.skipped += 1;
                continue;
            }
            Decision::Refuse(why) => return Err(unsafe_entry(&name, &why.to_string())),
        };
        st.check_no_symlink_above(&name, &target, di)?;
        let (p, root_len) = st.staged(di, &target)?;
        if kind != EntryKind::Directory && st.replaces_declared_dir(di, &target) {
            return Err(unsafe_entry(&name, "would replace a declared directory"));
        }
        match (kind, link, link_to) {
            (EntryKind::Directory, _, _) => {
                if st.files.contains(&target) || st.symlinks.contains(&target) {
                    st.clear_duplicate(pool, &target, &p)?;
                }
                st.ensure_dir(pool, &p, root_len)?;
                st.dir_meta.push((di, target, meta));
            }
            (EntryKind::File, _, _) => {
                prepare_leaf(st, pool, &target, &p, root_len)?;
                stage_content(reader, &name, pool, &p, root_len, meta, size)?;
                st.files.insert(&target);
                stats.content_bytes += size;
            }
            (EntryKind::Symlink, Some(link), _) => {
                prepare_leaf(st, pool, &target, &p, root_len)?;
                pool.submit(FileJob::without_content(
                    p,
                    root_len,
                    meta,
                    JobKind::Symlink(link),
                ))?;
                st.symlinks.insert(&target);
            }
            (EntryKind::HardLink, _, Some((ldi, link_target))) => {
                if !st.files.contains(&link_target) {
                    return Err(unsafe_entry(
                        &name,
                        "hard link target is not a file earlier in the archive",
                    ));
                }
                let (from, from_root) = st.staged(ldi, &link_target)?;
                prepare_leaf(st, pool, &target, &p, root_len)?;
                // Queued behind the target's own content on the writer that writes it, so the
                // pipeline never drains for a link (a cargo target dir has dozens).
                pool.submit(FileJob::without_content(
                    p,
                    root_len,
                    meta,
                    JobKind::HardLink(from, from_root),
                ))?;
                st.files.insert(&target);
            }
            // The policy writes only the kinds above, each with what it needs.
            _ => return Err(unsafe_entry(&name, "entry the policy did not place")),
        }
        stats.entries += 1;
    }
    Ok(stats)
}

/// Hands a file's content to the pool: whole, or big files in pieces, so the parser never
/// stops to write.
fn stage_content(
    reader: &mut TarReader,
    name: &[u8],
    pool: &mut WritePool,
    p: &Path,
    root_len: usize,
    meta: Meta,
    size: u64,
) -> Result<(), ArchiveError> {
    let mut left = size;
    let mut first = true;
    loop {
        let piece = if size <= POOL_MAX {
            size
        } else {
            left.min(PIECE)
        };
        let mut data = Vec::new();
        if !reader.content(piece, &mut data)? {
            return Err(truncated(name));
        }
        left -= piece;
        pool.submit(FileJob {
            path: p.to_path_buf(),
            root_len,
            data,
            len: piece as usize,
            meta,
            first,
            last: left == 0,
            big: size >= pool::BIG,
            kind: JobKind::Content,
        })?;
        first = false;
        if left == 0 {
            return Ok(());
        }
    }
}

fn truncated(name: &[u8]) -> ArchiveError {
    ArchiveError::Corrupt {
        reason: format!(
            "archive ends inside the content of '{}'",
            String::from_utf8_lossy(name)
        ),
    }
}

/// Makes the parent directory of a file or link and clears an earlier entry of the same name.
fn prepare_leaf(
    st: &mut Stager,
    pool: &mut WritePool,
    target: &Path,
    p: &Path,
    root_len: usize,
) -> Result<(), ArchiveError> {
    if let Some(parent) = p.parent() {
        st.ensure_dir(pool, parent, root_len)?;
    }
    if st.files.contains(target) || st.symlinks.contains(target) || st.made_dirs.contains(p) {
        st.clear_duplicate(pool, target, p)?;
    }
    Ok(())
}

/// The process umask, read without changing it (Linux reports it in /proc/self/status).
/// `None` when unknown: then every mode is set explicitly.
fn umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
    })
}

/// Whether creating with `mode` already yields exactly `mode` under the umask.
fn creation_gives(mode: u32) -> bool {
    umask().is_some_and(|m| mode & 0o7000 == 0 && mode & !m == mode)
}
