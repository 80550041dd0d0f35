//! Creating archives: walk the paths (directory listing only), then reader threads stat and read
//! batches of entries into ready-made tar bytes while this thread splices them, in order, into
//! the encoder (zstd as independent frames compressed on every core, see [`super::frames`];
//! one multithreaded zstd frame; or gzip).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs::{File, Metadata};
use std::io::{BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use super::frames::{Compressors, FrameParams, FrameRecord, FrameSource, Framed, is_cut_point};
use super::tarfmt::{self, BLOCK, Kind, Meta};
use super::{ArchiveError, Compression, CreateStats, default_threads, io_err, paths};

/// Entries per batch a reader thread serialises at once.
const BATCH_ENTRIES: usize = 64;
/// Content a batch buffers before its remaining large files are left for streaming.
const BATCH_BYTES: u64 = 8 << 20;
/// Files at least this big are streamed by the writer once a batch is over budget.
const STREAM_MIN: u64 = 1 << 20;
/// Files up to this size are read without zero-filling the buffer first.
const SMALL_READ: u64 = 64 << 10;
/// zstd level `zstd -T0` uses by default.
const ZSTD_LEVEL: i32 = super::frames::LEVEL;
/// Default for [`CreateOptions::zstd_long_after`]. Below it, long-distance matching costs more
/// than the few long matches it finds; above it are the caches where it can pay: build trees
/// holding several copies of the same libraries and objects.
pub const LONG_AFTER: u64 = 128 << 20;
/// The long-distance frame starts only once files seen before (same size and first bytes) make
/// up at least 1/`REPEATS_SHARE` of the content so far. Where whole files repeat far apart (a
/// cargo tree: a quarter of its bytes) it finds them and costs nothing; where they do not (a
/// `node_modules`: 1%) it finds 3% and costs a fifth more CPU.
const REPEATS_SHARE: u64 = 25;
/// Files from this size on are fingerprinted by their size and a hash of this many first bytes.
const PRINT_BYTES: usize = 4 << 10;
/// Window of the long-distance frame: zstd's default decoder limit (2^27), so `unzstd` and
/// `tar --use-compress-program unzstd` read it without `--long`.
const LONG_WINDOW_LOG: u32 = 27;

/// Options for [`create_with`].
pub struct CreateOptions<'a> {
    /// The codec to try first (zstd falls back to gzip if its encoder cannot be set up).
    pub compression: Compression,
    /// Threads reading files; 0 means one per core.
    pub read_threads: usize,
    /// zstd worker threads; `None` means one per core.
    pub zstd_workers: Option<u32>,
    /// zstd window log; `None` keeps level 3's own (2^21), which every decoder accepts. Values
    /// above 27 need `--long`/`window_log_max` to decode; out-of-range values make zstd refuse,
    /// and the archive falls back to gzip.
    pub zstd_window_log: Option<u32>,
    /// zstd job size in bytes for multithreaded compression; `None` keeps the library's.
    pub zstd_job_size: Option<u32>,
    /// zstd overlap log (0 default, 1 none .. 9 a full window) between multithreaded jobs;
    /// `None` keeps the library's.
    pub zstd_overlap_log: Option<u32>,
    /// Tar bytes after which the rest of the archive goes into a second zstd frame with
    /// long-distance matching, from the first point where repeated files make it pay;
    /// `None` means `LONG_AFTER`, `Some(0)` one long-distance frame, `Some(u64::MAX)` never.
    pub zstd_long_after: Option<u64>,
    /// Whether zstd archives are written as independent frames per chunk of tar bytes
    /// (default), compressed in parallel and reusable from `frames`; `false` writes one
    /// multithreaded frame as `zstd -T0` does (the `zstd_job_size`/`zstd_overlap_log` settings
    /// apply to that frame only).
    pub zstd_frames: bool,
    /// Frames compressed by earlier saves: a chunk found there is copied, not compressed.
    pub frames: Option<&'a dyn FrameSource>,
    /// Called on this thread with the content bytes written so far, after each batch.
    pub progress: Option<&'a dyn Fn(u64)>,
    /// Absolute paths never archived, with everything under them (the cache's own store).
    /// A restore's staging directories (`.runner-restore-*`) are never archived either.
    pub exclude: Vec<PathBuf>,
}

