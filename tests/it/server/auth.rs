//! Tokens and scopes, as GitHub's hosted service: repositories are isolated, a branch reads
//! its own ref then the default branch and writes only its own ref, read-only tokens cannot
//! save.

use serde_json::json;

use super::{REPO, SECRET, Srv, version};
use crate::cache::{FEATURE, MAIN};
use crate::support::http;
use runner::server::auth::{Claims, encode_token};

#[test]
fn every_api_route_requires_a_valid_token() {
    let s = Srv::start();
    let v = version(1);
    let routes = [
        (
            "GET",
            format!("/_apis/artifactcache/cache?keys=k&version={v}"),
        ),
        ("POST", "/_apis/artifactcache/caches".to_string()),
        ("PATCH", "/_apis/artifactcache/caches/1".to_string()),
        ("POST", "/_apis/artifactcache/caches/1".to_string()),
        ("POST", format!("{}CreateCacheEntry", super::TWIRP)),
        ("POST", format!("{}FinalizeCacheEntryUpload", super::TWIRP)),
        ("POST", format!("{}GetCacheEntryDownloadURL", super::TWIRP)),
    ];
    let expired = encode_token(
        SECRET,
        &Claims {
            repository_id: Some("1".into()),
            repository: Some(REPO.into()),
            ac: format!(r#"[{{"Scope":"{MAIN}","Permission":3}}]"#),
            exp: s.now_secs() - 1,
            nbf: None,
            iat: None,
            iss: None,
        },
    );
    let forged = runner::server::mint_token(
        b"another secret",
        &runner::server::TokenRequest {
            repository: REPO.into(),
            git_ref: MAIN.into(),
            ttl_secs: 60,
            ..Default::default()
        },
        s.now_secs(),
    );
    let body = json!({"key": "k", "version": v}).to_string();
    for (method, path) in &routes {
        for auth in [
            None,
            Some("Bearer".to_string()),
            Some(format!("Bearer {expired}")),
            Some(format!("Bearer {forged}")),
            Some("Bearer not.a.jwt".into()),
        ] {
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(auth) = &auth {
                headers.push(("Authorization", auth.as_str()));
            }
            let reply = http(method, &s.url(path), &headers, Some(body.as_bytes()));
            assert_eq!(
                reply.status,
                401,
                "{method} {path} with {auth:?}: {}",
                reply.text()
            );
        }
    }
    assert_eq!(s.h.entry_count(), 0);
}

#[test]
fn a_token_of_one_repository_cannot_read_anothers_entries() {
    let s = Srv::start();
    let v = version(2);
    let a = s.token_for("octo/a", MAIN, false);
    let b = s.token_for("octo/b", MAIN, false);
    assert_eq!(s.save_v2(&a, "shared-name", &v, b"secret of a").status, 200);
    assert_eq!(s.restore_v2(&b, &["shared-name"], &v), None);
    assert_eq!(
        s.restore_v2(&b, &["shared"], &v),
        None,
        "not even by prefix"
    );
    // B saves its own entry under the same key; each sees its own.
    assert_eq!(s.save_v2(&b, "shared-name", &v, b"b's own").status, 200);
    assert_eq!(
        s.restore_v2(&a, &["shared-name"], &v).as_deref(),
        Some(&b"secret of a"[..])
    );
    assert_eq!(
        s.restore_v2(&b, &["shared-name"], &v).as_deref(),
        Some(&b"b's own"[..])
    );
    // B cannot finalize or upload into A's upload.
    let upload = s.create(&a, "pending", &v).expect("created");
    let stolen = s.finalize(&b, "pending", &v, 0);
    assert_eq!(stolen.status, 404);
    assert!(upload.contains("/blobs/uploads/"));
}

#[test]
fn a_feature_branch_reads_main_and_writes_only_its_own_ref() {
    let s = Srv::start();
    let v = version(3);
    let main = s.token_for(REPO, MAIN, false);
    let feature = s.token_for(REPO, FEATURE, false);
    assert_eq!(s.save_v2(&main, "deps", &v, b"from main").status, 200);
    assert_eq!(
        s.restore_v2(&feature, &["deps"], &v).as_deref(),
        Some(&b"from main"[..])
    );
    // The feature branch's save lands in its own scope, and it then prefers it.
    assert_eq!(s.save_v2(&feature, "deps", &v, b"from feature").status, 200);
    assert_eq!(
        s.restore_v2(&feature, &["deps"], &v).as_deref(),
        Some(&b"from feature"[..])
    );
    assert_eq!(
        s.restore_v2(&main, &["deps"], &v).as_deref(),
        Some(&b"from main"[..])
    );
    let scopes: Vec<String> =
        s.h.cache
            .index()
            .list(&Default::default())
            .expect("list")
            .into_iter()
            .map(|e| e.scope)
            .collect();
    assert!(scopes.contains(&FEATURE.to_string()) && scopes.contains(&MAIN.to_string()));
    // Another branch does not see the feature branch's entry.
    let other = s.token_for(REPO, "refs/heads/other", false);
    assert_eq!(
        s.restore_v2(&other, &["deps"], &v).as_deref(),
        Some(&b"from main"[..])
    );
}

#[test]
fn a_read_only_token_cannot_save() {
    let s = Srv::start();
    let v = version(4);
    let reader = s.token_for(REPO, MAIN, true);
    let denied = s.create(&reader, "k", &v).expect_err("read only");
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["code"], "permission_denied");
    let v1 = http(
        "POST",
        &s.url("/_apis/artifactcache/caches"),
        &[
            ("Authorization", &format!("Bearer {reader}")),
            ("Content-Type", "application/json"),
        ],
        Some(json!({"key": "k", "version": v}).to_string().as_bytes()),
    );
    assert_eq!(v1.status, 403);
    assert_eq!(s.h.entry_count(), 0);
    // It still reads.
    assert_eq!(s.save_v2(&s.token(), "k", &v, b"x").status, 200);
    assert_eq!(
        s.restore_v2(&reader, &["k"], &v).as_deref(),
        Some(&b"x"[..])
    );
}

