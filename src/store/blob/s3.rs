//! Blobs as objects in S3-compatible storage through the `object_store` crate:
//! `<prefix>/blobs-v1/ab/blake3-abcdef…`, like the local layout. The client is async and the library is
//! sync, so the store owns a small private tokio runtime and blocks on it per call; reads pull the
//! response body one chunk per `read`, writes send 8 MiB parts as they fill (at most two in
//! flight), so an archive is never held whole in memory.
//!
//! A blob smaller than one part is a single PUT under its final key (S3 shows an object only once
//! it is complete). A bigger one is a multipart upload to `<prefix>/blobs-v1/tmp/…`, copied to its
//! final key once its digest is known and then removed; an upload that is dropped is aborted, and
//! one whose process died stays invisible (S3 lists no incomplete uploads; a bucket lifecycle rule
//! `AbortIncompleteMultipartUpload` reclaims its parts). Failed requests are retried with backoff
//! on 5xx and timeouts ([`object_store::RetryConfig`]).

use std::future::Future;
use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, MultipartUpload, ObjectStore, PutPayload, RetryConfig,
};
use tokio::task::JoinHandle;

use super::verify::DigestWriter;
use super::{
    BlobError, BlobInfo, BlobStat, BlobStore, BlobWriter, LAYOUT_DIR, ListedBlob, shard_of,
};
use crate::clock::EpochMillis;
use crate::store::owner::{Liveness, Owner};

/// Size of one multipart part (S3 wants at least 5 MiB for all but the last).
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts uploading at once per writer; bounds a writer's memory to about three parts.
const MAX_PARTS_IN_FLIGHT: usize = 2;
/// Every temporary object name starts with this (after `tmp/`).
const TEMP_PREFIX: &str = "blob-";

/// A runtime that may be dropped anywhere, even inside another runtime (the server's).
#[derive(Debug)]
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Runtime {
    fn handle(&self) -> Option<&tokio::runtime::Handle> {
        self.0.as_ref().map(tokio::runtime::Runtime::handle)
    }

    /// Runs `fut` to completion from sync code; inside a multi-threaded runtime (a server
    /// handler) the worker is handed off first instead of panicking.
    fn block_on<F: Future>(&self, fut: F) -> Option<F::Output> {
        let handle = self.handle()?;
        match tokio::runtime::Handle::try_current() {
            Ok(current)
                if current.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread =>
            {
                Some(tokio::task::block_in_place(|| handle.block_on(fut)))
            }
            _ => Some(handle.block_on(fut)),
        }
    }
}

/// How the S3 client waits and retries. Set deliberately: object_store's defaults (30 s for a
/// whole request, 10 retries over up to 3 minutes) would cut an 8 MiB part on a slow link and
/// keep a job waiting on a dead endpoint for minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// One request, from connecting until its body is done: a PUT of one part, or a GET (a GET
    /// cut by it resumes from where it stopped, with a range request, as a retry).
    pub request_timeout: Duration,
    /// Connecting.
    pub connect_timeout: Duration,
    /// Retries of a request answered 5xx or 429, timed out, or cut (connect errors and
    /// idempotent requests only).
    pub max_retries: usize,
    /// First backoff; doubles per retry up to 10 s.
    pub init_backoff: Duration,
    /// No retry starts after this long since the first attempt.
    pub retry_timeout: Duration,
    /// The endpoint, instead of `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
}

impl Default for S3Options {
    /// 120 s per request (an 8 MiB part at 70 KB/s), 10 s to connect, 6 retries from 100 ms
    /// within 180 s.
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            max_retries: 6,
            init_backoff: Duration::from_millis(100),
            retry_timeout: Duration::from_secs(180),
            endpoint: None,
        }
    }
}

/// A client for one `s3://bucket/prefix` and the private runtime it runs on, called from sync
/// code. The blob store and the server's shared staging both talk to the bucket through it.
#[derive(Debug, Clone)]
pub(crate) struct S3Connection {
    /// The bucket's client.
    pub(crate) client: Arc<AmazonS3>,
    rt: Arc<Runtime>,
    /// The URL's prefix, without slashes at either end (maybe empty).
    pub(crate) prefix: String,
    /// The URL, for messages.
    pub(crate) url: String,
}

