//! YAML text → a tree of nodes that know their positions.
//!
//! `yaml_serde::Value` has no positions, so this walks the event stream of `libyaml-rs` (the
//! parser underneath `yaml_serde`). All `unsafe` of the workflow module is in [`EventParser`].
//! Anchors/aliases are expanded (with a budget against alias bombs) and `<<` merge keys are
//! applied; everything else about the meaning of scalars is left to the model builder.

use std::collections::HashMap;
use std::mem::MaybeUninit;

use libyaml_rs as sys;

use super::model::{Pos, SourceMap};

/// A position in the source: byte offset plus 1-based line and character column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mark {
    /// Byte offset into the source.
    pub index: usize,
    /// 1-based line / column.
    pub pos: Pos,
}

impl Mark {
    fn from_sys(mark: sys::yaml_mark_t) -> Self {
        Self {
            index: usize::try_from(mark.index).unwrap_or(usize::MAX),
            pos: Pos::new(
                usize::try_from(mark.line).unwrap_or(usize::MAX - 1) + 1,
                usize::try_from(mark.column).unwrap_or(usize::MAX - 1) + 1,
            ),
        }
    }
}

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

/// A scalar as loaded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Scalar {
    /// The value after unquoting / folding.
    pub value: String,
    pub style: Style,
    /// An explicit tag (`!!str`), fully resolved (`tag:yaml.org,2002:str`).
    pub tag: Option<String>,
    /// Offsets in `value` → file positions.
    pub map: SourceMap,
}

/// A YAML node with its start position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: NodeKind,
    pub start: Mark,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn pos(&self) -> Pos {
        match &self.kind {
            // A quoted/block scalar's value starts after its quote or header.
            NodeKind::Scalar(s) => s.map.pos_at(&s.value, 0),
            _ => self.start.pos,
        }
    }
}

/// A YAML syntax error (or a structural one found while building the tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    pub message: String,
    pub pos: Pos,
}

/// The number of nodes a document may expand to (aliases included), so that a few lines of
/// nested aliases cannot expand without bound; real workflows have a few thousand.
const NODE_BUDGET: usize = 100_000;
/// Nesting deeper than this is refused: the tree builders recurse, and debug builds use several
/// KiB of stack per level. Real workflows nest less than 10 levels.
const MAX_DEPTH: usize = 64;

/// A parsed YAML document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Document {
    /// The root node; `None` for an empty stream.
    pub root: Option<Node>,
    /// Where `<<` merge keys were used (GitHub rejects them; the loader warns).
    pub merge_keys: Vec<Pos>,
}

/// Parses the only document of `source`.
pub(crate) fn parse(source: &str) -> Result<Document, YamlError> {
    let mut parser = EventParser::new(source.as_bytes());
    let mut builder = Builder {
        source,
        anchors: HashMap::new(),
        budget: NODE_BUDGET,
        merge_keys: Vec::new(),
    };
    let first = parser.next()?;
    if !matches!(first.kind, Ev::StreamStart) {
        return Err(YamlError {
            message: "expected the start of a YAML stream".into(),
            pos: first.start.pos,
        });
    }
    let ev = parser.next()?;
    match ev.kind {
        Ev::StreamEnd => {
            return Ok(Document {
                root: None,
                merge_keys: Vec::new(),
            });
        }
        Ev::DocumentStart => {}
        _ => {
            return Err(YamlError {
                message: "expected a YAML document".into(),
                pos: ev.start.pos,
            });
        }
    }
    let root = builder.node(&mut parser, 0)?;
    let end = parser.next()?;
    if !matches!(end.kind, Ev::DocumentEnd) {
        return Err(YamlError {
            message: "expected the end of the YAML document".into(),
            pos: end.start.pos,
        });
    }
    let next = parser.next()?;
    match next.kind {
        Ev::StreamEnd => Ok(Document {
            root: Some(root),
            merge_keys: builder.merge_keys,
        }),
        _ => Err(YamlError {
            message: "a workflow file must contain exactly one YAML document".into(),
            pos: next.start.pos,
        }),
    }
}

struct Builder<'s> {
    source: &'s str,
    /// Anchored nodes with their height, so an alias cannot nest the tree past [`MAX_DEPTH`].
    anchors: HashMap<String, (Node, usize)>,
    budget: usize,
    merge_keys: Vec<Pos>,
}

