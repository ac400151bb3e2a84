#!/usr/bin/env bash
# bench/runner.sh: a copy of ../shared/bench/runner_peers.sh for our columns. Changes: s4
# expects 0 zccache builds (outputs are restored from the cache since session 3), the store's
# growth is reported after s4, s6 runs zccache with -j 10 (turbo's default concurrency) and
# with its own default, and ONLY="s2 s4" runs a subset of scenarios (s0..s6). Builds our
# release binary when ZC is not given.
#
# runner_peers.sh: Turborepo (`turbo run build`, npm package turbo@2) against `zccache run --all`
# on one generated npm-workspaces monorepo: N packages (20), FILES src/*.js each (50, 2-4.5 KB),
# each package's build = `node build.js` (concatenate src/ into dist/out.txt, append a line to
# <repo>.runs beside the repo, so real runs are counted). turbo.json: task build, default inputs,
# outputs ["dist/**"]; zccache.toml: one task per package, root = the package, exclude
# dist/node_modules/.turbo, outputs = [its dist]. Both files live in every copy of the repo.
#
# Every tool works on its own identical copy (cp -a of one template, a git repo with the
# sources committed, package-lock.json from an offline `npm install`), so no tool's state or
# marker is another's input. Per scenario: one logged check run per command, then RUNS rounds,
# each timing every command once (EPOCHREALTIME, output to /dev/null, preparation untimed) in a
# rotating order, so load bursts from elsewhere on a small machine hit all tools alike.
#   s0 per-task floor: `node build.js` vs `npm run build` (turbo runs tasks via npm run)
#   s1 cold: caches and dist wiped before every run (zccache: daemon stopped too); also turbo
#      --concurrency=1, zccache with tasks = `npm run build` (zccache-npm.toml, what turbo
#      spawns per task), and a bare sequential `node build.js` loop
#   s2 fully cached repeat (also turbo via its npm bin shim, zccache --no-daemon)
#   s3 one src file edited in one package before every run
#   s4 rm -rf packages/*/dist before every run (both restore from their caches)
#   s5 what would run: turbo --dry=json vs zccache tasks --json (and run --all --dry-run)
#   s6 builds that sleep 1 s, cold: turbo's default concurrency (10) vs zccache -j 10 and
#      zccache's default (-j = the number of CPUs), and the floor: the bare builds 10 at a
#      time through xargs -P 10
# Builds per run = marker lines added by that run; a row where any run's count differs from
# the expected one is flagged MISMATCH. s4 also checks that turbo's restored
# dist/out.txt are byte-identical to the ones before and to zccache's rebuilt ones.
#
# Env: ZC (our binary), W (work dir, wiped: /tmp/runner-peers), N, FILES, RUNS (9; s2/s5 use
# FAST_RUNS, 21; s6 SLEEP_RUNS, 7), SLEEP_MS (1000), TURBO_PREFIX (/tmp/turbo-peer; turbo@2
# is npm-installed there when missing), OUT (results: $W/results). Turbo is kept offline and
# local: telemetry and update notifier off, no token, remoteCache.enabled=false,
# --cache=local:rw; turbo 2.x no longer uses its daemon for `turbo run`. zccache: private
# ZCCACHE_DIR under W; the daemon started there is stopped at exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
SELF=$here/$(basename "$0")
HELPER=$here/runner_peers.py
if [[ -z ${ZC:-} && ${1:-} != op ]]; then
  (cd "$here/.." && cargo build --release --quiet)
  ZC=$here/../target/release/zccache
fi
export ZC=${ZC:?set ZC to the zccache binary to measure}
ONLY=${ONLY:-s0 s1 s2 s3 s4 s5 s6}
export W=${W:-/tmp/runner-peers}
export N=${N:-20} FILES=${FILES:-50}
RUNS=${RUNS:-9} FAST_RUNS=${FAST_RUNS:-21} SLEEP_RUNS=${SLEEP_RUNS:-7} SLEEP_MS=${SLEEP_MS:-1000}
TURBO_PREFIX=${TURBO_PREFIX:-/tmp/turbo-peer}
OUT=${OUT:-$W/results}
export ZCCACHE_DIR=$W/zccache-dir ZCCACHE_IDLE_TIMEOUT=1800
unset ZCCACHE_NO_DAEMON ZCCACHE_REMOTE ZCCACHE_REMOTE_READONLY ZCCACHE_REMOTE_NAMESPACE
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 TURBO_NO_UPDATE_NOTIFIER=1
unset TURBO_TOKEN TURBO_TEAM TURBO_TEAMID TURBO_API TURBO_LOGIN TURBO_REMOTE_ONLY \
  TURBO_REMOTE_CACHE_READ_ONLY TURBO_CACHE TURBO_CACHE_DIR TURBO_FORCE TURBO_CONCURRENCY \
  TURBO_UI TURBO_DAEMON TURBO_PREFLIGHT
