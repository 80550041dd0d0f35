//! The typed workflow model. Every value remembers where it was written so that load errors and
//! runtime errors (raised later by `exec`) can point at the file.

use std::path::PathBuf;

use indexmap::IndexMap;

use crate::expr::{Expr, Template, Value};

use super::error::Diagnostic;

/// A job's id, the key under `jobs:` (`build`, `test-linux`).
pub type JobId = String;

/// A position in the workflow file: 1-based line and 1-based column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters (not bytes).
    pub column: usize,
}

impl Pos {
    /// A position from 1-based line and column.
    pub const fn new(line: usize, column: usize) -> Self {
        Self { line, column }
    }
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A plain value (no expressions allowed) and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where its text starts.
    pub pos: Pos,
}

impl<T> Spanned<T> {
    /// Wraps a value with its position.
    pub const fn new(value: T, pos: Pos) -> Self {
        Self { value, pos }
    }
}

impl Spanned<String> {
    /// The string value.
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

/// Maps byte offsets inside a scalar's loaded value back to file positions. Needed because the
/// value differs from the source text for quoted (escapes, quotes) and block (`|`, `>`) scalars.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceMap {
    /// `(value byte offset, position)`: from each offset on, characters advance one column at a
    /// time until the next entry.
    segments: Vec<(usize, Pos)>,
}

impl SourceMap {
    /// A map in which the whole value is written on one line starting at `pos`.
    pub fn single(pos: Pos) -> Self {
        Self {
            segments: vec![(0, pos)],
        }
    }

    pub(crate) fn from_segments(segments: Vec<(usize, Pos)>) -> Self {
        Self { segments }
    }

    /// The file position of the character starting at `offset` bytes into `value`.
    pub fn pos_at(&self, value: &str, offset: usize) -> Pos {
        let idx = self.segments.partition_point(|(o, _)| *o <= offset);
        let Some(&(start, pos)) = self.segments.get(idx.saturating_sub(1)) else {
            return Pos::new(1, 1);
        };
        let end = offset.min(value.len());
        let chars = value
            .get(start.min(end)..end)
            .map_or(0, |s| s.chars().count());
        Pos::new(pos.line, pos.column + chars)
    }
}

/// A scalar value that was parsed at load time (a [`Template`], or an [`Expr`] for `if:`), with
/// the text it came from and where that text is in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Located<T> {
    /// The parsed form.
    pub value: T,
    /// The scalar's value as loaded (after YAML unquoting / block folding).
    pub raw: String,
    /// Where the value's first character is written.
    pub pos: Pos,
    /// Offsets inside `raw` → file positions.
    pub map: SourceMap,
}

impl<T> Located<T> {
    /// The loaded text.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
    /// The file position of byte `offset` inside [`Located::raw`] (e.g. an expression error).
    pub fn pos_at(&self, offset: usize) -> Pos {
        self.map.pos_at(&self.raw, offset)
    }
}

/// A string that may contain `${{ }}` expressions (`run`, `with` values, `env` values, names).
pub type Text = Located<Template>;

/// An `if:` condition, parsed with [`crate::expr::parse_condition`].
pub type Condition = Located<Expr>;

/// A setting that is either a literal (`timeout-minutes: 10`) or an expression evaluated at run
/// time (`timeout-minutes: ${{ matrix.t }}`).
#[derive(Debug, Clone, PartialEq)]
pub enum OrExpr<T> {
    /// A literal value; `raw` is its source text.
    Value {
        /// The value.
        value: T,
        /// The text as written (`10`, `true`).
        raw: String,
        /// Where it is written.
        pos: Pos,
    },
    /// A string containing an expression; its result is converted at run time.
    Expr(Text),
}

impl<T> OrExpr<T> {
    /// Where the setting's value is written.
    pub fn pos(&self) -> Pos {
        match self {
            OrExpr::Value { pos, .. } => *pos,
            OrExpr::Expr(t) => t.pos,
        }
    }
    /// The literal value, when it is not an expression.
    pub fn literal(&self) -> Option<&T> {
        match self {
            OrExpr::Value { value, .. } => Some(value),
            OrExpr::Expr(_) => None,
        }
    }
}

/// How a YAML scalar resolved (YAML 1.2 core schema, as GitHub's parser does: `yes`/`on` stay
/// strings).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ScalarKind {
    /// `null`, `~` or empty.
    Null,
    /// `true` / `false` (any of the three YAML spellings).
    Bool(bool),
    /// An integer or float literal.
    Number(f64),
    /// Everything else, and every quoted or block scalar.
    String,
}

