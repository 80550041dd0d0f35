//! The cache store: a database index of entries ([`index`]) over content-addressed archive blobs
//! ([`blob`]). Knows nothing of actions/cache semantics; `cache/` decides what to look up.
//!
//! CONTRACT (other modules code against these names; extend, don't rename): see [`index::Index`]
//! and [`blob::BlobStore`].

pub mod blob;
pub mod index;

use std::path::PathBuf;

/// The default store directory: `$RUNNER_CACHE_DIR`, else `$XDG_CACHE_HOME/runner`, else
/// `~/.cache/runner`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("RUNNER_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("runner"));
    }
    std::env::home_dir().map(|h| h.join(".cache").join("runner"))
}
