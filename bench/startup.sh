#!/usr/bin/env bash
# bench/startup.sh: what the static link of the binary (build.rs, linux-gnu) buys, measured
# against the same code linked dynamically (ZCCACHE_LINK_DYNAMIC=1, its own target dir), in
# one run: process start (`zccache --version`), one C compile hit through the daemon, and one
# `zccache run` skip. Needs hyperfine (apt) and gcc; builds both binaries (slow the first time).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
cargo build --release --quiet
ZCCACHE_LINK_DYNAMIC=1 CARGO_TARGET_DIR=$here/target/dynamic cargo build --release --quiet
work=$(mktemp -d)
declare -A bin=([static]=$here/target/release/zccache [dynamic]=$here/target/dynamic/release/zccache)
trap 'for k in static dynamic; do ZCCACHE_DIR=$work/$k "${bin[$k]}" stop >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT
printf '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n' >"$work/a.c"
runs=${RUNS:-300}
for kind in static dynamic; do
  z=${bin[$kind]}
  file -b "$z" | grep -o -E 'static-pie linked|statically linked|dynamically linked' | sed "s/^/$kind: /"
  export ZCCACHE_DIR=$work/$kind
  mkdir -p "$work/$kind-tree"
  "$z" gcc -c "$work/a.c" -o "$work/$kind.o"
  "$z" run --quiet --cache "$work/$kind.json" --root "$work/$kind-tree" -- true
  hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/$kind-version.json" \
    "$z --version" >/dev/null
  hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/$kind-hit.json" \
    "$z gcc -c $work/a.c -o $work/$kind.o" >/dev/null
  hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/$kind-skip.json" \
    "$z run --quiet --cache $work/$kind.json --root $work/$kind-tree -- true" >/dev/null
done
python3 - "$work" <<'PY'
import json, sys
d = sys.argv[1]
def ms(kind, what):
    r = json.load(open(f"{d}/{kind}-{what}.json"))["results"][0]
    return r["median"] * 1000
print("| median ms | static | dynamic | static / dynamic |")
print("|---|---|---|---|")
for what, label in [("version", "start (`--version`)"), ("hit", "C compile hit"), ("skip", "`run` skip")]:
    s, dy = ms("static", what), ms("dynamic", what)
    print(f"| {label} | {s:.2f} | {dy:.2f} | {s / dy:.2f}x |")
PY
