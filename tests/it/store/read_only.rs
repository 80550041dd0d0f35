//! A store that cannot be written (a read-only mount, a full disk) still restores intact
//! entries, says once that it is read-only, and names the path when a write fails. Tests run as
//! root, where permission bits do not stop writes, so the store is mounted read-only (or on a
//! full tmpfs) for real; without the right to mount, the tests skip and say why.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use runner::clock::ManualClock;
use runner::store::Store;
use runner::store::index::{LookupQuery, NewEvent, Reservation};

use super::{Spec, T0};

const BYTES: &[u8] = b"archive bytes of an intact entry";

/// A mount that is undone on drop.
struct Mount {
    at: PathBuf,
}

impl Mount {
    fn run(args: &[&str], at: &Path) -> Option<Self> {
        std::fs::create_dir_all(at).expect("mount point");
        match Command::new("mount").args(args).arg(at).output() {
            Ok(out) if out.status.success() => Some(Self {
                at: at.to_path_buf(),
            }),
            Ok(out) => {
                eprintln!(
                    "skipped: mount {args:?} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(err) => {
                eprintln!("skipped: cannot run mount: {err}");
                None
            }
        }
    }

    /// `from` again at `at`, read-only.
    fn read_only_bind(from: &Path, at: &Path) -> Option<Self> {
        let from = from.to_str().expect("utf-8 path");
        let mount = Self::run(&["--bind", from], at)?;
        let remounted = Command::new("mount")
            .args(["-o", "remount,bind,ro"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !remounted || std::fs::write(at.join("probe"), b"x").is_ok() {
            eprintln!("skipped: could not make the bind mount read-only");
            return None;
        }
        Some(mount)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

/// Creates a store in `dir` holding one committed entry, and closes it.
fn store_with_one_entry(dir: &Path) {
    let store = Store::open(dir, None, Arc::new(ManualClock::new(T0))).expect("open store");
    let Reservation::Reserved(id) = store
        .index()
        .reserve(&Spec::new("refs/heads/main", "intact").new_entry())
        .expect("reserve")
    else {
        panic!("refused");
    };
    let mut writer = store.blobs().writer().expect("writer");
    writer.write_all(BYTES).expect("write");
    store.commit_blob(&id, writer).expect("commit");
}

/// Looks the entry up and reads it back through `store`.
fn restore(store: &Store) {
    let hit = store
        .index()
        .lookup(&LookupQuery {
            repository: "octo/repo".into(),
            scopes: vec!["refs/heads/main".into()],
            keys: vec!["intact".into()],
            version: "v1".into(),
        })
        .expect("lookup")
        .expect("the entry is found");
    let mut bytes = Vec::new();
    store
        .open_entry(&hit.entry)
        .expect("open blob")
        .read_to_end(&mut bytes)
        .expect("blob verifies");
    assert_eq!(bytes, BYTES);
    store
        .index()
        .record_event(&NewEvent {
            repository: "octo/repo".into(),
            scope: "refs/heads/main".into(),
            kind: runner::store::index::EventKind::HitExact,
            key: "intact".into(),
            matched_key: Some("intact".into()),
            bytes: None,
            duration_ms: None,
        })
        .ok();
}

#[test]
fn a_read_only_store_restores_and_names_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("store");
    store_with_one_entry(&src);
    let at = dir.path().join("ro");
    let Some(_mount) = Mount::read_only_bind(&src, &at) else {
        return;
    };
    let store =
        Store::open(&at, None, Arc::new(ManualClock::new(T0))).expect("a read-only store opens");
    let warning = store.read_only().expect("the store says it is read-only");
    assert!(warning.contains(&at.display().to_string()), "{warning}");
    restore(&store);
    restore(&store);

    // Writes fail, naming what could not be written.
    let err = store
        .index()
        .reserve(&Spec::new("refs/heads/main", "new").new_entry())
        .expect_err("reserve on a read-only index");
    let index_path = at.join("index.sqlite").display().to_string();
    assert!(err.to_string().contains(&index_path), "{err}");
    let err = store
        .blobs()
        .writer()
        .err()
        .expect("writer on a read-only store");
    assert!(err.to_string().contains(&at.display().to_string()), "{err}");
    drop(store);
}

#[test]
fn a_full_store_restores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = dir.path().join("full");
    let Some(_mount) = Mount::run(&["-t", "tmpfs", "-o", "size=2m", "tmpfs"], &at) else {
        return;
    };
    store_with_one_entry(&at);
    let mut filler = std::fs::File::create(at.join("filler")).expect("filler");
    let chunk = vec![0u8; 64 * 1024];
    while filler
        .write_all(&chunk)
        .and_then(|()| filler.sync_all())
        .is_ok()
    {}
    drop(filler);

    let store = Store::open(&at, None, Arc::new(ManualClock::new(T0))).expect("a full store opens");
    if let Some(warning) = store.read_only() {
        assert!(warning.contains(&at.display().to_string()), "{warning}");
    }
    restore(&store);
    drop(store);
}
