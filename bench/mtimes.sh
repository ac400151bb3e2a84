#!/usr/bin/env bash
# bench/mtimes.sh [N_FILES]: `zccache mtimes save | restore` on one generated tree, against
# the peer zccache 1.15.8's `snapshot | replay` and our engine's cold pass (`fp check
# --no-daemon` with no state: walk + blake3 of every file), all in one run. Rows:
#   save        record every file (walk + hash)
#   restore     after every file's mtime moved (a checkout): hash all, set all back
#   again       restore when every mtime is already right (stat only)
# Needs ../shared/bench (gen_tree.py, install_peers.sh). Builds our release binary.
# Env: TREE (default /tmp/zccache-fp-tree-N), RUNS (default 3, the median is shown).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared/bench}
n=${1:-100000}
runs=${RUNS:-3}
tree=${TREE:-/tmp/zccache-fp-tree-$n}
peers=/tmp/peers/bin
work=$(mktemp -d)
ours=$here/target/release/zccache
trap 'rm -rf "$work"' EXIT

[[ -x $peers/zccache ]] || bash "$shared/install_peers.sh" /tmp/peers >/dev/null
[[ -d $tree ]] || python3 "$shared/gen_tree.py" "$tree" "$n" >/dev/null
(cd "$here" && cargo build --release --quiet)
files=$(find "$tree" -type f | wc -l)

ms_of() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(((e - s) / 1000000)); }
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
checkout() { find "$tree" -type f -print0 | xargs -0 touch; sync; }

engine() { rm -f "$work/fp.json"; ZCCACHE_NO_DAEMON=1 "$ours" fp --no-daemon --cache-file "$work/fp.json" check --root "$tree"; }
ours_save() { (cd "$tree" && "$ours" mtimes save "$work/ours.json"); }
ours_restore() { (cd "$tree" && "$ours" mtimes restore "$work/ours.json"); }
peer_save() { "$peers/zccache" snapshot --workspace "$tree" --out "$work/peer.json"; }
peer_restore() { "$peers/zccache" replay --workspace "$tree" --manifest "$work/peer.json"; }

row() {
  local name=$1 save=$2 restore=$3 s r a
  s=$(for _ in $(seq "$runs"); do ms_of "$save"; done | median)
  r=$(for _ in $(seq "$runs"); do checkout; ms_of "$restore"; done | median)
  a=$(for _ in $(seq "$runs"); do ms_of "$restore"; done | median)
  printf '%-22s %8s %8s %8s\n' "$name" "$s" "$r" "$a"
}

echo "tree: $tree ($files files), median of $runs, ms"
printf '%-22s %8s %8s %8s\n' tool save restore again
cold=$(for _ in $(seq "$runs"); do ms_of engine; done | median)
printf '%-22s %8s %8s %8s\n' "engine cold pass" "$cold" - -
row "zccache mtimes" ours_save ours_restore
row "peer snapshot/replay" peer_save peer_restore
(cd "$tree" && "$ours" mtimes restore "$work/ours.json" --json)
