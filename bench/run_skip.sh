#!/usr/bin/env bash
# bench/run_skip.sh: end-to-end `zccache run` skip latency on this repository, through the
# daemon and with --no-daemon, against `true` (process spawn floor) and a fresh
# `cargo clippy` (what a skip saves), in one run. Needs hyperfine (apt); builds our binary.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
cargo build --release --quiet
cargo clippy --quiet 2>/dev/null
work=$(mktemp -d)
export ZCCACHE_DIR=$work/state
z=$here/target/release/zccache
trap '"$z" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
runs=${RUNS:-200}
for mode in daemon no-daemon; do
  flag=; [[ $mode == no-daemon ]] && flag=--no-daemon
  cache=$work/lint-$mode.json
  "$z" run $flag --quiet --cache "$cache" -- cargo clippy --quiet
  "$z" run $flag --quiet --cache "$cache" -- cargo clippy --quiet
  hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/$mode.json" \
    "$z run $flag --quiet --cache $cache -- cargo clippy --quiet" >/dev/null
done
hyperfine -N --warmup 5 --runs "$runs" --export-json "$work/true.json" true >/dev/null
hyperfine -N --warmup 2 --runs "${CLIPPY_RUNS:-10}" --export-json "$work/clippy.json" \
  "cargo clippy --quiet" >/dev/null
python3 - "$work" <<'PY'
import json, sys
d = sys.argv[1]
ms = {n: json.load(open(f"{d}/{n}.json"))["results"][0]["median"] * 1000
      for n in ("true", "daemon", "no-daemon", "clippy")}
print(f"median ms: true {ms['true']:.2f}, skip via daemon {ms['daemon']:.2f}, "
      f"skip --no-daemon {ms['no-daemon']:.2f}, fresh cargo clippy {ms['clippy']:.1f}")
print(f"daemon skip / true {ms['daemon']/ms['true']:.1f}x; "
      f"daemon skip / fresh clippy {ms['daemon']/ms['clippy']:.3f}x")
PY
