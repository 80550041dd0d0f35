#!/usr/bin/env bash
# Save/restore benchmark of runner::archive against what actions/cache runs:
#   save:    tar --posix -cf - -P -C <ws> --files-from manifest | zstd -T0
#   restore: zstd -d | tar -xf - -P -C <dest>
# Trees: a node_modules from `npm install` of a dozen popular packages, and a cargo registry +
# target dir (copied from ~/.cargo/registry and $CARGO_TARGET_DIR/debug/build). Work files live
# under bench/work/ (git-ignored). Every restore goes into a fresh directory.
#
# Usage: bench/archive/run.sh [runs]   (default 3; the median of the runs is reported)
# Env:   SKIP_NPM=1 to skip the node tree, CARGO_SRC_TARGET=<dir> to pick the target dir copied.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$ROOT/bench/work
RUNS=${1:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$WORK"

echo "== building examples/archive_bench (release)" >&2
(cd "$ROOT" && cargo build --release --example archive_bench -q)
BENCH=$CARGO_TARGET_DIR/release/examples/archive_bench

# --- trees ---------------------------------------------------------------------------------
if [ "${SKIP_NPM:-0}" != 1 ] && [ ! -d "$WORK/node/node_modules" ]; then
  echo "== npm install into $WORK/node" >&2
  mkdir -p "$WORK/node"
  (cd "$WORK/node" && echo '{"name":"bench","version":"1.0.0","private":true}' > package.json &&
    npm install --no-audit --no-fund --loglevel=error react react-dom lodash express typescript \
      webpack @babel/core eslint jest axios moment rxjs >&2)
fi
if [ ! -d "$WORK/cargo/registry" ]; then
  echo "== copying cargo registry and target dir into $WORK/cargo" >&2
  mkdir -p "$WORK/cargo/target"
  cp -a "$HOME/.cargo/registry" "$WORK/cargo/registry"
  SRC_TARGET=${CARGO_SRC_TARGET:-$CARGO_TARGET_DIR/debug}
  cp -a "$SRC_TARGET/build" "$SRC_TARGET/.fingerprint" "$WORK/cargo/target/" 2>/dev/null ||
    cp -a "$SRC_TARGET/build" "$WORK/cargo/target/"
fi

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }

# bench_tree NAME WORKSPACE PATH... : runs both pipelines RUNS times, alternating, prints a row.
bench_tree() {
  local name=$1 ws=$2; shift 2
  local out=$WORK/out/$name; rm -rf "$out"; mkdir -p "$out"
  printf '%s\n' "$@" > "$out/manifest.txt"
  local ts=() to=() rs=() ro=()
  for i in $(seq "$RUNS"); do
    local t0 t1
    t0=$(now); tar --posix -cf - -P -C "$ws" --files-from "$out/manifest.txt" | zstd -q -T0 -o "$out/tar.tzst" -f; t1=$(now)
    ts+=("$(elapsed "$t0" "$t1")")
    t0=$(now); "$BENCH" create "$ws" "$out/ours.tzst" "$@" > /dev/null; t1=$(now)
    to+=("$(elapsed "$t0" "$t1")")
    mkdir -p "$out/rt$i/ws" "$out/ro$i/ws"
    t0=$(now); zstd -q -d -c "$out/tar.tzst" | tar -xf - -P -C "$out/rt$i/ws"; t1=$(now)
    rs+=("$(elapsed "$t0" "$t1")")
    t0=$(now); "$BENCH" extract "$out/ours.tzst" "$out/ro$i/ws" "$@" > /dev/null; t1=$(now)
    ro+=("$(elapsed "$t0" "$t1")")
  done
  # Same content restored by both?
  if ! diff -r "$out/rt1/ws" "$out/ro1/ws" > /dev/null; then echo "!! $name: restored trees differ" >&2; fi
  local s_t s_o r_t r_o z_t z_o files bytes
  s_t=$(printf '%s\n' "${ts[@]}" | median); s_o=$(printf '%s\n' "${to[@]}" | median)
  r_t=$(printf '%s\n' "${rs[@]}" | median); r_o=$(printf '%s\n' "${ro[@]}" | median)
  z_t=$(stat -c %s "$out/tar.tzst"); z_o=$(stat -c %s "$out/ours.tzst")
  files=$(cd "$ws" && find "$@" | wc -l); bytes=$(cd "$ws" && du -sb "$@" | awk '{s+=$1} END {print s}')
  awk -v n="$name" -v f="$files" -v b="$bytes" -v st="$s_t" -v so="$s_o" -v rt="$r_t" -v ro="$r_o" -v zt="$z_t" -v zo="$z_o" 'BEGIN {
    printf "%-12s %7d entries %7.1f MB | save tar+zstd %6.2fs ours %6.2fs ratio %.2f | size tar %7.1f MB ours %7.1f MB ratio %.3f | restore zstd+tar %6.2fs ours %6.2fs ratio %.2f\n",
      n, f, b/1e6, st, so, so/st, zt/1e6, zo/1e6, zo/zt, rt, ro, ro/rt }'
  rm -rf "$out"/rt* "$out"/ro*
}

echo "== $(nproc) cores, $RUNS runs each, median; zstd $(zstd --version | grep -o 'v[0-9.]*'), $(tar --version | head -1)"
if [ -d "$WORK/node/node_modules" ]; then bench_tree node_modules "$WORK/node" node_modules; fi
bench_tree cargo "$WORK/cargo" registry target
