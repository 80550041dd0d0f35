//! Fuzzes the extraction policy: whatever the archive holds, extraction must not panic, must
//! write nothing outside the declared path, must leave the tree exactly as it was when it
//! fails, and no restored file may share an inode with a file outside the declared path (a hard
//! link resolved through a directory replaced by a symlink). Links may point anywhere. The tree
//! starts with a link inside the declared path pointing outside, reachable by the `l` and
//! absolute `/ws/cache/l` tokens. Odd first bytes build a well-formed tar from the input (checksums right, names drawn
//! from tokens such as `..`, `/`, `cache`), so the fuzzer reaches the policy rather than the tar
//! parser's checksum test; even first bytes feed the raw bytes (codecs detected by magic).
#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;

const TOKENS: &[&[u8]] = &[
    b"cache",
    b"/",
    b"..",
    b".",
    b"a",
    b"b",
    b"/tmp",
    b"ws",
    b"outside",
    b"//",
    b"cache/a",
    b"../outside",
    b"keep.txt",
    b"\0",
    b"l",
    b"d",
    b"secret",
    b"cache/d/secret",
    b"@ws",
];

/// Turns bytes into a name: each byte picks a token; `@ws` stands for the workspace's absolute
/// path (a symlink may point at an on-disk link by its absolute name).
fn name(bytes: &[u8], ws: &[u8]) -> Vec<u8> {
    bytes
        .iter()
        .flat_map(|b| match TOKENS[*b as usize % TOKENS.len()] {
            b"@ws" => ws.to_vec(),
            t => t.to_vec(),
        })
        .collect()
}

/// A tar built from the input: per entry a kind byte, a name length and name token bytes, a
/// link length and link token bytes, a content length and content.
fn structured(mut data: &[u8], ws: &[u8]) -> Vec<u8> {
    let mut take = |n: usize| -> Vec<u8> {
        let n = n.min(data.len());
        let (head, rest) = data.split_at(n);
        data = rest;
        head.to_vec()
    };
    let mut out = Vec::new();
    for _ in 0..16 {
        let Some(&kind) = take(1).first() else { break };
        let name_len = take(1).first().map_or(0, |b| (*b % 8) as usize);
        let entry_name = name(&take(name_len), ws);
        let link_len = take(1).first().map_or(0, |b| (*b % 8) as usize);
        let link = name(&take(link_len), ws);
        let body_len = take(1).first().map_or(0, |b| *b as usize);
        let body = take(body_len);
        if entry_name.len() > 99 || link.len() > 99 {
            continue;
        }
        let mut h = tar::Header::new_ustar();
        let etype = match kind % 6 {
            0 => tar::EntryType::Regular,
            1 => tar::EntryType::Directory,
            2 => tar::EntryType::Symlink,
            3 => tar::EntryType::Link,
            4 => tar::EntryType::Fifo,
            _ => tar::EntryType::Char,
        };
        h.set_entry_type(etype);
        h.set_mode(0o644 | u32::from(kind & 0xf0) << 4);
        h.set_mtime(1_600_000_000);
        let raw = h.as_old_mut();
        raw.name[..entry_name.len()].copy_from_slice(&entry_name);
        raw.linkname[..link.len()].copy_from_slice(&link);
        let size = if etype == tar::EntryType::Regular {
            body.len()
        } else {
            0
        };
        h.set_size(size as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        if size > 0 {
            out.extend_from_slice(&body);
            out.resize(out.len().next_multiple_of(512), 0);
        }
    }
    out.resize(out.len() + 1024, 0);
    out
}

#[derive(Debug, PartialEq)]
enum Node {
    Dir,
    /// Content, mode, (device, inode).
    File(Vec<u8>, u32, (u64, u64)),
    Link(PathBuf),
}

fn snapshot(root: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Node>) {
    let Ok(rd) = fs::read_dir(root) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p == skip {
            continue;
        }
        let md = fs::symlink_metadata(&p).expect("stat");
        let node = if md.file_type().is_symlink() {
            Node::Link(fs::read_link(&p).expect("readlink"))
        } else if md.is_dir() {
            snapshot(&p, skip, out);
            Node::Dir
        } else {
            Node::File(fs::read(&p).expect("read"), md.mode(), (md.dev(), md.ino()))
        };
        out.insert(p, node);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let root = tempfile::tempdir().expect("tempdir");
    let ws = root.path().join("ws");
    let archive = if mode % 2 == 1 {
        structured(rest, ws.as_os_str().as_bytes())
    } else {
        rest.to_vec()
    };
    fs::create_dir_all(ws.join("sub")).expect("mkdir");
    fs::create_dir_all(root.path().join("outside")).expect("mkdir");
    fs::write(ws.join("keep.txt"), b"keep").expect("write");
    fs::write(root.path().join("outside/secret"), b"secret").expect("write");
    let declared = ws.join("cache");
    fs::create_dir_all(&declared).expect("mkdir");
    std::os::unix::fs::symlink(root.path().join("outside"), declared.join("l")).expect("symlink");
    let mut before = BTreeMap::new();
    snapshot(root.path(), &declared, &mut before);
    let mut declared_before = BTreeMap::new();
    snapshot(&declared, Path::new(""), &mut declared_before);

    let result = runner::archive::extract(&mut &archive[..], &ws, std::slice::from_ref(&declared));

    let mut after = BTreeMap::new();
    snapshot(root.path(), &declared, &mut after);
    assert_eq!(
        before, after,
        "something outside the declared path changed ({result:?})"
    );
    if result.is_err() {
        let mut declared_after = BTreeMap::new();
        snapshot(&declared, Path::new(""), &mut declared_after);
        assert_eq!(
            declared_before, declared_after,
            "a failed extraction changed {declared:?}"
        );
        return;
    }
    // No restored file is a hard link to a file outside the declared path.
    let outside: Vec<(u64, u64)> = before
        .values()
        .filter_map(|n| match n {
            Node::File(_, _, id) => Some(*id),
            _ => None,
        })
        .collect();
    let mut restored = BTreeMap::new();
    snapshot(&declared, Path::new(""), &mut restored);
    for (p, node) in &restored {
        if let Node::File(_, _, id) = node {
            assert!(
                !outside.contains(id),
                "{p:?} shares an inode with a file outside"
            );
        }
    }
});
