//! v2: Twirp CacheService and the Azure-style blob URLs.

use std::thread;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use super::{REPO, Srv, block_list_reply, bytes, encode, put_blob, put_block_list, version};
use crate::cache::MAIN;
use crate::support::http;

#[test]
fn single_put_round_trip_with_range_and_head() {
    let s = Srv::start();
    let token = s.token();
    let v = version(1);
    let data = bytes(300_000, 1);
    let done = s.save_v2(&token, "deps-linux-abc", &v, &data);
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["ok"], json!(true));
    let entry_id = done.json()["entry_id"]
        .as_str()
        .expect("string")
        .to_string();
    assert!(
        entry_id.parse::<u64>().is_ok(),
        "int64 as a string: {entry_id}"
    );

    let found = s.download_url(&token, &["deps-linux-xyz", "deps-linux-"], &v);
    assert_eq!(found["ok"], json!(true));
    assert_eq!(found["matched_key"], "deps-linux-abc");
    let url = found["signed_download_url"].as_str().expect("url");
    assert!(
        url.starts_with(&format!("{}/blobs/entries/", s.base)),
        "{url}"
    );

    let whole = http("GET", url, &[], None);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-length"), Some("300000"));
    assert!(whole.header("x-ms-request-id").is_some());
    assert_eq!(whole.body, data);

    let head = http("HEAD", url, &[], None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("300000"));
    assert!(head.body.is_empty());

    let part = http("GET", url, &[("Range", "bytes=1000-1999")], None);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/300000"));
    assert_eq!(part.body, &data[1000..2000]);
    let azure = http("GET", url, &[("x-ms-range", "bytes=299990-")], None);
    assert_eq!(azure.body, &data[299_990..]);
    let beyond = http("GET", url, &[("Range", "bytes=400000-")], None);
    assert_eq!(beyond.status, 416);

    // The same entry is what `runner cache list` shows.
    let entries = s.h.cache.index().list(&Default::default()).expect("list");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].repository.as_str(), entries[0].scope.as_str()),
        (REPO, MAIN)
    );
}

#[test]
fn a_miss_is_ok_false_with_status_200() {
    let s = Srv::start();
    let found = s.download_url(&s.token(), &["nothing"], &version(1));
    assert_eq!(found["ok"], json!(false));
}

/// Put Block in any order, 8 at once, then Put Block List assembled in list order, for the
/// toolkit's 48-byte and buildx's 64-byte block ids.
#[test]
fn blocks_upload_concurrently_and_assemble_in_list_order() {
    let s = Srv::start();
    let token = s.token();
    for (n, id_len) in [(1u8, 48usize), (2, 64)] {
        let key = format!("blocks-{id_len}");
        let v = version(n);
        let url = s.create(&token, &key, &v).expect("created");
        let chunks: Vec<Vec<u8>> = (0..8).map(|i| bytes(50_000 + i * 7, i as u8)).collect();
        let ids: Vec<String> = (0..8)
            .map(|i| {
                let mut raw = format!("block-{i:06}").into_bytes();
                raw.resize(id_len, b'x');
                STANDARD.encode(raw)
            })
            .collect();
        thread::scope(|scope| {
            for i in (0..8).rev() {
                let (url, id, chunk) = (&url, &ids[i], &chunks[i]);
                scope.spawn(move || {
                    let block = format!("{url}&comp=block&blockid={}", encode(id));
                    let reply = http("PUT", &block, &[], Some(chunk));
                    assert_eq!(reply.status, 201, "{}", reply.text());
                    assert!(reply.header("x-ms-request-id").is_some());
                });
            }
        });
        // The list names the blocks in their order, which is not the upload order.
        put_block_list(&url, &ids);
        let expected: Vec<u8> = chunks.concat();
        let done = s.finalize(&token, &key, &v, expected.len());
        assert_eq!(done.status, 200, "{}", done.text());
        assert_eq!(s.restore_v2(&token, &[&key], &v), Some(expected));
    }
    assert_eq!(s.staged_uploads(), 0, "staging is emptied at finalize");
}

