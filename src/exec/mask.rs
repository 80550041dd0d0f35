//! Secret masking: every registered value (and the encodings a program is likely to print it in)
//! is replaced with `***` before any line leaves the runner.

/// The replacement text GitHub uses.
pub const MASK: &str = "***";

/// A set of secret values; [`Masker::mask`] hides all of them in a line.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    values: Vec<String>,
}

impl Masker {
    /// An empty masker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a secret. Multi-line values are also registered line by line because programs
    /// print them one line at a time; whitespace-only values are ignored (masking them would
    /// garble every line).
    pub fn add(&mut self, value: &str) {
        if value.trim().is_empty() {
            return;
        }
        self.add_one(value);
        if value.contains(['\n', '\r']) {
            for line in value.split(['\n', '\r']) {
                let line = line.trim();
                if !line.is_empty() {
                    self.add_one(line);
                }
            }
        }
    }

    fn add_one(&mut self, value: &str) {
        let mut variants = vec![
            value.to_string(),
            json_escape(value),
            base64(value.as_bytes()),
        ];
        let trimmed = value.trim_matches('"');
        if !trimmed.is_empty() {
            variants.push(trimmed.to_string());
        }
        for variant in variants {
            if !variant.is_empty() && !self.values.contains(&variant) {
                self.values.push(variant);
            }
        }
        // Longest first so that a secret containing another is replaced as a whole.
        self.values
            .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// `text` with every occurrence of every secret replaced by `***`; overlapping or adjacent
    /// occurrences collapse into one mask.
    pub fn mask(&self, text: &str) -> String {
        if self.values.is_empty() {
            return text.to_string();
        }
        let mut ranges: Vec<(usize, usize)> = Vec::new();
        for value in &self.values {
            let mut from = 0;
            while let Some(found) = text.get(from..).and_then(|rest| rest.find(value.as_str())) {
                let start = from + found;
                ranges.push((start, start + value.len()));
                // Step one char so overlapping occurrences are found too.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
        if ranges.is_empty() {
            return text.to_string();
        }
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in merged {
            out.push_str(&text[at..start]);
            out.push_str(MASK);
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }
}

/// The value as it appears inside a JSON string literal.
fn json_escape(value: &str) -> String {
    let quoted = serde_json::to_string(value).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_default()
        .to_string()
}

/// Standard base64 without the padding, which depends on what follows the secret.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            let index = ((n >> (18 - 6 * i)) & 63) as usize;
            out.push(char::from(ALPHABET[index]));
        }
    }
    // Only full 4-char groups are stable regardless of the bytes around the secret.
    if !bytes.len().is_multiple_of(3) {
        let full = (bytes.len() / 3) * 4;
        if full >= 8 {
            out.truncate(full);
        } else {
            return String::new();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_values_and_variants() {
        let cases: &[(&[&str], &str, &str)] = &[
            (&["hunter2"], "pw=hunter2!", "pw=***!"),
            (&["abc", "abcdef"], "xabcdefx abc", "x***x ***"),
            (&["aa"], "aaaa", "***"),
            (&["line1\nline2"], "got line2 here", "got *** here"),
            (&["   "], "a   b", "a   b"),
            (&["s3cr3t-value"], "czNjcjN0LXZhbHVl", "***"),
            (&["quo\"te"], "{\"k\":\"quo\\\"te\"}", "{\"k\":\"***\"}"),
            (&["é"], "café au lait", "caf*** au lait"),
        ];
        for (secrets, input, expected) in cases {
            let mut m = Masker::new();
            for s in *secrets {
                m.add(s);
            }
            assert_eq!(
                m.mask(input),
                *expected,
                "secrets {secrets:?} input {input:?}"
            );
        }
    }
}
