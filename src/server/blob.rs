//! Azure-Blob-style signed URLs, path-style `/blobs/<container>/<blob>` so the Azure SDK
//! parses them on IP and localhost hosts. Uploads: Put Blob (`x-ms-blob-type: BlockBlob`),
//! Put Block (`comp=block&blockid=…`) and Put Block List (`comp=blocklist`), staged; a Put Blob
//! streams straight into the blob store.
//! Downloads: `GET` (with `Range` / `x-ms-range`) and `HEAD` of a committed entry.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::Server;
use super::auth::Purpose;
use super::body::reader_body;
use super::error::{ApiError, Dialect};
use super::log;
use super::staging::{self, Part};
use super::uploads::{self, blocking};
use crate::store::index::EntryState;

/// Azure's limit on a block id (before base64).
const MAX_BLOCK_ID_BYTES: usize = 64;
/// The largest block list body we read.
const MAX_BLOCK_LIST_BODY: usize = 4 * 1024 * 1024;

type Params = HashMap<String, String>;

fn param<'a>(params: &'a Params, name: &str) -> Result<&'a str, ApiError> {
    params
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| ApiError::forbidden(format!("the URL is not signed: no '{name}' parameter")))
}

/// Whether `id` is an upload id this server makes (so it is never a path).
fn is_upload_id(id: &str) -> bool {
    let digits = |s: &str, hex: bool| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (hex && matches!(b, b'a'..=b'f')))
    };
    match id.split_once('-') {
        Some(("v1", rest)) => digits(rest, false) && rest.len() <= 20,
        Some(("v2", rest)) => digits(rest, true) && rest.len() == 40,
        _ => false,
    }
}

/// Whether `id` looks like an entry id (a UUID).
fn is_entry_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

fn verify(
    server: &Server,
    container: &str,
    want: Purpose,
    target: &str,
    params: &Params,
) -> Result<(), ApiError> {
    match Purpose::from_container(container) {
        Some(p) if p == want => {}
        Some(Purpose::Download) => {
            return Err(ApiError::forbidden("a download URL cannot upload"));
        }
        Some(Purpose::Upload) => {
            return Err(ApiError::forbidden("an upload URL cannot download"));
        }
        None => return Err(ApiError::not_found(format!("no container {container:?}"))),
    }
    let expires: i64 = param(params, "se")?
        .parse()
        .map_err(|_| ApiError::forbidden("invalid URL signature"))?;
    uploads::verify_url(&server.inner, want, target, expires, param(params, "sig")?)
}

fn created() -> Response {
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ETAG, HeaderValue::from_static("\"0x1\""));
    headers.insert(
        "x-ms-request-server-encrypted",
        HeaderValue::from_static("false"),
    );
    response
}

type PathParts = Result<Path<(String, String)>, PathRejection>;
type QueryParams = Result<Query<Params>, QueryRejection>;

/// The container, blob and query of a blob URL, or a 400 in our shape.
fn blob_request(
    path: PathParts,
    params: QueryParams,
) -> Result<((String, String), Params), ApiError> {
    match (path, params) {
        (Ok(Path(path)), Ok(Query(params))) => Ok((path, params)),
        (Err(rejection), _) => Err(uploads::rejected(rejection)),
        (_, Err(rejection)) => Err(uploads::rejected(rejection)),
    }
}

/// `PUT /blobs/uploads/{id}`: Put Blob, Put Block or Put Block List.
pub async fn upload(
    State(server): State<Server>,
    path: PathParts,
    params: QueryParams,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let request = blob_request(path, params);
    let put = async {
        let ((container, blob), params) = request?;
        put(server, container, blob, params, headers, body).await
    };
    put.await
        .unwrap_or_else(|err| err.in_dialect(Dialect::Blob).into_response())
}

