//! The `actions/cache`, `actions/cache/restore` and `actions/cache/save` step handlers: the
//! action's `restoreImpl` / `saveImpl` over [`Cache`].

use std::sync::{Arc, OnceLock};

use super::inputs::{CacheInputs, names, required_message};
use super::{
    Cache, CacheError, Location, Log, RestoreOutcome, RestoreRequest, SaveOutcome, SaveRequest,
    Scope, is_exact_match, key,
};
use crate::exec::{ActionContext, ActionError, ActionHandler, ActionRegistry, LogLevel};
use crate::store::index::{EventKind, NewEvent};

/// State names the action keeps between its main and post steps.
pub mod state {
    /// The primary key evaluated in the main step.
    pub const CACHE_KEY: &str = "CACHE_KEY";
    /// The key of the entry restored, if any.
    pub const CACHE_RESULT: &str = "CACHE_RESULT";
    /// When the restore missed (the engine's clock, epoch ms): the post-step save reports how
    /// long the job's steps took since, for `runner cache analyze`.
    pub const CACHE_MISSED_AT: &str = "CACHE_MISSED_AT";
}

/// Output names.
pub mod outputs {
    /// `true` on an exact primary-key hit, `false` on a partial hit, unset on a miss.
    pub const CACHE_HIT: &str = "cache-hit";
    /// The primary key (restore action).
    pub const CACHE_PRIMARY_KEY: &str = "cache-primary-key";
    /// The key of the entry restored (restore action).
    pub const CACHE_MATCHED_KEY: &str = "cache-matched-key";
}

const SAVE_ALWAYS_DEPRECATION: &str = "Input 'save-always' has been deprecated with message: save-always does not work as intended and will be removed in a future release.\nA separate `actions/cache/restore` step should be used instead.\nSee https://github.com/actions/cache/tree/main/save#always-save-cache for more details.";

/// The cache the handlers use. A lazy handle opens the store on first use, so a workflow
/// without cache steps never touches it, and a store that cannot be opened only turns cache
/// steps into warnings (as an unreachable cache service does on GitHub).
pub struct CacheHandle {
    cell: OnceLock<Result<Arc<dyn CacheEngine>, String>>,
    open: Option<Box<OpenEngine>>,
    /// Said once, by the first cache step: which backend this is and why.
    announce: std::sync::Mutex<Option<(LogLevel, String)>>,
}

/// Opens the engine a lazy [`CacheHandle`] hands out.
type OpenEngine = dyn Fn() -> Result<Arc<dyn CacheEngine>, CacheError> + Send + Sync;

impl std::fmt::Debug for CacheHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheHandle")
            .field("opened", &self.cell.get().is_some())
            .finish()
    }
}

