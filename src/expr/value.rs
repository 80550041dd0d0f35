//! Expression values and GitHub's coercion rules (as the runner's C# evaluator applies them).

use std::cmp::Ordering;

use indexmap::IndexMap;

/// A value an expression produces or a context holds.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// `null`
    #[default]
    Null,
    /// `true` / `false`
    Bool(bool),
    /// Every number is an f64, as in GitHub's evaluator.
    Number(f64),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object; keys keep insertion order and are looked up case-insensitively.
    Object(IndexMap<String, Value>),
}

impl Value {
    /// Converts to the string GitHub substitutes into a template (`null` → `''`, numbers like
    /// .NET `G15`, arrays/objects → `Array`/`Object`).
    pub fn to_display_string(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Bool(b) => if *b { "true" } else { "false" }.to_string(),
            Value::Number(n) => format_number(*n),
            Value::String(s) => s.clone(),
            Value::Array(_) => "Array".to_string(),
            Value::Object(_) => "Object".to_string(),
        }
    }

    /// GitHub's truthiness: `null`, `false`, `0`, `-0`, `NaN` and `''` are falsy; everything
    /// else (including empty arrays and objects) is truthy.
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => !(*n == 0.0 || n.is_nan()),
            Value::String(s) => !s.is_empty(),
            Value::Array(_) | Value::Object(_) => true,
        }
    }

    /// Converts to a number as the comparison operators do (JavaScript's `Number()` with the
    /// runner's differences): `null` → 0, booleans → 1/0, strings parsed, collections → NaN.
    pub fn to_number(&self) -> f64 {
        match self {
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => *n,
            Value::String(s) => parse_number(s),
            Value::Array(_) | Value::Object(_) => f64::NAN,
        }
    }

    /// True for `null`, booleans, numbers and strings.
    pub fn is_primitive(&self) -> bool {
        !matches!(self, Value::Array(_) | Value::Object(_))
    }

    /// The kind name GitHub uses in messages (`Null`, `Boolean`, `Number`, `String`, `Array`,
    /// `Object`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "Null",
            Value::Bool(_) => "Boolean",
            Value::Number(_) => "Number",
            Value::String(_) => "String",
            Value::Array(_) => "Array",
            Value::Object(_) => "Object",
        }
    }

    /// Property lookup, case-insensitive; `None` when absent or not an object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(map) => map.get(key).or_else(|| {
                map.iter()
                    .find(|(k, _)| eq_ignore_case(k, key))
                    .map(|(_, v)| v)
            }),
            _ => None,
        }
    }

    /// Converts JSON (event payloads, `--contexts` files) into a value. Keys that differ only
    /// by case collapse into one (the first spelling, the last value), as the runner's
    /// case-insensitive dictionaries do.
    pub fn from_json(json: serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Value::String(s),
            serde_json::Value::Array(a) => {
                Value::Array(a.into_iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(o) => {
                let mut map: IndexMap<String, Value> = IndexMap::with_capacity(o.len());
                for (k, v) in o {
                    let v = Value::from_json(v);
                    let existing = map.keys().position(|existing| eq_ignore_case(existing, &k));
                    match existing.and_then(|i| map.get_index_mut(i)) {
                        Some((_, slot)) => *slot = v,
                        None => {
                            map.insert(k, v);
                        }
                    }
                }
                Value::Object(map)
            }
        }
    }

    /// Converts into JSON (`--json` reports, `runner eval` output). Integral numbers become
    /// JSON integers; NaN and infinities, which JSON cannot hold, become `null`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => number_to_json(*n),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Array(a) => serde_json::Value::Array(a.iter().map(Value::to_json).collect()),
            Value::Object(o) => {
                serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }
}

fn number_to_json(n: f64) -> serde_json::Value {
    // 2^53: beyond it f64 integers are no longer exact, so keep them as floats.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() <= EXACT {
        #[allow(clippy::cast_possible_truncation)]
        return serde_json::Value::from(n as i64);
    }
    serde_json::Number::from_f64(n)
        .map(serde_json::Value::Number)
        .unwrap_or(serde_json::Value::Null)
}

