#!/usr/bin/env bash
# bench/store.sh: the compressed store (issue P item 1) against the same binary storing raw
# (ZCCACHE_COMPRESSION=off, the store before compression), in one run:
#   C workload (../shared/bench: zstd lib + brotli, 69 units, -O2 -g -MD): store size on disk
#     and uncompressed after a cold `make -j2`, the warm `make -j1` per object (all hits),
#     and ccache's warm -j1 per object in the same run for the ratio;
#   Rust workspace (bench/rust.sh's app, ~80 crates, CARGO_INCREMENTAL=0): store size after a
#     cold `cargo build`, and the warm build after `cargo clean` (all hits).
# Env: ROUNDS (default 2; the best round of each is shown), LEVELS (default "off 1"),
# PARTS (default "c rust").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared/bench}
ROUNDS=${ROUNDS:-2}
LEVELS=${LEVELS:-off 1}
PARTS=${PARTS:-c rust}
cwork=/tmp/bench-work/c-zstd-brotli
rwork=/tmp/zccache-rust-bench
ours=$here/target/release/zccache
tmp=$(mktemp -d)
trap 'for d in "$tmp"/z-*; do ZCCACHE_DIR=$d "$ours" stop >/dev/null 2>&1 || true; done; rm -rf "$tmp"' EXIT

(cd "$here" && cargo build --release --quiet)
command -v ccache >/dev/null || bash "$shared/install_peers.sh" /tmp/peers >/dev/null
[[ -f $cwork/.workload-ok ]] || bash "$shared/get_workload.sh" "$cwork" >/dev/null
[[ -d $rwork/app ]] || TOOLS=bare SETTINGS=incremental-off bash "$here/bench/rust.sh" >/dev/null
MK=(make -s -f "$shared/c_workload.mk" -C "$cwork")
units=$("${MK[@]}" count 2>/dev/null | tail -1 || echo 69)
ms_now() { date +%s%3N; }
sizes() { # ZCCACHE_DIR -> "on_disk raw" in bytes
  ZCCACHE_DIR=$1 "$ours" status --json | python3 -c 'import json,sys; d=json.load(sys.stdin)["daemon"]; print(d["artifact_bytes"], d["artifact_raw_bytes"])'
}
best() { sort -n | head -1; }

c_round() { # level -> "on_disk raw warm_us_per_obj"
  local dir=$tmp/z-c-$1-$RANDOM t0 t1 s
  mkdir -m 700 "$dir"
  export ZCCACHE_DIR=$dir ZCCACHE_COMPRESSION=$1
  "${MK[@]}" clean
  "${MK[@]}" -j2 CC="$ours gcc" >/dev/null 2>&1
  s=$(sizes "$dir")
  "${MK[@]}" clean
  t0=$(ms_now); "${MK[@]}" -j1 CC="$ours gcc" >/dev/null 2>&1; t1=$(ms_now)
  "$ours" stop >/dev/null 2>&1 || true
  unset ZCCACHE_DIR ZCCACHE_COMPRESSION
  echo "$s $(((t1 - t0) * 1000 / units))"
}

ccache_round() { # -> warm us per object
  local dir=$tmp/ccache-$RANDOM t0 t1
  export CCACHE_DIR=$dir
  "${MK[@]}" clean; "${MK[@]}" -j2 CC="ccache gcc" >/dev/null 2>&1; "${MK[@]}" clean
  t0=$(ms_now); "${MK[@]}" -j1 CC="ccache gcc" >/dev/null 2>&1; t1=$(ms_now)
  unset CCACHE_DIR
  echo $(((t1 - t0) * 1000 / units))
}

rust_round() { # level -> "on_disk raw warm_ms"
  local dir=$tmp/z-r-$1-$RANDOM t0 t1 s
  mkdir -m 700 "$dir"
  export ZCCACHE_DIR=$dir ZCCACHE_COMPRESSION=$1 RUSTC_WRAPPER=$ours CARGO_INCREMENTAL=0
  (cd "$rwork/app" && cargo clean --quiet && cargo build --quiet --offline)
  s=$(sizes "$dir")
  (cd "$rwork/app" && cargo clean --quiet)
  t0=$(ms_now); (cd "$rwork/app" && cargo build --quiet --offline); t1=$(ms_now)
  "$ours" stop >/dev/null 2>&1 || true
  unset ZCCACHE_DIR ZCCACHE_COMPRESSION RUSTC_WRAPPER CARGO_INCREMENTAL
  echo "$s $((t1 - t0))"
}

mb() { python3 -c "print(f'{$1/1e6:.1f} MB')"; }
echo "| workload | store | on disk | uncompressed | warm |"
echo "|---|---|---|---|---|"
[[ " $PARTS " == *" c "* ]] && cc_us=$(for _ in $(seq "$ROUNDS"); do ccache_round; done | best)
[[ " $PARTS " == *" c "* ]] && for level in $LEVELS; do
  read -r disk raw us < <(for _ in $(seq "$ROUNDS"); do c_round "$level"; done | sort -k3 -n | head -1)
  echo "| C, $units units | $level | $(mb "$disk") | $(mb "$raw") | $((us / 1000)).$(((us % 1000) / 100)) ms/object hit (ccache $((cc_us / 1000)).$(((cc_us % 1000) / 100)) ms: $(python3 -c "print(f'{$us/$cc_us:.2f}')")×) |"
done
[[ " $PARTS " == *" rust "* ]] && for level in $LEVELS; do
  read -r disk raw ms < <(for _ in $(seq "$ROUNDS"); do rust_round "$level"; done | sort -k3 -n | head -1)
  echo "| Rust workspace | $level | $(mb "$disk") | $(mb "$raw") | $ms ms after cargo clean |"
done
