//! `runner serve --direct-downloads`: with the blobs in S3 (moto), the download URL a client
//! gets is a presigned GET on the S3 endpoint, and fetching it yields the archive's exact bytes.

use std::sync::Arc;

use runner::cache::CacheOptions;
use runner::store::blob::{BlobStore, S3BlobStore, Verified};
use serde_json::json;

use super::{REPO, Srv, bytes, version};
use crate::cache::{Harness, MAIN};
use crate::support::http;

fn over_s3(direct: bool) -> Option<(Srv, String)> {
    let (_, url) = crate::store::blob_conformance_s3_url()?;
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let s3 = S3BlobStore::from_url(&url).expect("s3 store");
    let blobs: Arc<dyn BlobStore> = Arc::new(Verified::new(s3));
    let h = Harness::sqlite_over(CacheOptions::default(), blobs);
    Some((Srv::on(h, |c| c.direct_downloads = direct), endpoint))
}

#[test]
fn direct_downloads_hand_out_presigned_s3_urls() {
    let Some((s, endpoint)) = over_s3(true) else {
        return;
    };
    let token = s.token_for(REPO, MAIN, false);
    let data = bytes(3 * 1024 * 1024 + 17, 4);
    let saved = s.save_v2(&token, "direct", &version(1), &data);
    assert_eq!(saved.status, 200, "{}", saved.text());
    let found = s.download_url(&token, &["direct"], &version(1));
    assert_eq!(found["ok"], json!(true), "{found}");
    let url = found["signed_download_url"].as_str().expect("url");
    assert!(
        url.starts_with(&endpoint) && url.contains("X-Amz-Signature="),
        "not a presigned S3 URL: {url}"
    );
    assert!(!url.starts_with(&s.base), "{url}");
    let got = http("GET", url, &[], None);
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(got.body == data, "bytes differ");
    // v1 hands out the same kind of URL.
    let v1 = http(
        "GET",
        &s.url(&format!(
            "/_apis/artifactcache/cache?keys=direct&version={}",
            version(1)
        )),
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Accept", "application/json;api-version=6.0-preview.1"),
        ],
        None,
    );
    assert_eq!(v1.status, 200, "{}", v1.text());
    let location = v1.json()["archiveLocation"]
        .as_str()
        .expect("archiveLocation")
        .to_string();
    assert!(location.starts_with(&endpoint), "{location}");
    assert!(http("GET", &location, &[], None).body == data);
}

#[test]
fn without_the_flag_downloads_go_through_the_server() {
    let Some((s, _)) = over_s3(false) else {
        return;
    };
    let token = s.token_for(REPO, MAIN, false);
    let data = bytes(1000, 5);
    assert_eq!(s.save_v2(&token, "proxied", &version(1), &data).status, 200);
    let found = s.download_url(&token, &["proxied"], &version(1));
    let url = found["signed_download_url"].as_str().expect("url");
    assert!(url.starts_with(&s.base), "{url}");
    assert!(s.restore_v2(&token, &["proxied"], &version(1)) == Some(data));
}