/// Blocks are copied into their blob while the upload goes on, in the order their Azure SDK
/// ids give (a prefix, then the index zero-padded), so finalize has only the rest to copy. A
/// guess the upload proves wrong costs time only: a block staged again after it was copied, or
/// a list in another order than the ids, still stores exactly the bytes the list names.
#[test]
fn blocks_are_assembled_as_they_arrive_and_a_wrong_guess_still_stores_the_list() {
    let s = Srv::start();
    let token = s.token();
    let put_list = |url: &str, order: &[usize]| {
        let ids: Vec<String> = order.iter().map(|&i| sdk_block_id(i)).collect();
        put_block_list(url, &ids);
    };
    let chunks: Vec<Vec<u8>> = (0..4).map(|i| bytes(200_000 + i * 3, i as u8)).collect();
    let total: usize = chunks.iter().map(Vec::len).sum();
    let other = bytes(chunks[1].len(), 99);
    // (name, what block 1 is staged again with after the copy, the list's order)
    type Case<'a> = (&'a str, Option<&'a [u8]>, &'a [usize]);
    let cases: [Case; 3] = [
        ("in-order", None, &[0, 1, 2, 3]),
        ("restaged", Some(&other), &[0, 1, 2, 3]),
        ("reordered", None, &[1, 0, 2, 3]),
    ];
    for (n, (key, again, order)) in cases.into_iter().enumerate() {
        let v = version(30 + n as u8);
        let url = s.create(&token, key, &v).expect("created");
        for (i, chunk) in chunks.iter().enumerate() {
            put_sdk_block(&url, i, chunk);
        }
        assert!(
            s.assembled_early(total as u64),
            "{key}: the four blocks are in the blob being assembled before finalize"
        );
        let mut staged = chunks.clone();
        if let Some(again) = again {
            put_sdk_block(&url, 1, again);
            staged[1] = again.to_vec();
        }
        put_list(&url, order);
        let expected: Vec<u8> = order.iter().flat_map(|&i| staged[i].clone()).collect();
        let done = s.finalize(&token, key, &v, expected.len());
        assert_eq!(done.status, 200, "{key}: {}", done.text());
        assert_eq!(s.restore_v2(&token, &[key], &v), Some(expected), "{key}");
        assert!(s.assembled_early(0), "{key}: no unfinished blob is left");
    }
    assert_eq!(s.staged_uploads(), 0);
}

/// An upload sent once is never taken for one staged again: the assembler copying block k may
/// see block k+1 on disk before that block's request has recorded it, and it must leave it to
/// that request then (CI once saw the early copy dropped at block 1). The blocks go at once, as
/// the toolkit sends them, and in many rounds, since the moment is a race.
#[test]
fn blocks_sent_once_keep_their_early_copy_whenever_the_assembler_sees_them() {
    let s = Srv::start();
    let token = s.token();
    let chunks: Vec<Vec<u8>> = (0..6).map(|i| bytes(150_000 + i * 5, i as u8)).collect();
    let total: usize = chunks.iter().map(Vec::len).sum();
    let ids: Vec<String> = (0..chunks.len()).map(sdk_block_id).collect();
    for round in 0..24u8 {
        let key = format!("once-{round}");
        let v = version(round);
        let url = s.create(&token, &key, &v).expect("created");
        thread::scope(|scope| {
            for (i, chunk) in chunks.iter().enumerate() {
                let url = &url;
                scope.spawn(move || put_sdk_block(url, i, chunk));
            }
        });
        assert!(
            s.assembled_early(total as u64),
            "round {round}: all {} blocks are in the blob before finalize",
            chunks.len()
        );
        put_block_list(&url, &ids);
        let done = s.finalize(&token, &key, &v, total);
        assert_eq!(done.status, 200, "{key}: {}", done.text());
        assert_eq!(
            s.restore_v2(&token, &[&key], &v),
            Some(chunks.concat()),
            "{key}"
        );
    }
}

