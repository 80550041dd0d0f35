//! Seeds a store for `bench/ui/run.sh`: `ui_seed <cache dir> <entries>`. Entries are spread over
//! 10 repositories (`octo/repo-{i % 10}`), two refs and four key families, with sizes, last-use
//! times and restore counts that differ per entry; two weeks of lookup, save and eviction
//! events are recorded at their own times. Rows point at digests that are never downloaded,
//! so no blob bytes are written. Prints what it did.

use std::sync::Arc;
use std::time::Instant;

use runner::clock::{Clock, ManualClock, SystemClock};
use runner::store::blob::BlobInfo;
use runner::store::index::{BulkEntry, DAY_MILLIS, EventKind, Index, NewEntry, NewEvent};

const FAMILIES: [&str; 4] = ["npm", "cargo", "pip", "gradle"];

fn main() {
    if let Err(e) = run() {
        eprintln!("ui_seed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(n)) = (args.next(), args.next()) else {
        return Err("usage: ui_seed <cache dir> <entries>".into());
    };
    let entries: usize = n.parse()?;
    let now = SystemClock.now_millis();
    let clock = ManualClock::new(now - 14 * DAY_MILLIS);
    let url = runner::store::sqlite_url(&std::path::Path::new(&dir).join("index.sqlite"));
    let index = Index::open(&url, Arc::new(clock.clone()))?;
    let started = Instant::now();
    let rows: Vec<BulkEntry> = (0..entries)
        .map(|i| {
            let family = FAMILIES[i % FAMILIES.len()];
            BulkEntry {
                entry: NewEntry {
                    repository: format!("octo/repo-{}", i % 10),
                    scope: if i % 3 == 0 {
                        "refs/heads/feature"
                    } else {
                        "refs/heads/main"
                    }
                    .to_string(),
                    key: format!("{family}-Linux-x64-{i:08x}"),
                    version: format!("{:064x}", i % FAMILIES.len()),
                    paths: vec![format!("~/.cache/{family}")],
                    compression: "zstd-without-long".into(),
                    created_by_run: None,
                    roots: None,
                },
                blob: BlobInfo {
                    digest: format!("{i:064x}"),
                    size: 1_000_000 + (i as u64 * 7919) % 50_000_000,
                },
                created_at: now - (i as i64 * 6_007) % (14 * DAY_MILLIS),
                last_accessed_at: now - (i as i64 * 7_919) % DAY_MILLIS,
                access_count: (i as u64 * 31) % 200,
            }
        })
        .collect();
    index.bulk_insert(&rows)?;
    let mut events = 0;
    for day in 0..14 {
        for j in 0..100usize {
            let kind = match j % 10 {
                0..=5 => EventKind::HitExact,
                6 | 7 => EventKind::HitPartial,
                8 => EventKind::Miss,
                _ => EventKind::Save,
            };
            let key = format!("npm-Linux-x64-{:08x}", (day * 100 + j) % entries.max(1));
            index.record_event(&NewEvent {
                repository: format!("octo/repo-{}", j % 10),
                scope: "refs/heads/main".into(),
                kind,
                matched_key: (kind != EventKind::Miss).then(|| key.clone()),
                key,
                bytes: Some(5_000_000 + j as u64 * 10_000),
                duration_ms: Some(100),
            })?;
            events += 1;
            clock.advance(DAY_MILLIS / 100);
        }
    }
    println!(
        "seeded {entries} entries and {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
