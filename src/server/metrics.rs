//! `GET /metrics` (Prometheus text format, via `prometheus-client`), `GET /readyz`, and the
//! per-route request latency histograms.
//!
//! The cache numbers are the store's, not this process's: they are read from the events and
//! entries tables at scrape time (the same rows `runner cache stats` reads), so every server in
//! front of one index reports the same totals and a restart loses nothing. Only the latency
//! histograms are per process.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use super::error::{ApiError, error_chain};
use super::uploads::blocking;
use super::{Inner, Server};
use crate::store::index::{EventKind, EventTally, IndexError, KeyTally, MANUAL, RepoUsage};

/// Key prefixes reported one by one; lookups of every other prefix are summed under
/// [`OTHER_PREFIXES`], so keys with a run id in them cannot blow up the series count.
pub const MAX_KEY_PREFIXES: usize = 50;
/// The `prefix` label of the lookups beyond [`MAX_KEY_PREFIXES`].
pub const OTHER_PREFIXES: &str = "(other)";

type Labels = Vec<(&'static str, String)>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … ~33 s: a lookup is milliseconds, a large upload seconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// What this process measures itself: request latency per route.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    latency: Histograms,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            latency: Family::new_with_constructor(latency_histogram),
        }
    }
}

/// `/metrics` and `/readyz` (`/healthz` stays with the server's own routes).
pub fn routes() -> Router<Server> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
}

/// Middleware: times each request and files it under its route pattern (never its concrete
/// path, which holds ids), method and status class.
pub async fn track(State(server): State<Server>, request: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_string(), |p| route_label(p.as_str()));
    let method = request.method().as_str().to_string();
    let response = next.run(request).await;
    let status = format!("{}xx", response.status().as_u16() / 100);
    server
        .inner
        .http_metrics
        .latency
        .get_or_create(&vec![
            ("route", route),
            ("method", method),
            ("status", status),
        ])
        .observe(start.elapsed().as_secs_f64());
    response
}

/// A route pattern as a label: `{name}` captures written `:name`, so that even exposition
/// parsers that split on braces read it.
fn route_label(pattern: &str) -> String {
    pattern.replace('{', ":").replace('}', "")
}

/// The key prefix a lookup is counted under: the key up to its last `-` (`npm-linux-` of
/// `npm-linux-5f2a`), the whole key when it has none.
pub fn key_prefix(key: &str) -> &str {
    key.rfind('-').map_or(key, |i| &key[..=i])
}

/// The `outcome` label of a lookup event.
fn outcome(kind: EventKind) -> Option<&'static str> {
    match kind {
        EventKind::HitExact => Some("exact"),
        EventKind::HitPartial => Some("partial"),
        EventKind::Miss => Some("miss"),
        _ => None,
    }
}

/// The `reason` label of an eviction: `ttl` for entries unused too long (stored as `unused`).
fn eviction_reason(stored: Option<&str>) -> String {
    match stored {
        Some("unused") => "ttl".to_string(),
        Some(reason) => reason.to_string(),
        None => "unknown".to_string(),
    }
}

/// The store's numbers, as read for one scrape.
struct StoreNumbers {
    events: Vec<EventTally>,
    keys: Vec<KeyTally>,
    usage: Vec<RepoUsage>,
}

fn read_numbers(inner: &Inner) -> Result<StoreNumbers, IndexError> {
    inner.with_index(|| {
        let index = inner.cache.index();
        Ok(StoreNumbers {
            events: index.event_tallies()?,
            keys: index.lookup_key_tallies()?,
            usage: index.usage(None)?,
        })
    })
}

fn counters() -> Family<Labels, Counter> {
    Family::default()
}

fn repo(repository: &str) -> (&'static str, String) {
    ("repository", repository.to_string())
}