/// Blocks cut the way the Azure SDK cuts a file (blocks of one power-of-two size, then a
/// shorter last one, ids ending in the zero-padded index) are written straight to their offset
/// in one file, which finalize makes the blob without copying: their bytes are written once.
/// Whatever the order of arrival (the short last block first, before the block size is known),
/// a block sent again, a list in another order or a block of another size, exactly the bytes
/// the list names are stored.
#[test]
fn blocks_in_the_sdk_layout_are_written_once_where_they_belong() {
    const BLOCK: usize = 64 * 1024;
    let s = Srv::start();
    let token = s.token();
    let staged_files = || -> Vec<(String, u64)> {
        let mut files: Vec<(String, u64)> = std::fs::read_dir(s.h.dir.path().join("staging"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|upload| {
                std::fs::read_dir(upload.path())
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .filter_map(|f| Some((f.file_name().into_string().ok()?, f.metadata().ok()?.len())))
            .filter(|(name, _)| !name.starts_with('.'))
            .collect();
        files.sort();
        files
    };
    let chunks: Vec<Vec<u8>> = vec![
        bytes(BLOCK, 1),
        bytes(BLOCK, 2),
        bytes(BLOCK, 3),
        bytes(10_000, 4),
    ];
    let again = bytes(BLOCK, 77);
    let longer = bytes(BLOCK + 5_000, 78);
    // (key, block 1 sent again with, block 2 sent again with, the list's order)
    type Case<'a> = (&'a str, Option<&'a [u8]>, Option<&'a [u8]>, &'a [usize]);
    let cases: [Case; 4] = [
        ("sdk", None, None, &[0, 1, 2, 3]),
        ("sent-again", Some(&again), None, &[0, 1, 2, 3]),
        ("reordered", None, None, &[1, 0, 2, 3]),
        ("other-size", None, Some(&longer), &[0, 1, 2, 3]),
    ];
    for (n, (key, again1, again2, order)) in cases.into_iter().enumerate() {
        let v = version(60 + n as u8);
        let url = s.create(&token, key, &v).expect("created");
        // The short last block first: it cannot be placed before the block size is known.
        put_sdk_block(&url, 3, &chunks[3]);
        thread::scope(|scope| {
            for i in [2, 0, 1] {
                let (url, chunk) = (&url, &chunks[i]);
                scope.spawn(move || put_sdk_block(url, i, chunk));
            }
        });
        let files = staged_files();
        let block_name = |i: usize| {
            let raw = STANDARD.decode(sdk_block_id(i)).expect("base64");
            format!("block-{}", hex::encode(raw))
        };
        for i in 0..3 {
            assert!(
                files
                    .iter()
                    .any(|(f, _)| *f == format!("{}.at", block_name(i))),
                "{key}: block {i} is in place: {files:?}"
            );
            assert!(
                !files.iter().any(|(f, _)| *f == block_name(i)),
                "{key}: block {i} has no copy of its own: {files:?}"
            );
        }
        assert!(
            files
                .iter()
                .any(|(f, len)| f == "assembly" && *len == 3 * BLOCK as u64),
            "{key}: the three blocks lie in the assembly file: {files:?}"
        );
        assert!(
            files
                .iter()
                .any(|(f, len)| *f == block_name(3) && *len == 10_000),
            "{key}: the block sent before the size was known is staged as a file: {files:?}"
        );
        let mut staged = chunks.clone();
        if let Some(bytes) = again1 {
            put_sdk_block(&url, 1, bytes);
            staged[1] = bytes.to_vec();
        }
        if let Some(bytes) = again2 {
            put_sdk_block(&url, 2, bytes);
            staged[2] = bytes.to_vec();
        }
        let ids: Vec<String> = order.iter().map(|&i| sdk_block_id(i)).collect();
        put_block_list(&url, &ids);
        let expected: Vec<u8> = order.iter().flat_map(|&i| staged[i].clone()).collect();
        let done = s.finalize(&token, key, &v, expected.len());
        assert_eq!(done.status, 200, "{key}: {}", done.text());
        assert_eq!(
            s.restore_v2(&token, &[key], &v),
            Some(expected.clone()),
            "{key}"
        );
        assert!(
            s.h.cache
                .store()
                .blobs()
                .contains(&runner::store::blob::digest_of(&expected))
                .expect("contains"),
            "{key}: the blob is named by the digest of the bytes the list names"
        );
        assert!(s.assembled_early(0), "{key}: no unfinished blob is left");
    }
    assert_eq!(s.staged_uploads(), 0);
}

/// The base64 block id the Azure SDK gives block `i`: a fixed prefix, then `i` zero-padded.
fn sdk_block_id(i: usize) -> String {
    STANDARD.encode(format!("1b4e28ba-2fa1-11d2-883f-0016d3cca427{i:012}"))
}

/// Put Block of `data` as block `i` (its [`sdk_block_id`]) at the upload URL; it must be accepted.
fn put_sdk_block(url: &str, i: usize, data: &[u8]) {
    let block = format!("{url}&comp=block&blockid={}", encode(&sdk_block_id(i)));
    let reply = http("PUT", &block, &[], Some(data));
    assert_eq!(reply.status, 201, "{}", reply.text());
}

#[test]
fn block_list_naming_an_unknown_block_is_refused() {
    let s = Srv::start();
    let token = s.token();
    let v = version(3);
    let url = s.create(&token, "k", &v).expect("created");
    let known = STANDARD.encode([1u8; 48]);
    let put = http(
        "PUT",
        &format!("{url}&comp=block&blockid={}", encode(&known)),
        &[],
        Some(b"abc"),
    );
    assert_eq!(put.status, 201);
    let unknown = STANDARD.encode([2u8; 48]);
    let reply = block_list_reply(&url, &[known, unknown]);
    assert_eq!(reply.status, 400);
    assert_eq!(reply.header("x-ms-error-code"), Some("InvalidInput"));
    assert!(reply.text().contains("never uploaded"), "{}", reply.text());
    let bad_id = http(
        "PUT",
        &format!("{url}&comp=block&blockid=%%%"),
        &[],
        Some(b"x"),
    );
    assert_eq!(bad_id.status, 400);
    let too_long = STANDARD.encode([3u8; 65]);
    let long = http(
        "PUT",
        &format!("{url}&comp=block&blockid={}", encode(&too_long)),
        &[],
        Some(b"x"),
    );
    assert_eq!(long.status, 400);
    let not_xml = http("PUT", &format!("{url}&comp=blocklist"), &[], Some(b"{}"));
    assert_eq!(not_xml.status, 400);
}

#[test]
fn an_existing_entry_answers_409_already_exists() {
    let s = Srv::start();
    let token = s.token();
    let v = version(4);
    assert_eq!(s.save_v2(&token, "k", &v, b"one").status, 200);
    let again = s.create(&token, "k", &v).expect_err("exists");
    assert_eq!(again.status, 409);
    assert_eq!(again.json()["code"], "already_exists");
    assert!(
        again.json()["msg"]
            .as_str()
            .is_some_and(|m| m.contains("another job may be creating this cache")),
        "{}",
        again.text()
    );
    // Same key in another case is the same entry, as GitHub treats keys.
    assert_eq!(s.create(&token, "K", &v).expect_err("exists").status, 409);
}

#[test]
fn finalize_with_the_wrong_size_commits_nothing() {
    let s = Srv::start();
    let token = s.token();
    let v = version(5);
    let url = s.create(&token, "k", &v).expect("created");
    assert_eq!(put_blob(&url, b"12345").status, 201);
    let wrong = s.finalize(&token, "k", &v, 6);
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.json()["code"], "invalid_argument");
    assert_eq!(s.h.entry_count(), 0);
    // The upload is still open: the right size commits it.
    assert_eq!(s.finalize(&token, "k", &v, 5).status, 200);
    assert_eq!(s.h.entry_count(), 1);
}

#[test]
fn signed_urls_are_bound_to_purpose_entry_and_time() {
    let s = Srv::start();
    let token = s.token();
    let v = version(6);
    let upload = s.create(&token, "k", &v).expect("created");
    // Tampered: another upload id, a changed expiry, a changed signature.
    let tampered = [
        upload.replace("/uploads/v2-", "/uploads/v2-0"),
        upload.replace("se=", "se=9"),
        format!("{}A", upload),
        upload.replace("/uploads/", "/entries/"),
    ];
    for url in &tampered {
        let reply = put_blob(url, b"evil");
        assert!(
            reply.status == 403 || reply.status == 404,
            "{url}: {} {}",
            reply.status,
            reply.text()
        );
    }
    assert_eq!(put_blob(&upload, b"good").status, 201);
    assert_eq!(s.finalize(&token, "k", &v, 4).status, 200);
    // An upload URL stops working at finalize.
    let late = put_blob(&upload, b"late");
    assert_eq!(late.status, 403, "{}", late.text());
    assert_eq!(late.header("x-ms-error-code"), Some("AuthorizationFailure"));

    let download = s.download_url(&token, &["k"], &v)["signed_download_url"]
        .as_str()
        .expect("url")
        .to_string();
    // A download URL cannot upload, an upload URL cannot download.
    assert_eq!(put_blob(&download, b"overwrite").status, 403);
    assert_eq!(http("GET", &upload, &[], None).status, 403);
    let unsigned = download.split('?').next().expect("path").to_string();
    assert_eq!(http("GET", &unsigned, &[], None).status, 403);
    // Expired: the clock moves past the URL's lifetime.
    s.h.clock.advance(2 * 3600 * 1000);
    let expired = http("GET", &download, &[], None);
    assert_eq!(expired.status, 403);
    assert!(expired.text().contains("expired"), "{}", expired.text());
    let fresh = s.token();
    assert_eq!(
        s.restore_v2(&fresh, &["k"], &v).as_deref(),
        Some(&b"good"[..]),
        "nothing touched"
    );
}

#[test]
fn bad_input_gets_4xx_twirp_errors() {
    let s = Srv::start();
    let token = s.token();
    let auth = format!("Bearer {token}");
    let post = |method: &str, body: &[u8]| {
        http(
            "POST",
            &s.url(&format!("{}{method}", super::TWIRP)),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(body),
        )
    };
    let malformed = post("CreateCacheEntry", b"{not json");
    assert_eq!(
        (malformed.status, malformed.json()["code"].clone()),
        (400, json!("malformed"))
    );
    let unknown = post("DeleteEverything", b"{}");
    assert_eq!(
        (unknown.status, unknown.json()["code"].clone()),
        (404, json!("bad_route"))
    );
    let long_key = "k".repeat(513);
    let rows = [
        json!({"key": long_key, "version": version(1)}),
        json!({"key": "a,b", "version": version(1)}),
        json!({"key": "", "version": version(1)}),
        json!({"key": "k", "version": "abc"}),
        json!({"key": "k", "version": format!("{}zz", "0".repeat(62))}),
    ];
    for body in rows {
        let reply = s.twirp(&token, "CreateCacheEntry", body.clone());
        assert_eq!(reply.status, 400, "{body}: {}", reply.text());
        assert_eq!(reply.json()["code"], "invalid_argument", "{body}");
        assert!(reply.json()["msg"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let bad_size = s.twirp(
        &token,
        "FinalizeCacheEntryUpload",
        json!({"key": "k", "version": version(1), "size_bytes": "-1"}),
    );
    assert_eq!(bad_size.status, 400);
    let no_upload = s.finalize(&token, "never-created", &version(1), 3);
    assert_eq!(no_upload.status, 404);
    let traversal = http(
        "PUT",
        &s.url("/blobs/uploads/..%2F..%2Findex.sqlite?se=1&sig=x&rid=y"),
        &[("x-ms-blob-type", "BlockBlob")],
        Some(b"x"),
    );
    assert!(
        traversal.status == 403 || traversal.status == 404,
        "{}",
        traversal.status
    );
    let entry_traversal = http(
        "GET",
        &s.url("/blobs/entries/..%2F..%2Fetc?se=1&sig=x"),
        &[],
        None,
    );
    assert_eq!(entry_traversal.status, 403);
    let too_many: Vec<String> = (0..11).map(|i| format!("k{i}")).collect();
    let reply = s.twirp(
        &token,
        "GetCacheEntryDownloadURL",
        json!({"key": "k", "restore_keys": too_many, "version": version(1)}),
    );
    assert_eq!(reply.status, 400);
    assert_eq!(s.h.entry_count(), 0);
}

#[test]
fn put_blob_needs_the_block_blob_type_and_caps_the_body() {
    let s = Srv::with(|c| c.max_body_size = 1000);
    let token = s.token();
    let v = version(7);
    let url = s.create(&token, "k", &v).expect("created");
    let untyped = http("PUT", &url, &[], Some(b"abc"));
    assert_eq!(untyped.status, 400);
    let big = put_blob(&url, &bytes(5000, 1));
    assert_eq!(big.status, 413, "{}", big.text());
    assert_eq!(big.header("x-ms-error-code"), Some("RequestBodyTooLarge"));
    let nothing = s.finalize(&token, "k", &v, 5000);
    assert_eq!(
        nothing.status,
        400,
        "nothing was stored: {}",
        nothing.text()
    );
    assert_eq!(s.h.entry_count(), 0);
}

#[test]
fn entries_over_the_size_cap_are_refused_and_nothing_is_stored() {
    let s = Srv::with(|c| c.max_entry_size = 100);
    let token = s.token();
    let v = version(8);
    let url = s.create(&token, "k", &v).expect("created");
    for (i, chunk) in [bytes(60, 1), bytes(60, 2)].iter().enumerate() {
        let id = STANDARD.encode([i as u8 + 1; 48]);
        let reply = http(
            "PUT",
            &format!("{url}&comp=block&blockid={}", encode(&id)),
            &[],
            Some(chunk),
        );
        assert_eq!(reply.status, 201);
    }
    let list = format!(
        "<BlockList><Latest>{}</Latest><Latest>{}</Latest></BlockList>",
        STANDARD.encode([1u8; 48]),
        STANDARD.encode([2u8; 48])
    );
    assert_eq!(
        http(
            "PUT",
            &format!("{url}&comp=blocklist"),
            &[],
            Some(list.as_bytes())
        )
        .status,
        201
    );
    let over = s.finalize(&token, "k", &v, 120);
    assert_eq!(over.status, 413, "{}", over.text());
    assert!(
        over.json()["msg"]
            .as_str()
            .is_some_and(|m| m.contains("limit"))
    );
    assert_eq!(s.h.entry_count(), 0);
    assert_eq!(s.staged_uploads(), 0, "staged blocks are removed");
    // The reservation is gone too: a smaller archive can be saved.
    assert_eq!(s.save_v2(&token, "k", &v, b"small").status, 200);
}

#[test]
fn oversized_json_and_bad_urls_get_json_errors() {
    let s = Srv::start();
    let token = s.token();
    let huge = format!("{{\"key\":\"{}\"}}", "k".repeat(2 * 1024 * 1024));
    let auth = format!("Bearer {token}");
    let reply = http(
        "POST",
        &s.url(&format!("{}CreateCacheEntry", super::TWIRP)),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(huge.as_bytes()),
    );
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["code"], "resource_exhausted");
    let protobuf = http(
        "POST",
        &s.url(&format!("{}CreateCacheEntry", super::TWIRP)),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/protobuf"),
        ],
        Some(b"\x0a\x01k"),
    );
    assert_eq!(protobuf.status, 404);
    assert_eq!(protobuf.json()["code"], "bad_route");
    let bad_query = http(
        "GET",
        &s.url("/_apis/artifactcache/cache?keys=%FF%FE&version=1"),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(bad_query.status, 400, "{}", bad_query.text());
    assert!(bad_query.json()["message"].as_str().is_some());
    let bad_path = http(
        "PUT",
        &s.url("/blobs/uploads/%FF?se=1&sig=x"),
        &[],
        Some(b"x"),
    );
    assert_eq!(bad_path.status, 400, "{}", bad_path.text());
    assert_eq!(bad_path.header("x-ms-error-code"), Some("InvalidInput"));
}

#[test]
fn racing_finalizes_commit_once_and_never_500() {
    let s = Srv::start();
    let token = s.token();
    let v = version(9);
    let data = bytes(2_000_000, 9);
    let url = s.create(&token, "race", &v).expect("created");
    assert_eq!(put_blob(&url, &data).status, 201);
    let statuses: Vec<u16> = thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| s.finalize(&token, "race", &v, data.len()).status))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 404, 409].contains(s)),
        "{statuses:?}"
    );
    assert_eq!(s.h.entry_count(), 1);
}

