//! The pages: pure functions from what the index said to HTML. Every user-controlled string goes
//! through [`Esc`] (text, attributes) or [`html::query`] / [`Url`] (links).

use std::fmt::Write as _;

use super::chart;
use super::html::{self, Chrome, Esc, Url, query};
use crate::clock::EpochMillis;
use crate::store::index::{
    AuditRecord, DayActivity, Entry, EntryPage, Eviction, KeyMatch, ListSort, RepoUsage,
    RestoredKey,
};

/// Entries per page of a repository's listing.
pub const PAGE_SIZE: usize = 50;

/// The activity sections shared by the overview and a repository's page.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// One element per day of the window.
    pub days: Vec<DayActivity>,
    /// Keys restored most in the window.
    pub top_restores: Vec<RestoredKey>,
    /// The largest entries.
    pub top_size: Vec<Entry>,
    /// The latest evictions.
    pub evictions: Vec<Eviction>,
    /// The latest deletions on request (REST API, UI), from the audit log.
    pub audit: Vec<AuditRecord>,
}

/// What the overview shows.
#[derive(Debug, Clone)]
pub struct Overview {
    /// Usage per repository.
    pub repos: Vec<RepoUsage>,
    /// The size budget per repository.
    pub budget: u64,
    /// Charts and top lists over all repositories.
    pub activity: Activity,
    /// The server's clock.
    pub now: EpochMillis,
}

/// The listing a repository page asks for (its query string).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EntryQuery {
    /// Key prefix.
    pub key: String,
    /// Exact ref (scope).
    pub git_ref: String,
    /// Sort order.
    pub sort: ListSort,
    /// 1-based page.
    pub page: u64,
}

impl EntryQuery {
    fn sort_name(sort: ListSort) -> &'static str {
        match sort {
            ListSort::Created => "created",
            ListSort::LastUsed => "last-used",
            ListSort::Size => "size",
        }
    }

    /// Parses `sort=` (created, last-used, size).
    pub fn parse_sort(text: &str) -> Option<ListSort> {
        [ListSort::Created, ListSort::LastUsed, ListSort::Size]
            .into_iter()
            .find(|s| Self::sort_name(*s) == text)
    }

    /// This query's link on page `page`.
    fn href(&self, repo: &str, page: u64) -> String {
        let page = if page > 1 {
            page.to_string()
        } else {
            String::new()
        };
        let sort = match self.sort {
            ListSort::Created => "",
            s => Self::sort_name(s),
        };
        format!(
            "{}{}",
            repo_href(repo),
            query(&[
                ("key", &self.key),
                ("ref", &self.git_ref),
                ("sort", sort),
                ("page", &page)
            ])
        )
    }
}

/// What a repository page shows.
#[derive(Debug, Clone)]
pub struct RepoView {
    /// `owner/name`.
    pub repo: String,
    /// Its usage (zero when it has no entries).
    pub usage: RepoUsage,
    /// The size budget.
    pub budget: u64,
    /// The listing asked for.
    pub query: EntryQuery,
    /// The listing.
    pub page: EntryPage,
    /// Charts and top lists of this repository.
    pub activity: Activity,
    /// How many entries the last deletion removed, to confirm it.
    pub deleted: Option<u64>,
    /// The server's clock.
    pub now: EpochMillis,
}

/// What a deletion removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Doomed {
    /// One entry.
    Entry(Box<Entry>),
    /// Every entry whose key starts with this, optionally in one ref.
    Prefix {
        /// The key prefix.
        prefix: String,
        /// Only this ref, when not empty.
        git_ref: String,
    },
    /// Every entry of the repository.
    All,
}

/// `/ui/r/owner/name`, each segment encoded.
pub fn repo_href(repo: &str) -> String {
    let mut out = String::from("/ui/r");
    for part in repo.split('/') {
        let _ = write!(out, "/{}", Url(part));
    }
    out
}

