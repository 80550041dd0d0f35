//! Pattern lists as @actions/glob reads them: one pattern per line, `!` negation, patterns rooted
//! at the working directory (or `~`), search paths, and matching of absolute paths.

use super::GlobError;
use super::segment::{self, Segment};

/// How a path matched: bit 1 = as a directory, bit 2 = as a file (@actions/glob's `MatchKind`).
pub(crate) type MatchKind = u8;
/// Matched if the path is a directory.
pub(crate) const MATCH_DIRECTORY: MatchKind = 1;
/// Matched if the path is a file.
pub(crate) const MATCH_FILE: MatchKind = 2;
const MATCH_ALL: MatchKind = MATCH_DIRECTORY | MATCH_FILE;

/// One pattern, rooted and compiled.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    /// Matches are removed rather than added.
    pub(crate) negate: bool,
    /// The literal path before the first glob segment.
    pub(crate) search_path: String,
    /// The pattern ended with `/`: it matches directories only.
    trailing_separator: bool,
    /// Added for implicit descendants (`dir` → `dir/**`).
    is_implicit: bool,
    /// The path segments (`/` first), as @actions/glob's `Path` splits the rooted pattern.
    path_segments: Vec<String>,
    /// minimatch's compiled set: the rooted pattern split on `/`.
    compiled: Vec<Segment>,
}

/// The patterns of one glob, with implicit descendants added, and their search paths.
#[derive(Debug, Clone)]
pub(crate) struct PatternSet {
    patterns: Vec<Pattern>,
    /// Where the walk starts, in pattern order, without duplicates and descendants.
    pub(crate) search_paths: Vec<String>,
}

impl PatternSet {
    /// Parses newline-separated patterns rooted at `cwd` (an absolute path).
    /// `home` replaces `$HOME` for `~` when given.
    pub(crate) fn new(
        patterns: &str,
        cwd: &str,
        implicit_descendants: bool,
        home: Option<&str>,
    ) -> Result<Self, GlobError> {
        let mut list = Vec::new();
        for line in patterns.split('\n') {
            let line = js_trim(line);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let pattern = Pattern::parse(line, cwd, home)?;
            let needs_implicit = implicit_descendants
                && (pattern.trailing_separator
                    || pattern.path_segments.last().map(String::as_str) != Some("**"));
            let implicit = if needs_implicit {
                let mut segments = pattern.path_segments.clone();
                segments.push("**".to_owned());
                let text = join_segments(&segments);
                let text = if pattern.negate {
                    format!("!{text}")
                } else {
                    text
                };
                let mut implicit = Pattern::parse(&text, cwd, home)?;
                implicit.is_implicit = true;
                Some(implicit)
            } else {
                None
            };
            list.push(pattern);
            list.extend(implicit);
        }
        let search_paths = search_paths(&list);
        Ok(Self {
            patterns: list,
            search_paths,
        })
    }

    /// How the path with these segments (the absolute path split on `/`) matches.
    pub(crate) fn match_kind(&self, path: &ItemPath<'_>) -> MatchKind {
        let mut result = 0;
        for pattern in &self.patterns {
            if pattern.negate {
                result &= !pattern.match_kind(path);
            } else {
                result |= pattern.match_kind(path);
            }
        }
        result
    }

    /// Whether some positive pattern may match below this path.
    pub(crate) fn partial_match(&self, path: &ItemPath<'_>) -> bool {
        self.patterns
            .iter()
            .any(|pattern| !pattern.negate && pattern.partial_match(path))
    }
}

/// An absolute, normalized path split on `/`, with a trailing empty segment kept at the end so
/// the "with trailing slash" form is a slice away.
pub(crate) struct ItemPath<'a> {
    /// Segments plus one trailing `""` (unless the path is `/`, which already ends with one).
    segments: Vec<&'a str>,
    is_root: bool,
}

impl<'a> ItemPath<'a> {
    /// Splits an absolute normalized path (`/a/b`).
    pub(crate) fn new(path: &'a str) -> Self {
        let is_root = path == "/";
        let mut segments: Vec<&str> = if is_root {
            vec!["", ""]
        } else {
            path.split('/').collect()
        };
        if !is_root {
            segments.push("");
        }
        Self { segments, is_root }
    }

    fn plain(&self) -> &[&'a str] {
        if self.is_root {
            &self.segments
        } else {
            &self.segments[..self.segments.len() - 1]
        }
    }

    fn with_slash(&self) -> &[&'a str] {
        &self.segments
    }
}

