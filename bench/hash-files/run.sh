#!/usr/bin/env bash
# Benchmark: `runner hash-files '**'` against the runner's algorithm in Node (@actions/glob) on
# the same tree (a real node_modules of popular packages, >= 50,000 files), in the same run.
# Checks that both hashes are equal, prints both wall times and the ratio.
#
# Usage: bench/hash-files/run.sh [PATTERN]     (default '**'; needs cargo, node, npm)
# Work files go to bench/work/hash-files (ignored by git). RUNS=N repeats each side N times
# and reports the best time of each.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)
work="$repo/bench/work/hash-files"
pattern="${1:-**}"
runs="${RUNS:-3}"
mkdir -p "$work"

echo "== building runner (release)" >&2
cargo build --release --quiet
runner="${CARGO_TARGET_DIR:-$repo/target}/release/runner"
# Copy so a concurrent build into a shared target dir cannot swap the binary mid-run.
cp "$runner" "$work/runner"
runner="$work/runner"

tree="$work/tree"
if [ ! -d "$tree/node_modules" ]; then
  echo "== npm install of popular packages into $tree" >&2
  mkdir -p "$tree"
  (cd "$tree" && npm init -y >/dev/null 2>&1 &&
    npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
      typescript webpack eslint jest @babel/core @babel/preset-env next react react-dom \
      lodash rxjs @mui/material @mui/icons-material aws-sdk >/dev/null) || {
    echo "npm install failed; generating a tree instead" >&2
    rm -rf "$tree" && mkdir -p "$tree/node_modules"
    for d in $(seq 1 600); do
      mkdir -p "$tree/node_modules/pkg$d/lib/sub"
      for f in $(seq 1 50); do
        printf 'module.exports = %d * %d;\n' "$d" "$f" >"$tree/node_modules/pkg$d/lib/f$f.js"
        printf '{"name": "pkg%d-%d"}\n' "$d" "$f" >"$tree/node_modules/pkg$d/lib/sub/p$f.json"
      done
    done
  }
fi

ref="$work/reference"
if [ ! -d "$ref/node_modules/@actions/glob" ]; then
  echo "== npm install @actions/glob into $ref" >&2
  mkdir -p "$ref"
  (cd "$ref" && npm init -y >/dev/null 2>&1 &&
    npm install --no-audit --no-fund --loglevel=error @actions/glob >/dev/null)
fi
cp "$repo/bench/hash-files/reference.mjs" "$ref/reference.mjs"

files=$(find "$tree" -type f | wc -l)
bytes=$(du -sb "$tree" | cut -f1)
echo "tree: $tree ($files files, $bytes bytes), pattern '$pattern', best of $runs runs"
# Warm the page cache so both sides read from memory.
find "$tree" -type f -print0 | xargs -0 cat >/dev/null

now() { date +%s.%N; }
best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b == "" || a < b) ? a : b }'; }

ours_best="" ; node_best=""
for _ in $(seq 1 "$runs"); do
  t0=$(now)
  ours=$("$runner" hash-files --workspace "$tree" "$pattern")
  t1=$(now)
  ours_best=$(best "$(echo "$t1 - $t0" | bc -l)" "$ours_best")

  t0=$(now)
  theirs=$(cd "$tree" && patterns="$pattern" node "$ref/reference.mjs" 2>/dev/null | tail -n 1)
  t1=$(now)
  node_best=$(best "$(echo "$t1 - $t0" | bc -l)" "$node_best")
done

echo "runner hash-files: $ours"
echo "node @actions/glob: $theirs"
if [ "$ours" != "$theirs" ]; then
  echo "MISMATCH: hashes differ" >&2
  exit 1
fi
printf 'hashes equal\nrunner: %.3f s\nnode:   %.3f s\nratio (node / runner): %.1fx\n' \
  "$ours_best" "$node_best" "$(echo "$node_best / $ours_best" | bc -l)"
