//! The `Printer`: stdout carries data (tables, plans, JSON reports), stderr carries logs and
//! progress. Colour only on a terminal and never with `NO_COLOR` set.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use runner::exec::{AnnotationLevel, Event, EventKind, RunReport, Status};

/// ANSI styles used by the printer.
#[derive(Debug, Clone, Copy)]
enum Style {
    Bold,
    Dim,
    Red,
    Green,
    Yellow,
    Cyan,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Bold => "1",
            Style::Dim => "2",
            Style::Red => "31",
            Style::Green => "32",
            Style::Yellow => "33",
            Style::Cyan => "36",
        }
    }
}

/// Writes data to stdout and logs to stderr, styling each for its own stream.
pub struct Printer {
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    out_color: bool,
    err_color: bool,
    verbose: bool,
    /// Show `::debug::` lines.
    debug: bool,
    /// The open `::group::`.
    group: Option<FoldedGroup>,
    /// Set once something was written to stderr inside a job, to separate jobs.
    job_open: bool,
}

/// The most lines of a folded group kept to show if its step fails inside it; a group that
/// prints more keeps its last ones, so a step printing gigabytes in a group stays bounded.
const FOLDED_LINES_KEPT: usize = 10_000;

/// An open `::group::`: its title, the last lines folded into it, and how many there were.
struct FoldedGroup {
    title: String,
    lines: std::collections::VecDeque<String>,
    total: usize,
}

/// True when colour is allowed on a stream that is (or is not) a terminal.
fn color_allowed(is_terminal: bool) -> bool {
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    is_terminal && !no_color
}

impl Printer {
    /// A printer on the process's stdout and stderr. `verbose` unfolds groups and shows debug
    /// messages.
    pub fn new(verbose: bool) -> Self {
        Self {
            out_color: color_allowed(std::io::stdout().is_terminal()),
            err_color: color_allowed(std::io::stderr().is_terminal()),
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            verbose,
            debug: verbose,
            group: None,
            job_open: false,
        }
    }

    fn paint(color: bool, style: Style, text: &str) -> String {
        if color {
            format!("\x1b[{}m{text}\x1b[0m", style.code())
        } else {
            text.to_string()
        }
    }

    /// Shows `::debug::` messages (also without verbose), as `ACTIONS_STEP_DEBUG` does.
    pub fn show_debug(&mut self, on: bool) {
        self.debug = on;
    }

    /// Writes a line of data to stdout.
    pub fn data(&mut self, line: &str) {
        let _ = writeln!(self.out, "{line}");
    }

    /// Writes a line of log to stderr.
    pub fn log(&mut self, line: &str) {
        let _ = writeln!(self.err, "{line}");
    }

    /// `error: message` on stderr.
    pub fn error(&mut self, message: &str) {
        let label = Self::paint(self.err_color, Style::Red, "error");
        self.log(&format!("{label}: {message}"));
    }

    /// `warning: message` on stderr.
    pub fn warning(&mut self, message: &str) {
        let label = Self::paint(self.err_color, Style::Yellow, "warning");
        self.log(&format!("{label}: {message}"));
    }

    fn status_word(&self, color: bool, status: Status) -> String {
        let style = match status {
            Status::Success => Style::Green,
            Status::Failure => Style::Red,
            Status::Cancelled => Style::Yellow,
            Status::Skipped => Style::Dim,
        };
        Self::paint(color, style, status.as_str())
    }

    /// A step output line, folded into the open group unless verbose.
    fn step_line(&mut self, line: &str) {
        if let Some(group) = &mut self.group {
            if self.verbose {
                let _ = writeln!(self.err, "    {line}");
            } else {
                if group.lines.len() == FOLDED_LINES_KEPT {
                    group.lines.pop_front();
                }
                group.lines.push_back(line.to_string());
                group.total += 1;
            }
            return;
        }
        let _ = writeln!(self.err, "  {line}");
    }