impl CreateOptions<'_> {
    /// Defaults for `compression`: all cores, no progress callback.
    pub fn new(compression: Compression) -> Self {
        CreateOptions {
            compression,
            read_threads: 0,
            zstd_workers: None,
            zstd_window_log: None,
            zstd_job_size: None,
            zstd_overlap_log: None,
            zstd_long_after: None,
            zstd_frames: true,
            frames: None,
            progress: None,
            exclude: Vec::new(),
        }
    }
}

impl std::fmt::Debug for CreateOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateOptions")
            .field("compression", &self.compression)
            .field("read_threads", &self.read_threads)
            .field("zstd_workers", &self.zstd_workers)
            .field("zstd_window_log", &self.zstd_window_log)
            .field("zstd_job_size", &self.zstd_job_size)
            .field("zstd_overlap_log", &self.zstd_overlap_log)
            .field("zstd_long_after", &self.zstd_long_after)
            .field("zstd_frames", &self.zstd_frames)
            .field("frames", &self.frames.is_some())
            .field("progress", &self.progress.is_some())
            .field("exclude", &self.exclude)
            .finish()
    }
}

/// A path found by the walk, not yet stat'ed.
struct Item {
    name: Vec<u8>,
    path: PathBuf,
}

/// A piece of a serialised batch.
enum Seg {
    /// Finished tar bytes `buf[start..end]` of one entry, and whether its end is a cut point
    /// between frames ([`is_cut_point`] of its name).
    Bytes(usize, usize, bool),
    /// A file the writer decides on: a hard link to an earlier entry with the same inode, or
    /// content (buffered in `buf[start..end]` including header, or streamed from `path`).
    File {
        name: Vec<u8>,
        path: PathBuf,
        meta: Meta,
        inode: Option<(u64, u64)>,
        body: Option<(usize, usize)>,
        /// Content bytes of a buffered body.
        size: u64,
        /// The fingerprint of a buffered body.
        print: Option<Print>,
    },
}

struct Batch {
    buf: Vec<u8>,
    segs: Vec<Seg>,
    entries: u64,
    content: u64,
    /// Fingerprints of the files in `segs` written as [`Seg::Bytes`].
    prints: Vec<Print>,
}

/// A file's size and a hash of its first [`PRINT_BYTES`].
type Print = (u64, u64);

/// The fingerprint of a file of `size` bytes that starts with `head`; `None` for small files.
fn print_of(head: &[u8], size: u64) -> Option<Print> {
    use std::hash::Hasher;
    let head = head.get(..PRINT_BYTES)?;
    let mut h = std::hash::DefaultHasher::new();
    h.write(head);
    Some((size, h.finish()))
}

/// Content bytes of files seen before, by fingerprint: whether a long-distance frame pays.
#[derive(Default)]
struct Repeats {
    seen: HashSet<Print>,
    bytes: u64,
}

impl Repeats {
    fn note(&mut self, print: Print) {
        if !self.seen.insert(print) {
            self.bytes += print.0;
        }
    }

    /// Whether repeated files make up enough of `content` bytes for the long-distance frame.
    fn pay_off(&self, content: u64) -> bool {
        self.bytes.saturating_mul(REPEATS_SHARE) >= content
    }
}

/// Archives `paths` like [`super::create`], with options.
pub fn create_with(
    workspace: &Path,
    paths_in: &[PathBuf],
    opts: &CreateOptions<'_>,
    out: &mut dyn Write,
) -> Result<CreateStats, ArchiveError> {
    let workspace = paths::absolute(Path::new(""), workspace);
    let roots = roots(&workspace, paths_in)?;
    let cores = default_threads();
    // Set the encoder up before a byte is written, so a zstd failure can still fall back.
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let long_after = opts.zstd_long_after.unwrap_or(LONG_AFTER);
    let (mut enc, used) = match opts.compression {
        Compression::Zstd => match ZstdSetup::new(opts, cores as u32, long_after) {
            Ok(setup) => (setup.start(&mut out), Compression::Zstd),
            Err(_) => (gzip_encoder(&mut out), Compression::Gzip),
        },
        Compression::Gzip => (gzip_encoder(&mut out), Compression::Gzip),
    };
    let threads = if opts.read_threads == 0 {
        cores.clamp(2, 8)
    } else {
        opts.read_threads
    };
    let exclude: Vec<PathBuf> = opts
        .exclude
        .iter()
        .map(|p| paths::absolute(&workspace, p))
        .collect();
    let mut stats = write_items(roots, &exclude, threads, &mut enc, opts.progress)?;
    enc.write_all(&[0u8; 2 * BLOCK])
        .map_err(io_err("<archive output>"))?;
    let (frames, reused) = enc.finish().map_err(io_err("<archive output>"))?;
    out.flush().map_err(io_err("<archive output>"))?;
    stats.frames = frames;
    stats.reused_bytes = reused;
    stats.compression = Some(used);
    Ok(stats)
}