/// A loaded YAML subtree whose scalars are parsed templates: the `on:` section and matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    /// Where the node starts.
    pub pos: Pos,
    /// What it holds.
    pub kind: TreeKind,
}

/// The shape of a [`Tree`] node.
#[derive(Debug, Clone, PartialEq)]
pub enum TreeKind {
    /// A scalar: its text (parsed as a template) and how YAML resolved it.
    Scalar(Text, ScalarKind),
    /// A sequence.
    Seq(Vec<Tree>),
    /// A mapping, in file order.
    Map(Vec<(Spanned<String>, Tree)>),
}

impl Tree {
    /// The value without evaluating anything, as GitHub types YAML literals (numbers are numbers:
    /// `3.10` is `3.1`, exactly as on GitHub; the text is still in the scalar's [`Text::raw`]).
    pub fn literal_value(&self) -> Value {
        match &self.kind {
            TreeKind::Scalar(text, kind) => match kind {
                ScalarKind::Null => Value::Null,
                ScalarKind::Bool(b) => Value::Bool(*b),
                ScalarKind::Number(n) => Value::Number(*n),
                ScalarKind::String => Value::String(text.raw.clone()),
            },
            TreeKind::Seq(items) => Value::Array(items.iter().map(Tree::literal_value).collect()),
            TreeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.value.clone(), v.literal_value()))
                    .collect(),
            ),
        }
    }

    /// Looks up a mapping entry by key.
    pub fn get(&self, key: &str) -> Option<&Tree> {
        match &self.kind {
            TreeKind::Map(entries) => entries.iter().find(|(k, _)| k.value == key).map(|e| &e.1),
            _ => None,
        }
    }

    /// The scalar text, when this is a scalar.
    pub fn as_text(&self) -> Option<&Text> {
        match &self.kind {
            TreeKind::Scalar(text, _) => Some(text),
            _ => None,
        }
    }
}

/// `defaults.run` at workflow or job level.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunDefaults {
    /// `shell:`
    pub shell: Option<Text>,
    /// `working-directory:`
    pub working_directory: Option<Text>,
}

/// A `name → value` environment block; values may contain expressions. Numbers and booleans
/// keep their source text (`CI: true` → `"true"`).
pub type Env = IndexMap<String, Text>;

/// A parsed workflow file.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// The file it was loaded from (as given to the loader).
    pub path: PathBuf,
    /// The file's text, kept so runtime errors can show the offending line.
    pub source: String,
    /// `name:`
    pub name: Option<Spanned<String>>,
    /// `run-name:`
    pub run_name: Option<Text>,
    /// `on:` exactly as loaded (string, list or mapping); `None` when absent.
    pub on: Option<Tree>,
    /// The event names `on:` lists, in file order (`push`, `pull_request`, ...).
    pub events: Vec<Spanned<String>>,
    /// The inputs `on.workflow_dispatch` and `on.workflow_call` declare.
    pub inputs: Inputs,
    /// Workflow-level `env:`.
    pub env: Env,
    /// Workflow-level `defaults.run`.
    pub defaults: RunDefaults,
    /// The jobs in file order.
    pub jobs: IndexMap<JobId, Job>,
    /// Things that loaded but will not be honoured locally (`permissions`, `services`, ...).
    pub warnings: Vec<Diagnostic>,
}

/// The typed inputs a workflow declares, per event that takes them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inputs {
    /// `on.workflow_dispatch.inputs`, in file order.
    pub dispatch: IndexMap<String, InputSpec>,
    /// `on.workflow_call.inputs`, in file order.
    pub call: IndexMap<String, InputSpec>,
}

/// The `type:` of a declared input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputType {
    /// `string` (the default for `workflow_dispatch`).
    String,
    /// `boolean`: the context holds `true` / `false`.
    Boolean,
    /// `number`: the context holds a number.
    Number,
    /// `choice`: one of `options`.
    Choice,
    /// `environment`: an environment's name (a string).
    Environment,
}

impl InputType {
    /// The type named as in YAML.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "boolean" => Self::Boolean,
            "number" => Self::Number,
            "choice" => Self::Choice,
            "environment" => Self::Environment,
            _ => return None,
        })
    }

    /// The name written in YAML.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Number => "number",
            Self::Choice => "choice",
            Self::Environment => "environment",
        }
    }
}

/// One declared input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// Its name and where it is declared.
    pub name: Spanned<String>,
    /// `type:`
    pub kind: InputType,
    /// `required:`
    pub required: bool,
    /// `default:`, typed as declared (a `workflow_call` default with an expression stays text).
    pub default: Option<Value>,
    /// `options:` of a choice.
    pub options: Vec<String>,
}

