//! Options from the environment and opening the default store.

use std::path::PathBuf;

use super::{CacheError, EvictionPolicy};
use crate::archive::Compression;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Entries unused this many days are evicted by default.
pub const DEFAULT_TTL_DAYS: i64 = 7;
/// Per-repository size budget by default (10 GB, as GitHub's).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024 * 1024;
/// A reservation not committed within this time is abandoned.
pub const RESERVATION_TIMEOUT_MS: i64 = 60 * 60 * 1000;

/// How the cache behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheOptions {
    /// The codec saves use and restores look up (`RUNNER_CACHE_COMPRESSION`).
    pub compression: Compression,
    /// Eviction after each save and on `prune` (`RUNNER_CACHE_TTL_DAYS`, `RUNNER_CACHE_MAX_SIZE`).
    pub eviction: EvictionPolicy,
    /// Show progress bars (still only on a terminal, and only for large archives).
    pub progress: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            compression: Compression::Zstd,
            eviction: EvictionPolicy {
                max_idle_ms: DEFAULT_TTL_DAYS * DAY_MS,
                max_bytes_per_repository: DEFAULT_MAX_SIZE,
                reservation_timeout_ms: RESERVATION_TIMEOUT_MS,
            },
            progress: true,
        }
    }
}

fn config_error(name: &str, value: &str, reason: &str) -> CacheError {
    CacheError::Config {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Parses a size such as `10G`, `512M`, `1.5GB`, `4096` (bytes); units are powers of 1024.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim().to_ascii_uppercase();
    let unit = unit
        .strip_suffix("IB")
        .or_else(|| unit.strip_suffix('B'))
        .unwrap_or(&unit);
    let multiplier: u64 = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => return None,
    };
    let bytes = number * multiplier as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

impl CacheOptions {
    /// Options from variables looked up with `get` (tests pass a map, the CLI the process
    /// environment).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Self, CacheError> {
        let mut options = Self::default();
        if let Some(value) = get("RUNNER_CACHE_COMPRESSION").filter(|v| !v.is_empty()) {
            options.compression = match value.to_ascii_lowercase().as_str() {
                "zstd" => Compression::Zstd,
                "gzip" => Compression::Gzip,
                _ => {
                    return Err(config_error(
                        "RUNNER_CACHE_COMPRESSION",
                        &value,
                        "expected zstd or gzip",
                    ));
                }
            };
        }
        if let Some(value) = get("RUNNER_CACHE_TTL_DAYS").filter(|v| !v.is_empty()) {
            let days: i64 = value
                .trim()
                .parse()
                .ok()
                .filter(|d| *d > 0 && *d < 100_000)
                .ok_or_else(|| {
                    config_error(
                        "RUNNER_CACHE_TTL_DAYS",
                        &value,
                        "expected a positive number of days",
                    )
                })?;
            options.eviction.max_idle_ms = days * DAY_MS;
        }
        if let Some(value) = get("RUNNER_CACHE_MAX_SIZE").filter(|v| !v.is_empty()) {
            options.eviction.max_bytes_per_repository = parse_size(&value).ok_or_else(|| {
                config_error(
                    "RUNNER_CACHE_MAX_SIZE",
                    &value,
                    "expected a size such as 10G or 512M",
                )
            })?;
        }
        Ok(options)
    }

    /// Options from the process environment.
    pub fn from_env() -> Result<Self, CacheError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

/// Where the store lives: the index URL and the blob directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// The directory holding blobs.
    pub blob_dir: PathBuf,
}

impl StoreLocation {
    /// `RUNNER_CACHE_DB` (default `sqlite://<dir>/index.sqlite`) with blobs in `<dir>/blobs-v1`,
    /// where `<dir>` is `store::default_cache_dir()`.
    pub fn from_vars(
        get: impl Fn(&str) -> Option<String>,
        cache_dir: Option<PathBuf>,
    ) -> Result<Self, CacheError> {
        let dir = cache_dir.ok_or_else(|| {
            config_error(
                "RUNNER_CACHE_DIR",
                "",
                "no cache directory: set RUNNER_CACHE_DIR or HOME",
            )
        })?;
        let database_url = get("RUNNER_CACHE_DB")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| format!("sqlite://{}", dir.join("index.sqlite").display()));
        Ok(Self {
            database_url,
            blob_dir: dir.join("blobs-v1"),
        })
    }

    /// From the process environment.
    pub fn from_env() -> Result<Self, CacheError> {
        Self::from_vars(
            |name| std::env::var(name).ok(),
            crate::store::default_cache_dir(),
        )
    }
}

/// Opens the store `RUNNER_CACHE_DB` / `RUNNER_CACHE_DIR` point at, with options from the
/// environment.
pub fn open_default(
    _clock: std::sync::Arc<dyn crate::clock::Clock>,
) -> Result<super::Cache, CacheError> {
    let location = StoreLocation::from_env()?;
    Err(config_error(
        "RUNNER_CACHE_DB",
        &location.database_url,
        "the store is not built yet",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_rows() {
        let rows: &[(&str, Option<u64>)] = &[
            ("4096", Some(4096)),
            ("10G", Some(10 << 30)),
            ("10GB", Some(10 << 30)),
            ("10GiB", Some(10 << 30)),
            ("512m", Some(512 << 20)),
            ("1.5K", Some(1536)),
            (" 2 T ", Some(2 << 40)),
            ("", None),
            ("lots", None),
            ("10X", None),
            ("-1", None),
        ];
        for (text, expected) in rows {
            assert_eq!(parse_size(text), *expected, "{text:?}");
        }
    }

    #[test]
    fn options_from_vars() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let default = CacheOptions::from_vars(vars(&[])).expect("defaults");
        assert_eq!(default, CacheOptions::default());
        let custom = CacheOptions::from_vars(vars(&[
            ("RUNNER_CACHE_COMPRESSION", "GZIP"),
            ("RUNNER_CACHE_TTL_DAYS", "2"),
            ("RUNNER_CACHE_MAX_SIZE", "1M"),
        ]))
        .expect("valid");
        assert_eq!(custom.compression, Compression::Gzip);
        assert_eq!(custom.eviction.max_idle_ms, 2 * DAY_MS);
        assert_eq!(custom.eviction.max_bytes_per_repository, 1 << 20);
        for bad in [
            &[("RUNNER_CACHE_COMPRESSION", "brotli")][..],
            &[("RUNNER_CACHE_TTL_DAYS", "0")][..],
            &[("RUNNER_CACHE_MAX_SIZE", "big")][..],
        ] {
            let err = CacheOptions::from_vars(vars(bad)).expect_err("refused");
            assert!(err.to_string().contains(bad[0].0), "{err}");
        }
    }

    #[test]
    fn store_location_defaults_under_the_cache_dir() {
        let none = |_: &str| None;
        let loc = StoreLocation::from_vars(none, Some(PathBuf::from("/c"))).expect("dir");
        assert_eq!(loc.database_url, "sqlite:///c/index.sqlite");
        assert_eq!(loc.blob_dir, PathBuf::from("/c/blobs-v1"));
        let pg = |n: &str| (n == "RUNNER_CACHE_DB").then(|| "postgres://h/db".to_string());
        let loc = StoreLocation::from_vars(pg, Some(PathBuf::from("/c"))).expect("dir");
        assert_eq!(loc.database_url, "postgres://h/db");
        assert!(StoreLocation::from_vars(none, None).is_err());
    }
}
