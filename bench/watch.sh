#!/usr/bin/env bash
# bench/watch.sh: `zccache watch` save-to-command-start latency (a script writes a file, the
# task's command writes a timestamp as it starts; 50 edits, median and p95), through the
# daemon and with --no-daemon, against watchexec running the same command when it is
# installed (`cargo install watchexec-cli`); then a no-op touch (must start nothing), a
# 500-file `git checkout` (must be one round), and the watch's idle CPU over 60 s.
# ZCCACHE=path picks the binary (default: a release build of this repository).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${ZCCACHE:-} ]]; then
  (cd "$here" && cargo build --release --quiet)
  ZCCACHE=$here/target/release/zccache
fi
z=$ZCCACHE
work=$(mktemp -d)
export ZCCACHE_DIR=$work/state
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; "$z" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
edits=${EDITS:-50}
idle=${IDLE_SECS:-60}

# The project: one task whose command appends its start time (ns) to $STARTS.
mkdir -p "$work/p/src" && cd "$work/p"
git init -q . && git config user.email b@b && git config user.name b
for i in $(seq 1 500); do echo "$i" > "src/f$i.txt"; done
git add -A && git commit -qm base && git checkout -qb other
for i in $(seq 1 500); do echo "x$i" > "src/f$i.txt"; done
git commit -qam other && git checkout -q master 2>/dev/null || git checkout -q main
printf '[tasks.t]\ncommand = "date +%%s%%N >> \\"$STARTS\\""\ninclude = ["src/**"]\n' > zccache.toml

lines() { [[ -f $1 ]] && wc -l < "$1" || echo 0; }
# Waits (bounded, 10 s) until file $1 has more than $2 lines.
wait_more() { for _ in $(seq 1 1000); do (( $(lines "$1") > $2 )) && return 0; sleep 0.01; done; return 1; }

# Latency of $edits edits against the command that appends to $1; prints median and p95 (ms).
latency() {
  local starts=$1 deltas=$work/deltas.$RANDOM
  wait_more "$starts" 0 || true
  for i in $(seq 1 "$edits"); do
    sleep 0.3
    local n; n=$(lines "$starts")
    local t0; t0=$(date +%s%N)
    echo "edit $i $RANDOM" > src/f1.txt
    wait_more "$starts" "$n" || { echo "no start after edit $i" >&2; continue; }
    echo $(( $(tail -n1 "$starts") - t0 )) >> "$deltas"
  done
  python3 - "$deltas" <<'PY'
import sys
d = sorted(int(l) / 1e6 for l in open(sys.argv[1]))
print(f"{d[len(d)//2]:.1f} {d[min(len(d)-1, int(len(d)*0.95))]:.1f} {len(d)}")
PY
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "| watcher | median ms | p95 ms | edits |"
echo "|---|---|---|---|"
for mode in daemon no-daemon; do
  flag=; [[ $mode == no-daemon ]] && flag=--no-daemon
  export STARTS=$work/starts.$mode
  "$z" watch t $flag > /dev/null 2> "$work/watch.$mode.log" & w=$!; pids+=("$w")
  read -r med p95 n < <(latency "$STARTS")
  echo "| zccache watch ($mode) | $med | $p95 | $n |"
  if [[ $mode == daemon ]]; then
    # A no-op touch starts nothing; a 500-file checkout is one round.
    n=$(lines "$STARTS"); touch src/f2.txt; sleep 1
    noop=$(( $(lines "$STARTS") - n ))
    git checkout -q -- src; sleep 1
    rounds0=$(grep -cE '^zccache: [0-9]{2}:[0-9]{2}:[0-9]{2} .* changed: ' "$work/watch.$mode.log" || true)
    git checkout -q other; sleep 3
    rounds=$(( $(grep -cE '^zccache: [0-9]{2}:[0-9]{2}:[0-9]{2} .* changed: ' "$work/watch.$mode.log" || true) - rounds0 ))
    git checkout -q - ; sleep 3
    daemon=$(cat "$ZCCACHE_DIR/daemon.pid")
    t0=$(( $(cpu_ticks "$w") + $(cpu_ticks "$daemon") )); sleep "$idle"
    t1=$(( $(cpu_ticks "$w") + $(cpu_ticks "$daemon") ))
    hz=$(getconf CLK_TCK)
    idle_cpu=$(python3 -c "print(f'{($t1 - $t0) / $hz / $idle * 100:.2f}')")
  fi
  kill -TERM "$w"; wait "$w" 2>/dev/null || true
done
if command -v watchexec >/dev/null; then
  export STARTS=$work/starts.watchexec
  watchexec -q --shell=none -w src --postpone -- sh -c 'date +%s%N >> "$STARTS"' > /dev/null 2>&1 & w=$!; pids+=("$w")
  sleep 1; echo warm > src/f3.txt
  read -r med p95 n < <(latency "$STARTS")
  echo "| watchexec | $med | $p95 | $n |"
  kill -TERM "$w"; wait "$w" 2>/dev/null || true
else
  echo "| watchexec | not installed (cargo install watchexec-cli) | | |"
fi
echo
echo "no-op touch: $noop command starts; 500-file git checkout: $rounds round(s); idle CPU (watch + daemon, ${idle} s): ${idle_cpu}%"