impl Builder<'_> {
    fn spend(&mut self, n: usize, pos: Pos) -> Result<(), YamlError> {
        self.budget = self.budget.checked_sub(n).ok_or_else(|| YamlError {
            message: format!(
                "the document expands to more than {NODE_BUDGET} YAML nodes, the limit (every \
                 use of an alias counts its anchor's nodes again)"
            ),
            pos,
        })?;
        Ok(())
    }

    fn node(&mut self, parser: &mut EventParser<'_>, depth: usize) -> Result<Node, YamlError> {
        let ev = parser.next()?;
        self.node_from(ev, parser, depth)
    }

    fn node_from(
        &mut self,
        ev: Event,
        parser: &mut EventParser<'_>,
        depth: usize,
    ) -> Result<Node, YamlError> {
        if depth > MAX_DEPTH {
            return Err(YamlError {
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
                pos: ev.start.pos,
            });
        }
        self.spend(1, ev.start.pos)?;
        let start = ev.start;
        let (node, anchor) = match ev.kind {
            Ev::Alias(name) => {
                let (node, height) = self.anchors.get(&name).cloned().ok_or_else(|| YamlError {
                    message: format!("unknown anchor '*{name}'"),
                    pos: start.pos,
                })?;
                if depth + height > MAX_DEPTH {
                    return Err(YamlError {
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                        pos: start.pos,
                    });
                }
                self.spend(count_nodes(&node), start.pos)?;
                return Ok(node);
            }
            Ev::Scalar {
                anchor,
                tag,
                value,
                style,
                end,
            } => {
                let map = source_map(self.source, start, end, &value);
                let node = Node {
                    kind: NodeKind::Scalar(Scalar {
                        value,
                        style,
                        tag,
                        map,
                    }),
                    start,
                };
                (node, anchor)
            }
            Ev::SequenceStart { anchor } => {
                let mut items = Vec::new();
                loop {
                    let ev = parser.next()?;
                    if matches!(ev.kind, Ev::SequenceEnd) {
                        break;
                    }
                    items.push(self.node_from(ev, parser, depth + 1)?);
                }
                (
                    Node {
                        kind: NodeKind::Seq(items),
                        start,
                    },
                    anchor,
                )
            }
            Ev::MappingStart { anchor } => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                let mut merged: Vec<(Node, Node)> = Vec::new();
                loop {
                    let ev = parser.next()?;
                    if matches!(ev.kind, Ev::MappingEnd) {
                        break;
                    }
                    let key = self.node_from(ev, parser, depth + 1)?;
                    let value = self.node(parser, depth + 1)?;
                    if is_merge_key(&key) {
                        self.merge_keys.push(key.start.pos);
                        merge_into(&mut merged, value)?;
                    } else {
                        entries.push((key, value));
                    }
                }
                // Explicit keys win over merged ones, wherever the `<<` was written.
                for (k, v) in merged {
                    let exists = entries.iter().any(|(e, _)| same_scalar_key(e, &k));
                    if !exists {
                        entries.push((k, v));
                    }
                }
                (
                    Node {
                        kind: NodeKind::Map(entries),
                        start,
                    },
                    anchor,
                )
            }
            Ev::StreamStart
            | Ev::StreamEnd
            | Ev::DocumentStart
            | Ev::DocumentEnd
            | Ev::SequenceEnd
            | Ev::MappingEnd => {
                return Err(YamlError {
                    message: "unexpected YAML event".into(),
                    pos: start.pos,
                });
            }
        };
        if let Some(name) = anchor {
            let height = height(&node);
            self.anchors.insert(name, (node.clone(), height));
        }
        Ok(node)
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar(_) => 1,
        NodeKind::Seq(items) => 1 + items.iter().map(count_nodes).sum::<usize>(),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| count_nodes(k) + count_nodes(v))
                .sum::<usize>()
        }
    }
}

fn height(node: &Node) -> usize {
    match &node.kind {
        NodeKind::Scalar(_) => 0,
        NodeKind::Seq(items) => 1 + items.iter().map(height).max().unwrap_or(0),
        NodeKind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| height(k).max(height(v)))
                .max()
                .unwrap_or(0)
        }
    }
}

fn is_merge_key(key: &Node) -> bool {
    matches!(&key.kind, NodeKind::Scalar(s) if s.style == Style::Plain && s.value == "<<")
}

fn same_scalar_key(a: &Node, b: &Node) -> bool {
    match (&a.kind, &b.kind) {
        (NodeKind::Scalar(x), NodeKind::Scalar(y)) => x.value == y.value,
        _ => false,
    }
}

