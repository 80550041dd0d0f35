//! The syntax tree. Every node carries the byte span of the source it came from; `Display`
//! prints valid expression source that parses back to the same tree.

use std::fmt;

use super::Span;
use super::lexer::is_legal_keyword;
use super::value::format_number;

/// A parsed expression node (the root of an expression is an `Expr` too).
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the node is.
    pub kind: ExprKind,
    /// Where the node sits in its source (a parenthesised node includes its parentheses).
    pub span: Span,
}

/// The kinds of expression nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A number literal (`1`, `-2.5`, `1e3`, `0x1F`, `NaN`, `Infinity`).
    Number(f64),
    /// A string literal, unescaped.
    String(String),
    /// A named context (`github`, `env`, ...), as written.
    Context(String),
    /// `target.name`, `target[index]`, `target.*`, `target[*]`.
    Index {
        /// The value being indexed.
        target: Box<Expr>,
        /// The property, index expression or wildcard.
        index: Index,
    },
    /// A function call; the name is as written (functions are case-insensitive).
    Call {
        /// The function.
        function: Function,
        /// The name as written.
        name: String,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// `!operand`
    Not(Box<Expr>),
    /// A comparison: `==`, `!=`, `<`, `<=`, `>`, `>=`.
    Compare {
        /// The operator.
        op: CompareOp,
        /// Left operand.
        left: Box<Expr>,
        /// Right operand.
        right: Box<Expr>,
    },
    /// `a && b && ...` (nested `&&` are flattened, as the runner does).
    And(Vec<Expr>),
    /// `a || b || ...` (nested `||` are flattened, as the runner does).
    Or(Vec<Expr>),
}

/// The index part of an [`ExprKind::Index`].
#[derive(Debug, Clone, PartialEq)]
pub enum Index {
    /// `.name`
    Property(String),
    /// `[expr]`
    Expr(Box<Expr>),
    /// `.*` (`dot == true`) or `[*]`: an object/array filter.
    Wildcard {
        /// Written as `.*` rather than `[*]`.
        dot: bool,
    },
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl CompareOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "==",
            CompareOp::Ne => "!=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
        }
    }
}

/// The functions the language knows, with their argument counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `contains(search, item)`
    Contains,
    /// `startsWith(search, prefix)`
    StartsWith,
    /// `endsWith(search, suffix)`
    EndsWith,
    /// `format(fmt, args...)`
    Format,
    /// `join(array, separator?)`
    Join,
    /// `toJSON(value)`
    ToJson,
    /// `fromJSON(text)`
    FromJson,
    /// `case(pred, value, ..., default)`
    Case,
    /// `hashFiles(patterns...)`
    HashFiles,
    /// `success()`
    Success,
    /// `always()`
    Always,
    /// `cancelled()`
    Cancelled,
    /// `failure()`
    Failure,
}

impl Function {
    /// Every function, for lookups.
    pub const ALL: [Function; 13] = [
        Function::Contains,
        Function::StartsWith,
        Function::EndsWith,
        Function::Format,
        Function::Join,
        Function::ToJson,
        Function::FromJson,
        Function::Case,
        Function::HashFiles,
        Function::Success,
        Function::Always,
        Function::Cancelled,
        Function::Failure,
    ];

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Function::Contains => "contains",
            Function::StartsWith => "startsWith",
            Function::EndsWith => "endsWith",
            Function::Format => "format",
            Function::Join => "join",
            Function::ToJson => "toJSON",
            Function::FromJson => "fromJSON",
            Function::Case => "case",
            Function::HashFiles => "hashFiles",
            Function::Success => "success",
            Function::Always => "always",
            Function::Cancelled => "cancelled",
            Function::Failure => "failure",
        }
    }

    /// Looks a name up case-insensitively.
    pub fn lookup(name: &str) -> Option<Function> {
        Function::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// Minimum and maximum number of arguments (as the runner registers them).
    pub fn arity(self) -> (usize, usize) {
        match self {
            Function::Contains | Function::StartsWith | Function::EndsWith => (2, 2),
            Function::Format | Function::HashFiles => (1, 255),
            Function::Join => (1, 2),
            Function::ToJson | Function::FromJson => (1, 1),
            Function::Case => (3, 255),
            Function::Success | Function::Always | Function::Cancelled | Function::Failure => {
                (0, 0)
            }
        }
    }

    /// True for `success`, `always`, `cancelled`, `failure`.
    pub fn is_status(self) -> bool {
        matches!(
            self,
            Function::Success | Function::Always | Function::Cancelled | Function::Failure
        )
    }
}