/// The registry of one scrape: store numbers as counters and gauges, plus the latency family.
fn registry(numbers: &StoreNumbers, http: &HttpMetrics) -> Registry {
    let lookups = counters();
    let restored = counters();
    let saves = counters();
    let saved = counters();
    let duplicates = counters();
    let errors = counters();
    let evictions = counters();
    let evicted = counters();
    for t in &numbers.events {
        let by_repo = vec![repo(&t.repository)];
        match t.kind {
            EventKind::HitExact | EventKind::HitPartial | EventKind::Miss => {
                let mut labels = by_repo.clone();
                labels.extend(outcome(t.kind).map(|o| ("outcome", o.to_string())));
                lookups.get_or_create(&labels).inc_by(t.count);
                restored.get_or_create(&by_repo).inc_by(t.bytes);
            }
            EventKind::Save => {
                saves.get_or_create(&by_repo).inc_by(t.count);
                saved.get_or_create(&by_repo).inc_by(t.bytes);
            }
            EventKind::Skip => {
                duplicates.get_or_create(&by_repo).inc_by(t.count);
            }
            EventKind::Error => {
                errors.get_or_create(&by_repo).inc_by(t.count);
            }
            EventKind::Evict => {
                let mut labels = by_repo;
                labels.push(("reason", eviction_reason(t.reason.as_deref())));
                evictions.get_or_create(&labels).inc_by(t.count);
                evicted.get_or_create(&labels).inc_by(t.bytes);
            }
        }
    }
    // Every reason appears, at 0 until it happens, so dashboards and alerts have a series.
    for u in &numbers.usage {
        for reason in ["ttl", "size", MANUAL] {
            let labels = vec![repo(&u.repository), ("reason", reason.to_string())];
            let _ = evictions.get_or_create(&labels);
        }
    }

    let prefixes = counters();
    for ((repository, prefix, outcome), count) in capped_prefixes(&numbers.keys) {
        prefixes
            .get_or_create(&vec![
                repo(&repository),
                ("prefix", prefix),
                ("outcome", outcome.to_string()),
            ])
            .inc_by(count);
    }

    let entries: Family<Labels, Gauge> = Family::default();
    let bytes: Family<Labels, Gauge> = Family::default();
    for u in &numbers.usage {
        let labels = vec![repo(&u.repository)];
        entries
            .get_or_create(&labels)
            .set(i64::try_from(u.entries).unwrap_or(i64::MAX));
        bytes
            .get_or_create(&labels)
            .set(i64::try_from(u.size_bytes).unwrap_or(i64::MAX));
    }

    let mut registry = Registry::default();
    registry.register(
        "runner_cache_lookups",
        "Cache lookups by repository and outcome (exact, partial, miss)",
        lookups,
    );
    registry.register(
        "runner_cache_key_prefix_lookups",
        "Cache lookups by key prefix (the key up to its last '-'; the rarest beyond the cap are summed as '(other)')",
        prefixes,
    );
    registry.register_with_unit(
        "runner_cache_restored",
        "Archive bytes restored by cache hits",
        Unit::Bytes,
        restored,
    );
    registry.register("runner_cache_saves", "Entries saved", saves);
    registry.register_with_unit(
        "runner_cache_saved",
        "Archive bytes saved",
        Unit::Bytes,
        saved,
    );
    registry.register(
        "runner_cache_duplicate_saves",
        "Saves refused because the entry exists or another job is creating it",
        duplicates,
    );
    registry.register(
        "runner_cache_errors",
        "Restores and saves that failed",
        errors,
    );
    registry.register(
        "runner_cache_evictions",
        "Entries evicted by reason (ttl: unused too long, size: over the budget, manual: deleted on request, broken)",
        evictions,
    );
    registry.register_with_unit(
        "runner_cache_evicted",
        "Archive bytes evicted by reason",
        Unit::Bytes,
        evicted,
    );
    registry.register(
        "runner_cache_entries",
        "Committed entries per repository",
        entries,
    );
    registry.register_with_unit(
        "runner_cache_size",
        "Bytes of committed entries per repository",
        Unit::Bytes,
        bytes,
    );
    registry.register_with_unit(
        "runner_http_request_duration",
        "Request latency per route, method and status class (this server process)",
        Unit::Seconds,
        http.latency.clone(),
    );
    registry
}

