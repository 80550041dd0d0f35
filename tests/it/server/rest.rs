//! GitHub's REST caches API on `runner serve`, over real HTTP, against GitHub's published
//! response shapes: list (filters, sorts, pages and `Link`), delete by key and by id, usage,
//! admin tokens (a read token cannot delete), and the audit log of every deletion.

use serde_json::Value;

use super::{REPO, SECRET, Srv, bytes, version};
use crate::cache::{DAY, FEATURE, MAIN};
use crate::support::{HttpReply, http, runner_bin};
use runner::server::Keys;
use runner::store::index::{EventKind, MANUAL};

const CACHES: &str = "/repos/octo/app/actions/caches";
const USAGE: &str = "/repos/octo/app/actions/cache/usage";

/// Saves `key` (on `git_ref` of `repo`) with `size` bytes, a minute after the previous save.
fn save(s: &Srv, repo: &str, git_ref: &str, key: &str, size: usize) {
    s.h.clock.advance(60_000);
    let token = s.token_for(repo, git_ref, false);
    let reply = s.save_v2(&token, key, &version(1), &bytes(size, size as u8));
    assert_eq!(reply.status, 200, "save {key}: {}", reply.text());
}

/// Five entries in octo/app on main (sizes 10..50, saved in key order), one on a feature
/// branch, one in another repository.
fn seeded() -> Srv {
    seeded_on(crate::cache::Harness::sqlite())
}

fn seeded_on(h: crate::cache::Harness) -> Srv {
    let s = Srv::on(h, |_| {});
    for (i, key) in ["npm-a", "npm-b", "npm-c", "pip-a", "pip-b"]
        .iter()
        .enumerate()
    {
        save(&s, REPO, MAIN, key, (i + 1) * 10);
    }
    save(&s, REPO, FEATURE, "npm-feature", 5);
    save(&s, "octo/other", MAIN, "npm-a", 7);
    s
}

fn keys_of(reply: &HttpReply) -> Vec<String> {
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["actions_caches"]
        .as_array()
        .expect("actions_caches")
        .iter()
        .map(|c| c["key"].as_str().expect("key").to_string())
        .collect()
}

/// An RFC 3339 UTC time with milliseconds, as GitHub writes them.
fn is_github_time(value: &Value) -> bool {
    let Some(text) = value.as_str() else {
        return false;
    };
    let b = text.as_bytes();
    b.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && text[..4].bytes().all(|c| c.is_ascii_digit())
}

/// The `rel="next"` URL of a `Link` header.
fn next_link(reply: &HttpReply) -> Option<String> {
    reply.header("link")?.split(", ").find_map(|part| {
        let (url, rel) = part.split_once("; ")?;
        (rel == "rel=\"next\"").then(|| url.trim_matches(['<', '>']).to_string())
    })
}

#[test]
fn list_has_githubs_shape() {
    let s = seeded();
    let token = s.admin_token(REPO, false);
    let reply = s.rest("GET", &format!("{CACHES}?key=pip-a"), &token);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json")),
        "{:?}",
        reply.headers
    );
    let body = reply.json();
    assert_eq!(body["total_count"], 1);
    let cache = &body["actions_caches"][0];
    let mut fields: Vec<&str> = cache
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "created_at",
            "id",
            "key",
            "last_accessed_at",
            "ref",
            "size_in_bytes",
            "version"
        ]
    );
    assert!(
        cache["id"].as_u64().is_some_and(|id| id < (1 << 53)),
        "{cache}"
    );
    assert_eq!(cache["ref"], MAIN);
    assert_eq!(cache["key"], "pip-a");
    assert_eq!(cache["version"], version(1));
    assert_eq!(cache["size_in_bytes"], 40);
    assert!(is_github_time(&cache["created_at"]), "{cache}");
    assert!(is_github_time(&cache["last_accessed_at"]), "{cache}");
}