/// Formats a number as .NET's `Double.ToString("G15", InvariantCulture)` does, which is how
/// the runner turns numbers into strings: 15 significant digits, trailing zeros dropped,
/// scientific notation (`1E+15`, `1E-05`) when the exponent is ≥ 15 or < -4.
pub fn format_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_string();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if n == 0.0 {
        // .NET Core would print "-0"; GitHub's evaluators deliberately print "0".
        return "0".to_string();
    }
    // Rust rounds to 15 significant digits half-to-even on the exact binary value, as .NET's
    // Dragon4 does.
    let sci = format!("{:.14e}", n.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let digits = if digits.is_empty() { "0" } else { digits };
    let mut out = String::new();
    if n < 0.0 {
        out.push('-');
    }
    if !(-4..15).contains(&exponent) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('E');
        out.push(if exponent < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exponent.unsigned_abs()));
    } else if exponent < 0 {
        out.push_str("0.");
        for _ in 0..(-exponent - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let int_len = usize::try_from(exponent).unwrap_or(0) + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// Parses a string as the runner's `ParseNumber` does: trimmed, empty → 0, decimal with
/// optional sign, point and exponent, lowercase `0x` hex and `0o` octal as 32-bit integers,
/// `Infinity`/`-Infinity`; anything else is NaN.
pub fn parse_number(text: &str) -> f64 {
    let s = text.trim();
    if s.is_empty() {
        return 0.0;
    }
    if let Some(n) = parse_decimal(s) {
        return n;
    }
    let bytes = s.as_bytes();
    if bytes.len() > 2 && bytes[0] == b'0' && bytes[1] == b'x' {
        let hex = &s[2..];
        if hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            // Int32 hex parsing accepts up to 32 bits (two's complement), leading zeros aside.
            let significant = hex.trim_start_matches('0');
            let digits = if significant.is_empty() {
                "0"
            } else {
                significant
            };
            if significant.len() <= 8
                && let Ok(v) = u32::from_str_radix(digits, 16)
            {
                #[allow(clippy::cast_possible_wrap)]
                return f64::from(v as i32);
            }
        }
        return f64::NAN;
    }
    if bytes.len() > 2 && bytes[0] == b'0' && bytes[1] == b'o' {
        let oct = &s[2..];
        if oct.bytes().all(|b| (b'0'..=b'7').contains(&b))
            && let Ok(v) = u64::from_str_radix(&format!("0{}", oct.trim_start_matches('0')), 8)
            && let Ok(v) = u32::try_from(v)
        {
            #[allow(clippy::cast_possible_wrap)]
            return f64::from(v as i32);
        }
        return f64::NAN;
    }
    f64::NAN
}

/// .NET `Double.TryParse` with `AllowLeadingSign | AllowDecimalPoint | AllowExponent` in the
/// invariant culture (which also knows `Infinity` and `NaN`, case-insensitively).
fn parse_decimal(s: &str) -> Option<f64> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let rest = &s[i..];
    if rest.eq_ignore_ascii_case("infinity") {
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if rest.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    let start_digits = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - start_digits;
    let mut frac_digits = 0;
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        frac_digits = i - start;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        if i < bytes.len() && (bytes[i] == b'+' || bytes[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    // Rust's parser wants digits on at least one side of the point, which we checked; it
    // rejects a bare trailing '.', so normalise "1." and "1.e5".
    let normalised = s.replace(".e", ".0e").replace(".E", ".0E");
    let normalised = normalised
        .strip_suffix('.')
        .map_or(normalised.clone(), |n| format!("{n}.0"));
    normalised.parse::<f64>().ok()
}

/// Uppercases one character with the simple (one-to-one) mapping, as .NET's ordinal
/// ignore-case comparison does per UTF-16 unit (`ß` stays `ß`, so `'ß' == 'SS'` is false).
fn upper(c: char) -> char {
    // .NET's invariant casing leaves the dotless i alone (it would otherwise equal 'I').
    if c == '\u{131}' {
        return c;
    }
    let mut it = c.to_uppercase();
    match (it.next(), it.next()) {
        (Some(u), None) => u,
        _ => c,
    }
}

fn upper_utf16(s: &str) -> Vec<u16> {
    let mut out = Vec::with_capacity(s.len());
    let mut buf = [0u16; 2];
    for c in s.chars() {
        out.extend_from_slice(upper(c).encode_utf16(&mut buf));
    }
    out
}

/// `String.Equals(a, b, StringComparison.OrdinalIgnoreCase)`.
pub fn eq_ignore_case(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.eq_ignore_ascii_case(b)
        || (!a.is_ascii() || !b.is_ascii()) && a.chars().map(upper).eq(b.chars().map(upper))
}

/// `String.Compare(a, b, StringComparison.OrdinalIgnoreCase)`: UTF-16 units after simple
/// uppercasing.
pub fn cmp_ignore_case(a: &str, b: &str) -> Ordering {
    upper_utf16(a).cmp(&upper_utf16(b))
}

/// `a.IndexOf(b, OrdinalIgnoreCase) >= 0`.
pub fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let h: Vec<char> = haystack.chars().map(upper).collect();
    let n: Vec<char> = needle.chars().map(upper).collect();
    n.is_empty() || h.windows(n.len()).any(|w| w == n.as_slice())
}

/// `a.StartsWith(b, OrdinalIgnoreCase)`.
pub fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    let mut sc = s.chars().map(upper);
    prefix.chars().map(upper).all(|p| sc.next() == Some(p))
}

/// `a.EndsWith(b, OrdinalIgnoreCase)`.
pub fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    let mut sc = s.chars().rev().map(upper);
    suffix
        .chars()
        .rev()
        .map(upper)
        .all(|p| sc.next() == Some(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g15_formatting() {
        let rows: &[(f64, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (1e15, "1E+15"),
            (1e14, "100000000000000"),
            (1e-7, "1E-07"),
            (1e-5, "1E-05"),
            (0.0001, "0.0001"),
            (0.1 + 0.2, "0.3"),
            (123_456_789_012_345_678.0, "1.23456789012346E+17"),
            (1.5e300, "1.5E+300"),
            (2.5e-300, "2.5E-300"),
            (123.456, "123.456"),
            (999_999_999_999_999.0, "999999999999999"),
            (9_999_999_999_999_999.0, "1E+16"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (n, want) in rows {
            assert_eq!(format_number(*n), *want, "{n:?}");
        }
    }

    #[test]
    fn number_parsing() {
        let rows: &[(&str, f64)] = &[
            ("", 0.0),
            ("  ", 0.0),
            (" 12 ", 12.0),
            ("1.", 1.0),
            (".5", 0.5),
            ("1.e2", 100.0),
            ("-1e-2", -0.01),
            ("+3", 3.0),
            ("0x1F", 31.0),
            ("0xffffffff", -1.0),
            ("0x000000001", 1.0),
            ("0o17", 15.0),
            ("0o0000000000000000000000017", 15.0),
            ("0o37777777777", -1.0),
            ("Infinity", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
        ];
        for (s, want) in rows {
            assert_eq!(parse_number(s), *want, "{s:?}");
        }
        for s in [
            "0X1F",
            "0b1",
            "0x",
            "0x100000000",
            "1e",
            "e1",
            ".",
            "1,000",
            "abc",
            "0o8",
            "1_0",
        ] {
            assert!(parse_number(s).is_nan(), "{s:?}");
        }
    }

    #[test]
    fn ordinal_ignore_case() {
        assert!(eq_ignore_case("abc", "ABC"));
        assert!(eq_ignore_case("éa", "ÉA"));
        assert!(!eq_ignore_case("ß", "SS"));
        assert_eq!(cmp_ignore_case("a", "B"), Ordering::Less);
        assert_eq!(cmp_ignore_case("_", "a"), Ordering::Greater);
        assert!(contains_ignore_case("Hello", "LL"));
        assert!(starts_with_ignore_case("Hello", "hE"));
        assert!(ends_with_ignore_case("Hello", "LO"));
        assert!(!ends_with_ignore_case("lo", "hello"));
    }
}