/// `<<: *a` or `<<: [*a, *b]`: earlier sources win over later ones, as YAML's merge spec says.
fn merge_into(merged: &mut Vec<(Node, Node)>, value: Node) -> Result<(), YamlError> {
    let sources = match value.kind {
        NodeKind::Map(_) => vec![value],
        NodeKind::Seq(items) => items,
        NodeKind::Scalar(_) => {
            return Err(YamlError {
                message: "a merge key '<<' needs a mapping or a list of mappings".into(),
                pos: value.start.pos,
            });
        }
    };
    for source in sources {
        let NodeKind::Map(entries) = source.kind else {
            return Err(YamlError {
                message: "a merge key '<<' needs a mapping or a list of mappings".into(),
                pos: source.start.pos,
            });
        };
        for (k, v) in entries {
            if !merged.iter().any(|(e, _)| same_scalar_key(e, &k)) {
                merged.push((k, v));
            }
        }
    }
    Ok(())
}

/// Aligns the loaded value with its source text to map value offsets back to positions.
///
/// Walks the value's characters and, for each, advances through the raw text to the next equal
/// character. Characters produced by escapes or folding (that have no equal raw character) keep
/// the current position. A new segment starts wherever the raw position is not simply the next
/// column on the same line.
fn source_map(source: &str, start: Mark, end: Mark, value: &str) -> SourceMap {
    let raw = source
        .get(start.index..end.index.max(start.index))
        .unwrap_or("");
    // Raw characters with their positions.
    let mut raw_chars: Vec<(char, Pos)> = Vec::with_capacity(raw.len());
    let mut pos = start.pos;
    for c in raw.chars() {
        raw_chars.push((c, pos));
        if c == '\n' {
            pos = Pos::new(pos.line + 1, 1);
        } else {
            pos.column += 1;
        }
    }
    let mut segments: Vec<(usize, Pos)> = Vec::new();
    let mut cursor = 0usize;
    let mut last: Option<Pos> = None;
    for (offset, c) in value.char_indices() {
        let found = raw_chars
            .get(cursor..)
            .and_then(|rest| rest.iter().position(|(rc, _)| *rc == c));
        let here = match found {
            Some(i) => {
                let p = raw_chars[cursor + i].1;
                cursor += i + 1;
                p
            }
            None => raw_chars
                .get(cursor)
                .map_or(last.unwrap_or(start.pos), |(_, p)| *p),
        };
        let contiguous = last.is_some_and(|l| l.line == here.line && l.column + 1 == here.column);
        if !contiguous {
            segments.push((offset, here));
        }
        last = Some(here);
    }
    if segments.is_empty() {
        // Empty value: point after an opening quote if there is one.
        let p = match raw.chars().next() {
            Some('"' | '\'') => Pos::new(start.pos.line, start.pos.column + 1),
            _ => start.pos,
        };
        segments.push((0, p));
    }
    SourceMap::from_segments(segments)
}

// ---------------------------------------------------------------------------------------------
// The only unsafe code: a safe, owning wrapper around libyaml-rs' event parser.

enum Ev {
    StreamStart,
    StreamEnd,
    DocumentStart,
    DocumentEnd,
    Alias(String),
    Scalar {
        anchor: Option<String>,
        tag: Option<String>,
        value: String,
        style: Style,
        end: Mark,
    },
    SequenceStart {
        anchor: Option<String>,
    },
    SequenceEnd,
    MappingStart {
        anchor: Option<String>,
    },
    MappingEnd,
}

struct Event {
    kind: Ev,
    start: Mark,
}

/// Owns an initialised `yaml_parser_t` reading from `input`.
struct EventParser<'a> {
    /// Boxed because libyaml stores a pointer to the parser itself (its read handler data), so
    /// the parser must never move after `yaml_parser_set_input_string`.
    parser: Box<MaybeUninit<sys::yaml_parser_t>>,
    initialised: bool,
    /// Once an error was reported, every later call reports it again instead of calling libyaml.
    failed: Option<YamlError>,
    _input: std::marker::PhantomData<&'a [u8]>,
}