async fn put(
    server: Server,
    container: String,
    blob: String,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !is_upload_id(&blob) && Purpose::from_container(&container) == Some(Purpose::Upload) {
        return Err(ApiError::not_found(format!("no upload {blob:?}")));
    }
    let reservation = params.get("rid").cloned().unwrap_or_default();
    verify(
        &server,
        &container,
        Purpose::Upload,
        &format!("{blob}/{reservation}"),
        &params,
    )?;
    let inner = server.inner.clone();
    let (id, rid) = (blob.clone(), reservation.clone());
    let meta = blocking(move || uploads::find_signed(&inner, &id, &rid)).await?;
    log::note(&meta.repository, &meta.key);
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match params.get("comp").map(String::as_str) {
        None => {
            let blob_type = headers
                .get("x-ms-blob-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if blob_type != "BlockBlob" {
                return Err(ApiError::invalid(format!(
                    "x-ms-blob-type must be BlockBlob, not {blob_type:?}"
                )));
            }
            log::note_bytes(
                uploads::receive_blob(server.inner.clone(), meta.id.clone(), body, content_length)
                    .await?,
            );
            // A Put Blob replaces whatever blocks were committed before.
            let inner = server.inner.clone();
            blocking(move || {
                inner
                    .staging
                    .remove_part(&meta.id, &Part::BlockList)
                    .map_err(|err| ApiError::internal(&err))
            })
            .await?;
            Ok(created())
        }
        Some("block") => {
            let block = decode_block_id(
                param(&params, "blockid")
                    .map_err(|_| ApiError::invalid("comp=block needs a blockid parameter"))?,
            )?;
            log::note_bytes(
                uploads::receive_part(
                    server.inner.clone(),
                    meta.id.clone(),
                    Part::Block(block),
                    body,
                    content_length,
                )
                .await?,
            );
            Ok(created())
        }
        Some("blocklist") => {
            let bytes = axum::body::to_bytes(body, MAX_BLOCK_LIST_BODY)
                .await
                .map_err(|_| {
                    ApiError::too_large(format!(
                        "the block list is over {MAX_BLOCK_LIST_BODY} bytes"
                    ))
                })?;
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| ApiError::invalid("the block list is not UTF-8 XML"))?;
            let blocks = parse_block_list(text)?;
            let inner = server.inner.clone();
            blocking(move || {
                let staged = uploads::staged_parts(&inner, &meta.id)?;
                for block in &blocks {
                    if !staged
                        .iter()
                        .any(|(p, _)| matches!(p, Part::Block(b) if b == block))
                    {
                        return Err(ApiError::invalid(format!(
                            "InvalidBlockList: block {} was never uploaded",
                            STANDARD.encode(block)
                        )));
                    }
                }
                staging::put_block_list(inner.staging.as_ref(), &meta.id, &blocks)
                    .and_then(|()| inner.staging.remove_part(&meta.id, &Part::Blob))
                    .map_err(|err| ApiError::internal(&err))
            })
            .await?;
            Ok(created())
        }
        Some(other) => Err(ApiError::invalid(format!(
            "unsupported comp={other:?}: expected block or blocklist"
        ))),
    }
}