/// Lookups by (repository, key prefix, outcome): the [`MAX_KEY_PREFIXES`] most looked-up
/// (repository, prefix) pairs one by one, the rest summed per repository under
/// [`OTHER_PREFIXES`].
fn capped_prefixes(keys: &[KeyTally]) -> BTreeMap<(String, String, &'static str), u64> {
    let mut per_prefix: HashMap<(&str, &str), u64> = HashMap::new();
    for t in keys {
        *per_prefix
            .entry((t.repository.as_str(), key_prefix(&t.key)))
            .or_default() += t.count;
    }
    let mut ranked: Vec<((&str, &str), u64)> = per_prefix.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let kept: std::collections::HashSet<(&str, &str)> = ranked
        .into_iter()
        .take(MAX_KEY_PREFIXES)
        .map(|(pair, _)| pair)
        .collect();
    let mut out = BTreeMap::new();
    for t in keys {
        let Some(outcome) = outcome(t.kind) else {
            continue;
        };
        let prefix = key_prefix(&t.key);
        let label = if kept.contains(&(t.repository.as_str(), prefix)) {
            prefix.to_string()
        } else {
            OTHER_PREFIXES.to_string()
        };
        *out.entry((t.repository.clone(), label, outcome))
            .or_default() += t.count;
    }
    out
}

/// `GET /metrics`.
async fn metrics(State(server): State<Server>) -> Response {
    let inner = server.inner.clone();
    let numbers = blocking(move || read_numbers(&inner).map_err(|err| ApiError::internal(&err)));
    let numbers = match numbers.await {
        Ok(numbers) => numbers,
        Err(err) => return err.into_response(),
    };
    let mut text = String::new();
    if let Err(err) =
        prometheus_text::encode(&mut text, &registry(&numbers, &server.inner.http_metrics))
    {
        return ApiError::internal(&err).into_response();
    }
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(prometheus_text::CONTENT_TYPE),
    );
    response
}

/// `GET /readyz`: 200 when the index answers a query and the blob store a lookup; 503 naming
/// the part that does not.
async fn readyz(State(server): State<Server>) -> Response {
    let inner = server.inner.clone();
    let checked = tokio::task::spawn_blocking(move || {
        if let Err(err) = inner.with_index(|| inner.cache.index().ping()) {
            return Err(format!("index: {}", error_chain(&err)));
        }
        // A digest no blob has: a reachable store answers "not there".
        let probe = "0".repeat(64);
        if let Err(err) = inner.cache.store().blobs().stat(&probe) {
            return Err(format!("blob store: {}", error_chain(&err)));
        }
        Ok(())
    })
    .await;
    match checked {
        Ok(Ok(())) => "ready\n".into_response(),
        Ok(Err(why)) => {
            tracing::warn!(reason = %why, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {why}\n"),
            )
                .into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_prefixes_end_at_the_last_dash() {
        let rows = [
            ("npm-linux-5f2a", "npm-linux-"),
            ("cargo-", "cargo-"),
            ("plain", "plain"),
            ("", ""),
        ];
        for (key, prefix) in rows {
            assert_eq!(key_prefix(key), prefix, "{key}");
        }
    }

    #[test]
    fn prefixes_beyond_the_cap_are_summed_as_other() {
        let keys: Vec<KeyTally> = (0..MAX_KEY_PREFIXES + 5)
            .map(|i| KeyTally {
                repository: "o/r".into(),
                kind: EventKind::Miss,
                key: format!("p{i:03}-x"),
                // The first ones are the most looked up.
                count: (1000 - i) as u64,
            })
            .collect();
        let capped = capped_prefixes(&keys);
        assert_eq!(capped.len(), MAX_KEY_PREFIXES + 1);
        let other: u64 = (MAX_KEY_PREFIXES..MAX_KEY_PREFIXES + 5)
            .map(|i| (1000 - i) as u64)
            .sum();
        assert_eq!(
            capped.get(&("o/r".into(), OTHER_PREFIXES.into(), "miss")),
            Some(&other)
        );
        assert!(capped.contains_key(&("o/r".into(), "p000-".into(), "miss")));
    }
}
