//! GitHub Actions expressions: lexer, parser (AST with byte spans), values with GitHub's coercion
//! rules, functions, and templates (`${{ }}` and `$<< >>`).
//!
//! CONTRACT (other modules code against these names; extend, don't rename):
//! - [`parse`] an expression, [`parse_template`] a string with embedded expressions,
//!   [`parse_condition`] an `if:` value (delimiters optional, implicit `success() &&`).
//! - [`evaluate`] / [`Template::render`] against a [`Host`] that supplies contexts and the
//!   I/O-bound functions (`hashFiles`, status functions), so this module never touches the disk.
//! - Errors carry a 1-based character column inside the source string they were given.

mod value;

pub use value::Value;

/// A byte range in the source text an AST node came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// A parsed expression. (Placeholder: the expression issue replaces it with the real AST.)
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// Where the whole expression sits in its source.
    pub span: Span,
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
}

/// A string that may contain `${{ expr }}` / `$<< expr >>` parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    /// The source text, kept for diagnostics.
    pub source: String,
}

impl Template {
    /// True when the template has no expression parts (its value is the literal text).
    pub fn is_literal(&self) -> bool {
        todo!("expr issue")
    }
    /// Evaluates every part and joins them as GitHub does; a template that is exactly one
    /// expression yields that expression's value unconverted.
    pub fn evaluate(&self, _host: &dyn Host) -> Result<Value, EvalError> {
        todo!("expr issue")
    }
    /// Evaluates and converts the result to a string the way GitHub substitutes it.
    pub fn render(&self, host: &dyn Host) -> Result<String, EvalError> {
        self.evaluate(host).map(|v| v.to_display_string())
    }
}

/// Parses one expression (no delimiters).
pub fn parse(_source: &str) -> Result<Expr, ParseError> {
    todo!("expr issue")
}

/// Parses a string that may contain `${{ }}` / `$<< >>` expressions.
pub fn parse_template(_source: &str) -> Result<Template, ParseError> {
    todo!("expr issue")
}

/// Parses an `if:` value: delimiters optional; `success() && (...)` is implied unless a status
/// function is used.
pub fn parse_condition(_source: &str) -> Result<Expr, ParseError> {
    todo!("expr issue")
}

/// Evaluates a parsed expression.
pub fn evaluate(_expr: &Expr, _host: &dyn Host) -> Result<Value, EvalError> {
    todo!("expr issue")
}
