//! Tokens of the expression language, split the way the runner's lexer splits them: a run of
//! non-boundary characters is one token, so `1abc` or `a+b` is one (unexpected) token.

use super::value::parse_number;

/// Binary and unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Not,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Star,
    Op(Op),
    /// A string literal, unescaped.
    Str(String),
    /// A number literal (already parsed).
    Num(f64),
    /// A legal keyword: context, property or function name, or `true`/`null`/...
    Ident,
    /// Text that is no token of the language.
    Unexpected,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: Tok,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset one past the last character.
    pub end: usize,
}

/// Characters that end a keyword or number (the runner's `TestTokenBoundary`).
fn is_boundary(c: char) -> bool {
    matches!(
        c,
        '(' | '[' | ')' | ']' | ',' | '.' | '!' | '>' | '<' | '=' | '&' | '|'
    ) || c.is_whitespace()
}

/// A legal keyword: a letter or `_`, then letters, digits, `_` or `-`.
pub(crate) fn is_legal_keyword(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }
        _ => false,
    }
}

/// Splits `src` into tokens; never fails (bad text becomes [`Tok::Unexpected`]).
pub(crate) fn tokenize(src: &str) -> Vec<Token> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    let bytes = src.as_bytes();
    while i < src.len() {
        let Some(c) = src[i..].chars().next() else {
            break;
        };
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let last = tokens.last().map(|t| &t.kind);
        let kind = match c {
            '(' => {
                i += 1;
                Tok::LParen
            }
            ')' => {
                i += 1;
                Tok::RParen
            }
            '[' => {
                i += 1;
                Tok::LBracket
            }
            ']' => {
                i += 1;
                Tok::RBracket
            }
            ',' => {
                i += 1;
                Tok::Comma
            }
            '*' => {
                i += 1;
                Tok::Star
            }
            '\'' => {
                let (kind, end) = read_string(src, i);
                i = end;
                kind
            }
            '!' | '>' | '<' | '=' | '&' | '|' => {
                let two = src.get(i..i + 2);
                let op = match two {
                    Some("!=") => Some((Op::Ne, 2)),
                    Some(">=") => Some((Op::Ge, 2)),
                    Some("<=") => Some((Op::Le, 2)),
                    Some("==") => Some((Op::Eq, 2)),
                    Some("&&") => Some((Op::And, 2)),
                    Some("||") => Some((Op::Or, 2)),
                    _ => match c {
                        '!' => Some((Op::Not, 1)),
                        '>' => Some((Op::Gt, 1)),
                        '<' => Some((Op::Lt, 1)),
                        _ => None,
                    },
                };
                match op {
                    Some((op, len)) => {
                        i += len;
                        Tok::Op(op)
                    }
                    None => {
                        i = read_run(src, i + 1);
                        Tok::Unexpected
                    }
                }
            }
            '.' => {
                let number_position = matches!(
                    last,
                    None | Some(Tok::Comma | Tok::LParen | Tok::LBracket | Tok::Op(_))
                );
                if number_position {
                    let (kind, end) = read_number(src, i);
                    i = end;
                    kind
                } else {
                    i += 1;
                    Tok::Dot
                }
            }
            '-' | '+' | '0'..='9' => {
                let (kind, end) = read_number(src, i);
                i = end;
                kind
            }
            _ => {
                i = read_run(src, i + c.len_utf8());
                if is_legal_keyword(&src[start..i]) {
                    Tok::Ident
                } else {
                    Tok::Unexpected
                }
            }
        };
        debug_assert!(i > start && i <= bytes.len());
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    tokens.push(Token {
        kind: Tok::Eof,
        start: src.len(),
        end: src.len(),
    });
    tokens
}

/// Advances from `i` to the next boundary character.
fn read_run(src: &str, mut i: usize) -> usize {
    while let Some(c) = src.get(i..).and_then(|s| s.chars().next()) {
        if is_boundary(c) {
            break;
        }
        i += c.len_utf8();
    }
    i
}

fn read_number(src: &str, start: usize) -> (Tok, usize) {
    let mut i = start + 1;
    while let Some(c) = src.get(i..).and_then(|s| s.chars().next()) {
        if is_boundary(c) && c != '.' {
            break;
        }
        i += c.len_utf8();
    }
    let n = parse_number(&src[start..i]);
    if n.is_nan() {
        (Tok::Unexpected, i)
    } else {
        (Tok::Num(n), i)
    }
}

fn read_string(src: &str, start: usize) -> (Tok, usize) {
    let bytes = src.as_bytes();
    let mut i = start + 1;
    let mut value = String::new();
    let mut seg_start = i;
    while i < bytes.len() {
        if bytes[i] == b'\'' {
            value.push_str(&src[seg_start..i]);
            if bytes.get(i + 1) == Some(&b'\'') {
                value.push('\'');
                i += 2;
                seg_start = i;
                continue;
            }
            return (Tok::Str(value), i + 1);
        }
        i += 1;
    }
    (Tok::Unexpected, src.len())
}