#[test]
fn tokens_in_githubs_shape_are_read() {
    // A token as GitHub issues it: repository_id only, `ac` with several scopes.
    let s = Srv::start();
    let claims = Claims {
        repository_id: Some("123456".into()),
        repository: None,
        ac: format!(
            r#"[{{"Scope":"refs/pull/7/merge","Permission":3}},{{"Scope":"{FEATURE}","Permission":1}},{{"Scope":"{MAIN}","Permission":1}}]"#
        ),
        exp: s.now_secs() + 60,
        nbf: None,
        iat: None,
        iss: None,
    };
    let token = encode_token(SECRET, &claims);
    let v = version(5);
    assert_eq!(s.save_v2(&token, "pr", &v, b"pr bytes").status, 200);
    let entry =
        s.h.cache
            .index()
            .list(&Default::default())
            .expect("list")
            .remove(0);
    assert_eq!(
        (entry.repository.as_str(), entry.scope.as_str()),
        ("123456", "refs/pull/7/merge")
    );
}

#[test]
fn insecure_mode_takes_tokens_unverified_and_requests_without_one() {
    let s = Srv::with(|c| c.auth = runner::server::AuthMode::Insecure);
    let v = version(6);
    let unsigned = encode_token(
        b"whatever",
        &Claims {
            repository_id: None,
            repository: Some("octo/unsigned".into()),
            ac: format!(r#"[{{"Scope":"{MAIN}","Permission":3}}]"#),
            exp: s.now_secs() + 60,
            nbf: None,
            iat: None,
            iss: None,
        },
    );
    assert_eq!(s.save_v2(&unsigned, "k", &v, b"x").status, 200);
    let reply = http(
        "POST",
        &s.url(&format!("{}GetCacheEntryDownloadURL", super::TWIRP)),
        &[("Content-Type", "application/json")],
        Some(json!({"key": "k", "version": v}).to_string().as_bytes()),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json()["ok"],
        json!(false),
        "no token is another repository"
    );
    let repos: Vec<String> =
        s.h.cache
            .index()
            .list(&Default::default())
            .expect("list")
            .into_iter()
            .map(|e| e.repository)
            .collect();
    assert_eq!(repos, ["octo/unsigned"]);
}