/// The zstd encoder `opts` ask for, its settings checked before the archive's writer is taken
/// (so a refusal can still fall back to gzip): independent frames unless the caller wants one
/// multithreaded frame, or a long-distance frame from the start.
struct ZstdSetup<'w> {
    kind: SetupKind,
    workers: u32,
    long_after: u64,
    opts: &'w CreateOptions<'w>,
}

enum SetupKind {
    Framed(Compressors),
    Single(zstd::stream::raw::Encoder<'static>),
}

impl<'w> ZstdSetup<'w> {
    fn new(opts: &'w CreateOptions<'w>, cores: u32, long_after: u64) -> std::io::Result<Self> {
        let framed = opts.zstd_frames
            && long_after > 0
            && opts.zstd_job_size.is_none()
            && opts.zstd_overlap_log.is_none();
        let workers = opts.zstd_workers.unwrap_or(cores);
        let kind = if framed {
            // The long-distance frame may follow: its settings are checked now too.
            zstd_params(opts, workers, true)?;
            SetupKind::Framed(Compressors::new(FrameParams {
                workers: workers.max(1) as usize,
                window_log: opts.zstd_window_log,
            })?)
        } else {
            SetupKind::Single(zstd_params(opts, workers, long_after == 0)?)
        };
        Ok(ZstdSetup {
            kind,
            workers,
            long_after,
            opts,
        })
    }

    fn start(self, out: &'w mut BufWriter<&mut dyn Write>) -> Encoder<'w> {
        let ZstdSetup {
            kind,
            workers,
            long_after,
            opts,
        } = self;
        match kind {
            SetupKind::Framed(compressors) => Encoder::Framed {
                f: Some(Framed::new(out, compressors, opts.frames)),
                fed: 0,
                switch_at: long_after,
                repeats: false,
                workers,
                opts,
            },
            SetupKind::Single(params) => Encoder::Zstd {
                z: Some(zstd::stream::write::Encoder::with_encoder(
                    out as &mut dyn Write,
                    params,
                )),
                fed: 0,
                switch_at: (long_after > 0).then_some(long_after),
                repeats: false,
                workers,
                opts,
                frames: Vec::new(),
                reused: 0,
            },
        }
    }
}

enum Encoder<'w> {
    /// Independent frames, going on in one long-distance frame once `fed` reaches `switch_at`
    /// and files repeat.
    Framed {
        /// `None` only while being swapped for the long-distance frame.
        f: Option<Framed<'w>>,
        fed: u64,
        switch_at: u64,
        repeats: bool,
        workers: u32,
        opts: &'w CreateOptions<'w>,
    },
    /// One multithreaded zstd frame, going on in a long-distance frame once `fed` reaches
    /// `switch_at` and files repeat (a zstd stream may hold any number of frames; decoders read
    /// them as one stream).
    Zstd {
        /// `None` only while one frame is being swapped for the next.
        z: Option<zstd::stream::write::Encoder<'static, &'w mut dyn Write>>,
        fed: u64,
        /// `None` once in the long-distance frame (or when it is the first).
        switch_at: Option<u64>,
        /// Whether enough files repeat for the long-distance frame to pay.
        repeats: bool,
        workers: u32,
        opts: &'w CreateOptions<'w>,
        /// The independent frames written before this one.
        frames: Vec<FrameRecord>,
        /// Tar bytes of those frames that were copied rather than compressed.
        reused: u64,
    },
    Gzip(flate2::write::GzEncoder<&'w mut dyn Write>),
}

impl<'w> Encoder<'w> {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Encoder::Framed {
                f,
                fed,
                switch_at,
                repeats,
                workers,
                opts,
            } => {
                if *repeats && *fed + b.len() as u64 >= *switch_at {
                    let done = f
                        .take()
                        .ok_or_else(|| std::io::Error::other("zstd encoder lost"))?
                        .finish()?;
                    let mut next = Encoder::Zstd {
                        z: Some(long_frame(done.out, opts, *workers)?),
                        fed: *fed,
                        switch_at: None,
                        repeats: true,
                        workers: *workers,
                        opts,
                        frames: done.records,
                        reused: done.reused,
                    };
                    std::mem::swap(self, &mut next);
                    return self.write_all(b);
                }
                *fed += b.len() as u64;
                match f {
                    Some(f) => f.write_all(b),
                    None => Err(std::io::Error::other("zstd encoder lost")),
                }
            }
            Encoder::Zstd {
                z,
                fed,
                switch_at,
                repeats,
                workers,
                opts,
                ..
            } => {
                if *repeats && switch_at.is_some_and(|at| *fed + b.len() as u64 >= at) {
                    *switch_at = None;
                    if let Some(old) = z.take() {
                        *z = Some(long_frame(old.finish()?, opts, *workers)?);
                    }
                }
                *fed += b.len() as u64;
                match z {
                    Some(z) => z.write_all(b),
                    None => Err(std::io::Error::other("zstd encoder lost")),
                }
            }
            Encoder::Gzip(g) => g.write_all(b),
        }
    }

