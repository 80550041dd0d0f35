//! The cache steps over HTTP: GitHub's cache protocols as `@actions/cache` speaks them, against
//! `runner serve` or GitHub's hosted cache. v2 is Twirp (`CreateCacheEntry`,
//! `FinalizeCacheEntryUpload`, `GetCacheEntryDownloadURL`) plus Azure-blob-style signed URLs;
//! v1 is the `_apis/artifactcache` REST API. Keys, versions, paths, messages and outputs are the
//! local cache's ([`super::transfer`] does the file side for both), so a job behaves the same
//! whichever backend it has; a server that is down or stalls is a miss or an unsaved cache with
//! a warning, never a failed job.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use super::{
    CacheError, CacheOptions, Log, RestoreOutcome, RestoreRequest, SaveOutcome, SaveRequest,
    cache_version, check_roots, is_exact_match, size_line, transfer,
};
use crate::exec::LogLevel;
use crate::store::blob::{
    BlobError, BlobStore, FillingReader, LocalBlobStore, LocalTier, TierLimits, TierStats,
    Verified, VerifyingReader, is_valid_digest, trim_local,
};

/// The v2 Twirp service path.
const TWIRP: &str = "twirp/github.actions.results.api.v1.CacheService/";
/// Archives up to this size go up in one Put Blob, as the toolkit does; larger ones in blocks.
const SINGLE_PUT_MAX: u64 = 128 * 1024 * 1024;
/// Block (v2) and chunk (v1) size.
const PART_SIZE: u64 = 32 * 1024 * 1024;

/// Which of GitHub's cache protocols a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Twirp `CacheService` + Azure-style blob URLs (`ACTIONS_RESULTS_URL`).
    V2,
    /// The `_apis/artifactcache` REST API (`ACTIONS_CACHE_URL`).
    V1,
}

/// Where a remote cache is and how to authenticate to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// Base URL, e.g. `http://127.0.0.1:8080/` (a trailing `/` is added when missing).
    pub url: String,
    /// The bearer token (`ACTIONS_RUNTIME_TOKEN`, or one `runner token` printed).
    pub token: String,
    /// The protocol to speak.
    pub protocol: Protocol,
}