#[test]
fn a_streamed_body_over_the_cap_and_a_broken_off_body_store_nothing() {
    use std::io::Write as _;
    let s = Srv::with(|c| c.max_body_size = 1000);
    let token = s.token();
    let v = version(10);
    let url = s.create(&token, "k", &v).expect("created");
    // No Content-Length (chunked): the cap is enforced while streaming.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let data = bytes(5000, 2);
    let mut reader = &data[..];
    let reply = agent
        .put(&url)
        .header("x-ms-blob-type", "BlockBlob")
        .send(ureq::SendBody::from_reader(&mut reader))
        .expect("answer");
    assert_eq!(reply.status().as_u16(), 413);
    // A client that announces 900 bytes, sends 10 and goes away.
    let path = url.trim_start_matches(&s.base);
    let mut socket =
        std::net::TcpStream::connect(s.base.trim_start_matches("http://")).expect("connect");
    write!(
        socket,
        "PUT {path} HTTP/1.1\r\nHost: x\r\nx-ms-blob-type: BlockBlob\r\nContent-Length: 900\r\n\r\n0123456789"
    )
    .expect("send");
    drop(socket);
    let nothing = s.finalize(&token, "k", &v, 10);
    assert_eq!(nothing.status, 400, "{}", nothing.text());
    // The broken-off body's temporary file goes away once the server sees the end.
    let upload_dir = s.h.dir.path().join("staging");
    let leftovers = || {
        std::fs::read_dir(&upload_dir)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
            .filter(|f| f.file_name() != "meta.json")
            .count()
    };
    // A Put Blob streams into the blob store's temporary directory: nothing stays there either.
    let blob_temp = s.h.dir.path().join("store/blobs-v1/tmp");
    let temp_files = || std::fs::read_dir(&blob_temp).into_iter().flatten().count();
    let mut polls = 0;
    while leftovers() > 0 || temp_files() > 0 {
        polls += 1;
        assert!(polls < 10_000, "a partial body was left behind");
        thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(s.h.entry_count(), 0);
}

#[test]
fn a_put_blob_is_written_once_straight_into_the_blob_store() {
    let s = Srv::start();
    let token = s.token();
    let v = version(11);
    let data = bytes(300_000, 3);
    let url = s.create(&token, "once", &v).expect("created");
    assert_eq!(put_blob(&url, &data).status, 201);
    // Before finalize the bytes already sit in the blob store under their digest, and staging
    // holds no second copy of them.
    let digest = runner::store::blob::digest_of(&data);
    assert!(
        s.h.cache
            .store()
            .blobs()
            .contains(&digest)
            .expect("contains"),
        "the Put Blob body is in the blob store before finalize"
    );
    let staged_bytes: u64 = std::fs::read_dir(s.h.dir.path().join("staging"))
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(staged_bytes < 1000, "staging holds {staged_bytes} bytes");
    // A wrong size still commits nothing; the right one commits the stored blob.
    assert_eq!(s.finalize(&token, "once", &v, data.len() + 1).status, 400);
    let done = s.finalize(&token, "once", &v, data.len());
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(s.restore_v2(&token, &["once"], &v), Some(data));
    assert_eq!(s.staged_uploads(), 0);
}

/// Lookups answer from a read and record the entry's use and their events afterwards, in
/// batches: once answered, the index this process reads shows every one of them.
#[test]
fn lookups_answered_at_once_are_all_recorded_before_the_index_is_read() {
    let s = Srv::start();
    let token = s.token();
    let data = bytes(2048, 9);
    assert_eq!(s.save_v2(&token, "rec", &version(1), &data).status, 200);
    let entry = s.h.cache.index().list(&Default::default()).expect("list")[0].clone();
    let events_before = s.h.cache.index().events(0).expect("events").len();
    s.h.clock.advance(60_000);
    thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                for _ in 0..5 {
                    let found = s.download_url(&token, &["rec"], &version(1));
                    assert_eq!(found["ok"], json!(true), "{found}");
                }
            });
        }
    });
    let miss = s.download_url(&token, &["none"], &version(1));
    assert_eq!(miss["ok"], json!(false));
    let used =
        s.h.cache
            .index()
            .get(&entry.id)
            .expect("get")
            .expect("entry");
    assert_eq!(used.access_count, entry.access_count + 40);
    assert_eq!(used.last_accessed_at, entry.last_accessed_at + 60_000);
    let events = s.h.cache.index().events(0).expect("events");
    assert_eq!(events.len(), events_before + 41);
}

