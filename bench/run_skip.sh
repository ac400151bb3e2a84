#!/usr/bin/env bash
# bench/run_skip.sh: end-to-end `zccache run` skip latency on this repository, against
# `true` (process spawn floor) and a fresh `cargo clippy` (what the skip saves), in one run.
# Needs hyperfine (apt); builds our release binary.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
cargo build --release --quiet
cargo clippy --quiet 2>/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
z=$here/target/release/zccache
cache=$work/lint.json
"$z" run --quiet --cache "$cache" -- cargo clippy --quiet
"$z" run --quiet --cache "$cache" -- cargo clippy --quiet
hyperfine -N --warmup 5 --runs "${RUNS:-200}" --export-json "$work/true.json" true >/dev/null
hyperfine -N --warmup 5 --runs "${RUNS:-200}" --export-json "$work/skip.json" \
  "$z run --quiet --cache $cache -- cargo clippy --quiet" >/dev/null
hyperfine -N --warmup 2 --runs "${CLIPPY_RUNS:-10}" --export-json "$work/clippy.json" \
  "cargo clippy --quiet" >/dev/null
python3 - "$work" <<'PY'
import json, sys
d = sys.argv[1]
m = {n: json.load(open(f"{d}/{n}.json"))["results"][0] for n in ("true", "skip", "clippy")}
ms = lambda n: m[n]["median"] * 1000
files = "this repository"
print(f"median ms: true {ms('true'):.2f}, zccache run skip {ms('skip'):.2f}, "
      f"fresh cargo clippy {ms('clippy'):.1f}")
print(f"skip / true: {ms('skip')/ms('true'):.1f}x; skip / fresh clippy: {ms('skip')/ms('clippy'):.3f}x")
PY
