//! What v1 and v2 share: authentication, input rules, reserving an upload, receiving its
//! parts into staging (a Put Blob's body straight into the blob store), and finalizing it
//! through the cache (parts assembled in order, hashed as they stream into the blob store,
//! committed last).

use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};

use super::assembly::Assemblies;
use super::auth::{self, Principal, Purpose, ScopeGrant};
use super::body::stream_into;
use super::error::ApiError;
use super::staging::{self, Part, StagingError, UploadMeta};
use super::{AuthMode, Inner};
use crate::cache::{self, CacheError, Scope};
use crate::exec::LogLevel;
use crate::store::StoreError;
use crate::store::blob::{BlobError, BlobInfo, BlobWriter};
use crate::store::index::{Entry, EntryState, IndexError, key_lower};
use crate::store::owner::{self, Owner};

/// Runs store work on the blocking pool.
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|err| ApiError::internal(&err))?
}

/// Reads a JSON request body of at most `MAX_JSON_BODY` bytes. A larger one is read on (and
/// dropped) up to a bound, so the client is done sending and sees the 413 rather than a reset.
pub async fn json_body(body: Body) -> Result<axum::body::Bytes, ApiError> {
    use futures_util::StreamExt as _;
    const DRAIN_LIMIT: usize = 64 * 1024 * 1024;
    let limit = super::MAX_JSON_BODY;
    let mut stream = body.into_data_stream();
    let mut kept: Vec<u8> = Vec::new();
    let mut seen: usize = 0;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|err| ApiError::invalid(format!("the request body broke off: {err}")))?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            kept.extend_from_slice(&chunk);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::too_large(format!(
            "the request body is over the {limit}-byte limit for JSON"
        )));
    }
    Ok(kept.into())
}

/// An extractor's rejection (bad percent-encoding, a bad query) as a 400 in our shape.
pub fn rejected(rejection: impl axum::response::IntoResponse + std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("bad request URL: {rejection}"))
}

/// The cache's log lines go to the request log at debug level.
pub fn cache_log(level: LogLevel, message: &str) {
    match level {
        LogLevel::Warning | LogLevel::Error => tracing::warn!(target: "runner::cache", "{message}"),
        _ => tracing::debug!(target: "runner::cache", "{message}"),
    }
}

fn now_secs(inner: &Inner) -> i64 {
    inner.clock.now_millis().div_euclid(1000)
}

/// The job behind `Authorization: Bearer <token>`.
pub fn authenticate(inner: &Inner, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = auth::bearer(headers);
    let now = now_secs(inner);
    let result = match (&inner.config.auth, token) {
        (AuthMode::Secret(secret), Some(token)) => auth::verify_token(secret, token, now),
        (AuthMode::Secret(_), None) => Err(auth::AuthError::Missing),
        (AuthMode::Insecure, Some(token)) => auth::read_token_unverified(token, now),
        (AuthMode::Insecure, None) => Ok(Principal {
            repository: AuthMode::INSECURE_REPOSITORY.to_string(),
            grants: vec![ScopeGrant {
                scope: "refs/heads/main".to_string(),
                permission: auth::PERMISSION_READ | auth::PERMISSION_WRITE,
            }],
        }),
    };
    result.map_err(|err| ApiError::unauthenticated(err.to_string()))
}

/// A key the toolkit would accept: not empty, at most 512 characters, no comma.
pub fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::invalid("key must not be empty"));
    }
    cache::validate_key(key).map_err(|err| ApiError::invalid(err.to_string()))
}

/// A version as the toolkit computes it: 64 hex characters.
pub fn check_version(version: &str) -> Result<(), ApiError> {
    if version.len() == 64 && version.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "version {version:?} is not 64 hex characters"
        )))
    }
}

/// The scope a save of this job writes to, or 403.
pub fn write_scope(principal: &Principal) -> Result<Scope, ApiError> {
    principal.write_scope().ok_or_else(|| {
        ApiError::forbidden("the token grants no write scope (Permission >= 2); nothing saved")
    })
}

/// The upload id v2 uses: derived from the entry's identity, because Finalize names the entry
/// by key and version only.
pub fn v2_upload_id(scope: &Scope, key: &str, version: &str) -> String {
    let mut hash = Sha256::new();
    for part in [
        scope.repository.as_str(),
        scope.git_ref.as_str(),
        &key_lower(key),
        version,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!("v2-{}", &hex::encode(hash.finalize())[..40])
}

/// A fresh v1 cache id: numeric (clients parse it as a number), below 2^53 so JavaScript
/// keeps it exact.
pub fn v1_cache_id() -> u64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    (u64::from_be_bytes(first) & ((1 << 53) - 1)).max(1)
}

