#!/usr/bin/env bash
# bench/remote.sh: the remote tier on the shared real C workload (zstd lib + brotli, 69
# units, `make -j2`). A redis-server of its own on loopback; "machine 1" (one ZCCACHE_DIR)
# builds cold and uploads; "machine 2" (an empty ZCCACHE_DIR) builds warm from the remote,
# then again from its own local store; bare gcc in the same run. Prints the times and ratios.
# Env: WORK (default /tmp/bench-work/c-zstd-brotli), ROUNDS (default 3; medians reported).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared/bench}
WORK=${WORK:-/tmp/bench-work/c-zstd-brotli}
ROUNDS=${ROUNDS:-3}
(cd "$here" && cargo build --release --quiet)
OURS=$here/target/release/zccache
[[ -f $WORK/.workload-ok ]] || "$shared/get_workload.sh" "$WORK"
MK=(make -s -f "$shared/c_workload.mk" -C "$WORK")

T=$(mktemp -d /tmp/remote-bench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$T" >/dev/null &
redis_pid=$!
cleanup() {
  for st in "$T"/m*; do ZCCACHE_DIR=$st "$OURS" stop >/dev/null 2>&1 || true; done
  kill "$redis_pid" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
export ZCCACHE_REMOTE=redis://127.0.0.1:$port/0 ZCCACHE_IDLE_TIMEOUT=900

ms_now() { date +%s%3N; }
timed_build() { # CC -> milliseconds
  local t0 t1
  "${MK[@]}" clean
  t0=$(ms_now)
  "${MK[@]}" -j2 CC="$1" >/dev/null
  t1=$(ms_now)
  echo $((t1 - t0))
}

declare -a BARE COLD REMOTE LOCAL
for ((r = 1; r <= ROUNDS; r++)); do
  redis-cli -p "$port" flushall >/dev/null
  BARE+=("$(timed_build gcc)")
  export ZCCACHE_DIR=$T/m1-$r
  COLD+=("$(timed_build "$OURS gcc")")
  "$OURS" stop >/dev/null 2>&1 # drains the uploads
  export ZCCACHE_DIR=$T/m2-$r
  REMOTE+=("$(timed_build "$OURS gcc")")
  LOCAL+=("$(timed_build "$OURS gcc")")
  remote_hits=$("$OURS" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"]["remote"]["hits"])')
  "$OURS" stop >/dev/null 2>&1
  echo "  round $r: bare ${BARE[-1]} ms, machine 1 cold ${COLD[-1]} ms, machine 2 from remote ${REMOTE[-1]} ms ($remote_hits remote hits), local warm ${LOCAL[-1]} ms" >&2
done
"${MK[@]}" clean

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
b=$(median "${BARE[@]}") c=$(median "${COLD[@]}") m=$(median "${REMOTE[@]}") l=$(median "${LOCAL[@]}")
echo "# bench/remote.sh: $("${MK[@]}" count) units, make -j2, redis on loopback, median of $ROUNDS"
echo
echo "| build | ms | / bare |"
echo "|---|---|---|"
awk -v b="$b" -v c="$c" -v m="$m" -v l="$l" 'BEGIN {
  printf "| bare gcc | %d | 1.000 |\n", b
  printf "| machine 1, cold (compiles, uploads behind) | %d | %.3f |\n", c, c / b
  printf "| machine 2, empty local store, from the remote | %d | %.3f |\n", m, m / b
  printf "| machine 2 again, local warm | %d | %.3f |\n", l, l / b
}'