    /// The end of an entry whose name makes it a cut point between independent frames.
    fn cut_point(&mut self) -> std::io::Result<()> {
        match self {
            Encoder::Framed { f: Some(f), .. } => f.cut_point(),
            _ => Ok(()),
        }
    }

    /// Tells a zstd encoder whether files repeat enough for the long-distance frame to pay.
    fn set_repeats(&mut self, pay_off: bool) {
        match self {
            Encoder::Zstd { repeats, .. } | Encoder::Framed { repeats, .. } => *repeats = pay_off,
            Encoder::Gzip(_) => {}
        }
    }

    /// Ends the stream; gives the independent frames written and the tar bytes they reused.
    fn finish(self) -> std::io::Result<(Vec<FrameRecord>, u64)> {
        match self {
            Encoder::Framed { f: Some(f), .. } => {
                let done = f.finish()?;
                Ok((done.records, done.reused))
            }
            Encoder::Framed { f: None, .. } | Encoder::Zstd { z: None, .. } => {
                Err(std::io::Error::other("zstd encoder lost"))
            }
            Encoder::Zstd {
                z: Some(z),
                frames,
                reused,
                ..
            } => z.finish().map(|_| (frames, reused)),
            Encoder::Gzip(g) => g.finish().map(|_| (Vec::new(), 0)),
        }
    }
}

/// A zstd encoder with our settings, not yet tied to a writer (so a refusal leaves the writer
/// free for the gzip fallback).
fn zstd_params(
    opts: &CreateOptions<'_>,
    cores: u32,
    long: bool,
) -> std::io::Result<zstd::stream::raw::Encoder<'static>> {
    use zstd::stream::raw::CParameter;
    let workers = opts.zstd_workers.unwrap_or(cores);
    let mut z = zstd::stream::raw::Encoder::new(ZSTD_LEVEL)?;
    z.set_parameter(CParameter::ChecksumFlag(true))?;
    if workers > 0 {
        z.set_parameter(CParameter::NbWorkers(workers))?;
        if let Some(size) = opts.zstd_job_size {
            z.set_parameter(CParameter::JobSize(size))?;
        } else if long {
            // LDM would cut jobs to 2 MiB; level 3's usual 8 MiB keeps the workers busier.
            z.set_parameter(CParameter::JobSize(8 << 20))?;
        }
        if let Some(log) = opts.zstd_overlap_log {
            z.set_parameter(CParameter::OverlapSizeLog(log))?;
        }
    }
    if long {
        z.set_parameter(CParameter::EnableLongDistanceMatching(true))?;
        z.set_parameter(CParameter::WindowLog(
            opts.zstd_window_log.unwrap_or(LONG_WINDOW_LOG),
        ))?;
        // Sparser than zstd's defaults (a hash every 2^7 bytes, matches from 64 bytes): what
        // pays in a cache is whole files seen again, and this is about half the cost.
        z.set_parameter(CParameter::LdmHashLog(17))?;
        z.set_parameter(CParameter::LdmHashRateLog(10))?;
        z.set_parameter(CParameter::LdmMinMatch(512))?;
    } else if let Some(log) = opts.zstd_window_log {
        // Level 3's window (2^21) stays far below the decoders' default limit (2^27).
        z.set_parameter(CParameter::WindowLog(log))?;
    }
    Ok(z)
}

