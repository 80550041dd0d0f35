#!/usr/bin/env bash
# Save/restore benchmark of runner::archive against what actions/cache runs:
#   save:    tar --posix -cf - -P -C <ws> --files-from manifest | zstd -T0
#   restore: zstd -d | tar -xf - -P -C <dest>
# Trees: a node_modules from `npm install` of a dozen popular packages, and a cargo registry +
# target dir (copied from ~/.cargo/registry and $CARGO_TARGET_DIR/debug/build). Work files live
# under bench/work/ (git-ignored). Every restore goes into a fresh directory.
#
# Usage: bench/archive/run.sh [runs]   (default 5; medians of wall and cpu time are reported)
# Env:   SKIP_NPM=1 to skip the node tree, CARGO_SRC_TARGET=<dir> to pick the target dir copied.
set -euo pipefail
. "$(dirname "$0")/../common.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=$ROOT/bench/work
RUNS=${1:-5}
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

# Trees are deleted only at exit, and a run waits out the last one's deletions (see common.sh).
STAMP=$WORK/.last-delete
wait_out_deletions "$STAMP"

# timed FILE CMD...: runs CMD, appends "wall cpu" (cpu = user + sys of it and its children).
# Dirty pages are flushed first, so no command pays for the previous one's writeback.
timed() { local f=$1; shift; sync; /usr/bin/time -a -o "$f" -f "%e %U %S" "$@" > /dev/null; }
# Deleting a big tree right before extracting makes this file system slow: old work dirs are
# moved aside and deleted at the end.
TRASH=$WORK/trash.$$; mkdir -p "$TRASH"
trap 'rm -rf "$TRASH"; touch "$STAMP"' EXIT

# bench_tree NAME WORKSPACE PATH... : runs both pipelines RUNS times, alternating, prints a row.
bench_tree() {
  local name=$1 ws=$2; shift 2
  local out=$WORK/out/$name
  if [ -e "$out" ]; then mv "$out" "$TRASH/$name.$RANDOM"; fi
  mkdir -p "$out"
  printf '%s\n' "$@" > "$out/manifest.txt"
  for i in $(seq "$RUNS"); do
    timed "$out/save-tar" bash -c "tar --posix -cf - -P -C '$ws' --files-from '$out/manifest.txt' | zstd -q -T0 -f -o '$out/tar.tzst'"
    timed "$out/save-ours" "$BENCH" create "$ws" "$out/ours.tzst" "$@"
    mkdir -p "$out/rt$i/ws" "$out/ro$i/ws"
    timed "$out/restore-tar" bash -c "zstd -q -d -c '$out/tar.tzst' | tar -xf - -P -C '$out/rt$i/ws'"
    timed "$out/restore-ours" "$BENCH" extract "$out/ours.tzst" "$out/ro$i/ws" "$@"
  done
  # Both restored the same content?
  if ! diff -r --no-dereference "$out/rt1/ws" "$out/ro1/ws" > /dev/null; then echo "!! $name: restored trees differ" >&2; fi
  local files bytes
  files=$(cd "$ws" && find "$@" | wc -l); bytes=$(cd "$ws" && du -sb "$@" | awk '{s+=$1} END {print s}')
  awk -v n="$name" -v f="$files" -v b="$bytes" \
    -v st="$(col "$out/save-tar" 1)" -v so="$(col "$out/save-ours" 1)" \
    -v sct="$(col "$out/save-tar" 2)" -v sco="$(col "$out/save-ours" 2)" \
    -v rt="$(col "$out/restore-tar" 1)" -v ro="$(col "$out/restore-ours" 1)" \
    -v rct="$(col "$out/restore-tar" 2)" -v rco="$(col "$out/restore-ours" 2)" \
    -v zt="$(stat -c %s "$out/tar.tzst")" -v zo="$(stat -c %s "$out/ours.tzst")" 'BEGIN {
    printf "%s: %d entries, %.1f MB\n", n, f, b / 1e6
    printf "  save     wall: tar|zstd %6.2fs  ours %6.2fs  ratio %.2f   cpu: %6.2fs vs %6.2fs  ratio %.2f\n", st, so, so / st, sct, sco, sco / sct
    printf "  size           tar|zstd %6.1fMB ours %6.1fMB ratio %.3f\n", zt / 1e6, zo / 1e6, zo / zt
    printf "  restore  wall: zstd|tar %6.2fs  ours %6.2fs  ratio %.2f   cpu: %6.2fs vs %6.2fs  ratio %.2f\n", rt, ro, ro / rt, rct, rco, rco / rct
  }'
  mkdir -p "$TRASH/$name.restored"
  mv "$out"/rt* "$out"/ro* "$TRASH/$name.restored/"
}

echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $RUNS runs each alternating, medians; zstd $(zstd --version | grep -o 'v[0-9.]*'), $(tar --version | head -1)"
if [ -d "$WORK/node/node_modules" ]; then bench_tree node_modules "$WORK/node" node_modules; fi
bench_tree cargo "$WORK/cargo" registry target