impl CacheHandle {
    /// A handle on an open cache (the local store, or a [`super::RemoteCache`]).
    pub fn ready(engine: Arc<dyn CacheEngine>) -> Self {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(engine));
        Self {
            cell,
            open: None,
            announce: std::sync::Mutex::new(None),
        }
    }

    /// A handle that opens the local store with `open` the first time a cache step runs.
    pub fn lazy(open: impl Fn() -> Result<Cache, CacheError> + Send + Sync + 'static) -> Self {
        Self::lazy_engine(move || open().map(|cache| Arc::new(cache) as Arc<dyn CacheEngine>))
    }

    /// A handle that calls `open` the first time a cache step runs.
    pub fn lazy_engine(
        open: impl Fn() -> Result<Arc<dyn CacheEngine>, CacheError> + Send + Sync + 'static,
    ) -> Self {
        Self {
            cell: OnceLock::new(),
            open: Some(Box::new(open)),
            announce: std::sync::Mutex::new(None),
        }
    }

    /// Has the first cache step log `line` at `level` (which backend runs the cache steps,
    /// and why).
    pub fn announce(self, level: LogLevel, line: impl Into<String>) -> Self {
        if let Ok(mut slot) = self.announce.lock() {
            *slot = Some((level, line.into()));
        }
        self
    }

    /// The cache, or why it could not be opened.
    pub fn get(&self) -> Result<&Arc<dyn CacheEngine>, &str> {
        self.cell
            .get_or_init(|| match &self.open {
                Some(open) => open().map_err(|err| format!("cannot open the cache store: {err}")),
                None => Err("no cache store".to_string()),
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// [`CacheHandle::get`], logging the announcement the first time.
    fn get_logged(&self, ctx: &mut ActionContext<'_>) -> Result<&Arc<dyn CacheEngine>, &str> {
        let line = self.announce.lock().ok().and_then(|mut slot| slot.take());
        if let Some((level, line)) = line {
            ctx.log(level, &line);
        }
        self.get()
    }
}

/// What the cache steps run over: the local store ([`Cache`]) or a cache server
/// ([`super::RemoteCache`]). Both give the same messages and outcomes.
pub trait CacheEngine: Send + Sync {
    /// `restoreCache`: `Err` only for validation errors.
    fn restore(&self, request: &RestoreRequest, log: Log<'_>)
    -> Result<RestoreOutcome, CacheError>;
    /// `saveCache`: every `Err` is a warning.
    fn save(&self, request: &SaveRequest, log: Log<'_>) -> Result<SaveOutcome, CacheError>;
    /// Records a metrics event where the engine keeps them (a server records its own).
    fn record(&self, event: NewEvent, log: Log<'_>);
    /// The engine's clock, when it records events here (so a miss can be timed against the
    /// save that follows it).
    fn now_millis(&self) -> Option<crate::clock::EpochMillis> {
        None
    }
    /// Waits for uploads still under way after their save returned (a local tier's background
    /// uploads); each that failed is a warning, and its entry is withdrawn.
    fn flush(&self, log: Log<'_>);
    /// How many such uploads are under way.
    fn pending_uploads(&self) -> u64;
}

impl CacheEngine for Cache {
    fn restore(
        &self,
        request: &RestoreRequest,
        log: Log<'_>,
    ) -> Result<RestoreOutcome, CacheError> {
        Cache::restore(self, request, log)
    }
    fn save(&self, request: &SaveRequest, log: Log<'_>) -> Result<SaveOutcome, CacheError> {
        Cache::save(self, request, log)
    }
    fn record(&self, event: NewEvent, log: Log<'_>) {
        Cache::record(self, event, log);
    }
    fn now_millis(&self) -> Option<crate::clock::EpochMillis> {
        Some(Cache::now_millis(self))
    }
    fn flush(&self, log: Log<'_>) {
        if let Err(err) = self.store().flush() {
            log(
                LogLevel::Warning,
                &format!("Failed to save: {}", crate::error::chain(&err)),
            );
        }
    }
    fn pending_uploads(&self) -> u64 {
        self.store()
            .blobs()
            .tier_stats()
            .map_or(0, |stats| stats.uploads_pending)
    }
}

#[cfg(feature = "remote")]
impl CacheEngine for super::RemoteCache {
    fn restore(
        &self,
        request: &RestoreRequest,
        log: Log<'_>,
    ) -> Result<RestoreOutcome, CacheError> {
        super::RemoteCache::restore(self, request, log)
    }
    fn save(&self, request: &SaveRequest, log: Log<'_>) -> Result<SaveOutcome, CacheError> {
        super::RemoteCache::save(self, request, log)
    }
    fn record(&self, _event: NewEvent, _log: Log<'_>) {}
    /// Every upload is complete when its save returns.
    fn flush(&self, _log: Log<'_>) {}
    fn pending_uploads(&self) -> u64 {
        0
    }
}

/// Where the action keeps its keys: the `actions/cache` state, or the restore action's outputs
/// (the action's `StateProvider` / `NullStateProvider`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    State,
    Outputs,
}

impl Keep {
    fn primary_key(self, ctx: &mut ActionContext<'_>, key: &str) {
        match self {
            Keep::State => ctx.save_state(state::CACHE_KEY, key),
            Keep::Outputs => ctx.set_output(outputs::CACHE_PRIMARY_KEY, key),
        }
    }
    fn matched_key(self, ctx: &mut ActionContext<'_>, key: &str) {
        match self {
            Keep::State => ctx.save_state(state::CACHE_RESULT, key),
            Keep::Outputs => ctx.set_output(outputs::CACHE_MATCHED_KEY, key),
        }
    }
}

fn scope_of(ctx: &ActionContext<'_>) -> Scope {
    Scope {
        repository: ctx.job.repository.clone(),
        git_ref: ctx.job.git_ref.clone(),
        base_ref: ctx.job.base_ref.clone(),
        default_branch: ctx.job.default_branch.clone(),
    }
}

fn location_of(ctx: &ActionContext<'_>) -> Location {
    Location {
        workspace: ctx.job.workspace.clone(),
        home: ctx.job.home.clone(),
        windows: ctx.job.runner_os.eq_ignore_ascii_case("windows"),
    }
}

/// The action's event check: caches need a ref to scope to.
fn event_is_valid(ctx: &mut ActionContext<'_>) -> bool {
    if !ctx.job.git_ref.is_empty() {
        return true;
    }
    let event = ctx
        .env
        .get("GITHUB_EVENT_NAME")
        .cloned()
        .unwrap_or_default();
    ctx.warning(&format!(
        "Event Validation Error: The event type {event} is not supported because it's not tied to a branch or tag ref."
    ));
    false
}

/// `restoreImpl`: validates, restores, and sets outputs and state.
fn restore_impl(
    handle: &CacheHandle,
    ctx: &mut ActionContext<'_>,
    keep: Keep,
    inputs: &CacheInputs,
) -> Result<(), ActionError> {
    if !event_is_valid(ctx) {
        return Ok(());
    }
    if inputs.key.is_empty() {
        return Err(ActionError::new(required_message(names::KEY)));
    }
    keep.primary_key(ctx, &inputs.key);
    if inputs.paths.is_empty() {
        return Err(ActionError::new(required_message(names::PATH)));
    }
    let request = RestoreRequest {
        scope: scope_of(ctx),
        location: location_of(ctx),
        paths: inputs.paths.clone(),
        primary_key: inputs.key.clone(),
        restore_keys: inputs.restore_keys.clone(),
        enable_cross_os_archive: inputs.enable_cross_os_archive,
        lookup_only: inputs.lookup_only,
        progress: ctx.progress.clone().into(),
    };
    // Validation fails the step even when the store is unavailable.
    key::validate_restore_keys(&request.primary_key, &request.restore_keys)
        .map_err(|err| ActionError::new(err.to_string()))?;
    let outcome = match handle.get_logged(ctx) {
        Ok(cache) => {
            let outcome = cache
                .restore(&request, ctx.log)
                .map_err(|err| ActionError::new(err.to_string()))?;
            if let (RestoreOutcome::Miss, Keep::State, Some(now)) =
                (&outcome, keep, cache.now_millis())
            {
                ctx.save_state(state::CACHE_MISSED_AT, now.to_string());
            }
            outcome
        }
        Err(reason) => {
            ctx.warning(&format!("Failed to restore: {reason}"));
            RestoreOutcome::Miss
        }
    };
    match outcome {
        RestoreOutcome::Miss => {
            // `cache-hit` stays unset on a miss, as the action leaves it (actions/cache#1466).
            if inputs.fail_on_cache_miss {
                return Err(ActionError::new(format!(
                    "Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: {}",
                    inputs.key
                )));
            }
            let mut keys = vec![inputs.key.clone()];
            keys.extend(inputs.restore_keys.iter().cloned());
            ctx.info(&format!(
                "Cache not found for input keys: {}",
                keys.join(", ")
            ));
        }
        RestoreOutcome::Hit { matched_key, .. } => {
            keep.matched_key(ctx, &matched_key);
            let exact = is_exact_match(&inputs.key, Some(&matched_key));
            ctx.set_output(outputs::CACHE_HIT, exact.to_string());
            if inputs.lookup_only {
                ctx.info(&format!(
                    "Cache found and can be restored from key: {matched_key}"
                ));
            } else {
                ctx.info(&format!("Cache restored from key: {matched_key}"));
            }
        }
    }
    Ok(())
}

/// Whether `saveImpl` reached `saveCache` and what came of it.
enum Saved {
    /// Returned before saving (bad event, no key, exact hit): not a failed save.
    Skipped,
    /// `saveCache` ran; `true` if an entry was committed.
    Attempted(bool),
}

/// `saveImpl`: never fails the step; problems are warnings.
fn save_impl(
    handle: &CacheHandle,
    ctx: &mut ActionContext<'_>,
    keep: Keep,
    inputs: &CacheInputs,
) -> Saved {
    if !event_is_valid(ctx) {
        return Saved::Skipped;
    }
    let primary_key = match keep {
        Keep::State => ctx
            .get_state(state::CACHE_KEY)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .unwrap_or_else(|| inputs.key.clone()),
        Keep::Outputs => inputs.key.clone(),
    };
    if primary_key.is_empty() {
        ctx.warning("Key is not specified.");
        return Saved::Skipped;
    }
    if keep == Keep::State {
        let restored = ctx.get_state(state::CACHE_RESULT).map(str::to_string);
        if is_exact_match(&primary_key, restored.as_deref()) {
            ctx.info(&format!(
                "Cache hit occurred on the primary key {primary_key}, not saving cache."
            ));
            let scope = scope_of(ctx);
            let event = NewEvent {
                kind: EventKind::Skip,
                repository: scope.repository,
                scope: scope.git_ref,
                key: primary_key,
                matched_key: restored,
                bytes: None,
                duration_ms: None,
            };
            if let Ok(cache) = handle.get() {
                cache.record(event, ctx.log);
            }
            return Saved::Skipped;
        }
    }
    if inputs.paths.is_empty() {
        ctx.warning(&required_message(names::PATH));
        return Saved::Attempted(false);
    }
    let request = SaveRequest {
        scope: scope_of(ctx),
        location: location_of(ctx),
        paths: inputs.paths.clone(),
        key: primary_key.clone(),
        enable_cross_os_archive: inputs.enable_cross_os_archive,
        run_id: ctx.job.run_id.clone(),
        missed_at: match keep {
            Keep::State => ctx
                .get_state(state::CACHE_MISSED_AT)
                .and_then(|t| t.parse().ok()),
            Keep::Outputs => None,
        },
        progress: ctx.progress.clone().into(),
    };
    let cache = match handle.get_logged(ctx) {
        Ok(cache) => cache,
        Err(reason) => {
            ctx.warning(&format!("Failed to save: {reason}"));
            return Saved::Attempted(false);
        }
    };
    match cache.save(&request, ctx.log) {
        Ok(SaveOutcome::Saved(_) | SaveOutcome::Uploaded { .. }) => {
            ctx.info(&format!("Cache saved with key: {primary_key}"));
            Saved::Attempted(true)
        }
        Ok(SaveOutcome::AlreadyExists) => Saved::Attempted(false),
        // Already warned once, naming the store.
        Err(CacheError::ReadOnly) => Saved::Attempted(false),
        Err(err @ (CacheError::Key(_) | CacheError::NoPaths | CacheError::NothingToSave)) => {
            ctx.warning(&err.to_string());
            Saved::Attempted(false)
        }
        Err(err) => {
            ctx.warning(&format!("Failed to save: {}", crate::error::chain(&err)));
            Saved::Attempted(false)
        }
    }
}

fn warn_deprecated_inputs(ctx: &mut ActionContext<'_>, inputs: &CacheInputs) {
    if inputs.save_always_given {
        ctx.log(LogLevel::Warning, SAVE_ALWAYS_DEPRECATION);
    }
}

/// `actions/cache`: restore now, save in a post step if the job succeeded.
#[derive(Debug, Clone)]
pub struct CacheAction {
    cache: Arc<CacheHandle>,
}

impl CacheAction {
    /// The handler over `cache`.
    pub fn new(cache: Arc<CacheHandle>) -> Self {
        Self { cache }
    }
}

impl ActionHandler for CacheAction {
    fn run(&self, ctx: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let inputs = CacheInputs::from_context(ctx);
        warn_deprecated_inputs(ctx, &inputs);
        // The post step is declared by action.yml (`post-if: success()`), whatever main does.
        ctx.register_post(CACHE_POST_IF);
        restore_impl(&self.cache, ctx, Keep::State, &inputs)
    }

    fn post(&self, ctx: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let inputs = CacheInputs::from_context(ctx);
        save_impl(&self.cache, ctx, Keep::State, &inputs);
        // The post-job save is the job's last word on its caches: background uploads (of this
        // save and of earlier save steps) are joined here, so none outlives the job.
        if let Ok(cache) = self.cache.get() {
            cache.flush(ctx.log);
        }
        Ok(())
    }
}

/// `actions/cache/restore`: restore only; keys go to outputs.
#[derive(Debug, Clone)]
pub struct RestoreAction {
    cache: Arc<CacheHandle>,
}

impl RestoreAction {
    /// The handler over `cache`.
    pub fn new(cache: Arc<CacheHandle>) -> Self {
        Self { cache }
    }
}

impl ActionHandler for RestoreAction {
    fn run(&self, ctx: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let inputs = CacheInputs::from_context(ctx);
        restore_impl(&self.cache, ctx, Keep::Outputs, &inputs)
    }
}

/// `actions/cache/save`: save now, never skip, never fail.
#[derive(Debug, Clone)]
pub struct SaveAction {
    cache: Arc<CacheHandle>,
}

impl SaveAction {
    /// The handler over `cache`.
    pub fn new(cache: Arc<CacheHandle>) -> Self {
        Self { cache }
    }
}

impl ActionHandler for SaveAction {
    fn run(&self, ctx: &mut ActionContext<'_>) -> Result<(), ActionError> {
        let inputs = CacheInputs::from_context(ctx);
        if let Saved::Attempted(false) = save_impl(&self.cache, ctx, Keep::Outputs, &inputs) {
            ctx.warning("Cache save failed.");
        }
        // An upload still under way (a local tier's background upload) goes on while the job
        // does, and a post step joins it; without one pending, no post step, as on GitHub.
        if self
            .cache
            .get()
            .is_ok_and(|cache| cache.pending_uploads() > 0)
        {
            ctx.register_post("always()");
        }
        Ok(())
    }

    fn post(&self, ctx: &mut ActionContext<'_>) -> Result<(), ActionError> {
        if let Ok(cache) = self.cache.get() {
            cache.flush(ctx.log);
        }
        Ok(())
    }
}

/// `post-if` of `actions/cache`'s `action.yml`.
const CACHE_POST_IF: &str = "success()";

/// One `uses: actions/cache@v4` step for an embedder with its own step loop: typed inputs,
/// [`CacheStep::restore`] in the step, [`CacheStep::post`] after the job's last step. It keeps
/// the action's state (the primary key, the key restored) between the two and applies the
/// action's post condition (`success()`) and its "exact hit, not saving" rule, with the same
/// log lines as the step in a workflow.
///
/// Blocking (disk and database I/O): from async code, run both calls in
/// `tokio::task::spawn_blocking`.
///
/// ```
/// use std::sync::Arc;
/// use runner::cache::{Cache, CacheInputs, CacheOptions, CacheStep};
/// use runner::clock::SystemClock;
/// use runner::exec::{JobInfo, Status};
///
/// # let dir = tempfile::tempdir()?;
/// # std::fs::create_dir_all(dir.path().join("ws/deps"))?;
/// # std::fs::write(dir.path().join("ws/deps/lib.txt"), "dependency")?;
/// let store = runner::store::Store::open(&dir.path().join("store"), None, Arc::new(SystemClock))?;
/// let cache = Arc::new(Cache::with_store(store, Arc::new(SystemClock), CacheOptions::default()));
/// let job = JobInfo {
///     workspace: dir.path().join("ws"),
///     repository: "acme/widgets".into(),
///     git_ref: "refs/heads/main".into(),
///     home: dir.path().join("home"),
///     ..JobInfo::default()
/// };
/// let inputs = CacheInputs {
///     key: "deps-v1".into(),
///     paths: vec!["deps".into()],
///     ..CacheInputs::default()
/// };
///
/// let mut step = CacheStep::new(cache.clone(), job.clone(), inputs.clone());
/// assert!(!step.restore()?.cache_hit()); // a miss: build the dependencies, then
/// assert!(step.post(Status::Success).saved());
///
/// let mut again = CacheStep::new(cache, job, inputs);
/// assert!(again.restore()?.cache_hit());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CacheStep {
    handle: CacheHandle,
    job: crate::exec::JobInfo,
    inputs: CacheInputs,
    state: indexmap::IndexMap<String, String>,
    log: Box<StepLog>,
    progress: Option<crate::exec::ProgressFn>,
}

impl std::fmt::Debug for CacheStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheStep")
            .field("inputs", &self.inputs)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Where a [`CacheStep`] sends its log lines.
type StepLog = dyn FnMut(LogLevel, &str) + Send;

/// What [`CacheStep::restore`] found: the step's outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// `cache-hit`: `Some(true)` on an exact primary-key hit, `Some(false)` on a restore-key
    /// hit, `None` on a miss (the action leaves it unset).
    pub cache_hit: Option<bool>,
    /// The key of the entry restored (or found, with `lookup-only`).
    pub matched_key: Option<String>,
}

impl Restored {
    /// True on an exact primary-key hit (`cache-hit == 'true'`): the step's work is done.
    pub fn cache_hit(&self) -> bool {
        self.cache_hit == Some(true)
    }
}

/// What [`CacheStep::post`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOutcome {
    /// A new entry was saved.
    Saved,
    /// Not saved, and rightly so: the job did not succeed (`post-if: success()`), the primary
    /// key was an exact hit, or the event has no ref.
    Skipped,
    /// The save was attempted and did not happen (already exists, nothing to save, store
    /// error); the log says why, as a warning.
    NotSaved,
}

impl PostOutcome {
    /// True when an entry was saved.
    pub fn saved(self) -> bool {
        self == PostOutcome::Saved
    }
}

/// The contexts a [`CacheStep`] evaluates nothing in.
struct NoContexts;

impl crate::expr::Host for NoContexts {
    fn context(&self, _name: &str) -> Option<&crate::expr::Value> {
        None
    }
    fn hash_files(&self, _patterns: &[String]) -> Result<String, String> {
        Ok(String::new())
    }
    fn status(&self, _function: crate::expr::StatusFunction) -> bool {
        true
    }
}

impl CacheStep {
    /// The step over `cache` (the local [`Cache`] or a [`CacheEngine`] such as a cache
    /// server) in `job` (workspace, repository, ref and home say where and which scopes).
    pub fn new(
        cache: Arc<dyn CacheEngine>,
        job: crate::exec::JobInfo,
        inputs: CacheInputs,
    ) -> Self {
        Self {
            handle: CacheHandle::ready(cache),
            job,
            inputs,
            state: indexmap::IndexMap::new(),
            log: Box::new(|_, _| {}),
            progress: None,
        }
    }

    /// Sends the step's log lines (`Cache restored from key: ...`, warnings) to `log`; by
    /// default they are dropped.
    pub fn on_log(mut self, log: impl FnMut(LogLevel, &str) + Send + 'static) -> Self {
        self.log = Box::new(log);
        self
    }

    /// Reports the transfer progress of large archives to `progress`.
    pub fn on_progress(mut self, progress: crate::exec::ProgressFn) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Runs `f` as the action would see it: a step context over the inputs and the state.
    fn in_context<T>(
        &mut self,
        post: bool,
        f: impl FnOnce(&CacheHandle, &mut ActionContext<'_>, &CacheInputs) -> T,
    ) -> (T, indexmap::IndexMap<String, String>) {
        let empty = indexmap::IndexMap::new();
        let log = &mut self.log;
        let mut log = |level: LogLevel, line: &str| log(level, line);
        let mut ctx = ActionContext {
            uses: "actions/cache@v4",
            inputs: &empty,
            env: &empty,
            job: &self.job,
            contexts: &NoContexts,
            outputs: indexmap::IndexMap::new(),
            state: self.state.clone(),
            post_condition: post.then(|| CACHE_POST_IF.to_string()),
            log: &mut log,
            progress: self.progress.clone(),
        };
        let result = f(&self.handle, &mut ctx, &self.inputs);
        self.state = std::mem::take(&mut ctx.state);
        (result, std::mem::take(&mut ctx.outputs))
    }

    /// The main step: restores into the declared paths. `Err` is what fails the step on
    /// GitHub (a missing key or path, an invalid key, `fail-on-cache-miss` on a miss); a store
    /// that cannot be read is a warning and a miss.
    pub fn restore(&mut self) -> Result<Restored, ActionError> {
        let (result, outputs) = self.in_context(false, |handle, ctx, inputs| {
            warn_deprecated_inputs(ctx, inputs);
            restore_impl(handle, ctx, Keep::State, inputs)
        });
        result?;
        Ok(Restored {
            cache_hit: outputs.get(outputs::CACHE_HIT).map(|v| v == "true"),
            matched_key: self.state.get(state::CACHE_RESULT).cloned(),
        })
    }

    /// The post-job step: saves when `job_status` is a success (the action's `post-if:
    /// success()`) unless the primary key was an exact hit. Never fails: problems are
    /// warnings in the log.
    pub fn post(&mut self, job_status: crate::exec::Status) -> PostOutcome {
        if job_status != crate::exec::Status::Success {
            return PostOutcome::Skipped;
        }
        let (saved, _) = self.in_context(true, |handle, ctx, inputs| {
            save_impl(handle, ctx, Keep::State, inputs)
        });
        match saved {
            Saved::Skipped => PostOutcome::Skipped,
            Saved::Attempted(true) => PostOutcome::Saved,
            Saved::Attempted(false) => PostOutcome::NotSaved,
        }
    }
}

/// Registers the three cache actions over `cache`.
pub fn register(registry: &mut ActionRegistry, cache: Arc<Cache>) {
    register_handle(registry, Arc::new(CacheHandle::ready(cache)));
}

/// Registers the three cache actions over the store in the default directory, opened (with
/// the system clock) when the first cache step runs.
pub fn register_default(registry: &mut ActionRegistry, cancel: &crate::cancel::Cancel) {
    let options = super::CacheOptions {
        cancel: cancel.clone(),
        ..super::CacheOptions::default()
    };
    let handle = CacheHandle::lazy(move || {
        let location = crate::store::StoreLocation::default_dir()?;
        super::open(
            &location,
            options.clone(),
            Arc::new(crate::clock::SystemClock),
        )
    });
    register_handle(registry, Arc::new(handle));
}

/// The store at `location`, opened with `options` when the first cache step runs.
#[cfg(feature = "remote")]
fn local_handle(
    location: crate::store::StoreLocation,
    options: super::CacheOptions,
) -> CacheHandle {
    CacheHandle::lazy(move || {
        super::open(
            &location,
            options.clone(),
            Arc::new(crate::clock::SystemClock),
        )
    })
}

/// Registers the three cache actions over `backend`, chosen by [`super::select_backend`] for
/// the reason `why`, which the first cache step logs (at debug level for the default local
/// store, so plain runs read as before). The local store is the one at `location`; both
/// backends use `options` (its `cancel` stops saves and restores in flight).
#[cfg(feature = "remote")]
pub fn register_backend(
    registry: &mut ActionRegistry,
    backend: super::Backend,
    why: &str,
    location: crate::store::StoreLocation,
    options: super::CacheOptions,
) {
    let line = format!("Cache backend: {why}");
    let handle = match backend {
        super::Backend::Local => {
            let level = if why.contains("no cache server configured") {
                LogLevel::Debug
            } else {
                LogLevel::Info
            };
            local_handle(location, options).announce(level, line)
        }
        super::Backend::Remote(config) => CacheHandle::lazy_engine(move || {
            let mut remote = super::RemoteCache::new(config.clone(), options.clone());
            // Downloads kept on this machine (`RUNNER_CACHE_TIER*`, read by the CLI).
            if let Some(tier) = &location.tier {
                remote = remote.with_tier(super::RemoteTier::open(&tier.dir, tier.limits)?);
            }
            Ok(Arc::new(remote) as Arc<dyn CacheEngine>)
        })
        .announce(LogLevel::Info, line),
    };
    register_handle(registry, Arc::new(handle));
}

/// Registers the three cache actions over a handle.
pub fn register_handle(registry: &mut ActionRegistry, handle: Arc<CacheHandle>) {
    registry.register("actions/cache", Arc::new(CacheAction::new(handle.clone())));
    registry.register(
        "actions/cache/restore",
        Arc::new(RestoreAction::new(handle.clone())),
    );
    registry.register("actions/cache/save", Arc::new(SaveAction::new(handle)));
}