// Binding strength, loosest first; used to decide where Display needs parentheses.
const PREC_OR: u8 = 1;
const PREC_AND: u8 = 2;
const PREC_EQ: u8 = 3;
const PREC_CMP: u8 = 4;
const PREC_NOT: u8 = 5;
const PREC_POSTFIX: u8 = 6;
const PREC_ATOM: u8 = 7;

impl Expr {
    fn precedence(&self) -> u8 {
        match &self.kind {
            ExprKind::Or(_) => PREC_OR,
            ExprKind::And(_) => PREC_AND,
            ExprKind::Compare { op, .. } => match op {
                CompareOp::Eq | CompareOp::Ne => PREC_EQ,
                _ => PREC_CMP,
            },
            ExprKind::Not(_) => PREC_NOT,
            ExprKind::Index { .. } => PREC_POSTFIX,
            _ => PREC_ATOM,
        }
    }

    fn is_literal(&self) -> bool {
        matches!(
            self.kind,
            ExprKind::Null | ExprKind::Bool(_) | ExprKind::Number(_) | ExprKind::String(_)
        )
    }

    /// True when the tree calls `success()`, `always()`, `cancelled()` or `failure()`.
    pub fn uses_status_function(&self) -> bool {
        let mut found = false;
        self.walk(&mut |e| {
            if let ExprKind::Call { function, .. } = &e.kind {
                found |= function.is_status();
            }
        });
        found
    }

    /// The context names the expression reads, with where they are written (for validating
    /// them at load time, as the runner does when it parses).
    pub fn contexts(&self) -> Vec<(&str, Span)> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let ExprKind::Context(name) = &e.kind {
                out.push((name.as_str(), e.span));
            }
        });
        out
    }

    /// Calls `f` on this node and every descendant, parents first.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match &self.kind {
            ExprKind::Index { target, index } => {
                target.walk(f);
                if let Index::Expr(e) = index {
                    e.walk(f);
                }
            }
            ExprKind::Call { args, .. } | ExprKind::And(args) | ExprKind::Or(args) => {
                args.iter().for_each(|a| a.walk(f));
            }
            ExprKind::Not(e) => e.walk(f),
            ExprKind::Compare { left, right, .. } => {
                left.walk(f);
                right.walk(f);
            }
            _ => {}
        }
    }

    /// Structural equality ignoring spans (NaN literals equal each other; `0` and `-0` differ).
    pub fn same_ast(&self, other: &Expr) -> bool {
        fn all(a: &[Expr], b: &[Expr]) -> bool {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_ast(y))
        }
        match (&self.kind, &other.kind) {
            (ExprKind::Null, ExprKind::Null) => true,
            (ExprKind::Bool(a), ExprKind::Bool(b)) => a == b,
            (ExprKind::Number(a), ExprKind::Number(b)) => {
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
            }
            (ExprKind::String(a), ExprKind::String(b)) => a == b,
            (ExprKind::Context(a), ExprKind::Context(b)) => a == b,
            (
                ExprKind::Index {
                    target: ta,
                    index: ia,
                },
                ExprKind::Index {
                    target: tb,
                    index: ib,
                },
            ) => {
                ta.same_ast(tb)
                    && match (ia, ib) {
                        (Index::Property(a), Index::Property(b)) => a == b,
                        (Index::Expr(a), Index::Expr(b)) => a.same_ast(b),
                        (Index::Wildcard { dot: a }, Index::Wildcard { dot: b }) => a == b,
                        _ => false,
                    }
            }
            (
                ExprKind::Call {
                    function: fa,
                    name: na,
                    args: aa,
                },
                ExprKind::Call {
                    function: fb,
                    name: nb,
                    args: ab,
                },
            ) => fa == fb && na == nb && all(aa, ab),
            (ExprKind::Not(a), ExprKind::Not(b)) => a.same_ast(b),
            (
                ExprKind::Compare {
                    op: oa,
                    left: la,
                    right: ra,
                },
                ExprKind::Compare {
                    op: ob,
                    left: lb,
                    right: rb,
                },
            ) => oa == ob && la.same_ast(lb) && ra.same_ast(rb),
            (ExprKind::And(a), ExprKind::And(b)) | (ExprKind::Or(a), ExprKind::Or(b)) => all(a, b),
            _ => false,
        }
    }

    /// Nesting depth counted as the runner does (a leaf is depth 1).
    pub fn depth(&self) -> usize {
        self.depth_capped(usize::MAX)
    }

    /// [`Expr::depth`], but stops descending below `cap` levels (returns at most `cap + 1`).
    pub fn depth_capped(&self, cap: usize) -> usize {
        if cap == 0 {
            return 1;
        }
        let below = cap - 1;
        let max = match &self.kind {
            ExprKind::Index { target, index } => {
                // A property name or wildcard is a leaf child of the index node.
                let idx = match index {
                    Index::Expr(e) => e.depth_capped(below),
                    _ => 1,
                };
                target.depth_capped(below).max(idx)
            }
            ExprKind::Call { args, .. } | ExprKind::And(args) | ExprKind::Or(args) => args
                .iter()
                .map(|a| a.depth_capped(below))
                .max()
                .unwrap_or(0),
            ExprKind::Not(e) => e.depth_capped(below),
            ExprKind::Compare { left, right, .. } => {
                left.depth_capped(below).max(right.depth_capped(below))
            }
            _ => return 1,
        };
        max + 1
    }
}

