#!/usr/bin/env bash
# bench/watch.sh: `zccache watch` save-to-command-start latency (a script writes a file, the
# task's command writes a timestamp as it starts; 50 edits, median and p95), through the
# daemon and with --no-daemon, against watchexec running the same command when it is
# installed (on PATH or in /tmp/watchexec/bin: `cargo install watchexec-cli --root
# /tmp/watchexec`) and `turbo watch build` on a one-package npm-workspaces monorepo of the
# runner-bench shape (turbo@2 npm-installed in TURBO_PREFIX, /tmp/turbo-peer, when missing;
# the package's build script is the same command, run the way turbo runs every task: `npm run
# build`); then a no-op touch (must start nothing), a 500-file `git checkout` (must be one
# round; for turbo: the command starts it makes), and the watch's idle CPU over 60 s.
# ZCCACHE=path picks the binary (default: a release build of this repository); EDITS (50),
# GAP (0.3 s after the previous start before the next edit), IDLE_SECS (60).
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
TURBO_PREFIX=${TURBO_PREFIX:-/tmp/turbo-peer}
edits=${EDITS:-50}
gap=${GAP:-0.3}
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
    sleep "$gap"
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

# `turbo watch build` on its own repo: the root package.json (npm workspaces), turbo.json as
# runner_peers.sh writes it (task build, outputs dist/**) and packages/p00 holding the same
# 500 files in src/ and the branch `other`; p00's build script appends its start time.
# Prints its row and sets turbo_note (no-op touch, checkout starts, npm run's own floor).
turbo_peer() {
  local bin t=$work/t pkg=$work/t/packages/p00
  bin=$(ls "$TURBO_PREFIX"/node_modules/@turbo/*/bin/turbo 2>/dev/null | head -1 || true)
  if [[ -z $bin ]] && command -v npm >/dev/null; then
    npm install --prefix "$TURBO_PREFIX" --no-audit --no-fund --loglevel=error turbo@2 >&2 || true
    bin=$(ls "$TURBO_PREFIX"/node_modules/@turbo/*/bin/turbo 2>/dev/null | head -1 || true)
  fi
  if [[ -z $bin ]]; then echo "| turbo watch | not available (needs npm: npm install turbo@2) | | |"; return; fi
  # Offline and local, as runner_peers.sh runs it; NODE_EXTRA_CA_CERTS would tax npm's start.
  export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 TURBO_NO_UPDATE_NOTIFIER=1
  unset NODE_EXTRA_CA_CERTS NODE_OPTIONS TURBO_TOKEN TURBO_TEAM TURBO_API TURBO_UI TURBO_DAEMON
  export STARTS=$work/starts.turbo
  mkdir -p "$pkg" && cp -a src "$pkg/src"
  printf '{"name":"watch-mono","private":true,"workspaces":["packages/*"],"packageManager":"npm@%s"}\n' \
    "$(npm --version)" > "$t/package.json"
  printf '{"$schema":"https://turborepo.com/schema.json","ui":"stream","remoteCache":{"enabled":false},"tasks":{"build":{"outputs":["dist/**"]}}}\n' \
    > "$t/turbo.json"
  printf '{"name":"p00","version":"1.0.0","private":true,"scripts":{"build":"date +%%s%%N >> %s"}}\n' \
    "$STARTS" > "$pkg/package.json"
  printf 'node_modules/\ndist/\n.turbo/\n' > "$t/.gitignore"
  (cd "$t" && npm install --offline --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null &&
    git init -q . && git config user.email b@b && git config user.name b &&
    git add -A && git commit -qm base && git checkout -qb other &&
    for i in $(seq 1 500); do echo "x$i" > "packages/p00/src/f$i.txt"; done &&
    git commit -qam other && git checkout -q -)
  # npm run's own floor: shell start to the command's timestamp, run directly (median of 10).
  local floor=$work/floor
  for _ in $(seq 1 10); do
    local t0; t0=$(date +%s%N); (cd "$pkg" && npm run -s build)
    echo $(( $(tail -n1 "$STARTS") - t0 )) >> "$floor"
  done
  : > "$STARTS"
  (cd "$t" && exec "$bin" watch build --cwd="$t" --skip-infer) > "$work/watch.turbo.log" 2>&1 & w=$!; pids+=("$w")
  # Its first run, then a settle (turbo's daemon starts its file watching after the run).
  for _ in $(seq 1 6000); do (( $(lines "$STARTS") > 0 )) && break; sleep 0.01; done
  sleep 2
  (cd "$pkg" && read -r med p95 n < <(latency "$STARTS") &&
    echo "| turbo watch $("$bin" --version) (npm run build) | $med | $p95 | $n |")
  cd "$pkg"
  local n; n=$(lines "$STARTS"); touch src/f2.txt; sleep 2
  local tnoop=$(( $(lines "$STARTS") - n ))
  git checkout -q -- src; sleep 2; n=$(lines "$STARTS")
  git checkout -q other; sleep 5
  local tco=$(( $(lines "$STARTS") - n ))
  git checkout -q -; sleep 2
  cd "$work/p"
  kill -TERM "$w"; wait "$w" 2>/dev/null || true
  "$bin" daemon stop --cwd="$t" >/dev/null 2>&1 || true
  turbo_note="turbo watch: no-op touch $tnoop command starts; 500-file git checkout: $tco command starts; npm run's own floor (shell to command start, run by hand): $(sort -n "$floor" | sed -n 5p | awk '{printf "%.1f", $1 / 1e6}') ms"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

load0=$(cut -d' ' -f1-3 /proc/loadavg)
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
watchexec=$(command -v watchexec || ls /tmp/watchexec/bin/watchexec 2>/dev/null || true)
if [[ -n $watchexec ]]; then
  export STARTS=$work/starts.watchexec
  "$watchexec" -q --shell=none -w src --postpone -- sh -c 'date +%s%N >> "$STARTS"' > /dev/null 2>&1 & w=$!; pids+=("$w")
  sleep 1; echo warm > src/f3.txt
  read -r med p95 n < <(latency "$STARTS")
  echo "| $("$watchexec" --version | head -1 | cut -d" " -f1-2) | $med | $p95 | $n |"
  kill -TERM "$w"; wait "$w" 2>/dev/null || true
else
  echo "| watchexec | not installed (cargo install watchexec-cli --root /tmp/watchexec) | | |"
fi
turbo_peer
echo
echo "no-op touch: $noop command starts; 500-file git checkout: $rounds round(s); idle CPU (watch + daemon, ${idle} s): ${idle_cpu}%"
echo "${turbo_note:-}"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) at the end (started at $load0)"
