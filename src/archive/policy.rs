//! The extraction safety policy: from an archive entry's header and the declared roots to a
//! decision, without touching the file system, so it can be fuzzed and property-tested on its
//! own. What depends on the tree being restored (a symlink staged earlier above a name, a hard
//! link's target earlier in the archive, a declared directory on disk) is the stager's to check.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::ArchiveError;
use super::extract::Root;

/// What kind of entry a tar header announces, as far as the policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory.
    Directory,
    /// A regular (or contiguous) file.
    File,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier entry.
    HardLink,
    /// A character or block device, or a fifo.
    Special,
    /// Any other type byte.
    Other(u8),
}

/// The part of an archive entry's header the policy decides on.
#[derive(Debug, Clone, Copy)]
pub struct EntryHeader<'a> {
    /// The entry's name as stored (after pax/GNU long-name extensions).
    pub name: &'a [u8],
    /// Its kind.
    pub kind: EntryKind,
    /// The link target of a symlink or hard link, if the header has one.
    pub link: Option<&'a [u8]>,
}

/// Why an entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The name starts with `/`.
    #[error("absolute path")]
    Absolute,
    /// A NUL byte, or `..` after a named component.
    #[error("invalid path")]
    InvalidPath,
    /// The name lies under no declared path.
    #[error("outside the paths declared for this cache")]
    Outside,
    /// A non-directory above a declared path.
    #[error("would replace a directory above a declared path")]
    AboveRoot,
    /// A symlink whose target is empty, missing or holds NUL.
    #[error("symlink without a target")]
    SymlinkWithoutTarget,
    /// A hard link without a target.
    #[error("hard link without a target")]
    HardLinkWithoutTarget,
    /// A hard link whose target lies under no declared path.
    #[error("hard link target is outside the declared paths")]
    HardLinkOutside,
    /// Devices and fifos are never restored.
    #[error("device and fifo entries are not restored")]
    Special,
    /// A type byte we do not restore.
    #[error("unsupported entry type '{}'", char::from(*kind).escape_default())]
    Unsupported {
        /// The header's type byte.
        kind: u8,
    },
}

/// What to do with an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Restore it at `target` (absolute, normalised, at or under root `root`'s destination);
    /// a hard link links to `link` (likewise inside root `link.0`).
    Write {
        /// The index of the root it falls under (see [`Policy::dests`]).
        root: usize,
        /// Where it is restored.
        target: PathBuf,
        /// For a hard link: the root and place of the file it links to.
        link: Option<(usize, PathBuf)>,
    },
    /// It, or the file it links to, is excluded: skipped and counted.
    Skip,
    /// A directory above a declared path (tar carries them): not written.
    Above,
    /// Refused: the whole restore fails.
    Refuse(Refusal),
}

/// The declared roots (archive-name prefix to destination) and the excluded paths.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Name components and destination, shallowest destination first.
    roots: Vec<(Vec<Vec<u8>>, PathBuf)>,
    exclude: Vec<PathBuf>,
}

impl Policy {
    /// A policy restoring each root's names at its destination and never writing at or under
    /// `exclude`. Destinations and exclusions must be absolute and normalised; a root name must
    /// be normalised (`..` only at its start).
    pub fn new(roots: &[Root], exclude: Vec<PathBuf>) -> Result<Policy, ArchiveError> {
        let mut parsed = roots
            .iter()
            .map(|r| {
                let name = r.name.as_os_str().as_bytes();
                let parts = name_parts(name).ok_or_else(|| ArchiveError::Unsafe {
                    entry: String::from_utf8_lossy(name).into_owned(),
                    reason: "not a normalised name".into(),
                })?;
                Ok((parts, r.dest.clone()))
            })
            .collect::<Result<Vec<_>, ArchiveError>>()?;
        // Shallower destinations commit first: a deeper one may lie inside what they place.
        parsed.sort_by_key(|(_, d)| d.components().count());
        Ok(Policy {
            roots: parsed,
            exclude,
        })
    }

    /// The destinations, indexed as [`Decision::Write::root`].
    pub fn dests(&self) -> impl Iterator<Item = &Path> {
        self.roots.iter().map(|(_, d)| d.as_path())
    }

