//! Integration tests: archive. Real trees in temp dirs, real tar/zstd/gzip bytes, GNU tar and
//! zstd as the reference implementations.

use std::fs::{self, File, FileTimes};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use crate::support::{Node, Raw, craft, create_bytes, file, snapshot, special, staging_leftovers};
use runner::archive::{
    self, ArchiveError, Compression, CreateOptions, Digest, ExtractOptions, Frame, FrameRecord,
    FrameSource, create_with, extract_with,
};

fn set_mtime(p: &Path, secs: u64, nanos: u32) {
    let t = UNIX_EPOCH + Duration::new(secs, nanos);
    let f = File::open(p).unwrap();
    f.set_times(FileTimes::new().set_modified(t).set_accessed(t))
        .unwrap();
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A tree exercising everything create must keep: modes, sub-second mtimes, symlinks to files
/// and directories, empty directories, unicode and long names, a multi-megabyte file, a hard link.
fn rich_tree(root: &Path) {
    let long_dir = "d".repeat(120);
    let long_file = format!("{}.txt", "f".repeat(95));
    let files: Vec<(String, Vec<u8>, u32)> = vec![
        ("cache/a.txt".into(), b"alpha\n".to_vec(), 0o644),
        (
            "cache/bin/tool".into(),
            b"#!/bin/sh\necho hi\n".to_vec(),
            0o755,
        ),
        ("cache/secret".into(), b"s".to_vec(), 0o600),
        ("cache/readonly".into(), b"r".to_vec(), 0o444),
        ("cache/empty-file".into(), Vec::new(), 0o644),
        (
            "cache/ünïcødé/日本語.txt".into(),
            "héllo".as_bytes().to_vec(),
            0o644,
        ),
        (
            format!("cache/{long_dir}/{long_file}"),
            b"long".to_vec(),
            0o644,
        ),
        (
            format!("cache/{long_dir}/{long_dir}/{long_file}"),
            b"longer".to_vec(),
            0o640,
        ),
        ("cache/big.bin".into(), pseudo_random(3 << 20, 7), 0o644),
        ("cache/block.bin".into(), vec![b'x'; 1024], 0o644),
    ];
    for (rel, content, mode) in &files {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
        set_mtime(&p, 1_600_000_000, 123_456_789);
    }
    fs::create_dir_all(root.join("cache/empty-dir")).unwrap();
    fs::create_dir_all(root.join("cache/private")).unwrap();
    fs::set_permissions(
        root.join("cache/private"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    symlink("a.txt", root.join("cache/link-to-file")).unwrap();
    symlink("bin", root.join("cache/link-to-dir")).unwrap();
    symlink("../cache/a.txt", root.join("cache/bin/up-link")).unwrap();
    fs::hard_link(root.join("cache/a.txt"), root.join("cache/hard.txt")).unwrap();
    // Directory mtimes last: creating children changes them.
    for (i, d) in [
        "cache/bin",
        "cache/empty-dir",
        "cache/private",
        "cache/ünïcødé",
        "cache",
    ]
    .iter()
    .enumerate()
    {
        set_mtime(&root.join(d), 1_500_000_000 + i as u64, 5);
    }
}

fn entry_names(archive_bytes: &[u8]) -> Vec<String> {
    let tar_bytes = decode(archive_bytes);
    let mut ar = tar::Archive::new(&tar_bytes[..]);
    ar.entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect()
}

fn decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(bytes)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .unwrap();
    } else {
        out = bytes.to_vec();
    }
    out
}

#[test]
fn round_trip_preserves_tree_for_each_codec() {
    for compression in [Compression::Zstd, Compression::Gzip] {
        let src = tempfile::tempdir().unwrap();
        rich_tree(src.path());
        let bytes = create_bytes(src.path(), &["cache"], compression);
        let magic: &[u8] = match compression {
            Compression::Zstd => &[0x28, 0xb5, 0x2f, 0xfd],
            Compression::Gzip => &[0x1f, 0x8b],
        };
        assert!(bytes.starts_with(magic), "{compression:?}");

        let dst = tempfile::tempdir().unwrap();
        let stats =
            archive::extract(&mut &bytes[..], dst.path(), &[dst.path().join("cache")]).unwrap();
        let want = snapshot(src.path());
        assert_eq!(snapshot(dst.path()), want, "{compression:?}");
        assert_eq!(stats.entries as usize, want.len(), "{compression:?}");
        let hard = fs::metadata(dst.path().join("cache/hard.txt")).unwrap();
        let orig = fs::metadata(dst.path().join("cache/a.txt")).unwrap();
        assert_eq!(hard.ino(), orig.ino(), "hard link restored as a link");
        assert!(staging_leftovers(dst.path()).is_empty());
    }
}

#[test]
fn names_are_relative_to_workspace_with_dotdot_outside() {
    let base = tempfile::tempdir().unwrap();
    let ws = base.path().join("work/repo");
    fs::create_dir_all(ws.join("target/debug")).unwrap();
    fs::write(ws.join("target/debug/out"), b"o").unwrap();
    fs::create_dir_all(base.path().join("home/.npm/_cacache")).unwrap();
    fs::write(base.path().join("home/.npm/_cacache/index"), b"i").unwrap();
    let abs_npm = base.path().join("home/.npm");
    let bytes = create_bytes(
        &ws,
        &["target", abs_npm.to_str().unwrap()],
        Compression::Zstd,
    );
    assert_eq!(
        entry_names(&bytes),
        [
            "target/",
            "target/debug/",
            "target/debug/out",
            "../../home/.npm/",
            "../../home/.npm/_cacache/",
            "../../home/.npm/_cacache/index",
        ]
    );

    let other = tempfile::tempdir().unwrap();
    let ws2 = other.path().join("work/repo");
    fs::create_dir_all(&ws2).unwrap();
    archive::extract(
        &mut &bytes[..],
        &ws2,
        &[ws2.join("target"), other.path().join("home/.npm")],
    )
    .unwrap();
    assert_eq!(fs::read(ws2.join("target/debug/out")).unwrap(), b"o");
    assert_eq!(
        fs::read(other.path().join("home/.npm/_cacache/index")).unwrap(),
        b"i"
    );
    assert!(staging_leftovers(other.path()).is_empty());
}

#[test]
fn overlapping_and_repeated_paths_archive_each_entry_once() {
    let ws = tempfile::tempdir().unwrap();
    support_tree(ws.path(), &["a/b/c.txt", "a/d.txt"]);
    let bytes = create_bytes(ws.path(), &["a", "a/b", "a/d.txt", "a"], Compression::Zstd);
    assert_eq!(entry_names(&bytes), ["a/", "a/b/", "a/b/c.txt", "a/d.txt"]);
}

fn support_tree(root: &Path, files: &[&str]) {
    let pairs: Vec<(&str, &str)> = files.iter().map(|f| (*f, *f)).collect();
    crate::support::write_tree(root, &pairs);
}

#[test]
fn existing_destination_files_are_overwritten_and_others_kept() {
    let src = tempfile::tempdir().unwrap();
    crate::support::write_tree(
        src.path(),
        &[("c/x.txt", "new x"), ("c/sub/y.txt", "new y")],
    );
    fs::set_permissions(src.path().join("c"), fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&src.path().join("c"), 1_400_000_000, 0);
    let bytes = create_bytes(src.path(), &["c"], Compression::Zstd);

    let dst = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    crate::support::write_tree(dst.path(), &[("c/x.txt", "old x"), ("c/keep.txt", "kept")]);
    // An existing symlink where the archive has a directory must be replaced, not followed.
    symlink(outside.path(), dst.path().join("c/sub")).unwrap();
    archive::extract(&mut &bytes[..], dst.path(), &[dst.path().join("c")]).unwrap();

    assert_eq!(
        fs::read_to_string(dst.path().join("c/x.txt")).unwrap(),
        "new x"
    );
    assert_eq!(
        fs::read_to_string(dst.path().join("c/keep.txt")).unwrap(),
        "kept"
    );
    assert!(
        fs::symlink_metadata(dst.path().join("c/sub"))
            .unwrap()
            .is_dir()
    );
    assert_eq!(
        fs::read_to_string(dst.path().join("c/sub/y.txt")).unwrap(),
        "new y"
    );
    assert!(
        snapshot(outside.path()).is_empty(),
        "nothing written through the old symlink"
    );
    // The declared directory existed: it is merged into, and takes the archived mode and mtime.
    let c = fs::metadata(dst.path().join("c")).unwrap();
    assert_eq!(c.mode() & 0o7777, 0o750);
    assert_eq!(c.mtime(), 1_400_000_000);
    assert!(staging_leftovers(dst.path()).is_empty());
}

#[test]
fn gzip_is_selected_by_setting_and_by_zstd_failure() {
    let ws = tempfile::tempdir().unwrap();
    support_tree(ws.path(), &["p/f.txt"]);
    let paths = vec![PathBuf::from("p")];
    let rows: &[(&str, Compression, Option<u32>, Compression)] = &[
        (
            "setting gzip",
            Compression::from_setting(Some("gzip")),
            None,
            Compression::Gzip,
        ),
        (
            "setting unset",
            Compression::from_setting(None),
            None,
            Compression::Zstd,
        ),
        (
            "zstd window 2^20",
            Compression::Zstd,
            Some(20),
            Compression::Zstd,
        ),
        // zstd refuses a window of 2^40 when its encoder is set up: the create falls back.
        (
            "zstd setup fails",
            Compression::Zstd,
            Some(40),
            Compression::Gzip,
        ),
    ];
    for (case, compression, window_log, want) in rows {
        let mut opts = CreateOptions::new(*compression);
        opts.zstd_window_log = *window_log;
        let mut out = Vec::new();
        let stats = create_with(ws.path(), &paths, &opts, &mut out).unwrap();
        assert_eq!(stats.compression, Some(*want), "{case}");
        let is_gzip = out.starts_with(&[0x1f, 0x8b]);
        assert_eq!(is_gzip, *want == Compression::Gzip, "{case}");
        assert_eq!(entry_names(&out), ["p/", "p/f.txt"], "{case}");
    }
}

#[test]
fn progress_reports_content_bytes() {
    let ws = tempfile::tempdir().unwrap();
    fs::create_dir_all(ws.path().join("p")).unwrap();
    fs::write(ws.path().join("p/a"), vec![1u8; 5000]).unwrap();
    fs::write(ws.path().join("p/b"), vec![2u8; 7000]).unwrap();
    let seen = std::cell::RefCell::new(Vec::new());
    let cb = |n: u64| seen.borrow_mut().push(n);
    let mut opts = CreateOptions::new(Compression::Zstd);
    opts.progress = Some(&cb);
    let mut out = Vec::new();
    let stats = create_with(ws.path(), &[PathBuf::from("p")], &opts, &mut out).unwrap();
    assert_eq!(stats.content_bytes, 12_000);
    assert_eq!(seen.borrow().last(), Some(&12_000));

    let dst = tempfile::tempdir().unwrap();
    let seen2 = std::cell::RefCell::new(Vec::new());
    let cb2 = |n: u64| seen2.borrow_mut().push(n);
    let xopts = ExtractOptions {
        progress: Some(&cb2),
        ..ExtractOptions::default()
    };
    let st = extract_with(&mut &out[..], dst.path(), &[dst.path().join("p")], &xopts).unwrap();
    assert_eq!(st.content_bytes, 12_000);
    // Decoded tar bytes: 3 headers and 2 padded contents plus the end-of-archive blocks.
    let tar_len = decode(&out).len() as u64;
    assert_eq!(seen2.borrow().last(), Some(&tar_len));
    assert!(tar_len >= 3 * 512 + 5120 + 7168);
}

// ---------------------------------------------------------------------------------------------
// Interoperability with GNU tar and zstd.

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

fn sh(dir: &Path, script: &str) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gnu_tar_archives_made_like_the_toolkit_restore_with_us() {
    if !have("tar") || !have("zstd") || !have("zstdmt") || !have("gzip") {
        eprintln!("skipping: GNU tar, zstd, zstdmt and gzip are needed for interop tests");
        return;
    }
    // The command lines of @actions/cache's tar.ts (createTar) on Linux, and the plain pipe.
    let rows: &[(&str, &str)] = &[
        (
            "zstdmt (zstd-without-long)",
            "tar --posix -cf cache.tzst --exclude cache.tzst -P -C ws --files-from manifest.txt --use-compress-program zstdmt",
        ),
        (
            "zstdmt --long=30 (zstd)",
            "tar --posix -cf cache.tzst --exclude cache.tzst -P -C ws --files-from manifest.txt --use-compress-program 'zstdmt --long=30'",
        ),
        (
            "pipe zstd -T0",
            "tar --posix -cf - --exclude cache.tzst -P -C ws --files-from manifest.txt | zstd -T0 -o cache.tzst",
        ),
        (
            "pipe zstd -T0 --long=30",
            "tar --posix -cf - --exclude cache.tzst -P -C ws --files-from manifest.txt | zstd -T0 --long=30 -o cache.tzst",
        ),
        (
            "gzip (-z)",
            "tar --posix -z -cf cache.tzst --exclude cache.tzst -P -C ws --files-from manifest.txt",
        ),
        (
            "plain tar",
            "tar --posix -cf cache.tzst -P -C ws --files-from manifest.txt",
        ),
    ];
    for (case, script) in rows {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        fs::create_dir_all(&ws).unwrap();
        rich_tree(&ws);
        fs::create_dir_all(dir.path().join("outside/npm")).unwrap();
        fs::write(dir.path().join("outside/npm/index.json"), b"{}").unwrap();
        fs::write(dir.path().join("manifest.txt"), "cache\n../outside/npm").unwrap();
        sh(dir.path(), script);
        let bytes = fs::read(dir.path().join("cache.tzst")).unwrap();

        let dst = tempfile::tempdir().unwrap();
        let dws = dst.path().join("ws");
        fs::create_dir_all(&dws).unwrap();
        archive::extract(
            &mut &bytes[..],
            &dws,
            &[dws.join("cache"), dst.path().join("outside/npm")],
        )
        .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(snapshot(&dws), snapshot(&ws), "{case}");
        assert_eq!(
            fs::read(dst.path().join("outside/npm/index.json")).unwrap(),
            b"{}",
            "{case}"
        );
    }
}

#[test]
fn gnu_ustar_and_pax_format_archives_restore_as_gnu_tar_extracts_them() {
    if !have("tar") {
        eprintln!("skipping: GNU tar is needed for interop tests");
        return;
    }
    // Long names and link targets go into GNU `L`/`K` entries, a ustar prefix field, or pax
    // `path`/`linkpath` records, by format; each is read as GNU tar reads it.
    for format in ["gnu", "oldgnu", "ustar", "posix"] {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        fs::create_dir_all(&ws).unwrap();
        if format == "ustar" {
            // ustar cannot hold rich_tree's 120-byte directory name nor a link target over
            // 100 bytes; a name over 100 bytes is split into its prefix field.
            support_tree(&ws, &["cache/a.txt", "cache/bin/tool"]);
        } else {
            rich_tree(&ws);
            symlink(
                format!("../{}", "t".repeat(150)),
                ws.join("cache/long-link"),
            )
            .unwrap();
        }
        let deep = format!("cache/{}/{}", "p".repeat(60), "q".repeat(70));
        fs::create_dir_all(ws.join(&deep)).unwrap();
        fs::write(ws.join(&deep).join("f.txt"), b"deep").unwrap();
        sh(&ws, &format!("tar --format={format} -cf ../a.tar cache"));
        let reference = dir.path().join("reference");
        fs::create_dir_all(&reference).unwrap();
        sh(dir.path(), "tar -xf a.tar -C reference");
        let bytes = fs::read(dir.path().join("a.tar")).unwrap();

        let dst = tempfile::tempdir().unwrap();
        archive::extract(&mut &bytes[..], dst.path(), &[dst.path().join("cache")])
            .unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(snapshot(dst.path()), snapshot(&reference), "{format}");
    }
}

#[test]
fn our_archives_list_and_extract_with_gnu_tar() {
    if !have("tar") || !have("unzstd") || !have("gzip") {
        eprintln!("skipping: GNU tar, unzstd and gzip are needed for interop tests");
        return;
    }
    let rows: &[(Compression, &str, &str)] = &[
        (
            Compression::Zstd,
            "tar --use-compress-program unzstd -tf cache.tzst",
            "unzstd -t cache.tzst && tar --use-compress-program unzstd -xf cache.tzst -P -C dst",
        ),
        (
            Compression::Gzip,
            "tar -tzf cache.tzst",
            "gzip -t < cache.tzst && tar -xzf cache.tzst -P -C dst",
        ),
    ];
    for (compression, list, extract) in rows {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        fs::create_dir_all(&ws).unwrap();
        rich_tree(&ws);
        let bytes = create_bytes(&ws, &["cache"], *compression);
        fs::write(dir.path().join("cache.tzst"), &bytes).unwrap();

        let out = Command::new("sh")
            .arg("-c")
            .arg(list)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{list}");
        let listed: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        assert_eq!(listed, entry_names(&bytes), "{compression:?}");
        assert!(
            listed.iter().any(|n| n.len() > 200),
            "a long name is listed whole"
        );

        fs::create_dir_all(dir.path().join("dst")).unwrap();
        sh(dir.path(), extract);
        assert_eq!(
            snapshot(&dir.path().join("dst")),
            snapshot(&ws),
            "{compression:?}"
        );
    }
}

#[test]
fn big_archives_go_on_in_a_long_distance_frame_once_files_repeat() {
    // Each file is repeated 3 MiB later, beyond level 3's 2 MiB window: only the long-distance
    // frame finds it again. Random content, so every saved byte is a repeat.
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(ws.join("cache")).unwrap();
    for (name, seed) in [("a", 7), ("b", 7), ("m", 11), ("y", 13), ("z", 13)] {
        fs::write(
            ws.join(format!("cache/{name}.bin")),
            pseudo_random(3 << 20, seed),
        )
        .unwrap();
    }
    let plain = long_frame_archive(&ws, u64::MAX);
    let long = long_frame_archive(&ws, 0);
    let switched = long_frame_archive(&ws, 64 << 10);
    assert_eq!(
        (
            zstd_frames(&plain),
            zstd_frames(&long),
            zstd_frames(&switched)
        ),
        (1, 1, 2)
    );
    assert!(plain.len() > 15 << 20, "random content does not compress");
    for (case, bytes) in [("long", &long), ("switched", &switched)] {
        assert!(
            bytes.len() < 10 << 20,
            "{case}: the repeats are found ({} bytes)",
            bytes.len()
        );
        let dst = tempfile::tempdir().unwrap();
        archive::extract(&mut &bytes[..], dst.path(), &[dst.path().join("cache")]).unwrap();
        assert_eq!(snapshot(dst.path()), snapshot(&ws), "{case}");
    }
    if !have("tar") || !have("unzstd") {
        eprintln!("skipping the GNU tools half: GNU tar and unzstd are needed");
        return;
    }
    // Without --long: the window is within zstd's default decoder limit.
    fs::write(dir.path().join("cache.tzst"), &switched).unwrap();
    fs::create_dir_all(dir.path().join("dst")).unwrap();
    sh(
        dir.path(),
        "unzstd -t cache.tzst && tar --use-compress-program unzstd -xf cache.tzst -C dst",
    );
    assert_eq!(snapshot(&dir.path().join("dst")), snapshot(&ws));
}

#[test]
fn archives_without_repeated_files_stay_in_one_frame() {
    // Where no file repeats (a node_modules: 1% of its bytes), long-distance matching finds
    // little and costs a fifth more CPU: past the threshold the archive goes on as it was.
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(ws.join("cache")).unwrap();
    for (name, seed) in [("a", 7), ("m", 11), ("z", 13)] {
        fs::write(
            ws.join(format!("cache/{name}.bin")),
            pseudo_random(3 << 20, seed),
        )
        .unwrap();
    }
    let bytes = long_frame_archive(&ws, 64 << 10);
    assert_eq!(zstd_frames(&bytes), 1);
    let dst = tempfile::tempdir().unwrap();
    archive::extract(&mut &bytes[..], dst.path(), &[dst.path().join("cache")]).unwrap();
    assert_eq!(snapshot(dst.path()), snapshot(&ws));
}

/// `ws/cache` archived with zstd and `zstd_long_after = long_after`.
fn long_frame_archive(ws: &Path, long_after: u64) -> Vec<u8> {
    let mut opts = CreateOptions::new(Compression::Zstd);
    opts.zstd_long_after = Some(long_after);
    let mut out = Vec::new();
    let stats = create_with(ws, &[PathBuf::from("cache")], &opts, &mut out).unwrap();
    assert_eq!(stats.compression, Some(Compression::Zstd));
    out
}

/// The number of zstd frames in `bytes`.
fn zstd_frames(bytes: &[u8]) -> usize {
    let mut n = 0;
    let mut rest = bytes;
    while !rest.is_empty() {
        let len = zstd::zstd_safe::find_frame_compressed_size(rest).expect("a whole frame");
        rest = &rest[len..];
        n += 1;
    }
    n
}

// ---------------------------------------------------------------------------------------------
// Safety: crafted archives.

#[test]
fn crafted_archives_are_refused_leaving_everything_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let outside = dir.path().join("outside");
    crate::support::write_tree(
        dir.path(),
        &[
            ("ws/cache/existing.txt", "before"),
            ("ws/other/file.txt", "other"),
            ("outside/secret.txt", "secret"),
        ],
    );
    let abs_evil = format!("{}/evil.txt", outside.display());
    let ok = || file("cache/ok.txt", "staged first");
    use tar::EntryType as T;
    let rows: Vec<(&str, Vec<Raw>)> = vec![
        ("absolute path", vec![ok(), file(&abs_evil, "x")]),
        (
            "dotdot escape",
            vec![ok(), file("../outside/evil.txt", "x")],
        ),
        (
            "dotdot inside name",
            vec![ok(), file("cache/../../outside/evil.txt", "x")],
        ),
        (
            "outside allowed, inside workspace",
            vec![ok(), file("other/file.txt", "x")],
        ),
        (
            "symlink escape then write through it",
            vec![
                ok(),
                special("cache/link", T::Symlink, Some("../../outside")),
                file("cache/link/evil.txt", "x"),
            ],
        ),
        (
            "symlink inside, then write through it",
            vec![
                ok(),
                special("cache/sub", T::Directory, None),
                special("cache/link", T::Symlink, Some("sub")),
                file("cache/link/evil.txt", "x"),
            ],
        ),
        (
            "hard link escape",
            vec![
                ok(),
                special("cache/h", T::Link, Some("../outside/secret.txt")),
            ],
        ),
        (
            "hard link to a file outside allowed",
            vec![ok(), special("cache/h", T::Link, Some("other/file.txt"))],
        ),
        (
            "character device",
            vec![ok(), special("cache/tty", T::Char, None)],
        ),
        (
            "block device",
            vec![ok(), special("cache/disk", T::Block, None)],
        ),
        ("fifo", vec![ok(), special("cache/fifo", T::Fifo, None)]),
    ];
    let before = snapshot(dir.path());
    for (case, entries) in &rows {
        for compression in ["plain", "zstd"] {
            let mut bytes = craft(entries);
            if compression == "zstd" {
                bytes = zstd::encode_all(&bytes[..], 3).unwrap();
            }
            let err = archive::extract(&mut &bytes[..], &ws, &[ws.join("cache")]).expect_err(case);
            assert!(
                matches!(err, ArchiveError::Unsafe { .. }),
                "{case} ({compression}): {err}"
            );
            assert_eq!(snapshot(dir.path()), before, "{case} ({compression})");
        }
    }
}