/// Writes a string literal with `'` doubled.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A number literal that parses back to exactly the same f64.
fn number_source(n: f64) -> String {
    let g15 = format_number(n);
    if super::value::parse_number(&g15).to_bits() == n.to_bits() || n.is_nan() {
        g15
    } else {
        format!("{n:?}")
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, e: &Expr, parens: bool) -> fmt::Result {
    if parens {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prec = self.precedence();
        match &self.kind {
            ExprKind::Null => f.write_str("null"),
            ExprKind::Bool(b) => write!(f, "{b}"),
            ExprKind::Number(n) => f.write_str(&number_source(*n)),
            ExprKind::String(s) => f.write_str(&quote(s)),
            ExprKind::Context(name) => f.write_str(name),
            ExprKind::Index { target, index } => {
                // Literals cannot be indexed directly; `('abc')[0]` is how one writes it.
                write_operand(
                    f,
                    target,
                    target.precedence() < PREC_POSTFIX || target.is_literal(),
                )?;
                match index {
                    Index::Property(name) if is_legal_keyword(name) => write!(f, ".{name}"),
                    Index::Property(name) => write!(f, "[{}]", quote(name)),
                    Index::Expr(e) => write!(f, "[{e}]"),
                    Index::Wildcard { dot: true } => f.write_str(".*"),
                    Index::Wildcard { dot: false } => f.write_str("[*]"),
                }
            }
            ExprKind::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            ExprKind::Not(e) => {
                f.write_str("!")?;
                write_operand(f, e, e.precedence() < PREC_NOT)
            }
            ExprKind::Compare { op, left, right } => {
                write_operand(f, left, left.precedence() < prec)?;
                write!(f, " {} ", op.as_str())?;
                write_operand(f, right, right.precedence() <= prec)
            }
            ExprKind::And(items) | ExprKind::Or(items) => {
                let sep = if prec == PREC_AND { " && " } else { " || " };
                for (i, e) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    write_operand(f, e, e.precedence() <= prec)?;
                }
                Ok(())
            }
        }
    }
}
