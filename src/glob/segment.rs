//! One path segment of a pattern, compiled the way the runner's bundled minimatch 3 compiles it
//! with @actions/glob's options (`dot`, `nobrace`, `noext`, `nonegate`, `nocomment`, case
//! sensitive). Matching works on UTF-16 code units because that is what the JavaScript regular
//! expressions minimatch builds (without the `u` flag) see.

/// A compiled segment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Segment {
    /// `**` alone: any number of segments.
    Globstar,
    /// No glob magic: compared for equality after removing escapes.
    Literal(String),
    /// Wildcards and/or character classes.
    Magic(Magic),
    /// A segment whose regular expression would not compile in JavaScript: matches nothing.
    Never,
}

/// The tokens of a segment with glob magic.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Magic {
    tokens: Vec<Token>,
    /// minimatch refuses `.` and `..` for segments whose expression starts with a class.
    no_dot_dirs: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Unit(u16),
    /// `*`: any run of code units.
    Star,
    /// `?`: exactly one code unit.
    Any,
    Class(Class),
}

#[derive(Debug, Clone, PartialEq)]
struct Class {
    negated: bool,
    ranges: Vec<(u16, u16)>,
}

impl Class {
    fn contains(&self, unit: u16) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= unit && unit <= hi) != self.negated
    }
}

/// An element of a character class as it appears in minimatch's generated expression.
#[derive(Debug, Clone, Copy)]
struct ClassElem {
    unit: u16,
    /// Written without a backslash, so `^` (first) and `-` keep their class meaning.
    raw: bool,
}

const fn unit(c: char) -> u16 {
    c as u16
}

/// Characters minimatch escapes in its expressions: `().*{}+?[]^$\!`.
fn re_special(c: u16) -> bool {
    matches!(
        char::from_u32(u32::from(c)),
        Some('(' | ')' | '.' | '*' | '{' | '}' | '+' | '?' | '[' | ']' | '^' | '$' | '\\' | '!')
    )
}

/// The result of parsing (part of) a segment.
struct Parsed {
    tokens: Vec<Token>,
    magic: bool,
    never: bool,
}

/// Compiles one `/`-free segment.
pub(crate) fn compile(segment: &str) -> Segment {
    if segment == "**" {
        return Segment::Globstar;
    }
    if segment.is_empty() {
        return Segment::Literal(String::new());
    }
    let units: Vec<u16> = segment.encode_utf16().collect();
    let parsed = parse(&units);
    if !parsed.magic {
        return Segment::Literal(glob_unescape(segment));
    }
    if parsed.never {
        return Segment::Never;
    }
    let no_dot_dirs =
        !segment.starts_with('.') && matches!(parsed.tokens.first(), Some(Token::Class(_)));
    Segment::Magic(Magic {
        tokens: parsed.tokens,
        no_dot_dirs,
    })
}

/// minimatch's `globUnescape`: `\x` becomes `x` (a trailing backslash stays).
fn glob_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        // JavaScript's `.` does not match line terminators, so `\` before one stays.
        if c == '\\'
            && let Some(&next) = chars.peek()
            && !is_line_terminator(next as u32)
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

fn is_line_terminator(c: u32) -> bool {
    matches!(c, 0x0a | 0x0d | 0x2028 | 0x2029)
}

