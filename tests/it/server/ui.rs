//! The web UI (`/ui`): real HTTP for escaping, access, CSRF and page size at 100,000 entries;
//! real headless Chromium (chromedriver + fantoccini) for reading, searching and deleting
//! through the confirmation, with a screenshot of each page under `target/ui-screenshots/`.

use fantoccini::Locator;

use super::{REPO, Srv, bytes, version};
use crate::cache::{DAY, FEATURE, MAIN};
use crate::support::{Browser, HttpReply, http, http_no_redirect};
use runner::server::AuthMode;
use runner::store::blob::BlobInfo;
use runner::store::index::{BulkEntry, EntryState, NewEntry};

fn insecure() -> Srv {
    Srv::with(|c| c.auth = AuthMode::Insecure)
}

fn get(s: &Srv, path: &str) -> HttpReply {
    http("GET", &s.url(path), &[], None)
}

/// A form POST as a browser sends it; redirects followed.
fn post_form(s: &Srv, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> HttpReply {
    post_form_with(http, s, path, fields, headers)
}

/// [`http`] or [`http_no_redirect`].
type Send = fn(&str, &str, &[(&str, &str)], Option<&[u8]>) -> HttpReply;

fn post_form_with(
    send: Send,
    s: &Srv,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> HttpReply {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect();
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    send("POST", &s.url(path), &all, Some(body.join("&").as_bytes()))
}

fn url_encode(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a form with a CSRF token") + marker.len();
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Saves `key` on `git_ref` of the test repository through the v2 protocol.
fn save(s: &Srv, git_ref: &str, key: &str, size: usize) {
    let token = s.token_for(REPO, git_ref, false);
    let reply = s.save_v2(&token, key, &version(1), &bytes(size, key.len() as u8));
    assert_eq!(reply.status, 200, "{}", reply.text());
}

fn entry_id(s: &Srv, key: &str) -> String {
    s.h.cache
        .index()
        .find_by_key(Some(REPO), None, key)
        .expect("find")
        .first()
        .map(|e| e.id.clone())
        .unwrap_or_else(|| panic!("no entry {key}"))
}

#[test]
fn ui_escapes_keys_refs_and_paths_everywhere() {
    let s = insecure();
    let key = "npm-<script>alert(1)</script>-k";
    let evil_ref = "refs/heads/x\"><img src=y onerror=alert(2)>";
    save(&s, evil_ref, key, 100);
    let id = entry_id(&s, key);
    let pages = [
        "/ui".to_string(),
        "/ui/r/octo/app".to_string(),
        format!("/ui/r/octo/app?key={}", url_encode(key)),
        format!("/ui/r/octo/app/e/{id}"),
        format!("/ui/r/octo/app/delete?id={id}"),
        format!("/ui/r/octo/app/delete?prefix={}", url_encode(key)),
    ];
    for path in pages {
        let reply = get(&s, &path);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        let body = reply.text();
        assert!(
            !body.contains("<script>"),
            "{path}: raw script tag in\n{body}"
        );
        assert!(
            !body.contains("<img src=y"),
            "{path}: raw img tag in\n{body}"
        );
        assert!(
            body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{path}: the key is not shown escaped:\n{body}"
        );
    }
    let page = get(&s, "/ui/r/octo/app").text();
    assert!(
        page.contains("x&quot;&gt;&lt;img src=y onerror=alert(2)&gt;"),
        "{page}"
    );
    let csp = get(&s, "/ui")
        .header("content-security-policy")
        .map(str::to_string);
    assert!(csp.is_some_and(|c| c.contains("default-src 'none'")));
}

#[test]
fn ui_is_read_only_without_an_admin_token() {
    let s = Srv::start();
    save(&s, MAIN, "npm-a", 100);
    let id = entry_id(&s, "npm-a");
    let overview = get(&s, "/ui");
    assert_eq!(overview.status, 200);
    assert!(overview.text().contains("Sign in"), "{}", overview.text());
    assert!(get(&s, "/ui/r/octo/app").text().contains("npm-a"));
    assert!(!get(&s, "/ui/r/octo/app").text().contains("Clear all"));

    let confirm = get(&s, &format!("/ui/r/octo/app/delete?id={id}"));
    assert_eq!(confirm.status, 403, "{}", confirm.text());
    // A job's runtime token is no admin token: not by header, not by cookie, not to sign in.
    let job = s.token();
    let bearer = format!("Bearer {job}");
    let csrf = csrf_of(&get(&s, "/ui/sign-in").text());
    for headers in [vec![], vec![("Authorization", bearer.as_str())]] {
        let reply = post_form(
            &s,
            "/ui/r/octo/app/delete",
            &[("id", &id), ("csrf", &csrf)],
            &headers,
        );
        assert_eq!(reply.status, 403, "{}", reply.text());
    }
    let sign_in = post_form(
        &s,
        "/ui/sign-in",
        &[("token", &job), ("csrf", &csrf), ("next", "/ui")],
        &[],
    );
    assert_eq!(sign_in.status, 401, "{}", sign_in.text());
    assert!(sign_in.header("set-cookie").is_none());
    assert_eq!(s.h.keys(), ["npm-a"]);
}

/// Signs in through the form; the `Cookie` header the browser would then send.
fn sign_in(s: &Srv, token: &str) -> String {
    let csrf = csrf_of(&get(s, "/ui/sign-in?next=/ui/r/octo/app").text());
    let reply = post_form_with(
        http_no_redirect,
        s,
        "/ui/sign-in",
        &[
            ("token", token),
            ("csrf", &csrf),
            ("next", "/ui/r/octo/app"),
        ],
        &[],
    );
    assert_eq!(reply.status, 303, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/ui/r/octo/app"));
    let set = reply.header("set-cookie").expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(attribute), "{set}");
    }
    set.split(';').next().unwrap_or_default().to_string()
}

#[test]
fn ui_admin_tokens_sign_in_by_cookie_or_header_and_deletions_are_audited() {
    let s = Srv::start();
    for key in ["npm-a", "npm-b", "npm-c"] {
        save(&s, MAIN, key, 100);
    }
    let other = s.token_for("octo/other", MAIN, false);
    let reply = s.save_v2(&other, "elsewhere", &version(1), &bytes(10, 1));
    assert_eq!(reply.status, 200, "{}", reply.text());

    // A read admin token signs in, reads, and cannot delete.
    let reader = sign_in(&s, &s.admin_token(REPO, false));
    let page = http(
        "GET",
        &s.url("/ui/r/octo/app"),
        &[("Cookie", &reader)],
        None,
    )
    .text();
    assert!(
        page.contains("Sign out") && !page.contains("Clear all"),
        "{page}"
    );
    let confirm = http(
        "GET",
        &s.url(&format!(
            "/ui/r/octo/app/delete?id={}",
            entry_id(&s, "npm-a")
        )),
        &[("Cookie", &reader)],
        None,
    );
    assert_eq!(confirm.status, 403, "{}", confirm.text());

    // A write token for octo/app: by cookie with the page's CSRF token.
    let writer = sign_in(&s, &s.admin_token(REPO, true));
    let id = entry_id(&s, "npm-a");
    let confirm = http(
        "GET",
        &s.url(&format!("/ui/r/octo/app/delete?id={id}")),
        &[("Cookie", &writer)],
        None,
    );
    assert_eq!(confirm.status, 200, "{}", confirm.text());
    let csrf = csrf_of(&confirm.text());
    let anonymous_csrf = csrf_of(&get(&s, "/ui/sign-in").text());
    let forged = post_form(
        &s,
        "/ui/r/octo/app/delete",
        &[("id", &id), ("csrf", &anonymous_csrf)],
        &[("Cookie", &writer)],
    );
    assert_eq!(forged.status, 403, "{}", forged.text());
    let done = post_form(
        &s,
        "/ui/r/octo/app/delete",
        &[("id", &id), ("csrf", &csrf)],
        &[("Cookie", &writer)],
    );
    assert!(done.text().contains("Deleted 1 entry."), "{}", done.text());
    let elsewhere = post_form(
        &s,
        "/ui/r/octo/other/delete",
        &[("all", "1"), ("csrf", &csrf)],
        &[("Cookie", &writer)],
    );
    assert_eq!(elsewhere.status, 403, "{}", elsewhere.text());

    // By header (a script): no CSRF token needed, none sent.
    let bearer = format!("Bearer {}", s.admin_token("*", true));
    let done = post_form(
        &s,
        "/ui/r/octo/app/delete",
        &[("prefix", "npm-b")],
        &[("Authorization", &bearer)],
    );
    assert!(done.text().contains("Deleted 1 entry."), "{}", done.text());
    assert_eq!(s.h.keys(), ["elsewhere", "npm-c"]);

    let audit = s.h.cache.index().audit_log(Some(REPO), 10).expect("audit");
    let seen: Vec<(&str, &str)> = audit
        .iter()
        .map(|r| (r.key.as_str(), r.request.as_str()))
        .collect();
    assert_eq!(seen.len(), 2, "{audit:?}");
    assert!(
        seen[0].0 == "npm-b" && seen[0].1.contains("prefix=npm-b"),
        "{seen:?}"
    );
    assert!(
        seen[1].0 == "npm-a" && seen[1].1.contains("id="),
        "{seen:?}"
    );
    assert!(
        audit.iter().all(|r| r.actor.starts_with("tester (token ")),
        "{audit:?}"
    );
    let page = get(&s, "/ui/r/octo/app").text();
    assert!(
        page.contains("Deletions (audit log)") && page.contains("tester (token "),
        "{page}"
    );
    assert!(page.contains("deleted on request"), "{page}");

    // Signing out drops the cookie.
    let out = post_form_with(
        http_no_redirect,
        &s,
        "/ui/sign-out",
        &[("csrf", &csrf)],
        &[("Cookie", &writer)],
    );
    assert_eq!(out.status, 303, "{}", out.text());
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
}

#[test]
fn ui_deletions_need_the_pages_csrf_token() {
    let s = insecure();
    for key in ["npm-a", "npm-b", "pip-a"] {
        save(&s, MAIN, key, 100);
    }
    save(&s, FEATURE, "npm-c", 100);
    let id = entry_id(&s, "npm-a");

    for csrf in ["", "00", &"ab".repeat(32)] {
        let reply = post_form(
            &s,
            "/ui/r/octo/app/delete",
            &[("id", &id), ("csrf", csrf)],
            &[],
        );
        assert_eq!(reply.status, 403, "csrf {csrf:?}: {}", reply.text());
    }
    assert_eq!(s.h.keys(), ["npm-a", "npm-b", "npm-c", "pip-a"]);

    let confirm = get(&s, &format!("/ui/r/octo/app/delete?id={id}"));
    assert!(confirm.text().contains("Yes, delete"), "{}", confirm.text());
    let csrf = csrf_of(&confirm.text());
    let done = post_form(
        &s,
        "/ui/r/octo/app/delete",
        &[("id", &id), ("csrf", &csrf)],
        &[],
    );
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(done.text().contains("Deleted 1 entry."), "{}", done.text());
    assert_eq!(s.h.keys(), ["npm-b", "npm-c", "pip-a"]);

    // By prefix within one ref, then everything; the confirmation counts first.
    let ask = get(&s, "/ui/r/octo/app/delete?prefix=NPM-&ref=refs/heads/main").text();
    assert!(ask.contains("1 entry whose key starts with"), "{ask}");
    let done = post_form(
        &s,
        "/ui/r/octo/app/delete",
        &[("prefix", "NPM-"), ("ref", MAIN), ("csrf", &csrf)],
        &[],
    );
    assert!(done.text().contains("Deleted 1 entry."), "{}", done.text());
    assert_eq!(s.h.keys(), ["npm-c", "pip-a"]);
    assert!(
        get(&s, "/ui/r/octo/app/delete?all=1")
            .text()
            .contains("all 2 entries")
    );
    let done = post_form(
        &s,
        "/ui/r/octo/app/delete",
        &[("all", "1"), ("csrf", &csrf)],
        &[],
    );
    assert!(
        done.text().contains("Deleted 2 entries."),
        "{}",
        done.text()
    );
    assert!(s.h.keys().is_empty());

    let both = post_form(
        &s,
        "/ui/r/octo/app/delete",
        &[("all", "1"), ("prefix", "x"), ("csrf", &csrf)],
        &[],
    );
    assert_eq!(both.status, 400, "{}", both.text());
}

#[test]
fn ui_charts_count_exact_partial_and_missed_lookups_per_day() {
    charts_count_lookups_per_day(insecure());
}

#[test]
fn ui_charts_count_lookups_per_day_on_postgres() {
    let Some(h) = crate::cache::Harness::postgres() else {
        eprintln!("skipped: RUNNER_TEST_POSTGRES_URL is not set");
        return;
    };
    charts_count_lookups_per_day(Srv::on(h, |c| c.auth = AuthMode::Insecure));
}

fn charts_count_lookups_per_day(s: Srv) {
    save(&s, MAIN, "npm-1", 1000);
    s.restore_v2(&s.token(), &["npm-1"], &version(1))
        .expect("exact hit");
    s.h.clock.advance(DAY);
    s.restore_v2(&s.token(), &["npm-2", "npm-"], &version(1))
        .expect("partial hit");
    assert!(s.restore_v2(&s.token(), &["pip-1"], &version(1)).is_none());

    let now = runner::clock::Clock::now_millis(&s.h.clock);
    let days =
        s.h.cache
            .index()
            .daily_activity(Some(REPO), now - DAY)
            .expect("activity");
    let counts: Vec<(u64, u64, u64)> = days.iter().map(|d| (d.exact, d.partial, d.miss)).collect();
    assert_eq!(counts, [(1, 0, 0), (0, 1, 1)]);
    assert_eq!(days[0].bytes_saved, 1000);
    assert_eq!(days[0].bytes_restored + days[1].bytes_restored, 2000);

    let page = get(&s, "/ui").text();
    assert!(page.contains("67% hit rate (2 of 3)"), "{page}");
    assert_eq!(page.matches("<rect class=\"exact\"").count(), 1, "{page}");
    assert_eq!(page.matches("<rect class=\"partial\"").count(), 1, "{page}");
    assert_eq!(page.matches("<rect class=\"miss\"").count(), 1, "{page}");
    // The entry page names the requested key each restore used it with.
    let entry = get(&s, &format!("/ui/r/octo/app/e/{}", entry_id(&s, "npm-1"))).text();
    assert!(
        entry.contains("npm-2</td><td><span class=\"tag partial\">"),
        "{entry}"
    );
}

#[test]
fn ui_pages_stay_under_100_kb_at_100000_entries() {
    const N: usize = 100_000;
    let s = insecure();
    let t0 = runner::clock::Clock::now_millis(&s.h.clock);
    let rows: Vec<BulkEntry> = (0..N)
        .map(|i| BulkEntry {
            entry: NewEntry {
                repository: format!("octo/repo-{}", i % 10),
                scope: if i % 3 == 0 { FEATURE } else { MAIN }.to_string(),
                key: format!(
                    "{}-Linux-x64-{i:08x}",
                    ["npm", "cargo", "pip", "gradle"][i % 4]
                ),
                version: version(1),
                paths: vec!["~/.npm".into(), "node_modules".into()],
                compression: "zstd-without-long".into(),
                created_by_run: None,
                roots: None,
            },
            blob: BlobInfo {
                digest: format!("{i:064x}"),
                size: 1_000_000 + i as u64 * 37,
            },
            created_at: t0 - i as i64 * 1000,
            last_accessed_at: t0 - (i as i64 * 7919) % 86_400_000,
            access_count: (i as u64 * 31) % 200,
        })
        .collect();
    s.h.cache.index().bulk_insert(&rows).expect("bulk insert");
    let paged =
        s.h.cache
            .index()
            .list_page(
                &runner::store::index::ListFilter {
                    repository: Some("octo/repo-3".into()),
                    ..Default::default()
                },
                false,
                0,
                50,
            )
            .expect("page");
    assert_eq!(paged.total, 10_000);
    let id = &paged.entries[0].id;
    for path in [
        "/ui".to_string(),
        "/ui/r/octo/repo-3".to_string(),
        "/ui/r/octo/repo-3?sort=size".to_string(),
        "/ui/r/octo/repo-3?sort=last-used&page=150".to_string(),
        "/ui/r/octo/repo-3?key=npm-Linux&ref=refs/heads/main".to_string(),
        format!("/ui/r/octo/repo-3/e/{id}"),
    ] {
        let started = std::time::Instant::now();
        let reply = get(&s, &path);
        eprintln!(
            "{path}: {} bytes in {:?} (debug build)",
            reply.body.len(),
            started.elapsed()
        );
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert!(
            reply.body.len() < 100 * 1024,
            "{path}: {} bytes",
            reply.body.len()
        );
    }
    let page = get(&s, "/ui/r/octo/repo-3?sort=last-used&page=150").text();
    assert!(page.contains("Page 150 of 200"), "{page}");
    assert!(
        get(&s, "/ui")
            .text()
            .contains("10 repositories, 100000 entries")
    );
}

#[test]
fn ui_bad_query_values_get_a_clear_error() {
    let s = insecure();
    for (path, says) in [
        (
            "/ui/r/octo/app?sort=random",
            "sort must be created, last-used or size",
        ),
        ("/ui/r/octo/app?page=0", "page must be a number from 1"),
        ("/ui/r/octo/app/e/nope", "no cache entry nope in octo/app"),
    ] {
        let reply = get(&s, path);
        assert!(
            matches!(reply.status, 400 | 404),
            "{path}: {}",
            reply.status
        );
        assert!(reply.text().contains(says), "{path}: {}", reply.text());
    }
}

/// Waits (bounded) until the browser has navigated to a URL whose path and query `pred` likes:
/// a click returns before the next page has replaced the old one.
async fn wait_for_url(c: &fantoccini::Client, pred: impl Fn(&str) -> bool) {
    for _ in 0..200 {
        if let Ok(url) = c.current_url().await {
            let here = format!("{}?{}", url.path(), url.query().unwrap_or(""));
            if pred(&here) {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the browser did not navigate");
}

/// Seeds two weeks of saves, hits, misses and an eviction, so every section has something.
fn seed_history(s: &Srv) {
    save(s, MAIN, "old-build-cache", 4000);
    s.h.clock.advance(8 * DAY);
    for day in 0..7u8 {
        // Tokens live an hour of the server's clock, which moves a day per round.
        let token = s.token();
        let feature = s.token_for(REPO, FEATURE, false);
        let lock = format!(
            "{:08x}",
            u32::from(day).wrapping_mul(2_654_435_761) ^ 0x5bd1_e995
        );
        let npm = format!("npm-Linux-x64-{lock}");
        save(s, MAIN, &npm, 30_000 + usize::from(day) * 4000);
        save(s, MAIN, &format!("cargo-Linux-registry-{lock}"), 90_000);
        for _ in 0..(2 + day % 3) {
            s.restore_v2(&token, &[&npm], &version(1));
        }
        s.restore_v2(
            &feature,
            &["npm-Linux-x64-new", "npm-Linux-x64-"],
            &version(1),
        );
        if day % 2 == 0 {
            s.restore_v2(&token, &["pip-Linux-3.12-none"], &version(1));
        }
        s.h.clock.advance(DAY);
    }
    save(s, FEATURE, "npm-<script>alert(1)</script>", 2000);
}

#[test]
fn ui_in_headless_chromium_search_and_delete_through_the_confirmation() {
    let browser = match Browser::start() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let s = insecure();
    seed_history(&s);
    let base = s.base.clone();
    let c = &browser.client;

    browser.run(async {
        c.goto(&format!("{base}/ui")).await.expect("overview");
        let title = c.title().await.expect("title");
        assert!(title.contains("Cache overview"), "{title}");
    });
    browser.run(async {
        c.find(Locator::LinkText(REPO))
            .await
            .expect("repository link")
            .click()
            .await
            .expect("click");
        wait_for_url(c, |u| u.starts_with("/ui/r/octo/app?")).await;
    });
    browser.screenshot("repository", 1900);

    let keys = browser.run(async {
        let field = c
            .find(Locator::Css("input[name=key]"))
            .await
            .expect("search");
        field.send_keys("npm-linux").await.expect("type");
        c.find(Locator::Css("form.search button"))
            .await
            .expect("search button")
            .click()
            .await
            .expect("submit");
        wait_for_url(c, |u| u.contains("key=npm-linux")).await;
        let mut keys = Vec::new();
        for cell in c
            .find_all(Locator::Css("table.entries td.key a"))
            .await
            .expect("rows")
        {
            keys.push(cell.text().await.expect("text"));
        }
        keys
    });
    assert_eq!(keys.len(), 7, "{keys:?}");
    assert!(
        keys.iter().all(|k| k.starts_with("npm-Linux-x64-")),
        "{keys:?}"
    );
    browser.screenshot("search", 1100);

    let victim = keys[0].clone();
    let id = browser.run(async {
        c.find(Locator::LinkText(&victim))
            .await
            .expect("entry link")
            .click()
            .await
            .expect("open entry");
        wait_for_url(c, |u| u.contains("/e/")).await;
        let url = c.current_url().await.expect("url");
        url.path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string()
    });
    assert_eq!(
        s.h.cache.index().get(&id).expect("get").map(|e| e.state),
        Some(EntryState::Committed)
    );
    browser.screenshot("entry", 1000);
    browser.run(async {
        c.find(Locator::LinkText("Delete this entry…"))
            .await
            .expect("delete link")
            .click()
            .await
            .expect("click delete");
        wait_for_url(c, |u| u.contains("/delete?id=")).await;
    });
    browser.screenshot("confirm", 700);
    let flash = browser.run(async {
        c.find(Locator::Id("confirm"))
            .await
            .expect("confirm button")
            .click()
            .await
            .expect("confirm");
        wait_for_url(c, |u| u.contains("deleted=")).await;
        c.find(Locator::Css(".flash"))
            .await
            .expect("flash")
            .text()
            .await
            .expect("text")
    });
    assert_eq!(flash, "Deleted 1 entry.");
    browser.screenshot("repository-after-delete", 700);
    // The overview last, with the deletion in its evictions and audit log (docs/ui.png).
    let audit = browser.run(async {
        c.goto(&format!("{base}/ui")).await.expect("overview");
        c.find(Locator::Css("section[aria-labelledby=audit] td.key"))
            .await
            .expect("an audit row")
            .text()
            .await
            .expect("text")
    });
    assert_eq!(audit, victim);
    browser.screenshot("overview", 1600);
    assert_eq!(s.h.cache.index().get(&id).expect("get"), None);
    assert!(
        s.h.cache
            .index()
            .find_by_key(Some(REPO), None, &victim)
            .expect("find")
            .is_empty()
    );
}

/// The analysis page shows `runner cache analyze`'s findings for the repository, linked from
/// its entries page.
#[test]
fn ui_analysis_page_shows_the_findings_of_runner_cache_analyze() {
    let s = Srv::start();
    // Same size and same key length: byte-identical archives under two keys.
    save(&s, MAIN, "lint-a", 5000);
    save(&s, MAIN, "lint-b", 5000);
    let repo_page = get(&s, "/ui/r/octo/app").text();
    assert!(
        repo_page.contains("href=\"/ui/r/octo/app/analysis\""),
        "{repo_page}"
    );
    let page = get(&s, "/ui/r/octo/app/analysis");
    assert_eq!(page.status, 200, "{}", page.text());
    let text = page.text();
    assert!(
        text.contains("2 distinct keys hold byte-identical archives"),
        "{text}"
    );
    assert!(text.contains("lint-a") && text.contains("lint-b"), "{text}");
    assert!(text.contains("Hit rate per key prefix"), "{text}");
}
