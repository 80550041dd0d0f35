#!/usr/bin/env bash
# `runner serve` with the real @actions/cache 6.3.0 client (v2) in one run: saveCache/restoreCache
# of a 200 MiB random file, the client's HTTP transfer alone, its tar + zstd alone (the floor),
# lookup p50/p99 with 100,000 index rows, and server peak RSS under 16 concurrent uploads.
# Work files live under bench/work/ (git-ignored) and are removed at the end.
#
# Usage: bench/serve/run.sh
# Env:   SERVE_BENCH_MIB (200), SERVE_BENCH_RUNS (3), SERVE_BENCH_ENTRIES (100000),
#        SERVE_BENCH_LOOKUPS (4000), SERVE_BENCH_UPLOADS (16), SERVE_BENCH_UPLOAD_MIB (1024: needs
#        about 2 x uploads x MiB of free disk), SERVE_BENCH_PHASES (client,http,lookup,rss),
#        COMPARE_URL + COMPARE_TOKEN: another running cache server (v2) to time side by side,
#        STATIC_URL: a file on a static file server (e.g. nginx, `sendfile on`) the same client
#        downloads too, the most any server can give it here; SINK_URL (+ SINK_BODIES): the
#        stand-in server bench/serve/sink.sh starts, which only stores request bodies, for the
#        floor of a save; SERVE_BENCH_SERVER_LOG=1 passes the server's request log through.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/serve
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$ROOT/bench/work"

echo "== building runner and examples/serve_seed (release)" >&2
(cd "$ROOT" && cargo build --release -q --bin runner --example serve_seed)
if [ ! -d "$HERE/node_modules/@actions/cache" ]; then
  echo "== npm ci (the pinned @actions/cache)" >&2
  npm ci --prefix "$HERE" --ignore-scripts --no-audit --no-fund --loglevel=error >&2
fi
command -v zstd >/dev/null || { echo "zstd is not on PATH (the client compresses with it)" >&2; exit 1; }
exec node "$HERE/bench.mjs" "$CARGO_TARGET_DIR/release/runner" \
  "$CARGO_TARGET_DIR/release/examples/serve_seed" "$ROOT/bench/work"
