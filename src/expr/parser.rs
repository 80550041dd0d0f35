//! Hand-written precedence parser. It accepts exactly what the runner's parser accepts (with
//! the limits noted on [`MAX_NESTING`]) and says, for every error, what it expected and where.

use super::ast::{CompareOp, Expr, ExprKind, Function, Index};
use super::lexer::{Op, Tok, Token, tokenize};
use super::{ParseError, Span};

/// Maximum tree depth, as the runner.
pub const MAX_DEPTH: usize = 50;
/// Maximum expression length in UTF-16 units, as the runner.
pub const MAX_LENGTH: usize = 21_000;
/// Recursion guard: nested parentheses, brackets, calls and `!`. Trees this deep already
/// exceed [`MAX_DEPTH`] unless they are only redundant parentheses, which the runner would
/// accept; we refuse them to keep the parser's stack small.
const MAX_NESTING: usize = 100;

/// Builds a [`ParseError`] at byte `offset` of `src`.
pub(crate) fn error_at(src: &str, offset: usize, message: impl Into<String>) -> ParseError {
    let offset = offset.min(src.len());
    let column = src
        .get(..offset)
        .map_or(offset, |prefix| prefix.chars().count())
        + 1;
    ParseError {
        message: message.into(),
        column,
        offset,
    }
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    pos: usize,
    nesting: usize,
}

/// Parses a whole expression (no delimiters). Empty input is an error.
pub(crate) fn parse_expression(src: &str) -> Result<Expr, ParseError> {
    if src.encode_utf16().count() > MAX_LENGTH {
        return Err(error_at(
            src,
            0,
            format!("exceeded max expression length {MAX_LENGTH}"),
        ));
    }
    let mut p = Parser {
        src,
        tokens: tokenize(src),
        pos: 0,
        nesting: 0,
    };
    if p.peek().kind == Tok::Eof {
        // The runner evaluates an empty expression to null (templates reject `${{ }}`).
        let at = src.len() - src.trim_start().len();
        return Ok(Expr {
            kind: ExprKind::Null,
            span: Span { start: at, end: at },
        });
    }
    let expr = p.parse_or()?;
    let tok = p.peek().clone();
    if tok.kind != Tok::Eof {
        return Err(p.unexpected(&tok, "an operator or end of expression"));
    }
    Ok(expr)
}

fn describe(src: &str, tok: &Token) -> String {
    match tok.kind {
        Tok::Eof => "end of expression".to_string(),
        _ => format!("'{}'", src.get(tok.start..tok.end).unwrap_or("")),
    }
}