/// `POST /_runner/v1/report-broken` checks the blob itself: a report of an intact entry
/// changes nothing, a second report within a minute is not checked again, an entry the job
/// cannot read is 404, and bad input is a 4xx JSON error.
#[test]
fn a_report_of_an_intact_entry_changes_nothing_and_other_repos_cannot_report() {
    let s = Srv::start();
    let token = s.token();
    let v = version(50);
    let data = bytes(10_000, 5);
    assert_eq!(s.save_v2(&token, "intact", &v, &data).status, 200);
    let report = |token: &str, key: &str, version: &str| {
        let body = json!({"key": key, "version": version}).to_string();
        http(
            "POST",
            &s.url("/_runner/v1/report-broken"),
            &[
                ("Authorization", &format!("Bearer {token}")),
                ("Content-Type", "application/json"),
            ],
            Some(body.as_bytes()),
        )
    };
    let first = report(&token, "intact", &v);
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json(), json!({"checked": true, "broken": false}));
    assert_eq!(s.restore_v2(&token, &["intact"], &v), Some(data));
    let again = report(&token, "intact", &v);
    assert_eq!(again.json(), json!({"checked": false, "broken": false}));
    let other = s.token_for("someone/else", MAIN, false);
    let foreign = report(&other, "intact", &v);
    assert_eq!(foreign.status, 404, "{}", foreign.text());
    assert_eq!(report(&token, "intact", "not-hex").status, 400);
    let anonymous = report("", "intact", &v);
    assert_eq!(anonymous.status, 401, "{}", anonymous.text());
}

