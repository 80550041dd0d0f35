//! Shared test helpers. Keep them here, not copied into area modules.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use diesel::prelude::*;

/// The keys of every committed entry in `index`, sorted.
pub fn committed_keys(index: &runner::store::index::Index) -> Vec<String> {
    let mut keys: Vec<String> = index
        .list(&Default::default())
        .expect("list")
        .into_iter()
        .map(|e| e.key)
        .collect();
    keys.sort();
    keys
}

/// The `runner` binary built for this test run.
pub fn runner_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_runner"))
}

/// The repository root (where `fixtures/` lives).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `files` (relative path → contents) under `root`, creating parent directories.
/// Every file below `dir`, at any depth (none if it cannot be read).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

pub fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (rel, contents) in files {
        let path = root.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create test dir");
        }
        std::fs::write(&path, contents).expect("write test file");
    }
}

/// Copies the directory tree `from` into `to` (created), skipping top-level entries named in
/// `skip`. Symlinks are recreated, not followed.
pub fn copy_dir(from: &Path, to: &Path, skip: &[&str]) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if skip.iter().any(|s| name == *s) {
            continue;
        }
        let target = to.join(&name);
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target, &[])?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path())?, &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The one way a test gets an index backend: a temporary directory, and either a SQLite file in
/// it or a PostgreSQL schema of its own (`None` from [`TestBackend::postgres`] when no server is
/// configured; it prints why). The store-level and cache-level harnesses are layers on it, and
/// [`backend_matrix!`] runs one test body over both.
pub struct TestBackend {
    /// Files of the test: the store, workspaces, homes.
    pub dir: tempfile::TempDir,
    /// The index URL (`sqlite://…` or `postgres://…?options=-csearch_path…`).
    pub url: String,
    /// `"sqlite"` or `"postgres"`, for messages.
    pub name: &'static str,
    /// Dropped by whoever holds it last, after the store's connections.
    pub pg: Option<PgSchema>,
}

impl TestBackend {
    /// A SQLite index at `index_file` inside a new temporary directory.
    pub fn sqlite(index_file: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join(index_file).display());
        Self {
            dir,
            url,
            name: "sqlite",
            pg: None,
        }
    }

    /// A fresh PostgreSQL schema, or `None` (with the printed reason) when none is configured.
    pub fn postgres() -> Option<Self> {
        let pg = PgSchema::create()?;
        Some(Self {
            dir: tempfile::tempdir().expect("temp dir"),
            url: pg.url(),
            name: "postgres",
            pg: Some(pg),
        })
    }
}

/// A PostgreSQL schema that exists for one test and is dropped after it.
pub struct PgSchema {
    admin_url: String,
    name: String,
}

impl PgSchema {
    /// `None` (with the reason printed) when no server is configured.
    pub fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("RUNNER_TEST_POSTGRES_URL") else {
            // Straight to stderr: the harness captures `eprintln!` of passing tests, and a skip
            // must show in `cargo test`'s output, not read as a plain `ok`.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: PostgreSQL variant: RUNNER_TEST_POSTGRES_URL is not set"
            );
            return None;
        };
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let mut conn = diesel::PgConnection::establish(&admin_url)
            .unwrap_or_else(|e| panic!("RUNNER_TEST_POSTGRES_URL is set but unusable: {e}"));
        diesel::sql_query(format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .expect("create test schema");
        Some(Self { admin_url, name })
    }

    /// The admin URL with this schema as the search path.
    pub fn url(&self) -> String {
        let sep = if self.admin_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{sep}options=-csearch_path%3D{}",
            self.admin_url, self.name
        )
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut conn) = diesel::PgConnection::establish(&self.admin_url) {
            let _ = diesel::sql_query(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
                .execute(&mut conn);
        }
    }
}

/// What one `runner` invocation printed and how it exited.
pub struct RunOutput {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error (the log).
    pub stderr: String,
}

/// The `runner` binary with `args` in `dir`, without colour, with `HOME` and the cache inside
/// `dir`, no `.runnerrc` of the developer's, and stdin closed; add env or spawn it as needed.
pub fn runner_command(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(runner_bin());
    cmd.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .env("HOME", dir)
        .env("RUNNER_CACHE_DIR", dir.join(".runner-cache"))
        .stdin(std::process::Stdio::null());
    for name in [
        "RUNNER_CACHE_DB",
        "RUNNER_CACHE_BLOBS",
        "RUNNER_CACHE_TTL_DAYS",
        "RUNNER_CACHE_MAX_SIZE",
        "RUNNER_CACHE_COMPRESSION",
    ] {
        cmd.env_remove(name);
    }
    cmd
}

