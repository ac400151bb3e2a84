#!/usr/bin/env bash
# bench/cold_pairs.sh [PAIRS]: the cold overhead of the Rust cache (issue O item 9). Cold
# `cargo build` of bench/rust.sh's app (~80 crates, cargo's default settings), bare and
# through our wrapper with an empty cache, in PAIRS (default 3) back-to-back pairs whose
# order alternates (bare first, then ours first, ...), so drift in the machine's load falls
# on both. Prints each pair's wall times and the ratio, and the median ratio.
# A quiet machine is the point: nothing else should run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pairs=${1:-3}
work=${WORK:-/tmp/zccache-rust-bench}
ours=$here/target/release/zccache
(cd "$here" && cargo build --release --quiet)
[[ -d $work/app ]] || TOOLS=bare SETTINGS=default bash "$here/bench/rust.sh" >/dev/null
tmp=$(mktemp -d)
trap 'ZCCACHE_DIR=$tmp/z "$ours" stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT

cold() { # bare|ours -> wall_ms
  local target=$tmp/target-$1 t0 t1
  rm -rf "$target" "$tmp/z"; mkdir -m 700 "$tmp/z"
  t0=$(date +%s%3N)
  if [[ $1 == ours ]]; then
    (cd "$work/app" && ZCCACHE_DIR=$tmp/z RUSTC_WRAPPER=$ours CARGO_TARGET_DIR=$target \
      cargo build --quiet --offline)
    ZCCACHE_DIR=$tmp/z "$ours" stop >/dev/null 2>&1 || true
  else
    (cd "$work/app" && CARGO_TARGET_DIR=$target cargo build --quiet --offline)
  fi
  t1=$(date +%s%3N)
  echo "$((t1 - t0))"
}

echo "| pair | bare | ours | ratio |"
echo "|---|---|---|---|"
ratios=()
for p in $(seq "$pairs"); do
  if (( p % 2 )); then b=$(cold bare); o=$(cold ours); else o=$(cold ours); b=$(cold bare); fi
  r=$(python3 -c "print(f'{$o/$b:.3f}')")
  ratios+=("$r")
  echo "| $p | ${b} ms | ${o} ms | ${r}× |"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END{print "median wall ratio: " a[int((NR+1)/2)] "×"}'
