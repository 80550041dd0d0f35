//! The action's inputs, read the way `@actions/core` and the action's `actionUtils` read them.

use crate::exec::ActionContext;

/// Input names as `action.yml` spells them.
pub mod names {
    /// `path`: files, directories and patterns to cache.
    pub const PATH: &str = "path";
    /// `key`: the primary key.
    pub const KEY: &str = "key";
    /// `restore-keys`: ordered fallback prefixes.
    pub const RESTORE_KEYS: &str = "restore-keys";
    /// `upload-chunk-size`: accepted, no effect locally.
    pub const UPLOAD_CHUNK_SIZE: &str = "upload-chunk-size";
    /// `enableCrossOsArchive`.
    pub const ENABLE_CROSS_OS_ARCHIVE: &str = "enableCrossOsArchive";
    /// `fail-on-cache-miss`.
    pub const FAIL_ON_CACHE_MISS: &str = "fail-on-cache-miss";
    /// `lookup-only`.
    pub const LOOKUP_ONLY: &str = "lookup-only";
    /// `save-always`: accepted with a deprecation warning.
    pub const SAVE_ALWAYS: &str = "save-always";
}

/// Splits a multi-line input into entries: `! pattern` becomes `!pattern`, lines are trimmed and
/// empty lines dropped (the action's `getInputAsArray`).
pub fn multiline(value: &str) -> Vec<String> {
    value
        .trim()
        .split('\n')
        .map(|line| {
            // Only a `!` at the very start of the line, followed by whitespace, is joined.
            let joined = match line.strip_prefix('!') {
                Some(rest) if rest.starts_with(char::is_whitespace) => {
                    format!("!{}", rest.trim_start())
                }
                _ => line.to_string(),
            };
            joined.trim().to_string()
        })
        .filter(|line| !line.is_empty())
        .collect()
}

/// `true` only for the string `true` in any case (the action's `getInputAsBool`).
pub fn boolean(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The message `core.getInput(name, { required: true })` fails with.
pub fn required_message(name: &str) -> String {
    format!("Input required and not supplied: {name}")
}

/// Inputs common to the three cache actions, already split and coerced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheInputs {
    /// `path` lines as written (after trimming), in order; `!` lines are exclusions.
    pub paths: Vec<String>,
    /// `key`, trimmed; empty when not given.
    pub key: String,
    /// `restore-keys` lines, in order.
    pub restore_keys: Vec<String>,
    /// `enableCrossOsArchive`.
    pub enable_cross_os_archive: bool,
    /// `fail-on-cache-miss`.
    pub fail_on_cache_miss: bool,
    /// `lookup-only`.
    pub lookup_only: bool,
    /// `save-always` was given (any value): deserves the deprecation warning.
    pub save_always_given: bool,
}

impl CacheInputs {
    /// Reads the inputs from a step's context (names case-insensitive, values trimmed).
    pub fn from_context(ctx: &ActionContext<'_>) -> Self {
        Self {
            paths: multiline(ctx.input(names::PATH).unwrap_or_default()),
            key: ctx.input(names::KEY).unwrap_or_default().to_string(),
            restore_keys: multiline(ctx.input(names::RESTORE_KEYS).unwrap_or_default()),
            enable_cross_os_archive: boolean(ctx.input(names::ENABLE_CROSS_OS_ARCHIVE)),
            fail_on_cache_miss: boolean(ctx.input(names::FAIL_ON_CACHE_MISS)),
            lookup_only: boolean(ctx.input(names::LOOKUP_ONLY)),
            save_always_given: ctx.input(names::SAVE_ALWAYS).is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiline_matches_get_input_as_array() {
        let rows: &[(&str, &[&str])] = &[
            ("", &[]),
            ("   \n  \n", &[]),
            ("a", &["a"]),
            ("  a  \n\n b \r\n", &["a", "b"]),
            ("~/.npm\n!~/.npm/_logs", &["~/.npm", "!~/.npm/_logs"]),
            ("dir\n!   dir/skip", &["dir", "!dir/skip"]),
            // A leading space before `!` keeps the inner space, as the action's regex does.
            ("dir\n  ! dir/skip", &["dir", "! dir/skip"]),
            ("!\tx", &["!x"]),
            ("a!b", &["a!b"]),
        ];
        for (input, expected) in rows {
            assert_eq!(multiline(input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn boolean_is_true_only_for_true() {
        let rows: &[(Option<&str>, bool)] = &[
            (None, false),
            (Some(""), false),
            (Some("true"), true),
            (Some("TRUE"), true),
            (Some("True"), true),
            (Some(" true "), true),
            (Some("yes"), false),
            (Some("1"), false),
            (Some("false"), false),
        ];
        for (input, expected) in rows {
            assert_eq!(boolean(*input), *expected, "input {input:?}");
        }
    }
}
