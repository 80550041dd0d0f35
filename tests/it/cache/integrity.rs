//! What a restore or save may never do, whatever the paths or the archive: archive the store,
//! write into it, cache `/` or `/proc`, leave a key blocked by an entry nobody can restore,
//! or lose `~/...` caches when the checkout moves.

use std::io::Write as _;
use std::process::{Command, Stdio};

use runner::exec::LogLevel::{Info, Warning};

use super::{Harness, MAIN, snapshot};
use crate::support::{runner_bin, write_tree};

const CACHE: &str = "actions/cache@v4";
const RESTORE: &str = "actions/cache/restore@v4";
const SAVE: &str = "actions/cache/save@v4";

/// The names inside an entry's archive, read back with GNU tar (the format users rely on).
fn archive_names(h: &Harness, key: &str) -> Vec<String> {
    let blob = h.blob_file(key);
    let out = Command::new("tar")
        .args(["--use-compress-program", "zstd -d", "-tf"])
        .arg(&blob)
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// `path:` naming a directory that holds the store: the store is left out of the archive (the
/// log says so) and a restore of it writes nothing into the store, so the index keeps every
/// entry saved since.
fn store_inside_a_declared_path(h: &Harness) {
    let job = h.job(MAIN);
    write_tree(&h.dir.path().join("data"), &[("a.txt", "a")]);
    let declared = h.dir.path().display().to_string();
    // Two entries first, so the store has blobs and an index worth archiving.
    write_tree(&h.workspace(), &[("other/x", "x")]);
    h.main(SAVE, &job, &[("path", "other"), ("key", "other")])
        .ok();
    let step = h.main(SAVE, &job, &[("path", &declared), ("key", "all")]);
    step.ok().expect_line(Info, "Cache saved with key: all");
    assert!(
        step.lines(Info)
            .iter()
            .any(|l| l.starts_with("Not archiving ") && l.contains("it is the cache store")),
        "{:?}",
        step.logs
    );
    let names = archive_names(h, "all");
    assert!(names.iter().any(|n| n.ends_with("data/a.txt")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains("store/")),
        "the store was archived: {names:?}"
    );
    h.main(SAVE, &job, &[("path", "other"), ("key", "later")])
        .ok();
    let before = h.keys();
    assert_eq!(before, ["all", "later", "other"]);

    std::fs::remove_dir_all(h.dir.path().join("data")).expect("remove data");
    let step = h.main(RESTORE, &job, &[("path", &declared), ("key", "all")]);
    step.ok().expect_line(Info, "Cache restored successfully");
    assert_eq!(
        std::fs::read_to_string(h.dir.path().join("data/a.txt")).expect("restored"),
        "a"
    );
    assert_eq!(
        h.reopen()
            .index()
            .list(&Default::default())
            .expect("list")
            .len(),
        3
    );
    assert_eq!(h.keys(), before);
}

/// `/` and the kernel's trees are refused by name, on save and on restore, and a refused save
/// is a warning, not a failed step.
fn root_and_proc_are_refused(h: &Harness) {
    let job = h.job(MAIN);
    for path in ["/", "/proc/self", "/dev"] {
        let step = h.main(SAVE, &job, &[("path", path), ("key", "k")]);
        step.ok();
        assert!(
            step.lines(Warning)
                .iter()
                .any(|l| l.contains(&format!("refusing to cache '{path}'"))),
            "{path}: {:?}",
            step.logs
        );
    }
    assert!(h.keys().is_empty());
}

/// A `~/...` cache saved from one checkout restores into the home of another checkout at a
/// different depth, and the key keeps working (no "refused archive entry '../home/...'").
fn home_caches_follow_the_checkout(h: &Harness) {
    let job = h.job(MAIN);
    write_tree(&h.home(), &[(".npm/_cacache/index", "i"), (".npm/x", "x")]);
    let before = snapshot(&h.home().join(".npm"));
    h.main(SAVE, &job, &[("path", "~/.npm"), ("key", "npm")])
        .ok()
        .expect_line(Info, "Cache saved with key: npm");

    let mut moved = job.clone();
    moved.workspace = h.dir.path().join("deeper/clone/of/ws");
    moved.home = h.dir.path().join("home2");
    std::fs::create_dir_all(&moved.workspace).expect("make ws");
    std::fs::create_dir_all(&moved.home).expect("make home");
    let step = h.main(CACHE, &moved, &[("path", "~/.npm"), ("key", "npm")]);
    step.ok().expect_line(Info, "Cache restored successfully");
    assert_eq!(step.output("cache-hit"), Some("true"), "{:?}", step.logs);
    assert_eq!(snapshot(&moved.home.join(".npm")), before);
    assert!(!h.dir.path().join("home/.npm/x").exists() || before.len() == 2);
    // Nothing landed where the old relative name would have pointed from the new workspace.
    assert!(!h.dir.path().join("deeper/home").exists());
}

/// An entry whose blob is corrupt is a miss with a warning that names the key and the blob;
/// it is marked broken, and the post-job save of the same key replaces it, so the next run hits.
fn broken_entry_is_replaced_by_the_next_save(h: &Harness) {
    let job = h.job(MAIN);
    write_tree(&h.workspace(), &[("deps/a", "1")]);
    h.main(SAVE, &job, &[("path", "deps"), ("key", "k")]).ok();
    let blob = h.blob_file("k");
    let digest = blob
        .file_name()
        .and_then(|n| n.to_str())
        .expect("digest name")
        .to_string();
    let mut bytes = std::fs::read(&blob).expect("read blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, &bytes).expect("corrupt blob");
    std::fs::remove_dir_all(h.workspace().join("deps")).expect("remove");

    let step = h.main(CACHE, &job, &[("path", "deps"), ("key", "k")]);
    step.ok();
    let warning = step
        .lines(Warning)
        .into_iter()
        .find(|w| w.starts_with("Failed to restore: "))
        .unwrap_or_else(|| panic!("no warning: {:?}", step.logs))
        .to_string();
    assert!(
        warning.contains("'k'") && warning.contains(&digest),
        "{warning}"
    );
    assert_eq!(step.output("cache-hit"), None);
    assert!(!h.workspace().join("deps").exists(), "half-restored tree");

    write_tree(&h.workspace(), &[("deps/a", "2")]);
    h.post(CACHE, &job, &[("path", "deps"), ("key", "k")], &step)
        .ok()
        .expect_line(Info, "Cache saved with key: k");
    std::fs::remove_dir_all(h.workspace().join("deps")).expect("remove");
    let step = h.main(CACHE, &job, &[("path", "deps"), ("key", "k")]);
    step.ok().expect_line(Info, "Cache restored successfully");
    assert_eq!(
        std::fs::read_to_string(h.workspace().join("deps/a")).expect("read"),
        "2"
    );
}

/// An entry the safety policy refuses (a crafted archive with an absolute name) is marked
/// broken like a corrupt one, and the key works again after the next save.
fn refused_entry_is_replaced_by_the_next_save(h: &Harness) {
    let job = h.job(MAIN);
    write_tree(&h.workspace(), &[("deps/a", "1")]);
    h.main(SAVE, &job, &[("path", "deps"), ("key", "k")]).ok();
    // Replace the entry's bytes by a hostile archive under the same digest name is not
    // possible (blobs are verified), so write a second, hostile entry through the index.
    let index = h.cache.index();
    let entry = index
        .list(&Default::default())
        .expect("list")
        .into_iter()
        .find(|e| e.key == "k")
        .expect("entry");
    let raw = crate::support::craft(&[crate::support::file("../../outside.txt", "evil")]);
    let hostile = zstd::encode_all(&raw[..], 3).expect("zstd");
    let blobs = h.cache.store().blobs();
    let mut writer = blobs.writer().expect("writer");
    writer.write_all(&hostile).expect("write");
    let info = writer.finish().expect("finish");
    assert!(index.delete(&entry.id).expect("delete").is_some());
    let new = runner::store::index::NewEntry {
        repository: entry.repository.clone(),
        scope: entry.scope.clone(),
        key: entry.key.clone(),
        version: entry.version.clone(),
        paths: entry.paths.clone(),
        roots: None,
        compression: entry.compression.clone(),
        created_by_run: None,
    };
    let runner::store::index::Reservation::Reserved(id) = index.reserve(&new).expect("reserve")
    else {
        panic!("not reserved");
    };
    index.commit(&id, &info).expect("commit");
    std::fs::remove_dir_all(h.workspace().join("deps")).expect("remove");

    let step = h.main(CACHE, &job, &[("path", "deps"), ("key", "k")]);
    step.ok();
    assert!(
        step.lines(Warning)
            .iter()
            .any(|w| w.contains("refused archive entry")),
        "{:?}",
        step.logs
    );
    assert!(!h.dir.path().join("outside.txt").exists());
    write_tree(&h.workspace(), &[("deps/a", "3")]);
    h.post(CACHE, &job, &[("path", "deps"), ("key", "k")], &step)
        .ok()
        .expect_line(Info, "Cache saved with key: k");
    std::fs::remove_dir_all(h.workspace().join("deps")).expect("remove");
    h.main(CACHE, &job, &[("path", "deps"), ("key", "k")])
        .ok()
        .expect_line(Info, "Cache restored successfully");
    assert_eq!(
        std::fs::read_to_string(h.workspace().join("deps/a")).expect("read"),
        "3"
    );
}

crate::backend_matrix!(crate::cache::Harness:
    store_inside_a_declared_path,
    root_and_proc_are_refused,
    home_caches_follow_the_checkout,
    broken_entry_is_replaced_by_the_next_save,
    refused_entry_is_replaced_by_the_next_save,
);

const SLOW_SAVE: &str = r#"on: push
jobs:
  save:
    runs-on: ubuntu-latest
    steps:
      - run: mkdir -p big && for i in 1 2 3 4 5 6; do head -c 32000000 /dev/urandom > big/f$i; done
      - uses: actions/cache/save@v4
        with: {path: big, key: big}
"#;

/// SIGTERM (CI cancellation) while a save is writing: the process exits, no reservation and no
/// temporary blob remain, and the next save of the key succeeds at once.
#[test]
fn sigterm_aborts_a_save_cleanly() {
    let h = Harness::sqlite();
    write_tree(&h.workspace(), &[("workflow.yml", SLOW_SAVE)]);
    let run = |wait_for_partial: bool| {
        let child = Command::new(runner_bin())
            .args([
                "exec",
                "workflow.yml",
                "--repository",
                "octo/app",
                "--ref",
                MAIN,
            ])
            .current_dir(h.workspace())
            .env("HOME", h.home())
            .env("RUNNER_CACHE_DIR", h.store_dir())
            .env("RUNNER_CACHE_DB", &h.url)
            .env("NO_COLOR", "1")
            // gzip keeps the save busy for seconds, so the signal lands while it writes.
            .env("RUNNER_CACHE_COMPRESSION", "gzip")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runner exec");
        if wait_for_partial {
            let tmp = h.store_dir().join("blobs-v1/tmp");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let writing = std::fs::read_dir(&tmp)
                    .map(|d| d.flatten().any(|e| e.metadata().is_ok_and(|m| m.len() > 0)))
                    .unwrap_or(false);
                if writing {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the save never started"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        child.wait_with_output().expect("wait")
    };
    let out = run(true);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "a cancelled run does not succeed:\n{log}"
    );
    assert!(!log.contains("Cache saved with key: big"), "{log}");
    let tmp = h.store_dir().join("blobs-v1/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).expect("tmp").flatten().collect();
    assert!(left.is_empty(), "temporary blobs left: {left:?}");
    let rows = h.reopen().index().list(&Default::default()).expect("list");
    assert!(rows.is_empty(), "{rows:?}");

    let out = run(false);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert!(log.contains("Cache saved with key: big"), "{log}");
}
