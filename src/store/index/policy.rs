//! The eviction policy and the parsing of its settings (the CLI reads `RUNNER_CACHE_TTL_DAYS`
//! and `RUNNER_CACHE_MAX_SIZE`).

use super::IndexError;

/// Days an entry may go unused before it is evicted, unless `RUNNER_CACHE_TTL_DAYS` says otherwise.
pub const DEFAULT_TTL_DAYS: u32 = 7;
/// Per-repository size budget, unless `RUNNER_CACHE_MAX_SIZE` says otherwise (10 GiB).
pub const DEFAULT_MAX_SIZE_BYTES: u64 = 10 * 1024 * 1024 * 1024;
/// A reservation not committed within this long is considered abandoned (1 hour).
pub const DEFAULT_RESERVATION_TTL_MS: i64 = 60 * 60 * 1000;

/// What `evict` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvictionPolicy {
    /// Entries not accessed for this many days are removed.
    pub ttl_days: u32,
    /// Least-recently-used entries are removed until each repository fits in this many bytes.
    pub max_size_bytes: u64,
    /// Reservations older than this many milliseconds are removed.
    pub reservation_ttl_ms: i64,
    /// Report what would be removed without removing anything.
    pub dry_run: bool,
}

impl Default for EvictionPolicy {
    fn default() -> Self {
        Self {
            ttl_days: DEFAULT_TTL_DAYS,
            max_size_bytes: DEFAULT_MAX_SIZE_BYTES,
            reservation_ttl_ms: DEFAULT_RESERVATION_TTL_MS,
            dry_run: false,
        }
    }
}

impl EvictionPolicy {
    /// The defaults, overridden by the given variable values (empty means unset).
    pub fn from_vars(ttl_days: Option<&str>, max_size: Option<&str>) -> Result<Self, IndexError> {
        let mut policy = Self::default();
        if let Some(value) = ttl_days.map(str::trim).filter(|v| !v.is_empty()) {
            policy.ttl_days = value.parse().map_err(|_| IndexError::InvalidSetting {
                name: "RUNNER_CACHE_TTL_DAYS",
                value: value.to_string(),
                reason: "expected a whole number of days".into(),
            })?;
        }
        if let Some(value) = max_size.map(str::trim).filter(|v| !v.is_empty()) {
            policy.max_size_bytes =
                parse_size(value).map_err(|reason| IndexError::InvalidSetting {
                    name: "RUNNER_CACHE_MAX_SIZE",
                    value: value.to_string(),
                    reason,
                })?;
        }
        Ok(policy)
    }

    /// The TTL in milliseconds.
    pub fn ttl_millis(&self) -> i64 {
        i64::from(self.ttl_days) * 24 * 60 * 60 * 1000
    }
}

/// Parses a size such as `10G`, `500M`, `1.5g`, `64KiB` or a plain byte count. Suffixes K, M, G, T
/// are binary multiples (1K = 1024), optionally followed by `B` or `iB`, any case.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let shift = match unit.as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("unknown size unit {unit:?}; use K, M, G or T")),
    };
    if number.is_empty() {
        return Err("expected a number such as 10G, 500M or 1048576".into());
    }
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_mul(1u64 << shift)
            .ok_or_else(|| "size too large".to_string());
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{number:?} is not a number"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err("size too large".into());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let cases: &[(&str, Result<u64, ()>)] = &[
            ("10G", Ok(10 << 30)),
            ("500M", Ok(500 << 20)),
            ("500mb", Ok(500 << 20)),
            ("64KiB", Ok(64 << 10)),
            ("1T", Ok(1 << 40)),
            ("1048576", Ok(1_048_576)),
            ("0", Ok(0)),
            (" 2 g ", Ok(2 << 30)),
            ("1.5G", Ok(3 << 29)),
            ("12B", Ok(12)),
            ("", Err(())),
            ("G", Err(())),
            ("10X", Err(())),
            ("-5", Err(())),
            ("1.2.3M", Err(())),
            ("99999999999999999999", Err(())),
            ("20000000000T", Err(())),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text).map_err(|_| ()), *want, "{text:?}");
        }
    }

    #[test]
    fn env_values_override_defaults() {
        let p = EvictionPolicy::from_vars(Some("3"), Some("500M")).expect("valid");
        assert_eq!((p.ttl_days, p.max_size_bytes), (3, 500 << 20));
        let p = EvictionPolicy::from_vars(Some(""), None).expect("empty is unset");
        assert_eq!(p, EvictionPolicy::default());
        assert!(matches!(
            EvictionPolicy::from_vars(Some("seven"), None),
            Err(IndexError::InvalidSetting {
                name: "RUNNER_CACHE_TTL_DAYS",
                ..
            })
        ));
        assert!(matches!(
            EvictionPolicy::from_vars(None, Some("lots")),
            Err(IndexError::InvalidSetting {
                name: "RUNNER_CACHE_MAX_SIZE",
                ..
            })
        ));
    }
}