#[test]
fn corrupt_or_truncated_archives_leave_the_tree_untouched() {
    let src = tempfile::tempdir().unwrap();
    fs::create_dir_all(src.path().join("cache/sub")).unwrap();
    for i in 0..40 {
        fs::write(
            src.path().join(format!("cache/sub/f{i}")),
            pseudo_random(20_000, i),
        )
        .unwrap();
    }
    fs::write(src.path().join("cache/large"), pseudo_random(2 << 20, 99)).unwrap();
    for compression in [Compression::Zstd, Compression::Gzip] {
        let good = create_bytes(src.path(), &["cache"], compression);
        let n = good.len();
        let mut flipped = good.clone();
        flipped[n / 2] ^= 0x55;
        let rows: Vec<(&str, Vec<u8>)> = vec![
            ("first 100 bytes", good[..100].to_vec()),
            ("half", good[..n / 2].to_vec()),
            ("all but 10 bytes", good[..n - 10].to_vec()),
            ("a flipped byte", flipped),
            ("empty", Vec::new()),
        ];
        for (case, bytes) in rows {
            let dst = tempfile::tempdir().unwrap();
            crate::support::write_tree(
                dst.path(),
                &[("cache/existing.txt", "before"), ("cache/sub/f1", "old f1")],
            );
            let before = snapshot(dst.path());
            let err = archive::extract(&mut &bytes[..], dst.path(), &[dst.path().join("cache")])
                .expect_err(case);
            assert!(
                matches!(err, ArchiveError::Corrupt { .. }),
                "{compression:?} {case}: {err}"
            );
            assert_eq!(snapshot(dst.path()), before, "{compression:?} {case}");
            assert!(
                staging_leftovers(dst.path()).is_empty(),
                "{compression:?} {case}"
            );
        }
    }
}

