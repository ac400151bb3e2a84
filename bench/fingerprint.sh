#!/usr/bin/env bash
# bench/fingerprint.sh [N_FILES]: time `fp check` on one generated tree, in one run, for:
#   find      the walk+stat floor (`find -type f -printf '%s %T@\n'`)
#   peer      zccache-fp 1.15.8 (in-process)
#   peer-d    zccache 1.15.8's daemon (`zccache fp check`, its own ZCCACHE_CACHE_DIR)
#   ours      our engine in-process (`--no-daemon`)
#   ours-d    our daemon (its own ZCCACHE_DIR)
# Each tool: cold first check (no state), unchanged check (median of RUNS), check after one
# edit (median of RUNS edits). Prints a table and ratios. The daemons' RSS is reported too.
#
# Needs ../shared/bench (gen_tree.py, install_peers.sh). Builds our release binary.
# Env: TREE (default /tmp/zccache-fp-tree-N), RUNS (default 5).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared/bench}
n=${1:-100000}
runs=${RUNS:-5}
tree=${TREE:-/tmp/zccache-fp-tree-$n}
peers=/tmp/peers/bin
work=$(mktemp -d)
ours=$here/target/release/zccache
stop_all() {
  ZCCACHE_DIR=$work/ours-d "$ours" stop >/dev/null 2>&1 || true
  ZCCACHE_CACHE_DIR=$work/peer-d "$peers/zccache" stop >/dev/null 2>&1 || true
}
trap 'stop_all; rm -rf "$work"' EXIT

[[ -x $peers/zccache-fp ]] || bash "$shared/install_peers.sh" /tmp/peers >/dev/null
[[ -d $tree ]] || python3 "$shared/gen_tree.py" "$tree" "$n" >/dev/null
(cd "$here" && cargo build --release --quiet)
edit_file=$(find "$tree/m1" -type f -name '*.rs' -print -quit)
sync

ms_of() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }

# measure NAME FP...: FP is the command up to (not including) --cache-file.
measure() {
  local name=$1; shift
  local cache=$work/$name.json
  local check=("$@" --cache-file "$cache" check --root "$tree")
  local mark=("$@" --cache-file "$cache" mark-success)
  local cold warm edited
  cold=$(ms_of "${check[@]}"); "${mark[@]}" >/dev/null 2>&1 || true
  sleep 2.1; "${check[@]}" >/dev/null 2>&1 || true; "${mark[@]}" >/dev/null 2>&1 || true
  "${check[@]}" >/dev/null 2>&1 || true
  warm=$(for _ in $(seq "$runs"); do ms_of "${check[@]}"; done | median)
  cp -p "$edit_file" "$work/saved"
  edited=$(for i in $(seq "$runs"); do echo "// edit $i" >>"$edit_file"; ms_of "${check[@]}"; done | median)
  cp -p "$work/saved" "$edit_file"
  "${check[@]}" >/dev/null 2>&1 || true; "${mark[@]}" >/dev/null 2>&1 || true
  printf '%s %s %s %s\n' "$name" "$cold" "$warm" "$edited"
}

floor=$(for _ in $(seq "$runs"); do ms_of find "$tree" -type f -printf '%s %T@\n'; done | median)
results=$(
  measure peer "$peers/zccache-fp"
  ZCCACHE_CACHE_DIR=$work/peer-d measure peer-d "$peers/zccache" fp
  measure ours "$ours" fp --no-daemon
  ZCCACHE_DIR=$work/ours-d measure ours-d "$ours" fp
)
rss() { ps -o rss= -p "$1" 2>/dev/null | awk '{printf "%.0f MB", $1/1024}'; }
ours_rss=$(rss "$(cat "$work/ours-d/daemon.pid" 2>/dev/null || echo 0)")
echo "tree: $tree ($(find "$tree" -type f | wc -l) files), median of $runs, ms"
echo "find floor (walk+stat): $floor"
printf '%-7s %8s %10s %8s\n' tool cold unchanged edited
echo "$results" | while read -r name cold warm edited; do
  printf '%-7s %8s %10s %8s\n' "$name" "$cold" "$warm" "$edited"
done
get() { echo "$results" | awk -v n="$1" -v c="$2" '$1==n {print $c}'; }
awk -v oc="$(get ours 2)" -v ow="$(get ours 3)" -v oe="$(get ours 4)" \
    -v pc="$(get peer 2)" -v pw="$(get peer 3)" -v pe="$(get peer 4)" \
    -v dw="$(get ours-d 3)" -v de="$(get ours-d 4)" -v pdw="$(get peer-d 3)" -v f="$floor" 'BEGIN{
  printf "in-process ours/peer: cold %.2fx, unchanged %.2fx, edited %.2fx; unchanged/find %.2fx\n", oc/pc, ow/pw, oe/pe, ow/f
  printf "daemon: unchanged %d ms (peer daemon %d ms, %.3fx), edited %d ms\n", dw, pdw, dw/(pdw>0?pdw:1), de }'
echo "our daemon RSS after indexing: $ours_rss"
