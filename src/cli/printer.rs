//! The `Printer`: stdout carries data (tables, plans, JSON reports), stderr carries logs and
//! progress. Colour per `--color`: `auto` colours a terminal unless `NO_COLOR` is set, and
//! `CLICOLOR_FORCE` colours one that is not; `always` and `never` win over both.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use runner::exec::{AnnotationLevel, Direction, Event, EventKind, RunReport, Status, Transfer};

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

/// `--color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set; also off a terminal with CLICOLOR_FORCE.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Whether a stream gets colour: the flag first, then `NO_COLOR` (set and not empty), then
/// `CLICOLOR_FORCE` (set, not empty, not `0`), then whether it is a terminal.
pub fn color_enabled(
    choice: ColorChoice,
    is_terminal: bool,
    no_color: Option<OsString>,
    force: Option<OsString>,
) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if no_color.is_some_and(|v| !v.is_empty()) {
                false
            } else if force.is_some_and(|v| !v.is_empty() && v != "0") {
                true
            } else {
                is_terminal
            }
        }
    }
}

/// Writes data to stdout and logs to stderr, styling each for its own stream.
pub struct Printer {
    out: Box<dyn Write + Send>,
    err: Box<dyn Write + Send>,
    out_color: bool,
    err_color: bool,
    /// Progress is a bar on a terminal, lines elsewhere.
    err_is_terminal: bool,
    /// Only data, warnings and errors.
    quiet: bool,
    /// Stdout is one JSON document (`--json`): nothing else goes there.
    json: bool,
    verbose: bool,
    /// Show `::debug::` lines.
    debug: bool,
    /// The open `::group::`.
    group: Option<FoldedGroup>,
    /// Set once something was written to stderr inside a job, to separate jobs.
    job_open: bool,
    /// The cache transfer being shown.
    transfer: Option<ShownTransfer>,
}

/// How often a transfer's progress is logged off a terminal (actions/cache's interval).
const PROGRESS_LOG_INTERVAL_MS: u64 = 5_000;

/// A cache transfer's progress as shown: a bar on a terminal, else the time of the last line.
struct ShownTransfer {
    bar: Option<indicatif::ProgressBar>,
    logged_at_ms: u64,
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

impl Printer {
    /// A printer on the process's stdout and stderr. `quiet` keeps only data, warnings and
    /// errors; `json` reserves stdout for one JSON document.
    pub fn new(color: ColorChoice, quiet: bool, json: bool) -> Self {
        let enabled = |is_terminal: bool| {
            color_enabled(
                color,
                is_terminal,
                std::env::var_os("NO_COLOR"),
                std::env::var_os("CLICOLOR_FORCE"),
            )
        };
        Self {
            out_color: enabled(std::io::stdout().is_terminal()) && !json,
            err_color: enabled(std::io::stderr().is_terminal()),
            err_is_terminal: std::io::stderr().is_terminal(),
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            quiet,
            json,
            verbose: false,
            debug: false,
            group: None,
            job_open: false,
            transfer: None,
        }
    }

    /// A printer with the same settings on the same streams, for a run's event sink.
    pub fn fork(&self) -> Self {
        Self {
            out: Box::new(std::io::stdout()),
            err: Box::new(std::io::stderr()),
            group: None,
            job_open: false,
            transfer: None,
            ..*self
        }
    }

    /// Shows a cache transfer: a bar on a terminal; off one a line every few seconds and when
    /// it ends, as actions/cache logs (`Received 52428800 of 78097531 (67.1%), 48.0 MBs/sec`).
    fn progress(&mut self, t: &Transfer) {
        let on_terminal = self.err_is_terminal;
        let shown = self.transfer.get_or_insert_with(|| ShownTransfer {
            bar: on_terminal.then(|| {
                let bar = indicatif::ProgressBar::with_draw_target(
                    t.total,
                    indicatif::ProgressDrawTarget::stderr(),
                );
                let template = match t.total {
                    Some(_) => "  {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
                    None => "  {msg} {bytes} ({bytes_per_sec})",
                };
                if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message(match t.direction {
                    Direction::Save => "Saving",
                    Direction::Restore => "Restoring",
                });
                bar
            }),
            logged_at_ms: 0,
        });
        match &shown.bar {
            Some(bar) => {
                bar.set_position(t.bytes);
                if t.done {
                    bar.finish_and_clear();
                }
            }
            None => {
                if t.done || t.elapsed_ms >= shown.logged_at_ms + PROGRESS_LOG_INTERVAL_MS {
                    shown.logged_at_ms = t.elapsed_ms;
                    let line = progress_line(t);
                    self.log(&format!("  {line}"));
                }
            }
        }
        if t.done {
            self.transfer = None;
        }
    }

    /// Unfolds groups and shows debug messages.
    pub fn set_verbose(&mut self, verbose: bool) {
        self.verbose = verbose;
        self.debug |= verbose;
    }

