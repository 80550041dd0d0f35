#!/usr/bin/env bash
# The whole `runner exec` process (start-up, workflow load, hashFiles, path resolution, archive,
# index) caching a real `npm ci` node_modules, against what actions/cache runs for the same step:
#   save:    tar --posix -cf - node_modules | zstd -T0 > f
#   restore: zstd -d < f | tar -xf -            (into a fresh directory)
# The tree comes from the pinned package-lock.json beside this script (`npm ci --ignore-scripts`),
# built once under $WORK (outside the repository). Every restore goes into a fresh directory.
#
# Each run times every command twice, tools alternating (odd runs tar first, even runs ours first):
#   flushed:      `sync` before, and the command's own `sync` after counted in its time (a restore
#                 is bound by writing, so its writeback is part of its cost);
#   back-to-back: no sync at all, so the previous command's writeback overlaps this one.
# A save is timed two ways too (each under a fresh key, so it misses and saves):
#   save-cold:    into an empty store: every chunk of the tree is compressed;
#   save-warm:    into the store that holds this tree under another key (a rolling key such as
#                 `index-${{ github.run_number }}`): chunks the store compressed before are
#                 copied, not compressed again.
# and once more for a tree with one dependency changed (a copy of the tree with a line appended
# to each `.js` file of `@babel/core`, against tar of that copy):
#   save-changed: into a store holding the original tree only (seeded, untimed, for each run).
# and, once a run, the floor of any cold save at this compression level: `zstd -T0` alone on the
# tree's tar bytes, read from the page cache, output dropped.
#
# Usage: bench/exec-cache/run.sh [runs]   (default 3; medians of wall and cpu time are reported)
# Env:   RUNNER_BENCH_WORK=<dir> (default /var/tmp/runner-bench/exec-cache),
#        RUNNER=<binary> to time a given build instead of building target/release/runner,
#        RUNNER_BASE=<binary> to time another build too, in the same runs (before/after figures).
set -euo pipefail
. "$(dirname "$0")/../common.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${RUNNER_BENCH_WORK:-/var/tmp/runner-bench/exec-cache}
RUNS=${1:-3}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$WORK"
# One run at a time: another's deletions or load would be in this one's figures.
exec 9> "$WORK/.lock"
if ! flock -n 9; then
  echo "== waiting for the other run of this script to end" >&2
  flock 9
fi

if [ -z "${RUNNER:-}" ]; then
  echo "== building runner (release)" >&2
  (cd "$ROOT" && cargo build --release --bin runner -q)
  RUNNER=$CARGO_TARGET_DIR/release/runner
fi