impl<'a> EventParser<'a> {
    fn new(input: &'a [u8]) -> Self {
        let mut parser: Box<MaybeUninit<sys::yaml_parser_t>> = Box::new_uninit();
        let ptr = parser.as_mut_ptr();
        // SAFETY: `ptr` points to writable, properly aligned memory for a `yaml_parser_t`, which
        // `yaml_parser_initialize` fully initialises on success.
        let ok = unsafe { sys::yaml_parser_initialize(ptr) }.ok;
        let mut this = Self {
            parser,
            initialised: ok,
            failed: None,
            _input: std::marker::PhantomData,
        };
        if ok {
            // SAFETY: the parser was initialised above and lives in a Box that never moves
            // while `self` exists; `input` outlives `self` (lifetime `'a`), so the pointer libyaml
            // keeps stays valid. An empty slice still has a non-null (dangling) pointer, which
            // libyaml never reads because the length is 0.
            unsafe {
                sys::yaml_parser_set_encoding(ptr, sys::YAML_UTF8_ENCODING);
                sys::yaml_parser_set_input_string(ptr, input.as_ptr(), input.len() as u64);
            }
        } else {
            this.failed = Some(YamlError {
                message: "cannot initialise the YAML parser".into(),
                pos: Pos::new(1, 1),
            });
        }
        this
    }

    fn next(&mut self) -> Result<Event, YamlError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let ptr = self.parser.as_mut_ptr();
        let mut event = MaybeUninit::<sys::yaml_event_t>::uninit();
        // SAFETY: the parser is initialised (`failed` is None) and its input is alive; `event`
        // is writable memory that `yaml_parser_parse` initialises when it succeeds.
        let ok = unsafe { sys::yaml_parser_parse(ptr, event.as_mut_ptr()) }.ok;
        if !ok {
            // SAFETY: the parser is initialised; on failure libyaml sets `problem` (a static
            // NUL-terminated string or null) and `problem_mark`.
            let err = unsafe { parse_error(&*ptr) };
            self.failed = Some(err.clone());
            return Err(err);
        }
        // SAFETY: `yaml_parser_parse` succeeded, so `event` is initialised; we copy everything
        // out of it and then release its allocations exactly once.
        unsafe {
            let event_ptr = event.as_mut_ptr();
            let converted = convert(&*event_ptr);
            sys::yaml_event_delete(event_ptr);
            match converted {
                Ok(ev) => Ok(ev),
                Err(e) => {
                    self.failed = Some(e.clone());
                    Err(e)
                }
            }
        }
    }
}

impl Drop for EventParser<'_> {
    fn drop(&mut self) {
        if self.initialised {
            // SAFETY: initialised in `new` and deleted only here, once.
            unsafe { sys::yaml_parser_delete(self.parser.as_mut_ptr()) }
        }
    }
}

/// Reads a NUL-terminated string libyaml owns.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated byte string.
unsafe fn c_string(p: *const u8) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    let s = unsafe { std::ffi::CStr::from_ptr(p.cast()) };
    Some(String::from_utf8_lossy(s.to_bytes()).into_owned())
}

/// # Safety
/// `parser` must be an initialised parser on which `yaml_parser_parse` just failed.
unsafe fn parse_error(parser: &sys::yaml_parser_t) -> YamlError {
    // SAFETY: `problem`/`context` are null or static NUL-terminated strings (caller contract).
    let problem =
        unsafe { c_string(parser.problem.cast()) }.unwrap_or_else(|| "invalid YAML".to_string());
    // SAFETY: as above.
    let context = unsafe { c_string(parser.context.cast()) };
    let mark = Mark::from_sys(parser.problem_mark);
    let message = match context {
        Some(ctx) => format!("invalid YAML: {problem} ({ctx})"),
        None => format!("invalid YAML: {problem}"),
    };
    YamlError {
        message,
        pos: mark.pos,
    }
}

