//! Reading tar headers off the decoded stream: ustar, pax (`x` records for path, linkpath, size
//! and mtime; `g` skipped) and GNU long names (`L`, `K`). Hand-rolled rather than through the
//! `tar` crate so an entry's content stays in the decoder's chunks ([`Slice`]s) on its way to
//! `write`, with no copy and no zero-filled buffer in between.

use super::super::ArchiveError;
use super::super::tarfmt::{BLOCK, Meta};
use super::MODE_MASK;
use super::codec::{ChunkStream, Slice};

/// Extended headers (pax or GNU long names) bigger than this are refused as corrupt: a real
/// one holds a few paths.
const MAX_EXTENDED: u64 = 16 << 20;

/// One entry's header, extensions applied.
#[derive(Debug)]
pub(super) struct TarEntry {
    /// The name, with a ustar prefix joined or replaced by a pax `path` or GNU long name.
    pub name: Vec<u8>,
    /// The link target of a symlink or hard link (pax `linkpath` or GNU long link first).
    pub link: Option<Vec<u8>>,
    /// The type byte.
    pub kind: u8,
    /// Content bytes that follow the header.
    pub size: u64,
    /// Mode (masked) and mtime (pax `mtime` with its fraction, else the header's).
    pub meta: Meta,
}

/// Reads entries one after another; the caller takes each entry's content with
/// [`TarReader::content`] or leaves it to be skipped.
pub(super) struct TarReader {
    /// The decoded stream.
    pub stream: ChunkStream,
    /// Content (plus padding) of the last entry not taken yet.
    unread: u64,
}

fn corrupt(reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Corrupt {
        reason: reason.into(),
    }
}

fn io(e: std::io::Error) -> ArchiveError {
    super::corrupt(e)
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// The bytes of a NUL-terminated field.
fn field(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |n| &b[..n])
}

/// A numeric field: octal (spaces and NULs around it), or GNU base-256 (high bit set).
fn number(b: &[u8]) -> Option<u64> {
    if b.first().is_some_and(|&c| c & 0x80 != 0) {
        if b[0] != 0x80 {
            // Negative base-256 values (0xff) never make sense for a size, mode or mtime here.
            return None;
        }
        return b[1..]
            .iter()
            .try_fold(0u64, |n, &c| n.checked_mul(256)?.checked_add(u64::from(c)));
    }
    let t: &[u8] = {
        let start = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
        let rest = &b[start..];
        let end = rest
            .iter()
            .position(|&c| c == 0 || c == b' ')
            .unwrap_or(rest.len());
        &rest[..end]
    };
    if t.is_empty() {
        return Some(0);
    }
    t.iter().try_fold(0u64, |n, &c| {
        if !(b'0'..=b'7').contains(&c) {
            return None;
        }
        n.checked_mul(8)?.checked_add(u64::from(c - b'0'))
    })
}

/// Whether the header's checksum matches (summed as unsigned or, as some old tars did, signed
/// bytes, with the checksum field itself counted as spaces).
fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let Some(want) = number(&h[148..156]) else {
        return false;
    };
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &c) in h.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += u64::from(c);
        signed += i64::from(c as i8);
    }
    want == unsigned || i64::try_from(want).is_ok_and(|w| w == signed)
}

/// pax records found so far for the next entry.
#[derive(Default)]
struct Pending {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
    mtime: Option<(i64, u32)>,
}

impl Pending {
    /// Applies pax records (`"<len> <key>=<value>\n"`, the length counting itself).
    fn pax(&mut self, mut data: &[u8]) -> Result<(), ArchiveError> {
        let bad = || corrupt("malformed pax extended header");
        while !data.is_empty() {
            let sp = data.iter().position(|&c| c == b' ').ok_or_else(bad)?;
            let len: usize = std::str::from_utf8(&data[..sp])
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(bad)?;
            if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
                return Err(bad());
            }
            let record = &data[sp + 1..len - 1];
            let eq = record.iter().position(|&c| c == b'=').ok_or_else(bad)?;
            let (key, value) = (&record[..eq], &record[eq + 1..]);
            match key {
                b"path" => self.path = Some(value.to_vec()),
                b"linkpath" => self.link = Some(value.to_vec()),
                b"size" => {
                    let size = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
                    self.size = Some(size.ok_or_else(bad)?);
                }
                b"mtime" => {
                    if let Some(t) = parse_pax_time(value) {
                        self.mtime = Some(t);
                    }
                }
                _ => {}
            }
            data = &data[len..];
        }
        Ok(())
    }
}

impl TarReader {
    /// Reads entries from `stream`.
    pub(super) fn new(stream: ChunkStream) -> TarReader {
        TarReader { stream, unread: 0 }
    }