/// The numeric id a client is told for a committed entry (informational; from its UUIDv7).
pub fn entry_number(entry_id: &str) -> u64 {
    let hex: String = entry_id.chars().filter(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(hex.get(..16).unwrap_or("0"), 16).unwrap_or(0) & ((1 << 53) - 1)
}

/// Reserves `key`/`version` in the job's write scope and stages an upload for it under
/// `upload_id`. 409 when the entry exists or another job is creating it.
pub fn create(
    inner: &Inner,
    scope: &Scope,
    key: &str,
    version: &str,
    declared_size: Option<u64>,
    upload_id: String,
) -> Result<UploadMeta, ApiError> {
    if let Some(size) = declared_size
        && size > inner.config.max_entry_size
    {
        return Err(ApiError::invalid(format!(
            "Cache size of ~{} MB ({size} B) is over the {}-byte limit, not saving cache.",
            size.div_ceil(1024 * 1024),
            inner.config.max_entry_size
        )));
    }
    let started_at = inner.cache.now_millis();
    let reservation = inner
        .with_index(|| {
            inner
                .cache
                .reserve_entry(scope, key, version, None, &mut cache_log)
        })
        .map_err(|err| ApiError::internal(&err))?
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "Unable to reserve cache with key {key}, another job may be creating this cache. Scope: {}, Version: {version}",
                scope.git_ref
            ))
        })?;
    let meta = UploadMeta {
        id: upload_id,
        reservation,
        repository: scope.repository.clone(),
        scope: scope.git_ref.clone(),
        key: key.to_string(),
        version: version.to_string(),
        declared_size,
        started_at,
        expires_at: inner
            .clock
            .now_millis()
            .saturating_add(inner.config.url_ttl_secs.saturating_mul(1000)),
        owner_pid: std::process::id(),
        owner: Owner::current().map(Owner::to_text),
    };
    if let Err(err) = inner.staging.create(&meta) {
        let _ = inner.cache.abort_entry(&meta.reservation);
        return Err(ApiError::internal(&err));
    }
    inner.assemblies.begin(&meta.id, &meta.reservation);
    Ok(meta)
}

/// The staged upload `id` if it belongs to this job's write scope (404 otherwise: another
/// job's uploads are not visible).
pub fn find_own(inner: &Inner, scope: &Scope, id: &str) -> Result<UploadMeta, ApiError> {
    let meta = inner
        .staging
        .meta(id)
        .map_err(|err| ApiError::internal(&err))?;
    match meta {
        Some(meta)
            if meta.repository == scope.repository
                && meta.scope == scope.git_ref
                && meta.expires_at > inner.clock.now_millis() =>
        {
            Ok(meta)
        }
        _ => Err(ApiError::not_found(format!(
            "no upload {id} in progress for this job"
        ))),
    }
}

/// The staged upload a signed upload URL names, if it is still the same reservation.
pub fn find_signed(inner: &Inner, id: &str, reservation: &str) -> Result<UploadMeta, ApiError> {
    let meta = inner
        .staging
        .meta(id)
        .map_err(|err| ApiError::internal(&err))?;
    match meta {
        Some(meta) if meta.reservation == reservation => Ok(meta),
        _ => Err(ApiError::forbidden(
            "this upload URL is no longer valid: the upload was finalized, aborted or expired",
        )),
    }
}

/// The parts staged for upload `id`.
pub fn staged_parts(inner: &Inner, id: &str) -> Result<Vec<(Part, u64)>, ApiError> {
    inner
        .staging
        .parts(id)
        .map_err(|err| ApiError::internal(&err))
}

/// Drops an upload: its reservation (so no entry appears) and its staged bytes.
pub fn discard(inner: &Inner, meta: &UploadMeta) {
    inner.assemblies.forget(&meta.id);
    if let Err(err) = inner.with_index(|| inner.cache.abort_entry(&meta.reservation)) {
        tracing::warn!(upload = %meta.id, error = %super::error::error_chain(&err), "aborting reservation");
    }
    if let Err(err) = inner.staging.remove(&meta.id) {
        tracing::warn!(upload = %meta.id, error = %super::error::error_chain(&err), "removing staged upload");
    }
}

/// Whether the server that reserved an upload is known to have died (the same host can tell; an
/// owner elsewhere is alive as far as we know, and its uploads expire on their own).
pub fn owner_is_dead(meta: &UploadMeta) -> bool {
    match meta.owner.as_deref() {
        Some(owner) => owner::is_dead(Some(owner)),
        None => !process_alive(meta.owner_pid),
    }
}