/// # Safety
/// `ev` must be an event initialised by a successful `yaml_parser_parse`.
unsafe fn convert(ev: &sys::yaml_event_t) -> Result<Event, YamlError> {
    let start = Mark::from_sys(ev.start_mark);
    let end = Mark::from_sys(ev.end_mark);
    // SAFETY (all union reads below): `type_` says which union member libyaml initialised, and
    // its pointers are null or valid NUL-terminated strings / `length` bytes owned by the event.
    let kind = unsafe {
        match ev.type_ {
            sys::YAML_STREAM_START_EVENT => Ev::StreamStart,
            sys::YAML_STREAM_END_EVENT => Ev::StreamEnd,
            sys::YAML_DOCUMENT_START_EVENT => Ev::DocumentStart,
            sys::YAML_DOCUMENT_END_EVENT => Ev::DocumentEnd,
            sys::YAML_ALIAS_EVENT => Ev::Alias(c_string(ev.data.alias.anchor).unwrap_or_default()),
            sys::YAML_SCALAR_EVENT => {
                let s = &ev.data.scalar;
                let len = usize::try_from(s.length).unwrap_or(0);
                let bytes: &[u8] = if s.value.is_null() || len == 0 {
                    &[]
                } else {
                    std::slice::from_raw_parts(s.value, len)
                };
                let value = String::from_utf8(bytes.to_vec()).map_err(|_| YamlError {
                    message: "invalid UTF-8 in a scalar".into(),
                    pos: start.pos,
                })?;
                let style = match s.style {
                    sys::YAML_SINGLE_QUOTED_SCALAR_STYLE => Style::SingleQuoted,
                    sys::YAML_DOUBLE_QUOTED_SCALAR_STYLE => Style::DoubleQuoted,
                    sys::YAML_LITERAL_SCALAR_STYLE => Style::Literal,
                    sys::YAML_FOLDED_SCALAR_STYLE => Style::Folded,
                    _ => Style::Plain,
                };
                Ev::Scalar {
                    anchor: c_string(s.anchor),
                    tag: c_string(s.tag),
                    value,
                    style,
                    end,
                }
            }
            sys::YAML_SEQUENCE_START_EVENT => Ev::SequenceStart {
                anchor: c_string(ev.data.sequence_start.anchor),
            },
            sys::YAML_SEQUENCE_END_EVENT => Ev::SequenceEnd,
            sys::YAML_MAPPING_START_EVENT => Ev::MappingStart {
                anchor: c_string(ev.data.mapping_start.anchor),
            },
            sys::YAML_MAPPING_END_EVENT => Ev::MappingEnd,
            _ => {
                return Err(YamlError {
                    message: "unexpected YAML event".into(),
                    pos: start.pos,
                });
            }
        }
    };
    Ok(Event { kind, start })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(node: &Node) -> &Scalar {
        match &node.kind {
            NodeKind::Scalar(s) => s,
            other => panic!("not a scalar: {other:?}"),
        }
    }

    fn map_get<'n>(node: &'n Node, key: &str) -> &'n Node {
        match &node.kind {
            NodeKind::Map(entries) => {
                &entries
                    .iter()
                    .find(|(k, _)| scalar(k).value == key)
                    .expect("key")
                    .1
            }
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn positions_of_plain_quoted_and_block_scalars() {
        let src = "a: hello\nb: \"x\\ty\"\nc: |\n  one\n  two ${{ x }}\nd: 'it''s'\né: ünï\n";
        let root = parse(src).unwrap().root.unwrap();
        let a = scalar(map_get(&root, "a"));
        assert_eq!(a.map.pos_at(&a.value, 0), Pos::new(1, 4));
        assert_eq!(a.map.pos_at(&a.value, 2), Pos::new(1, 6));
        let b = scalar(map_get(&root, "b"));
        assert_eq!(b.value, "x\ty");
        assert_eq!(b.map.pos_at(&b.value, 0), Pos::new(2, 5));
        assert_eq!(b.map.pos_at(&b.value, 2), Pos::new(2, 8));
        let c = scalar(map_get(&root, "c"));
        assert_eq!(c.value, "one\ntwo ${{ x }}\n");
        assert_eq!(c.map.pos_at(&c.value, 0), Pos::new(4, 3));
        let off = c.value.find("${{").unwrap();
        assert_eq!(c.map.pos_at(&c.value, off), Pos::new(5, 7));
        let d = scalar(map_get(&root, "d"));
        assert_eq!(d.value, "it's");
        assert_eq!(d.map.pos_at(&d.value, 3), Pos::new(6, 9));
        // Columns count characters, not bytes.
        let e = scalar(map_get(&root, "é"));
        assert_eq!(e.map.pos_at(&e.value, "ün".len()), Pos::new(7, 6));
    }

    #[test]
    fn folded_and_multiline_plain_scalars_map_each_line() {
        let src = "k: >\n  first\n  second\np: one\n   two\n";
        let root = parse(src).unwrap().root.unwrap();
        let k = scalar(map_get(&root, "k"));
        assert_eq!(k.value, "first second\n");
        assert_eq!(
            k.map.pos_at(&k.value, k.value.find("second").unwrap()),
            Pos::new(3, 3)
        );
        let p = scalar(map_get(&root, "p"));
        assert_eq!(p.value, "one two");
        assert_eq!(p.map.pos_at(&p.value, 4), Pos::new(5, 4));
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let src = "base: &b\n  x: 1\n  y: 2\nuse: *b\nm:\n  <<: *b\n  y: 3\n";
        let root = parse(src).unwrap().root.unwrap();
        assert_eq!(scalar(map_get(map_get(&root, "use"), "x")).value, "1");
        let m = map_get(&root, "m");
        assert_eq!(parse(src).unwrap().merge_keys, [Pos::new(6, 3)]);
        assert_eq!(scalar(map_get(m, "x")).value, "1");
        assert_eq!(scalar(map_get(m, "y")).value, "3");
    }

    #[test]
    fn errors_carry_positions() {
        let cases: &[(&str, Pos, &str)] = &[
            (
                "a: b: c\n",
                Pos::new(1, 5),
                "mapping values are not allowed",
            ),
            (
                "a:\n  - x\n  y: 1\n",
                Pos::new(3, 3),
                "did not find expected '-' indicator",
            ),
            ("a: \"open\n", Pos::new(2, 1), "unexpected end of stream"),
            ("a: *nope\n", Pos::new(1, 4), "unknown anchor '*nope'"),
            (
                "a: 1\n---\nb: 2\n",
                Pos::new(2, 1),
                "exactly one YAML document",
            ),
            ("a: [1, 2\n", Pos::new(2, 1), "did not find expected"),
        ];
        for (src, pos, msg) in cases {
            let err = parse(src).unwrap_err();
            assert!(err.message.contains(msg), "{src:?}: {}", err.message);
            assert_eq!(err.pos, *pos, "{src:?}: {}", err.message);
        }
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        for src in [
            "[".repeat(100_000),
            "{a: ".repeat(10_000),
            "- ".repeat(10_000),
        ] {
            let err = parse(&src).unwrap_err();
            assert!(
                err.message.contains("nesting deeper than 64"),
                "{}",
                err.message
            );
        }
        let ok = format!("{}1{}", "[".repeat(60), "]".repeat(60));
        assert!(parse(&ok).is_ok());
        // Aliases cannot be used to stack deep trees on top of each other.
        let mut src = format!("a0: &a0 {}1{}\n", "[".repeat(30), "]".repeat(30));
        for i in 1..10 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} {}*a{p}{}\n",
                "[".repeat(30),
                "]".repeat(30)
            ));
        }
        let err = parse(&src).unwrap_err();
        assert!(
            err.message.contains("nesting deeper than 64"),
            "{}",
            err.message
        );
        assert_eq!(err.pos.line, 3);
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&src).unwrap_err();
        assert_eq!(
            err.message,
            "the document expands to more than 100000 YAML nodes, the limit (every use of an \
             alias counts its anchor's nodes again)"
        );
    }

    #[test]
    fn empty_and_garbage_inputs_do_not_panic() {
        assert_eq!(parse("").unwrap().root, None);
        assert_eq!(parse("# only a comment\n").unwrap().root, None);
        for src in [
            "\u{0}",
            "{",
            "[",
            "- - - -",
            "!!binary x",
            "&a *a",
            "? ? ?",
            "\t\ta",
            "%YAML 9.9\n---\n",
        ] {
            let _ = parse(src);
        }
    }
}