/// What a finished `runner` process printed and how it exited.
pub fn run_output(out: std::process::Output) -> RunOutput {
    RunOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs [`runner_command`] to the end.
pub fn run_runner(dir: &Path, args: &[&str]) -> RunOutput {
    run_runner_env(dir, args, &[])
}

/// [`run_runner`] with extra environment variables (`RUNNER_CACHE_MAX_SIZE`, ...).
pub fn run_runner_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> RunOutput {
    run_output(
        runner_command(dir, args)
            .envs(env.iter().copied())
            .output()
            .expect("run the runner binary"),
    )
}

/// One HTTP answer, read whole (tests use small bodies or count bytes themselves).
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The body as JSON (`Null` when empty).
    pub fn json(&self) -> serde_json::Value {
        if self.body.is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A real HTTP request over the network stack (ureq); any status is an answer, not an error.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> HttpReply {
    try_http(method, url, headers, body).unwrap_or_else(|e| panic!("{e}"))
}

/// [`http`] without following redirects: the 3xx answer itself (its `Location`, `Set-Cookie`).
pub fn http_no_redirect(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> HttpReply {
    http_with(false, method, url, headers, body).unwrap_or_else(|e| panic!("{e}"))
}

/// [`http`], with a failed connection or a broken-off answer as an `Err` (for servers that may
/// be killed mid-request).
pub fn try_http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpReply, String> {
    http_with(true, method, url, headers, body)
}

fn http_with(
    follow: bool,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<HttpReply, String> {
    use std::io::Read as _;
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true);
    if !follow {
        config = config.max_redirects(0);
    }
    let agent: ureq::Agent = config.build().into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let result = match body {
        Some(bytes) => agent.run(builder.body(bytes.to_vec()).expect("request")),
        None => agent.run(builder.body(()).expect("request")),
    };
    let mut response = result.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .read_to_end(&mut body)
        .map_err(|e| format!("{method} {url}: reading the body: {e}"))?;
    Ok(HttpReply {
        status,
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------------------------
// Archive trees: snapshots and crafted archives.

/// What a restored tree must reproduce for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File {
        mode: u32,
        mtime_ns: i128,
        content: Vec<u8>,
    },
    Dir {
        mode: u32,
        mtime_ns: i128,
    },
    Link {
        target: PathBuf,
    },
}

pub fn mtime_ns(md: &fs::Metadata) -> i128 {
    i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec())
}

/// Every path under `root` (relative), with kind, mode, mtime and content. Symlinks keep their
/// target text; mtimes of directories are included (they are restored last).
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    snap_into(root, root, &mut out);
    out
}

pub fn snap_into(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let md = fs::symlink_metadata(&p).unwrap();
        let node = if md.file_type().is_symlink() {
            Node::Link {
                target: fs::read_link(&p).unwrap(),
            }
        } else if md.is_dir() {
            snap_into(root, &p, out);
            Node::Dir {
                mode: md.mode() & 0o7777,
                mtime_ns: mtime_ns(&md),
            }
        } else {
            Node::File {
                mode: md.mode() & 0o7777,
                mtime_ns: mtime_ns(&md),
                content: fs::read(&p).unwrap(),
            }
        };
        out.insert(rel, node);
    }
}

/// Every `.runner-restore-*` entry under `root` (what a restore made for itself).
pub fn staging_leftovers(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_name()
                .to_string_lossy()
                .starts_with(".runner-restore-")
            {
                found.push(e.path());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    found
}

/// A raw entry for a crafted archive: any name bytes, no validation.
pub struct Raw {
    pub name: String,
    pub kind: tar::EntryType,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

pub fn file(name: &str, data: &str) -> Raw {
    Raw {
        name: name.into(),
        kind: tar::EntryType::Regular,
        link: None,
        data: data.as_bytes().to_vec(),
    }
}

pub fn special(name: &str, kind: tar::EntryType, link: Option<&str>) -> Raw {
    Raw {
        name: name.into(),
        kind,
        link: link.map(str::to_string),
        data: Vec::new(),
    }
}

pub fn craft(entries: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name = [0; 100];
            old.name[..e.name.len()].copy_from_slice(e.name.as_bytes());
            if let Some(l) = &e.link {
                old.linkname = [0; 100];
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(e.kind);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_size(e.data.len() as u64);
        h.set_cksum();
        b.append(&h, &e.data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// The archive `runner::archive::create` makes of `paths` (relative to `ws`).
pub fn create_bytes(
    ws: &Path,
    paths: &[&str],
    compression: runner::archive::Compression,
) -> Vec<u8> {
    let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    let mut out = Vec::new();
    let stats = runner::archive::create(ws, &paths, compression, &mut out).unwrap();
    assert_eq!(stats.compression, Some(compression));
    out
}

/// True when an executable named `tool` is on `PATH`.
pub fn on_path(tool: &str) -> bool {
    let path_var = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path_var).any(|dir| dir.join(tool).is_file())
}

/// Runs `git args` in `dir` with a fixed identity; panics with git's output when it fails.
pub fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `<root>/<owner>/<repo>.git`, a bare repository holding `files` at tag `tag`, as the
/// base of `--actions-url file://<root>`.
pub fn bare_action_repo(root: &Path, owner: &str, repo: &str, tag: &str, files: &[(&str, &str)]) {
    let work = root.join(format!(".work-{owner}-{repo}-{tag}"));
    write_tree(&work, files);
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-qm", "action"]);
    git(&work, &["tag", tag]);
    let bare = root.join(owner).join(format!("{repo}.git"));
    std::fs::create_dir_all(bare.parent().expect("parent")).expect("create owner dir");
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            &bare.display().to_string(),
        ],
    );
}

/// Whether an upload body is arriving at `runner serve`: a part being staged
/// (`<staging>/<upload>/.part-*`) or a Put Blob being written into the store's blob temp dir
/// (`<store>/blobs-v1/tmp/*`).
pub fn upload_in_progress(staging: &Path, store: &Path) -> bool {
    let files = |dir: &Path| std::fs::read_dir(dir).into_iter().flatten().flatten();
    files(staging).any(|upload| {
        files(&upload.path()).any(|f| f.file_name().to_string_lossy().starts_with(".part-"))
    }) || files(&store.join("blobs-v1/tmp")).next().is_some()
}

/// Declares each function as a test run on every index backend, from one body:
/// `backend_matrix!(crate::cache::Harness: f, g)` makes `f::sqlite`, `f::postgres`, `g::sqlite`,
/// ... calling `f(&Harness::sqlite())` and `f(&h)` for `Harness::postgres() -> Option<_>`, which
/// prints why it skips when no PostgreSQL is configured.
#[macro_export]
macro_rules! backend_matrix {
    ($harness:path: $($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn sqlite() {
                    super::$name(&<$harness>::sqlite());
                }
                #[test]
                fn postgres() {
                    if let Some(h) = <$harness>::postgres() {
                        super::$name(&h);
                    }
                }
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// A real browser: headless Chromium driven over WebDriver by chromedriver.

/// Headless Chromium behind a chromedriver this test started, with a WebDriver session and the
/// runtime its async client needs. The driver (and with it the browser) dies on drop.
pub struct Browser {
    pub client: fantoccini::Client,
    pub rt: tokio::runtime::Runtime,
    driver: std::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts one, or says why it cannot (no Chromium or chromedriver on `PATH`).
    pub fn start() -> Result<Self, String> {
        let binary = ["chromium", "chromium-browser", "google-chrome"]
            .into_iter()
            .find(|b| on_path(b))
            .ok_or("no chromium on PATH (apt-get install chromium chromium-driver)")?;
        if !on_path("chromedriver") {
            return Err("no chromedriver on PATH (apt-get install chromium-driver)".into());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("starting chromedriver: {e}"))?;
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--force-device-scale-factor=1", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
                "binary": which(binary),
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        // chromedriver takes a moment to listen; bounded polling.
        let mut driver = driver;
        let mut last = String::new();
        for _ in 0..100 {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            let attempt = rt.block_on(
                fantoccini::ClientBuilder::new(connector)
                    .capabilities(caps.clone())
                    .connect(&url),
            );
            match attempt {
                Ok(client) => {
                    return Ok(Self {
                        client,
                        rt,
                        driver,
                        _profile: profile,
                    });
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = driver.kill();
        let _ = driver.wait();
        Err(format!("chromedriver on {url} gave no session: {last}"))
    }

    /// Runs a browser step to completion.
    pub fn run<T>(&self, step: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(step)
    }

    /// Saves a PNG of the viewport, `height` pixels tall, as `target/ui-screenshots/<name>.png`
    /// (kept as a CI artifact); returns its path.
    pub fn screenshot(&self, name: &str, height: u32) -> PathBuf {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap_or(Path::new("target"))
            .join("ui-screenshots");
        fs::create_dir_all(&dir).expect("screenshot dir");
        let png = self.run(async {
            self.client
                .set_window_size(1280, height)
                .await
                .expect("resize");
            self.client.screenshot().await.expect("screenshot")
        });
        let path = dir.join(format!("{name}.png"));
        fs::write(&path, png).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let client = self.client.clone();
        let _ = self.rt.block_on(client.close());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The full path of `tool` on `PATH`.
fn which(tool: &str) -> String {
    let path_var = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path_var)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| tool.to_string())
}

/// What a [`FaultyBlobStore`] does wrong.
#[derive(Debug, Clone, Default)]
pub struct BlobFaults {
    /// Reads fail (an I/O error) after this many bytes.
    pub cut_reads_after: Option<usize>,
    /// Reads end early (a clean end of stream) after this many bytes.
    pub short_reads_after: Option<usize>,
    /// `finish` fails.
    pub fail_writes: bool,
    /// `finish` waits until [`FaultyBlobStore::release`].
    pub hold_writes: bool,
}

/// A memory blob store that fails on demand, standing in for a remote that breaks.
#[derive(Debug, Clone, Default)]
pub struct FaultyBlobStore {
    /// The blobs that did arrive.
    pub inner: runner::store::blob::MemoryBlobStore,
    faults: std::sync::Arc<(std::sync::Mutex<BlobFaults>, std::sync::Condvar)>,
}

impl FaultyBlobStore {
    /// Changes the faults.
    pub fn set(&self, change: impl FnOnce(&mut BlobFaults)) {
        let (lock, wake) = &*self.faults;
        change(&mut lock.lock().unwrap_or_else(|p| p.into_inner()));
        wake.notify_all();
    }

    /// Lets held writes finish.
    pub fn release(&self) {
        self.set(|f| f.hold_writes = false);
    }

    fn faults(&self) -> BlobFaults {
        self.faults
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

struct FaultyReader {
    inner: Box<dyn std::io::Read + Send>,
    read: usize,
    faults: BlobFaults,
}

impl std::io::Read for FaultyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.faults.cut_reads_after.is_some_and(|n| self.read >= n) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "remote cut the read",
            ));
        }
        if self
            .faults
            .short_reads_after
            .is_some_and(|n| self.read >= n)
        {
            return Ok(0);
        }
        let limit = [self.faults.cut_reads_after, self.faults.short_reads_after]
            .into_iter()
            .flatten()
            .min()
            .map_or(buf.len(), |n| (n - self.read).min(buf.len()));
        let n = self.inner.read(&mut buf[..limit])?;
        self.read += n;
        Ok(n)
    }
}

struct FaultyWriter {
    inner: Box<dyn runner::store::blob::BlobWriter>,
    store: FaultyBlobStore,
}

impl std::io::Write for FaultyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl runner::store::blob::BlobWriter for FaultyWriter {
    fn finish(
        self: Box<Self>,
    ) -> Result<runner::store::blob::BlobInfo, runner::store::blob::BlobError> {
        let (lock, wake) = &*self.store.faults;
        let mut faults = lock.lock().unwrap_or_else(|p| p.into_inner());
        while faults.hold_writes {
            faults = wake.wait(faults).unwrap_or_else(|p| p.into_inner());
        }
        if faults.fail_writes {
            return Err(runner::store::blob::BlobError::Io {
                path: "faulty remote".into(),
                source: std::io::Error::other("the remote refused the upload"),
            });
        }
        drop(faults);
        self.inner.finish()
    }
}

impl runner::store::blob::BlobStore for FaultyBlobStore {
    fn writer(
        &self,
    ) -> Result<Box<dyn runner::store::blob::BlobWriter>, runner::store::blob::BlobError> {
        Ok(Box::new(FaultyWriter {
            inner: self.inner.writer()?,
            store: self.clone(),
        }))
    }
    fn open(
        &self,
        digest: &str,
    ) -> Result<Box<dyn std::io::Read + Send>, runner::store::blob::BlobError> {
        Ok(Box::new(FaultyReader {
            inner: self.inner.open(digest)?,
            read: 0,
            faults: self.faults(),
        }))
    }
    fn open_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn std::io::Read + Send>, runner::store::blob::BlobError> {
        Ok(Box::new(FaultyReader {
            inner: self.inner.open_range(digest, start, len)?,
            read: 0,
            faults: self.faults(),
        }))
    }
    fn stat(
        &self,
        digest: &str,
    ) -> Result<Option<runner::store::blob::BlobStat>, runner::store::blob::BlobError> {
        self.inner.stat(digest)
    }
    fn delete(&self, digest: &str) -> Result<(), runner::store::blob::BlobError> {
        self.inner.delete(digest)
    }
    fn list(&self) -> Result<Vec<runner::store::blob::ListedBlob>, runner::store::blob::BlobError> {
        self.inner.list()
    }
    fn remove_stale_temp(&self, older_than: i64) -> Result<usize, runner::store::blob::BlobError> {
        self.inner.remove_stale_temp(older_than)
    }
    fn flush(&self) -> Result<(), runner::store::blob::BlobError> {
        self.inner.flush()
    }
    fn presigned_get(
        &self,
        digest: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, runner::store::blob::BlobError> {
        self.inner.presigned_get(digest, expires_in)
    }
    fn tier_stats(&self) -> Option<runner::store::blob::TierStats> {
        self.inner.tier_stats()
    }
    // Never takes a file, so every new blob goes through the writer this double wraps.
    fn adopt_file(
        &self,
        _path: &std::path::Path,
    ) -> Result<Option<runner::store::blob::BlobInfo>, runner::store::blob::BlobError> {
        Ok(None)
    }
}

/// What a [`FaultProxy`] does to the requests it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards them.
    Pass,
    /// Answers `500 Internal Server Error` (an S3 `InternalError` body) without forwarding.
    Status500,
    /// Forwards until this many request-body bytes went through in all, then cuts the
    /// connection it is sending on and refuses everything after: a server stopped mid-upload.
    DownAfter(u64),
    /// Closes every connection as soon as a request arrives.
    Down,
    /// Reads the request and never answers.
    Stall,
}

#[derive(Debug)]
struct ProxyState {
    fault: std::sync::Mutex<Fault>,
    requests: std::sync::atomic::AtomicU64,
    body_bytes: std::sync::atomic::AtomicU64,
    stop: std::sync::atomic::AtomicBool,
}

/// An HTTP/1.1 proxy on 127.0.0.1 in front of a real server (moto) that injects [`Fault`]s;
/// every forwarded request gets a connection of its own, so a fault applies from the next
/// request on. Stops when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    addr: std::net::SocketAddr,
    state: std::sync::Arc<ProxyState>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (`http://host:port`), passing everything.
    pub fn start(upstream: &str) -> Self {
        use std::net::{TcpListener, ToSocketAddrs};
        let authority = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let target = authority
            .to_socket_addrs()
            .expect("upstream address")
            .next()
            .expect("an upstream address");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = std::sync::Arc::new(ProxyState {
            fault: std::sync::Mutex::new(Fault::Pass),
            requests: Default::default(),
            body_bytes: Default::default(),
            stop: Default::default(),
        });
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if shared.stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let state = shared.clone();
                std::thread::spawn(move || {
                    let _ = proxy_connection(client, target, &state);
                });
            }
        });
        Self {
            url: format!("http://{addr}"),
            addr,
            state,
        }
    }

    /// Changes what happens to the next requests (a `DownAfter` counts from now).
    pub fn set(&self, fault: Fault) {
        let mut current = self.state.fault.lock().unwrap_or_else(|p| p.into_inner());
        self.state
            .body_bytes
            .store(0, std::sync::atomic::Ordering::SeqCst);
        *current = fault;
    }

    /// The fault in effect (a `DownAfter` turns into `Down` once it fired).
    pub fn fault(&self) -> Fault {
        *self.state.fault.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.state
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.addr);
    }
}

/// Reads an HTTP head (through the blank line); `None` at a clean end of stream.
fn read_head(reader: &mut impl std::io::BufRead) -> std::io::Result<Option<Vec<String>>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            return Ok(Some(lines));
        }
        lines.push(line);
    }
}

