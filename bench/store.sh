#!/usr/bin/env bash
# bench/store.sh: the compressed store (issue P item 1) against the same binary storing raw
# (ZCCACHE_COMPRESSION=off, the store before compression), in one run:
#   C workload (../shared/bench: zstd lib + brotli, 69 units, -O2 -g -MD): store size on disk
#     and uncompressed after a cold `make -j2`, the warm `make -j1` per object (all hits),
#     and ccache's warm -j1 per object in the same run for the ratio;
#   Rust workspace (bench/rust.sh's app, ~80 crates, CARGO_INCREMENTAL=0): store size after a
#     cold `cargo build`, and the warm build after `cargo clean` (all hits);
#   ripgrep (PARTS=ripgrep, not in the default): a real `cargo build` of ripgrep with cargo's
#     defaults (debug, CARGO_INCREMENTAL unset): per level one cold build into its own store
#     (size on disk and uncompressed), sccache's cache size for the same cold build when
#     sccache is there, then the warm build after `cargo clean` (all hits) in ROUNDS rounds
#     alternating between the levels, each round with the load it ran under.
#     RG_SRC: a ripgrep checkout to build (default: RG_GIT, https://github.com/BurntSushi/ripgrep
#     or a local clone of it, cloned at RG_REV, 15.1.0, into /tmp/zccache-ripgrep-bench/src;
#     its crates are fetched from crates.io once, the builds then run --offline).
# Env: ROUNDS (default 2; the best round of each is shown; ripgrep shows every round),
# LEVELS (default "off 1"), PARTS (default "c rust").
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

has() { [[ " $PARTS " == *" $1 "* ]]; }
(cd "$here" && cargo build --release --quiet)
if has c; then
  command -v ccache >/dev/null || bash "$shared/install_peers.sh" /tmp/peers >/dev/null
  [[ -f $cwork/.workload-ok ]] || bash "$shared/get_workload.sh" "$cwork" >/dev/null
  MK=(make -s -f "$shared/c_workload.mk" -C "$cwork")
  units=$("${MK[@]}" count 2>/dev/null | tail -1 || echo 69)
fi
if has rust; then
  [[ -d $rwork/app ]] || TOOLS=bare SETTINGS=incremental-off bash "$here/bench/rust.sh" >/dev/null
fi
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

# ripgrep: the checkout to build, its crates fetched once so the timed builds run offline.
rg_prepare() {
  if [[ -z ${RG_SRC:-} ]]; then
    RG_SRC=/tmp/zccache-ripgrep-bench/src
    if [[ ! -f $RG_SRC/Cargo.lock ]]; then
      rm -rf "$RG_SRC" && mkdir -p "$(dirname "$RG_SRC")"
      git clone -q "${RG_GIT:-https://github.com/BurntSushi/ripgrep}" "$RG_SRC"
      git -C "$RG_SRC" -c advice.detachedHead=false checkout -q "${RG_REV:-15.1.0}"
    fi
  fi
  (cd "$RG_SRC" && cargo fetch --quiet)
}

# Runs cargo in the ripgrep checkout with cargo's defaults (CARGO_INCREMENTAL as cargo sets it).
rg_cargo() { (cd "$RG_SRC" && env -u CARGO_INCREMENTAL -u CARGO_BUILD_INCREMENTAL cargo "$@" --quiet); }

rg_cold() { # level -> "on_disk raw cold_ms"; fills the level's store at $tmp/z-rg-LEVEL
  local dir=$tmp/z-rg-$1 t0 t1
  mkdir -m 700 "$dir"
  rg_cargo clean
  t0=$(ms_now)
  ZCCACHE_DIR=$dir ZCCACHE_COMPRESSION=$1 RUSTC_WRAPPER=$ours rg_cargo build --offline
  t1=$(ms_now)
  { echo "zccache status after the cold build, store $1:"; ZCCACHE_DIR=$dir "$ours" status; } >&2
  echo "$(sizes "$dir") $((t1 - t0))"
}