    fn close_group(&mut self, expand: bool) {
        let Some(FoldedGroup {
            title,
            lines,
            total,
        }) = self.group.take()
        else {
            return;
        };
        if self.verbose {
            return;
        }
        if expand {
            let header = Self::paint(self.err_color, Style::Cyan, &format!("▾ {title}"));
            let _ = writeln!(self.err, "  {header}");
            if total > lines.len() {
                let _ = writeln!(
                    self.err,
                    "    … {} earlier lines not kept",
                    total - lines.len()
                );
            }
            for line in lines {
                let _ = writeln!(self.err, "    {line}");
            }
        } else {
            let count = total;
            let plural = if count == 1 { "line" } else { "lines" };
            let header = Self::paint(
                self.err_color,
                Style::Cyan,
                &format!("▸ {title} ({count} {plural} folded)"),
            );
            let _ = writeln!(self.err, "  {header}");
        }
    }

    /// Prints the summary table (job, step, outcome, duration) to stdout.
    pub fn summary(&mut self, report: &RunReport) {
        let mut rows: Vec<[String; 4]> = Vec::new();
        let mut styles: Vec<Option<Status>> = Vec::new();
        for job in &report.jobs {
            if job.steps.is_empty() {
                rows.push([
                    job.name.clone(),
                    "-".into(),
                    job.result.as_str().into(),
                    "-".into(),
                ]);
                styles.push(Some(job.result));
            }
            for step in &job.steps {
                let unsupported = step.outcome == Status::Skipped
                    && job.not_run.iter().any(|n| n.step == step.name);
                let outcome = if unsupported {
                    "skipped (not run here)".to_string()
                } else if step.outcome == step.conclusion {
                    step.outcome.as_str().to_string()
                } else {
                    format!("{} (continue-on-error)", step.outcome)
                };
                let duration = if step.outcome == Status::Skipped {
                    "-".to_string()
                } else {
                    format_duration(step.duration)
                };
                rows.push([job.name.clone(), step.name.clone(), outcome, duration]);
                styles.push(Some(step.conclusion));
            }
        }
        let header = ["JOB", "STEP", "OUTCOME", "DURATION"];
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let pad = |text: &str, width: usize| {
            let n = text.chars().count();
            format!("{text}{}", " ".repeat(width.saturating_sub(n)))
        };
        let head = format!(
            "{}  {}  {}  {}",
            pad(header[0], widths[0]),
            pad(header[1], widths[1]),
            pad(header[2], widths[2]),
            header[3]
        );
        let head = Self::paint(self.out_color, Style::Bold, head.trim_end());
        self.data(&head);
        for (row, status) in rows.iter().zip(styles) {
            let outcome = pad(&row[2], widths[2]);
            let outcome = match status {
                Some(s) if self.out_color => {
                    let word = self.status_word(true, s);
                    outcome.replacen(s.as_str(), &word, 1)
                }
                _ => outcome,
            };
            let line = format!(
                "{}  {}  {}  {}",
                pad(&row[0], widths[0]),
                pad(&row[1], widths[1]),
                outcome,
                row[3]
            );
            self.data(line.trim_end());
        }
        let failed = report
            .jobs
            .iter()
            .filter(|j| matches!(j.result, Status::Failure | Status::Cancelled))
            .count();
        let verdict = if report.success() {
            self.status_word(self.out_color, Status::Success)
        } else {
            self.status_word(self.out_color, Status::Failure)
        };
        let jobs = report.jobs.len();
        let plural = if jobs == 1 { "job" } else { "jobs" };
        self.data(&format!(
            "\nResult: {verdict} ({jobs} {plural}, {failed} failed)"
        ));
        let not_run: Vec<String> = report
            .not_run()
            .map(|n| format!("'{}' ({})", n.step, n.reason))
            .collect();
        if !not_run.is_empty() {
            let n = not_run.len();
            let what = if n == 1 { "step was" } else { "steps were" };
            self.data(&format!("{n} {what} not run: {}", not_run.join(", ")));
        }
        for job in &report.jobs {
            if !job.summary.is_empty() {
                self.data(&format!("\nSummary of {}:", job.name));
                for line in job.summary.lines() {
                    self.data(&format!("  {line}"));
                }
            }
        }
    }

    /// Prints the `--json` report to stdout.
    pub fn json(&mut self, report: &RunReport) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(report)?;
        self.data(&text);
        Ok(())
    }
}

/// `1.23s`, or `2m03s` from a minute on.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.2}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

fn annotation_label(level: AnnotationLevel) -> (&'static str, Style) {
    match level {
        AnnotationLevel::Notice => ("Notice", Style::Cyan),
        AnnotationLevel::Warning => ("Warning", Style::Yellow),
        AnnotationLevel::Error => ("Error", Style::Red),
    }
}

