#!/usr/bin/env bash
# bench/two_dirs.sh: cold hits across two build directories (issue O item 4a; the shape of
# fmt's "the same sources built for two targets"): the C workload (69 units, -O2 -g -MD with
# -MT/-MF naming each object) built into obj-a, then, with the cache kept, into obj-b. Every
# unit of the second build is the same compile with another output and depfile name: a cache
# that keys the depfile's name misses them all. Ours against ccache, same run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared/bench}
cwork=/tmp/bench-work/c-zstd-brotli
ours=$here/target/release/zccache
(cd "$here" && cargo build --release --quiet)
command -v ccache >/dev/null || bash "$shared/install_peers.sh" /tmp/peers >/dev/null
[[ -f $cwork/.workload-ok ]] || bash "$shared/get_workload.sh" "$cwork" >/dev/null
tmp=$(mktemp -d)
trap 'ZCCACHE_DIR=$tmp/z "$ours" stop >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
MK=(make -s -f "$shared/c_workload.mk" -C "$cwork")
units=$("${MK[@]}" count)
rm -rf "$cwork"/obj-a "$cwork"/obj-b

mkdir -m 700 "$tmp/z"
export ZCCACHE_DIR=$tmp/z
"${MK[@]}" -j2 OBJDIR=obj-a CC="$ours gcc" >/dev/null 2>&1
h0=$("$ours" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"]["cache_hits"])')
"${MK[@]}" -j2 OBJDIR=obj-b CC="$ours gcc" >/dev/null 2>&1
h1=$("$ours" status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"]["cache_hits"])')
ours_hits=$((h1 - h0))
"$ours" stop >/dev/null 2>&1 || true
rm -rf "$cwork"/obj-a "$cwork"/obj-b

export CCACHE_DIR=$tmp/ccache
ccache -z >/dev/null
"${MK[@]}" -j2 OBJDIR=obj-a CC="ccache gcc" >/dev/null 2>&1
ccache -z >/dev/null
"${MK[@]}" -j2 OBJDIR=obj-b CC="ccache gcc" >/dev/null 2>&1
cc_hits=$(ccache --print-stats | awk -F'\t' '$1=="direct_cache_hit"||$1=="preprocessed_cache_hit"{s+=$2} END{print s+0}')
rm -rf "$cwork"/obj-a "$cwork"/obj-b
echo "| second build directory, $units units | hits |"
echo "|---|---|"
echo "| ccache | $cc_hits |"
echo "| zccache | $ours_hits |"