/// The long-distance frame, writing to `out`; if zstd refuses its settings, the rest is one more plain
/// frame.
fn long_frame<W: Write>(
    out: W,
    opts: &CreateOptions<'_>,
    workers: u32,
) -> std::io::Result<zstd::stream::write::Encoder<'static, W>> {
    let params = zstd_params(opts, workers, true).or_else(|_| zstd_params(opts, workers, false))?;
    Ok(zstd::stream::write::Encoder::with_encoder(out, params))
}

fn gzip_encoder<'w>(out: &'w mut BufWriter<&mut dyn Write>) -> Encoder<'w> {
    let out: &'w mut dyn Write = out;
    Encoder::Gzip(flate2::write::GzEncoder::new(
        out,
        flate2::Compression::default(),
    ))
}

/// The paths to archive with their names, stat'ed up front so a missing path fails before a
/// byte is written.
fn roots(
    workspace: &Path,
    paths_in: &[PathBuf],
) -> Result<Vec<(PathBuf, Vec<u8>, bool)>, ArchiveError> {
    paths_in
        .iter()
        .map(|root| {
            let path = paths::absolute(workspace, root);
            let name = paths::relative_name(workspace, &path);
            let md = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
            Ok((path, name, md.is_dir()))
        })
        .collect()
}

/// Lists every path to archive, depth first with directory entries sorted by name, each name
/// once, handing them to `sink` as they are found (the readers start on the first batch while
/// the walk goes on). Only directory listings are read here; stat and content are the reader
/// threads' work. Stops early when `sink` returns false.
fn walk(
    roots: Vec<(PathBuf, Vec<u8>, bool)>,
    exclude: &[PathBuf],
    sink: &mut dyn FnMut(Item) -> bool,
) -> Result<(), ArchiveError> {
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    for (path, name, is_dir) in roots {
        if exclude.iter().any(|x| path.starts_with(x)) {
            continue;
        }
        if !walk_one(path, name, is_dir, exclude, sink, &mut seen)? {
            break;
        }
    }
    Ok(())
}