impl S3Connection {
    /// Connects to `s3://bucket/prefix`, with credentials, region and endpoint from the usual
    /// `AWS_*` variables (`AWS_ENDPOINT_URL` for S3-compatible servers; `http://` endpoints are
    /// allowed), waiting and retrying as `options` say. Nothing is requested yet.
    pub(crate) fn connect(url: &str, options: &S3Options) -> Result<Self, BlobError> {
        let bad = |reason: &str| BlobError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("expected s3://bucket/prefix"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket"));
        }
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(options.request_timeout)
                    .with_connect_timeout(options.connect_timeout),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: options.init_backoff,
                    max_backoff: Duration::from_secs(10),
                    base: 2.0,
                },
                max_retries: options.max_retries,
                retry_timeout: options.retry_timeout,
            });
        if let Some(endpoint) = &options.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let plain_http = builder
            .get_config_value(&AmazonS3ConfigKey::Endpoint)
            .is_some_and(|e| e.starts_with("http://"));
        if plain_http {
            builder = builder.with_allow_http(true);
        }
        let client = builder.build().map_err(remote("connect", url))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("runner-s3")
            .enable_all()
            .build()
            .map_err(|source| BlobError::Io {
                path: "tokio runtime for S3".into(),
                source,
            })?;
        Ok(Self {
            client: Arc::new(client),
            rt: Arc::new(Runtime(Some(rt))),
            prefix: prefix.trim_matches('/').to_string(),
            url: url.to_string(),
        })
    }

    /// `<prefix>/<dir>`, or `dir` alone without a prefix.
    pub(crate) fn root(&self, dir: &str) -> String {
        if self.prefix.is_empty() {
            dir.to_string()
        } else {
            format!("{}/{dir}", self.prefix)
        }
    }

    /// Runs `fut` to completion; `None` once the runtime has shut down.
    pub(crate) fn block_on<F: Future>(&self, fut: F) -> Option<F::Output> {
        self.rt.block_on(fut)
    }

    /// Enters the runtime, for futures that spawn on it while sync code drives them.
    pub(crate) fn enter(&self) -> Option<tokio::runtime::EnterGuard<'_>> {
        self.rt.0.as_ref().map(tokio::runtime::Runtime::enter)
    }

    /// Starts `fut` on the runtime without waiting for it; `None` once it has shut down.
    fn spawn<F>(&self, fut: F) -> Option<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Some(self.rt.handle()?.spawn(fut))
    }

    /// Every object under `prefix`; `None` once the runtime has shut down.
    pub(crate) fn list_under(
        &self,
        prefix: &str,
    ) -> Option<object_store::Result<Vec<object_store::ObjectMeta>>> {
        let path = ObjectPath::from(prefix);
        let client = self.client.clone();
        self.block_on(async move {
            let mut out = Vec::new();
            let mut stream = client.list(Some(&path));
            while let Some(meta) = stream.next().await {
                out.push(meta?);
            }
            Ok(out)
        })
    }
}

/// Content-addressed blobs in an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    conn: S3Connection,
    client: Arc<AmazonS3>,
    /// `<prefix>/blobs-v1` (or `blobs-v1`).
    root: String,
    url: String,
}

fn remote(operation: &'static str, key: &str) -> impl FnOnce(object_store::Error) -> BlobError {
    let key = key.to_string();
    move |source| BlobError::Remote {
        operation,
        key,
        source,
    }
}

fn millis(meta: &object_store::ObjectMeta) -> EpochMillis {
    meta.last_modified.timestamp_millis()
}

impl S3BlobStore {
    /// Connects to `s3://bucket/prefix`, with credentials, region and endpoint from the usual
    /// `AWS_*` variables (`AWS_ENDPOINT_URL` for S3-compatible servers; `http://` endpoints are
    /// allowed). Nothing is requested until the first call.
    pub fn from_url(url: &str) -> Result<Self, BlobError> {
        Self::from_url_with(url, &S3Options::default())
    }