impl Pattern {
    /// Parses one trimmed, non-comment line.
    fn parse(line: &str, cwd: &str, home: Option<&str>) -> Result<Self, GlobError> {
        let mut negate = false;
        let mut text = js_trim(line);
        while let Some(rest) = text.strip_prefix('!') {
            negate = !negate;
            text = js_trim(rest);
        }
        let rooted = fixup(text, cwd, home)?;
        let path_segments = split_path(&rooted);
        let trailing_separator = rooted.ends_with('/');
        let trimmed = safe_trim_trailing_separator(&rooted);

        let mut search_segments = Vec::new();
        for segment in &path_segments {
            let literal = get_literal(segment);
            if literal.is_empty() {
                break;
            }
            search_segments.push(literal);
        }
        let search_path = join_segments(&search_segments);

        // Separators are normalized, so splitting on `/` is minimatch's split on `/+`.
        let compiled = js_trim(&trimmed).split('/').map(segment::compile).collect();
        Ok(Self {
            negate,
            search_path,
            trailing_separator,
            is_implicit: false,
            path_segments,
            compiled,
        })
    }

    fn match_kind(&self, path: &ItemPath<'_>) -> MatchKind {
        let file = if self.path_segments.last().map(String::as_str) == Some("**") {
            if self.is_implicit {
                path.plain()
            } else {
                path.with_slash()
            }
        } else {
            path.plain()
        };
        if match_one(file, &self.compiled, false) {
            if self.trailing_separator {
                MATCH_DIRECTORY
            } else {
                MATCH_ALL
            }
        } else {
            0
        }
    }

    fn partial_match(&self, path: &ItemPath<'_>) -> bool {
        if path.is_root {
            return true;
        }
        match_one(path.plain(), &self.compiled, true)
    }
}

/// minimatch's `matchOne` with `dot: true`.
fn match_one(file: &[&str], pattern: &[Segment], partial: bool) -> bool {
    let (fl, pl) = (file.len(), pattern.len());
    let (mut fi, mut pi) = (0, 0);
    while fi < fl && pi < pl {
        let f = file[fi];
        match &pattern[pi] {
            Segment::Globstar => {
                let pr = pi + 1;
                if pr == pl {
                    return file[fi..].iter().all(|s| *s != "." && *s != "..");
                }
                let mut fr = fi;
                while fr < fl {
                    let swallowee = file[fr];
                    if match_one(&file[fr..], &pattern[pr..], partial) {
                        return true;
                    }
                    if swallowee == "." || swallowee == ".." {
                        break;
                    }
                    fr += 1;
                }
                return partial && fr == fl;
            }
            Segment::Literal(literal) => {
                if literal != f {
                    return false;
                }
            }
            Segment::Magic(magic) => {
                if !magic.matches(f) {
                    return false;
                }
            }
            Segment::Never => return false,
        }
        fi += 1;
        pi += 1;
    }
    if fi == fl && pi == pl {
        true
    } else if fi == fl {
        partial
    } else {
        fi == fl - 1 && file[fi].is_empty()
    }
}

/// Roots a pattern at `cwd` (or the home directory for `~`), refusing `.`/`..` segments.
fn fixup(pattern: &str, cwd: &str, home: Option<&str>) -> Result<String, GlobError> {
    let invalid = |reason: &str| GlobError::InvalidPattern {
        pattern: pattern.to_owned(),
        reason: reason.to_owned(),
    };
    if pattern.is_empty() {
        return Err(invalid("the pattern is empty"));
    }
    let literals: Vec<String> = split_path(pattern).iter().map(|s| get_literal(s)).collect();
    if literals
        .iter()
        .enumerate()
        .any(|(i, s)| (s == "." && i != 0) || s == "..")
    {
        return Err(invalid(
            "relative pathing '.' and '..' is not allowed (as in @actions/glob)",
        ));
    }
    let pattern = normalize_separators(pattern);
    let rooted = if pattern == "." || pattern.starts_with("./") {
        format!("{}{}", glob_escape(cwd), &pattern[1..])
    } else if pattern == "~" || pattern.starts_with("~/") {
        let home = match home {
            Some(home) => home.to_owned(),
            None => std::env::home_dir()
                .filter(|h| !h.as_os_str().is_empty())
                .ok_or_else(|| invalid("unable to determine the home directory"))?
                .to_string_lossy()
                .into_owned(),
        };
        if !home.starts_with('/') {
            return Err(invalid("the home directory is not an absolute path"));
        }
        format!("{}{}", glob_escape(&home), &pattern[1..])
    } else if pattern.starts_with('/') {
        pattern
    } else {
        let root = glob_escape(cwd);
        if root.ends_with('/') {
            format!("{root}{pattern}")
        } else {
            format!("{root}/{pattern}")
        }
    };
    Ok(normalize_separators(&rooted))
}

