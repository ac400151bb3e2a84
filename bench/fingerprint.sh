#!/usr/bin/env bash
# bench/fingerprint.sh [N_FILES]: time `zccache fp check` against the walk+stat floor (find)
# and the peer zccache-fp 1.15.8 on one generated tree, in one run, and print ratios.
#
# Needs: ../shared/bench (gen_tree.py, install_peers.sh). Builds our release binary.
# Env: TREE (default /tmp/zccache-fp-tree-N), RUNS (default 5), PEER (default /tmp/peers/bin/zccache-fp).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared/bench}
n=${1:-100000}
runs=${RUNS:-5}
tree=${TREE:-/tmp/zccache-fp-tree-$n}
peer=${PEER:-/tmp/peers/bin/zccache-fp}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

[[ -x $peer ]] || bash "$shared/install_peers.sh" /tmp/peers >/dev/null
[[ -d $tree ]] || python3 "$shared/gen_tree.py" "$tree" "$n" >/dev/null
(cd "$here" && cargo build --release --quiet)
ours=$here/target/release/zccache
edit_file=$(find "$tree/m1" -type f -name '*.rs' -print -quit)

# median_ms CMD...: run CMD $runs times (output discarded, exit status ignored), print the median ms.
median_ms() {
  local t=() s e
  for _ in $(seq "$runs"); do
    s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N)
    t+=($(((e - s) / 1000000)))
  done
  printf '%s\n' "${t[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'
}
once_ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s%N); echo $(((e - s) / 1000000)); }

# measure NAME CHECK...: cold first check, unchanged check, check after one edit.
measure() {
  local name=$1; shift
  local cache=$work/$name.json
  local check=("$@" --cache-file "$cache" check --root "$tree")
  local mark=("$@" --cache-file "$cache" mark-success)
  cold=$(once_ms "${check[@]}"); "${mark[@]}" >/dev/null 2>&1
  sleep 2.1; "${check[@]}" >/dev/null 2>&1 || true; "${mark[@]}" >/dev/null 2>&1 || true
  warm=$(median_ms "${check[@]}")
  cp -p "$edit_file" "$work/saved"; echo "// edit" >>"$edit_file"
  edited=$(once_ms "${check[@]}")
  cp -p "$work/saved" "$edit_file"
  printf '%s %s %s %s\n' "$name" "$cold" "$warm" "$edited"
}

floor=$(median_ms find "$tree" -type f -printf '%s %T@\n')
results=$(measure peer "$peer"; measure ours "$ours" fp)
echo "tree: $tree ($(find "$tree" -type f | wc -l) files), median of $runs runs, ms"
echo "find floor (walk+stat): $floor"
printf '%-6s %10s %10s %10s\n' tool cold unchanged edited
echo "$results" | while read -r name cold warm edited; do
  printf '%-6s %10s %10s %10s\n' "$name" "$cold" "$warm" "$edited"
done
read -r _ pc pw pe <<<"$(echo "$results" | sed -n 1p)"
read -r _ oc ow oe <<<"$(echo "$results" | sed -n 2p)"
awk -v oc="$oc" -v ow="$ow" -v oe="$oe" -v pc="$pc" -v pw="$pw" -v pe="$pe" -v f="$floor" 'BEGIN{
  printf "ours/peer: cold %.2fx, unchanged %.2fx, edited %.2fx\n", oc/pc, ow/pw, oe/pe
  printf "ours/find floor: unchanged %.2fx\n", ow/f }'
