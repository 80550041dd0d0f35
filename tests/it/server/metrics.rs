//! `/metrics` scraped over real HTTP and read by a Prometheus text-format parser that is not
//! ours (`prometheus-parse`), and `/readyz` over a reachable and an unreachable store.

use std::collections::BTreeMap;

use prometheus_parse::{Scrape, Value};

use super::{REPO, Srv, bytes, version};
use crate::cache::{DAY, MAIN};
use crate::support::http;
use runner::server::metrics::{MAX_KEY_PREFIXES, OTHER_PREFIXES};
use runner::store::index::{EventKind, NewEvent};

/// `/metrics`, parsed.
pub(super) fn scrape(s: &Srv) -> Scrape {
    let reply = http("GET", &s.url("/metrics"), &[], None);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        reply.headers
    );
    let lines = reply
        .text()
        .lines()
        .map(|l| Ok(l.to_string()))
        .collect::<Vec<_>>();
    Scrape::parse(lines.into_iter()).expect("a Prometheus parser reads /metrics")
}

/// The value of the sample `name` whose labels include every one of `labels`.
pub(super) fn sample(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => None,
        })
}

#[test]
fn metrics_count_lookups_bytes_duplicates_evictions_and_usage() {
    let s = Srv::start();
    let token = s.token();
    let v = version(1);
    let save = |key: &str, size: usize| {
        // A fresh token: the clock jumps days ahead below.
        let reply = s.save_v2(&s.token(), key, &v, &bytes(size, size as u8));
        assert_eq!(reply.status, 200, "{key}: {}", reply.text());
    };
    save("npm-linux-aaa", 100);
    save("pip-linux-bbb", 40);
    assert!(s.restore_v2(&token, &["npm-linux-aaa"], &v).is_some()); // exact
    assert!(
        s.restore_v2(&token, &["npm-linux-zzz", "npm-linux-"], &v)
            .is_some()
    ); // partial
    assert_eq!(s.restore_v2(&token, &["go-linux-ccc"], &v), None); // miss
    // A second save of an existing entry is refused as a duplicate.
    let twice = s.create(&token, "npm-linux-aaa", &v);
    assert!(twice.is_err(), "{twice:?}");
    // One manual deletion, and one entry left unused past the TTL.
    let admin = s.admin_token(REPO, true);
    let deleted = s.rest(
        "DELETE",
        "/repos/octo/app/actions/caches?key=pip-linux-bbb",
        &admin,
    );
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    save("old-1", 30);
    s.h.clock.advance(8 * DAY);
    save("new-1", 20);
    s.h.cache.prune(false).expect("prune");

    let m = scrape(&s);
    let repo = ("repository", REPO);
    let lookups = |outcome: &str| {
        sample(
            &m,
            "runner_cache_lookups_total",
            &[repo, ("outcome", outcome)],
        )
    };
    assert_eq!(
        (lookups("exact"), lookups("partial"), lookups("miss")),
        (Some(1.0), Some(1.0), Some(1.0))
    );
    let prefix = |p: &str, outcome: &str| {
        sample(
            &m,
            "runner_cache_key_prefix_lookups_total",
            &[repo, ("prefix", p), ("outcome", outcome)],
        )
    };
    assert_eq!(prefix("npm-linux-", "exact"), Some(1.0));
    assert_eq!(prefix("npm-linux-", "partial"), Some(1.0));
    assert_eq!(prefix("go-linux-", "miss"), Some(1.0));
    assert_eq!(
        sample(&m, "runner_cache_restored_bytes_total", &[repo]),
        Some(200.0)
    );
    assert_eq!(
        sample(&m, "runner_cache_saved_bytes_total", &[repo]),
        Some(190.0)
    );
    assert_eq!(sample(&m, "runner_cache_saves_total", &[repo]), Some(4.0));
    assert_eq!(
        sample(&m, "runner_cache_duplicate_saves_total", &[repo]),
        Some(1.0)
    );
    let evictions = |reason: &str| {
        sample(
            &m,
            "runner_cache_evictions_total",
            &[repo, ("reason", reason)],
        )
    };
    // npm-linux-aaa and old-1 were unused for 8 days; the size budget was never reached.
    assert_eq!(
        (evictions("manual"), evictions("ttl"), evictions("size")),
        (Some(1.0), Some(2.0), Some(0.0))
    );
    assert_eq!(sample(&m, "runner_cache_entries", &[repo]), Some(1.0));
    assert_eq!(sample(&m, "runner_cache_size_bytes", &[repo]), Some(20.0));
    // The Twirp route's latency histogram counted its requests.
    let histogram = m
        .samples
        .iter()
        .find(|s| {
            s.metric == "runner_http_request_duration_seconds"
                && s.labels.get("route")
                    == Some("/twirp/github.actions.results.api.v1.CacheService/:method")
                && s.labels.get("status") == Some("2xx")
        })
        .unwrap_or_else(|| {
            let routes: Vec<_> = m
                .samples
                .iter()
                .filter(|s| s.metric.starts_with("runner_http"))
                .map(|s| (&s.metric, &s.labels))
                .collect();
            panic!("no latency histogram of the Twirp route: {routes:?}")
        });
    let Value::Histogram(buckets) = &histogram.value else {
        panic!("not a histogram: {histogram:?}");
    };
    let total = buckets.last().map(|b| b.count).unwrap_or(0.0);
    assert!(total >= 8.0, "{buckets:?}");
    // `runner cache stats` reads the same events.
    let stats = s.h.cache.index().stats(0, Some(REPO)).expect("stats");
    assert_eq!(
        stats.count(EventKind::HitExact) as f64,
        lookups("exact").unwrap_or(-1.0)
    );
    assert_eq!(stats.bytes_restored as f64, 200.0);
}