impl Printer {
    /// Renders one event of `runner exec` on stderr.
    pub fn event(&mut self, event: &Event) {
        let c = self.err_color;
        match &event.kind {
            // Cache transfer progress has no rendering yet.
            EventKind::Progress { .. } => {}
            EventKind::Warning { message } => self.warning(message),
            EventKind::JobStarted { name, .. } => {
                if self.job_open {
                    self.log("");
                }
                self.job_open = true;
                let line = Self::paint(c, Style::Bold, &format!("Job {name}"));
                self.log(&line);
            }
            EventKind::JobSkipped { name, reason, .. } => {
                let line = Self::paint(c, Style::Dim, &format!("Job {name} skipped: {reason}"));
                self.log(&line);
            }
            EventKind::JobFinished {
                name,
                result,
                duration,
                ..
            } => {
                let word = self.status_word(c, *result);
                self.log(&format!(
                    "Job {name}: {word} in {}",
                    format_duration(*duration)
                ));
            }
            EventKind::StepStarted { name } => {
                let line = Self::paint(c, Style::Bold, &format!("▶ {name}"));
                self.log(&line);
            }
            EventKind::StepSkipped { name, reason } => {
                let line = Self::paint(c, Style::Dim, &format!("○ {name} (skipped: {reason})"));
                self.log(&line);
            }
            EventKind::Output { line, .. } => self.step_line(line),
            EventKind::GroupStarted { title } => {
                // GitHub does not nest groups: a new one closes the open one.
                self.close_group(false);
                if self.verbose {
                    let header = Self::paint(c, Style::Cyan, &format!("▾ {title}"));
                    let _ = writeln!(self.err, "  {header}");
                }
                self.group = Some(FoldedGroup {
                    title: title.clone(),
                    lines: std::collections::VecDeque::new(),
                    total: 0,
                });
            }
            EventKind::GroupEnded => self.close_group(false),
            EventKind::Debug { message } => {
                if self.debug {
                    let line = Self::paint(c, Style::Dim, &format!("  Debug: {message}"));
                    self.log(&line);
                }
            }
            EventKind::Annotation {
                level,
                message,
                title,
                file,
                line,
                col,
            } => {
                let (label, style) = annotation_label(*level);
                let mut text = Self::paint(c, style, label);
                text.push_str(": ");
                if let Some(file) = file {
                    text.push_str(file);
                    for part in [line, col].into_iter().flatten() {
                        text.push(':');
                        text.push_str(part);
                    }
                    text.push_str(": ");
                }
                if let Some(title) = title {
                    text.push_str(title);
                    text.push_str(": ");
                }
                let mut lines = message.lines();
                text.push_str(lines.next().unwrap_or(""));
                let _ = writeln!(self.err, "  {text}");
                for rest in lines {
                    let _ = writeln!(self.err, "  {rest}");
                }
            }
            EventKind::StepFinished {
                outcome,
                conclusion,
                ..
            } => {
                // An unclosed group in a finished step is shown: it usually holds the failure.
                self.close_group(true);
                if *outcome != Status::Success {
                    let word = self.status_word(c, *outcome);
                    let note = if outcome != conclusion {
                        format!(" (continue-on-error: {conclusion})")
                    } else {
                        String::new()
                    };
                    self.log(&format!("  → {word}{note}"));
                }
            }
            EventKind::PlanJob {
                job,
                name,
                needs,
                condition,
            } => {
                // Matrix names already start with the id: `test (linux)`.
                let mut line = if name.starts_with(job.as_str()) {
                    format!("job {name}")
                } else {
                    format!("job {job} \"{name}\"")
                };
                if !needs.is_empty() {
                    line.push_str(&format!(", needs: {}", needs.join(", ")));
                }
                self.data(&line);
                if let Some((expr, value)) = condition {
                    self.data(&format!("  if: {expr} → {value}"));
                }
            }
            EventKind::PlanStep {
                name,
                action,
                condition,
                with,
            } => {
                self.data(&format!("  - {name} [{action}]"));
                if let Some((expr, value)) = condition {
                    self.data(&format!("      if: {expr} → {value}"));
                }
                for (k, v) in with {
                    let shown = v.replace('\n', "\\n");
                    self.data(&format!("      with.{k}: {shown}"));
                }
            }
        }
        let _ = self.err.flush();
    }
}