/// An entry's page.
pub fn entry_href(entry: &Entry) -> String {
    format!("{}/e/{}", repo_href(&entry.repository), Url(&entry.id))
}

fn usage_meter(out: &mut String, usage: &RepoUsage, budget: u64) {
    let share = if budget == 0 {
        0.0
    } else {
        (usage.size_bytes as f64 / budget as f64).min(1.0)
    };
    let _ = write!(
        out,
        "<div class=\"usage\"><meter min=\"0\" max=\"{budget}\" value=\"{}\" high=\"{}\" \
         aria-label=\"{} of the {} budget\"></meter><span>{} of {} ({:.0}%)</span></div>",
        usage.size_bytes.min(budget),
        budget / 10 * 9,
        html::bytes(usage.size_bytes),
        html::bytes(budget),
        html::bytes(usage.size_bytes),
        html::bytes(budget),
        share * 100.0
    );
}

/// Opens a top list's table: its caption, the key column, the repository column (overview).
fn top_head(out: &mut String, caption: &str, value: &str, with_repo: bool, empty: bool) {
    let _ = write!(
        out,
        "<table class=\"list\"><caption>{}</caption><thead><tr><th scope=\"col\">Key</th>{}\
         <th scope=\"col\" class=\"num\">{value}</th></tr></thead><tbody>",
        Esc(caption),
        if with_repo {
            "<th scope=\"col\">Repository</th>"
        } else {
            ""
        }
    );
    if empty {
        let cols = if with_repo { 3 } else { 2 };
        let _ = write!(
            out,
            "<tr><td colspan=\"{cols}\" class=\"empty\">Nothing yet</td></tr>"
        );
    }
}

/// One row of a top list.
fn top_row(out: &mut String, key: &str, href: &str, repo: Option<&str>, value: &str) {
    let _ = write!(
        out,
        "<tr><td class=\"key\"><a href=\"{}\">{}</a></td>",
        Esc(href),
        Esc(key)
    );
    if let Some(repo) = repo {
        let _ = write!(out, "<td>{}</td>", Esc(repo));
    }
    let _ = write!(out, "<td class=\"num\">{value}</td></tr>");
}

fn top_tables(out: &mut String, a: &Activity, with_repo: bool) {
    let repo_of = |r: &str| with_repo.then(|| r.to_string());
    top_head(
        out,
        "By restores, last 14 days",
        "Restores",
        with_repo,
        a.top_restores.is_empty(),
    );
    for k in &a.top_restores {
        let href = format!("{}{}", repo_href(&k.repository), query(&[("key", &k.key)]));
        let repo = repo_of(&k.repository);
        top_row(out, &k.key, &href, repo.as_deref(), &k.restores.to_string());
    }
    out.push_str("</tbody></table>");
    top_head(out, "By size", "Size", with_repo, a.top_size.is_empty());
    for e in &a.top_size {
        let repo = repo_of(&e.repository);
        top_row(
            out,
            &e.key,
            &entry_href(e),
            repo.as_deref(),
            &html::bytes(e.size_bytes),
        );
    }
    out.push_str("</tbody></table>");
}