/// A port of minimatch 3's `parse` for `noext`: the state machine decides which characters are
/// literal, which are wildcards and where classes start and end.
fn parse(pat: &[u16]) -> Parsed {
    let mut tokens: Vec<Token> = Vec::new();
    let mut magic = false;
    let mut never = false;
    let mut escaping = false;
    let mut in_class = false;
    let mut class_start: isize = -1;
    let mut token_class_start = 0usize;
    let mut elems: Vec<ClassElem> = Vec::new();

    let mut i = 0usize;
    while i < pat.len() {
        let c = pat[i];
        // A character standing for itself: an element of the open class, or a literal unit.
        let mut literal = |raw: bool| {
            if in_class {
                elems.push(ClassElem { unit: c, raw });
            } else {
                tokens.push(Token::Unit(c));
            }
        };
        if escaping && re_special(c) {
            literal(false);
            escaping = false;
            i += 1;
            continue;
        }
        match char::from_u32(u32::from(c)) {
            Some('\\') => {
                escaping = true;
            }
            Some(ch @ ('?' | '*' | '+' | '@' | '!')) => {
                // `escaping` is deliberately left as is: minimatch does not reset it here.
                if in_class {
                    let raw_unit = if ch == '!' && i as isize == class_start + 1 {
                        unit('^')
                    } else {
                        c
                    };
                    elems.push(ClassElem {
                        unit: raw_unit,
                        raw: true,
                    });
                } else {
                    match ch {
                        '*' => {
                            tokens.push(Token::Star);
                            magic = true;
                        }
                        '?' => {
                            tokens.push(Token::Any);
                            magic = true;
                        }
                        _ => tokens.push(Token::Unit(c)),
                    }
                }
            }
            Some(ch @ ('(' | ')' | '|')) => {
                literal(ch == '(');
                if ch == '|' {
                    escaping = false;
                }
            }
            Some('[') => {
                if in_class {
                    literal(false);
                } else {
                    in_class = true;
                    class_start = i as isize;
                    token_class_start = tokens.len();
                    elems.clear();
                }
            }
            Some(']') => {
                if i as isize == class_start + 1 || !in_class {
                    literal(false);
                    escaping = false;
                } else {
                    let start = (class_start + 1) as usize;
                    let raw_source = &pat[start..i];
                    in_class = false;
                    if js_class_source_valid(raw_source) {
                        magic = true;
                        match build_class(&elems) {
                            Some(class) => tokens.push(Token::Class(class)),
                            // The raw source passed JavaScript's check but the generated class
                            // does not compile: minimatch then matches nothing.
                            None => never = true,
                        }
                    } else {
                        // Not a valid class: a literal `[`, the contents parsed again, a `]`.
                        tokens.truncate(token_class_start);
                        tokens.push(Token::Unit(unit('[')));
                        let sub = parse(raw_source);
                        tokens.extend(sub.tokens);
                        magic |= sub.magic;
                        never |= sub.never;
                        tokens.push(Token::Unit(unit(']')));
                    }
                }
            }
            _ => {
                let raw = if escaping {
                    escaping = false;
                    true
                } else {
                    !(re_special(c) && !(c == unit('^') && in_class))
                };
                literal(raw);
            }
        }
        i += 1;
    }

    if in_class {
        // An unclosed class: a literal `[` followed by the rest parsed again.
        let start = (class_start + 1) as usize;
        tokens.truncate(token_class_start);
        tokens.push(Token::Unit(unit('[')));
        if start == pat.len() {
            // minimatch's sub-parse of an empty rest returns a bare string, so its expression
            // gets the text `undefined` appended: `*[` matches names ending in `[undefined`.
            tokens.extend("undefined".encode_utf16().map(Token::Unit));
        }
        let sub = parse(&pat[start..]);
        tokens.extend(sub.tokens);
        magic |= sub.magic;
        never |= sub.never;
    }
    if escaping {
        tokens.push(Token::Unit(unit('\\')));
    }
    Parsed {
        tokens,
        magic,
        never,
    }
}

/// Builds a class from the elements of minimatch's expression, with JavaScript's class syntax:
/// a raw leading `^` negates, `a-b` is a range. `None` when a range is out of order.
fn build_class(elems: &[ClassElem]) -> Option<Class> {
    let (negated, rest) = match elems.first() {
        Some(first) if first.raw && first.unit == unit('^') => (true, &elems[1..]),
        _ => (false, elems),
    };
    let mut ranges = Vec::with_capacity(rest.len());
    let mut k = 0;
    while k < rest.len() {
        let lo = rest[k].unit;
        if k + 2 < rest.len() && rest[k + 1].raw && rest[k + 1].unit == unit('-') {
            let hi = rest[k + 2].unit;
            if lo > hi {
                return None;
            }
            ranges.push((lo, hi));
            k += 3;
        } else {
            ranges.push((lo, lo));
            k += 1;
        }
    }
    Some(Class { negated, ranges })
}

