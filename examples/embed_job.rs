//! A CI runner of your own hands `runner` a whole job: its steps run here, `actions/cache` steps
//! natively over a store you choose, and every event comes back through your `EventSink`.
//!
//! `cargo run --example embed_job -- WORKFLOW WORKSPACE STORE_DIR`

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use runner::cache::{Cache, CacheOptions};
use runner::clock::SystemClock;
use runner::exec::{BaseEnv, Event, EventKind, EventSink, RunOptions, Runner, builtin_registry};
use runner::store::Store;

/// Keeps the log as `job/step | line`, the way a runner's UI would show it.
#[derive(Default)]
pub struct Log(pub Mutex<Vec<String>>);

impl EventSink for Log {
    fn event(&self, event: &Event) {
        let place = format!(
            "{}/{}",
            event.job.as_deref().unwrap_or("-"),
            event.step.as_deref().unwrap_or("-")
        );
        let line = match &event.kind {
            EventKind::Output { line, .. } => line.clone(),
            EventKind::StepFinished {
                name, conclusion, ..
            } => format!("{name}: {conclusion}"),
            EventKind::Warning { message } => format!("warning: {message}"),
            EventKind::Progress { transfer } => format!("{} bytes", transfer.bytes),
            _ => return,
        };
        if let Ok(mut log) = self.0.lock() {
            log.push(format!("{place} | {line}"));
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let workflow = args
        .next()
        .ok_or("usage: embed_job WORKFLOW WORKSPACE STORE_DIR")?;
    let workspace = args.next().unwrap_or_else(|| PathBuf::from("."));
    let store = args
        .next()
        .unwrap_or_else(|| workspace.join(".runner-cache"));
    let (success, log) = run_job(&workflow, &workspace, &store)?;
    for line in log {
        println!("{line}");
    }
    std::process::exit(if success { 0 } else { 1 });
}

/// Runs every job of `workflow` in `workspace` with its cache steps over `store`; returns
/// whether the run succeeded and its log.
pub fn run_job(
    workflow: &Path,
    workspace: &Path,
    store: &Path,
) -> Result<(bool, Vec<String>), Box<dyn std::error::Error>> {
    let clock = Arc::new(SystemClock);
    let cache = Cache::with_store(
        Store::open(store, None, clock.clone())?,
        clock,
        CacheOptions::default(),
    );
    let mut registry = builtin_registry();
    runner::cache::register(&mut registry, Arc::new(cache));
    let log = Arc::new(Log::default());
    let options = RunOptions {
        workspace: workspace.to_path_buf(),
        events: log.clone(),
        // Only PATH, HOME, USER, LANG, TERM and TMPDIR of this process reach the steps.
        base_env: BaseEnv::Clean,
        ..RunOptions::default()
    };
    let report = Runner::new(runner::workflow::load(workflow)?, options, registry).run()?;
    let lines = log.0.lock().map(|l| l.clone()).unwrap_or_default();
    Ok((report.success(), lines))
}