fn activity(out: &mut String, a: &Activity, now: EpochMillis, with_repo: bool) {
    out.push_str("<section aria-labelledby=\"activity\"><h2 id=\"activity\">Activity</h2><div class=\"charts\">");
    out.push_str(&chart::lookups(&a.days));
    out.push_str(&chart::transfer(&a.days));
    out.push_str("</div></section><section aria-labelledby=\"top\"><h2 id=\"top\">Top keys</h2><div class=\"cols\">");
    top_tables(out, a, with_repo);
    out.push_str("</div></section>");
    out.push_str(
        "<section aria-labelledby=\"evictions\"><h2 id=\"evictions\">Recent evictions</h2>\
         <table class=\"list\"><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Key</th>",
    );
    if with_repo {
        out.push_str("<th scope=\"col\">Repository</th>");
    }
    out.push_str(
        "<th scope=\"col\">Ref</th><th scope=\"col\" class=\"num\">Size</th>\
         <th scope=\"col\">Reason</th></tr></thead><tbody>",
    );
    if a.evictions.is_empty() {
        let cols = if with_repo { 6 } else { 5 };
        let _ = write!(
            out,
            "<tr><td colspan=\"{cols}\" class=\"empty\">No evictions</td></tr>"
        );
    }
    for ev in &a.evictions {
        let _ = write!(
            out,
            "<tr><td><time datetime=\"{}\" title=\"{}\">{}</time></td><td class=\"key\">{}</td>",
            ev.at,
            html::time(ev.at),
            html::ago(ev.at, now),
            Esc(&ev.key)
        );
        if with_repo {
            let _ = write!(out, "<td>{}</td>", Esc(&ev.repository));
        }
        let reason = match ev.reason.as_str() {
            "unused" => "unused past the TTL",
            "size" => "over the size budget",
            "broken" => "broken archive",
            "manual" => "deleted on request",
            other => other,
        };
        let _ = write!(
            out,
            "<td class=\"ref\">{}</td><td class=\"num\">{}</td><td><span class=\"tag {}\">{}</span></td></tr>",
            Esc(&ev.scope),
            html::bytes(ev.bytes),
            Esc(&ev.reason),
            Esc(reason)
        );
    }
    out.push_str("</tbody></table></section>");
    out.push_str(
        "<section aria-labelledby=\"audit\"><h2 id=\"audit\">Deletions (audit log)</h2>\
         <table class=\"list\"><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Who</th>\
         <th scope=\"col\">Key</th><th scope=\"col\">Ref</th><th scope=\"col\" class=\"num\">Size</th>\
         <th scope=\"col\">Request</th></tr></thead><tbody>",
    );
    if a.audit.is_empty() {
        out.push_str("<tr><td colspan=\"6\" class=\"empty\">No deletions</td></tr>");
    }
    for r in &a.audit {
        let _ = write!(
            out,
            "<tr><td><time datetime=\"{}\" title=\"{}\">{}</time></td><td>{}</td>\
             <td class=\"key\">{}</td><td class=\"ref\">{}</td><td class=\"num\">{}</td>\
             <td class=\"req\">{}</td></tr>",
            r.at,
            html::time(r.at),
            html::ago(r.at, now),
            Esc(&r.actor),
            Esc(&r.key),
            Esc(&r.scope),
            html::bytes(r.size_bytes),
            Esc(&r.request)
        );
    }
    out.push_str("</tbody></table></section>");
}

