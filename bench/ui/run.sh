#!/usr/bin/env bash
# Server time of the web UI's pages with 100,000 entries in a SQLite index (target < 50 ms):
# seeds a store (examples/ui_seed.rs, 10 repositories, two weeks of events), starts
# `runner serve --insecure-no-auth` on 127.0.0.1, and times each page with curl
# (time to first byte and total, medians of UI_BENCH_RUNS requests, default 20).
# Usage: bench/ui/run.sh   (UI_BENCH_ENTRIES=N, UI_BENCH_PROFILE=debug for a debug build)
set -euo pipefail
cd "$(dirname "$0")/../.."
entries="${UI_BENCH_ENTRIES:-100000}"
runs="${UI_BENCH_RUNS:-20}"
profile="${UI_BENCH_PROFILE:-release}"
flag=(--release)
[ "$profile" = debug ] && flag=()
cargo build --quiet "${flag[@]}" --bin runner --example ui_seed
target="${CARGO_TARGET_DIR:-target}/$profile"
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
"$target/examples/ui_seed" "$dir" "$entries"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUNNER_CACHE_DIR="$dir" "$target/runner" serve --listen "127.0.0.1:$port" --insecure-no-auth \
  >"$dir/serve.log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.2; done
id=$(curl -sf "http://127.0.0.1:$port/ui/r/octo/repo-3" | grep -o '/ui/r/octo/repo-3/e/[0-9a-f-]*' | head -n 1)
printf '%-48s %10s %10s %10s\n' page bytes "ttfb ms" "total ms"
for path in /ui /ui/r/octo/repo-3 "/ui/r/octo/repo-3?sort=size" "/ui/r/octo/repo-3?sort=last-used&page=150" \
  "/ui/r/octo/repo-3?key=npm-Linux&ref=refs/heads/main" "$id"; do
  url="http://127.0.0.1:$port$path"
  curl -s -o /dev/null "$url"   # warm
  stats=$(for _ in $(seq 1 "$runs"); do
    curl -s -o /dev/null -w '%{size_download} %{time_starttransfer} %{time_total}\n' "$url"
  done | sort -k2 -n | awk '{a[NR]=$0} END {print a[int((NR+1)/2)]}')
  read -r size ttfb total <<<"$stats"
  printf '%-48s %10s %10.1f %10.1f\n' "$path" "$size" "$(echo "$ttfb*1000" | bc -l)" "$(echo "$total*1000" | bc -l)"
done
echo "($entries entries, $profile build, medians of $runs by time to first byte)"
