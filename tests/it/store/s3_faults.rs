//! S3 faults with real parts: moto (from `.ci/run`) behind a fault-injecting proxy, the cache
//! actions saving and restoring through a tiered S3 store on it. A remote that answers 500s,
//! stops mid-upload or stalls past the timeout makes a restore a miss with a warning and a save
//! a warning; the step goes on, and neither the index nor the bucket shows anything half-written.

use std::sync::Arc;
use std::time::Duration;

use runner::cache::CacheOptions;
use runner::exec::LogLevel::Warning;
use runner::store::blob::{BlobStore, LocalBlobStore, S3BlobStore, S3Options, Tiered, Verified};

use crate::cache::{Harness, MAIN};
use crate::support::{Fault, FaultProxy, s3_objects, write_tree};

/// A cache over a tiered S3 store whose requests go through a fault proxy.
struct Rig {
    h: Harness,
    proxy: FaultProxy,
    tier: tempfile::TempDir,
    bucket: String,
    prefix: String,
}

fn rig() -> Option<Rig> {
    let (base, url) = super::blob_conformance::s3_test_url()?;
    let Some(endpoint) = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (see .ci/run)");
        return None;
    };
    let proxy = FaultProxy::start(&endpoint);
    // Short on purpose: the stall test waits out three of them.
    let options = S3Options {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        max_retries: 2,
        init_backoff: Duration::from_millis(50),
        retry_timeout: Duration::from_secs(20),
        endpoint: Some(proxy.url.clone()),
    };
    let s3 = S3BlobStore::from_url_with(&url, &options).expect("s3 store");
    let tier = tempfile::tempdir().expect("tempdir");
    let local = LocalBlobStore::new(tier.path()).expect("local tier");
    let blobs: Arc<dyn BlobStore> = Arc::new(Verified::new(Tiered::new(local, s3)));
    let h = Harness::sqlite_over(CacheOptions::default(), blobs);
    let bucket = base.trim_start_matches("s3://").to_string();
    let prefix = url.rsplit('/').next().unwrap_or_default().to_string();
    Some(Rig {
        h,
        proxy,
        tier,
        bucket,
        prefix,
    })
}

impl Rig {
    fn objects(&self) -> Vec<String> {
        s3_objects(&self.bucket, &self.prefix)
    }

    /// Saves `deps/` under `key` and returns the warnings.
    fn save(&self, key: &str) -> Vec<String> {
        let job = self.h.job(MAIN);
        let step = self.h.main(
            "actions/cache/save@v4",
            &job,
            &[("path", "deps"), ("key", key)],
        );
        step.ok();
        step.lines(Warning).iter().map(|w| w.to_string()).collect()
    }

    /// Restores `key` into `deps/` and returns (cache-hit output, warnings).
    fn restore(&self, key: &str) -> (String, Vec<String>) {
        let job = self.h.job(MAIN);
        let step = self.h.main(
            "actions/cache/restore@v4",
            &job,
            &[("path", "deps"), ("key", key)],
        );
        step.ok();
        let hit = step.output("cache-hit").unwrap_or("unset").to_string();
        let warnings = step.lines(Warning).iter().map(|w| w.to_string()).collect();
        (hit, warnings)
    }

    /// Forgets the local tier's copies, so the next restore must read S3.
    fn empty_the_local_tier(&self) {
        let root = self.tier.path().join("blobs-v1");
        for shard in std::fs::read_dir(&root).expect("tier dir").flatten() {
            if shard.file_name() != "tmp" {
                std::fs::remove_dir_all(shard.path()).expect("remove shard");
            }
        }
    }

    /// Every entry, reserved ones included.
    fn entries(&self) -> Vec<String> {
        let filter = runner::store::index::ListFilter {
            include_reserved: true,
            ..Default::default()
        };
        self.h
            .cache
            .index()
            .list(&filter)
            .expect("list")
            .into_iter()
            .map(|e| format!("{} {:?}", e.key, e.state))
            .collect()
    }
}

/// Bytes that do not compress: 30 MiB of letters, so the
/// archive (about 18 MiB) is a multipart upload of three parts.
fn big_noise() -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..30 * 1024 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// Saves one good entry, empties the local tier, applies `fault`, and checks that a save and a
/// restore both fail softly and leave nothing half-written.
fn survives(fault: Fault, big: bool) {
    let Some(rig) = rig() else {
        return;
    };
    let small = "node_modules would be here";
    write_tree(&rig.h.workspace(), &[("deps/a", small)]);
    assert!(rig.save("good").is_empty(), "a healthy save warns nothing");
    let good_objects = rig.objects();
    assert_eq!(good_objects.len(), 1, "{good_objects:?}");
    rig.empty_the_local_tier();

    rig.proxy.set(fault);
    let before = rig.proxy.requests();
    let contents = if big {
        big_noise()
    } else {
        "other".repeat(100)
    };
    write_tree(&rig.h.workspace(), &[("deps/a", contents.as_str())]);
    let warnings = rig.save("bad");
    assert!(
        warnings.iter().any(|w| w.starts_with("Failed to save: ")),
        "{fault:?}: {warnings:?}"
    );
    assert!(
        rig.proxy.requests() > before + 1,
        "{fault:?}: the failed request was retried"
    );
    if let Fault::DownAfter(_) = fault {
        assert_eq!(rig.proxy.fault(), Fault::Down, "the cut came mid-upload");
    }
    assert_eq!(
        rig.entries(),
        vec!["good Committed".to_string()],
        "{fault:?}: no entry, reserved or committed, for the failed save"
    );
    assert_eq!(
        rig.objects(),
        good_objects,
        "{fault:?}: nothing but the good blob in the bucket"
    );

    std::fs::remove_dir_all(rig.h.workspace().join("deps")).expect("clear deps");
    let (hit, warnings) = rig.restore("good");
    assert_eq!(hit, "unset", "{fault:?}: a miss");
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("Failed to restore: ")),
        "{fault:?}: {warnings:?}"
    );
    assert!(
        !rig.h.workspace().join("deps").exists(),
        "{fault:?}: nothing half-restored"
    );
    assert!(
        std::fs::read_dir(rig.tier.path().join("blobs-v1/tmp"))
            .expect("tier tmp")
            .next()
            .is_none(),
        "{fault:?}: no partial copy in the local tier"
    );

    // The remote heals: the good entry restores, byte for byte.
    rig.proxy.set(Fault::Pass);
    let (hit, warnings) = rig.restore("good");
    assert_eq!((hit.as_str(), warnings.len()), ("true", 0), "{warnings:?}");
    assert_eq!(
        std::fs::read_to_string(rig.h.workspace().join("deps/a")).expect("restored"),
        small
    );
}

#[test]
fn s3_answering_500s() {
    survives(Fault::Status500, false);
}

#[test]
fn s3_stopped_mid_upload() {
    // Down after the first of the three parts went through.
    survives(Fault::DownAfter(9 * 1024 * 1024), true);
}

#[test]
fn s3_stalling_beyond_the_timeout() {
    survives(Fault::Stall, false);
}
