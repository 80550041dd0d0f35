//! The small HTML toolkit the pages are written with: escaping of every user-controlled string
//! (keys, refs, paths, repository names), URL query encoding, sizes and times, and the page
//! frame. No template engine: pages are `write!` into a `String` through [`Esc`].

use std::fmt::{self, Display, Write as _};

use crate::clock::{EpochMillis, UtcTime};

/// Text escaped for HTML element content and double- or single-quoted attribute values.
pub struct Esc<'a>(pub &'a str);

impl Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

/// A string percent-encoded for a URL query value or path segment (RFC 3986 unreserved kept).
pub struct Url<'a>(pub &'a str);

impl Display for Url<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                f.write_char(char::from(b))?;
            } else {
                write!(f, "%{b:02X}")?;
            }
        }
        Ok(())
    }
}

/// A query string `?a=1&b=2` from pairs, skipping empty values; `&` escaped for attributes.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        out.push_str(if out.is_empty() { "?" } else { "&amp;" });
        let _ = write!(out, "{}={}", Url(name), Url(value));
    }
    out
}

/// `1.5 GB`, `320 KB`, `12 B` (powers of 1024, as GitHub's cache pages count).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// `2026-01-31 14:05 UTC`.
pub fn time(millis: EpochMillis) -> String {
    let t = UtcTime::from_millis(millis);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// `01-31`, for chart axes.
pub fn month_day(millis: EpochMillis) -> String {
    let t = UtcTime::from_millis(millis);
    format!("{:02}-{:02}", t.month, t.day)
}

/// `3 h ago`, `5 d ago`, relative to `now`.
pub fn ago(millis: EpochMillis, now: EpochMillis) -> String {
    let secs = (now - millis).max(0) / 1000;
    match secs {
        0..60 => "just now".to_string(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} d ago", secs / 86_400),
    }
}

/// The navigation trail above a page's title: (label, href) pairs, the last one current.
pub type Crumbs<'a> = &'a [(&'a str, &'a str)];

/// What the frame shows about who is looking.
#[derive(Debug, Clone)]
pub struct Chrome {
    /// Signed in with an admin token (shows "Sign out"), else "Sign in".
    pub signed_in: bool,
    /// Whether deletions are allowed at all (insecure servers allow them without a token).
    pub can_write: bool,
    /// The CSRF token for forms on this page.
    pub csrf: String,
    /// This page's path and query, for the sign-in form's return.
    pub here: String,
}

/// Wraps `body` in the page frame: head with the embedded stylesheet, header, breadcrumbs.
pub fn page(title: &str, crumbs: Crumbs<'_>, chrome: &Chrome, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · runner cache</title>\
         <link rel=\"stylesheet\" href=\"/ui/assets/style.css\">\
         <link rel=\"icon\" href=\"/ui/assets/icon.svg\" type=\"image/svg+xml\"></head><body>\
         <a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header class=\"top\"><a class=\"brand\" href=\"/ui\">\
         <img src=\"/ui/assets/icon.svg\" alt=\"\" width=\"22\" height=\"22\">runner cache</a>",
        Esc(title)
    );
    if chrome.signed_in {
        let _ = write!(
            out,
            "<form method=\"post\" action=\"/ui/sign-out\" class=\"who\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <span class=\"badge\">admin</span><button type=\"submit\" class=\"link\">Sign out</button></form>",
            Esc(&chrome.csrf)
        );
    } else if chrome.can_write {
        out.push_str("<span class=\"who\"><span class=\"badge\">open server: no sign-in needed</span></span>");
    } else {
        let _ = write!(
            out,
            "<a class=\"who\" href=\"/ui/sign-in{}\">Sign in</a>",
            query(&[("next", &chrome.here)])
        );
    }
    out.push_str("</header><main id=\"main\">");
    if !crumbs.is_empty() {
        out.push_str("<nav aria-label=\"Breadcrumb\" class=\"crumbs\"><ol>");
        for (i, (label, href)) in crumbs.iter().enumerate() {
            if i + 1 == crumbs.len() {
                let _ = write!(out, "<li aria-current=\"page\">{}</li>", Esc(label));
            } else {
                let _ = write!(out, "<li><a href=\"{}\">{}</a></li>", Esc(href), Esc(label));
            }
        }
        out.push_str("</ol></nav>");
    }
    let _ = write!(out, "<h1>{}</h1>", Esc(title));
    out.push_str(body);
    out.push_str("</main></body></html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        let rows = [
            ("plain-key", "plain-key"),
            (
                "<script>alert('x')</script>",
                "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;",
            ),
            ("a&b \"c\"", "a&amp;b &quot;c&quot;"),
            ("ключ-ü", "ключ-ü"),
        ];
        for (raw, escaped) in rows {
            assert_eq!(Esc(raw).to_string(), escaped, "{raw}");
        }
    }

    #[test]
    fn queries_encode_values_and_skip_empty_ones() {
        assert_eq!(query(&[]), "");
        assert_eq!(query(&[("key", "npm-"), ("ref", "")]), "?key=npm-");
        assert_eq!(
            query(&[("key", "a b&c"), ("ref", "refs/heads/main")]),
            "?key=a%20b%26c&amp;ref=refs%2Fheads%2Fmain"
        );
        assert_eq!(query(&[("next", "/ui?x=<y>")]), "?next=%2Fui%3Fx%3D%3Cy%3E");
    }

    #[test]
    fn sizes_and_times() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(1536), "1.5 KB");
        assert_eq!(bytes(300 * 1024 * 1024), "300 MB");
        assert_eq!(time(1_767_225_600_000), "2026-01-01 00:00 UTC");
        assert_eq!(month_day(1_767_225_600_000), "01-01");
        assert_eq!(ago(0, 7_200_000), "2 h ago");
    }
}