    /// The excluded paths.
    pub fn exclude(&self) -> &[PathBuf] {
        &self.exclude
    }

    /// Whether `target` is excluded.
    pub fn excluded(&self, target: &Path) -> bool {
        self.exclude.iter().any(|x| is_under(target, x))
    }

    /// The decision for one entry.
    pub fn decide(&self, entry: &EntryHeader<'_>) -> Decision {
        match self.decide_inner(entry) {
            Ok(d) => d,
            Err(r) => Decision::Refuse(r),
        }
    }

    fn decide_inner(&self, entry: &EntryHeader<'_>) -> Result<Decision, Refusal> {
        let (root, target) = match self.place(entry.name)? {
            Some(at) => at,
            None if entry.kind == EntryKind::Directory => return Ok(Decision::Above),
            None => return Err(Refusal::AboveRoot),
        };
        if self.excluded(&target) {
            return Ok(Decision::Skip);
        }
        let link = match entry.kind {
            EntryKind::Directory | EntryKind::File => None,
            EntryKind::Special => return Err(Refusal::Special),
            EntryKind::Other(kind) => return Err(Refusal::Unsupported { kind }),
            EntryKind::Symlink => {
                // Restored wherever it points, as GNU tar does (a venv's `bin/python`): the
                // stager refuses every entry below it, so nothing is written through it.
                match entry.link {
                    Some(l) if !l.is_empty() && !l.contains(&0) => None,
                    _ => return Err(Refusal::SymlinkWithoutTarget),
                }
            }
            EntryKind::HardLink => {
                let l = entry.link.ok_or(Refusal::HardLinkWithoutTarget)?;
                let (lroot, ltarget) = match self.place(l) {
                    Ok(Some(at)) => at,
                    _ => return Err(Refusal::HardLinkOutside),
                };
                if self.excluded(&ltarget) {
                    return Ok(Decision::Skip);
                }
                Some((lroot, ltarget))
            }
        };
        Ok(Decision::Write { root, target, link })
    }

    /// Where name `name` is restored: `None` for a name above every root's (a directory tar
    /// carries on the way down to one).
    fn place(&self, name: &[u8]) -> Result<Option<(usize, PathBuf)>, Refusal> {
        if name.first() == Some(&b'/') {
            return Err(Refusal::Absolute);
        }
        let parts = name_parts(name).ok_or(Refusal::InvalidPath)?;
        let best = self
            .roots
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| parts.starts_with(n))
            .max_by_key(|(_, (n, _))| n.len());
        let Some((i, (n, dest))) = best else {
            if self
                .roots
                .iter()
                .any(|(n, _)| n.len() > parts.len() && n.starts_with(&parts))
            {
                return Ok(None);
            }
            return Err(Refusal::Outside);
        };
        let rest = &parts[n.len()..];
        if rest.iter().any(|p| p == b"..") {
            return Err(Refusal::InvalidPath);
        }
        let mut target = dest.clone();
        for p in rest {
            target.push(OsStr::from_bytes(p));
        }
        Ok(Some((i, target)))
    }
}

/// The components of an archive name with `.` and empty ones dropped; `..` only before the
/// first named component (a name above the workspace). `None` for absolute names, NUL bytes
/// and `..` after a named component.
pub(crate) fn name_parts(name: &[u8]) -> Option<Vec<Vec<u8>>> {
    if name.first() == Some(&b'/') || name.contains(&0) {
        return None;
    }
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." if parts.iter().any(|p| p != b"..") => return None,
            _ => parts.push(part.to_vec()),
        }
    }
    Some(parts)
}

/// Whether `p` is `dir` or inside it, compared as bytes: every path here is absolute and
/// normalised, and this runs a few times per entry (`Path::starts_with` walks components).
pub(crate) fn is_under(p: &Path, dir: &Path) -> bool {
    let (p, d) = (p.as_os_str().as_bytes(), dir.as_os_str().as_bytes());
    p.starts_with(d) && (p.len() == d.len() || p[d.len()] == b'/' || d.ends_with(b"/"))
}
