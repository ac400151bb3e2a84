#!/usr/bin/env bash
# bench/runner_ab.sh OLD NEW: two zccache binaries on bench/runner.sh's workload (N packages of
# FILES sources, a node build each), alternating in every round so load from elsewhere hits
# both alike: `run --all` fully cached, and `run --all` after `rm -rf packages/*/dist` (every
# output restored). Prints each one's median (ms) of ROUNDS (25). Each binary has its own copy
# of the repo and its own ZCCACHE_DIR under W (/tmp/runner-ab, wiped), its daemon stopped at
# the end. Needs node, npm and git (as runner.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
OLD=${1:?usage: runner_ab.sh OLD_BINARY NEW_BINARY} NEW=${2:?usage: runner_ab.sh OLD_BINARY NEW_BINARY}
W=${W:-/tmp/runner-ab} N=${N:-20} FILES=${FILES:-50} ROUNDS=${ROUNDS:-25}
if [[ -e $W ]]; then
  [[ -e $W/.runner-ab ]] || { echo "$W exists and is not ours" >&2; exit 2; }
  rm -rf "$W"
fi
mkdir -p "$W" && touch "$W/.runner-ab"
python3 "$here/runner_peers.py" gen "$W/tpl" "$N" "$FILES" 0 "$(npm --version)"
(cd "$W/tpl" && npm install --offline --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null &&
  git init -q && git add -A && git -c user.name=bench -c user.email=bench@example.invalid commit -qm workload)
declare -A bin=([old]=$OLD [new]=$NEW)
for v in old new; do
  cp -a "$W/tpl" "$W/$v" && mkdir -m 700 "$W/$v-dir"
  (cd "$W/$v" && ZCCACHE_DIR=$W/$v-dir "${bin[$v]}" run --all >/dev/null 2>&1)
done
trap 'for v in old new; do ZCCACHE_DIR=$W/$v-dir "${bin[$v]}" stop >/dev/null 2>&1 || true; done' EXIT
ms() { local s=${EPOCHREALTIME/./}; "$@" >/dev/null 2>&1; echo $(((${EPOCHREALTIME/./} - s) / 10))e-2; }
for ((r = 1; r <= ROUNDS; r++)); do
  for v in old new; do
    cd "$W/$v"
    export ZCCACHE_DIR=$W/$v-dir
    cached=$(ms "${bin[$v]}" run --all)
    rm -rf packages/*/dist
    restored=$(ms "${bin[$v]}" run --all)
    echo "$v $cached $restored"
  done
done >"$W/times"
python3 - "$W/times" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
for v in ("old", "new"):
    cached = [float(r[1]) for r in rows if r[0] == v]
    restored = [float(r[2]) for r in rows if r[0] == v]
    print(f"{v}: fully cached {statistics.median(cached):.1f} ms, dist deleted {statistics.median(restored):.1f} ms (medians of {len(cached)})")
PY
