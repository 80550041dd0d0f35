//! GitHub Actions expressions: lexer, parser (AST with byte spans), values with GitHub's coercion
//! rules, functions, and templates (`${{ }}` and `$<< >>`).
//!
//! CONTRACT (other modules code against these names; extend, don't rename):
//! - [`parse`] an expression, [`parse_template`] a string with embedded expressions,
//!   [`parse_condition`] an `if:` value (delimiters optional, implicit `success() &&`).
//! - [`evaluate`] / [`Template::render`] against a [`Host`] that supplies contexts and the
//!   I/O-bound functions (`hashFiles`, status functions), so this module never touches the disk.
//! - Errors carry a 1-based character column inside the source string they were given
//!   ([`ParseError::line_and_column`] for multi-line sources).
//! - [`Expr`] is the AST root (spans on every node); its `Display` prints expression source
//!   that parses back to the same tree ([`Expr::same_ast`]); [`Expr::contexts`] lists the
//!   context names it reads and [`Expr::uses_status_function`] tells whether an `if:` needs
//!   the implicit `success()` (which [`parse_condition`] already adds).
//! - Hosts implement [`Host::hash_files`] with `glob::hash_files_args`, which applies the
//!   runner's rule for a leading `--follow-symbolic-links`.
//!
//! Where GitHub's two evaluators disagree we follow the runner's C# one (numbers print like
//! .NET `G15`, `0x`/`0o` only in lowercase, per-character ordinal case folding, strict
//! `format()`, unknown contexts rejected even in short-circuited branches, a 1 MiB memory
//! limit per evaluation).

mod ast;
mod eval;
mod lexer;
mod parser;
mod template;
mod value;

pub use ast::{CompareOp, Expr, ExprKind, Function, Index};
pub use eval::to_json_string;
pub use parser::{MAX_DEPTH, MAX_LENGTH};
pub use template::TemplatePart;
pub use value::{Value, format_number, parse_number};

/// A byte range in the source text an AST node came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// A syntax error inside one expression or template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (column {column})")]
pub struct ParseError {
    /// What was expected or what is wrong, e.g. `expected ')' but found end of expression`.
    pub message: String,
    /// 1-based character column inside the string passed to the parse function.
    pub column: usize,
    /// Byte offset of the same position.
    pub offset: usize,
}

impl ParseError {
    /// The 1-based line and column of the error inside `source` (the string that was parsed),
    /// for sources that span several lines (YAML block scalars).
    pub fn line_and_column(&self, source: &str) -> (usize, usize) {
        let before = source.get(..self.offset).unwrap_or(source);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |p| p + 1);
        (line, before[line_start..].chars().count() + 1)
    }
}

/// An error while evaluating a parsed expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// A context name that the host does not provide (GitHub rejects these).
    #[error("Unrecognized named-value: '{name}'")]
    UnknownContext {
        /// The context name as written.
        name: String,
        /// Where it was written.
        span: Span,
    },
    /// A function failed (bad `format` index, `fromJSON` of invalid JSON, hashFiles I/O, ...).
    #[error("{message}")]
    Function {
        /// The message to show the user.
        message: String,
        /// The call that failed.
        span: Span,
    },
}

/// The status functions GitHub evaluates against the job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFunction {
    /// `success()`
    Success,
    /// `always()`
    Always,
    /// `cancelled()`
    Cancelled,
    /// `failure()`
    Failure,
}

/// What an expression can see: the named contexts and the functions that need the outside world.
pub trait Host {
    /// The named context (`github`, `env`, `matrix`, ...), looked up case-insensitively.
    /// `None` means the context does not exist here, which is an evaluation error.
    fn context(&self, name: &str) -> Option<&Value>;
    /// `hashFiles(patterns...)`: the hash, `''` when nothing matched, `Err(message)` on failure.
    fn hash_files(&self, patterns: &[String]) -> Result<String, String>;
    /// The value of a status function for the step being evaluated.
    fn status(&self, function: StatusFunction) -> bool;
    /// Whether property names of the named context match case-sensitively. The runner keeps
    /// `env` case-sensitive except on Windows (`env.path` is not `env.PATH` on Linux).
    fn case_sensitive(&self, context: &str) -> bool {
        !cfg!(windows) && context.eq_ignore_ascii_case("env")
    }
}

/// A string that may contain `${{ expr }}` / `$<< expr >>` parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The source text, kept for diagnostics.
    pub source: String,
    /// Literal text and expressions, in order (adjacent literals merged).
    pub parts: Vec<TemplatePart>,
}

impl Template {
    /// True when the template has no expression parts (its value is the literal text).
    pub fn is_literal(&self) -> bool {
        self.parts
            .iter()
            .all(|p| matches!(p, TemplatePart::Literal(_)))
    }

    /// The literal text when [`Template::is_literal`], else `None`.
    pub fn literal(&self) -> Option<String> {
        self.is_literal().then(|| {
            self.parts
                .iter()
                .map(|p| match p {
                    TemplatePart::Literal(s) => s.as_str(),
                    TemplatePart::Expr(_) => "",
                })
                .collect()
        })
    }

    /// Evaluates every part and joins them as GitHub does; a template that is exactly one
    /// expression yields that expression's value unconverted.
    pub fn evaluate(&self, host: &dyn Host) -> Result<Value, EvalError> {
        if let [TemplatePart::Expr(e)] = self.parts.as_slice() {
            return evaluate(e, host);
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Literal(s) => out.push_str(s),
                TemplatePart::Expr(e) => out.push_str(&evaluate(e, host)?.to_display_string()),
            }
        }
        Ok(Value::String(out))
    }

    /// Evaluates and converts the result to a string the way GitHub substitutes it.
    pub fn render(&self, host: &dyn Host) -> Result<String, EvalError> {
        self.evaluate(host).map(|v| v.to_display_string())
    }
}

/// Parses one expression (no delimiters).
pub fn parse(source: &str) -> Result<Expr, ParseError> {
    parser::parse_expression(source)
}

/// Parses a string that may contain `${{ }}` / `$<< >>` expressions.
pub fn parse_template(source: &str) -> Result<Template, ParseError> {
    template::parse_template(source)
}

/// Parses an `if:` value: delimiters optional; `success() && (...)` is implied unless a status
/// function is used. An empty condition is `success()`.
pub fn parse_condition(source: &str) -> Result<Expr, ParseError> {
    template::parse_condition(source)
}

/// Evaluates a parsed expression.
pub fn evaluate(expr: &Expr, host: &dyn Host) -> Result<Value, EvalError> {
    eval::evaluate(expr, host)
}