/// Whether `new RegExp('[' + source + ']')` compiles, for the sources minimatch can produce:
/// the check that matters is ranges out of order (`[z-a]`); `\d`, `\w`, `\s` (and their
/// uppercase forms) are class escapes that JavaScript accepts next to `-` without a range.
fn js_class_source_valid(source: &[u16]) -> bool {
    // A leading `]` closes an empty class in JavaScript; what follows is ordinary expression
    // text, valid unless it has unbalanced parentheses.
    if source.first() == Some(&unit(']')) {
        let mut depth = 0i32;
        let mut k = 1;
        while k < source.len() {
            let c = source[k];
            if c == unit('\\') {
                k += 2;
                continue;
            }
            if c == unit('(') {
                depth += 1;
            } else if c == unit(')') {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            k += 1;
        }
        return depth == 0;
    }
    // Atoms: Some(unit) for a character, None for a class escape.
    let mut atoms: Vec<(Option<u16>, bool)> = Vec::new(); // (atom, is_raw_dash)
    let mut k = 0;
    if source.first() == Some(&unit('^')) {
        k = 1;
    }
    while k < source.len() {
        let c = source[k];
        if c == unit('\\') {
            let Some(&next) = source.get(k + 1) else {
                return false;
            };
            let atom = match char::from_u32(u32::from(next)) {
                Some('d' | 'D' | 'w' | 'W' | 's' | 'S') => None,
                Some('b') => Some(0x08),
                Some('n') => Some(0x0a),
                Some('r') => Some(0x0d),
                Some('t') => Some(0x09),
                Some('f') => Some(0x0c),
                Some('v') => Some(0x0b),
                _ => Some(next),
            };
            atoms.push((atom, false));
            k += 2;
            continue;
        }
        atoms.push((Some(c), c == unit('-')));
        k += 1;
    }
    let mut k = 0;
    while k < atoms.len() {
        if k + 2 < atoms.len() && atoms[k + 1].1 {
            if let (Some(lo), Some(hi)) = (atoms[k].0, atoms[k + 2].0)
                && lo > hi
            {
                return false;
            }
            k += 3;
        } else {
            k += 1;
        }
    }
    true
}

impl Magic {
    /// Whether the segment (a path component) matches, as the anchored expression would.
    pub(crate) fn matches(&self, segment: &str) -> bool {
        if segment.is_empty() {
            return false;
        }
        if self.no_dot_dirs && (segment == "." || segment == "..") {
            return false;
        }
        if segment.is_ascii() {
            let bytes = segment.as_bytes();
            // `(?=.)`: JavaScript's `.` does not match `\n` or `\r`.
            if matches!(bytes[0], b'\n' | b'\r') {
                return false;
            }
            return match_units(&self.tokens, bytes.len(), |i| u16::from(bytes[i]));
        }
        let units: Vec<u16> = segment.encode_utf16().collect();
        if is_line_terminator(u32::from(units[0])) {
            return false;
        }
        match_units(&self.tokens, units.len(), |i| units[i])
    }
}

/// Anchored wildcard matching with single-unit tokens and `*`, backtracking to the last star.
fn match_units(tokens: &[Token], len: usize, at: impl Fn(usize) -> u16) -> bool {
    let (mut t, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while s < len {
        let step = match tokens.get(t) {
            Some(Token::Star) => {
                star = Some((t, s));
                t += 1;
                continue;
            }
            Some(Token::Unit(u)) => *u == at(s),
            Some(Token::Any) => true,
            Some(Token::Class(class)) => class.contains(at(s)),
            None => false,
        };
        if step {
            t += 1;
            s += 1;
        } else if let Some((st, ss)) = star {
            t = st + 1;
            s = ss + 1;
            star = Some((st, ss + 1));
        } else {
            return false;
        }
    }
    tokens[t..].iter().all(|tok| *tok == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        match compile(pattern) {
            Segment::Globstar => true,
            Segment::Literal(l) => l == name,
            Segment::Magic(magic) => magic.matches(name),
            Segment::Never => false,
        }
    }

    #[test]
    fn segments_match_like_minimatch_3() {
        let rows: &[(&str, &str, bool)] = &[
            ("*", "a", true),
            ("*", ".hidden", true),
            ("*", "", false),
            ("*.js", "a.js", true),
            ("*.js", "a.jsx", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("?", "a", true),
            ("?", "ab", false),
            ("?", "é", true),
            ("?", "😀", false),
            ("??", "😀", true),
            ("[abc]", "b", true),
            ("[abc]", "d", false),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "dx", true),
            ("[!a-c]x", "bx", false),
            ("[^a-c]x", "bx", false),
            ("[]a]", "]", true),
            ("[]a]", "a", true),
            ("[z-a]", "[z-a]", true),
            ("[z-a]", "z", false),
            ("[abc", "[abc", true),
            ("[a*", "[abc", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("a\\b", "ab", true),
            ("{a,b}", "{a,b}", true),
            ("{a,b}", "a", false),
            ("+(a)", "+(a)", true),
            ("!(a)", "!(a)", true),
            ("@(a|b)", "@(a|b)", true),
            ("a|b", "a|b", true),
            ("[[]", "[", true),
            ("[*]", "*", true),
            ("[?]", "a", false),
            ("[.]x", ".x", true),
            ("[a-]", "-", true),
            ("[-a]", "-", true),
            ("[\\]]", "]", true),
            ("x[", "x[", true),
            ("[]", "[]", true),
            ("[!]", "q", true),
            ("a**", "abc", true),
            ("*[", "x[", false),
            ("*[", "x[undefined", true),
            ("a[", "a[", true),
        ];
        for (pattern, name, expected) in rows {
            assert_eq!(
                m(pattern, name),
                *expected,
                "pattern {pattern:?} name {name:?}"
            );
        }
    }
}
