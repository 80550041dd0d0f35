//! `runner cache analyze`: prints the [`Report`] of `runner::cache::analyze` as text or JSON.

use std::io::Write;

use runner::cache::analyze::{Finding, Report, Severity, human_size};

/// Prints `report`: the JSON document with `--json`, else a text summary.
pub fn print(
    out: &mut impl Write,
    report: &Report,
    window: &str,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        // The report's own serialization carries epoch millis; the CLI's documents put each
        // time twice (docs/json.md), so `since` and `generated_at` become ISO-8601 plus `_ms`.
        let mut doc = serde_json::to_value(report)?;
        if let serde_json::Value::Object(object) = &mut doc {
            object.insert(
                "window".into(),
                serde_json::Value::String(window.to_string()),
            );
            super::json::put_time(object, "since", report.since);
            super::json::put_time(object, "generated_at", report.generated_at);
        }
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    let what = report.repository.as_deref().unwrap_or("all repositories");
    writeln!(
        out,
        "Cache analysis of {what}, last {window} (size budget {} per repository)",
        human_size(report.budget_bytes)
    )?;
    let t = &report.totals;
    writeln!(
        out,
        "Lookups: {}  exact {} ({})  partial {} ({})  miss {} ({})",
        t.lookups,
        t.hits_exact,
        percent(t.hits_exact, t.lookups),
        t.hits_partial,
        percent(t.hits_partial, t.lookups),
        t.misses,
        percent(t.misses, t.lookups)
    )?;
    if !report.prefixes.is_empty() {
        writeln!(out, "\nHit rate per key prefix:")?;
        let width = report
            .prefixes
            .iter()
            .map(|p| p.prefix.chars().count())
            .max()
            .unwrap_or(0)
            .max("PREFIX".len());
        writeln!(
            out,
            "  {:<width$}  LOOKUPS  EXACT  PARTIAL  MISS  HIT RATE",
            "PREFIX"
        )?;
        for p in &report.prefixes {
            writeln!(
                out,
                "  {:<width$}  {:>7}  {:>5}  {:>7}  {:>4}  {:>8}",
                p.prefix,
                p.lookups,
                p.hits_exact,
                p.hits_partial,
                p.misses,
                percent(p.hits_exact + p.hits_partial, p.lookups)
            )?;
        }
    }
    if !report.levels.is_empty() {
        writeln!(out, "\nHits per restore level:")?;
        for l in &report.levels {
            writeln!(
                out,
                "  {:<16}  exact {:>4}  prefix {:>4}  {:>6} of hits",
                l.label,
                l.exact_matches,
                l.prefix_matches,
                format!("{:.1}%", l.share * 100.0)
            )?;
        }
    }
    if report.findings.is_empty() {
        writeln!(out, "\nNo findings.")?;
    } else {
        writeln!(out, "\nFindings ({}):", report.findings.len())?;
        for finding in &report.findings {
            print_finding(out, finding, report.repository.is_none())?;
        }
    }
    Ok(())
}

fn print_finding(out: &mut impl Write, f: &Finding, show_repository: bool) -> anyhow::Result<()> {
    let severity = match f.severity {
        Severity::Warning => "warning",
        Severity::Info => "info",
    };
    let repository = if show_repository {
        format!("{}: ", f.repository)
    } else {
        String::new()
    };
    writeln!(out, "  {severity:<7}  {repository}{}", f.summary)?;
    writeln!(out, "           -> {}", f.recommendation)?;
    Ok(())
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}