/// Escapes glob characters of a literal path (@actions/glob's `globEscape` on POSIX).
fn glob_escape(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\");
    // `[` is escaped as `[[]` when a `]` follows within the same segment.
    let mut out = String::with_capacity(escaped.len() + 8);
    for (i, c) in escaped.char_indices() {
        match c {
            '[' => {
                let rest = &escaped[i + 1..];
                let segment_end = rest.find('/').unwrap_or(rest.len());
                // `(?=[^/]+\])`: at least one character, then `]`, all within the segment.
                let closes = rest[..segment_end]
                    .char_indices()
                    .any(|(j, ch)| ch == ']' && j > 0);
                out.push_str(if closes { "[[]" } else { "[" });
            }
            '?' => out.push_str("[?]"),
            '*' => out.push_str("[*]"),
            _ => out.push(c),
        }
    }
    out
}

/// The literal text of a segment, or `""` when it contains glob magic (@actions/glob's
/// `getLiteral`).
fn get_literal(segment: &str) -> String {
    let chars: Vec<char> = segment.chars().collect();
    let mut literal = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            i += 1;
            literal.push(chars[i]);
            i += 1;
            continue;
        }
        if c == '*' || c == '?' {
            return String::new();
        }
        if c == '[' && i + 1 < chars.len() {
            let mut set = String::new();
            let mut closed = None;
            let mut i2 = i + 1;
            while i2 < chars.len() {
                let c2 = chars[i2];
                if c2 == '\\' && i2 + 1 < chars.len() {
                    i2 += 1;
                    set.push(chars[i2]);
                } else if c2 == ']' {
                    closed = Some(i2);
                    break;
                } else {
                    set.push(c2);
                }
                i2 += 1;
            }
            if let Some(closed) = closed {
                if set.chars().count() > 1 {
                    return String::new();
                }
                if !set.is_empty() {
                    literal.push_str(&set);
                    i = closed + 1;
                    continue;
                }
            }
        }
        literal.push(c);
        i += 1;
    }
    literal
}

/// Search paths: the positive patterns' literal prefixes, skipping duplicates and paths below
/// another pattern's search path (@actions/glob's `getSearchPaths`).
fn search_paths(patterns: &[Pattern]) -> Vec<String> {
    let positive: Vec<&Pattern> = patterns.iter().filter(|p| !p.negate).collect();
    let candidates: std::collections::HashSet<&str> =
        positive.iter().map(|p| p.search_path.as_str()).collect();
    let mut included: Vec<String> = Vec::new();
    for pattern in positive {
        let key = pattern.search_path.as_str();
        if included.iter().any(|s| s == key) {
            continue;
        }
        let mut found_ancestor = false;
        let mut temp = key.to_owned();
        let mut parent = dirname(&temp);
        while parent != temp {
            if candidates.contains(parent.as_str()) {
                found_ancestor = true;
                break;
            }
            temp = parent;
            parent = dirname(&temp);
        }
        if !found_ancestor {
            included.push(key.to_owned());
        }
    }
    included
}

/// Node's `path.dirname` for normalized POSIX paths.
fn dirname(p: &str) -> String {
    let p = safe_trim_trailing_separator(p);
    match p.rfind('/') {
        None => ".".to_owned(),
        Some(0) => "/".to_owned(),
        Some(i) => p[..i].to_owned(),
    }
}

/// Splits a pattern into path segments like @actions/glob's `Path` (root `/` first).
fn split_path(p: &str) -> Vec<String> {
    let p = safe_trim_trailing_separator(p);
    if let Some(rest) = p.strip_prefix('/') {
        let mut segments = vec!["/".to_owned()];
        if !rest.is_empty() {
            segments.extend(rest.split('/').map(str::to_owned));
        }
        segments
    } else {
        p.split('/').map(str::to_owned).collect()
    }
}

/// Joins segments like @actions/glob's `Path.toString`.
fn join_segments(segments: &[String]) -> String {
    let Some(first) = segments.first() else {
        return String::new();
    };
    let mut out = first.clone();
    let mut skip_slash = out.ends_with('/');
    for segment in &segments[1..] {
        if !std::mem::replace(&mut skip_slash, false) {
            out.push('/');
        }
        out.push_str(segment);
    }
    out
}