#[test]
fn outside_path_staging_is_removed_on_refusal() {
    // The declared path lives outside the workspace: its staging directory is made next to it,
    // and must be gone after a refused entry.
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    fs::create_dir_all(&ws).unwrap();
    fs::create_dir_all(dir.path().join("home")).unwrap();
    let bytes = craft(&[
        file("../home/.npm/ok", "ok"),
        special("../home/.npm/dev", tar::EntryType::Char, None),
    ]);
    let npm = dir.path().join("home/.npm");
    let err = archive::extract(&mut &bytes[..], &ws, std::slice::from_ref(&npm)).unwrap_err();
    assert!(matches!(err, ArchiveError::Unsafe { .. }), "{err}");
    assert!(!npm.exists());
    assert!(staging_leftovers(dir.path()).is_empty());
    let names: Vec<_> = fs::read_dir(dir.path().join("home")).unwrap().collect();
    assert!(names.is_empty(), "nothing left in home: {names:?}");
}

#[test]
fn writes_into_a_sink_that_fails_report_the_error() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let ws = tempfile::tempdir().unwrap();
    fs::create_dir_all(ws.path().join("p")).unwrap();
    fs::write(ws.path().join("p/big"), pseudo_random(4 << 20, 3)).unwrap();
    let err = archive::create(
        ws.path(),
        &[PathBuf::from("p")],
        Compression::Zstd,
        &mut Broken,
    )
    .unwrap_err();
    assert!(matches!(err, ArchiveError::Io { .. }), "{err}");
    assert!(err.to_string().contains("disk full"), "{err}");
}