/// Whether process `pid` still runs (signal 0 probes without delivering anything).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists; no memory is involved.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Receives one part of upload `id` from `body` (at most the body cap, and exactly
/// `expected_len` bytes if given), under the concurrent-upload cap.
pub async fn receive_part(
    inner: Arc<Inner>,
    id: String,
    part: Part,
    body: Body,
    expected_len: Option<u64>,
) -> Result<u64, ApiError> {
    let staging = inner.staging.clone();
    let (staged_id, staged_part) = (id.clone(), part.clone());
    // Blocks go in place where early assembly runs (this node's staging alone).
    let in_place_limit = inner
        .assemblies
        .enabled()
        .then_some(inner.config.max_entry_size);
    // The bytes received, and whether the part went in place or its upload's others do (then
    // there is no early copy to make).
    let (n, placed) = receive(&inner, body, expected_len, move |reader: &mut dyn Read| {
        let staging_error = |err: StagingError| match err {
            StagingError::Length { .. } => ApiError::invalid(err.to_string()),
            StagingError::Body { .. } => ApiError::invalid(super::error::error_chain(&err)),
            other => ApiError::internal(&other),
        };
        if let (Some(local), Some(len), Some(limit)) =
            (staging.local(), expected_len, in_place_limit)
            && let Some(offset) = local.in_place_offset(&id, &part, len, limit)
            && let Some(n) = local
                .put_block_in_place(&id, &part, reader, len, offset)
                .map_err(staging_error)?
        {
            return Ok((n, true));
        }
        let n = staging
            .put_part(&id, &part, reader, expected_len)
            .map_err(staging_error)?;
        // Its other blocks go in place: copying this one early would write them twice.
        let others_in_place = staging
            .local()
            .is_some_and(|local| local.writes_in_place(&id));
        Ok((n, others_in_place))
    })
    .await?;
    if !placed {
        Assemblies::received(&inner, &staged_id, &staged_part);
    }
    Ok(n)
}

/// Receives the whole archive of upload `id` (a Put Blob) straight into the blob store, hashed
/// as it arrives, so its bytes are written once; the upload's `Blob` part then names the blob.
/// Same caps as [`receive_part`]; a failed body leaves no blob.
pub async fn receive_blob(
    inner: Arc<Inner>,
    id: String,
    body: Body,
    expected_len: Option<u64>,
) -> Result<u64, ApiError> {
    let sink_inner = inner.clone();
    receive(&inner, body, expected_len, move |reader: &mut dyn Read| {
        let inner = sink_inner;
        let mut writer = inner
            .cache
            .store()
            .blobs()
            .writer()
            .map_err(|err| ApiError::internal(&err))?;
        let mut buf = vec![0u8; staging::COPY_BUFFER];
        let written = match staging::copy_large(reader, &mut writer, &mut buf) {
            Ok(n) => n,
            Err(err) if staging::is_body_error(&err) => {
                return Err(ApiError::invalid(super::error::error_chain(
                    &StagingError::Body { source: err },
                )));
            }
            Err(err) => return Err(ApiError::internal(&err)),
        };
        if let Some(expected) = expected_len
            && expected != written
        {
            return Err(ApiError::invalid(
                StagingError::Length {
                    expected,
                    actual: written,
                }
                .to_string(),
            ));
        }
        let info = writer.finish().map_err(|err| ApiError::internal(&err))?;
        staging::put_blob_ref(inner.staging.as_ref(), &id, &info)
            .map_err(|err| ApiError::internal(&err))?;
        Ok(info.size)
    })
    .await
}

/// Streams `body` into `sink` under the concurrent-upload cap and the body cap.
async fn receive<T, F>(
    inner: &Inner,
    body: Body,
    expected_len: Option<u64>,
    sink: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut dyn Read) -> Result<T, ApiError> + Send + 'static,
{
    let Ok(_slot) = inner.upload_slots.clone().try_acquire_owned() else {
        return Err(ApiError::busy(format!(
            "too many uploads at once (limit {}); retry later",
            inner.config.max_concurrent_uploads
        )));
    };
    let limit = inner.config.max_body_size;
    if let Some(len) = expected_len
        && len > limit
    {
        return Err(ApiError::too_large(format!(
            "a {len}-byte request is over the {limit}-byte request body limit; nothing was stored"
        )));
    }
    stream_into(body, limit, sink).await
}