/// Collapses repeated `/`.
fn normalize_separators(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    let mut last_slash = false;
    for c in p.chars() {
        if c == '/' {
            if !last_slash {
                out.push(c);
            }
            last_slash = true;
        } else {
            out.push(c);
            last_slash = false;
        }
    }
    out
}

/// Normalizes separators and drops a trailing `/` unless the path is `/`.
fn safe_trim_trailing_separator(p: &str) -> String {
    let p = normalize_separators(p);
    if p.len() > 1
        && let Some(stripped) = p.strip_suffix('/')
    {
        return stripped.to_owned();
    }
    p
}

/// JavaScript's `String.prototype.trim` (Unicode white space plus the byte order mark).
fn js_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_search_paths() {
        let rows: &[(&str, &str)] = &[
            ("abc", "abc"),
            ("a\\*c", "a*c"),
            ("a*", ""),
            ("[a]b", "ab"),
            ("[ab]", ""),
            ("[ab", "[ab"),
            ("[]]", "[]]"),
            ("x?", ""),
        ];
        for (segment, literal) in rows {
            assert_eq!(get_literal(segment), *literal, "segment {segment:?}");
        }
    }

    #[test]
    fn glob_escape_like_the_toolkit() {
        let rows: &[(&str, &str)] = &[
            ("/a/b", "/a/b"),
            ("/a[1]/b", "/a[[]1]/b"),
            ("/a[/b]", "/a[/b]"),
            ("/a[]/b", "/a[]/b"),
            ("/q?/s*", "/q[?]/s[*]"),
            ("/back\\slash", "/back\\\\slash"),
        ];
        for (input, expected) in rows {
            assert_eq!(glob_escape(input), *expected, "input {input:?}");
        }
    }

    #[test]
    fn match_kinds_like_the_toolkit() {
        // (patterns, path, match kind, partial match), rooted at /ws, implicit descendants on.
        let rows: &[(&str, &str, MatchKind, bool)] = &[
            ("**", "/ws", MATCH_ALL, true),
            ("**", "/ws/a/b", MATCH_ALL, true),
            ("a", "/ws/a", MATCH_ALL, true),
            ("a", "/ws/a/b", MATCH_ALL, true),
            ("a", "/ws/ab", 0, false),
            ("a/", "/ws/a", MATCH_DIRECTORY, true),
            ("a/", "/ws/a/b", MATCH_ALL, true),
            ("a/*/", "/ws/a/b", MATCH_DIRECTORY, true),
            ("a/*/", "/ws/a/b/c", MATCH_ALL, true),
            ("*.txt/", "/ws/x.txt", MATCH_DIRECTORY, true),
            ("a/**", "/ws/a", MATCH_ALL, true),
            ("a/*", "/ws/a", 0, true),
            ("a/*", "/ws", 0, true),
            ("a/*", "/other", 0, false),
            ("a/*", "/", 0, true),
            ("**/x/**", "/ws/p/q", 0, true),
            ("**/x/**", "/ws/p/x", MATCH_ALL, true),
            ("a\nb", "/ws/b", MATCH_ALL, true),
            ("a\\*", "/ws/a*", MATCH_ALL, true),
            ("a\\*", "/ws/ab", 0, false),
            ("!a", "/ws/a", 0, false),
            ("**\n!a/b", "/ws/a/b/c", 0, true),
            ("**\n!a/b\na/b/c", "/ws/a/b/c", MATCH_ALL, true),
        ];
        for (patterns, path, kind, partial) in rows {
            let set = PatternSet::new(patterns, "/ws", true, None).expect("valid patterns");
            let item = ItemPath::new(path);
            assert_eq!(
                set.match_kind(&item),
                *kind,
                "patterns {patterns:?} path {path}"
            );
            assert_eq!(
                set.match_kind(&item) != 0 || set.partial_match(&item),
                *partial,
                "partial: patterns {patterns:?} path {path}"
            );
        }
    }

    #[test]
    fn search_paths_drop_duplicates_and_descendants() {
        let set = PatternSet::new("b/**\na/x/*.txt\n!c/**\na/**\nb/**", "/ws", true, None)
            .expect("valid patterns");
        assert_eq!(set.search_paths, vec!["/ws/b", "/ws/a"]);
    }
}
