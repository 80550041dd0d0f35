//! Writing POSIX (pax) tar headers. Hand-rolled rather than through `tar::Builder` because the
//! writer serialises batches of entries on several threads and splices them in order.

/// One 512-byte tar block.
pub(crate) const BLOCK: usize = 512;
/// The largest value an 11-digit octal field holds.
const MAX_OCTAL_11: u64 = 0o777_7777_7777;
/// The largest value a 7-digit octal field holds.
const MAX_OCTAL_7: u64 = 0o777_7777;

/// The metadata a header carries besides name, kind and size.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Meta {
    /// Permission bits (with sticky/setid bits).
    pub mode: u32,
    /// Owner id.
    pub uid: u64,
    /// Group id.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds past `mtime`.
    pub mtime_nsec: u32,
}

/// The tar entry kinds we write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file with content.
    File,
    /// A directory (name written with a trailing `/`).
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier entry.
    HardLink,
}

impl Kind {
    fn flag(self) -> u8 {
        match self {
            Kind::File => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::Dir => b'5',
        }
    }
}

/// Appends the header block(s) of one entry (a pax extended header first when a field does not
/// fit ustar, or to carry sub-second mtimes) to `buf`. Content and padding are the caller's.
pub(crate) fn push_header(
    buf: &mut Vec<u8>,
    name: &[u8],
    kind: Kind,
    size: u64,
    meta: &Meta,
    link: Option<&[u8]>,
) {
    let mut dir_name;
    let name = if kind == Kind::Dir && name.last() != Some(&b'/') {
        dir_name = Vec::with_capacity(name.len() + 1);
        dir_name.extend_from_slice(name);
        dir_name.push(b'/');
        &dir_name[..]
    } else {
        name
    };
    let mut pax = Vec::new();
    let split = split_ustar_name(name);
    if split.is_none() {
        pax_record(&mut pax, b"path", name);
    }
    if let Some(link) = link.filter(|l| l.len() > 100) {
        pax_record(&mut pax, b"linkpath", link);
    }
    if size > MAX_OCTAL_11 {
        pax_record(&mut pax, b"size", size.to_string().as_bytes());
    }
    let header_mtime = if meta.mtime < 0 || meta.mtime as u64 > MAX_OCTAL_11 || meta.mtime_nsec > 0
    {
        pax_record(
            &mut pax,
            b"mtime",
            format_time(meta.mtime, meta.mtime_nsec).as_bytes(),
        );
        meta.mtime.clamp(0, MAX_OCTAL_11 as i64) as u64
    } else {
        meta.mtime as u64
    };
    if meta.uid > MAX_OCTAL_7 {
        pax_record(&mut pax, b"uid", meta.uid.to_string().as_bytes());
    }
    if meta.gid > MAX_OCTAL_7 {
        pax_record(&mut pax, b"gid", meta.gid.to_string().as_bytes());
    }
    if !pax.is_empty() {
        let mut h = [0u8; BLOCK];
        put_bytes(&mut h[0..100], b"././@PaxHeader");
        fill_common(&mut h, 0o644, 0, 0, pax.len() as u64, header_mtime, b'x');
        checksum(&mut h);
        buf.extend_from_slice(&h);
        buf.extend_from_slice(&pax);
        pad(buf, pax.len() as u64);
    }
    let mut h = [0u8; BLOCK];
    match split {
        Some((prefix, rest)) => {
            put_bytes(&mut h[345..500], prefix);
            put_bytes(&mut h[0..100], rest);
        }
        None => put_bytes(&mut h[0..100], &name[..name.len().min(100)]),
    }
    if let Some(link) = link {
        put_bytes(&mut h[157..257], &link[..link.len().min(100)]);
    }
    fill_common(
        &mut h,
        meta.mode & 0o7777,
        meta.uid.min(MAX_OCTAL_7),
        meta.gid.min(MAX_OCTAL_7),
        if size > MAX_OCTAL_11 { 0 } else { size },
        header_mtime,
        kind.flag(),
    );
    checksum(&mut h);
    buf.extend_from_slice(&h);
}

/// Appends zero bytes so content of `size` bytes ends on a block boundary.
pub(crate) fn pad(buf: &mut Vec<u8>, size: u64) {
    let rem = (size % BLOCK as u64) as usize;
    if rem != 0 {
        buf.resize(buf.len() + BLOCK - rem, 0);
    }
}

/// The zero bytes after content of `size` bytes.
pub(crate) fn padding_len(size: u64) -> usize {
    let rem = (size % BLOCK as u64) as usize;
    if rem == 0 { 0 } else { BLOCK - rem }
}

/// Splits a name into ustar `prefix` (≤155) and `name` (≤100) at a `/`, if it fits.
fn split_ustar_name(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((&[], name));
    }
    if name.len() > 256 {
        return None;
    }
    // The name part keeps as much as possible; split at the first '/' that leaves ≤100 bytes.
    let min_split = name.len() - 101;
    (min_split..name.len().min(156))
        .find(|&i| name[i] == b'/')
        .filter(|&i| i > 0 && i + 1 < name.len())
        .map(|i| (&name[..i], &name[i + 1..]))
}

fn pax_record(pax: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // The length prefix counts itself, so find the digit count that is self-consistent.
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    pax.extend_from_slice(len.to_string().as_bytes());
    pax.push(b' ');
    pax.extend_from_slice(key);
    pax.push(b'=');
    pax.extend_from_slice(value);
    pax.push(b'\n');
}

