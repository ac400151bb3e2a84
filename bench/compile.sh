#!/usr/bin/env bash
# bench/compile.sh: our compiler cache against bare gcc, ccache, sccache and zccache 1.15.8 on
# the shared real C workload (zstd lib + brotli, 69 units), via ../shared/bench/compile_peers.sh.
# Builds our release binary, installs the peers if needed, prints the summary table.
# Env passed through: ROUNDS, JOBS, HITLOOP, TOOLS, WORK, OUT (see compile_peers.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared/bench}
(cd "$here" && cargo build --release --quiet)
[[ -x /tmp/peers/bin/sccache ]] || bash "$shared/install_peers.sh" /tmp/peers >/dev/null
export PATH=/tmp/peers/bin:$PATH
export OURS=$here/target/release/zccache OUT=${OUT:-$(mktemp -d /tmp/zccache-compile-bench.XXXXXX)}
bash "$shared/compile_peers.sh" ours >/dev/null
cat "$OUT/summary.md"