/// `/ui`: repositories against the budget, activity over all of them.
pub fn overview(o: &Overview, chrome: &Chrome) -> String {
    let mut out = String::new();
    let total: u64 = o.repos.iter().map(|r| r.size_bytes).sum();
    let entries: u64 = o.repos.iter().map(|r| r.entries).sum();
    let _ = write!(
        out,
        "<p class=\"lead\">{} {}, {entries} entries, {} in the store. Budget: {} per repository.</p>",
        o.repos.len(),
        if o.repos.len() == 1 {
            "repository"
        } else {
            "repositories"
        },
        html::bytes(total),
        html::bytes(o.budget)
    );
    out.push_str(
        "<section aria-labelledby=\"repos\"><h2 id=\"repos\">Repositories</h2>\
         <table class=\"list\"><thead><tr><th scope=\"col\">Repository</th>\
         <th scope=\"col\" class=\"num\">Entries</th><th scope=\"col\">Usage</th></tr></thead><tbody>",
    );
    if o.repos.is_empty() {
        out.push_str("<tr><td colspan=\"3\" class=\"empty\">The cache is empty</td></tr>");
    }
    for r in &o.repos {
        let _ = write!(
            out,
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"num\">{}</td><td>",
            Esc(&repo_href(&r.repository)),
            Esc(&r.repository),
            r.entries
        );
        usage_meter(&mut out, r, o.budget);
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table></section>");
    activity(&mut out, &o.activity, o.now, true);
    html::page("Cache overview", &[], chrome, &out)
}

/// `/ui/r/owner/name`: search and page through entries; delete by prefix or all.
pub fn repository(v: &RepoView, chrome: &Chrome) -> String {
    let mut out = String::new();
    let href = repo_href(&v.repo);
    if let Some(n) = v.deleted {
        let _ = write!(
            out,
            "<p class=\"flash\" role=\"status\">Deleted {n} {}.</p>",
            if n == 1 { "entry" } else { "entries" }
        );
    }
    let _ = write!(
        out,
        "<p class=\"lead\">{} entries, {} of the {} budget.</p>",
        v.usage.entries,
        html::bytes(v.usage.size_bytes),
        html::bytes(v.budget)
    );
    usage_meter(&mut out, &v.usage, v.budget);
    let _ = write!(
        out,
        "<p><a href=\"{}/analysis\">Analysis: hit rates per key prefix and restore level, and what to change</a></p>",
        Esc(&href)
    );
    let q = &v.query;
    let _ = write!(
        out,
        "<section aria-labelledby=\"entries\"><h2 id=\"entries\">Entries</h2>\
         <form method=\"get\" action=\"{}\" class=\"search\" role=\"search\">\
         <label>Key prefix <input type=\"search\" name=\"key\" value=\"{}\" placeholder=\"npm-Linux-\" autocomplete=\"off\"></label>\
         <label>Ref <input type=\"text\" name=\"ref\" value=\"{}\" placeholder=\"refs/heads/main\"></label>\
         <label>Sort <select name=\"sort\">",
        Esc(&href),
        Esc(&q.key),
        Esc(&q.git_ref)
    );
    for (sort, label) in [
        (ListSort::Created, "Newest first"),
        (ListSort::LastUsed, "Recently used first"),
        (ListSort::Size, "Largest first"),
    ] {
        let _ = write!(
            out,
            "<option value=\"{}\"{}>{label}</option>",
            EntryQuery::sort_name(sort),
            if sort == q.sort { " selected" } else { "" }
        );
    }
    out.push_str("</select></label><button type=\"submit\">Search</button></form>");

    let pages = v.page.total.div_ceil(PAGE_SIZE as u64).max(1);
    let first = (q.page - 1) * PAGE_SIZE as u64;
    let _ = write!(
        out,
        "<table class=\"list entries\"><caption>{} matching {}{}</caption><thead><tr>\
         <th scope=\"col\">Key</th><th scope=\"col\">Ref</th><th scope=\"col\" class=\"num\">Size</th>\
         <th scope=\"col\">Created</th><th scope=\"col\">Last used</th><th scope=\"col\" class=\"num\">Restores</th>\
         </tr></thead><tbody>",
        v.page.total,
        if v.page.total == 1 {
            "entry"
        } else {
            "entries"
        },
        if v.page.total > PAGE_SIZE as u64 {
            format!(
                ", {}–{} shown",
                first + 1,
                first + v.page.entries.len() as u64
            )
        } else {
            String::new()
        }
    );
    if v.page.entries.is_empty() {
        out.push_str("<tr><td colspan=\"6\" class=\"empty\">No entries match</td></tr>");
    }
    for e in &v.page.entries {
        let _ = write!(
            out,
            "<tr><td class=\"key\"><a href=\"{}\">{}</a></td><td class=\"ref\">{}</td>\
             <td class=\"num\">{}</td><td><time datetime=\"{}\" title=\"{}\">{}</time></td>\
             <td><time datetime=\"{}\" title=\"{}\">{}</time></td><td class=\"num\">{}</td></tr>",
            Esc(&entry_href(e)),
            Esc(&e.key),
            Esc(&e.scope),
            html::bytes(e.size_bytes),
            e.created_at,
            html::time(e.created_at),
            html::ago(e.created_at, v.now),
            e.last_accessed_at,
            html::time(e.last_accessed_at),
            html::ago(e.last_accessed_at, v.now),
            e.access_count
        );
    }
    out.push_str("</tbody></table>");
    if pages > 1 {
        out.push_str("<nav class=\"pager\" aria-label=\"Pages\">");
        if q.page > 1 {
            let _ = write!(
                out,
                "<a rel=\"prev\" href=\"{}\">← Previous</a>",
                q.href(&v.repo, q.page - 1)
            );
        }
        let _ = write!(out, "<span>Page {} of {pages}</span>", q.page);
        if q.page < pages {
            let _ = write!(
                out,
                "<a rel=\"next\" href=\"{}\">Next →</a>",
                q.href(&v.repo, q.page + 1)
            );
        }
        out.push_str("</nav>");
    }
    out.push_str("</section>");

    activity(&mut out, &v.activity, v.now, false);
    if chrome.can_write {
        let _ = write!(
            out,
            "<section aria-labelledby=\"clean\" class=\"danger\"><h2 id=\"clean\">Clean up</h2>\
             <form method=\"get\" action=\"{href}/delete\" class=\"inline\">\
             <label>Delete every key starting with <input type=\"text\" name=\"prefix\" value=\"{}\" required></label>\
             <input type=\"hidden\" name=\"ref\" value=\"{}\">\
             <button type=\"submit\" class=\"warn\">Delete by prefix…</button></form>\
             <form method=\"get\" action=\"{href}/delete\" class=\"inline\">\
             <input type=\"hidden\" name=\"all\" value=\"1\">\
             <button type=\"submit\" class=\"warn\">Clear all entries…</button></form>\
             <p class=\"hint\">Each asks for confirmation first.</p></section>",
            Esc(&q.key),
            Esc(&q.git_ref)
        );
    }
    html::page(&v.repo, &[("Overview", "/ui"), (&v.repo, "")], chrome, &out)
}

/// `/ui/r/owner/name/e/ID`: everything about one entry.
pub fn entry(e: &Entry, matches: &[KeyMatch], now: EpochMillis, chrome: &Chrome) -> String {
    let mut out = String::new();
    let href = repo_href(&e.repository);
    out.push_str("<dl class=\"facts\">");
    let mut fact = |name: &str, value: String| {
        let _ = write!(out, "<dt>{name}</dt><dd>{value}</dd>");
    };
    fact("Key", format!("<code>{}</code>", Esc(&e.key)));
    fact("Version", format!("<code>{}</code>", Esc(&e.version)));
    fact("Ref (scope)", format!("<code>{}</code>", Esc(&e.scope)));
    let paths = if e.paths.is_empty() {
        "<span class=\"muted\">not recorded (saved through the cache protocol)</span>".to_string()
    } else {
        let mut list = String::from("<ul class=\"paths\">");
        for p in &e.paths {
            let _ = write!(list, "<li><code>{}</code></li>", Esc(p));
        }
        list.push_str("</ul>");
        list
    };
    fact("Paths", paths);
    fact(
        "Size",
        format!("{} ({} bytes)", html::bytes(e.size_bytes), e.size_bytes),
    );
    fact(
        "Created",
        format!(
            "{} ({})",
            html::time(e.created_at),
            html::ago(e.created_at, now)
        ),
    );
    fact(
        "Last used",
        format!(
            "{} ({})",
            html::time(e.last_accessed_at),
            html::ago(e.last_accessed_at, now)
        ),
    );
    fact("Restores", e.access_count.to_string());
    fact("Compression", Esc(&e.compression).to_string());
    if let Some(run) = &e.created_by_run {
        fact("Saved by run", Esc(run).to_string());
    }
    if let Some(d) = &e.blob_digest {
        fact(
            "Blob sha256",
            format!("<code class=\"digest\">{}</code>", Esc(d)),
        );
    }
    if e.broken_at.is_some() {
        fact(
            "State",
            "<span class=\"tag broken\">broken: skipped by lookups, removed by the next prune</span>"
                .to_string(),
        );
    }
    out.push_str("</dl>");

    out.push_str(
        "<section aria-labelledby=\"matched\"><h2 id=\"matched\">Restores that used it</h2>\
         <table class=\"list\"><thead><tr><th scope=\"col\">Requested key</th><th scope=\"col\">Match</th>\
         <th scope=\"col\" class=\"num\">Restores</th><th scope=\"col\">Last</th></tr></thead><tbody>",
    );
    if matches.is_empty() {
        out.push_str(
            "<tr><td colspan=\"4\" class=\"empty\">No restore in the last 30 days</td></tr>",
        );
    }
    for m in matches {
        let _ = write!(
            out,
            "<tr><td class=\"key\">{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            Esc(&m.requested),
            if m.exact {
                "<span class=\"tag exact\">exact key</span>"
            } else {
                "<span class=\"tag partial\">restore key / prefix</span>"
            },
            m.count,
            html::ago(m.last_at, now)
        );
    }
    out.push_str("</tbody></table></section>");
    if chrome.can_write {
        let _ = write!(
            out,
            "<p><a class=\"button warn\" href=\"{href}/delete{}\">Delete this entry…</a></p>",
            query(&[("id", &e.id)])
        );
    }
    html::page(
        "Cache entry",
        &[("Overview", "/ui"), (&e.repository, &href), (&e.key, "")],
        chrome,
        &out,
    )
}

/// `/ui/r/owner/name/delete?...`: what will go, and the form that does it.
pub fn confirm(repo: &str, doomed: &Doomed, count: u64, chrome: &Chrome) -> String {
    let href = repo_href(repo);
    let mut out = String::new();
    let (what, hidden) = match doomed {
        Doomed::Entry(e) => (
            format!(
                "the entry <code>{}</code> ({}, ref <code>{}</code>)",
                Esc(&e.key),
                html::bytes(e.size_bytes),
                Esc(&e.scope)
            ),
            format!(
                "<input type=\"hidden\" name=\"id\" value=\"{}\">",
                Esc(&e.id)
            ),
        ),
        Doomed::Prefix { prefix, git_ref } => (
            format!(
                "{count} {} whose key starts with <code>{}</code>{}",
                if count == 1 { "entry" } else { "entries" },
                Esc(prefix),
                if git_ref.is_empty() {
                    String::new()
                } else {
                    format!(" in <code>{}</code>", Esc(git_ref))
                }
            ),
            format!(
                "<input type=\"hidden\" name=\"prefix\" value=\"{}\">\
                 <input type=\"hidden\" name=\"ref\" value=\"{}\">",
                Esc(prefix),
                Esc(git_ref)
            ),
        ),
        Doomed::All => (
            format!(
                "all {count} {} of <strong>{}</strong>",
                if count == 1 { "entry" } else { "entries" },
                Esc(repo)
            ),
            "<input type=\"hidden\" name=\"all\" value=\"1\">".to_string(),
        ),
    };
    let _ = write!(
        out,
        "<div class=\"confirm\" role=\"alertdialog\" aria-labelledby=\"confirm-q\">\
         <p id=\"confirm-q\">Delete {what}? This cannot be undone; the next run of a job that \
         used it misses and saves it again.</p>\
         <form method=\"post\" action=\"{}/delete\">{hidden}\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" class=\"warn\" id=\"confirm\">Yes, delete</button> \
         <a href=\"{}\" class=\"button\">Cancel</a></form></div>",
        Esc(&href),
        Esc(&chrome.csrf),
        Esc(&match doomed {
            Doomed::Entry(e) => entry_href(e),
            _ => href.clone(),
        })
    );
    html::page(
        "Confirm deletion",
        &[("Overview", "/ui"), (repo, &href), ("Delete", "")],
        chrome,
        &out,
    )
}

/// `/ui/sign-in`: the admin token form.
pub fn sign_in(next: &str, error: Option<&str>, chrome: &Chrome) -> String {
    let mut out = String::new();
    if let Some(error) = error {
        let _ = write!(
            out,
            "<p class=\"flash error\" role=\"alert\">{}</p>",
            Esc(error)
        );
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/ui/sign-in\" class=\"signin\">\
         <p>Paste an admin token (<code>runner token --admin</code>). It is kept in an HttpOnly \
         cookie for this site only; reading needs no token.</p>\
         <label>Admin token <input type=\"password\" name=\"token\" required autocomplete=\"off\" autofocus></label>\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\">Sign in</button></form>",
        Esc(next),
        Esc(&chrome.csrf)
    );
    html::page(
        "Sign in",
        &[("Overview", "/ui"), ("Sign in", "")],
        chrome,
        &out,
    )
}

/// An error page.
/// The analysis page of one repository: what `runner cache analyze -R` prints.
pub fn analysis(r: &crate::cache::analyze::Report, days: i64, chrome: &Chrome) -> String {
    use crate::cache::analyze::Severity;
    let repo = r.repository.as_deref().unwrap_or("all repositories");
    let href = repo_href(repo);
    let mut out = String::new();
    let t = &r.totals;
    let _ = write!(
        out,
        "<p class=\"lead\">Last {days} days: {} lookups, {} exact and {} partial hits, {} misses \
         ({:.0}% hit rate); {} restored, {} saved.</p>",
        t.lookups,
        t.hits_exact,
        t.hits_partial,
        t.misses,
        t.hit_rate * 100.0,
        html::bytes(t.bytes_restored),
        html::bytes(t.bytes_saved)
    );
    out.push_str("<section aria-labelledby=\"findings\"><h2 id=\"findings\">Findings</h2>");
    if r.findings.is_empty() {
        out.push_str("<p>Nothing to change: every key and restore key earns its keep.</p>");
    } else {
        out.push_str("<ul class=\"findings\">");
        for f in &r.findings {
            let level = match f.severity {
                Severity::Warning => "warning",
                Severity::Info => "info",
            };
            let _ = write!(
                out,
                "<li class=\"finding {level}\"><p><span class=\"badge\">{level}</span> {}</p>\
                 <p class=\"muted\">{}</p></li>",
                Esc(&f.summary),
                Esc(&f.recommendation)
            );
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    out.push_str(
        "<section aria-labelledby=\"prefixes\"><h2 id=\"prefixes\">Hit rate per key prefix</h2>\
         <table><thead><tr><th scope=\"col\">Prefix</th><th scope=\"col\">Lookups</th>\
         <th scope=\"col\">Exact</th><th scope=\"col\">Partial</th><th scope=\"col\">Miss</th>\
         <th scope=\"col\">Hit rate</th></tr></thead><tbody>",
    );
    for p in &r.prefixes {
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}%</td></tr>",
            Esc(&p.prefix),
            p.lookups,
            p.hits_exact,
            p.hits_partial,
            p.misses,
            p.hit_rate * 100.0
        );
    }
    out.push_str("</tbody></table></section>");
    out.push_str(
        "<section aria-labelledby=\"levels\"><h2 id=\"levels\">Which level served the hits</h2>\
         <table><thead><tr><th scope=\"col\">Level</th><th scope=\"col\">Exact matches</th>\
         <th scope=\"col\">Prefix matches</th><th scope=\"col\">Share</th></tr></thead><tbody>",
    );
    for l in &r.levels {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0}%</td></tr>",
            Esc(&l.label),
            l.exact_matches,
            l.prefix_matches,
            l.share * 100.0
        );
    }
    out.push_str("</tbody></table></section>");
    html::page(
        "Analysis",
        &[("Overview", "/ui"), (repo, &href), ("Analysis", "")],
        chrome,
        &out,
    )
}

pub fn failure(title: &str, message: &str, chrome: &Chrome) -> String {
    let body = format!(
        "<p class=\"flash error\" role=\"alert\">{}</p><p><a href=\"/ui\">Back to the overview</a></p>",
        Esc(message)
    );
    html::page(title, &[("Overview", "/ui")], chrome, &body)
}
