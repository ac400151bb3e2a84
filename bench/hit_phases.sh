#!/usr/bin/env bash
# bench/hit_phases.sh: where a C compile hit's time goes, with the early client (the static
# binary's entry point answers it before the C library starts) and without it
# (ZCCACHE_EARLY=0: the usual start), same binary, one run, modes alternated per round (ABBA).
# Prints (1) each mode's client phases, the mean of ZCCACHE_TRACE_TIMES lines, (2) medians
# of whole invocations (hyperfine): the hit, and calls the early client only looks at and
# hands on (`--version`, a `run` skip, a rustc hit) to show they pay nothing for it, with
# `true` as the floor of starting a process. Needs hyperfine (apt) and gcc, rustc.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
command -v hyperfine >/dev/null || { apt-get update -qq && apt-get install -y -qq hyperfine; }
cargo build --release --quiet
z=$here/target/release/zccache
work=$(mktemp -d)
export ZCCACHE_DIR=$work/state
trap '"$z" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
runs=${RUNS:-300} rounds=${ROUNDS:-6} traces=${TRACES:-200}
cd "$work"
printf '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\nint f(int x) { return x * 2; }\n' >a.c
printf 'pub fn f(x: u32) -> u32 { x * 2 }\n' >lib.rs
mkdir -p tree out
gcc_hit="$z gcc -O2 -MD -c a.c -o a.o"
rustc_hit="$z rustc --crate-name l --crate-type lib --edition 2021 lib.rs --emit=dep-info,metadata,link --out-dir out"
skip="$z run --quiet --cache $work/task.json --root $work/tree -- true"
$gcc_hit && $gcc_hit && $rustc_hit && $rustc_hit && $skip && $skip
for mode in early usual; do
  early=1; [[ $mode == usual ]] && early=0
  for _ in $(seq "$traces"); do
    ZCCACHE_EARLY=$early ZCCACHE_TRACE_TIMES=1 $gcc_hit 2>&1 >/dev/null | grep '^zccache: times:'
  done >"$work/trace-$mode.txt"
done
for round in $(seq "$rounds"); do
  order="early usual"; ((round % 2)) || order="usual early"
  for mode in $order; do
    early=1; [[ $mode == usual ]] && early=0
    for what in hit version skip rustc; do
      case $what in
        hit) cmd=$gcc_hit ;; version) cmd="$z --version" ;; skip) cmd=$skip ;; rustc) cmd=$rustc_hit ;;
      esac
      ZCCACHE_EARLY=$early hyperfine -N --warmup 10 --runs "$runs" \
        --export-json "$work/$mode-$what-$round.json" "$cmd" >/dev/null
    done
  done
  hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/true-$round.json" true >/dev/null
done
python3 - "$work" "$rounds" <<'PY'
import json, re, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
print("Client phases, mean ms of ZCCACHE_TRACE_TIMES lines (the daemon's answer is `wait`):\n")
for mode in ("early", "usual"):
    phases = {}
    for line in open(f"{work}/trace-{mode}.txt"):
        for name, ms in re.findall(r"([a-z ]+) ([0-9.]+) ms", line.split("times: ", 1)[1]):
            phases.setdefault(name.strip(), []).append(float(ms))
    cells = ", ".join(f"{k} {statistics.mean(v):.3f}" for k, v in phases.items())
    print(f"- {mode} ({len(next(iter(phases.values())))} hits): {cells}")
def median(name):
    return statistics.median(
        json.load(open(f"{work}/{name}-{r}.json"))["results"][0]["median"] * 1000
        for r in range(1, rounds + 1))
print(f"\nMedian ms of whole invocations (median of {rounds} rounds), `true`: {median('true'):.2f}\n")
print("| call | early client | usual start (`ZCCACHE_EARLY=0`) | early / usual |")
print("|---|---|---|---|")
for what, label in [("hit", "C compile hit (`zccache gcc -c`)"), ("version", "`zccache --version`"),
                    ("skip", "`zccache run` skip"), ("rustc", "rustc hit (`zccache rustc`)")]:
    e, u = median(f"early-{what}"), median(f"usual-{what}")
    print(f"| {label} | {e:.2f} | {u:.2f} | {e / u:.2f}× |")
PY