impl<'s> Parser<'s> {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and we never advance past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let tok = self.peek().clone();
        if tok.kind != Tok::Eof {
            self.pos += 1;
        }
        tok
    }

    fn text(&self, tok: &Token) -> &'s str {
        self.src.get(tok.start..tok.end).unwrap_or("")
    }

    fn unexpected(&self, tok: &Token, expected: &str) -> ParseError {
        let found = describe(self.src, tok);
        let what = if tok.kind == Tok::Unexpected {
            format!("unexpected symbol {found}")
        } else {
            format!("unexpected {found}")
        };
        error_at(self.src, tok.start, format!("{what}: expected {expected}"))
    }

    fn enter(&mut self, at: usize) -> Result<(), ParseError> {
        self.nesting += 1;
        if self.nesting > MAX_NESTING {
            return Err(error_at(
                self.src,
                at,
                format!("exceeded max expression depth {MAX_DEPTH}"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    /// Refuses a node as soon as it is deeper than the runner allows, so no tree we build is
    /// ever deeper than `MAX_DEPTH + 1` (evaluation and drop recurse over it).
    fn checked(&self, expr: Expr) -> Result<Expr, ParseError> {
        if expr.depth_capped(MAX_DEPTH + 1) > MAX_DEPTH {
            return Err(error_at(
                self.src,
                expr.span.start,
                format!("exceeded max expression depth {MAX_DEPTH}"),
            ));
        }
        Ok(expr)
    }

    fn parse_or(&mut self) -> Result<Expr, ParseError> {
        self.parse_logical(Op::Or)
    }

    fn parse_logical(&mut self, op: Op) -> Result<Expr, ParseError> {
        let operand = |p: &mut Self| {
            if op == Op::Or {
                p.parse_logical(Op::And)
            } else {
                p.parse_equality()
            }
        };
        let first = operand(self)?;
        if self.peek().kind != Tok::Op(op) {
            return Ok(first);
        }
        let start = first.span.start;
        let mut items = Vec::new();
        let push = |items: &mut Vec<Expr>, e: Expr| match (op, e.kind) {
            (Op::And, ExprKind::And(inner)) | (Op::Or, ExprKind::Or(inner)) => items.extend(inner),
            (_, kind) => items.push(Expr { kind, span: e.span }),
        };
        push(&mut items, first);
        let mut end = start;
        while self.peek().kind == Tok::Op(op) {
            self.bump();
            let next = operand(self)?;
            end = next.span.end;
            push(&mut items, next);
        }
        let kind = if op == Op::And {
            ExprKind::And(items)
        } else {
            ExprKind::Or(items)
        };
        self.checked(Expr {
            kind,
            span: Span { start, end },
        })
    }

    fn parse_equality(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.parse_comparison()?;
        loop {
            let op = match self.peek().kind {
                Tok::Op(Op::Eq) => CompareOp::Eq,
                Tok::Op(Op::Ne) => CompareOp::Ne,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.parse_comparison()?;
            left = self.checked(binary(op, left, right))?;
        }
    }

    fn parse_comparison(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.parse_unary()?;
        loop {
            let op = match self.peek().kind {
                Tok::Op(Op::Lt) => CompareOp::Lt,
                Tok::Op(Op::Le) => CompareOp::Le,
                Tok::Op(Op::Gt) => CompareOp::Gt,
                Tok::Op(Op::Ge) => CompareOp::Ge,
                _ => return Ok(left),
            };
            self.bump();
            let right = self.parse_unary()?;
            left = self.checked(binary(op, left, right))?;
        }
    }

    fn parse_unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek().kind == Tok::Op(Op::Not) {
            let not = self.bump();
            self.enter(not.start)?;
            let operand = self.parse_unary();
            self.leave();
            let operand = operand?;
            let span = Span {
                start: not.start,
                end: operand.span.end,
            };
            return self.checked(Expr {
                kind: ExprKind::Not(Box::new(operand)),
                span,
            });
        }
        self.parse_postfix()
    }

    fn parse_postfix(&mut self) -> Result<Expr, ParseError> {
        let (mut expr, mut indexable) = self.parse_primary()?;
        loop {
            match self.peek().kind {
                Tok::Dot if indexable => {
                    self.bump();
                    let tok = self.bump();
                    let index = match tok.kind {
                        Tok::Ident => Index::Property(self.text(&tok).to_string()),
                        Tok::Star => Index::Wildcard { dot: true },
                        _ => {
                            return Err(self.unexpected(&tok, "a property name or '*' after '.'"));
                        }
                    };
                    let span = Span {
                        start: expr.span.start,
                        end: tok.end,
                    };
                    expr = self.checked(Expr {
                        kind: ExprKind::Index {
                            target: Box::new(expr),
                            index,
                        },
                        span,
                    })?;
                }
                Tok::LBracket if indexable => {
                    let open = self.bump();
                    let index = if self.peek().kind == Tok::Star {
                        self.bump();
                        Index::Wildcard { dot: false }
                    } else {
                        self.enter(open.start)?;
                        let inner = self.parse_index_expr();
                        self.leave();
                        Index::Expr(Box::new(inner?))
                    };
                    let close = self.bump();
                    if close.kind != Tok::RBracket {
                        return Err(self.unexpected(&close, "']'"));
                    }
                    let span = Span {
                        start: expr.span.start,
                        end: close.end,
                    };
                    expr = self.checked(Expr {
                        kind: ExprKind::Index {
                            target: Box::new(expr),
                            index,
                        },
                        span,
                    })?;
                }
                _ => return Ok(expr),
            }
            indexable = true;
        }
    }

    fn parse_index_expr(&mut self) -> Result<Expr, ParseError> {
        if self.peek().kind == Tok::RBracket {
            let tok = self.peek().clone();
            return Err(self.unexpected(&tok, "an index expression"));
        }
        self.parse_or()
    }

    /// Returns the node and whether `.`/`[` may follow it (not after a literal, as the runner).
    fn parse_primary(&mut self) -> Result<(Expr, bool), ParseError> {
        let tok = self.bump();
        let span = Span {
            start: tok.start,
            end: tok.end,
        };
        let literal = |kind| Ok((Expr { kind, span }, false));
        match &tok.kind {
            Tok::Str(s) => literal(ExprKind::String(s.clone())),
            Tok::Num(n) => literal(ExprKind::Number(*n)),
            Tok::LParen => {
                self.enter(tok.start)?;
                let inner = self.parse_group_inner();
                self.leave();
                let mut inner = inner?;
                let close = self.bump();
                if close.kind != Tok::RParen {
                    return Err(self.unexpected(&close, "')'"));
                }
                inner.span = Span {
                    start: tok.start,
                    end: close.end,
                };
                Ok((inner, true))
            }
            Tok::Ident => {
                let name = self.text(&tok);
                match name {
                    "null" => return literal(ExprKind::Null),
                    "true" => return literal(ExprKind::Bool(true)),
                    "false" => return literal(ExprKind::Bool(false)),
                    "NaN" => return literal(ExprKind::Number(f64::NAN)),
                    "Infinity" => return literal(ExprKind::Number(f64::INFINITY)),
                    _ => {}
                }
                if self.peek().kind == Tok::LParen {
                    let Some(function) = Function::lookup(name) else {
                        return Err(error_at(
                            self.src,
                            tok.start,
                            format!(
                                "unrecognized function '{name}': expected one of {}",
                                Function::ALL.map(Function::name).join(", ")
                            ),
                        ));
                    };
                    return self.parse_call(&tok, function).map(|e| (e, true));
                }
                Ok((
                    Expr {
                        kind: ExprKind::Context(name.to_string()),
                        span,
                    },
                    true,
                ))
            }
            Tok::Star => {
                Err(self.unexpected(&tok, "an expression ('*' is only allowed after '.' or '[')"))
            }
            _ => Err(self.unexpected(&tok, "an expression")),
        }
    }

    fn parse_group_inner(&mut self) -> Result<Expr, ParseError> {
        if self.peek().kind == Tok::RParen {
            let tok = self.peek().clone();
            return Err(self.unexpected(&tok, "an expression inside '()'"));
        }
        self.parse_or()
    }

    fn parse_call(&mut self, name_tok: &Token, function: Function) -> Result<Expr, ParseError> {
        let name = self.text(name_tok).to_string();
        let open = self.bump(); // '('
        self.enter(open.start)?;
        let args = self.parse_args(&name);
        self.leave();
        let (args, close) = args?;
        let (min, max) = function.arity();
        let count = args.len();
        if count < min || count > max {
            let few = if count < min { "few" } else { "many" };
            let expected = if min == max {
                format!("{min}")
            } else if max == 255 {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(error_at(
                self.src,
                name_tok.start,
                format!("too {few} arguments for {name}(): expected {expected}, found {count}"),
            ));
        }
        if function == Function::Case && count % 2 == 0 {
            return Err(error_at(
                self.src,
                name_tok.start,
                format!("case() needs an odd number of arguments, found {count}"),
            ));
        }
        self.checked(Expr {
            kind: ExprKind::Call {
                function,
                name,
                args,
            },
            span: Span {
                start: name_tok.start,
                end: close.end,
            },
        })
    }

    fn parse_args(&mut self, name: &str) -> Result<(Vec<Expr>, Token), ParseError> {
        let mut args = Vec::new();
        if self.peek().kind == Tok::RParen {
            return Ok((args, self.bump()));
        }
        loop {
            let tok = self.peek().clone();
            if matches!(tok.kind, Tok::Comma | Tok::RParen) {
                return Err(self.unexpected(&tok, &format!("an argument of {name}()")));
            }
            args.push(self.parse_or()?);
            let sep = self.bump();
            match sep.kind {
                Tok::Comma => {}
                Tok::RParen => return Ok((args, sep)),
                _ => {
                    return Err(
                        self.unexpected(&sep, &format!("',' or ')' in the call to {name}()"))
                    );
                }
            }
        }
    }
}

fn binary(op: CompareOp, left: Expr, right: Expr) -> Expr {
    let span = Span {
        start: left.span.start,
        end: right.span.end,
    };
    Expr {
        kind: ExprKind::Compare {
            op,
            left: Box::new(left),
            right: Box::new(right),
        },
        span,
    }
}
