//! Cache options and opening a store. Settings come in as values (the CLI reads the
//! `RUNNER_CACHE_*` variables); nothing here reads the environment.

use std::sync::Arc;

use super::{Cache, CacheError};
use crate::archive::Compression;
use crate::cancel::Cancel;
use crate::clock::Clock;
use crate::store::index::EvictionPolicy;
use crate::store::{Store, StoreLocation};

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

/// Opens the store at `location` with `options`.
pub fn open(
    location: &StoreLocation,
    options: CacheOptions,
    clock: Arc<dyn Clock>,
) -> Result<Cache, CacheError> {
    let store = Store::open_at(location, clock.clone())?;
    Ok(Cache::with_store(store, clock, options))
}

/// Opens the store in the default directory ([`StoreLocation::default_dir`]) with the default
/// options.
pub fn open_default(clock: Arc<dyn Clock>) -> Result<Cache, CacheError> {
    open(
        &StoreLocation::default_dir()?,
        CacheOptions::default(),
        clock,
    )
}
