//! Prefix matching as a range: every string that starts with `p` lies in `[p, next(p))` under
//! code-point (= UTF-8 byte) order, so a B-tree index answers it without `LIKE` and its escapes.

/// The smallest string greater than every string starting with `prefix`, or `None` when no such
/// string exists (empty prefix, or only `char::MAX`): then the range is unbounded above.
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = next_char(last) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
        // `last` is char::MAX: no character follows it, so bump the one before instead.
    }
    None
}

/// The next Unicode scalar value, skipping the surrogate gap.
fn next_char(c: char) -> Option<char> {
    match c {
        '\u{D7FF}' => Some('\u{E000}'),
        char::MAX => None,
        _ => char::from_u32(u32::from(c) + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bounds() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            ("a", Some("b")),
            ("npm-", Some("npm.")),
            ("a%", Some("a&")),
            ("a_", Some("a`")),
            ("a\\", Some("a]")),
            ("z\u{7F}", Some("z\u{80}")),
            ("\u{D7FF}", Some("\u{E000}")),
            ("é", Some("ê")),
            ("x\u{10FFFF}", Some("y")),
            ("x\u{10FFFF}\u{10FFFF}", Some("y")),
            ("\u{10FFFF}", None),
        ];
        for (prefix, want) in cases {
            assert_eq!(prefix_upper_bound(prefix).as_deref(), *want, "{prefix:?}");
        }
    }

    /// The bound is correct by construction only if byte order agrees with char order; check the
    /// property on tricky neighbours.
    #[test]
    fn every_extension_sorts_below_the_bound() {
        let prefixes = ["a", "x\u{10FFFF}", "\u{D7FF}", "ß", "\u{FFFF}"];
        let tails = ["", "\u{0}", "z", "\u{10FFFF}", "\u{E000}", "\u{7FF}\u{800}"];
        for p in prefixes {
            let Some(upper) = prefix_upper_bound(p) else {
                continue;
            };
            for t in tails {
                let s = format!("{p}{t}");
                assert!(s.as_bytes() >= p.as_bytes(), "{s:?} >= {p:?}");
                assert!(s.as_bytes() < upper.as_bytes(), "{s:?} < {upper:?}");
            }
        }
    }
}