    /// [`S3BlobStore::from_url`] with explicit timeouts, retries and endpoint.
    pub fn from_url_with(url: &str, options: &S3Options) -> Result<Self, BlobError> {
        let conn = S3Connection::connect(url, options)?;
        Ok(Self {
            client: conn.client.clone(),
            root: conn.root(LAYOUT_DIR),
            url: url.to_string(),
            conn,
        })
    }

    /// The object key of a blob: `<prefix>/blobs-v1/ab/abcd…`.
    pub fn key_of(&self, digest: &str) -> Result<String, BlobError> {
        Ok(format!("{}/{}/{digest}", self.root, shard_of(digest)?))
    }

    fn tmp_root(&self) -> String {
        format!("{}/tmp", self.root)
    }

    fn shut_down(&self) -> BlobError {
        BlobError::Io {
            path: self.url.clone().into(),
            source: io::Error::other("the S3 client's runtime has shut down"),
        }
    }

    fn run<F: Future>(&self, fut: F) -> Result<F::Output, BlobError> {
        self.conn.block_on(fut).ok_or_else(|| self.shut_down())
    }

    /// Starts `fut` on the store's runtime without waiting for it.
    fn spawn<F>(&self, fut: F) -> Result<JoinHandle<F::Output>, BlobError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.conn.spawn(fut).ok_or_else(|| self.shut_down())
    }

    fn list_under(&self, prefix: &str) -> Result<Vec<object_store::ObjectMeta>, BlobError> {
        self.conn
            .list_under(prefix)
            .ok_or_else(|| self.shut_down())?
            .map_err(remote("list", prefix))
    }
}

/// A blob being uploaded.
struct S3Writer {
    store: S3BlobStore,
    buf: DigestWriter<Vec<u8>>,
    /// Started once the first part is full.
    upload: Option<(String, Box<dyn MultipartUpload>)>,
    in_flight: Vec<JoinHandle<object_store::Result<()>>>,
}

impl S3Writer {
    fn io_error(err: BlobError) -> io::Error {
        io::Error::other(err)
    }

    /// Sends the buffered bytes as the next part, waiting first if too many are in flight.
    fn send_part(&mut self) -> Result<(), BlobError> {
        let part = std::mem::take(self.buf.get_mut());
        let store = self.store.clone();
        if self.upload.is_none() {
            let token = Owner::current().map(Owner::file_token).unwrap_or_default();
            let key = format!(
                "{}/{TEMP_PREFIX}{token}-{}.partial",
                store.tmp_root(),
                uuid::Uuid::new_v4().simple()
            );
            let path = ObjectPath::from(key.as_str());
            let client = store.client.clone();
            let upload = store
                .run(async move { client.put_multipart(&path).await })?
                .map_err(remote("start upload", &key))?;
            self.upload = Some((key, upload));
        }
        let Some((key, upload)) = self.upload.as_mut() else {
            return Ok(());
        };
        self.in_flight
            .push(store.spawn(upload.put_part(PutPayload::from(part)))?);
        let key = key.clone();
        while self.in_flight.len() > MAX_PARTS_IN_FLIGHT {
            let first = self.in_flight.remove(0);
            Self::join(&store, &key, first)?;
        }
        Ok(())
    }

    fn join(
        store: &S3BlobStore,
        key: &str,
        handle: JoinHandle<object_store::Result<()>>,
    ) -> Result<(), BlobError> {
        match store.run(handle)? {
            Ok(result) => result.map_err(remote("upload part", key)),
            Err(join) => Err(BlobError::Io {
                path: key.into(),
                source: io::Error::other(join),
            }),
        }
    }
}