/// `runs-on:`: labels (a string, a list, or an expression) and an optional runner group.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunsOn {
    /// The labels; one [`Text`] per list item.
    pub labels: Vec<Text>,
    /// `group:` of the mapping form.
    pub group: Option<Text>,
    /// Where `runs-on`'s value starts.
    pub pos: Pos,
}

/// `strategy:`
#[derive(Debug, Clone, PartialEq)]
pub struct Strategy {
    /// `matrix:`: a mapping or one expression (`${{ fromJSON(...) }}`). Evaluate the tree (each
    /// scalar template; literals via [`Tree::literal_value`]) and hand the resulting object to
    /// [`super::expand_matrix`].
    pub matrix: Option<Tree>,
    /// `fail-fast:` (default true).
    pub fail_fast: Option<OrExpr<bool>>,
    /// `max-parallel:`
    pub max_parallel: Option<OrExpr<f64>>,
    /// Where `strategy`'s value starts.
    pub pos: Pos,
}

/// One job under `jobs:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job's key and where it is written.
    pub id: Spanned<JobId>,
    /// `name:`
    pub name: Option<Text>,
    /// `runs-on:` (`None` only for a reusable-workflow job, see [`Job::uses`]).
    pub runs_on: Option<RunsOn>,
    /// `needs:` in file order.
    pub needs: Vec<Spanned<JobId>>,
    /// `if:`
    pub if_: Option<Condition>,
    /// `env:`
    pub env: Env,
    /// `defaults.run`
    pub defaults: RunDefaults,
    /// `strategy:`
    pub strategy: Option<Strategy>,
    /// `outputs:`
    pub outputs: IndexMap<String, Text>,
    /// `timeout-minutes:`
    pub timeout_minutes: Option<OrExpr<f64>>,
    /// `continue-on-error:`
    pub continue_on_error: Option<OrExpr<bool>>,
    /// `steps:`
    pub steps: Vec<Step>,
    /// `uses:` of a job that calls a reusable workflow; loaded with a warning, not runnable here.
    pub uses: Option<Spanned<String>>,
    /// Where the job's key is written.
    pub pos: Pos,
}

/// One item of `steps:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// 0-based index within the job.
    pub index: usize,
    /// `id:`
    pub id: Option<Spanned<String>>,
    /// `name:`
    pub name: Option<Text>,
    /// `if:`
    pub if_: Option<Condition>,
    /// `run:` or `uses:` with their own settings.
    pub kind: StepKind,
    /// `env:`
    pub env: Env,
    /// `continue-on-error:`
    pub continue_on_error: Option<OrExpr<bool>>,
    /// `timeout-minutes:`
    pub timeout_minutes: Option<OrExpr<f64>>,
    /// Where the step's mapping starts (first key after `- `).
    pub pos: Pos,
}

/// What a step does.
// A job has a handful of steps; boxing the larger variant would only make matching clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum StepKind {
    /// A `run:` step.
    Run {
        /// The script.
        run: Text,
        /// `shell:`
        shell: Option<Text>,
        /// `working-directory:`
        working_directory: Option<Text>,
    },
    /// A `uses:` step.
    Uses {
        /// `owner/name[/path]@ref`, `./local`, or `docker://image` as written (no expressions).
        uses: Spanned<String>,
        /// `with:` inputs; numbers and booleans keep their source text.
        with: IndexMap<String, Text>,
    },
}

impl Step {
    /// The `run:` script, for run steps.
    pub fn run(&self) -> Option<&Text> {
        match &self.kind {
            StepKind::Run { run, .. } => Some(run),
            StepKind::Uses { .. } => None,
        }
    }
    /// The `uses:` value, for action steps.
    pub fn uses(&self) -> Option<&Spanned<String>> {
        match &self.kind {
            StepKind::Uses { uses, .. } => Some(uses),
            StepKind::Run { .. } => None,
        }
    }
    /// The name GitHub shows when `name:` is absent: `Run <first line of script>` or
    /// `Run <action>`; the literal `name:` text otherwise (templates are rendered by exec).
    pub fn default_name(&self) -> String {
        match &self.kind {
            StepKind::Run { run, .. } => {
                let first = run.raw.trim_start().lines().next().unwrap_or("").trim_end();
                format!("Run {first}")
            }
            StepKind::Uses { uses, .. } => format!("Run {}", uses.value),
        }
    }
}