/// A blob already stored (by a Put Blob, or assembled at finalize): committing it writes
/// nothing more.
struct Stored(BlobInfo);

impl std::io::Write for Stored {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("the blob is already stored"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BlobWriter for Stored {
    fn finish(self: Box<Self>) -> Result<BlobInfo, BlobError> {
        Ok(self.0)
    }
}

/// Assembles the parts in order into a new blob and commits the upload's reservation to it.
/// `size` must equal the bytes assembled (else 400 and nothing is committed; the upload stays
/// open for a corrected request until it expires).
///
/// Finalizing is idempotent across nodes: two nodes may assemble the same upload at once (the
/// same bytes, so the same blob), the reservation row lets one commit, and the other, whatever
/// failed for it meanwhile (its parts removed under it), answers 409 like a second finalize
/// on one node.
pub fn finalize(
    inner: &Inner,
    meta: &UploadMeta,
    plan: &[Part],
    size: u64,
) -> Result<Entry, ApiError> {
    assemble_and_commit(inner, meta, plan, size).map_err(|err| {
        let committed = inner
            .with_index(|| inner.cache.index().get(&meta.reservation))
            .ok()
            .flatten()
            .is_some_and(|entry| entry.state == EntryState::Committed);
        if committed {
            ApiError::conflict(format!(
                "the upload of {} was already finalized by another request",
                meta.key
            ))
        } else {
            err
        }
    })
}

/// The blob of an upload whose blocks were all written in place in the plan's order: its
/// assembly file, sealed and moved into the blob store without a copy. `None`: copy instead.
fn adopt_in_place(
    inner: &Inner,
    meta: &UploadMeta,
    plan: &[Part],
) -> Result<Option<BlobInfo>, ApiError> {
    let Some(local) = inner.staging.local() else {
        return Ok(None);
    };
    let Some(sealed) = local
        .seal_in_place(&meta.id, plan)
        .map_err(|err| ApiError::internal(&err))?
    else {
        return Ok(None);
    };
    let info = inner
        .cache
        .store()
        .blobs()
        .adopt_file(&sealed.path)
        .map_err(|err| ApiError::internal(&err))?;
    if info.is_some() {
        tracing::debug!(upload = %meta.id, bytes = sealed.len, "assembled in place");
    }
    Ok(info)
}

fn assemble_and_commit(
    inner: &Inner,
    meta: &UploadMeta,
    plan: &[Part],
    size: u64,
) -> Result<Entry, ApiError> {
    let staged = staged_parts(inner, &meta.id)?;
    let blob = if plan == [Part::Blob] {
        Some(
            staging::read_blob_ref(inner.staging.as_ref(), &meta.id)
                .map_err(|err| ApiError::internal(&err))?,
        )
    } else {
        None
    };
    let mut total: u64 = 0;
    for part in plan {
        let Some((_, len)) = staged.iter().find(|(p, _)| p == part) else {
            return Err(ApiError::invalid(format!(
                "part {part:?} of the upload was never received"
            )));
        };
        total = total.saturating_add(blob.as_ref().map_or(*len, |b| b.size));
    }
    if total != size {
        return Err(ApiError::invalid(format!(
            "the upload has {total} bytes but the request says {size}; nothing was committed"
        )));
    }
    if total > inner.config.max_entry_size {
        discard(inner, meta);
        return Err(ApiError::too_large(format!(
            "the entry is {total} bytes, over the {}-byte entry limit; nothing was stored",
            inner.config.max_entry_size
        )));
    }
    let in_place = match blob {
        Some(_) => None,
        None => adopt_in_place(inner, meta, plan)?,
    };
    let info = match blob.or(in_place) {
        Some(info) => {
            inner.assemblies.forget(&meta.id);
            info
        }
        None => {
            // The parts copied while the upload arrived, if they are how the plan begins.
            let (mut writer, done) = match inner.assemblies.take(&meta.id, &meta.reservation, plan)
            {
                Some(early) => early,
                None => (
                    inner
                        .cache
                        .store()
                        .blobs()
                        .writer()
                        .map_err(|err| ApiError::internal(&err))?,
                    0,
                ),
            };
            tracing::debug!(upload = %meta.id, parts = plan.len(), assembled_early = done, "assembling");
            staging::copy_parts(inner.staging.as_ref(), &meta.id, &plan[done..], &mut writer)
                .map_err(|err| ApiError::internal(&err))?;
            // Made durable here, outside the index's turn: an fsync must not hold up lookups.
            writer.finish().map_err(|err| ApiError::internal(&err))?
        }
    };
    let scope = Scope {
        repository: meta.repository.clone(),
        git_ref: meta.scope.clone(),
        ..Scope::default()
    };
    let entry = inner
        .with_index(|| {
            inner.cache.commit_entry(
                &scope,
                &meta.key,
                &meta.reservation,
                Box::new(Stored(info)),
                meta.started_at,
                &mut cache_log,
            )
        })
        .map_err(|err| match err {
            // Another finalize of the same upload won, or the reservation was taken over.
            CacheError::Store(StoreError::Index(IndexError::NotReserved { .. })) => {
                ApiError::conflict(format!(
                    "the upload of {} was already finalized or has expired",
                    meta.key
                ))
            }
            other => ApiError::internal(&other),
        })?;
    if let Err(err) = inner.staging.remove(&meta.id) {
        tracing::warn!(upload = %meta.id, error = %super::error::error_chain(&err), "removing staged upload");
    }
    Ok(entry)
}

/// The right to finalize one upload, held until dropped; take it before reading the upload,
/// so a request that waited finds the upload gone rather than half-removed.
pub struct FinalizeTurn<'a> {
    inner: &'a Inner,
    id: String,
}

impl<'a> FinalizeTurn<'a> {
    /// Takes the turn for upload `id`, or 409 while another request holds it.
    pub fn take(inner: &'a Inner, id: &str) -> Result<Self, ApiError> {
        let mut busy = inner
            .finalizing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !busy.insert(id.to_string()) {
            return Err(ApiError::conflict(
                "this upload is being finalized by another request",
            ));
        }
        Ok(Self {
            inner,
            id: id.to_string(),
        })
    }
}

impl Drop for FinalizeTurn<'_> {
    fn drop(&mut self) {
        self.inner
            .finalizing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// The base of signed URLs: the configured public URL or the request's `Host`.
/// Where clients reach this server: `--public-url`, else `http://` and the request's `Host`.
pub fn base_url(inner: &Inner, headers: &HeaderMap) -> String {
    if let Some(url) = &inner.config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// A signed URL to upload the bytes of `meta`.
pub fn upload_url(inner: &Inner, headers: &HeaderMap, meta: &UploadMeta) -> String {
    let expires = now_secs(inner).saturating_add(inner.config.url_ttl_secs);
    let target = format!("{}/{}", meta.id, meta.reservation);
    let sig = inner.signer.sign(Purpose::Upload, &target, expires);
    format!(
        "{}/blobs/{}/{}?rid={}&se={expires}&sig={sig}",
        base_url(inner, headers),
        Purpose::Upload.container(),
        meta.id,
        meta.reservation
    )
}

/// A signed URL to download entry `entry_id`.
pub fn download_url(inner: &Inner, headers: &HeaderMap, entry_id: &str) -> String {
    let expires = now_secs(inner).saturating_add(inner.config.url_ttl_secs);
    let sig = inner.signer.sign(Purpose::Download, entry_id, expires);
    format!(
        "{}/blobs/{}/{entry_id}?se={expires}&sig={sig}",
        base_url(inner, headers),
        Purpose::Download.container(),
    )
}

/// Checks a signed URL's signature and expiry (403 otherwise).
pub fn verify_url(
    inner: &Inner,
    purpose: Purpose,
    target: &str,
    expires: i64,
    sig: &str,
) -> Result<(), ApiError> {
    inner
        .signer
        .verify(purpose, target, expires, sig, now_secs(inner))
        .map_err(|err| ApiError::forbidden(err.to_string()))
}

/// Looks up the entry a restore of `keys` would use, in the job's readable scopes.
pub fn lookup(
    inner: &Inner,
    principal: &Principal,
    keys: &[String],
    version: &str,
) -> Result<Option<Entry>, ApiError> {
    if keys.is_empty() {
        return Err(ApiError::invalid("at least one key is required"));
    }
    keys.iter().try_for_each(|k| check_key(k))?;
    if keys.len() > cache::MAX_KEYS {
        return Err(ApiError::invalid(format!(
            "Key Validation Error: Keys are limited to a maximum of {}.",
            cache::MAX_KEYS
        )));
    }
    check_version(version)?;
    // A lookup only reads (its writes are deferred, see `Cache::defer_lookup_records`), and
    // SQLite readers do not wait on each other or on the writer: no turn to take.
    let hit = inner
        .cache
        .lookup_entry(&principal.read_scope(), keys, version, &mut cache_log)
        .map_err(|err| ApiError::internal(&err))?;
    Ok(hit
        .map(|h| h.entry)
        .filter(|e| e.state == EntryState::Committed))
}
