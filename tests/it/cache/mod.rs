//! Integration tests: the native actions/cache. The handlers run with a hand-built step context
//! over a real store (SQLite file, and PostgreSQL when `RUNNER_TEST_POSTGRES_URL` is set), real
//! archives and real files; `runner cache` runs as a process.

mod actions;
mod analyze;
mod cli;
mod engine;
mod integrity;
mod processes;

use crate::support::{PgSchema, TestBackend};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;
use runner::cache::{Cache, CacheOptions, register};
use runner::clock::ManualClock;
use runner::exec::{ActionContext, ActionError, ActionRegistry, JobInfo, LogLevel};
use runner::expr::{Host, StatusFunction, Value};
use runner::store::Store;
use runner::store::blob::BlobStore;

/// 2026-01-01T00:00:00Z; tests move the clock from here.
pub const T0: i64 = 1_767_225_600_000;
pub const DAY: i64 = 24 * 60 * 60 * 1000;
pub const MAIN: &str = "refs/heads/main";
pub const FEATURE: &str = "refs/heads/feature";

/// A store on one backend, a workspace, a fake home, and the cache handlers over them.
pub struct Harness {
    pub cache: Arc<Cache>,
    pub registry: ActionRegistry,
    pub clock: ManualClock,
    pub dir: tempfile::TempDir,
    pub url: String,
    // Dropped last: the store's connections go first.
    _pg: Option<PgSchema>,
}

impl Harness {
    pub fn sqlite() -> Self {
        Self::sqlite_with(CacheOptions::default())
    }

    pub fn sqlite_with(options: CacheOptions) -> Self {
        Self::sqlite_wrapped(options, None)
    }

    /// A SQLite harness whose real blob store is wrapped by `wrap` (fault injection).
    pub fn sqlite_wrapped(options: CacheOptions, wrap: Option<BlobWrap>) -> Self {
        Self::sqlite_blobs(options, wrap.map(Blobs::Wrap))
    }

    /// A SQLite harness whose blobs live in `blobs` (an S3 store, a tiered one).
    pub fn sqlite_over(options: CacheOptions, blobs: Arc<dyn BlobStore>) -> Self {
        Self::sqlite_blobs(options, Some(Blobs::Use(blobs)))
    }

    fn sqlite_blobs(options: CacheOptions, blobs: Option<Blobs>) -> Self {
        Self::build(TestBackend::sqlite("store/index.sqlite"), options, blobs)
    }

    pub fn postgres() -> Option<Self> {
        Self::postgres_with(CacheOptions::default())
    }

    pub fn postgres_with(options: CacheOptions) -> Option<Self> {
        TestBackend::postgres().map(|backend| Self::build(backend, options, None))
    }

    fn build(backend: TestBackend, mut options: CacheOptions, wrap: Option<Blobs>) -> Self {
        let TestBackend { dir, url, pg, .. } = backend;
        for sub in ["store", "ws", "home"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("make dirs");
        }
        options.progress = false;
        let clock = ManualClock::new(T0);
        let cache = Arc::new(open_cache(dir.path(), &url, &clock, options, wrap));
        let mut registry = ActionRegistry::new();
        register(&mut registry, cache.clone());
        Self {
            cache,
            registry,
            clock,
            dir,
            url,
            _pg: pg,
        }
    }

    /// Another handle on the same store, as a second `runner` process would have.
    pub fn reopen(&self) -> Arc<Cache> {
        Arc::new(open_cache(
            self.dir.path(),
            &self.url,
            &self.clock,
            self.cache.options().clone(),
            None,
        ))
    }

    /// The keys of every committed entry, sorted.
    pub fn keys(&self) -> Vec<String> {
        crate::support::committed_keys(self.cache.index())
    }

