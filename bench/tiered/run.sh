#!/usr/bin/env bash
# Restoring the node_modules cache of bench/exec-cache from S3 (a moto server on 127.0.0.1)
# through the tiered blob store, with the whole `runner exec` process timed:
#   cold:        the local tier is empty, so the archive streams from S3 (and into the tier);
#   warm:        the local tier has the archive (S3 is not asked for it);
#   local-only:  the same entry in a plain local store (no S3 configured);
#   plain GET:   `curl` of the same object (a presigned GET, made with boto3, which moto brings)
#                to a file, as `aws s3 cp` does, then
#                `zstd -d | tar -x` of it; and the same GET piped straight into the extraction.
# Targets (issue 12): warm <= 1.1 x local-only; cold <= 1.3 x plain GET + extraction.
# Every restore goes into a fresh directory; `sync` before each command and its own `sync` after
# are counted (a restore is bound by writing). Tools alternate order between runs.
#
# Usage: bench/tiered/run.sh [runs]   (default 3; medians of wall time are reported; each run
#        keeps five restored trees, about 2 GiB, until the script ends)
# Env:   RUNNER_BENCH_WORK=<dir> (default /var/tmp/runner-bench/tiered),
#        RUNNER_BENCH_SRC=<dir holding node_modules> (default: bench/exec-cache's tree, built by
#        bench/exec-cache/run.sh), RUNNER=<binary> instead of building target/release/runner,
#        MOTO_SERVER=<command> (default moto_server; `pip install 'moto[server]'`).
set -euo pipefail
. "$(dirname "$0")/../common.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=${RUNNER_BENCH_WORK:-/var/tmp/runner-bench/tiered}
SRC=${RUNNER_BENCH_SRC:-/var/tmp/runner-bench/exec-cache/src}
RUNS=${1:-3}
WORKFLOW=$ROOT/bench/exec-cache/workflow.yml
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$WORK"
exec 9> "$WORK/.lock"
if ! flock -n 9; then
  echo "== waiting for the other run of this script to end" >&2
  flock 9
fi
if [ ! -d "$SRC/node_modules" ]; then
  echo "no $SRC/node_modules: run bench/exec-cache/run.sh once (it builds the tree), or set RUNNER_BENCH_SRC" >&2
  exit 2
fi
if [ -z "${RUNNER:-}" ]; then
  echo "== building runner (release)" >&2
  (cd "$ROOT" && cargo build --release --bin runner -q)
  RUNNER=$CARGO_TARGET_DIR/release/runner
fi

# Every restore's tree stays until exit (see common.sh): 5 trees a run, plus the stores.
tree_kb=$(du -sk "$SRC/node_modules" | cut -f1)
need_kb=$(( (5 * RUNS + 3) * tree_kb ))
free_kb=$(df -Pk "$WORK" | awk 'NR == 2 {print $4}')
if [ "$free_kb" -lt $((need_kb + 5 * 1024 * 1024)) ]; then
  echo "!! $RUNS runs need about $((need_kb / 1024 / 1024)) GiB in $WORK plus 5 GiB to spare; $((free_kb / 1024 / 1024)) GiB free" >&2
  exit 2
fi

STAMP=$WORK/.last-delete
wait_out_deletions "$STAMP"
TRASH=$WORK/trash.$$
mkdir -p "$TRASH"
OUT=$WORK/out
if [ -e "$OUT" ]; then mv "$OUT" "$TRASH/out"; fi
mkdir -p "$OUT"

# --- moto ----------------------------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
${MOTO_SERVER:-moto_server} -H 127.0.0.1 -p "$PORT" > "$OUT/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill "$MOTO_PID" 2>/dev/null || true; rm -rf "$TRASH"; touch "$STAMP"' EXIT
ENDPOINT=http://127.0.0.1:$PORT
for _ in $(seq 1 30); do
  if curl -sf -o /dev/null "$ENDPOINT/"; then break; fi
  sleep 1
done
curl -sf -o /dev/null -X PUT "$ENDPOINT/runner-bench"
export AWS_ENDPOINT_URL=$ENDPOINT AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
ARGS=(--repository bench/tiered --ref refs/heads/main --sha 0000000000000000000000000000000000000000)

timed() {
  local name=$1 cmd=$2
  sync
  /usr/bin/time -a -o "$OUT/$name.times" -f "%e %U %S" bash -c "$cmd; sync" > /dev/null
}