fn walk_one(
    path: PathBuf,
    name: Vec<u8>,
    is_dir: bool,
    exclude: &[PathBuf],
    sink: &mut dyn FnMut(Item) -> bool,
    seen: &mut HashSet<Vec<u8>>,
) -> Result<bool, ArchiveError> {
    if !seen.insert(name.clone()) {
        // Already archived (listed twice, or inside a directory listed earlier).
        if !is_dir {
            return Ok(true);
        }
    } else if !sink(Item {
        name: name.clone(),
        path: path.clone(),
    }) {
        return Ok(false);
    }
    if !is_dir {
        return Ok(true);
    }
    let mut children: Vec<(std::ffi::OsString, bool)> = Vec::new();
    for entry in std::fs::read_dir(&path).map_err(io_err(&path))? {
        let entry = entry.map_err(io_err(&path))?;
        let ft = entry.file_type().map_err(io_err(entry.path()))?;
        children.push((entry.file_name(), ft.is_dir()));
    }
    children.sort_unstable();
    for (child, child_is_dir) in children {
        let child_path = path.join(&child);
        if child
            .as_bytes()
            .starts_with(super::commit::TEMP_PREFIX.as_bytes())
            || exclude.contains(&child_path)
        {
            continue;
        }
        let mut child_name = if name == b"." {
            Vec::new()
        } else {
            let mut n = name.clone();
            n.push(b'/');
            n
        };
        child_name.extend_from_slice(child.as_bytes());
        if !walk_one(child_path, child_name, child_is_dir, exclude, sink, seen)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn meta_of(md: &Metadata) -> Meta {
    Meta {
        mode: md.mode() & 0o7777,
        uid: u64::from(md.uid()),
        gid: u64::from(md.gid()),
        mtime: md.mtime(),
        mtime_nsec: md.mtime_nsec().clamp(0, 999_999_999) as u32,
    }
}

/// Serialises one batch of items. Fifos, sockets and devices are skipped: a cache has no use for
/// them and extraction refuses them.
fn build_batch(items: &[Item], mut buf: Vec<u8>) -> Result<Batch, ArchiveError> {
    buf.clear();
    let mut b = Batch {
        buf,
        segs: Vec::with_capacity(items.len()),
        entries: 0,
        content: 0,
        prints: Vec::new(),
    };
    let mut buffered: u64 = 0;
    for item in items {
        let md = std::fs::symlink_metadata(&item.path).map_err(io_err(&item.path))?;
        let meta = meta_of(&md);
        let ft = md.file_type();
        let start = b.buf.len();
        if ft.is_dir() {
            tarfmt::push_header(&mut b.buf, &item.name, Kind::Dir, 0, &meta, None);
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&item.path).map_err(io_err(&item.path))?;
            let target = target.as_os_str().as_bytes();
            tarfmt::push_header(
                &mut b.buf,
                &item.name,
                Kind::Symlink,
                0,
                &meta,
                Some(target),
            );
        } else if ft.is_file() {
            let inode = (md.nlink() > 1).then(|| (md.dev(), md.ino()));
            let mut size = md.len();
            let mut print = None;
            let body = if size >= STREAM_MIN && buffered + size > BATCH_BYTES {
                None
            } else {
                let len = read_file_into(&mut b.buf, &item.name, &item.path, size, &meta)?;
                buffered += len;
                size = len;
                print = print_of(&b.buf[b.buf.len() - len as usize..], len);
                tarfmt::pad(&mut b.buf, len);
                if inode.is_none() {
                    b.segs
                        .push(Seg::Bytes(start, b.buf.len(), is_cut_point(&item.name)));
                    b.entries += 1;
                    b.content += len;
                    b.prints.extend(print);
                    continue;
                }
                Some((start, b.buf.len()))
            };
            b.segs.push(Seg::File {
                name: item.name.clone(),
                path: item.path.clone(),
                meta,
                inode,
                body,
                size,
                print,
            });
            continue;
        } else {
            continue;
        }
        b.segs
            .push(Seg::Bytes(start, b.buf.len(), is_cut_point(&item.name)));
        b.entries += 1;
    }
    Ok(b)
}

/// Appends header and content of a file, reading straight into `buf`. Reads at most the size
/// stat'ed (a file that grew meanwhile is archived as it was, like tar does) and the header
/// carries the size actually read, so a file that shrank is still archived consistently. The
/// size is known: no fstat/lseek/probe read per file as `File::read_to_end` would do.
fn read_file_into(
    buf: &mut Vec<u8>,
    name: &[u8],
    path: &Path,
    stat_size: u64,
    meta: &Meta,
) -> Result<u64, ArchiveError> {
    let f = File::open(path).map_err(io_err(path))?;
    let start = buf.len();
    tarfmt::push_header(buf, name, Kind::File, stat_size, meta, None);
    let data_start = buf.len();
    if stat_size <= SMALL_READ {
        // One read(2) for most files; the limit ends the loop without a probe read.
        buf.reserve(stat_size as usize);
        (&f).take(stat_size)
            .read_to_end(buf)
            .map_err(io_err(path))?;
    } else {
        buf.resize(data_start + stat_size as usize, 0);
        let mut filled = data_start;
        while filled < buf.len() {
            match (&f).read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(path)(e)),
            }
        }
        buf.truncate(filled);
    }
    let len = (buf.len() - data_start) as u64;
    if len != stat_size {
        let data = buf.split_off(data_start);
        buf.truncate(start);
        tarfmt::push_header(buf, name, Kind::File, len, meta, None);
        buf.extend_from_slice(&data);
    }
    Ok(len)
}

/// Shared state between the walking thread, the reader threads and the writer.
struct Pipeline {
    state: Mutex<PipeState>,
    /// Signalled when a batch is serialised or the walk ends (the writer waits on it).
    ready: Condvar,
    /// Signalled when a batch is walked or written, or on stop (the readers wait on it).
    room: Condvar,
    stop: AtomicBool,
}