    /// The file holding the blob of the committed entry `key`.
    pub fn blob_file(&self, key: &str) -> PathBuf {
        let entry = self
            .cache
            .index()
            .list(&Default::default())
            .expect("list")
            .into_iter()
            .find(|e| e.key == key)
            .unwrap_or_else(|| panic!("no entry {key}"));
        let digest = entry.blob_digest.expect("committed");
        runner::store::blob::LocalBlobStore::new(self.store_dir())
            .and_then(|blobs| blobs.path_of(&digest))
            .expect("blob path")
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn workspace(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// A job on `git_ref` whose default branch is main.
    pub fn job(&self, git_ref: &str) -> JobInfo {
        JobInfo {
            workspace: self.workspace(),
            repository: "octo/app".into(),
            git_ref: git_ref.into(),
            base_ref: None,
            default_branch: Some(MAIN.into()),
            run_id: "42".into(),
            runner_os: "Linux".into(),
            home: self.home(),
            temp: self.dir.path().join("tmp"),
        }
    }

    /// Runs the main step of `uses` with `inputs`.
    pub fn main(&self, uses: &str, job: &JobInfo, inputs: &[(&str, &str)]) -> Step {
        self.step(uses, job, inputs, IndexMap::new(), false)
    }

    /// Runs the post step of `uses`, handing it the state the main step saved.
    pub fn post(&self, uses: &str, job: &JobInfo, inputs: &[(&str, &str)], main: &Step) -> Step {
        self.step(uses, job, inputs, main.state.clone(), true)
    }

    fn step(
        &self,
        uses: &str,
        job: &JobInfo,
        inputs: &[(&str, &str)],
        state: IndexMap<String, String>,
        post: bool,
    ) -> Step {
        let handler = self
            .registry
            .get(uses)
            .unwrap_or_else(|| panic!("no handler for {uses}"));
        let inputs: IndexMap<String, String> = inputs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = IndexMap::new();
        let host = NoContexts;
        let mut logs: Vec<(LogLevel, String)> = Vec::new();
        let mut sink = |level: LogLevel, line: &str| logs.push((level, line.to_string()));
        let mut ctx = ActionContext {
            uses,
            inputs: &inputs,
            env: &env,
            job,
            contexts: &host,
            outputs: IndexMap::new(),
            state,
            post_condition: None,
            log: &mut sink,
            progress: None,
        };
        let result = if post {
            handler.post(&mut ctx)
        } else {
            handler.run(&mut ctx)
        };
        let outputs = std::mem::take(&mut ctx.outputs);
        let state = std::mem::take(&mut ctx.state);
        let post_condition = ctx.post_condition.take();
        drop(ctx);
        Step {
            result,
            outputs,
            state,
            post_condition,
            logs,
        }
    }

    /// Number of entries a lookup can still find (not marked broken).
    pub fn live_count(&self) -> usize {
        self.cache
            .index()
            .list(&Default::default())
            .expect("list entries")
            .into_iter()
            .filter(|e| e.broken_at.is_none())
            .count()
    }

    /// Number of committed entries in the store.
    pub fn entry_count(&self) -> usize {
        self.cache
            .index()
            .list(&Default::default())
            .expect("list entries")
            .len()
    }
}

/// Wraps the real blob store of a harness, e.g. to make writes fail like a full disk.
pub type BlobWrap = fn(Arc<dyn BlobStore>) -> Arc<dyn BlobStore>;

/// The blobs of a harness other than its local directory.
enum Blobs {
    /// The local directory, wrapped.
    Wrap(BlobWrap),
    /// This store instead.
    Use(Arc<dyn BlobStore>),
}

fn open_cache(
    dir: &Path,
    url: &str,
    clock: &ManualClock,
    options: CacheOptions,
    blobs: Option<Blobs>,
) -> Cache {
    let mut store = Store::open(&dir.join("store"), Some(url), Arc::new(clock.clone()))
        .unwrap_or_else(|e| panic!("open store {url}: {e}"));
    if let Some(blobs) = blobs {
        let index = runner::store::index::Index::open(url, Arc::new(clock.clone()))
            .unwrap_or_else(|e| panic!("open index {url}: {e}"));
        let blobs = match blobs {
            Blobs::Wrap(wrap) => wrap(store.blobs().clone()),
            Blobs::Use(blobs) => blobs,
        };
        store = Store::new(index, blobs);
    }
    Cache::with_store(store, Arc::new(clock.clone()), options)
}

/// Contexts the cache handlers never read.
struct NoContexts;

impl Host for NoContexts {
    fn context(&self, _name: &str) -> Option<&Value> {
        None
    }
    fn hash_files(&self, _patterns: &[String]) -> Result<String, String> {
        Ok(String::new())
    }
    fn status(&self, _function: StatusFunction) -> bool {
        true
    }
}

/// What one step did.
#[derive(Debug)]
pub struct Step {
    pub result: Result<(), ActionError>,
    pub outputs: IndexMap<String, String>,
    pub state: IndexMap<String, String>,
    pub post_condition: Option<String>,
    pub logs: Vec<(LogLevel, String)>,
}

impl Step {
    /// Whether a line at `level` equals `line`.
    pub fn logged(&self, level: LogLevel, line: &str) -> bool {
        self.logs
            .iter()
            .any(|(l, text)| *l == level && text == line)
    }

    /// Lines at `level`.
    pub fn lines(&self, level: LogLevel) -> Vec<&str> {
        self.logs
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, text)| text.as_str())
            .collect()
    }

    pub fn output(&self, name: &str) -> Option<&str> {
        self.outputs.get(name).map(String::as_str)
    }

    /// Panics with the log unless the step succeeded.
    pub fn ok(&self) -> &Self {
        if let Err(err) = &self.result {
            panic!("step failed: {err}\nlog: {:#?}", self.logs);
        }
        self
    }

    /// Asserts a line was logged, showing the whole log otherwise.
    pub fn expect_line(&self, level: LogLevel, line: &str) -> &Self {
        assert!(
            self.logged(level, line),
            "expected {level:?} line {line:?}\nlog: {:#?}",
            self.logs
        );
        self
    }
}

/// Reads every regular file under `root` as (relative path, bytes), sorted.
pub fn snapshot(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in read {
            let path = entry.expect("dir entry").path();
            let meta = std::fs::symlink_metadata(&path).expect("metadata");
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .expect("under root")
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, std::fs::read(&path).expect("read file")));
            }
        }
    }
    out.sort();
    out
}
