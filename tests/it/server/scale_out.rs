//! Scale-out: three `runner serve` processes on one PostgreSQL schema and one S3 prefix are
//! stateless peers. Thirty clients save and restore through random nodes (half over v1, half
//! over v2), each request of an upload (reserve, every chunk or block, the block list, commit)
//! going to a node of its own, while one
//! node is killed -9 mid-run. Nothing committed is lost, nothing partial is visible, every hit
//! is byte-identical, and the maintenance lease (prune, expiry) is held by one node at a time.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::{REPO, TWIRP, bytes, version};
use crate::cache::MAIN;
use crate::store::blob_conformance::s3_test_url;
use crate::support::{HttpReply, PgSchema, runner_bin, try_http};
use runner::server::{TokenRequest, mint_token};

const SECRET: &str = "scale-out-secret";
const NODES: usize = 3;
const CLIENTS: usize = 30;
const ROUNDS: usize = 2;
const BLOCKS: usize = 3;

/// One `runner serve` process with its own cache directory (nothing on a node's disk is
/// shared) and its log lines collected.
struct Node {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<Value>>>,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        // A failing test must not leave servers running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(db_url: &str, blobs_url: &str) -> Node {
    let dir = tempfile::tempdir().expect("node dir");
    let mut child = Command::new(runner_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("RUNNER_CACHE_DIR", dir.path())
        .env("RUNNER_CACHE_DB", db_url)
        .env("RUNNER_CACHE_BLOBS", blobs_url)
        .env("RUNNER_SERVE_TOKEN_SECRET", SECRET)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runner serve");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let Ok(value) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if let Some(url) = value["message"]
                .as_str()
                .and_then(|m| m.strip_prefix("listening on "))
            {
                let _ = tx.send(url.to_string());
            }
            lines.lock().expect("log").push(value);
        }
    });
    let base = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("runner serve listens");
    Node {
        child,
        base,
        log,
        _dir: dir,
    }
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The nodes clients may pick, and a small per-client random source.
struct Cluster {
    bases: Vec<String>,
    alive: Mutex<Vec<bool>>,
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

impl Cluster {
    /// Sends `path` (a route, or a signed URL whose host is replaced) to a random live node;
    /// a failed connection (the node was killed) is retried on another one.
    fn send(
        &self,
        rng: &mut Rng,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpReply, String> {
        let route = match path.strip_prefix("http://") {
            Some(rest) => rest.find('/').map_or("/", |at| &rest[at..]),
            None => path,
        };
        let mut last = String::new();
        for _ in 0..4 {
            let live: Vec<usize> = {
                let alive = self.alive.lock().expect("alive");
                (0..self.bases.len()).filter(|i| alive[*i]).collect()
            };
            let node = live[rng.below(live.len())];
            let url = format!("{}{route}", self.bases[node]);
            match try_http(method, &url, headers, Some(body)) {
                Ok(reply) => return Ok(reply),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    fn twirp(
        &self,
        rng: &mut Rng,
        token: &str,
        method: &str,
        body: Value,
    ) -> Result<HttpReply, String> {
        let auth = format!("Bearer {token}");
        self.send(
            rng,
            "POST",
            &format!("{TWIRP}{method}"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
    }

    /// A v2 save in blocks, each request to a random node; `Ok(true)` when finalize said 200.
    fn save(&self, rng: &mut Rng, token: &str, key: &str, data: &[u8]) -> Result<bool, String> {
        let v = version(7);
        let created = self.twirp(
            rng,
            token,
            "CreateCacheEntry",
            json!({"key": key, "version": v}),
        )?;
        if created.status != 200 {
            return Ok(false);
        }
        let url = created.json()["signed_upload_url"]
            .as_str()
            .ok_or("no signed_upload_url")?
            .to_string();
        let chunk = data.len().div_ceil(BLOCKS);
        let mut ids = Vec::new();
        for (j, block) in data.chunks(chunk).enumerate() {
            let id = STANDARD.encode(format!("blk-{j:04}"));
            let reply = self.send(
                rng,
                "PUT",
                &format!("{url}&comp=block&blockid={}", super::encode(&id)),
                &[],
                block,
            )?;
            if reply.status != 201 {
                return Err(format!("put block: {} {}", reply.status, reply.text()));
            }
            ids.push(id);
        }
        let reply = self.send(
            rng,
            "PUT",
            &format!("{url}&comp=blocklist"),
            &[],
            super::block_list_xml(&ids).as_bytes(),
        )?;
        if reply.status != 201 {
            return Err(format!("put block list: {} {}", reply.status, reply.text()));
        }
        let done = self.twirp(
            rng,
            token,
            "FinalizeCacheEntryUpload",
            json!({"key": key, "version": v, "size_bytes": data.len().to_string()}),
        )?;
        Ok(done.status == 200)
    }

    /// A v1 request (`/_apis/artifactcache/…`) to a random node.
    fn v1(
        &self,
        rng: &mut Rng,
        token: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<HttpReply, String> {
        let auth = format!("Bearer {token}");
        let mut all = vec![
            ("Authorization", auth.as_str()),
            ("Accept", "application/json;api-version=6.0-preview.1"),
        ];
        all.extend_from_slice(headers);
        self.send(
            rng,
            method,
            &format!("/_apis/artifactcache/{path}"),
            &all,
            body,
        )
    }

    /// A v1 save: reserve, chunks (last first) and commit, each to a random node.
    fn save_v1(&self, rng: &mut Rng, token: &str, key: &str, data: &[u8]) -> Result<bool, String> {
        let json = [("Content-Type", "application/json")];
        let body = json!({"key": key, "version": version(7), "cacheSize": data.len()});
        let reserved = self.v1(
            rng,
            token,
            "POST",
            "caches",
            &json,
            body.to_string().as_bytes(),
        )?;
        let Some(id) = reserved.json()["cacheId"].as_u64() else {
            return Ok(false);
        };
        let chunk = data.len().div_ceil(BLOCKS);
        for (j, part) in data.chunks(chunk).enumerate().rev() {
            let start = j * chunk;
            let range = format!("bytes {start}-{}/*", start + part.len() - 1);
            let headers = [
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", range.as_str()),
            ];
            let reply = self.v1(rng, token, "PATCH", &format!("caches/{id}"), &headers, part)?;
            if reply.status != 204 {
                return Err(format!("patch: {} {}", reply.status, reply.text()));
            }
        }
        let body = json!({"size": data.len()}).to_string();
        let done = self.v1(
            rng,
            token,
            "POST",
            &format!("caches/{id}"),
            &json,
            body.as_bytes(),
        )?;
        Ok(done.status == 204)
    }

    /// The bytes a v1 restore of `key` gets through random nodes, `None` on a miss.
    fn restore_v1(&self, rng: &mut Rng, token: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        let path = format!("cache?keys={key}&version={}", version(7));
        let found = self.v1(rng, token, "GET", &path, &[], &[])?;
        if found.status == 204 {
            return Ok(None);
        }
        let url = found.json()["archiveLocation"]
            .as_str()
            .ok_or("no archiveLocation")?
            .to_string();
        let reply = self.send(rng, "GET", &url, &[], &[])?;
        if reply.status != 200 {
            return Err(format!("download: {} {}", reply.status, reply.text()));
        }
        Ok(Some(reply.body))
    }

    /// The bytes a restore of `key` gets through random nodes, `None` on a miss.
    fn restore(&self, rng: &mut Rng, token: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        let found = self.twirp(
            rng,
            token,
            "GetCacheEntryDownloadURL",
            json!({"key": key, "restore_keys": [], "version": version(7)}),
        )?;
        let found = found.json();
        if found["ok"] != json!(true) {
            return Ok(None);
        }
        let url = found["signed_download_url"].as_str().ok_or("no url")?;
        let reply = self.send(rng, "GET", url, &[], &[])?;
        if reply.status != 200 {
            return Err(format!("download: {} {}", reply.status, reply.text()));
        }
        Ok(Some(reply.body))
    }
}

/// Each node's lease intervals `(taken, released)` in nanoseconds; one still held when its
/// node was killed ends at `killed` (the lock went with the node's connection after that).
fn lease_intervals(
    nodes: &[Node],
    killed: Option<(usize, u128)>,
) -> Vec<(u128, u128, usize, String)> {
    let mut out = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        let mut open: Option<(u128, String)> = None;
        for line in node.log.lock().expect("log").iter() {
            if line["target"] != json!("runner::maintenance") {
                continue;
            }
            let at: u128 = line["at_ns"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("at_ns");
            let task = line["task"].as_str().unwrap_or_default().to_string();
            match line["message"].as_str() {
                Some("maintenance lease taken") => {
                    assert!(open.is_none(), "node {n} took the lease twice: {line}");
                    open = Some((at, task));
                }
                Some("maintenance lease released") => {
                    let (start, task) = open.take().expect("released without taken");
                    out.push((start, at, n, task));
                }
                _ => {}
            }
        }
        if let Some((start, task)) = open {
            let end = match killed {
                Some((k, at)) if k == n => at,
                _ => panic!("node {n} still holds the lease after it stopped"),
            };
            out.push((start, end, n, task));
        }
    }
    out.sort();
    out
}

#[test]
fn three_nodes_one_killed_lose_nothing_and_maintain_one_at_a_time() {
    let Some((_, blobs_url)) = s3_test_url() else {
        return;
    };
    let Some(pg) = PgSchema::create() else {
        eprintln!("skipped: the scale-out test needs RUNNER_TEST_POSTGRES_URL");
        return;
    };
    let db_url = pg.url();
    // The first node creates the schema; the others find it.
    let mut nodes = vec![start_node(&db_url, &blobs_url)];
    for _ in 1..NODES {
        nodes.push(start_node(&db_url, &blobs_url));
    }
    let cluster = Cluster {
        bases: nodes.iter().map(|n| n.base.clone()).collect(),
        alive: Mutex::new(vec![true; NODES]),
    };
    let request = TokenRequest {
        repository: REPO.into(),
        git_ref: MAIN.into(),
        default_branch: Some(MAIN.into()),
        read_only: false,
        ttl_secs: 3600,
        ..TokenRequest::default()
    };
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let token = mint_token(SECRET.as_bytes(), &request, now);
    let saves_done = AtomicUsize::new(0);
    let committed: Mutex<BTreeMap<String, Vec<u8>>> = Mutex::new(BTreeMap::new());
    let all: BTreeMap<String, Vec<u8>> = (0..CLIENTS)
        .flat_map(|c| (0..ROUNDS).map(move |r| (c, r)))
        .map(|(c, r)| {
            let key = format!("scale-{c}-{r}");
            (
                key,
                bytes(20_000 + c * 1_000 + r * 333, (c * ROUNDS + r) as u8),
            )
        })
        .collect();
    let victim = 1;
    let mut killed_at = None;
    std::thread::scope(|scope| {
        for c in 0..CLIENTS {
            let (cluster, token, all, committed, saves_done) =
                (&cluster, &token, &all, &committed, &saves_done);
            scope.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((c as u64 + 1) * 0x2545_f491));
                for r in 0..ROUNDS {
                    let key = format!("scale-{c}-{r}");
                    let data = &all[&key];
                    // Odd clients speak v1, even ones v2. A save broken by the kill is a
                    // failed save, never a partial entry.
                    let saved = if c % 2 == 1 {
                        cluster.save_v1(&mut rng, token, &key, data)
                    } else {
                        cluster.save(&mut rng, token, &key, data)
                    };
                    if let Ok(true) = saved {
                        committed
                            .lock()
                            .expect("committed")
                            .insert(key.clone(), data.clone());
                    }
                    saves_done.fetch_add(1, Ordering::SeqCst);
                    let restored = if c % 2 == 1 {
                        cluster.restore_v1(&mut rng, token, &key)
                    } else {
                        cluster.restore(&mut rng, token, &key)
                    };
                    if let Ok(Some(got)) = restored {
                        assert!(
                            got == *data,
                            "{key}: a hit with other bytes ({} B)",
                            got.len()
                        );
                    }
                }
            });
        }
        // Kill a node -9 once a third of the saves are through, while the rest are running.
        while saves_done.load(Ordering::SeqCst) < CLIENTS * ROUNDS / 3 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        cluster.alive.lock().expect("alive")[victim] = false;
        killed_at = Some((victim, now_ns()));
        nodes[victim].child.kill().expect("kill -9");
        let _ = nodes[victim].child.wait();
    });
    let committed = committed.into_inner().expect("committed");
    assert!(
        committed.len() >= CLIENTS,
        "most saves commit despite the kill: {} of {}",
        committed.len(),
        CLIENTS * ROUNDS
    );
    // No lost committed entry, every hit byte-identical (through every surviving node).
    let mut rng = Rng(7);
    for (key, data) in &committed {
        let got = cluster.restore(&mut rng, &token, key).expect("restore");
        assert!(
            got.as_deref() == Some(data.as_slice()),
            "{key}: committed entry lost or changed"
        );
    }
    // No visible partial entry: every committed row in the index is one of ours, whole.
    let clock: Arc<dyn runner::clock::Clock> = Arc::new(runner::clock::SystemClock);
    let index = runner::store::index::Index::open(&db_url, clock).expect("index");
    let rows = index
        .list(&runner::store::index::ListFilter::default())
        .expect("list");
    assert!(rows.len() >= committed.len());
    for row in &rows {
        let data = all
            .get(&row.key)
            .unwrap_or_else(|| panic!("unknown entry {}", row.key));
        assert_eq!(row.size_bytes, data.len() as u64, "{}", row.key);
        let got = cluster
            .restore(&mut rng, &token, &row.key)
            .expect("restore");
        assert!(
            got.as_deref() == Some(data.as_slice()),
            "{}: partial entry",
            row.key
        );
    }
    // Stop the survivors gracefully, so their logs are complete, then check the lease.
    for (n, node) in nodes.iter_mut().enumerate() {
        if n != victim {
            // SAFETY: kill(2) on a child we spawned and have not reaped.
            unsafe { libc::kill(node.child.id() as i32, libc::SIGTERM) };
            let status = node.child.wait().expect("wait");
            assert!(status.success(), "node {n}: {status}");
        }
    }
    let intervals = lease_intervals(&nodes, killed_at);
    let holders: std::collections::BTreeSet<usize> = intervals.iter().map(|i| i.2).collect();
    eprintln!(
        "scale-out: {} of {} saves committed, {} rows, {} lease terms held by nodes {holders:?}",
        committed.len(),
        CLIENTS * ROUNDS,
        rows.len(),
        intervals.len()
    );
    assert!(
        intervals.iter().any(|(_, _, _, task)| task == "prune"),
        "saves prune under the lease: {intervals:?}"
    );
    for pair in intervals.windows(2) {
        let ((_, end, a, _), (start, _, b, _)) = (&pair[0], &pair[1]);
        assert!(
            start >= end,
            "node {b} took the maintenance lease while node {a} held it: {pair:?}"
        );
    }
}

#[test]
fn blocks_bigger_than_one_s3_part_stage_in_the_bucket_and_leave_nothing() {
    let Some((_, url)) = s3_test_url() else {
        return;
    };
    let s = super::Srv::with(|c| c.blobs_url = Some(url.clone()));
    let token = s.token();
    let v = version(3);
    let created = s.create(&token, "big", &v).expect("created");
    // Two blocks over the 8 MiB part size: each staged piece is a multipart upload.
    let blocks = [bytes(9 << 20, 1), bytes((8 << 20) + 5, 2)];
    let mut ids = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let id = STANDARD.encode(format!("blk-{j:04}"));
        let reply = crate::support::http(
            "PUT",
            &format!("{created}&comp=block&blockid={}", super::encode(&id)),
            &[],
            Some(block),
        );
        assert_eq!(reply.status, 201, "{}", reply.text());
        ids.push(id);
    }
    // Nothing is staged on this node's disk: the parts are in the bucket.
    assert_eq!(s.staged_uploads(), 0);
    super::put_block_list(&created, &ids);
    let expected = blocks.concat();
    let done = s.finalize(&token, "big", &v, expected.len());
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(s.restore_v2(&token, &["big"], &v), Some(expected));
    let staging = runner::server::staging::ObjectStaging::from_url(&url).expect("staging");
    assert_eq!(
        runner::server::staging::Staging::list(&staging).expect("list"),
        Vec::new(),
        "finalize empties the staging prefix"
    );
}

#[test]
fn with_blobs_in_a_shared_dir_a_stopped_node_leaves_its_upload_to_another() {
    use runner::server::{AuthMode, Server, ServerConfig};
    let h = crate::cache::Harness::sqlite();
    let shared = h.dir.path().join("shared");
    let node = |name: &str| {
        let mut config = ServerConfig::new(
            AuthMode::Secret(super::SECRET.to_vec()),
            h.dir.path().join(name),
        );
        config.blobs_url = Some(format!("file://{}", shared.display()));
        let server =
            Server::new(h.cache.clone(), config, Arc::new(h.clock.clone())).expect("server");
        runner::server::spawn(server, "127.0.0.1:0").expect("spawn")
    };
    let (a, b) = (node("a"), node("b"));
    let now = runner::clock::Clock::now_millis(&h.clock) / 1000;
    let request = TokenRequest {
        repository: REPO.into(),
        git_ref: MAIN.into(),
        default_branch: Some(MAIN.into()),
        ttl_secs: 3600,
        ..TokenRequest::default()
    };
    let token = mint_token(super::SECRET, &request, now);
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let v = version(4);
    let twirp = |base: &str, method: &str, body: Value| {
        crate::support::http(
            "POST",
            &format!("{base}{TWIRP}{method}"),
            &headers,
            Some(body.to_string().as_bytes()),
        )
    };
    let created = twirp(
        &a.url(),
        "CreateCacheEntry",
        json!({"key": "moved", "version": v}),
    );
    assert_eq!(created.status, 200, "{}", created.text());
    let url = created.json()["signed_upload_url"]
        .as_str()
        .expect("url")
        .to_string();
    a.shutdown().expect("node a stops");
    // The same signed URL, sent to node b: the upload is still open there.
    let on_b = url.replacen(
        url.split('/')
            .take(3)
            .collect::<Vec<_>>()
            .join("/")
            .as_str(),
        &b.url(),
        1,
    );
    let data = bytes(70_000, 4);
    let put = super::put_blob(&on_b, &data);
    assert_eq!(put.status, 201, "{}", put.text());
    let done = twirp(
        &b.url(),
        "FinalizeCacheEntryUpload",
        json!({"key": "moved", "version": v, "size_bytes": data.len().to_string()}),
    );
    assert_eq!(done.status, 200, "{}", done.text());
    assert!(
        !h.dir.path().join("a").exists() && !h.dir.path().join("b").exists(),
        "nothing is staged on a node's own disk"
    );
    let empty = std::fs::read_dir(shared.join("staging-v1"))
        .expect("shared staging")
        .count();
    assert_eq!(empty, 0, "finalize empties the shared staging");
}