#[test]
fn key_prefix_series_are_capped() {
    let s = Srv::start();
    for i in 0..MAX_KEY_PREFIXES + 10 {
        // Keys with a run id: each prefix is new, the most looked-up ones come first.
        for _ in 0..(1 + usize::from(i < MAX_KEY_PREFIXES)) {
            let event = NewEvent {
                repository: REPO.into(),
                scope: MAIN.into(),
                kind: EventKind::Miss,
                key: format!("run{i:03}-x"),
                matched_key: None,
                bytes: None,
                duration_ms: None,
            };
            s.h.cache.index().record_event(&event).expect("event");
        }
    }
    let m = scrape(&s);
    let by_prefix: BTreeMap<&str, f64> = m
        .samples
        .iter()
        .filter(|s| s.metric == "runner_cache_key_prefix_lookups_total")
        .filter_map(|s| match s.value {
            Value::Counter(v) => Some((s.labels.get("prefix")?, v)),
            _ => None,
        })
        .collect();
    assert_eq!(by_prefix.len(), MAX_KEY_PREFIXES + 1, "{by_prefix:?}");
    assert_eq!(by_prefix.get(OTHER_PREFIXES), Some(&10.0));
    assert_eq!(by_prefix.get("run000-"), Some(&2.0));
    assert_eq!(
        sample(&m, "runner_cache_lookups_total", &[("outcome", "miss")]),
        Some((2 * MAX_KEY_PREFIXES + 10) as f64)
    );
}

#[test]
fn readyz_checks_the_index_and_the_blob_store() {
    let s = Srv::start();
    let ready = http("GET", &s.url("/readyz"), &[], None);
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));
    let health = http("GET", &s.url("/healthz"), &[], None);
    assert_eq!(health.status, 200);
    // The blob directory replaced by a file: the store cannot answer.
    let blobs = s.h.store_dir().join("blobs-v1");
    let aside = s.h.dir.path().join("blobs-aside");
    std::fs::rename(&blobs, &aside).expect("move the blobs aside");
    std::fs::write(&blobs, b"not a directory").expect("a file in its place");
    let down = http("GET", &s.url("/readyz"), &[], None);
    std::fs::remove_file(&blobs).expect("remove the file");
    std::fs::rename(&aside, &blobs).expect("put the blobs back");
    assert_eq!(down.status, 503, "{}", down.text());
    assert!(down.text().contains("blob store"), "{}", down.text());
    let back = http("GET", &s.url("/readyz"), &[], None);
    assert_eq!(back.status, 200, "{}", back.text());
}