rg_warm() { # level -> warm ms after `cargo clean`, from the store rg_cold filled
  local t0 t1
  rg_cargo clean
  t0=$(ms_now)
  ZCCACHE_DIR=$tmp/z-rg-$1 ZCCACHE_COMPRESSION=$1 RUSTC_WRAPPER=$ours rg_cargo build --offline
  t1=$(ms_now)
  echo $((t1 - t0))
}

rg_sccache() { # -> "bytes cold_ms" of sccache's local disk cache after the same cold build
  local sc=$sc_path dir=$tmp/sccache-rg t0 t1 port=$((20000 + RANDOM % 20000)) b
  [[ -n $sc ]] || { echo "- -"; return; }
  export SCCACHE_DIR=$dir SCCACHE_SERVER_PORT=$port SCCACHE_IDLE_TIMEOUT=0
  rg_cargo clean
  t0=$(ms_now); RUSTC_WRAPPER=$sc rg_cargo build --offline; t1=$(ms_now)
  # What it stored and what it refused (it caches no incremental, bin or build-script crate).
  "$sc" --show-stats --stats-format=json | python3 -c 'import json,sys; d=json.load(sys.stdin)["stats"]
print("sccache: cache writes", d["cache_writes"], "of", d["compile_requests"], "requests; not cached:", d["not_cached"])' >&2
  "$sc" --stop-server >/dev/null 2>&1 || true
  b=$(du -sb "$dir" | cut -f1)
  unset SCCACHE_DIR SCCACHE_SERVER_PORT SCCACHE_IDLE_TIMEOUT
  echo "$b $((t1 - t0))"
}

load() { cut -d' ' -f1 /proc/loadavg; }
sc_path=$(command -v sccache || ls /tmp/peers/bin/sccache 2>/dev/null || true)

rg_part() {
  local level disk raw ms r sc_b sc_ms
  rg_prepare
  echo "ripgrep $(git -C "$RG_SRC" describe --tags --always 2>/dev/null || echo '?') at $RG_SRC, $(rustc --version)" >&2
  for level in $LEVELS; do
    read -r disk raw ms < <(rg_cold "$level")
    echo "| ripgrep, cargo build (debug, defaults) | $level | $(mb "$disk") | $(mb "$raw") | cold $ms ms |"
  done
  read -r sc_b sc_ms < <(rg_sccache)
  [[ $sc_b == - ]] || echo "| ripgrep, same build | sccache $("$sc_path" --version 2>/dev/null | cut -d' ' -f2) (local disk) | $(mb "$sc_b") | | cold $sc_ms ms |"
  echo
  echo "| round | load | $(for l in $LEVELS; do printf '%s warm ms | ' "$l"; done)"
  echo "|---|---|$(for _ in $LEVELS; do printf -- '---|'; done)"
  for r in $(seq "$ROUNDS"); do
    echo "| $r | $(load) | $(for l in $LEVELS; do printf '%s | ' "$(rg_warm "$l")"; done)"
  done
  for level in $LEVELS; do ZCCACHE_DIR=$tmp/z-rg-$level "$ours" stop >/dev/null 2>&1 || true; done
}

mb() { python3 -c "print(f'{$1/1e6:.1f} MB')"; }
echo "| workload | store | on disk | uncompressed | warm |"
echo "|---|---|---|---|---|"
has c && cc_us=$(for _ in $(seq "$ROUNDS"); do ccache_round; done | best)
has c && for level in $LEVELS; do
  read -r disk raw us < <(for _ in $(seq "$ROUNDS"); do c_round "$level"; done | sort -k3 -n | head -1)
  echo "| C, $units units | $level | $(mb "$disk") | $(mb "$raw") | $((us / 1000)).$(((us % 1000) / 100)) ms/object hit (ccache $((cc_us / 1000)).$(((cc_us % 1000) / 100)) ms: $(python3 -c "print(f'{$us/$cc_us:.2f}')")×) |"
done
has rust && for level in $LEVELS; do
  read -r disk raw ms < <(for _ in $(seq "$ROUNDS"); do rust_round "$level"; done | sort -k3 -n | head -1)
  echo "| Rust workspace | $level | $(mb "$disk") | $(mb "$raw") | $ms ms after cargo clean |"
done
if has ripgrep; then rg_part; fi