/// The head with its `Connection` header replaced by `Connection: close`.
fn closing_head(lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for line in lines {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn proxy_connection(
    client: std::net::TcpStream,
    target: std::net::SocketAddr,
    state: &ProxyState,
) -> std::io::Result<()> {
    use std::io::{BufReader, Read, Write};
    use std::sync::atomic::Ordering::SeqCst;
    let mut to_client = client.try_clone()?;
    let mut from_client = BufReader::new(client);
    loop {
        let Some(head) = read_head(&mut from_client)? else {
            return Ok(());
        };
        state.requests.fetch_add(1, SeqCst);
        let length: u64 = head
            .iter()
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or(0);
        let fault = *state.fault.lock().unwrap_or_else(|p| p.into_inner());
        match fault {
            Fault::Down => return Ok(()),
            Fault::Stall => {
                for _ in 0..600 {
                    if state.stop.load(SeqCst) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                return Ok(());
            }
            Fault::Status500 => {
                std::io::copy(&mut (&mut from_client).take(length), &mut std::io::sink())?;
                let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>InternalError</Code><Message>injected by the test proxy</Message></Error>";
                write!(
                    to_client,
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )?;
                to_client.flush()?;
            }
            Fault::Pass | Fault::DownAfter(_) => {
                let mut upstream = std::net::TcpStream::connect(target)?;
                upstream.write_all(&closing_head(&head))?;
                let mut left = length;
                let mut buf = vec![0u8; 64 * 1024];
                while left > 0 {
                    let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    let n = from_client.read(&mut buf[..want])?;
                    if n == 0 {
                        return Ok(());
                    }
                    let total = state.body_bytes.fetch_add(n as u64, SeqCst) + n as u64;
                    if let Fault::DownAfter(limit) = fault
                        && total > limit
                    {
                        *state.fault.lock().unwrap_or_else(|p| p.into_inner()) = Fault::Down;
                        // Both connections drop here, mid-body.
                        return Ok(());
                    }
                    upstream.write_all(&buf[..n])?;
                    left -= n as u64;
                }
                let mut from_upstream = BufReader::new(upstream);
                let Some(response) = read_head(&mut from_upstream)? else {
                    return Ok(());
                };
                to_client.write_all(&closing_head(&response))?;
                std::io::copy(&mut from_upstream, &mut to_client)?;
                to_client.flush()?;
                return Ok(());
            }
        }
    }
}

/// Every object key in `bucket` under `prefix`, listed straight from the S3 server
/// `AWS_ENDPOINT_URL` names (not through any store).
#[cfg(feature = "s3")]
pub fn s3_objects(bucket: &str, prefix: &str) -> Vec<String> {
    use futures_util::StreamExt;
    use object_store::ObjectStore;
    let client = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_allow_http(true)
        .build()
        .expect("s3 client");
    let prefix = object_store::path::Path::from(prefix);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let mut out = Vec::new();
            let mut list = client.list(Some(&prefix));
            while let Some(meta) = list.next().await {
                out.push(meta.expect("list").location.to_string());
            }
            out
        })
}

/// Bytes that do not compress or repeat, `len` long.
pub fn blob_noise(len: usize, seed: u8) -> Vec<u8> {
    use sha2::Digest;
    let mut out = Vec::with_capacity(len + 32);
    let mut block = sha2::Sha256::digest([seed]);
    while out.len() < len {
        out.extend_from_slice(&block);
        block = sha2::Sha256::digest(block);
    }
    out.truncate(len);
    out
}

/// Writes `bytes` as one blob, in uneven chunks as an archiver streams.
pub fn write_blob(
    store: &dyn runner::store::blob::BlobStore,
    bytes: &[u8],
) -> runner::store::blob::BlobInfo {
    use std::io::Write;
    let mut w = store.writer().expect("writer");
    for chunk in bytes.chunks(64 * 1024 + 7) {
        w.write_all(chunk).expect("write");
    }
    w.finish().expect("finish")
}

/// The digests `store.list()` names, in its order.
pub fn blob_digests(store: &dyn runner::store::blob::BlobStore) -> Vec<String> {
    store
        .list()
        .expect("list")
        .into_iter()
        .map(|b| b.digest)
        .collect()
}

/// A blob's bytes, read to the end (where a verified store checks them).
pub fn read_blob(
    store: &dyn runner::store::blob::BlobStore,
    digest: &str,
) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    store.open(digest).expect("open").read_to_end(&mut out)?;
    Ok(out)
}
