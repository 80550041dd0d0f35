//! v1: the artifactcache REST API, and v1/v2/`runner exec` sharing one store.

use std::thread;

use serde_json::{Value, json};

use super::{Srv, bytes, version};
use crate::cache::MAIN;
use crate::support::{HttpReply, http};

const API: &str = "/_apis/artifactcache/";

impl Srv {
    fn v1(
        &self,
        token: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> HttpReply {
        let auth = format!("Bearer {token}");
        let mut all = vec![
            ("Authorization", auth.as_str()),
            ("Accept", "application/json;api-version=6.0-preview.1"),
        ];
        all.extend_from_slice(headers);
        http(method, &self.url(&format!("{API}{path}")), &all, body)
    }

    fn v1_json(&self, token: &str, method: &str, path: &str, body: Value) -> HttpReply {
        self.v1(
            token,
            method,
            path,
            &[("Content-Type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
    }

    /// `POST caches`: the cache id, or the reply.
    fn reserve(
        &self,
        token: &str,
        key: &str,
        version: &str,
        size: Option<u64>,
    ) -> Result<u64, HttpReply> {
        let reply = self.v1_json(
            token,
            "POST",
            "caches",
            json!({"key": key, "version": version, "cacheSize": size}),
        );
        match reply.json()["cacheId"].as_u64() {
            Some(id) if reply.status < 300 => Ok(id),
            _ => Err(reply),
        }
    }

    fn patch(&self, token: &str, id: u64, start: usize, data: &[u8]) -> HttpReply {
        let range = format!("bytes {start}-{}/*", start + data.len() - 1);
        self.v1(
            token,
            "PATCH",
            &format!("caches/{id}"),
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
            ],
            Some(data),
        )
    }

    fn commit(&self, token: &str, id: u64, size: usize) -> HttpReply {
        self.v1_json(
            token,
            "POST",
            &format!("caches/{id}"),
            json!({"size": size}),
        )
    }

    fn lookup_v1(&self, token: &str, keys: &str, version: &str) -> HttpReply {
        self.v1(
            token,
            "GET",
            &format!("cache?keys={keys}&version={version}"),
            &[],
            None,
        )
    }

    /// A whole v1 save in 3 chunks, uploaded last-first and concurrently.
    pub fn save_v1(&self, token: &str, key: &str, version: &str, data: &[u8]) -> u16 {
        let id = self
            .reserve(token, key, version, Some(data.len() as u64))
            .expect("reserved");
        let third = data.len().div_ceil(3);
        thread::scope(|scope| {
            for (i, chunk) in data.chunks(third).enumerate().rev() {
                scope.spawn(move || {
                    let reply = self.patch(token, id, i * third, chunk);
                    assert_eq!(reply.status, 204, "{}", reply.text());
                });
            }
        });
        self.commit(token, id, data.len()).status
    }
}

#[test]
fn chunks_in_any_order_commit_and_download() {
    let s = Srv::start();
    let token = s.token();
    let v = version(1);
    assert_eq!(
        s.lookup_v1(&token, "npm-linux", &v).status,
        204,
        "a miss is 204"
    );
    let data = bytes(250_001, 3);
    assert_eq!(s.save_v1(&token, "npm-linux-1", &v, &data), 204);
    let hit = s.lookup_v1(&token, "npm-linux-2,npm-linux-", &v);
    assert_eq!(hit.status, 200);
    let body = hit.json();
    assert_eq!(body["cacheKey"], "npm-linux-1");
    assert_eq!(body["scope"], MAIN);
    assert!(
        body["creationTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let archive = http(
        "GET",
        body["archiveLocation"].as_str().expect("url"),
        &[],
        None,
    );
    assert_eq!(archive.status, 200);
    assert_eq!(archive.body, data);
    assert_eq!(s.staged_uploads(), 0);
}

/// Chunks sent in order are copied into their blob as they arrive (each one starts where the
/// bytes so far end); the commit stores them as they were sent.
#[test]
fn chunks_sent_in_order_are_assembled_as_they_arrive() {
    let s = Srv::start();
    let token = s.token();
    let v = version(40);
    let data = bytes(600_001, 4);
    let id = s.reserve(&token, "in-order", &v, None).expect("reserved");
    for (i, chunk) in data.chunks(100_000).enumerate() {
        assert_eq!(s.patch(&token, id, i * 100_000, chunk).status, 204);
    }
    assert!(s.assembled_early(data.len() as u64));
    assert_eq!(s.commit(&token, id, data.len()).status, 204);
    let hit = s.lookup_v1(&token, "in-order", &v);
    assert_eq!(hit.status, 200, "{}", hit.text());
    let location = hit.json()["archiveLocation"].as_str().map(str::to_string);
    let got = http("GET", &location.expect("a location"), &[], None);
    assert_eq!(got.body, data);
    assert!(s.assembled_early(0));
}

#[test]
fn reserve_conflicts_and_caps() {
    let s = Srv::with(|c| c.max_entry_size = 1000);
    let token = s.token();
    let v = version(2);
    let first = s.reserve(&token, "k", &v, Some(10)).expect("reserved");
    let busy = s
        .reserve(&token, "k", &v, Some(10))
        .expect_err("being created");
    assert_eq!(busy.status, 409);
    assert!(
        busy.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("another job may be creating this cache")),
        "{}",
        busy.text()
    );
    let over = s
        .reserve(&token, "big", &v, Some(5000))
        .expect_err("too big");
    assert_eq!(over.status, 400);
    assert!(
        over.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("limit"))
    );
    assert_eq!(s.patch(&token, first, 0, b"0123456789").status, 204);
    assert_eq!(s.commit(&token, first, 10).status, 204);
    let exists = s.reserve(&token, "k", &v, Some(10)).expect_err("exists");
    assert_eq!(exists.status, 409);
}

#[test]
fn bad_chunks_and_sizes_are_refused_and_nothing_is_committed() {
    let s = Srv::start();
    let token = s.token();
    let v = version(3);
    let id = s.reserve(&token, "k", &v, Some(30)).expect("reserved");
    assert_eq!(s.patch(&token, id, 0, &[b'a'; 10]).status, 204);
    // Overlapping an earlier chunk.
    assert_eq!(s.patch(&token, id, 5, &[b'b'; 10]).status, 400);
    // The same chunk again (a retry) is fine.
    assert_eq!(s.patch(&token, id, 0, &[b'a'; 10]).status, 204);
    // Bad Content-Range headers.
    for range in [
        "bytes 9-3/*",
        "bytes a-b/*",
        "items 0-3/*",
        "bytes 0-3",
        "bytes 20-29/*",
    ] {
        let reply = s.v1(
            &token,
            "PATCH",
            &format!("caches/{id}"),
            &[("Content-Range", range)],
            Some(b"0123"),
        );
        assert_eq!(reply.status, 400, "{range}: {}", reply.text());
        assert!(
            reply.json()["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let none = s.v1(&token, "PATCH", &format!("caches/{id}"), &[], Some(b"0123"));
    assert_eq!(none.status, 400);
    // A gap: bytes 10-19 missing.
    assert_eq!(s.patch(&token, id, 20, &[b'c'; 10]).status, 204);
    let gap = s.commit(&token, id, 30);
    assert_eq!(gap.status, 400);
    assert!(gap.text().contains("never uploaded"), "{}", gap.text());
    assert_eq!(s.patch(&token, id, 10, &[b'd'; 10]).status, 204);
    // Size differs from the bytes received.
    let wrong = s.commit(&token, id, 31);
    assert_eq!(wrong.status, 400);
    assert_eq!(s.h.entry_count(), 0);
    assert_eq!(s.commit(&token, id, 30).status, 204);
    assert_eq!(s.h.entry_count(), 1);
    // Ids are numbers, never paths; malformed JSON is a 400.
    assert_eq!(s.commit(&token, 999, 1).status, 404);
    let traversal = s.v1_json(&token, "POST", "caches/..%2F..%2Fx", json!({"size": 1}));
    assert_eq!(traversal.status, 400);
    let malformed = s.v1(
        &token,
        "POST",
        "caches",
        &[("Content-Type", "application/json")],
        Some(b"{"),
    );
    assert_eq!(malformed.status, 400);
    assert!(malformed.json()["message"].as_str().is_some());
    let bad_version = s
        .reserve(&token, "k2", "not-hex", None)
        .expect_err("bad version");
    assert_eq!(bad_version.status, 400);
    let comma = s.lookup_v1(&token, "a%2Cb", &v);
    assert_eq!(comma.status, 204, "a comma splits keys in v1");
}

#[test]
fn v1_v2_and_runner_exec_share_one_store() {
    let s = Srv::start();
    let token = s.token();
    let v = version(4);
    assert_eq!(s.save_v1(&token, "from-v1", &v, b"saved over v1"), 204);
    assert_eq!(
        s.restore_v2(&token, &["from-v1"], &v).as_deref(),
        Some(&b"saved over v1"[..])
    );
    assert_eq!(
        s.save_v2(&token, "from-v2", &v, b"saved over v2").status,
        200
    );
    let hit = s.lookup_v1(&token, "from-v2", &v);
    assert_eq!(hit.status, 200);
    let body = http(
        "GET",
        hit.json()["archiveLocation"].as_str().expect("url"),
        &[],
        None,
    )
    .body;
    assert_eq!(body, b"saved over v2");
    let listed = crate::support::committed_keys(s.h.cache.index());
    assert_eq!(listed, ["from-v1", "from-v2"]);
}

#[test]
fn entries_of_runner_exec_restore_over_the_protocols_and_back() {
    use runner::archive::Compression;
    let s = Srv::start();
    let token = s.token();
    let job = s.h.job(MAIN);
    crate::support::write_tree(&s.h.workspace(), &[("deps/a.txt", "alpha")]);
    let inputs = [("path", "deps"), ("key", "exec-key")];
    let main = s.h.main("actions/cache@v4", &job, &inputs);
    let post = s.h.post("actions/cache@v4", &job, &inputs, &main);
    assert!(post.result.is_ok(), "{:?}", post.logs);
    let v = runner::cache::cache_version(&["deps".to_string()], Compression::Zstd, false, false);
    let archive = s
        .restore_v2(&token, &["exec-key"], &v)
        .expect("found over v2");
    assert!(
        archive.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
        "a zstd archive"
    );

    // That archive saved over v1 under another key restores with `runner exec`'s handler.
    assert_eq!(s.save_v1(&token, "served-key", &v, &archive), 204);
    std::fs::remove_dir_all(s.h.workspace().join("deps")).expect("clean");
    let restore = s.h.main(
        "actions/cache/restore@v4",
        &job,
        &[("path", "deps"), ("key", "served-key")],
    );
    assert!(restore.result.is_ok(), "{:?}", restore.logs);
    assert_eq!(
        restore.outputs.get("cache-hit").map(String::as_str),
        Some("true"),
        "{:?}",
        restore.logs
    );
    assert_eq!(
        std::fs::read_to_string(s.h.workspace().join("deps/a.txt")).expect("restored"),
        "alpha"
    );
}

#[test]
fn round_trip_on_postgresql() {
    let Some(h) = crate::cache::Harness::postgres() else {
        eprintln!("skipped: RUNNER_TEST_POSTGRES_URL is not set");
        return;
    };
    let s = Srv::on(h, |_| {});
    let token = s.token();
    let v = version(5);
    assert_eq!(s.save_v1(&token, "pg-v1", &v, &bytes(10_000, 1)), 204);
    assert_eq!(
        s.save_v2(&token, "pg-v2", &v, &bytes(10_000, 2)).status,
        200
    );
    assert_eq!(s.restore_v2(&token, &["pg-v1"], &v), Some(bytes(10_000, 1)));
    assert_eq!(s.lookup_v1(&token, "pg-v2", &v).status, 200);
    let again = s.create(&token, "pg-v2", &v).expect_err("exists");
    assert_eq!(again.status, 409);
}