#[test]
fn list_filters_sorts_and_pages_with_link() {
    let s = seeded();
    let token = s.admin_token(REPO, false);
    // Default: every ref of this repository (never another's), most recently used first.
    let all = keys_of(&s.rest("GET", CACHES, &token));
    assert_eq!(
        all,
        ["npm-feature", "pip-b", "pip-a", "npm-c", "npm-b", "npm-a"]
    );
    let main_npm = keys_of(&s.rest("GET", &format!("{CACHES}?key=npm-&ref={MAIN}"), &token));
    assert_eq!(main_npm, ["npm-c", "npm-b", "npm-a"]);
    let by_size = keys_of(&s.rest(
        "GET",
        &format!("{CACHES}?sort=size_in_bytes&direction=asc"),
        &token,
    ));
    assert_eq!(
        by_size,
        ["npm-feature", "npm-a", "npm-b", "npm-c", "pip-a", "pip-b"]
    );
    let oldest = keys_of(&s.rest(
        "GET",
        &format!("{CACHES}?sort=created_at&direction=asc&per_page=1"),
        &token,
    ));
    assert_eq!(oldest, ["npm-a"]);

    // Pages of 4 and 2, linked; following `next` visits each entry once.
    let first = s.rest("GET", &format!("{CACHES}?per_page=4"), &token);
    assert_eq!(first.json()["total_count"], 6);
    assert_eq!(keys_of(&first).len(), 4);
    let link = first.header("link").expect("Link header").to_string();
    assert!(link.contains("rel=\"last\""), "{link}");
    let mut seen = keys_of(&first);
    let mut next = next_link(&first);
    while let Some(url) = next {
        let auth = format!("Bearer {token}");
        let page = http("GET", &url, &[("Authorization", &auth)], None);
        seen.extend(keys_of(&page));
        next = next_link(&page);
    }
    assert_eq!(seen, all);
    // Past the end: an empty page with the full count.
    let past = s.rest("GET", &format!("{CACHES}?per_page=4&page=9"), &token);
    assert_eq!(keys_of(&past), Vec::<String>::new());
    assert_eq!(past.json()["total_count"], 6);

    let bad = s.rest("GET", &format!("{CACHES}?sort=name"), &token);
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(
        bad.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("sort"))
    );
}

#[test]
fn admin_tokens_guard_every_route() {
    let s = seeded();
    let routes = [
        ("GET", CACHES.to_string()),
        ("GET", USAGE.to_string()),
        ("DELETE", format!("{CACHES}?key=npm-a")),
        ("DELETE", format!("{CACHES}/1")),
    ];
    let runtime = s.token();
    let other_secret = runner::server::Keys::new(b"another secret").mint_admin(
        &runner::server::AdminTokenRequest {
            repos: runner::server::RepoMatch::Any,
            write: true,
            subject: "x".into(),
            ttl_secs: 60,
        },
        s.now_secs(),
    );
    for (method, path) in &routes {
        let none = http(method, &s.url(path), &[], None);
        assert_eq!(none.status, 401, "{method} {path}: {}", none.text());
        assert!(none.json()["message"].is_string());
        for token in [&runtime, &other_secret] {
            let refused = s.rest(method, path, token);
            assert_eq!(refused.status, 401, "{method} {path}: {}", refused.text());
        }
        let elsewhere = s.rest(method, path, &s.admin_token("octo/other", true));
        assert_eq!(
            elsewhere.status,
            403,
            "{method} {path}: {}",
            elsewhere.text()
        );
    }
    // Octokit sends `bearer`, gh sends `token`: both are the same credentials.
    let token = s.admin_token("*", false);
    for scheme in ["bearer", "token", "BEARER"] {
        let auth = format!("{scheme} {token}");
        let reply = http("GET", &s.url(USAGE), &[("Authorization", &auth)], None);
        assert_eq!(reply.status, 200, "{scheme}: {}", reply.text());
    }
    // An expired admin token is refused.
    s.h.clock.advance(2 * 3600 * 1000);
    let expired = s.rest("GET", USAGE, &token);
    assert_eq!(expired.status, 401, "{}", expired.text());
}

#[test]
fn a_read_token_cannot_delete() {
    let s = seeded();
    let read = s.admin_token(REPO, false);
    let before = s.h.keys();
    for path in [format!("{CACHES}?key=npm-a"), format!("{CACHES}/1")] {
        let reply = s.rest("DELETE", &path, &read);
        assert_eq!(reply.status, 403, "{path}: {}", reply.text());
        assert!(
            reply.json()["message"]
                .as_str()
                .is_some_and(|m| m.contains("--write")),
            "{}",
            reply.text()
        );
    }
    assert_eq!(s.h.keys(), before);
    assert!(
        s.h.cache
            .index()
            .audit_log(None, 10)
            .expect("audit")
            .is_empty()
    );
}