struct PipeState {
    /// Walked batches no reader has taken yet, in order.
    todo: VecDeque<(usize, Vec<Item>)>,
    /// The number of batches, once the walk has ended.
    walked: Option<usize>,
    done: BTreeMap<usize, Result<Batch, ArchiveError>>,
    written: usize,
    /// Buffers of written batches, reused: growing fresh ones costs page faults and copies.
    free: Vec<Vec<u8>>,
}

fn write_items(
    roots: Vec<(PathBuf, Vec<u8>, bool)>,
    exclude: &[PathBuf],
    threads: usize,
    enc: &mut Encoder<'_>,
    progress: Option<&dyn Fn(u64)>,
) -> Result<CreateStats, ArchiveError> {
    let window = threads * 2 + 2;
    let pipe = Pipeline {
        state: Mutex::new(PipeState {
            todo: VecDeque::new(),
            walked: None,
            done: BTreeMap::new(),
            written: 0,
            free: Vec::new(),
        }),
        ready: Condvar::new(),
        room: Condvar::new(),
        stop: AtomicBool::new(false),
    };
    let mut stats = CreateStats::default();
    let result = std::thread::scope(|s| {
        let pipe = &pipe;
        s.spawn(move || walker(pipe, roots, exclude));
        for _ in 0..threads.max(1) {
            s.spawn(move || reader(pipe, window));
        }
        let r = writer(pipe, enc, &mut stats, progress);
        if r.is_err() {
            pipe.stop.store(true, Ordering::SeqCst);
            pipe.room.notify_all();
        }
        r
    });
    result.map(|()| stats)
}

/// Walks the roots, queueing batches for the readers; a walk error takes the place of the
/// next batch, so the writer reports it in order.
fn walker(pipe: &Pipeline, roots: Vec<(PathBuf, Vec<u8>, bool)>, exclude: &[PathBuf]) {
    let mut index = 0;
    let mut batch = Vec::with_capacity(BATCH_ENTRIES);
    let queue = |batch: Vec<Item>, index: &mut usize| {
        lock(&pipe.state).todo.push_back((*index, batch));
        *index += 1;
        pipe.room.notify_all();
    };
    let r = walk(roots, exclude, &mut |item| {
        batch.push(item);
        if batch.len() == BATCH_ENTRIES {
            queue(
                std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ENTRIES)),
                &mut index,
            );
        }
        !pipe.stop.load(Ordering::Relaxed)
    });
    if !batch.is_empty() {
        queue(batch, &mut index);
    }
    {
        let mut st = lock(&pipe.state);
        if let Err(e) = r {
            st.done.insert(index, Err(e));
            index += 1;
        }
        st.walked = Some(index);
    }
    pipe.room.notify_all();
    pipe.ready.notify_all();
}

