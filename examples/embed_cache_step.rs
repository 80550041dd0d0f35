//! A CI runner of your own runs one `uses: actions/cache@v4` step through `runner`: restore
//! before the build, save after the job, with the action's keys, outputs and conditions.
//!
//! `cargo run --example embed_cache_step -- WORKSPACE STORE_DIR`: the first run misses, "builds"
//! `WORKSPACE/deps` and saves it; the next run restores it (`cache-hit: true`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use runner::cache::{Cache, CacheInputs, CacheOptions, CacheStep};
use runner::clock::SystemClock;
use runner::exec::{JobInfo, Status};
use runner::store::Store;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let workspace = args.next().unwrap_or_else(|| PathBuf::from("."));
    let store = args
        .next()
        .unwrap_or_else(|| workspace.join(".runner-cache"));
    println!("{}", cache_step(&workspace, &store)?);
    Ok(())
}

/// Restores `deps` for key `deps-v1`, builds it on a miss, saves it after a successful job;
/// returns a one-line summary.
pub fn cache_step(workspace: &Path, store: &Path) -> Result<String, Box<dyn std::error::Error>> {
    let clock = Arc::new(SystemClock);
    let store = Store::open(store, None, clock.clone())?;
    let cache = Arc::new(Cache::with_store(store, clock, CacheOptions::default()));
    let job = JobInfo {
        workspace: workspace.to_path_buf(),
        repository: "acme/widgets".into(),
        git_ref: "refs/heads/main".into(),
        home: std::env::var_os("HOME").map_or_else(|| workspace.to_path_buf(), PathBuf::from),
        ..JobInfo::default()
    };
    let inputs = CacheInputs {
        key: "deps-v1".into(),
        paths: vec!["deps".into()],
        restore_keys: vec!["deps-".into()],
        ..CacheInputs::default()
    };
    let mut step = CacheStep::new(cache, job, inputs).on_log(|_, line| eprintln!("{line}"));

    let restored = step.restore()?;
    if !restored.cache_hit() {
        // The job's real work; here it makes the directory the cache keeps.
        std::fs::create_dir_all(workspace.join("deps"))?;
        std::fs::write(workspace.join("deps/lib.txt"), "built")?;
    }
    let post = step.post(Status::Success);
    Ok(format!(
        "cache-hit={} matched-key={} post={post:?}",
        restored.cache_hit(),
        restored.matched_key.as_deref().unwrap_or("")
    ))
}