# --- the tree: npm ci from the pinned lock, redone only when the lock changes ----------------
SRC=$WORK/src
if ! cmp -s "$HERE/package-lock.json" "$SRC/package-lock.json" || [ ! -d "$SRC/node_modules" ]; then
  echo "== npm ci --ignore-scripts into $SRC" >&2
  if [ -e "$SRC" ]; then mv "$SRC" "$WORK/old-src.$$"; fi
  mkdir -p "$SRC"
  cp "$HERE/package.json" "$HERE/package-lock.json" "$SRC/"
  (cd "$SRC" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  rm -rf "$WORK/old-src.$$"
  touch "$WORK/.last-delete"
fi

# The changed tree, made once from the tree (and again when the tree is rebuilt).
CHG=$WORK/changed
if [ ! -d "$CHG/node_modules" ] || [ "$SRC/package-lock.json" -nt "$CHG/.made" ]; then
  echo "== copying the tree to $CHG with @babel/core changed" >&2
  if [ -e "$CHG" ]; then mv "$CHG" "$WORK/old-changed.$$"; fi
  cp -a "$SRC" "$CHG"
  find "$CHG/node_modules/@babel/core" -name '*.js' -exec sh -c 'echo "// bumped" >> "$1"' _ {} \;
  touch "$CHG/.made"
  rm -rf "$WORK/old-changed.$$"
  touch "$WORK/.last-delete"
fi

# Trees are deleted only at exit, and a run waits out the last one's deletions (see common.sh).
STAMP=$WORK/.last-delete
wait_out_deletions "$STAMP"
TRASH=$WORK/trash.$$
mkdir -p "$TRASH"
trap 'rm -rf "$TRASH"; touch "$STAMP"' EXIT
OUT=$WORK/out
if [ -e "$OUT" ]; then mv "$OUT" "$TRASH/out"; fi
mkdir -p "$OUT"
export RUNNER_CACHE_DIR=$OUT/store
ARGS=(--repository bench/exec-cache --ref refs/heads/main --sha 0000000000000000000000000000000000000000)

# timed MODE NAME CMD: runs the shell command CMD, appends "wall cpu-user cpu-sys" to
# $OUT/NAME.MODE (cpu is of it and its children). flushed: sync first, the command's sync counted.
timed() {
  local mode=$1 name=$2 cmd=$3
  if [ "$mode" = flushed ]; then
    sync
    cmd="$cmd; sync"
  fi
  /usr/bin/time -a -o "$OUT/$name.$mode" -f "%e %U %S" bash -c "$cmd" > /dev/null
}

save_tar() {
  timed "$1" save-tar "cd '$SRC' && tar --posix -cf - node_modules | zstd -q -T0 -f -o '$OUT/tar.tzst'"
  timed "$1" save-changed-tar "cd '$CHG' && tar --posix -cf - node_modules | zstd -q -T0 -f -o '$OUT/changed.tzst'"
}
# save_ours MODE RUN [BINARY NAME]: a save under a fresh key, into the shared store (warm: it
# holds this tree from the first save) and into an empty one (cold).
save_ours() {
  timed "$1" "save-${4:-ours}" "'${3:-$RUNNER}' exec '$HERE/workflow.yml' --workspace '$SRC' ${ARGS[*]} --var RUN=${4:-ours}-$1-$2 2>> '$OUT/save.log'"
  local cold=$OUT/cold-${4:-ours}-$1-$2
  timed "$1" "save-cold-${4:-ours}" "RUNNER_CACHE_DIR='$cold' '${3:-$RUNNER}' exec '$HERE/workflow.yml' --workspace '$SRC' ${ARGS[*]} --var RUN=${4:-ours}-$1-$2 2>> '$OUT/save-cold.log'"
  mv "$cold" "$TRASH/"
  local seeded=$OUT/seeded-${4:-ours}-$1-$2
  RUNNER_CACHE_DIR=$seeded "${3:-$RUNNER}" exec "$HERE/workflow.yml" --workspace "$SRC" "${ARGS[@]}" --var RUN=seed > /dev/null 2>&1
  timed "$1" "save-changed-${4:-ours}" "RUNNER_CACHE_DIR='$seeded' '${3:-$RUNNER}' exec -v '$HERE/workflow.yml' --workspace '$CHG' ${ARGS[*]} --var RUN=${4:-ours}-$1-$2 2>> '$OUT/save-changed.log'"
  mv "$seeded" "$TRASH/"
}
# The floor of any cold save at this compression: zstd -T0 alone compressing the tree's tar bytes
# from the page cache to nowhere (no files read, no tar, no output written), once a run.
compress_floor() {
  if [ ! -f "$OUT/tree.tar" ]; then (cd "$SRC" && tar --posix -cf "$OUT/tree.tar" node_modules); fi
  timed back-to-back compress-floor "zstd -q -T0 -c '$OUT/tree.tar' > /dev/null"
}
restore_tar() {
  mkdir -p "$OUT/rt-$1-$2"
  timed "$1" restore-tar "zstd -q -d -c '$OUT/tar.tzst' | tar -xf - -C '$OUT/rt-$1-$2'"
}
# restore_ours MODE RUN [BINARY NAME]: restores what that binary saved first.
restore_ours() {
  local ws=$OUT/r${4:-ours}-$1-$2
  mkdir -p "$ws"
  cp "$SRC/package-lock.json" "$ws/"
  timed "$1" "restore-${4:-ours}" "'${3:-$RUNNER}' exec '$HERE/workflow.yml' --workspace '$ws' ${ARGS[*]} --var RUN=${4:-ours}-flushed-1 2>> '$OUT/restore.log'"
}
both_ours() {
  "$1" "$2" "$3"
  if [ -n "${RUNNER_BASE:-}" ]; then "$1" "$2" "$3" "$RUNNER_BASE" base; fi
}

for i in $(seq "$RUNS"); do
  for mode in flushed back-to-back; do
    if [ $((i % 2)) = 1 ]; then
      save_tar "$mode"; both_ours save_ours "$mode" "$i"
      restore_tar "$mode" "$i"; both_ours restore_ours "$mode" "$i"
    else
      both_ours save_ours "$mode" "$i"; save_tar "$mode"
      both_ours restore_ours "$mode" "$i"; restore_tar "$mode" "$i"
    fi
  done
  compress_floor
done

# Each side did what it was timed for, and both restored the same tree?
builds=1
if [ -n "${RUNNER_BASE:-}" ]; then builds=2; fi
saves=$(grep -c 'Cache saved' "$OUT/save.log" || true)
cold_saves=$(grep -c 'Cache saved' "$OUT/save-cold.log" || true)
if [ "$cold_saves" != $((2 * RUNS * builds)) ]; then
  echo "!! expected $((2 * RUNS * builds)) saves into empty stores, the log shows $cold_saves" >&2
fi
hits=$(grep -c 'Cache restored from key' "$OUT/restore.log" || true)
if [ "$saves" != $((2 * RUNS * builds)) ] || [ "$hits" != $((2 * RUNS * builds)) ]; then
  echo "!! expected $((2 * RUNS * builds)) saves and restores, the logs show $saves and $hits" >&2
fi
for r in "$OUT"/r{ours,base}-flushed-1; do
  if [ -d "$r" ] && ! diff -r --no-dereference "$OUT/rt-flushed-1/node_modules" "$r/node_modules" > /dev/null; then
    echo "!! $(basename "$r"): restored tree differs from tar's" >&2
  fi
done

files=$(find "$SRC/node_modules" -type f | wc -l)
entries=$(find "$SRC/node_modules" | wc -l)
bytes=$(du -sb "$SRC/node_modules" | cut -f1)
# The first save's size line is the runner's (RUNNER_BASE saves after it); warm saves write the
# same archive (the bench checks that), so one size is the size.
ours_size=$(grep -o 'Cache Size: ~[0-9]* MB ([0-9]* B)' "$OUT/save.log" | head -1 | grep -o '([0-9]*' | tr -d '(')
changed_saves=$(grep -c 'Cache saved' "$OUT/save-changed.log" || true)
if [ "$changed_saves" != $((2 * RUNS * builds)) ]; then
  echo "!! expected $((2 * RUNS * builds)) saves of the changed tree, the log shows $changed_saves" >&2
fi
sizes=$(cat "$OUT/save.log" "$OUT/save-cold.log" | grep -o 'Cache Size: ~[0-9]* MB ([0-9]* B)' | sort -u | wc -l)
if [ -z "${RUNNER_BASE:-}" ] && [ "$sizes" != 1 ]; then
  echo "!! cold and warm saves wrote archives of $sizes different sizes" >&2
fi
echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $RUNS runs, medians; $("$RUNNER" --version 2>/dev/null || echo runner), zstd $(zstd --version | grep -o 'v[0-9.]*'), $(tar --version | head -1)"
printf 'node_modules: %d files (%d entries), %.1f MB\n' "$files" "$entries" "$(echo "$bytes / 1000000" | bc -l)"
printf '  size                    tar|zstd %6.1f MB  runner %6.1f MB  ratio %.3f\n' \
  "$(echo "$(stat -c %s "$OUT/tar.tzst") / 1000000" | bc -l)" "$(echo "$ours_size / 1000000" | bc -l)" \
  "$(echo "$ours_size / $(stat -c %s "$OUT/tar.tzst")" | bc -l)"
reused=$(grep -o '[0-9]* bytes of the archive were compressed by an earlier save' "$OUT/save-changed.log" | head -1 | cut -d' ' -f1)
changed_tar=$(zstd -q -dc "$OUT/changed.tzst" | wc -c)
printf '  changed tree: %.1f of %.1f MB of tar copied from the earlier save'"'"'s frames\n' \
  "$(echo "${reused:-0} / 1000000" | bc -l)" "$(echo "$changed_tar / 1000000" | bc -l)"
for mode in flushed back-to-back; do
  for side in save-cold save save-changed restore; do
    for build in ours base; do
      t=$OUT/${side%-cold}-tar.$mode o=$OUT/$side-$build.$mode
      if [ ! -f "$o" ]; then continue; fi
      label=runner; if [ "$build" = base ]; then label=base; fi
      name=$side; if [ "$side" = save ]; then name=save-warm; fi
      awk -v s="$name" -v m="$mode" -v l="$label" -v tw="$(col "$t" 1)" -v ow="$(col "$o" 1)" -v tc="$(col "$t" 2)" -v oc="$(col "$o" 2)" \
        'BEGIN { printf "  %-12s %-12s wall: tar %6.2fs  %-6s %6.2fs  ratio %.2f   cpu: %6.2fs vs %6.2fs  ratio %.2f\n", s, m, tw, l, ow, ow / tw, tc, oc, oc / tc }'
    done
  done
done
awk -v f="$(col "$OUT/compress-floor.back-to-back" 1)" -v fc="$(col "$OUT/compress-floor.back-to-back" 2)" -v tw="$(col "$OUT/save-tar.back-to-back" 1)" \
  'BEGIN { printf "  floor: zstd -T0 of the tar alone, from memory to nowhere: wall %.2fs (%.2f of tar|zstd back to back)  cpu %.2fs\n", f, f / tw, fc }'
mv "$OUT"/rt-* "$OUT"/r{ours,base}-* "$OUT/tree.tar" "$TRASH/" 2> /dev/null || true