/// Blocks staged again while the assembler may be copying them, at every moment of its work:
/// whatever it copied, the entry holds the bytes each block was last staged with.
#[test]
fn blocks_staged_again_while_being_assembled_store_their_last_bytes() {
    let s = Srv::start();
    let token = s.token();
    let id = |i: usize| STANDARD.encode(format!("6fa459ea-ee8a-3ca4-894e-db77e160355e{i:012}"));
    for round in 0..12u8 {
        let key = format!("race-{round}");
        let v = version(60 + round);
        let url = s.create(&token, &key, &v).expect("created");
        let first: Vec<Vec<u8>> = (0..6)
            .map(|i| bytes(150_000 + i, round ^ i as u8))
            .collect();
        let again = usize::from(round) % 6;
        let second = bytes(first[again].len() + 17, 200 - round);
        let put = |i: usize, data: &[u8]| {
            let block = format!("{url}&comp=block&blockid={}", encode(&id(i)));
            let reply = http("PUT", &block, &[], Some(data));
            assert_eq!(reply.status, 201, "{}", reply.text());
        };
        thread::scope(|scope| {
            for (i, chunk) in first.iter().enumerate() {
                if i == again {
                    // Staged, then staged again while the others (and the copying) go on.
                    let (put, chunk, second) = (&put, chunk, &second);
                    scope.spawn(move || {
                        put(i, chunk);
                        thread::sleep(std::time::Duration::from_millis(u64::from(round)));
                        put(i, second);
                    });
                } else {
                    let put = &put;
                    scope.spawn(move || put(i, chunk));
                }
            }
        });
        let ids: Vec<String> = (0..6).map(id).collect();
        put_block_list(&url, &ids);
        let mut expected = first.clone();
        expected[again] = second.clone();
        let expected: Vec<u8> = expected.concat();
        let done = s.finalize(&token, &key, &v, expected.len());
        assert_eq!(done.status, 200, "{key}: {}", done.text());
        assert_eq!(s.restore_v2(&token, &[&key], &v), Some(expected), "{key}");
    }
}