# exec_in WS STORE [ENV...]: runner exec of the bench workflow in WS over the store in STORE.
exec_in() {
  local ws=$1 store=$2
  shift 2
  echo "env RUNNER_CACHE_DIR='$store' $* '$RUNNER' exec '$WORKFLOW' --workspace '$ws' ${ARGS[*]} --var RUN=bench"
}
S3_ENV=(RUNNER_CACHE_BLOBS=s3://runner-bench/tiered)

# --- one save to each store ------------------------------------------------------------------
echo "== saving $(du -sh "$SRC/node_modules" | cut -f1) of node_modules to S3 and to a local store" >&2
eval "$(exec_in "$SRC" "$OUT/store-s3" "${S3_ENV[@]}" RUNNER_CACHE_TIER_DIR="$OUT/tier-warm")" 2>> "$OUT/save.log"
eval "$(exec_in "$SRC" "$OUT/store-local")" 2>> "$OUT/save.log"
KEY=$(curl -sf "$ENDPOINT/runner-bench?list-type=2&prefix=tiered/blobs-v1/" | grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g' | grep -v /tmp/ | head -1)
if [ -z "$KEY" ] || [ "$(grep -c 'Cache saved' "$OUT/save.log")" != 2 ]; then
  echo "!! the saves did not both land:" >&2
  cat "$OUT/save.log" >&2
  exit 1
fi
# The plain GET is signed like `aws s3 cp`'s (objects are private): a presigned URL for curl.
GET_URL=$(python3 -c 'import sys, boto3
print(boto3.client("s3", endpoint_url=sys.argv[1]).generate_presigned_url("get_object", Params={"Bucket": "runner-bench", "Key": sys.argv[2]}, ExpiresIn=3600))' "$ENDPOINT" "$KEY")
SIZE=$(curl -sf -o /dev/null -w '%{size_download}' "$GET_URL")

new_ws() {
  local ws=$OUT/ws-$1
  mkdir -p "$ws"
  cp "$SRC/package-lock.json" "$ws/"
  echo "$ws"
}
cold() { timed cold "$(exec_in "$(new_ws "cold-$1")" "$OUT/store-s3" "${S3_ENV[@]}" RUNNER_CACHE_TIER_DIR="$OUT/tier-cold-$1") 2>> '$OUT/restore.log'"; }
warm() { timed warm "$(exec_in "$(new_ws "warm-$1")" "$OUT/store-s3" "${S3_ENV[@]}" RUNNER_CACHE_TIER_DIR="$OUT/tier-warm") 2>> '$OUT/restore.log'"; }
local_only() { timed local "$(exec_in "$(new_ws "local-$1")" "$OUT/store-local") 2>> '$OUT/restore.log'"; }
plain() {
  mkdir -p "$OUT/plain-$1"
  timed plain "curl -sf -o '$OUT/plain-$1.tzst' '$GET_URL' && zstd -q -d -c '$OUT/plain-$1.tzst' | tar -xf - -C '$OUT/plain-$1'"
}
piped() {
  mkdir -p "$OUT/piped-$1"
  timed piped "curl -sf '$GET_URL' | zstd -q -d -c | tar -xf - -C '$OUT/piped-$1'"
}

for i in $(seq "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then
    plain "$i"; cold "$i"; piped "$i"; warm "$i"; local_only "$i"
  else
    local_only "$i"; warm "$i"; piped "$i"; cold "$i"; plain "$i"
  fi
done

hits=$(grep -c 'Cache restored from key' "$OUT/restore.log" || true)
if [ "$hits" != $((3 * RUNS)) ]; then
  echo "!! expected $((3 * RUNS)) restores, the log shows $hits" >&2
fi
for d in "$OUT"/ws-cold-1 "$OUT"/ws-warm-1 "$OUT"/ws-local-1; do
  if ! diff -r --no-dereference "$OUT/plain-1/node_modules" "$d/node_modules" > /dev/null; then
    echo "!! $(basename "$d"): restored tree differs from the plain GET's" >&2
  fi
done
if [ ! -s "$OUT/tier-cold-1/blobs-v1/${KEY##*/blobs-v1/}" ]; then
  echo "!! the cold restore left no copy in its local tier" >&2
fi

m() { col "$OUT/$1.times" 1; }
echo "== $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $RUNS runs, medians of wall time; $("$RUNNER" --version 2>/dev/null || echo runner), moto $(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null || echo '?'), zstd $(zstd --version | grep -o 'v[0-9.]*')"
printf 'archive %.1f MB (node_modules %.1f MB)\n' "$(echo "$SIZE / 1000000" | bc -l)" "$(echo "$(du -sb "$SRC/node_modules" | cut -f1) / 1000000" | bc -l)"
awk -v c="$(m cold)" -v w="$(m warm)" -v l="$(m local)" -v p="$(m plain)" -v q="$(m piped)" 'BEGIN {
  printf "  local-only            %6.2fs\n", l
  printf "  warm (local tier)     %6.2fs   warm / local-only       %.2f  (target <= 1.10)\n", w, w / l
  printf "  plain GET + extract   %6.2fs\n", p
  printf "  GET piped to extract  %6.2fs\n", q
  printf "  cold (from S3)        %6.2fs   cold / plain GET+extract %.2f  (target <= 1.30); cold / piped %.2f\n", c, c / p, c / q
}'
mv "$OUT"/ws-* "$OUT"/plain-* "$OUT"/piped-* "$OUT"/tier-cold-* "$TRASH/" 2> /dev/null || true
