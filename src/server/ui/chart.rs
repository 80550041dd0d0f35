//! Server-rendered SVG bar charts: lookups per day (exact / partial / miss stacked) and bytes
//! restored and saved per day (side by side). Each chart carries a text title for screen
//! readers and a `<title>` per bar for hover; the numbers are also in a table under it.

use std::fmt::Write as _;

use super::html::{self, Esc};
use crate::store::index::DayActivity;

const WIDTH: f64 = 480.0;
const HEIGHT: f64 = 190.0;
const LEFT: f64 = 54.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 24.0;

/// One series of a chart: a CSS class (its colour) and a label.
struct Series {
    class: &'static str,
    label: &'static str,
}

/// A round step (1, 2, 5 × 10^n) for about four gridlines up to `max`, and the axis top (a
/// multiple of it), so every gridline falls on a round value.
fn axis(max: f64) -> (f64, f64) {
    if max <= 0.0 {
        return (1.0, 1.0);
    }
    let rough = max / 4.0;
    let magnitude = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|v| *v >= rough)
        .unwrap_or(10.0 * magnitude);
    // Counts are whole: a step under 1 would label gridlines 0.5, 1.5 of nothing.
    let step = step.max(1.0);
    (step, (max / step).ceil() * step)
}

/// Draws `days` as bars: per day, `values` gives each series' value; `stacked` piles them,
/// else they stand side by side. `label` formats axis values.
fn bars(
    id: &str,
    title: &str,
    days: &[DayActivity],
    series: &[Series],
    values: impl Fn(&DayActivity) -> Vec<u64>,
    stacked: bool,
    label: impl Fn(u64) -> String,
) -> String {
    let rows: Vec<Vec<u64>> = days.iter().map(&values).collect();
    let max = rows
        .iter()
        .map(|r| {
            if stacked {
                r.iter().sum::<u64>()
            } else {
                r.iter().copied().max().unwrap_or(0)
            }
        })
        .max()
        .unwrap_or(0);
    let (step, top) = axis(max as f64);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / days.len().max(1) as f64;
    let bar_w = (slot * 0.7).max(1.0);
    let y = |v: f64| TOP + plot_h - v / top * plot_h;

    let mut out = String::new();
    let _ = write!(
        out,
        "<figure class=\"chart\"><figcaption id=\"{id}-t\">{}</figcaption><ul class=\"legend\">",
        Esc(title)
    );
    for s in series {
        let _ = write!(
            out,
            "<li><span class=\"swatch {}\"></span>{}</li>",
            s.class, s.label
        );
    }
    let _ = write!(
        out,
        "</ul><svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-labelledby=\"{id}-t\" \
         preserveAspectRatio=\"xMidYMid meet\">"
    );
    let lines = (top / step).round() as u32;
    for n in 0..=lines {
        let v = step * f64::from(n);
        let yy = y(v);
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\"/>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            Esc(&label(v as u64))
        );
    }
    let label_every = days.len().div_ceil(10).max(1);
    for (i, (day, row)) in days.iter().zip(&rows).enumerate() {
        let x0 = LEFT + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut tip = html::month_day(day.day);
        for (s, v) in series.iter().zip(row) {
            let _ = write!(tip, ", {}: {}", s.label, label(*v));
        }
        let _ = write!(out, "<g><title>{}</title>", Esc(&tip));
        let mut base = 0u64;
        let each_w = bar_w / series.len().max(1) as f64;
        for (j, (s, v)) in series.iter().zip(row).enumerate() {
            if *v == 0 {
                continue;
            }
            let (x, w, lo, hi) = if stacked {
                (x0, bar_w, base, base + v)
            } else {
                (x0 + each_w * j as f64, each_w, 0, *v)
            };
            let _ = write!(
                out,
                "<rect class=\"{}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\"/>",
                s.class,
                y(hi as f64),
                (y(lo as f64) - y(hi as f64)).max(0.5)
            );
            base = hi;
        }
        out.push_str("</g>");
        if i % label_every == 0 {
            let _ = write!(
                out,
                "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                x0 + bar_w / 2.0,
                HEIGHT - 8.0,
                html::month_day(day.day)
            );
        }
    }
    out.push_str("</svg>");
    // The same numbers as text, for screen readers and for copying.
    let _ = write!(
        out,
        "<details><summary>Numbers</summary><table class=\"data\"><thead><tr><th scope=\"col\">Day</th>"
    );
    for s in series {
        let _ = write!(out, "<th scope=\"col\" class=\"num\">{}</th>", s.label);
    }
    out.push_str("</tr></thead><tbody>");
    for (day, row) in days.iter().zip(&rows) {
        let _ = write!(out, "<tr><td>{}</td>", html::month_day(day.day));
        for v in row {
            let _ = write!(out, "<td class=\"num\">{}</td>", Esc(&label(*v)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></details></figure>");
    out
}

/// Lookups per day, exact / partial / miss stacked, with the window's hit rate in the title.
pub fn lookups(days: &[DayActivity]) -> String {
    let (hits, all) = days.iter().fold((0u64, 0u64), |(h, a), d| {
        let hits = d.exact + d.partial;
        (h + hits, a + hits + d.miss)
    });
    let title = if all == 0 {
        format!("Lookups per day, last {} days: none yet", days.len())
    } else {
        format!(
            "Lookups per day, last {} days: {:.0}% hit rate ({hits} of {all})",
            days.len(),
            hits as f64 * 100.0 / all as f64
        )
    };
    bars(
        "lookups",
        &title,
        days,
        &[
            Series {
                class: "exact",
                label: "exact hit",
            },
            Series {
                class: "partial",
                label: "partial hit",
            },
            Series {
                class: "miss",
                label: "miss",
            },
        ],
        |d| vec![d.exact, d.partial, d.miss],
        true,
        |v| v.to_string(),
    )
}

/// Bytes restored and saved per day, side by side.
pub fn transfer(days: &[DayActivity]) -> String {
    let restored: u64 = days.iter().map(|d| d.bytes_restored).sum();
    let saved: u64 = days.iter().map(|d| d.bytes_saved).sum();
    let title = format!(
        "Bytes per day: {} restored, {} saved",
        html::bytes(restored),
        html::bytes(saved)
    );
    bars(
        "bytes",
        &title,
        days,
        &[
            Series {
                class: "restored",
                label: "restored",
            },
            Series {
                class: "saved",
                label: "saved",
            },
        ],
        |d| vec![d.bytes_restored, d.bytes_saved],
        false,
        html::bytes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gridlines_fall_on_round_values() {
        let rows = [
            (0.0, (1.0, 1.0)),
            (3.0, (1.0, 3.0)),
            (7.0, (2.0, 8.0)),
            (10.0, (5.0, 10.0)),
            (120.0, (50.0, 150.0)),
            (488_000.0, (200_000.0, 600_000.0)),
        ];
        for (max, expected) in rows {
            assert_eq!(axis(max), expected, "{max}");
        }
    }

    #[test]
    fn a_bar_per_series_value_and_the_rate_in_the_title() {
        let day = |d: i64, exact, partial, miss| DayActivity {
            day: d * 86_400_000,
            exact,
            partial,
            miss,
            ..DayActivity::default()
        };
        let svg = lookups(&[day(0, 3, 1, 0), day(1, 0, 0, 4)]);
        assert_eq!(svg.matches("<rect").count(), 3, "{svg}");
        assert!(svg.contains("50% hit rate (4 of 8)"), "{svg}");
        assert!(
            svg.contains("01-01, exact hit: 3, partial hit: 1, miss: 0"),
            "{svg}"
        );
    }
}
