#!/usr/bin/env bash
# Median restore-lookup latency with 100,000 entries in a SQLite index (target < 2 ms).
# Usage: bench/lookup/run.sh   (LOOKUP_BENCH_ENTRIES=N to change the size)
set -euo pipefail
cd "$(dirname "$0")/../.."
exec cargo bench --bench lookup
