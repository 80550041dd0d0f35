//! `runner eval`.

use std::path::PathBuf;

use anyhow::Context as _;

use runner::expr::{self, EvalError, Host, ParseError, StatusFunction, Value};
use runner::glob::hash_files_args;

use super::printer::Printer;
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};

/// Arguments of `runner eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// JSON file whose top-level keys are the contexts (`{"github": {...}, "env": {...}}`).
    #[arg(long, value_name = "FILE.json")]
    contexts: Option<PathBuf>,
    /// Directory `hashFiles()` searches (default: the current directory).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Treat the argument as a template with `${{ }}` parts instead of a bare expression.
    #[arg(long)]
    template: bool,
    /// Treat the argument as an `if:` condition (delimiters optional, implicit `success()`).
    #[arg(long, conflicts_with = "template")]
    condition: bool,
    /// Exit with 1 when the result is falsy (after printing it), for use in scripts.
    #[arg(long)]
    check: bool,
    /// The expression.
    #[arg(value_name = "EXPR", allow_hyphen_values = true)]
    expression: String,
}

/// Contexts from a JSON file, the workspace for `hashFiles()`, and a successful job status.
struct CliHost {
    contexts: Value,
    workspace: PathBuf,
}

impl Host for CliHost {
    fn context(&self, name: &str) -> Option<&Value> {
        self.contexts.get(name)
    }

    fn hash_files(&self, args: &[String]) -> Result<String, String> {
        hash_files_args(&self.workspace, args).map_err(|e| {
            format!(
                "hashFiles('{}') failed: {e}",
                args.join(", ").replace('\'', "''")
            )
        })
    }

    fn status(&self, function: StatusFunction) -> bool {
        // Outside a job nothing has failed or been cancelled.
        matches!(function, StatusFunction::Success | StatusFunction::Always)
    }
}

/// Prints `message` with the expression and a caret under `column` (1-based characters).
fn print_caret(printer: &mut Printer, source: &str, column: usize, message: &str) {
    printer.error(message);
    // Show the line the column falls on, for multi-line templates.
    let mut col = column;
    let mut shown = source;
    for line in source.split('\n') {
        let len = line.chars().count();
        shown = line;
        if col <= len + 1 {
            break;
        }
        col -= len + 1;
    }
    printer.notice(&format!("  {shown}"));
    let pad: String = shown
        .chars()
        .take(col.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    printer.notice(&format!("  {pad}^"));
}

fn parse_error(printer: &mut Printer, args: &EvalArgs, e: &ParseError) -> u8 {
    print_caret(printer, &args.expression, e.column, &e.message);
    EXIT_USAGE
}

/// Runs the verb; returns the exit code.
pub fn run(args: EvalArgs, printer: &mut Printer) -> anyhow::Result<u8> {
    let contexts = match &args.contexts {
        Some(path) => {
            // Its keys are the context names.
            let json = super::read_json_object(path, "contexts file")?;
            Value::from_json(json)
        }
        None => Value::Object(Default::default()),
    };
    let workspace = match &args.workspace {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    let host = CliHost {
        contexts,
        workspace,
    };
    let result = if args.template {
        match expr::parse_template(&args.expression) {
            Ok(t) => t.evaluate(&host),
            Err(e) => return Ok(parse_error(printer, &args, &e)),
        }
    } else {
        let parsed = if args.condition {
            expr::parse_condition(&args.expression)
        } else {
            expr::parse(&args.expression)
        };
        match parsed {
            Ok(e) => expr::evaluate(&e, &host),
            Err(e) => return Ok(parse_error(printer, &args, &e)),
        }
    };
    match result {
        Ok(value) => {
            let json = serde_json::to_string_pretty(&value.to_json())
                .context("writing the result as JSON")?;
            printer.data(&json);
            Ok(if args.check && !value.is_truthy() {
                EXIT_FAILED
            } else {
                EXIT_OK
            })
        }
        Err(e) => {
            let span = match &e {
                EvalError::UnknownContext { span, .. } | EvalError::Function { span, .. } => *span,
            };
            let column = args
                .expression
                .get(..span.start)
                .map_or(1, |p| p.chars().count() + 1);
            print_caret(printer, &args.expression, column, &e.to_string());
            Ok(EXIT_USAGE)
        }
    }
}