fn format_time(secs: i64, nsec: u32) -> String {
    if nsec == 0 {
        return secs.to_string();
    }
    let frac = format!("{nsec:09}");
    let frac = frac.trim_end_matches('0');
    if secs < 0 {
        // -1.5 means 1.5 s before the epoch: secs=-2, nsec=5e8 in split form.
        let total_neg_ns = (-(secs as i128)) * 1_000_000_000 - nsec as i128;
        let (s, ns) = (total_neg_ns / 1_000_000_000, total_neg_ns % 1_000_000_000);
        let f = format!("{ns:09}");
        return format!("-{s}.{}", f.trim_end_matches('0'));
    }
    format!("{secs}.{frac}")
}

fn put_bytes(field: &mut [u8], value: &[u8]) {
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
}

fn put_octal(field: &mut [u8], value: u64) {
    // Zero-padded octal digits followed by a NUL, as GNU tar writes them.
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    put_bytes(field, s.as_bytes());
    field[digits] = 0;
}

fn fill_common(
    h: &mut [u8; BLOCK],
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
    flag: u8,
) {
    put_octal(&mut h[100..108], u64::from(mode));
    put_octal(&mut h[108..116], uid);
    put_octal(&mut h[116..124], gid);
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], mtime);
    h[156] = flag;
    put_bytes(&mut h[257..263], b"ustar\0");
    put_bytes(&mut h[263..265], b"00");
    put_octal(&mut h[329..337], 0);
    put_octal(&mut h[337..345], 0);
}

fn checksum(h: &mut [u8; BLOCK]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}");
    put_bytes(&mut h[148..154], s.as_bytes());
    h[154] = 0;
    h[155] = b' ';
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read_back(buf: &[u8]) -> Vec<(String, u64, Option<String>, u64, String)> {
        let mut ar = tar::Archive::new(buf);
        let mut out = Vec::new();
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap());
            let mtime = e.header().mtime().unwrap();
            let pax_mtime = e
                .pax_extensions()
                .unwrap()
                .and_then(|p| {
                    p.filter_map(Result::ok)
                        .find(|x| x.key() == Ok("mtime"))
                        .map(|x| x.value().unwrap().to_string())
                })
                .unwrap_or_default();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            out.push((name, content.len() as u64, link, mtime, pax_mtime));
        }
        out
    }

    #[test]
    fn names_links_and_times_round_trip_through_the_tar_crate() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(90));
        let very_long = format!("{}/{}", "x".repeat(200), "y".repeat(150));
        let long_link = "t".repeat(150);
        // name, kind, size, meta, link target, expected pax mtime
        type Row<'a> = (&'a str, Kind, u64, Meta, Option<&'a str>, &'a str);
        let rows: Vec<Row> = vec![
            (
                "a.txt",
                Kind::File,
                5,
                Meta {
                    mtime: 1000,
                    ..Meta::default()
                },
                None,
                "",
            ),
            (
                "dir",
                Kind::Dir,
                0,
                Meta {
                    mtime: 7,
                    mtime_nsec: 500_000_000,
                    ..Meta::default()
                },
                None,
                "7.5",
            ),
            (&long, Kind::File, 0, Meta::default(), None, ""),
            (&very_long, Kind::File, 3, Meta::default(), None, ""),
            ("l", Kind::Symlink, 0, Meta::default(), Some(&long_link), ""),
            ("h", Kind::HardLink, 0, Meta::default(), Some("a.txt"), ""),
            (
                "neg",
                Kind::File,
                0,
                Meta {
                    mtime: -2,
                    mtime_nsec: 500_000_000,
                    ..Meta::default()
                },
                None,
                "-1.5",
            ),
        ];
        let mut buf = Vec::new();
        for (name, kind, size, meta, link, _) in &rows {
            push_header(
                &mut buf,
                name.as_bytes(),
                *kind,
                *size,
                meta,
                link.map(str::as_bytes),
            );
            buf.resize(buf.len() + *size as usize, b'z');
            pad(&mut buf, *size);
        }
        buf.resize(buf.len() + 2 * BLOCK, 0);
        let got = read_back(&buf);
        assert_eq!(got.len(), rows.len());
        for ((name, kind, size, meta, link, pax_mtime), g) in rows.iter().zip(&got) {
            let want_name = if *kind == Kind::Dir {
                format!("{name}/")
            } else {
                name.to_string()
            };
            assert_eq!(g.0, want_name);
            assert_eq!(g.1, if *kind == Kind::File { *size } else { 0 });
            assert_eq!(g.2.as_deref(), *link);
            assert_eq!(g.3, meta.mtime.max(0) as u64);
            assert_eq!(g.4, *pax_mtime, "{name}");
        }
    }

    #[test]
    fn pax_record_length_counts_itself() {
        for vlen in [0, 1, 85, 86, 87, 95, 96, 97, 990, 995, 1000] {
            let mut pax = Vec::new();
            pax_record(&mut pax, b"path", "v".repeat(vlen).as_bytes());
            let space = pax.iter().position(|&b| b == b' ').unwrap();
            let n: usize = std::str::from_utf8(&pax[..space]).unwrap().parse().unwrap();
            assert_eq!(n, pax.len(), "value length {vlen}");
        }
    }
}