#[test]
fn missing_path_is_an_io_error_naming_it() {
    let ws = tempfile::tempdir().unwrap();
    let err = archive::create(
        ws.path(),
        &[PathBuf::from("nope")],
        Compression::Zstd,
        &mut Vec::new(),
    )
    .unwrap_err();
    match err {
        ArchiveError::Io { path, .. } => assert_eq!(path, ws.path().join("nope")),
        other => panic!("{other}"),
    }
}

#[test]
fn hard_links_across_directories_and_chained_restore_as_one_inode() {
    // Links are written by the writer that wrote their target, in whatever directory they are;
    // a link to a link (GNU tar never writes one, a crafted archive may) must follow it there.
    let big = "z".repeat(2 << 20);
    let tar = craft(&[
        file("cache/x/a", "content of a"),
        file("cache/big/f", &big),
        special("cache/y/b", tar::EntryType::Link, Some("cache/x/a")),
        special("cache/z/c", tar::EntryType::Link, Some("cache/y/b")),
        special("cache/w/g", tar::EntryType::Link, Some("cache/big/f")),
        special("cache/v/h", tar::EntryType::Link, Some("cache/w/g")),
    ]);
    for threads in [1, 3, 8] {
        let dst = tempfile::tempdir().unwrap();
        let opts = ExtractOptions {
            write_threads: threads,
            ..ExtractOptions::default()
        };
        extract_with(
            &mut &tar[..],
            dst.path(),
            &[dst.path().join("cache")],
            &opts,
        )
        .unwrap();
        let ino = |rel: &str| fs::metadata(dst.path().join(rel)).unwrap().ino();
        for (rel, first) in [
            ("cache/y/b", "cache/x/a"),
            ("cache/z/c", "cache/x/a"),
            ("cache/w/g", "cache/big/f"),
            ("cache/v/h", "cache/big/f"),
        ] {
            assert_eq!(ino(rel), ino(first), "{rel} ({threads} writers)");
        }
        assert_eq!(
            fs::read(dst.path().join("cache/z/c")).unwrap(),
            b"content of a"
        );
        assert_eq!(
            fs::read(dst.path().join("cache/v/h")).unwrap().len(),
            2 << 20
        );
    }
}