fn decode_block_id(text: &str) -> Result<Vec<u8>, ApiError> {
    let bytes = STANDARD
        .decode(text)
        .map_err(|_| ApiError::invalid(format!("block id {text:?} is not base64")))?;
    if bytes.is_empty() || bytes.len() > MAX_BLOCK_ID_BYTES {
        return Err(ApiError::invalid(format!(
            "block id {text:?} must decode to 1..={MAX_BLOCK_ID_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// The ids of `<BlockList><Latest|Committed|Uncommitted>id</…>…</BlockList>`, in order.
fn parse_block_list(xml: &str) -> Result<Vec<Vec<u8>>, ApiError> {
    let start = xml
        .find("<BlockList>")
        .ok_or_else(|| ApiError::invalid("the block list has no <BlockList> element"))?;
    let end = xml
        .rfind("</BlockList>")
        .ok_or_else(|| ApiError::invalid("the block list is not closed"))?;
    let mut rest = xml
        .get(start + "<BlockList>".len()..end)
        .ok_or_else(|| ApiError::invalid("the block list is malformed"))?;
    let mut blocks = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let tag_end = rest
            .find('>')
            .filter(|_| rest.starts_with('<'))
            .ok_or_else(|| ApiError::invalid("the block list is malformed"))?;
        let tag = &rest[1..tag_end];
        if !matches!(tag, "Latest" | "Committed" | "Uncommitted") {
            return Err(ApiError::invalid(format!(
                "unexpected <{tag}> in the block list"
            )));
        }
        let close = format!("</{tag}>");
        let body_end = rest
            .find(&close)
            .ok_or_else(|| ApiError::invalid(format!("<{tag}> is not closed")))?;
        blocks.push(decode_block_id(rest[tag_end + 1..body_end].trim())?);
        rest = &rest[body_end + close.len()..];
    }
    Ok(blocks)
}

/// A byte range of a blob of `size` bytes: `(start, len)`; `None` for the whole blob.
fn parse_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(value) = headers
        .get("x-ms-range")
        .or_else(|| headers.get(header::RANGE))
    else {
        return Ok(None);
    };
    let bad = || ApiError::range(format!("unsatisfiable range for a {size}-byte blob"));
    let spec = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .ok_or_else(bad)?;
    let (first, last) = spec.split_once('-').ok_or_else(bad)?;
    let (start, end) = match (first.trim(), last.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| bad())?;
            if n == 0 {
                return Err(bad());
            }
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (a, "") => (a.parse().map_err(|_| bad())?, size.saturating_sub(1)),
        (a, b) => {
            let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            (a, b.min(size.saturating_sub(1)))
        }
    };
    if size == 0 || start >= size || end < start {
        return Err(bad());
    }
    Ok(Some((start, end - start + 1)))
}

/// `GET` / `HEAD /blobs/entries/{id}`.
pub async fn download(
    State(server): State<Server>,
    method: Method,
    path: PathParts,
    params: QueryParams,
    headers: HeaderMap,
) -> Response {
    let request = blob_request(path, params);
    let get = async {
        let ((container, blob), params) = request?;
        get(server, method, container, blob, params, headers).await
    };
    get.await
        .unwrap_or_else(|err| err.in_dialect(Dialect::Blob).into_response())
}

async fn get(
    server: Server,
    method: Method,
    container: String,
    blob: String,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    verify(&server, &container, Purpose::Download, &blob, &params)?;
    if !is_entry_id(&blob) {
        return Err(ApiError::not_found(format!("no entry {blob:?}")));
    }
    let inner = server.inner.clone();
    let id = blob.clone();
    let entry = blocking(move || {
        inner
            .cache
            .index()
            .get(&id)
            .map_err(|err| ApiError::internal(&err))
    })
    .await?
    .filter(|e| e.state == EntryState::Committed)
    .ok_or_else(|| ApiError::not_found(format!("entry {blob} no longer exists")))?;
    let size = entry.size_bytes;
    let range = parse_range(&headers, size)?;
    let (start, len) = range.unwrap_or((0, size));
    log::note(&entry.repository, &entry.key);
    let mut builder = Response::builder()
        .header(header::CONTENT_LENGTH, len)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header("x-ms-blob-type", "BlockBlob")
        .header(
            header::ETAG,
            format!("\"{}\"", entry.blob_digest.as_deref().unwrap_or("")),
        );
    if let Some((start, len)) = range {
        builder = builder.status(StatusCode::PARTIAL_CONTENT).header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let inner = server.inner.clone();
        let reader = blocking(move || {
            // Read from the offset asked for, never from the start of the blob (the Azure SDK
            // downloads an archive as 4 MiB ranges, 8 at once), and not hashed again: the
            // digest was checked when the blob was written (and by `runner cache verify`), and
            // the archive's own checksums (zstd's, gzip's CRC) are checked end to end by the
            // client that unpacks it. Hashing every download as well took more of the server's
            // CPU than sending it (202 against 88 ms for nginx's sendfile, per 200 MiB), which
            // on a shared machine came out of the client's time.
            inner
                .cache
                .store()
                .open_entry_range(&entry, start, len)
                .map_err(|err| ApiError::internal(&err))
        })
        .await?;
        log::note_bytes(len);
        reader_body(reader, len)
    };
    let response = builder.body(body).map_err(|err| ApiError::internal(&err))?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_lists_parse_in_order() {
        let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>AQ==</Latest>\n<Uncommitted>Ag==</Uncommitted></BlockList>";
        assert_eq!(parse_block_list(xml), Ok(vec![vec![1], vec![2]]));
        assert!(parse_block_list("<BlockList><Bad>AQ==</Bad></BlockList>").is_err());
        assert!(parse_block_list("<BlockList><Latest>AQ==</BlockList>").is_err());
    }

    #[test]
    fn ranges() {
        let headers = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::RANGE, HeaderValue::from_str(v).expect("header"));
            h
        };
        assert_eq!(parse_range(&headers("bytes=0-9"), 100), Ok(Some((0, 10))));
        assert_eq!(parse_range(&headers("bytes=90-"), 100), Ok(Some((90, 10))));
        assert_eq!(parse_range(&headers("bytes=-5"), 100), Ok(Some((95, 5))));
        assert_eq!(
            parse_range(&headers("bytes=95-200"), 100),
            Ok(Some((95, 5)))
        );
        assert!(parse_range(&headers("bytes=100-"), 100).is_err());
        assert!(parse_range(&headers("items=0-1"), 100).is_err());
        assert_eq!(parse_range(&HeaderMap::new(), 100), Ok(None));
    }

    #[test]
    fn ids_are_never_paths() {
        assert!(is_upload_id("v1-123"));
        assert!(is_upload_id(&format!("v2-{}", "a".repeat(40))));
        for bad in ["..", "v1-../x", "v2-abc", "v1-", "x-1", "v1-1/2"] {
            assert!(!is_upload_id(bad), "{bad}");
        }
        assert!(!is_entry_id("../../../../etc/passwd/aaaaaaaaaaaaaaa"));
    }
}