    /// True when stdout is reserved for one JSON document.
    pub fn json_mode(&self) -> bool {
        self.json
    }

    /// Writes `value` to stdout as the one JSON document of this run.
    pub fn json_document(&mut self, value: &serde_json::Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    /// Writes one line of JSON (an event stream) to stdout and flushes it.
    pub fn json_line(&mut self, value: &serde_json::Value) {
        let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    /// Writes text that already holds its line ends to stdout.
    pub fn data_text(&mut self, text: &str) {
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
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

    /// Writes a line of log to stderr (not with `--quiet`).
    pub fn log(&mut self, line: &str) {
        if !self.quiet {
            let _ = writeln!(self.err, "{line}");
        }
    }

    /// Writes a line to stderr even with `--quiet` (prompts, refusals).
    pub fn notice(&mut self, line: &str) {
        let _ = writeln!(self.err, "{line}");
    }

    /// `error: message` on stderr.
    pub fn error(&mut self, message: &str) {
        let label = Self::paint(self.err_color, Style::Red, "error");
        self.notice(&format!("{label}: {message}"));
    }

    /// `warning: message` on stderr.
    pub fn warning(&mut self, message: &str) {
        let label = Self::paint(self.err_color, Style::Yellow, "warning");
        self.notice(&format!("{label}: {message}"));
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
}

/// One progress line as actions/cache logs it: `Received 52428800 of 78097531 (67.1%),
/// 48.0 MBs/sec` (MB = 1024 × 1024 bytes); a save whose size is not known yet says `Sent N`.
pub fn progress_line(t: &Transfer) -> String {
    let verb = match t.direction {
        Direction::Save => "Sent",
        Direction::Restore => "Received",
    };
    let secs = (t.elapsed_ms.max(1)) as f64 / 1000.0;
    let rate = t.bytes as f64 / (1024.0 * 1024.0) / secs;
    match t.total {
        Some(total) if total > 0 => {
            let percent = t.bytes as f64 * 100.0 / total as f64;
            format!(
                "{verb} {} of {total} ({percent:.1}%), {rate:.1} MBs/sec",
                t.bytes
            )
        }
        _ => format!("{verb} {}, {rate:.1} MBs/sec", t.bytes),
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

/// A planned `if:` value, or "decided at run time" when it reads earlier outputs.
fn plan_value<'a>(expression: &str, value: &'a str) -> &'a str {
    if super::exec::output::depends_on_outputs(expression) {
        super::exec::output::DECIDED_AT_RUN_TIME
    } else {
        value
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
        let is_plan = matches!(
            event.kind,
            EventKind::PlanJob { .. } | EventKind::PlanStep { .. }
        );
        // With --json the plan is part of the one document, built from these same events.
        if is_plan && self.json {
            return;
        }
        let is_problem = matches!(
            event.kind,
            EventKind::Warning { .. }
                | EventKind::Annotation {
                    level: AnnotationLevel::Warning | AnnotationLevel::Error,
                    ..
                }
        );
        if self.quiet && !is_plan && !is_problem {
            return;
        }
        match &event.kind {
            EventKind::Progress { transfer } => self.progress(transfer),
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
                    let value = plan_value(expr, value);
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
                    let value = plan_value(expr, value);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        let t = |direction, bytes, total| Transfer {
            direction,
            bytes,
            total,
            elapsed_ms: 1_000,
            done: false,
        };
        let rows = [
            (
                t(Direction::Restore, 52_428_800, Some(78_097_531)),
                "Received 52428800 of 78097531 (67.1%), 50.0 MBs/sec",
            ),
            (
                t(Direction::Save, 1_048_576, None),
                "Sent 1048576, 1.0 MBs/sec",
            ),
            (t(Direction::Save, 0, Some(0)), "Sent 0, 0.0 MBs/sec"),
        ];
        for (transfer, expected) in rows {
            assert_eq!(progress_line(&transfer), expected);
        }
    }

    #[test]
    fn color_rows() {
        let set = |v: &str| Some(OsString::from(v));
        let rows = [
            (ColorChoice::Auto, true, None, None, true),
            (ColorChoice::Auto, false, None, None, false),
            (ColorChoice::Auto, true, set("1"), None, false),
            (ColorChoice::Auto, true, set(""), None, true),
            (ColorChoice::Auto, false, None, set("1"), true),
            (ColorChoice::Auto, false, None, set("0"), false),
            (ColorChoice::Auto, false, set("1"), set("1"), false),
            (ColorChoice::Always, false, set("1"), None, true),
            (ColorChoice::Never, true, None, set("1"), false),
        ];
        for (choice, tty, no_color, force, expected) in rows {
            assert_eq!(
                color_enabled(choice, tty, no_color.clone(), force.clone()),
                expected,
                "{choice:?} tty={tty} NO_COLOR={no_color:?} CLICOLOR_FORCE={force:?}"
            );
        }
    }
}