    /// The next entry; `None` at the end-of-archive block (or a stream that ends between
    /// entries, as the `tar` crate and GNU tar accept).
    pub(super) fn next_entry(&mut self) -> Result<Option<TarEntry>, ArchiveError> {
        let mut pending = Pending::default();
        let mut extended = false;
        loop {
            let unread = std::mem::take(&mut self.unread);
            if !self.stream.skip(unread).map_err(io)? {
                return Err(corrupt("archive ends inside an entry"));
            }
            let mut h = [0u8; BLOCK];
            let mut first = [0u8; 1];
            if !self.stream.read_exact(&mut first).map_err(io)? {
                if extended {
                    return Err(corrupt("archive ends after an extended header"));
                }
                return Ok(None);
            }
            h[0] = first[0];
            if !self.stream.read_exact(&mut h[1..]).map_err(io)? {
                return Err(corrupt("archive ends inside a header"));
            }
            if h.iter().all(|&c| c == 0) {
                return Ok(None);
            }
            if !checksum_ok(&h) {
                return Err(corrupt("archive header checksum mismatch"));
            }
            let kind = h[156];
            let header_size = number(&h[124..136]).ok_or_else(|| corrupt("bad size field"))?;
            match kind {
                b'x' | b'g' | b'L' | b'K' => {
                    if header_size > MAX_EXTENDED {
                        return Err(corrupt("extended header too big"));
                    }
                    let mut data = vec![0u8; header_size as usize];
                    if !self.stream.read_exact(&mut data).map_err(io)? {
                        return Err(corrupt("archive ends inside an extended header"));
                    }
                    self.unread = padding(header_size);
                    extended = true;
                    match kind {
                        b'x' => pending.pax(&data)?,
                        b'L' => pending.path = Some(field(&data).to_vec()),
                        b'K' => pending.link = Some(field(&data).to_vec()),
                        // Global records apply to the whole archive; none we use.
                        _ => {}
                    }
                    continue;
                }
                _ => {}
            }
            let size = pending.size.unwrap_or(header_size);
            let name = match pending.path.take() {
                Some(p) => p,
                None => {
                    let name = field(&h[0..100]);
                    let prefix = field(&h[345..500]);
                    // Only POSIX ustar has a prefix field; GNU's puts other things there.
                    if &h[257..263] == b"ustar\0" && !prefix.is_empty() {
                        let mut n = prefix.to_vec();
                        n.push(b'/');
                        n.extend_from_slice(name);
                        n
                    } else {
                        name.to_vec()
                    }
                }
            };
            let link = pending
                .link
                .take()
                .or_else(|| Some(field(&h[157..257]).to_vec()).filter(|l| !l.is_empty()));
            let mode = number(&h[100..108]).map_or(0o644, |m| m as u32) & MODE_MASK;
            let (mtime, mtime_nsec) = pending
                .mtime
                .unwrap_or_else(|| (number(&h[136..148]).map_or(0, |t| t as i64), 0));
            self.unread = size + padding(size);
            return Ok(Some(TarEntry {
                name,
                link,
                kind,
                size,
                meta: Meta {
                    mode,
                    mtime,
                    mtime_nsec,
                    ..Meta::default()
                },
            }));
        }
    }

    /// Up to `n` bytes of the current entry's content as slices appended to `out` (its
    /// padding is skipped with the next header); false if the archive ends first.
    pub(super) fn content(&mut self, n: u64, out: &mut Vec<Slice>) -> Result<bool, ArchiveError> {
        let n = n.min(self.unread);
        self.unread -= n;
        self.stream.slices(n, out).map_err(io)
    }
}

/// A pax time: seconds with an optional fraction, possibly negative.
pub(super) fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let v = std::str::from_utf8(v).ok()?;
    let (neg, v) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = int.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits = frac.as_bytes().iter().take(9).map(|b| u32::from(b - b'0'));
    let mut ns = 0u32;
    for _ in 0..9 {
        ns = ns * 10 + digits.next().unwrap_or(0);
    }
    if !neg {
        return Some((secs, ns));
    }
    if ns == 0 {
        Some((-secs, 0))
    } else {
        Some((-secs - 1, 1_000_000_000 - ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_times() {
        let rows: &[(&str, Option<(i64, u32)>)] = &[
            ("12", Some((12, 0))),
            ("12.5", Some((12, 500_000_000))),
            ("12.123456789123", Some((12, 123_456_789))),
            ("-1.5", Some((-2, 500_000_000))),
            ("-3", Some((-3, 0))),
            ("x", None),
            ("1.x", None),
        ];
        for (v, want) in rows {
            assert_eq!(parse_pax_time(v.as_bytes()), *want, "{v}");
        }
    }

    #[test]
    fn numeric_fields() {
        let rows: &[(&[u8], Option<u64>)] = &[
            (b"0000644\0", Some(0o644)),
            (b"  755 \0", Some(0o755)),
            (b"\0\0\0\0", Some(0)),
            (b"00000001000\0", Some(512)),
            (&[0x80, 0, 0, 0, 0, 0, 0, 1, 0], Some(256)),
            (&[0xff, 0xff], None),
            (b"0009", None),
        ];
        for (v, want) in rows {
            assert_eq!(number(v), *want, "{v:?}");
        }
    }

    #[test]
    fn pax_records_apply_and_malformed_ones_are_corrupt() {
        let mut p = Pending::default();
        p.pax(b"12 path=a/b\n19 linkpath=../x/y\n19 mtime=12.500000\n12 size=700\n10 uid=12\n")
            .unwrap();
        assert_eq!(p.path.as_deref(), Some(&b"a/b"[..]));
        assert_eq!(p.link.as_deref(), Some(&b"../x/y"[..]));
        assert_eq!(p.mtime, Some((12, 500_000_000)));
        assert_eq!(p.size, Some(700));
        let bad: &[&[u8]] = &[
            b"11 path=a/b\n",
            b"99 path=a/b\n",
            b"x path=a\n",
            b"9 patha\n",
            b"10 size=x\n",
            b"12 path=a/bc",
        ];
        for rec in bad {
            let err = Pending::default().pax(rec).unwrap_err();
            assert!(
                matches!(err, ArchiveError::Corrupt { .. }),
                "{rec:?}: {err}"
            );
        }
    }
}
