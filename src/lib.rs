//! `runner`: runs GitHub Actions workflow steps on this host and implements `actions/cache`
//! natively over a database-indexed, content-addressed store.
//!
//! The module map and data flow are described in `DESIGN.md` of the shared folder; each module's
//! doc comment says what it owns.
//!
//! # Embedding in a CI runner
//!
//! - A whole job: [`exec::Runner`] over a loaded [`workflow`], with [`exec::RunOptions`]:
//!   `events` (your [`exec::EventSink`]: every output line with its job, step and stream, cache
//!   transfer progress, warnings; the library draws nothing itself) and `base_env` (what the
//!   step processes inherit; clean by default). `examples/embed_job.rs` is a complete one.
//! - One `uses: actions/cache@v4` step in your own step loop: [`cache::CacheStep`] (`restore()`
//!   in the step, `post(job_status)` after the job). `examples/embed_cache_step.rs`.
//!
//! Cargo features: `cli` (the `runner` binary: clap, anyhow, indicatif), `postgres` (the index
//! in PostgreSQL), `server` (`runner serve`), `remote` (a cache server as the cache), `s3`
//! (blobs in S3-compatible storage); all on by default. `default-features = false` is the
//! library over SQLite and local blobs.
//!
//! # Async runners
//!
//! The API is blocking (processes, disk, the database). A tokio-based runner moves the run onto
//! the blocking pool; [`exec::Runner`] and [`cache::CacheStep`] are `Send`, and a sink may
//! forward events to async tasks through a channel:
//!
//! ```no_run
//! # #[cfg(feature = "server")]
//! async fn run_job(runner: runner::exec::Runner) -> Result<bool, Box<dyn std::error::Error>> {
//!     let report = tokio::task::spawn_blocking(move || runner.run()).await??;
//!     Ok(report.success())
//! }
//! ```

#![warn(missing_docs)]

pub mod archive;
pub mod cache;
pub mod cancel;
pub mod clock;
pub mod error;
pub mod exec;
pub mod expr;
pub mod glob;
#[cfg(feature = "server")]
pub mod server;
pub mod store;
pub mod workflow;
