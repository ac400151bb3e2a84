#!/usr/bin/env bash
# bench/compile_link.sh: compile and link in one command (`cc -O2 -Iinc pN.c uN.c -o pN -lm`,
# the shape of zstd's test programs and of configure's probes). N generated programs of two
# sources each, built one after the other: bare cc, ccache and ours, cold (empty cache) and
# warm (programs deleted, cache kept), ROUNDS rounds; and whether every program a cache
# built is byte-identical to bare cc's. Prints a markdown table (min / median seconds).
# Env: N (programs, 24), ROUNDS (3), OURS (our binary; default: the release build).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
n=${N:-24}
rounds=${ROUNDS:-3}
ours=${OURS:-$here/target/release/zccache}
[[ -x $ours ]] || (cd "$here" && cargo build --release --quiet)
command -v ccache >/dev/null || bash "$here/../shared/bench/install_peers.sh" /tmp/peers >/dev/null
export PATH=/tmp/peers/bin:$PATH
work=$(mktemp -d /tmp/zccache-compile-link.XXXXXX)
export ZCCACHE_DIR=$work/zccache CCACHE_DIR=$work/ccache
stop_ours() { [[ -d $ZCCACHE_DIR ]] && "$ours" stop >/dev/null 2>&1 || true; }
trap 'stop_ours; rm -rf "$work"' EXIT

# Sources: each program's util file has 60 small functions (a real compile, ~0.1-0.3 s).
mkdir -p "$work/src/inc" "$work/bare"
cd "$work/src"
echo '#define SCALE 3' > inc/common.h
for i in $(seq "$n"); do
  {
    echo '#include "common.h"'
    echo '#include <math.h>'
    for f in $(seq 60); do
      echo "double u${i}_$f(double x) { double s = 0; for (int k = 0; k < $f + SCALE; k++)"
      echo "  s += sin(x * k) / (k + 1.0) + (k % 3 ? x : -x); return s; }"
    done
  } > "u$i.c"
  {
    echo '#include <stdio.h>'
    for f in $(seq 60); do echo "double u${i}_$f(double);"; done
    echo 'int main(void) { double t = 0;'
    for f in $(seq 60); do echo "  t += u${i}_$f($f.0);"; done
    echo '  printf("%.3f\n", t); return 0; }'
  } > "p$i.c"
done

build() { # CC...: every program, one after the other; prints the seconds taken
  local start end
  start=$(date +%s.%N)
  for i in $(seq "$n"); do "$@" -O2 -Iinc "p$i.c" "u$i.c" -o "bin/p$i" -lm; done
  end=$(date +%s.%N)
  echo "$end - $start" | bc
}
stats() { # seconds...: min / median
  printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {printf "%.2f / %.2f", v[1], v[int((NR+1)/2)]}'
}
same_as_bare() {
  for i in $(seq "$n"); do cmp -s "bin/p$i" "../bare/p$i" || { echo no; return; }; done
  echo yes
}

declare -A cold warm identical
for round in $(seq "$rounds"); do
  for tool in bare ccache ours; do
    rm -rf bin "$ZCCACHE_DIR" "$CCACHE_DIR" && mkdir -p bin
    case $tool in
      bare) cc=(cc) ;;
      ccache) cc=(ccache cc) ;;
      ours) stop_ours; mkdir -m 700 "$ZCCACHE_DIR"; cc=("$ours" cc) ;;
    esac
    cold[$tool]+="$(build "${cc[@]}") "
    [[ $tool == bare ]] && cp bin/* ../bare/
    identical[$tool]=$(same_as_bare)
    rm -f bin/*
    warm[$tool]+="$(build "${cc[@]}") "
    [[ ${identical[$tool]} == yes ]] && identical[$tool]=$(same_as_bare)
  done
  stop_ours
done

echo "| $n programs, 2 sources each, -j1, $rounds rounds | cold s | warm s | byte-identical |"
echo "|---|---|---|---|"
for tool in bare ccache ours; do
  # shellcheck disable=SC2086
  echo "| $tool | $(stats ${cold[$tool]}) | $(stats ${warm[$tool]}) | ${identical[$tool]} |"
done