/// Errors talking to a cache server. URLs are shown without their query (signed URLs carry
/// their signature there).
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The request did not complete (refused, timed out, cut).
    #[error("cache server request {method} {url} failed")]
    Http {
        /// The method.
        method: &'static str,
        /// The URL, query removed.
        url: String,
        /// What went wrong.
        #[source]
        source: ureq::Error,
    },
    /// The server answered with an error status.
    #[error("cache server answered {status} to {method} {url}: {message}")]
    Status {
        /// The method.
        method: &'static str,
        /// The URL, query removed.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's message (its JSON `msg`/`message`, or the body's start).
        message: String,
    },
    /// The server answered something this client does not understand.
    #[error("cache server {url}: unexpected answer: {reason}")]
    Protocol {
        /// The URL, query removed.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// The local temporary archive failed.
    #[error("temporary archive: {source}")]
    Temp {
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A local tier of downloaded archives in front of a cache server, keyed by the sha256 the
/// server names for a download (the `ETag` of `runner serve`'s blob URLs). GitHub's cache names
/// no digest (its `ETag` is an Azure version tag, and neither protocol's lookup answer carries
/// one), so its downloads are not tiered: an entry id or key + version alone cannot prove two
/// downloads are the same bytes.
#[derive(Debug, Clone)]
pub struct RemoteTier {
    local: LocalBlobStore,
    limits: TierLimits,
    dir: PathBuf,
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl RemoteTier {
    /// A tier in `dir` (its `blobs-v1/`), bounded by `limits`.
    pub fn open(dir: &Path, limits: TierLimits) -> Result<Self, BlobError> {
        Ok(Self {
            local: LocalBlobStore::new(dir)?,
            limits,
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            hits: Arc::default(),
            misses: Arc::default(),
        })
    }

    /// Restores the tier served (`local_hits`) and downloads it had no copy of
    /// (`local_misses`); the other counters stay zero.
    pub fn stats(&self) -> TierStats {
        TierStats {
            local_hits: self.hits.load(Ordering::Relaxed),
            local_misses: self.misses.load(Ordering::Relaxed),
            ..TierStats::default()
        }
    }

    /// The tier's store.
    pub fn local(&self) -> &LocalBlobStore {
        &self.local
    }

    fn trim(&self) {
        let now = crate::clock::Clock::now_millis(&crate::clock::SystemClock);
        let _ = trim_local(&self.local, &self.limits, now, &[]);
    }
}

/// The cache steps against a cache server.
#[derive(Debug)]
pub struct RemoteCache {
    config: RemoteConfig,
    agent: ureq::Agent,
    options: CacheOptions,
    tier: Option<RemoteTier>,
}

fn without_query(url: &str) -> String {
    url.split_once('?')
        .map_or(url, |(base, _)| base)
        .to_string()
}

/// `url` with `param` added to its query.
fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// The message of an error body: Twirp's `msg`, v1's `message`, else the body's start.
fn error_message(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => v
            .get("msg")
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .map_or_else(|| body.chars().take(200).collect(), str::to_string),
        Err(_) => body.chars().take(200).collect(),
    }
}

impl RemoteCache {
    /// A client for `config`: connect timeout 5 s, and no progress for 30 s (a read or write
    /// that waits longer) fails the request.
    pub fn new(mut config: RemoteConfig, options: CacheOptions) -> Self {
        if !config.url.ends_with('/') {
            config.url.push('/');
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            .timeout_per_read(Some(Duration::from_secs(30)))
            .timeout_per_write(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Self {
            config,
            agent,
            options,
            tier: None,
        }
    }

    /// Keeps downloaded archives in `tier` and restores from it when the server names the
    /// same digest again.
    pub fn with_tier(mut self, tier: RemoteTier) -> Self {
        self.tier = Some(tier);
        self
    }

    /// The local tier, if any.
    pub fn tier(&self) -> Option<&RemoteTier> {
        self.tier.as_ref()
    }

    /// The sha256 the server names for the bytes at `url` (a `HEAD`'s `ETag`), if it names one.
    fn blob_digest(&self, url: &str) -> Option<String> {
        let response = self.agent.head(url).call().ok()?;
        if !response.status().is_success() {
            return None;
        }
        let tag = response.headers().get("etag")?.to_str().ok()?;
        let tag = tag.trim_start_matches("W/").trim_matches('"');
        is_valid_digest(tag).then(|| tag.to_string())
    }

    /// The server this client talks to.
    pub fn config(&self) -> &RemoteConfig {
        &self.config
    }

    fn http_err(method: &'static str, url: &str) -> impl FnOnce(ureq::Error) -> CacheError {
        let url = without_query(url);
        move |source| {
            RemoteError::Http {
                method,
                url,
                source,
            }
            .into()
        }
    }

    /// Fails on a non-2xx answer, with the server's message.
    fn check(
        method: &'static str,
        url: &str,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<ureq::http::Response<ureq::Body>, CacheError> {
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Err(RemoteError::Status {
            method,
            url: without_query(url),
            status,
            message: error_message(&body),
        }
        .into())
    }

    fn json_body(
        url: &str,
        mut response: ureq::http::Response<ureq::Body>,
    ) -> Result<Value, CacheError> {
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(Self::http_err("POST", url))?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| {
            RemoteError::Protocol {
                url: without_query(url),
                reason: format!("not JSON: {e}"),
            }
            .into()
        })
    }

    /// A Twirp call: `Ok(Err(status, message))` for the error statuses the caller handles.
    fn twirp(&self, method: &str, body: &Value) -> Result<Result<Value, u16>, CacheError> {
        let url = format!("{}{TWIRP}{method}", self.config.url);
        let response = self.post_json(&url, body)?;
        if response.status().as_u16() == 409 {
            return Ok(Err(409));
        }
        let response = Self::check("POST", &url, response)?;
        Ok(Ok(Self::json_body(&url, response)?))
    }

    /// `POST`s `body` as JSON to `url` with the job's token; any status comes back.
    fn post_json(
        &self,
        url: &str,
        body: &Value,
    ) -> Result<ureq::http::Response<ureq::Body>, CacheError> {
        self.agent
            .post(url)
            .header("Authorization", &format!("Bearer {}", self.config.token))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(Self::http_err("POST", url))
    }

    fn str_field<'v>(value: &'v Value, names: &[&str]) -> Option<&'v str> {
        names
            .iter()
            .find_map(|n| value.get(*n).and_then(Value::as_str))
            .filter(|s| !s.is_empty())
    }

    /// After a restore failed for the entry's own reason: asks a `runner serve` (one that names
    /// its blobs' digests, so not GitHub's service) to check the entry and, if its blob is
    /// damaged, mark it broken, so the post-job save can replace it. Best effort: any failure
    /// is a debug line.
    fn report_broken(&self, key: &str, version: &str, download_url: &str, log: Log<'_>) {
        if self.blob_digest(download_url).is_none() {
            return;
        }
        let url = format!("{}_runner/v1/report-broken", self.config.url);
        let body = json!({"key": key, "version": version});
        let answer = self
            .post_json(&url, &body)
            .and_then(|response| Self::check("POST", &url, response))
            .and_then(|response| Self::json_body(&url, response));
        match answer {
            Ok(answer) if answer.get("broken").and_then(Value::as_bool) == Some(true) => log(
                LogLevel::Info,
                &format!(
                    "Cache entry {key} cannot be restored; the server marked it broken and the next save of this key replaces it"
                ),
            ),
            Ok(_) => {}
            Err(err) => log(
                LogLevel::Debug,
                &format!(
                    "reporting cache entry {key} as broken: {}",
                    crate::error::chain(&err)
                ),
            ),
        }
    }

    /// Finds the entry: `(matched key, download URL)`.
    fn lookup(
        &self,
        keys: &[String],
        version: &str,
    ) -> Result<Option<(String, String)>, CacheError> {
        match self.config.protocol {
            Protocol::V2 => {
                let body = json!({
                    "key": keys[0],
                    "restore_keys": keys[1..],
                    "version": version,
                });
                let Ok(answer) = self.twirp("GetCacheEntryDownloadURL", &body)? else {
                    return Ok(None);
                };
                if answer.get("ok").and_then(Value::as_bool) != Some(true) {
                    return Ok(None);
                }
                let url = Self::str_field(&answer, &["signed_download_url", "signedDownloadUrl"]);
                let matched = Self::str_field(&answer, &["matched_key", "matchedKey"]);
                Ok(url
                    .zip(matched)
                    .map(|(u, m)| (m.to_string(), u.to_string())))
            }
            Protocol::V1 => {
                let url = format!("{}_apis/artifactcache/cache", self.config.url);
                let response = self
                    .agent
                    .get(&url)
                    .query("keys", keys.join(","))
                    .query("version", version)
                    .header("Authorization", &format!("Bearer {}", self.config.token))
                    .header("Accept", "application/json;api-version=6.0-preview.1")
                    .call()
                    .map_err(Self::http_err("GET", &url))?;
                if response.status().as_u16() == 204 {
                    return Ok(None);
                }
                let response = Self::check("GET", &url, response)?;
                let answer = Self::json_body(&url, response)?;
                let location = Self::str_field(&answer, &["archiveLocation"]);
                let matched = Self::str_field(&answer, &["cacheKey"]);
                Ok(location
                    .zip(matched)
                    .map(|(u, m)| (m.to_string(), u.to_string())))
            }
        }
    }

    /// The same steps as [`super::Cache::restore`]: validation errors fail the step; anything
    /// else is logged as `Failed to restore: ...` and is a miss.
    pub fn restore(
        &self,
        request: &RestoreRequest,
        log: Log<'_>,
    ) -> Result<RestoreOutcome, CacheError> {
        transfer::validate_restore(request)?;
        match self.try_restore(request, log) {
            Ok(outcome) => Ok(outcome),
            Err(err) => {
                transfer::log_restore_failure(err, log);
                Ok(RestoreOutcome::Miss)
            }
        }
    }

    fn try_restore(
        &self,
        request: &RestoreRequest,
        log: Log<'_>,
    ) -> Result<RestoreOutcome, CacheError> {
        let (keys, version) = transfer::lookup_keys(request, self.options.compression);
        let found = self.lookup(&keys, &version)?;
        let matched = found.as_ref().map(|(key, _)| key.as_str());
        transfer::log_lookup(request, &keys, &version, matched, log);
        let Some((matched_key, url)) = found else {
            return Ok(RestoreOutcome::Miss);
        };
        let exact = is_exact_match(&request.primary_key, Some(&matched_key));
        if request.lookup_only {
            log(LogLevel::Info, "Lookup only - skipping download");
            return Ok(RestoreOutcome::Hit {
                matched_key,
                exact,
                size: 0,
            });
        }
        let location = request.location.absolute()?;
        check_roots(&request.paths, &location)?;
        let tiered = self
            .tier
            .as_ref()
            .and_then(|tier| Some((tier, self.blob_digest(&url)?)));
        let exclude: Vec<PathBuf> = self.tier.iter().map(|t| t.dir.clone()).collect();
        let local = tiered.as_ref().and_then(|(tier, digest)| {
            let reader = Verified::new(tier.local.clone()).open(digest).ok()?;
            let stat = tier.local.stat(digest).ok()??;
            Some((reader, stat.size))
        });
        if let Some((tier, _)) = &tiered {
            let counter = if local.is_some() {
                &tier.hits
            } else {
                &tier.misses
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let from_tier = local.is_some();
        let (reader, size): (Box<dyn Read + Send>, Option<u64>) = match local {
            Some((reader, size)) => {
                log(LogLevel::Debug, "Restoring from the local tier");
                (reader, Some(size))
            }
            None => {
                let response = self
                    .agent
                    .get(&url)
                    .call()
                    .map_err(Self::http_err("GET", &url))?;
                let response = Self::check("GET", &url, response)?;
                let size = response
                    .headers()
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let reader = response.into_body().into_reader();
                let reader: Box<dyn Read + Send> = match &tiered {
                    // Checked as it streams, and copied into the tier (kept only if whole and
                    // intact).
                    Some((tier, digest)) => {
                        let trimmed = (*tier).clone();
                        let filling = FillingReader::new(
                            reader,
                            Box::new(tier.local.clone()),
                            digest,
                            Some(Box::new(move || trimmed.trim())),
                        );
                        Box::new(VerifyingReader::new(filling, digest.clone()))
                    }
                    None => Box::new(reader),
                };
                (reader, size)
            }
        };
        log(LogLevel::Info, &size_line(size.unwrap_or(0)));
        let extracted = transfer::extract_archive(
            reader,
            size,
            &request.paths,
            &location,
            None,
            exclude,
            &self.options,
            &request.progress,
            log,
        );
        if from_tier && let Some((tier, digest)) = &tiered {
            // A damaged copy goes (the next restore downloads again); a good one was just used.
            let _ = match extracted {
                Err(_) => tier.local.delete(digest),
                Ok(()) => tier.local.touch(digest),
            };
        }
        if let Err(err) = extracted {
            if err.is_entry_fault() {
                self.report_broken(&matched_key, &version, &url, log);
            }
            return Err(err);
        }
        log(LogLevel::Info, "Cache restored successfully");
        Ok(RestoreOutcome::Hit {
            matched_key,
            exact,
            size: size.unwrap_or(0),
        })
    }

    /// The same steps as [`super::Cache::save`]: `Ok(AlreadyExists)` when the entry exists (with
    /// the toolkit's line); every `Err` is a warning for the caller to show.
    pub fn save(&self, request: &SaveRequest, log: Log<'_>) -> Result<SaveOutcome, CacheError> {
        transfer::validate_save(request)?;
        let busy = self.options.cancel.enter();
        let result = match self.try_save(request, log) {
            Err(err) if err.is_cancelled() => Err(CacheError::Cancelled),
            other => other,
        };
        drop(busy);
        result
    }

    fn try_save(&self, request: &SaveRequest, log: Log<'_>) -> Result<SaveOutcome, CacheError> {
        // Never archive the local tier, even when a declared path contains it.
        let exclude = self.tier.iter().map(|t| t.dir.clone()).collect();
        let plan = transfer::plan_save(request, exclude, log)?;
        // Archived first, as the toolkit does: the size is needed to reserve (v1), to choose
        // one Put Blob or blocks, and to finalize.
        let mut file = tempfile::tempfile().map_err(|source| RemoteError::Temp { source })?;
        let compression = self.options.compression;
        let stats = transfer::write_archive(&plan, compression, &self.options, None, &mut file)?;
        let compression = stats.compression.unwrap_or(compression);
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|source| RemoteError::Temp { source })?;
        let version = cache_version(
            &request.paths,
            compression,
            request.location.windows,
            request.enable_cross_os_archive,
        );
        let reserved = match self.config.protocol {
            Protocol::V2 => self.save_v2(&request.key, &version, &mut file, size)?,
            Protocol::V1 => self.save_v1(&request.key, &version, &mut file, size)?,
        };
        if !reserved {
            log(
                LogLevel::Info,
                &format!(
                    "Failed to save: Unable to reserve cache with key {}, another job may be creating this cache.",
                    request.key
                ),
            );
            return Ok(SaveOutcome::AlreadyExists);
        }
        log(LogLevel::Info, &size_line(size));
        Ok(SaveOutcome::Uploaded { size })
    }

    /// `Ok(false)` when the entry exists or is being created.
    fn save_v2(
        &self,
        key: &str,
        version: &str,
        file: &mut std::fs::File,
        size: u64,
    ) -> Result<bool, CacheError> {
        let body = json!({"key": key, "version": version});
        let Ok(answer) = self.twirp("CreateCacheEntry", &body)? else {
            return Ok(false);
        };
        if answer.get("ok").and_then(Value::as_bool) != Some(true) {
            return Ok(false);
        }
        let url = Self::str_field(&answer, &["signed_upload_url", "signedUploadUrl"])
            .ok_or_else(|| RemoteError::Protocol {
                url: self.config.url.clone(),
                reason: "CreateCacheEntry answered no signed_upload_url".into(),
            })?
            .to_string();
        if size <= SINGLE_PUT_MAX {
            let headers = [("x-ms-blob-type", "BlockBlob".to_string())];
            self.send_part("PUT", &url, &headers, file, 0, size)?;
        } else {
            let mut ids = Vec::new();
            let mut offset = 0;
            while offset < size {
                let len = PART_SIZE.min(size - offset);
                // Fixed-width ids, as Azure requires every id of a blob to have one length.
                let id = base64::engine::general_purpose::STANDARD
                    .encode(format!("block-{:012}", ids.len()));
                let block_url = with_param(
                    &with_param(&url, "comp=block"),
                    &format!(
                        "blockid={}",
                        id.replace('+', "%2B")
                            .replace('/', "%2F")
                            .replace('=', "%3D")
                    ),
                );
                self.send_part("PUT", &block_url, &[], file, offset, len)?;
                ids.push(id);
                offset += len;
            }
            let mut xml = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
            for id in &ids {
                xml.push_str(&format!("<Latest>{id}</Latest>"));
            }
            xml.push_str("</BlockList>");
            let list_url = with_param(&url, "comp=blocklist");
            let response = self
                .agent
                .put(&list_url)
                .header("Content-Type", "application/xml")
                .send(xml)
                .map_err(Self::http_err("PUT", &list_url))?;
            Self::check("PUT", &list_url, response)?;
        }
        let body = json!({"key": key, "version": version, "size_bytes": size.to_string()});
        let Ok(answer) = self.twirp("FinalizeCacheEntryUpload", &body)? else {
            return Ok(false);
        };
        if answer.get("ok").and_then(Value::as_bool) != Some(true) {
            return Err(RemoteError::Protocol {
                url: self.config.url.clone(),
                reason: format!("FinalizeCacheEntryUpload answered {answer}"),
            }
            .into());
        }
        Ok(true)
    }

    /// `Ok(false)` when the entry exists or is being created.
    fn save_v1(
        &self,
        key: &str,
        version: &str,
        file: &mut std::fs::File,
        size: u64,
    ) -> Result<bool, CacheError> {
        let base = format!("{}_apis/artifactcache/caches", self.config.url);
        let auth = format!("Bearer {}", self.config.token);
        let accept = "application/json;api-version=6.0-preview.1";
        let body = json!({"key": key, "version": version, "cacheSize": size});
        let response = self
            .agent
            .post(&base)
            .header("Authorization", &auth)
            .header("Accept", accept)
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .map_err(Self::http_err("POST", &base))?;
        if response.status().as_u16() == 409 {
            return Ok(false);
        }
        let response = Self::check("POST", &base, response)?;
        let answer = Self::json_body(&base, response)?;
        let id = answer
            .get("cacheId")
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .ok_or_else(|| RemoteError::Protocol {
                url: base.clone(),
                reason: format!("reserve answered no cacheId: {answer}"),
            })?;
        let url = format!("{base}/{id}");
        let mut offset = 0;
        while offset < size {
            let len = PART_SIZE.min(size - offset);
            let headers = [
                ("Authorization", auth.clone()),
                ("Accept", accept.to_string()),
                ("Content-Type", "application/octet-stream".to_string()),
                (
                    "Content-Range",
                    format!("bytes {}-{}/*", offset, offset + len - 1),
                ),
            ];
            self.send_part("PATCH", &url, &headers, file, offset, len)?;
            offset += len;
        }
        let response = self
            .agent
            .post(&url)
            .header("Authorization", &auth)
            .header("Accept", accept)
            .header("Content-Type", "application/json")
            .send(json!({"size": size}).to_string())
            .map_err(Self::http_err("POST", &url))?;
        Self::check("POST", &url, response)?;
        Ok(true)
    }

    /// Sends `len` bytes of the archive from `offset` as the body of a `PUT` or `PATCH`.
    fn send_part(
        &self,
        method: &'static str,
        url: &str,
        headers: &[(&str, String)],
        file: &std::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<(), CacheError> {
        let mut request = match method {
            "PATCH" => self.agent.patch(url),
            _ => self.agent.put(url),
        };
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let part = self.part(file, offset, len)?;
        let response = request
            .header("Content-Length", &len.to_string())
            .send(ureq::SendBody::from_owned_reader(part))
            .map_err(Self::http_err(method, url))?;
        Self::check(method, url, response)?;
        Ok(())
    }

    /// `len` bytes of the archive from `offset`, as a reader that stops when cancelled.
    fn part(
        &self,
        file: &std::fs::File,
        offset: u64,
        len: u64,
    ) -> Result<impl Read + Send + 'static, CacheError> {
        let mut file = file
            .try_clone()
            .map_err(|source| RemoteError::Temp { source })?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|source| RemoteError::Temp { source })?;
        Ok(Cancellable {
            inner: file.take(len),
            cancel: self.options.cancel.clone(),
        })
    }
}

/// A reader that fails once its cancel token is cancelled.
struct Cancellable<R> {
    inner: R,
    cancel: crate::cancel::Cancel,
}

impl<R: Read> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.cancel.check_io()?;
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_join_any_url() {
        assert_eq!(
            with_param("http://h/b/x", "comp=block"),
            "http://h/b/x?comp=block"
        );
        assert_eq!(
            with_param("http://h/b/x?sig=1", "comp=block"),
            "http://h/b/x?sig=1&comp=block"
        );
        assert_eq!(without_query("http://h/b/x?sig=secret"), "http://h/b/x");
    }

    #[test]
    fn error_messages_come_from_either_protocol() {
        assert_eq!(error_message(r#"{"code":"not_found","msg":"no"}"#), "no");
        assert_eq!(error_message(r#"{"message":"v1 says"}"#), "v1 says");
        assert_eq!(error_message("plain"), "plain");
    }
}