#[cfg(test)]
mod prop {
    use proptest::prelude::*;

    use super::*;

    fn check_positions(node: &Node, lines: usize) {
        assert!(node.start.pos.line >= 1 && node.start.pos.line <= lines + 1);
        match &node.kind {
            NodeKind::Scalar(s) => {
                for (offset, _) in s.value.char_indices() {
                    let p = s.map.pos_at(&s.value, offset);
                    assert!(p.line >= 1 && p.line <= lines + 1 && p.column >= 1, "{p:?}");
                }
            }
            NodeKind::Seq(items) => items.iter().for_each(|i| check_positions(i, lines)),
            NodeKind::Map(entries) => entries.iter().for_each(|(k, v)| {
                check_positions(k, lines);
                check_positions(v, lines);
            }),
        }
    }

    proptest! {
        /// Any text parses or fails with a position inside the text; nothing panics.
        #[test]
        fn never_panics_and_positions_stay_in_the_text(
            src in "([a-z:\\-\\[\\]{},&*!|>'\"#?% \\t\\n]|\\$\\{\\{|é){0,120}"
        ) {
            let lines = src.split('\n').count();
            match parse(&src) {
                Ok(doc) => {
                    if let Some(node) = doc.root {
                        check_positions(&node, lines);
                    }
                }
                Err(e) => prop_assert!(e.pos.line >= 1 && e.pos.line <= lines + 1, "{e:?}"),
            }
        }
    }
}