#[test]
fn delete_by_key_removes_that_key_in_this_repository_and_is_audited() {
    let s = seeded();
    let write = s.admin_token(REPO, true);
    let reply = s.rest("DELETE", &format!("{CACHES}?key=npm-a"), &write);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["total_count"], 1);
    assert_eq!(keys_of(&reply), ["npm-a"]);
    // octo/other's npm-a stays; so do the others.
    assert_eq!(
        s.h.keys(),
        ["npm-a", "npm-b", "npm-c", "npm-feature", "pip-a", "pip-b"]
    );
    let left = keys_of(&s.rest("GET", CACHES, &write));
    assert!(!left.contains(&"npm-a".to_string()), "{left:?}");

    // Restricted to a ref: the feature entry is not on main.
    let wrong_ref = s.rest(
        "DELETE",
        &format!("{CACHES}?key=npm-feature&ref={MAIN}"),
        &write,
    );
    assert_eq!(wrong_ref.status, 404, "{}", wrong_ref.text());
    let right_ref = s.rest(
        "DELETE",
        &format!("{CACHES}?key=npm-feature&ref={FEATURE}"),
        &write,
    );
    assert_eq!(right_ref.status, 200, "{}", right_ref.text());
    let missing = s.rest("DELETE", &format!("{CACHES}?key=npm-a"), &write);
    assert_eq!(missing.status, 404, "{}", missing.text());
    let no_key = s.rest("DELETE", CACHES, &write);
    assert_eq!(no_key.status, 400, "{}", no_key.text());

    let audit = s.h.cache.index().audit_log(Some(REPO), 10).expect("audit");
    let rows: Vec<(&str, &str, &str)> = audit
        .iter()
        .map(|a| (a.key.as_str(), a.scope.as_str(), a.request.as_str()))
        .collect();
    assert_eq!(
        rows,
        [
            (
                "npm-feature",
                FEATURE,
                "DELETE /repos/octo/app/actions/caches?key=npm-feature&ref=refs/heads/feature"
            ),
            (
                "npm-a",
                MAIN,
                "DELETE /repos/octo/app/actions/caches?key=npm-a"
            ),
        ]
    );
    assert!(
        audit.iter().all(|a| a.actor.starts_with("tester (token ")),
        "{audit:?}"
    );
    assert_eq!(audit[1].size_bytes, 10);
    assert_eq!(audit[1].at, runner::clock::Clock::now_millis(&s.h.clock));
    let manual: Vec<String> =
        s.h.cache
            .index()
            .events(0)
            .expect("events")
            .into_iter()
            .filter(|e| e.event.kind == EventKind::Evict && e.reason.as_deref() == Some(MANUAL))
            .map(|e| e.event.key)
            .collect();
    assert_eq!(manual, ["npm-a", "npm-feature"]);
}

#[test]
fn delete_by_id_and_usage() {
    let s = seeded();
    let write = s.admin_token(REPO, true);
    let usage = s.rest("GET", USAGE, &write);
    assert_eq!(usage.status, 200, "{}", usage.text());
    let body = usage.json();
    assert_eq!(body["full_name"], REPO);
    assert_eq!(body["active_caches_count"], 6);
    assert_eq!(
        body["active_caches_size_in_bytes"],
        10 + 20 + 30 + 40 + 50 + 5
    );

    let listed = s.rest("GET", &format!("{CACHES}?key=pip-b"), &write).json();
    let id = listed["actions_caches"][0]["id"].as_u64().expect("id");
    let gone = s.rest("DELETE", &format!("{CACHES}/{id}"), &write);
    assert_eq!(gone.status, 204, "{}", gone.text());
    assert!(gone.body.is_empty());
    let again = s.rest("DELETE", &format!("{CACHES}/{id}"), &write);
    assert_eq!(again.status, 404, "{}", again.text());
    // Another repository's id is not found through this one.
    let other = s.admin_token("*", true);
    let theirs = s
        .rest("GET", "/repos/octo/other/actions/caches", &other)
        .json();
    let their_id = theirs["actions_caches"][0]["id"].as_u64().expect("id");
    let cross = s.rest("DELETE", &format!("{CACHES}/{their_id}"), &other);
    assert_eq!(cross.status, 404, "{}", cross.text());

    let body = s.rest("GET", USAGE, &write).json();
    assert_eq!(body["active_caches_count"], 5);
    assert_eq!(body["active_caches_size_in_bytes"], 10 + 20 + 30 + 40 + 5);
    let empty = s
        .rest("GET", "/repos/nobody/none/actions/cache/usage", &other)
        .json();
    assert_eq!(
        (
            &empty["active_caches_count"],
            &empty["active_caches_size_in_bytes"]
        ),
        (&Value::from(0), &Value::from(0))
    );
    let audit = s.h.cache.index().audit_log(None, 10).expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].key, "pip-b");
    assert!(
        audit[0].request.ends_with(&format!("/caches/{id}")),
        "{audit:?}"
    );
}

