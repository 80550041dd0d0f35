//! Seeds the store `RUNNER_CACHE_DIR` selects with committed index rows for
//! `bench/serve/run.sh`'s lookup latency phase:
//!   serve_seed <entries>
//! Entry i: repository `org/repo-{i % 10}`, scope `refs/heads/main` or `refs/heads/feature-b`
//! (alternating per repository), key `{family}-Linux-{i:08x}` with one of five families,
//! version `{i % 5:064x}`. The rows point at a digest that is never downloaded, so no blob
//! bytes are written. Prints one line: entries and seconds.

use std::sync::Arc;
use std::time::Instant;

use runner::clock::SystemClock;
use runner::store::blob::BlobInfo;
use runner::store::index::{NewEntry, Reservation};
use runner::store::{Store, StoreLocation};

const FAMILIES: [&str; 5] = ["node-modules", "cargo-registry", "pip", "gradle", "ccache"];

fn main() {
    if let Err(e) = run() {
        eprintln!("serve_seed: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let entries: usize = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => return Err("usage: serve_seed <entries>".into()),
    };
    // The library reads no settings; this tool is an edge, as the CLI is.
    let dir = std::env::var_os("RUNNER_CACHE_DIR").ok_or("set RUNNER_CACHE_DIR")?;
    let location = StoreLocation {
        database_url: std::env::var("RUNNER_CACHE_DB").ok(),
        ..StoreLocation::in_dir(dir)
    };
    let store = Store::open_at(&location, Arc::new(SystemClock))?;
    let started = Instant::now();
    for i in 0..entries {
        let family = FAMILIES[i % FAMILIES.len()];
        let new = NewEntry {
            repository: format!("org/repo-{}", i % 10),
            scope: if (i / 10) % 2 == 0 {
                "refs/heads/main"
            } else {
                "refs/heads/feature-b"
            }
            .to_string(),
            key: format!("{family}-Linux-{i:08x}"),
            version: format!("{:064x}", i % FAMILIES.len()),
            paths: vec![format!("~/.cache/{family}")],
            compression: "zstd-without-long".into(),
            created_by_run: None,
            roots: None,
        };
        if let Reservation::Reserved(id) = store.index().reserve(&new)? {
            let info = BlobInfo {
                digest: format!("{i:064x}"),
                size: 1_000_000 + i as u64,
            };
            store.index().commit(&id, &info)?;
        }
    }
    println!(
        "seeded {entries} entries in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