EDIT_PKG=$(printf 'p%02d' $((N / 2)))
EDIT_FILE=$(printf 'f%03d.js' $((FILES / 2)))

# `runner_peers.sh op NAME REPO`: the per-run preparations (and the bare build loop).
if [[ ${1:-} == op ]]; then
  r=$W/$3
  case $2 in
    none) ;;
    wipe-turbo) rm -rf "$r/.turbo" "$r"/packages/*/.turbo "$r"/packages/*/dist "$r/node_modules/.cache" ;;
    wipe-zc)
      "$ZC" stop >/dev/null 2>&1 || true
      rm -rf "$r/.zccache" "$r"/packages/*/.zccache "$r"/packages/*/dist ;;
    rm-dist) rm -rf "$r"/packages/*/dist ;;
    edit)
      n=$(($(cat "$r.edits" 2>/dev/null || echo 0) + 1))
      echo "$n" >"$r.edits"
      printf '// edit %d\n' "$n" >>"$r/packages/$EDIT_PKG/src/$EDIT_FILE" ;;
    bare-all) for p in "$r"/packages/*/; do (cd "$p" && node build.js); done ;;
    bare-par) printf '%s\n' "$r"/packages/*/ | xargs -P 10 -I{} sh -c 'cd "$1" && exec node build.js' _ {} ;;
    *) echo "unknown op $2" >&2; exit 2 ;;
  esac
  exit 0
fi

say() { printf '%s\n' "$*" | tee -a "$OUT/log.txt" >&2; }
runs_of() { if [[ -f $W/$1.runs ]]; then wc -l <"$W/$1.runs"; else echo 0; fi; }

for t in node npm git python3; do
  command -v "$t" >/dev/null || { echo "missing: $t" >&2; exit 2; }
done
[[ -x $ZC ]] || { echo "ZC=$ZC is not executable" >&2; exit 2; }
TURBO_BIN=$(ls "$TURBO_PREFIX"/node_modules/@turbo/*/bin/turbo 2>/dev/null | head -1 || true)
if [[ -z $TURBO_BIN ]]; then
  npm install --prefix "$TURBO_PREFIX" --no-audit --no-fund --loglevel=error turbo@2 >&2
  TURBO_BIN=$(ls "$TURBO_PREFIX"/node_modules/@turbo/*/bin/turbo | head -1)
fi
TURBO_SHIM=$TURBO_PREFIX/node_modules/.bin/turbo
# Measured runs need no network. NODE_EXTRA_CA_CERTS (set on some sandboxes) adds ~40 ms to
# every node start; turbo's strict env mode strips it from its tasks, zccache passes the
# environment through, so it would tax only zccache's builds: drop it (and NODE_OPTIONS).
unset NODE_EXTRA_CA_CERTS NODE_OPTIONS

# Wipe our own work dir only (it carries a stamp), stopping its daemon first.
if [[ -e $W ]]; then
  [[ -e $W/.runner-peers ]] || { echo "$W exists and is not ours (no .runner-peers stamp)" >&2; exit 2; }
  [[ -d $ZCCACHE_DIR ]] && { "$ZC" stop >/dev/null 2>&1 || true; }
  rm -rf "$W"
fi
mkdir -p "$W" "$OUT"
touch "$W/.runner-peers"
trap '"$ZC" stop >/dev/null 2>&1 || true' EXIT
: >"$OUT/times.tsv"

make_template() { # DIR SLEEP_MS
  python3 "$HELPER" gen "$1" "$N" "$FILES" "$2" "$(npm --version)"
  (cd "$1" && npm install --offline --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null &&
    git init -q && git add -A &&
    git -c user.name=bench -c user.email=bench@example.invalid commit -qm workload)
}
copy_repo() { # TEMPLATE NAME
  cp -a "$1" "$W/$2"
  git -C "$W/$2" update-index -q --refresh || true
}
make_template "$W/tpl" 0
make_template "$W/tpl-sleep" "$SLEEP_MS"
for r in turbo turbo-c1 zc zc-npm bare bare-npm; do copy_repo "$W/tpl" "$r"; done
for r in turbo-sleep zc-sleep bare-sleep; do copy_repo "$W/tpl-sleep" "$r"; done

turbo_cmd() { echo "$TURBO_BIN run build --cwd=$W/$1 --skip-infer --no-update-notifier --cache=local:rw${2:+ $2}"; }
zc_cmd() { echo "$ZC run --all --config $W/$1/${2:-zccache.toml}"; }

say "turbo $("$TURBO_BIN" --version) ($TURBO_BIN); $("$ZC" --version) ($ZC)"
say "node $(node --version), npm $(npm --version), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
say "workload: N=$N packages x FILES=$FILES src files, $(du -sk "$W/tpl/packages" | cut -f1) KB of packages; RUNS=$RUNS FAST_RUNS=$FAST_RUNS SLEEP_RUNS=$SLEEP_RUNS"

# scenario NAME RUNS, then groups of 5: LABEL REPO EXPECTED_BUILDS_PER_RUN PREP_OP COMMAND.
# One logged check run per command, then RUNS rounds; each round runs every command once
# (prep, then the timed command with stdout/stderr to /dev/null), rotating the order, so a
# burst of load from elsewhere hits all tools alike. Every timed run's builds are counted.
scenario() {
  local name=$1 runs=$2 i j k r label repo exp prep cmd before got t0 t1 log
  [[ " $ONLY " == *" ${name%%-*} "* ]] || return 0
  shift 2
  local -a a=("$@") argv
  k=$((${#a[@]} / 5))
  say ""
  say "== $name ($runs rounds)"
  for ((i = 0; i < k; i++)); do
    label=${a[5 * i]} repo=${a[5 * i + 1]} exp=${a[5 * i + 2]} prep=${a[5 * i + 3]} cmd=${a[5 * i + 4]}
    bash "$SELF" op "$prep" "$repo"
    eval "argv=($cmd)"
    before=$(runs_of "$repo")
    log=$OUT/$name.$repo.$i
    t0=${EPOCHREALTIME/./}
    "${argv[@]}" >"$log.out" 2>"$log.err" || { say "  check run of '$label' failed; see $log.err"; exit 1; }
    t1=${EPOCHREALTIME/./}
    got=$(($(runs_of "$repo") - before))
    say "  check $label: $(((t1 - t0) / 1000)) ms, $got builds (expected $exp)$([[ $got == "$exp" ]] || echo '  MISMATCH')"
    say "    \$ $cmd"
  done
  for ((r = 1; r <= runs; r++)); do
    for ((j = 0; j < k; j++)); do
      i=$(((r + j) % k))
      label=${a[5 * i]} repo=${a[5 * i + 1]} exp=${a[5 * i + 2]} prep=${a[5 * i + 3]} cmd=${a[5 * i + 4]}
      bash "$SELF" op "$prep" "$repo"
      eval "argv=($cmd)"
      before=$(runs_of "$repo")
      t0=${EPOCHREALTIME/./}
      "${argv[@]}" >/dev/null 2>&1 || { say "  '$label' failed in round $r"; exit 1; }
      t1=${EPOCHREALTIME/./}
      got=$(($(runs_of "$repo") - before))
      printf '%s\t%d\t%s\t%d\t%d\t%s\t%d\n' "$name" "$i" "$label" "$r" $((t1 - t0)) "$exp" "$got" >>"$OUT/times.tsv"
    done
  done
  python3 "$HELPER" summary "$OUT/times.tsv" "$name" | tee -a "$OUT/log.txt" >&2
}

P0=$(printf 'p%02d' 0)
scenario s0-per-task "$RUNS" \
  "node build.js (1 pkg)" bare 1 none "bash -c 'cd $W/bare/packages/$P0 && exec node build.js'" \
  "npm run build (1 pkg)" bare-npm 1 none "bash -c 'cd $W/bare-npm/packages/$P0 && exec npm run build'"

scenario s1-cold "$RUNS" \
  "turbo" turbo "$N" wipe-turbo "$(turbo_cmd turbo)" \
  "zccache" zc "$N" wipe-zc "$(zc_cmd zc)" \
  "turbo --concurrency=1" turbo-c1 "$N" wipe-turbo "$(turbo_cmd turbo-c1 --concurrency=1)" \
  "zccache, tasks = npm run build" zc-npm "$N" wipe-zc "$(zc_cmd zc-npm zccache-npm.toml)" \
  "bare node build.js x N (seq)" bare "$N" none "bash $SELF op bare-all bare"
say "  after the cold runs: turbo cache $W/turbo/.turbo/cache: $(du -sk "$W/turbo/.turbo/cache" | cut -f1) KB in $(find "$W/turbo/.turbo/cache" -type f | wc -l) files; packages/*/.turbo logs: $(cat "$W"/turbo/packages/*/.turbo/* | wc -c) bytes"
say "  zccache state: packages/*/.zccache $(du -skc "$W"/zc/packages/*/.zccache | tail -1 | cut -f1) KB, ZCCACHE_DIR $(du -sk "$ZCCACHE_DIR" | cut -f1) KB; dist (either) $(du -skc "$W"/zc/packages/*/dist | tail -1 | cut -f1) KB"

scenario s2-cached "$FAST_RUNS" \
  "turbo" turbo 0 none "$(turbo_cmd turbo)" \
  "zccache" zc 0 none "$(zc_cmd zc)" \
  "turbo via npm bin shim" turbo 0 none "$TURBO_SHIM run build --cwd=$W/turbo --skip-infer --no-update-notifier --cache=local:rw" \
  "zccache --no-daemon" zc 0 none "$ZC run --all --no-daemon --config $W/zc/zccache.toml"

scenario s3-edit-one "$RUNS" \
  "turbo" turbo 1 edit "$(turbo_cmd turbo)" \
  "zccache" zc 1 edit "$(zc_cmd zc)" \
  "zccache, tasks = npm run build" zc-npm 1 edit "$(zc_cmd zc-npm zccache-npm.toml)"

if [[ " $ONLY " == *" s4 "* ]]; then
  (cd "$W/turbo" && sha256sum packages/*/dist/out.txt) >"$OUT/turbo-dist.sha256"
fi
scenario s4-dist-deleted "$RUNS" \
  "turbo" turbo 0 rm-dist "$(turbo_cmd turbo)" \
  "zccache" zc 0 rm-dist "$(zc_cmd zc)"
if [[ " $ONLY " == *" s4 "* ]]; then
  say "  store after s4: ZCCACHE_DIR $(du -sk "$ZCCACHE_DIR" | cut -f1) KB"
  if (cd "$W/turbo" && sha256sum --quiet -c "$OUT/turbo-dist.sha256"); then
    say "  turbo's restored dist/out.txt: byte-identical to before the deletions ($N files)"
  else say "  turbo's restored dist/out.txt DIFFER from before the deletions"; fi
  if (cd "$W/zc" && sha256sum --quiet -c "$OUT/turbo-dist.sha256"); then
    say "  zccache's restored dist/out.txt: byte-identical to turbo's"
  else say "  zccache's restored dist/out.txt DIFFER from turbo's"; fi
fi

scenario s5-what-would-run "$FAST_RUNS" \
  "turbo --dry=json" turbo 0 none "$(turbo_cmd turbo --dry=json)" \
  "zccache tasks --json" zc 0 none "$ZC tasks --json --config $W/zc/zccache.toml" \
  "zccache run --all --dry-run" zc 0 none "$ZC run --all --dry-run --config $W/zc/zccache.toml"
if [[ " $ONLY " == *" s5 "* ]]; then
  say "  cached: turbo dry says $(python3 "$HELPER" dry-turbo "$OUT/s5-what-would-run.turbo.0.out"); zccache tasks says $(python3 "$HELPER" dry-zc "$OUT/s5-what-would-run.zc.1.out")"
  bash "$SELF" op edit turbo
  bash "$SELF" op edit zc
  eval "argv=($(turbo_cmd turbo --dry=json))"
  "${argv[@]}" >"$OUT/s5-after-edit.turbo.json" 2>/dev/null
  "$ZC" tasks --json --config "$W/zc/zccache.toml" >"$OUT/s5-after-edit.zc.json" 2>/dev/null
  say "  after one more edit: turbo dry says $(python3 "$HELPER" dry-turbo "$OUT/s5-after-edit.turbo.json"); zccache tasks says $(python3 "$HELPER" dry-zc "$OUT/s5-after-edit.zc.json")"
fi

scenario s6-sleep-1s-cold "$SLEEP_RUNS" \
  "turbo (default concurrency 10)" turbo-sleep "$N" wipe-turbo "$(turbo_cmd turbo-sleep)" \
  "zccache -j 10" zc-sleep "$N" wipe-zc "$(zc_cmd zc-sleep) -j 10" \
  "zccache (default -j: $(nproc) CPUs)" zc-sleep "$N" wipe-zc "$(zc_cmd zc-sleep)" \
  "bare node build.js, 10 at once (xargs -P 10)" bare-sleep "$N" none "bash $SELF op bare-par bare-sleep"

say ""
say "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
say "turbo processes left (a daemon would show here): $(pgrep -c -f "$TURBO_BIN" || true)"
say "turbo daemon dirs: $(ls -d "${TMPDIR:-/tmp}"/turbod 2>/dev/null || echo none)"
python3 "$HELPER" summary "$OUT/times.tsv" | tee "$OUT/summary.md"