#[test]
fn a_deleted_entry_misses_and_can_be_saved_again() {
    let s = seeded();
    let write = s.admin_token(REPO, true);
    let token = s.token();
    assert!(s.restore_v2(&token, &["npm-b"], &version(1)).is_some());
    let reply = s.rest("DELETE", &format!("{CACHES}?key=npm-b"), &write);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(s.restore_v2(&token, &["npm-b"], &version(1)), None);
    s.h.clock.advance(DAY);
    let again = s.save_v2(&s.token(), "npm-b", &version(1), &bytes(3, 3));
    assert_eq!(again.status, 200, "{}", again.text());
}

#[test]
fn runner_token_admin_mints_a_token_the_server_accepts() {
    let mint = |args: &[&str]| {
        let out = std::process::Command::new(runner_bin())
            .arg("token")
            .args(args)
            .env(
                "RUNNER_SERVE_TOKEN_SECRET",
                std::str::from_utf8(SECRET).expect("utf8"),
            )
            .output()
            .expect("runner token");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let keys = Keys::new(SECRET);
    let (code, token, err) = mint(&["--admin", "--repo", "*", "--write", "--name", "ops"]);
    assert_eq!(code, Some(0), "{err}");
    let grant = keys.verify_admin(&token, now).expect("valid admin token");
    assert!(grant.allows("any/repo", true));
    assert!(grant.who.starts_with("ops (token "), "{}", grant.who);
    let (code, token, err) = mint(&["--admin", "--repo", "octo/app"]);
    assert_eq!(code, Some(0), "{err}");
    let grant = keys.verify_admin(&token, now).expect("valid admin token");
    assert!(grant.allows("octo/app", false) && !grant.allows("octo/app", true));
    assert!(!grant.allows("octo/other", false));
    // Bad uses exit 2 with a message: a malformed repository, --write without --admin.
    for bad in [
        &["--admin", "--repo", "octo"][..],
        &["--repo", "o/r", "--ref", "refs/heads/main", "--write"][..],
    ] {
        let (code, _, err) = mint(bad);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert!(!err.is_empty());
    }
}

#[test]
fn list_delete_usage_and_metrics_on_postgresql() {
    let Some(h) = crate::cache::Harness::postgres() else {
        eprintln!("skipped: RUNNER_TEST_POSTGRES_URL is not set");
        return;
    };
    let s = seeded_on(h);
    let write = s.admin_token(REPO, true);
    let listed = keys_of(&s.rest("GET", &format!("{CACHES}?key=npm-&per_page=2"), &write));
    assert_eq!(listed, ["npm-feature", "npm-c"]);
    let reply = s.rest("DELETE", &format!("{CACHES}?key=npm-a"), &write);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let usage = s.rest("GET", USAGE, &write).json();
    assert_eq!(usage["active_caches_count"], 5);
    assert_eq!(usage["active_caches_size_in_bytes"], 20 + 30 + 40 + 50 + 5);
    let audit = s.h.cache.index().audit_log(Some(REPO), 10).expect("audit");
    assert_eq!(audit.len(), 1);
    let m = super::metrics::scrape(&s);
    let value = |name: &str, labels: &[(&str, &str)]| super::metrics::sample(&m, name, labels);
    let repo = ("repository", REPO);
    assert_eq!(
        value("runner_cache_evictions_total", &[repo, ("reason", MANUAL)]),
        Some(1.0)
    );
    assert_eq!(value("runner_cache_saves_total", &[repo]), Some(6.0));
    assert_eq!(
        value("runner_cache_size_bytes", &[("repository", "octo/other")]),
        Some(7.0)
    );
}
