//! Integration tests: `runner serve`. Real HTTP on 127.0.0.1 (ureq), the cache harness's real
//! store (SQLite file, PostgreSQL when configured), real processes for signals and kill -9.

mod auth;
mod client;
mod concurrency;
#[cfg(feature = "s3")]
mod direct;
mod metrics;
mod process;
mod rest;
mod scale_out;
mod toolkit;
mod ui;
mod v1;
mod v2;

use std::sync::Arc;

use serde_json::{Value, json};

use crate::cache::{Harness, MAIN};
use crate::support::{HttpReply, http};
use runner::server::{
    AdminTokenRequest, AuthMode, Keys, RepoMatch, RunningServer, Server, ServerConfig,
    TokenRequest, mint_token,
};

pub const SECRET: &[u8] = b"server-test-secret";
pub const REPO: &str = "octo/app";
pub const TWIRP: &str = "/twirp/github.actions.results.api.v1.CacheService/";

/// A version as the toolkit computes it (any 64 hex characters do).
pub fn version(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

/// A server over a cache harness's store, on an ephemeral port.
pub struct Srv {
    pub h: Harness,
    pub server: Server,
    _running: RunningServer,
    pub base: String,
}

impl Srv {
    pub fn start() -> Self {
        Self::on(Harness::sqlite(), |_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        Self::on(Harness::sqlite(), tweak)
    }

    pub fn on(h: Harness, tweak: impl FnOnce(&mut ServerConfig)) -> Self {
        let mut config = ServerConfig::new(
            AuthMode::Secret(SECRET.to_vec()),
            h.dir.path().join("staging"),
        );
        tweak(&mut config);
        let server =
            Server::new(h.cache.clone(), config, Arc::new(h.clock.clone())).expect("server starts");
        let running = runner::server::spawn(server.clone(), "127.0.0.1:0").expect("spawn");
        let base = running.url();
        Self {
            h,
            server,
            _running: running,
            base,
        }
    }

    /// The staging directory (to check nothing is left behind).
    pub fn staged_uploads(&self) -> usize {
        std::fs::read_dir(self.h.dir.path().join("staging"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Waits (up to 10 s) until the blob store's unfinished blobs hold `bytes` in all, and says
    /// whether they did: an upload being assembled while it arrives writes one.
    pub fn assembled_early(&self, bytes: u64) -> bool {
        let tmp = self.h.dir.path().join("store/blobs-v1/tmp");
        let held = || -> u64 {
            std::fs::read_dir(&tmp)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|f| f.file_name().to_string_lossy().ends_with(".partial"))
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum()
        };
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while held() != bytes {
            if std::time::Instant::now() > until {
                eprintln!("unfinished blobs hold {} bytes, not {bytes}", held());
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        true
    }

    /// A token for `repo` on `git_ref` (default branch main).
    pub fn token_for(&self, repo: &str, git_ref: &str, read_only: bool) -> String {
        let request = TokenRequest {
            repository: repo.into(),
            git_ref: git_ref.into(),
            default_branch: Some(MAIN.into()),
            read_only,
            ttl_secs: 3600,
            ..TokenRequest::default()
        };
        mint_token(SECRET, &request, self.now_secs())
    }

    /// The server's clock, in seconds.
    pub fn now_secs(&self) -> i64 {
        runner::clock::Clock::now_millis(&self.h.clock) / 1000
    }

    /// An admin token (`runner token --admin`) for `repo` (`*`: every repository).
    pub fn admin_token(&self, repo: &str, write: bool) -> String {
        let request = AdminTokenRequest {
            repos: RepoMatch::parse(repo).expect("owner/name or *"),
            write,
            subject: "tester".into(),
            ttl_secs: 3600,
        };
        Keys::new(SECRET).mint_admin(&request, self.now_secs())
    }

    /// A REST API call (`path` under the server) with `Authorization: Bearer <token>`.
    pub fn rest(&self, method: &str, path: &str, token: &str) -> HttpReply {
        let auth = format!("Bearer {token}");
        http(
            method,
            &self.url(path),
            &[
                ("Authorization", &auth),
                ("Accept", "application/vnd.github+json"),
            ],
            None,
        )
    }

    /// A read-write token for the harness repository on main.
    pub fn token(&self) -> String {
        self.token_for(REPO, MAIN, false)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A Twirp call.
    pub fn twirp(&self, token: &str, method: &str, body: Value) -> HttpReply {
        let auth = format!("Bearer {token}");
        http(
            "POST",
            &self.url(&format!("{TWIRP}{method}")),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(body.to_string().as_bytes()),
        )
    }

    /// `CreateCacheEntry`; the signed upload URL on success.
    pub fn create(&self, token: &str, key: &str, version: &str) -> Result<String, HttpReply> {
        let reply = self.twirp(
            token,
            "CreateCacheEntry",
            json!({"key": key, "version": version}),
        );
        if reply.status != 200 {
            return Err(reply);
        }
        let url = reply.json()["signed_upload_url"]
            .as_str()
            .expect("signed_upload_url")
            .to_string();
        Ok(url)
    }

    pub fn finalize(&self, token: &str, key: &str, version: &str, size: usize) -> HttpReply {
        self.twirp(
            token,
            "FinalizeCacheEntryUpload",
            json!({"key": key, "version": version, "size_bytes": size.to_string()}),
        )
    }

    /// `GetCacheEntryDownloadURL`: the reply's JSON.
    pub fn download_url(&self, token: &str, keys: &[&str], version: &str) -> Value {
        let reply = self.twirp(
            token,
            "GetCacheEntryDownloadURL",
            json!({"key": keys[0], "restore_keys": &keys[1..], "version": version}),
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        reply.json()
    }

    /// A whole v2 save with one Put Blob.
    pub fn save_v2(&self, token: &str, key: &str, version: &str, data: &[u8]) -> HttpReply {
        let url = match self.create(token, key, version) {
            Ok(url) => url,
            Err(reply) => return reply,
        };
        let put = put_blob(&url, data);
        assert_eq!(put.status, 201, "{}", put.text());
        self.finalize(token, key, version, data.len())
    }

    /// Restores over v2: the bytes of the matched entry, or `None` on a miss.
    pub fn restore_v2(&self, token: &str, keys: &[&str], version: &str) -> Option<Vec<u8>> {
        let found = self.download_url(token, keys, version);
        if found["ok"] != json!(true) {
            return None;
        }
        let reply = http(
            "GET",
            found["signed_download_url"].as_str().expect("url"),
            &[],
            None,
        );
        assert_eq!(reply.status, 200, "{}", reply.text());
        Some(reply.body)
    }
}

/// Azure Put Blob.
pub fn put_blob(url: &str, data: &[u8]) -> HttpReply {
    http("PUT", url, &[("x-ms-blob-type", "BlockBlob")], Some(data))
}

/// `n` bytes that do not repeat in short cycles.
pub fn bytes(n: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn healthz_and_unknown_routes_answer_json() {
    let s = Srv::start();
    let ok = http("GET", &s.url("/healthz"), &[], None);
    assert_eq!((ok.status, ok.text().as_str()), (200, "ok\n"));
    let missing = http("GET", &s.url("/nope/../etc/passwd"), &[], None);
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["code"], "bad_route");
    assert!(missing.header("x-ms-request-id").is_some());
    let wrong = http("DELETE", &s.url("/healthz"), &[], None);
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.json()["code"], "bad_route");
}

/// A base64 block id percent-encoded for the `blockid` query parameter.
pub fn encode(id: &str) -> String {
    id.replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D")
}

/// The Put Block List body naming `ids` (base64, in list order).
pub fn block_list_xml(ids: &[String]) -> String {
    let list: String = ids
        .iter()
        .map(|id| format!("<Latest>{id}</Latest>"))
        .collect();
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{list}</BlockList>")
}

/// The answer to a Put Block List of `ids` (base64, in list order) at upload URL `url`.
pub fn block_list_reply(url: &str, ids: &[String]) -> HttpReply {
    http(
        "PUT",
        &format!("{url}&comp=blocklist"),
        &[],
        Some(block_list_xml(ids).as_bytes()),
    )
}

/// Put Block List of `ids` (base64, in list order); it must be accepted.
pub fn put_block_list(url: &str, ids: &[String]) {
    let reply = block_list_reply(url, ids);
    assert_eq!(reply.status, 201, "{}", reply.text());
}