fn reader(pipe: &Pipeline, window: usize) {
    loop {
        let (i, items, buf) = {
            let mut st = lock(&pipe.state);
            loop {
                if pipe.stop.load(Ordering::SeqCst) {
                    return;
                }
                match st.todo.front() {
                    Some((i, _)) if *i < st.written + window => {
                        if let Some((i, items)) = st.todo.pop_front() {
                            let buf = st
                                .free
                                .pop()
                                .unwrap_or_else(|| Vec::with_capacity(64 << 10));
                            break (i, items, buf);
                        }
                    }
                    None if st.walked.is_some() => return,
                    _ => {}
                }
                st = pipe.room.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        let batch = build_batch(&items, buf);
        lock(&pipe.state).done.insert(i, batch);
        pipe.ready.notify_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn writer(
    pipe: &Pipeline,
    enc: &mut Encoder<'_>,
    stats: &mut CreateStats,
    progress: Option<&dyn Fn(u64)>,
) -> Result<(), ArchiveError> {
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut repeats = Repeats::default();
    let mut scratch = Vec::with_capacity(4 * BLOCK);
    let mut copy_buf = vec![0u8; 1 << 20];
    for i in 0.. {
        let batch = {
            let mut st = lock(&pipe.state);
            loop {
                if let Some(b) = st.done.remove(&i) {
                    break Some(b);
                }
                if st.walked.is_some_and(|n| i >= n) {
                    break None;
                }
                st = pipe.ready.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        let Some(batch) = batch else { break };
        let batch = batch?;
        stats.entries += batch.entries;
        stats.content_bytes += batch.content;
        for print in &batch.prints {
            repeats.note(*print);
        }
        enc.set_repeats(repeats.pay_off(stats.content_bytes));
        for seg in &batch.segs {
            match seg {
                Seg::Bytes(a, b, cut) => {
                    enc.write_all(&batch.buf[*a..*b]).map_err(out_err)?;
                    if *cut {
                        enc.cut_point().map_err(out_err)?;
                    }
                }
                Seg::File {
                    name,
                    path,
                    meta,
                    inode,
                    body,
                    size,
                    print,
                } => {
                    if let Some(first) = inode.and_then(|k| links.get(&k)) {
                        scratch.clear();
                        tarfmt::push_header(
                            &mut scratch,
                            name,
                            Kind::HardLink,
                            0,
                            meta,
                            Some(first),
                        );
                        enc.write_all(&scratch).map_err(out_err)?;
                        if is_cut_point(name) {
                            enc.cut_point().map_err(out_err)?;
                        }
                        stats.entries += 1;
                        continue;
                    }
                    if let Some(k) = inode {
                        links.insert(*k, name.clone());
                    }
                    let written = match body {
                        Some((a, b)) => {
                            if let Some(p) = print {
                                repeats.note(*p);
                            }
                            enc.set_repeats(repeats.pay_off(stats.content_bytes + *size));
                            enc.write_all(&batch.buf[*a..*b]).map_err(out_err)?;
                            *size
                        }
                        None => {
                            let file = Streamed {
                                name,
                                path,
                                meta,
                                content_before: stats.content_bytes,
                            };
                            stream_file(enc, &file, &mut repeats, &mut scratch, &mut copy_buf)?
                        }
                    };
                    if is_cut_point(name) {
                        enc.cut_point().map_err(out_err)?;
                    }
                    stats.entries += 1;
                    stats.content_bytes += written;
                }
            }
        }
        {
            let mut st = lock(&pipe.state);
            st.written = i + 1;
            st.free.push(batch.buf);
        }
        pipe.room.notify_all();
        if let Some(p) = progress {
            p(stats.content_bytes);
        }
    }
    Ok(())
}

fn out_err(e: std::io::Error) -> ArchiveError {
    ArchiveError::Io {
        path: PathBuf::from("<archive output>"),
        source: e,
    }
}

/// A file [`stream_file`] writes.
struct Streamed<'a> {
    name: &'a [u8],
    path: &'a Path,
    meta: &'a Meta,
    /// Content bytes written before it.
    content_before: u64,
}

/// Writes a large file straight from disk: header with the size at open time, then exactly that
/// many bytes (a file that shrinks meanwhile is an error, as the archive would be inconsistent).
fn stream_file(
    enc: &mut Encoder<'_>,
    file: &Streamed<'_>,
    repeats: &mut Repeats,
    scratch: &mut Vec<u8>,
    copy_buf: &mut [u8],
) -> Result<u64, ArchiveError> {
    use std::os::unix::fs::FileExt;
    let Streamed {
        name, path, meta, ..
    } = *file;
    let mut f = File::open(path).map_err(io_err(path))?;
    let size = f.metadata().map_err(io_err(path))?.len();
    // Fingerprinted before its header, so a long-distance frame may start with it.
    let mut head = [0u8; PRINT_BYTES];
    if size >= PRINT_BYTES as u64 {
        f.read_exact_at(&mut head, 0).map_err(io_err(path))?;
        if let Some(p) = print_of(&head, size) {
            repeats.note(p);
        }
    }
    enc.set_repeats(repeats.pay_off(file.content_before + size));
    scratch.clear();
    tarfmt::push_header(scratch, name, Kind::File, size, meta, None);
    enc.write_all(scratch).map_err(out_err)?;
    let mut left = size;
    while left > 0 {
        let want = left.min(copy_buf.len() as u64) as usize;
        let n = f.read(&mut copy_buf[..want]).map_err(io_err(path))?;
        if n == 0 {
            return Err(ArchiveError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file shrank while it was being archived",
                ),
            });
        }
        enc.write_all(&copy_buf[..n]).map_err(out_err)?;
        left -= n as u64;
    }
    enc.write_all(&[0u8; BLOCK][..tarfmt::padding_len(size)])
        .map_err(out_err)?;
    Ok(size)
}
