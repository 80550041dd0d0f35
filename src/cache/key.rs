//! Key validation with the toolkit's exact messages.

/// At most this many keys (primary plus restore keys) per lookup.
pub const MAX_KEYS: usize = 10;
/// At most this many characters (UTF-16 code units, as JavaScript counts) per key.
pub const MAX_KEY_LENGTH: usize = 512;

/// A key the cache service would refuse. The messages are the toolkit's, word for word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Longer than [`MAX_KEY_LENGTH`].
    #[error("Key Validation Error: {key} cannot be larger than 512 characters.")]
    TooLong {
        /// The key as given.
        key: String,
    },
    /// Contains a comma (the v1 protocol joins keys with commas).
    #[error("Key Validation Error: {key} cannot contain commas.")]
    Comma {
        /// The key as given.
        key: String,
    },
    /// More than [`MAX_KEYS`] keys in one lookup.
    #[error("Key Validation Error: Keys are limited to a maximum of 10.")]
    TooMany {
        /// How many keys were given.
        count: usize,
    },
}

/// Checks one key as the toolkit's `checkKey` does: length first, then commas.
pub fn validate_key(key: &str) -> Result<(), KeyError> {
    // JavaScript's `length` counts UTF-16 code units.
    if key.encode_utf16().count() > MAX_KEY_LENGTH {
        return Err(KeyError::TooLong {
            key: key.to_string(),
        });
    }
    if key.contains(',') {
        return Err(KeyError::Comma {
            key: key.to_string(),
        });
    }
    Ok(())
}

/// Checks the keys of a restore: the count first, then each key in order.
pub fn validate_restore_keys(primary: &str, restore_keys: &[String]) -> Result<(), KeyError> {
    let count = 1 + restore_keys.len();
    if count > MAX_KEYS {
        return Err(KeyError::TooMany { count });
    }
    validate_key(primary)?;
    restore_keys.iter().try_for_each(|k| validate_key(k))
}

/// Whether `matched` is the primary key, compared as the action's `isExactKeyMatch` does
/// (case-insensitive).
pub fn is_exact_match(primary: &str, matched: Option<&str>) -> bool {
    matched.is_some_and(|m| !m.is_empty() && m.to_lowercase() == primary.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rows() {
        let long = "k".repeat(513);
        let max = "k".repeat(512);
        // 512 two-unit characters are 1024 UTF-16 units.
        let wide = "😀".repeat(300);
        let many: Vec<String> = (0..10).map(|i| format!("r{i}")).collect();
        let nine: Vec<String> = (0..9).map(|i| format!("r{i}")).collect();
        let rows: Vec<(&str, Vec<String>, Option<String>)> = vec![
            ("ok", vec![], None),
            (&max, vec![], None),
            (
                &long,
                vec![],
                Some(format!(
                    "Key Validation Error: {long} cannot be larger than 512 characters."
                )),
            ),
            (
                &wide,
                vec![],
                Some(format!(
                    "Key Validation Error: {wide} cannot be larger than 512 characters."
                )),
            ),
            (
                "a,b",
                vec![],
                Some("Key Validation Error: a,b cannot contain commas.".into()),
            ),
            (
                "ok",
                vec!["x,y".into()],
                Some("Key Validation Error: x,y cannot contain commas.".into()),
            ),
            ("ok", nine, None),
            (
                "ok",
                many,
                Some("Key Validation Error: Keys are limited to a maximum of 10.".into()),
            ),
        ];
        for (primary, restore, expected) in rows {
            let got = validate_restore_keys(primary, &restore)
                .err()
                .map(|e| e.to_string());
            assert_eq!(got, expected, "primary {primary:.20}");
        }
    }

    #[test]
    fn exact_match_ignores_case_only() {
        assert!(is_exact_match("Linux-NPM-abc", Some("linux-npm-ABC")));
        assert!(!is_exact_match("linux-npm-abc", Some("linux-npm-ab")));
        assert!(!is_exact_match("linux", None));
        assert!(!is_exact_match("", Some("")));
    }
}