impl Write for S3Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = PART_SIZE.saturating_sub(self.buf.get_mut().len()).max(1);
        let n = self
            .buf
            .write(buf.get(..room.min(buf.len())).unwrap_or(buf))?;
        if self.buf.get_mut().len() >= PART_SIZE {
            self.send_part().map_err(Self::io_error)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl BlobWriter for S3Writer {
    fn finish(mut self: Box<Self>) -> Result<BlobInfo, BlobError> {
        let store = self.store.clone();
        let buf = std::mem::replace(&mut self.buf, DigestWriter::new(Vec::new()));
        let (digest, size, rest) = buf.finish();
        let dest = store.key_of(&digest)?;
        let client = store.client.clone();
        let Some((tmp, mut upload)) = self.upload.take() else {
            // One part or less: a single PUT, visible only once complete.
            let path = ObjectPath::from(dest.as_str());
            store
                .run(async move { client.put(&path, PutPayload::from(rest)).await })?
                .map_err(remote("put", &dest))?;
            return Ok(BlobInfo { digest, size });
        };
        let result = (|| {
            if !rest.is_empty() {
                self.in_flight
                    .push(store.spawn(upload.put_part(PutPayload::from(rest)))?);
            }
            for handle in std::mem::take(&mut self.in_flight) {
                Self::join(&store, &tmp, handle)?;
            }
            store
                .run(upload.complete())?
                .map_err(remote("complete upload", &tmp))?;
            let (from, to) = (
                ObjectPath::from(tmp.as_str()),
                ObjectPath::from(dest.as_str()),
            );
            store
                .run(client.copy(&from, &to))?
                .map_err(remote("copy", &dest))?;
            store
                .run(client.delete(&from))?
                .map_err(remote("delete", &tmp))?;
            Ok(())
        })();
        if result.is_err() {
            // Nothing half-written stays behind: the parts, or the completed temporary object.
            let from = ObjectPath::from(tmp.as_str());
            let _ = store.run(async move {
                let _ = upload.abort().await;
                let _ = client.delete(&from).await;
            });
        }
        result.map(|()| BlobInfo { digest, size })
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if let Some((_, mut upload)) = self.upload.take() {
            for handle in self.in_flight.drain(..) {
                handle.abort();
            }
            // Not waited for: a drop must not block, and an upload never completed is invisible.
            let _ = self.store.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}

/// A blob's bytes, pulled from the response body chunk by chunk.
struct S3Reader {
    store: S3BlobStore,
    key: String,
    body: BoxStream<'static, object_store::Result<bytes::Bytes>>,
    chunk: bytes::Bytes,
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            if buf.is_empty() {
                return Ok(0);
            }
            let next = self.store.run(self.body.next()).map_err(io::Error::other)?;
            match next {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                Some(Err(err)) => return Err(io::Error::other(remote("get", &self.key)(err))),
            }
        }
        let n = buf.len().min(self.chunk.len());
        let part = self.chunk.split_to(n);
        if let Some(dest) = buf.get_mut(..n) {
            dest.copy_from_slice(&part);
        }
        Ok(n)
    }
}

impl BlobStore for S3BlobStore {
    fn writer(&self) -> Result<Box<dyn BlobWriter>, BlobError> {
        Ok(Box::new(S3Writer {
            store: self.clone(),
            buf: DigestWriter::new(Vec::new()),
            upload: None,
            in_flight: Vec::new(),
        }))
    }

    fn open(&self, digest: &str) -> Result<Box<dyn Read + Send>, BlobError> {
        let key = self.key_of(digest)?;
        let path = ObjectPath::from(key.as_str());
        let client = self.client.clone();
        match self.run(async move { client.get(&path).await })? {
            Ok(result) => Ok(Box::new(S3Reader {
                store: self.clone(),
                key,
                body: result.into_stream(),
                chunk: bytes::Bytes::new(),
            })),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound {
                digest: digest.to_string(),
            }),
            Err(err) => Err(remote("get", &key)(err)),
        }
    }

    fn open_range(
        &self,
        digest: &str,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, BlobError> {
        let key = self.key_of(digest)?;
        if len == 0 {
            return Ok(Box::new(io::empty()));
        }
        let path = ObjectPath::from(key.as_str());
        let client = self.client.clone();
        let options = object_store::GetOptions {
            range: Some(object_store::GetRange::Bounded(
                start..start.saturating_add(len),
            )),
            ..Default::default()
        };
        match self.run(async move { client.get_opts(&path, options).await })? {
            Ok(result) => Ok(Box::new(S3Reader {
                store: self.clone(),
                key,
                body: result.into_stream(),
                chunk: bytes::Bytes::new(),
            })),
            Err(object_store::Error::NotFound { .. }) => Err(BlobError::NotFound {
                digest: digest.to_string(),
            }),
            Err(err) => Err(remote("get", &key)(err)),
        }
    }

    fn stat(&self, digest: &str) -> Result<Option<BlobStat>, BlobError> {
        let key = self.key_of(digest)?;
        let path = ObjectPath::from(key.as_str());
        let client = self.client.clone();
        match self.run(async move { client.head(&path).await })? {
            Ok(meta) => Ok(Some(BlobStat {
                size: meta.size,
                modified_at: Some(millis(&meta)),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(remote("head", &key)(err)),
        }
    }

    fn delete(&self, digest: &str) -> Result<(), BlobError> {
        let key = self.key_of(digest)?;
        let path = ObjectPath::from(key.as_str());
        let client = self.client.clone();
        match self.run(async move { client.delete(&path).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(remote("delete", &key)(err)),
        }
    }

    fn list(&self) -> Result<Vec<ListedBlob>, BlobError> {
        let depth = ObjectPath::from(self.root.as_str()).parts().count();
        let mut out: Vec<ListedBlob> = self
            .list_under(&self.root)?
            .into_iter()
            .filter_map(|meta| {
                let parts: Vec<_> = meta.location.parts().collect();
                let [shard, name] = parts.get(depth..)? else {
                    return None;
                };
                let (shard, name) = (shard.as_ref(), name.as_ref());
                (shard_of(name).ok() == Some(shard)).then(|| ListedBlob {
                    digest: name.to_string(),
                    size: meta.size,
                    modified_at: Some(millis(&meta)),
                })
            })
            .collect();
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Removes temporary objects left by writers that died between completing an upload and
    /// removing it: at once when their owner is known dead, else once older than `older_than`.
    fn remove_stale_temp(&self, older_than: EpochMillis) -> Result<usize, BlobError> {
        let mut removed = 0;
        for meta in self.list_under(&self.tmp_root())? {
            let owner = meta
                .location
                .filename()
                .and_then(|name| Owner::from_file_name(name, TEMP_PREFIX))
                .map(|owner| owner.liveness());
            let cutoff = match owner {
                Some(Liveness::Alive) => continue,
                Some(Liveness::Dead) => EpochMillis::MAX,
                Some(Liveness::Unknown) | None => older_than,
            };
            if millis(&meta) < cutoff {
                let client = self.client.clone();
                let path = meta.location.clone();
                match self.run(async move { client.delete(&path).await })? {
                    Ok(()) => removed += 1,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(err) => return Err(remote("delete", meta.location.as_ref())(err)),
                }
            }
        }
        Ok(removed)
    }

    /// Every write is complete when `finish` returns.
    fn flush(&self) -> Result<(), BlobError> {
        Ok(())
    }

    fn presigned_get(
        &self,
        digest: &str,
        expires_in: Duration,
    ) -> Result<Option<String>, BlobError> {
        use object_store::signer::Signer;
        let key = self.key_of(digest)?;
        let path = ObjectPath::from(key.as_str());
        let client = self.client.clone();
        let url = self
            .run(async move {
                client
                    .signed_url(http::Method::GET, &path, expires_in)
                    .await
            })?
            .map_err(remote("presign", &key))?;
        Ok(Some(url.to_string()))
    }

    fn tier_stats(&self) -> Option<super::TierStats> {
        None
    }

    fn adopt_file(&self, _path: &std::path::Path) -> Result<Option<BlobInfo>, BlobError> {
        // The bytes must travel to the bucket anyway; the caller streams them there.
        Ok(None)
    }
}
