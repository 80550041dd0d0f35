//! Options from the environment and opening the default store.

use std::sync::Arc;

use super::{Cache, CacheError};
use crate::archive::Compression;
use crate::cancel::Cancel;
use crate::clock::Clock;
use crate::store::Store;
use crate::store::index::EvictionPolicy;

/// How the cache behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// The codec saves use and restores look up (`RUNNER_CACHE_COMPRESSION`).
    pub compression: Compression,
    /// Eviction after each save and on `prune` (`RUNNER_CACHE_TTL_DAYS`, `RUNNER_CACHE_MAX_SIZE`).
    pub eviction: EvictionPolicy,
    /// Report transfer progress to the request's `OnProgress` (only for large archives).
    pub progress: bool,
    /// Cancels saves and restores in flight (the CLI cancels it on SIGTERM and SIGINT).
    pub cancel: Cancel,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            compression: Compression::Zstd,
            eviction: EvictionPolicy::default(),
            progress: true,
            cancel: Cancel::default(),
        }
    }
}

impl CacheOptions {
    /// Options from the process environment.
    pub fn from_env() -> Result<Self, CacheError> {
        Ok(Self {
            compression: Compression::from_env(),
            eviction: EvictionPolicy::from_env()?,
            progress: true,
            cancel: Cancel::default(),
        })
    }
}

/// Opens the store `RUNNER_CACHE_DB` / `RUNNER_CACHE_DIR` point at (see
/// [`Store::open_default`]), with options from the environment.
pub fn open_default(clock: Arc<dyn Clock>) -> Result<Cache, CacheError> {
    let options = CacheOptions::from_env()?;
    let store = Store::open_default(clock.clone())?;
    Ok(Cache::with_store(store, clock, options))
}
