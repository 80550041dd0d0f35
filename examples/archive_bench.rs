//! Drives `runner::archive` for `bench/archive/run.sh`:
//!   archive_bench create <workspace> <out.tzst> [--gzip] <path>...
//!   archive_bench extract <archive> <workspace> <allowed>...
//! Prints one line: wall seconds, entries, content bytes (and output size for create).
//! Knobs for experiments (defaults otherwise): ARCHIVE_BENCH_READERS, _ZSTD_WORKERS, _JOB_SIZE,
//! _OVERLAP_LOG, _LONG_AFTER (bytes; 0 = long-distance frame from the start), _WINDOW_LOG for
//! create, and ARCHIVE_BENCH_THREADS (writers) for extract.

use std::path::PathBuf;
use std::time::Instant;

use runner::archive::{self, Compression};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("archive_bench: {e}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    match args.first().map(String::as_str) {
        Some("create") if args.len() >= 4 => {
            let workspace = PathBuf::from(&args[1]);
            let out_path = PathBuf::from(&args[2]);
            let mut compression = Compression::Zstd;
            let mut paths = Vec::new();
            for a in &args[3..] {
                if a == "--gzip" {
                    compression = Compression::Gzip;
                } else {
                    paths.push(PathBuf::from(a));
                }
            }
            let start = Instant::now();
            let mut out = std::fs::File::create(&out_path)?;
            let mut opts = archive::CreateOptions::new(compression);
            opts.read_threads = env_num("ARCHIVE_BENCH_READERS").unwrap_or(0);
            opts.zstd_workers = env_num("ARCHIVE_BENCH_ZSTD_WORKERS").map(|n| n as u32);
            opts.zstd_job_size = env_num("ARCHIVE_BENCH_JOB_SIZE").map(|n| n as u32);
            opts.zstd_overlap_log = env_num("ARCHIVE_BENCH_OVERLAP_LOG").map(|n| n as u32);
            opts.zstd_long_after = env_num("ARCHIVE_BENCH_LONG_AFTER").map(|n| n as u64);
            opts.zstd_window_log = env_num("ARCHIVE_BENCH_WINDOW_LOG").map(|n| n as u32);
            let stats = archive::create_with(&workspace, &paths, &opts, &mut out)?;
            drop(out);
            let secs = start.elapsed().as_secs_f64();
            let size = std::fs::metadata(&out_path)?.len();
            println!(
                "create {secs:.3}s entries={} content={} archive={size} codec={:?}",
                stats.entries, stats.content_bytes, stats.compression
            );
            Ok(())
        }
        Some("extract") if args.len() >= 4 => {
            let mut input = std::fs::File::open(&args[1])?;
            let workspace = PathBuf::from(&args[2]);
            let allowed: Vec<PathBuf> = args[3..].iter().map(PathBuf::from).collect();
            let start = Instant::now();
            let opts = archive::ExtractOptions {
                write_threads: env_num("ARCHIVE_BENCH_THREADS").unwrap_or(0),
                ..archive::ExtractOptions::default()
            };
            let stats = archive::extract_with(&mut input, &workspace, &allowed, &opts)?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "extract {secs:.3}s entries={} content={}",
                stats.entries, stats.content_bytes
            );
            Ok(())
        }
        // Raw codec throughput, for comparing the zstd library's multithreading with `zstd -T0`.
        Some("zstd") if args.len() == 4 => {
            let workers: u32 = args[3].parse()?;
            let mut input = std::fs::File::open(&args[1])?;
            let out = std::fs::File::create(&args[2])?;
            let start = Instant::now();
            let mut enc = zstd::stream::write::Encoder::new(out, 3)?;
            enc.multithread(workers)?;
            std::io::copy(&mut input, &mut enc)?;
            enc.finish()?;
            println!("zstd {:.3}s", start.elapsed().as_secs_f64());
            Ok(())
        }
        _ => Err("usage: archive_bench create <ws> <out> [--gzip] <path>... | extract <archive> <ws> <allowed>...".into()),
    }
}

/// A tuning knob from the environment, for trying thread counts without rebuilding.
fn env_num(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}
