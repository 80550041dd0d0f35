//! Restore-lookup latency on a SQLite index holding 100,000 entries (target: median < 2 ms).
//! Run with `bench/lookup/run.sh` (or `cargo bench --bench lookup`); `LOOKUP_BENCH_ENTRIES`
//! changes the size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use runner::clock::SystemClock;
use runner::store::blob::BlobInfo;
use runner::store::index::{Index, LookupQuery, NewEntry, Reservation};

const REPOS: usize = 10;
const SCOPES: [&str; 4] = [
    "refs/heads/main",
    "refs/heads/feature-a",
    "refs/heads/feature-b",
    "refs/pull/7/merge",
];
const FAMILIES: [&str; 5] = ["node-modules", "cargo-registry", "pip", "gradle", "ccache"];
const SAMPLES: usize = 2000;

/// Builds the lookup for the i-th entry.
type MakeQuery = fn(usize) -> LookupQuery;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let entries: usize = std::env::var("LOOKUP_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("index.sqlite").display());
    let index = Index::open(&url, Arc::new(SystemClock))?;

    let started = Instant::now();
    for i in 0..entries {
        let new = entry(i);
        if let Reservation::Reserved(id) = index.reserve(&new)? {
            index.commit(
                &id,
                &BlobInfo {
                    digest: format!("{i:064x}"),
                    size: 1_000_000 + i as u64,
                },
            )?;
        }
    }
    println!(
        "populated {entries} entries in {:.1} s ({REPOS} repositories x {} scopes x {} key \
         families: each restore-key prefix matches ~{} entries of its repository, version and scope)",
        started.elapsed().as_secs_f64(),
        SCOPES.len(),
        FAMILIES.len(),
        entries / (REPOS * SCOPES.len())
    );

    // Restore lookups as actions/cache issues them from a feature branch: scopes
    // [feature, main], primary key then a restore-key prefix.
    let scenarios: [(&str, MakeQuery); 3] = [
        ("exact hit on primary key", |i| {
            let e = entry(i);
            query(&e, vec![e.key.clone(), restore_prefix(&e)])
        }),
        ("primary miss, restore-key prefix hit", |i| {
            let e = entry(i);
            query(&e, vec![format!("{}-nope", e.key), restore_prefix(&e)])
        }),
        ("complete miss", |i| {
            let e = entry(i);
            query(&e, vec!["absent-key".into(), "absent-".into()])
        }),
    ];
    let mut all = Vec::new();
    for (name, make) in scenarios {
        let mut times = Vec::with_capacity(SAMPLES);
        for s in 0..SAMPLES {
            let q = make((s * 7919) % entries);
            let t = Instant::now();
            let hit = index.lookup(&q)?;
            times.push(t.elapsed());
            if name.starts_with("complete") == hit.is_some() {
                return Err(format!("{name}: unexpected result for {q:?}").into());
            }
        }
        report(name, &mut times);
        all.extend(times);
    }
    let median = report("all restore lookups", &mut all);
    println!(
        "target: median < 2 ms -> {} ({:.1}x under)",
        if median < Duration::from_millis(2) {
            "met"
        } else {
            "MISSED"
        },
        2.0 / (median.as_secs_f64() * 1000.0)
    );
    Ok(())
}

fn entry(i: usize) -> NewEntry {
    let family = FAMILIES[i % FAMILIES.len()];
    NewEntry {
        repository: format!("org/repo-{}", i % REPOS),
        scope: SCOPES[(i / REPOS) % SCOPES.len()].to_string(),
        key: format!(
            "{family}-Linux-{:016x}",
            (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ),
        version: format!("{:064x}", i % FAMILIES.len()),
        paths: vec![format!("~/.cache/{family}")],
        compression: "zstd-without-long".into(),
        created_by_run: None,
        roots: None,
    }
}

fn restore_prefix(e: &NewEntry) -> String {
    let family = e.key.split("-Linux-").next().unwrap_or("");
    format!("{family}-Linux-")
}

fn query(e: &NewEntry, keys: Vec<String>) -> LookupQuery {
    let mut scopes = vec!["refs/heads/feature-b".to_string()];
    if e.scope != "refs/heads/feature-b" {
        scopes.push(e.scope.clone());
    }
    LookupQuery {
        repository: e.repository.clone(),
        scopes,
        keys,
        version: e.version.clone(),
    }
}

fn report(name: &str, times: &mut [Duration]) -> Duration {
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:<40} n={:<5} median {:.3} ms  p90 {:.3} ms  p99 {:.3} ms",
        times.len(),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99))
    );
    at(0.5)
}