#[test]
fn files_bigger_than_one_write_job_restore_whole_with_links_to_them() {
    // Files above 8 MiB are written in pieces by the pool; sizes off the piece boundary, a small
    // file next to each, and a hard link to one of them must all come back exactly.
    let src = tempfile::tempdir().unwrap();
    let rows: &[(&str, usize)] = &[
        ("cache/a/huge.bin", (9 << 20) + 12_345),
        ("cache/a/small.txt", 10),
        ("cache/b/exact.bin", 12 << 20),
        ("cache/b/mode.bin", (8 << 20) + 1),
    ];
    for (i, (rel, len)) in rows.iter().enumerate() {
        let p = src.path().join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, pseudo_random(*len, i as u64)).unwrap();
        set_mtime(&p, 1_600_000_000 + i as u64, 42);
    }
    fs::set_permissions(
        src.path().join("cache/b/mode.bin"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::hard_link(
        src.path().join("cache/a/huge.bin"),
        src.path().join("cache/b/link.bin"),
    )
    .unwrap();
    let bytes = create_bytes(src.path(), &["cache"], Compression::Zstd);

    let dst = tempfile::tempdir().unwrap();
    archive::extract(&mut &bytes[..], dst.path(), &[dst.path().join("cache")]).unwrap();
    let mut want = snapshot(src.path());
    let mut got = snapshot(dst.path());
    // Directory mtimes changed when the source tree was written; compare files only.
    want.retain(|_, n| !matches!(n, Node::Dir { .. }));
    got.retain(|_, n| !matches!(n, Node::Dir { .. }));
    assert_eq!(got, want);
    let link = fs::metadata(dst.path().join("cache/b/link.bin")).unwrap();
    let orig = fs::metadata(dst.path().join("cache/a/huge.bin")).unwrap();
    assert_eq!(link.ino(), orig.ino(), "hard link restored as a link");

    // Cut inside the second piece of the first big file: refused, nothing left behind.
    let tar = decode(&bytes);
    let cut = &tar[..(6 << 20)];
    let dst = tempfile::tempdir().unwrap();
    let err = archive::extract(&mut &cut[..], dst.path(), &[dst.path().join("cache")])
        .expect_err("truncated");
    assert!(matches!(err, ArchiveError::Corrupt { .. }), "{err}");
    assert!(!dst.path().join("cache").exists());
    assert!(staging_leftovers(dst.path()).is_empty());
}

/// Checks one decision of the safety policy: whatever is written lands, by plain components,
/// inside its root's destination and outside every excluded path, and so does a hard link's
/// target.
fn check_decision(
    policy: &runner::archive::policy::Policy,
    entry: &runner::archive::policy::EntryHeader<'_>,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use runner::archive::policy::{Decision, EntryKind};
    use std::path::Component;
    let dests: Vec<&Path> = policy.dests().collect();
    let inside = |root: usize, p: &Path| {
        let Some(dest) = dests.get(root) else {
            return false;
        };
        p.strip_prefix(dest)
            .is_ok_and(|rest| rest.components().all(|c| matches!(c, Component::Normal(_))))
            && !policy.exclude().iter().any(|x| p.starts_with(x))
    };
    match policy.decide(entry) {
        Decision::Write { root, target, link } => {
            proptest::prop_assert!(inside(root, &target), "{entry:?} -> {target:?}");
            proptest::prop_assert!(
                !matches!(entry.kind, EntryKind::Special | EntryKind::Other(_)),
                "{entry:?} written"
            );
            match (entry.kind, link) {
                (EntryKind::HardLink, Some((lroot, ltarget))) => {
                    proptest::prop_assert!(inside(lroot, &ltarget), "{entry:?} -> {ltarget:?}");
                }
                (EntryKind::HardLink, None) => {
                    proptest::prop_assert!(false, "{entry:?}: hard link without a target");
                }
                (_, Some(l)) => proptest::prop_assert!(false, "{entry:?}: link {l:?}"),
                (EntryKind::Symlink, None) => {
                    let l = entry.link.unwrap_or_default();
                    proptest::prop_assert!(!l.is_empty() && !l.contains(&0), "{entry:?}");
                }
                _ => {}
            }
        }
        Decision::Above => {
            proptest::prop_assert_eq!(entry.kind, EntryKind::Directory);
        }
        Decision::Skip | Decision::Refuse(_) => {}
    }
    Ok(())
}

/// Declared roots (archive name, destination) and exclusions the property test draws from.
fn policy_setups() -> Vec<runner::archive::policy::Policy> {
    use runner::archive::Root;
    use runner::archive::policy::Policy;
    let root = |name: &str, dest: &str| Root {
        name: PathBuf::from(name),
        dest: PathBuf::from(dest),
    };
    vec![
        Policy::new(&[root("cache", "/ws/cache")], vec![]).unwrap(),
        Policy::new(
            &[
                root("cache", "/ws/cache"),
                root("../outside/a", "/home/u/a"),
            ],
            vec![PathBuf::from("/ws/cache/store")],
        )
        .unwrap(),
        Policy::new(&[root("", "/ws")], vec![PathBuf::from("/ws/.cache")]).unwrap(),
        Policy::new(&[root("a/b", "/other/place"), root("a", "/ws/a")], vec![]).unwrap(),
    ]
}

proptest::proptest! {
    /// Arbitrary names and link targets, built from the tokens that make escapes (`..`, `/`,
    /// empty and `.` components, NUL, absolute names) and from the roots' own names: nothing the
    /// policy writes lands outside its root or inside an excluded path.
    #[test]
    fn safety_policy_never_places_an_entry_outside_its_root(
        setup in 0usize..4,
        name in proptest::collection::vec(
            proptest::sample::select(vec![
                "cache", "..", ".", "", "a", "b", "store", ".cache", "outside", "\0", "x/..", "/",
            ]),
            0..7,
        ),
        link in proptest::collection::vec(
            proptest::sample::select(vec!["cache", "..", ".", "", "a", "b", "outside", "\0", "/"]),
            0..5,
        ),
        kind in proptest::sample::select(vec![b'0', b'5', b'2', b'1', b'3', b'6', b'7', b'Z']),
        absolute in proptest::bool::ANY,
    ) {
        use runner::archive::policy::{EntryHeader, EntryKind};
        let policies = policy_setups();
        let mut name = name.join("/");
        if absolute {
            name.insert(0, '/');
        }
        let link = link.join("/");
        let kind = match kind {
            b'0' | b'7' => EntryKind::File,
            b'5' => EntryKind::Directory,
            b'2' => EntryKind::Symlink,
            b'1' => EntryKind::HardLink,
            b'3' | b'6' => EntryKind::Special,
            other => EntryKind::Other(other),
        };
        let entry = EntryHeader { name: name.as_bytes(), kind, link: Some(link.as_bytes()) };
        check_decision(&policies[setup], &entry)?;
    }
}

#[test]
fn safety_policy_places_plain_names_under_their_root_and_refuses_escapes() {
    use runner::archive::policy::{Decision, EntryHeader, EntryKind, Refusal};
    let policy = &policy_setups()[1];
    let decide = |name: &str, kind: EntryKind, link: Option<&str>| {
        policy.decide(&EntryHeader {
            name: name.as_bytes(),
            kind,
            link: link.map(str::as_bytes),
        })
    };
    let write = |target: &str, link: Option<(usize, &str)>| Decision::Write {
        root: usize::from(target.starts_with("/home")),
        target: PathBuf::from(target),
        link: link.map(|(r, l)| (r, PathBuf::from(l))),
    };
    let rows: Vec<(&str, EntryKind, Option<&str>, Decision)> = vec![
        (
            "cache/x/y",
            EntryKind::File,
            None,
            write("/ws/cache/x/y", None),
        ),
        (
            "./cache//x/./y",
            EntryKind::File,
            None,
            write("/ws/cache/x/y", None),
        ),
        (
            "cache",
            EntryKind::Directory,
            None,
            write("/ws/cache", None),
        ),
        (
            "../outside/a/bin",
            EntryKind::Symlink,
            Some("/usr/bin/python"),
            write("/home/u/a/bin", None),
        ),
        (
            "cache/h",
            EntryKind::HardLink,
            Some("../outside/a/f"),
            write("/ws/cache/h", Some((1, "/home/u/a/f"))),
        ),
        ("cache/store/blob", EntryKind::File, None, Decision::Skip),
        (
            "cache/h",
            EntryKind::HardLink,
            Some("cache/store/blob"),
            Decision::Skip,
        ),
        ("..", EntryKind::Directory, None, Decision::Above),
        ("../outside", EntryKind::Directory, None, Decision::Above),
        (
            "../outside",
            EntryKind::File,
            None,
            Decision::Refuse(Refusal::AboveRoot),
        ),
        (
            "/etc/passwd",
            EntryKind::File,
            None,
            Decision::Refuse(Refusal::Absolute),
        ),
        (
            "cache/../../etc",
            EntryKind::File,
            None,
            Decision::Refuse(Refusal::InvalidPath),
        ),
        (
            "cache/a\0b",
            EntryKind::File,
            None,
            Decision::Refuse(Refusal::InvalidPath),
        ),
        (
            "other/x",
            EntryKind::File,
            None,
            Decision::Refuse(Refusal::Outside),
        ),
        (
            "cache/l",
            EntryKind::Symlink,
            Some(""),
            Decision::Refuse(Refusal::SymlinkWithoutTarget),
        ),
        (
            "cache/h",
            EntryKind::HardLink,
            None,
            Decision::Refuse(Refusal::HardLinkWithoutTarget),
        ),
        (
            "cache/h",
            EntryKind::HardLink,
            Some("/etc/passwd"),
            Decision::Refuse(Refusal::HardLinkOutside),
        ),
        (
            "cache/dev",
            EntryKind::Special,
            None,
            Decision::Refuse(Refusal::Special),
        ),
        (
            "cache/s",
            EntryKind::Other(b'S'),
            None,
            Decision::Refuse(Refusal::Unsupported { kind: b'S' }),
        ),
    ];
    for (name, kind, link, want) in rows {
        assert_eq!(decide(name, kind, link), want, "{name} {kind:?} {link:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Independent frames, and frames copied from earlier archives.

/// `ws/deps`: 3,000 files of 8 KB text (24 MB of tar), enough for several chunks.
fn many_files_tree(ws: &Path) {
    for i in 0..3000u64 {
        let dir = ws.join(format!("deps/pkg{:03}", i / 20));
        fs::create_dir_all(&dir).unwrap();
        let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let text: String = (0..8000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Words from a small alphabet: compressible, but not trivially.
                char::from(b"abcdefgh ;\n"[(x % 11) as usize])
            })
            .collect();
        fs::write(dir.join(format!("f{i}.js")), text).unwrap();
    }
}

fn create_framed(ws: &Path, source: Option<&dyn FrameSource>) -> (Vec<u8>, archive::CreateStats) {
    let mut opts = CreateOptions::new(Compression::Zstd);
    opts.frames = source;
    let mut out = Vec::new();
    let stats = create_with(ws, &[PathBuf::from("deps")], &opts, &mut out).unwrap();
    (out, stats)
}

/// The frames of earlier archives, by the digest of what they decompress to.
#[derive(Default)]
struct SeenFrames(std::collections::HashMap<Digest, Vec<u8>>);

impl SeenFrames {
    fn learn(&mut self, bytes: &[u8], records: &[FrameRecord]) {
        for r in records {
            let frame = &bytes[r.offset as usize..(r.offset + r.len) as usize];
            self.0.insert(r.chunk, frame.to_vec());
        }
    }
}

impl FrameSource for SeenFrames {
    fn frame(&self, chunk: &Digest) -> Option<Frame> {
        self.0.get(chunk).map(|bytes| Frame {
            bytes: bytes.clone(),
            digest: *blake3::hash(bytes).as_bytes(),
        })
    }
}

#[test]
fn zstd_archives_are_independent_frames_recorded_where_they_lie() {
    let dir = tempfile::tempdir().unwrap();
    many_files_tree(dir.path());
    let (bytes, stats) = create_framed(dir.path(), None);
    assert!(stats.frames.len() >= 3, "{} frames", stats.frames.len());
    assert_eq!(zstd_frames(&bytes), stats.frames.len());
    assert_eq!(stats.reused_bytes, 0);
    let mut offset = 0;
    let mut tar = Vec::new();
    for r in &stats.frames {
        assert_eq!(r.offset, offset, "frames follow each other");
        let frame = &bytes[r.offset as usize..(r.offset + r.len) as usize];
        assert_eq!(blake3::hash(frame).as_bytes(), &r.frame);
        let chunk = zstd::decode_all(frame).unwrap();
        assert_eq!(blake3::hash(&chunk).as_bytes(), &r.chunk);
        // Chunks end at entry boundaries or at 16 MiB: always whole 512-byte blocks.
        assert_eq!(chunk.len() % 512, 0);
        tar.extend_from_slice(&chunk);
        offset += r.len;
    }
    assert_eq!(offset, bytes.len() as u64);
    assert_eq!(
        tar,
        zstd::decode_all(&bytes[..]).unwrap(),
        "frames are the stream"
    );
    if have("tar") && have("unzstd") {
        let file = dir.path().join("a.tzst");
        fs::write(&file, &bytes).unwrap();
        let out = Command::new("sh")
            .arg("-c")
            .arg("tar --use-compress-program unzstd -tf a.tzst | wc -l")
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success());
        // 3,000 files, 150 package directories and `deps/` itself.
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3151");
    } else {
        eprintln!("skipped: GNU tar listing (tar and unzstd are needed)");
    }
}

#[test]
fn frames_seen_before_are_copied_and_the_archive_is_what_compressing_writes() {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    many_files_tree(&ws);
    let (first, stats) = create_framed(&ws, None);
    let tar_len = zstd::decode_all(&first[..]).unwrap().len() as u64;
    let mut seen = SeenFrames::default();
    seen.learn(&first, &stats.frames);

    // The same tree: every frame copied, the same bytes.
    let (again, again_stats) = create_framed(&ws, Some(&seen));
    assert_eq!(again_stats.reused_bytes, tar_len);
    assert!(again == first, "a copied archive equals the compressed one");

    // One file changed in the middle, one added near the front: only their chunks are
    // compressed, and the archive is byte for byte what compressing everything writes.
    fs::write(ws.join("deps/pkg075/f1500.js"), "changed").unwrap();
    fs::write(ws.join("deps/pkg001/new.js"), "added").unwrap();
    let (fresh, fresh_stats) = create_framed(&ws, None);
    let (copied, copied_stats) = create_framed(&ws, Some(&seen));
    assert!(copied == fresh, "copied frames make the same archive");
    assert_eq!(copied_stats.frames, fresh_stats.frames);
    let fresh_tar = zstd::decode_all(&fresh[..]).unwrap().len() as u64;
    assert!(
        copied_stats.reused_bytes > 0 && copied_stats.reused_bytes < fresh_tar,
        "reused {} of {fresh_tar}",
        copied_stats.reused_bytes
    );
    // Two chunks changed; cut points follow names, so the rest line up again.
    let chunks = copied_stats.frames.len() as u64;
    assert!(
        copied_stats.reused_bytes * chunks >= fresh_tar * (chunks - 3),
        "reused {} of {fresh_tar} in {chunks} chunks",
        copied_stats.reused_bytes
    );
    let dst = tempfile::tempdir().unwrap();
    archive::extract(&mut &copied[..], dst.path(), &[dst.path().join("deps")]).unwrap();
    assert_eq!(
        snapshot(&dst.path().join("deps")),
        snapshot(&ws.join("deps"))
    );
}
