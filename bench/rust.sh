#!/usr/bin/env bash
# bench/rust.sh: RUSTC_WRAPPER caches on a real crate graph (a `cargo new` app with common
# registry dependencies: serde, serde_json, regex, clap, tokio, rayon, blake3, ... about 80
# crates), in one run: bare cargo, sccache, zccache 1.15.8 and ours. Per tool: cold build
# with an empty cache, then `cargo clean` + warm build. Debug profile, CARGO_INCREMENTAL=0
# (no RUSTC_WRAPPER caches incremental compiles). Prints a table with ratios to bare.
# Env: TOOLS (default "bare sccache zccache ours"), WORK (default /tmp/zccache-rust-bench).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared/bench}
WORK=${WORK:-/tmp/zccache-rust-bench}
TOOLS=${TOOLS:-bare sccache zccache ours}
(cd "$here" && cargo build --release --quiet)
[[ -x /tmp/peers/bin/sccache ]] || bash "$shared/install_peers.sh" /tmp/peers >/dev/null
export PATH=/tmp/peers/bin:$PATH OURS=$here/target/release/zccache
. "$shared/peers_lib.sh"

app=$WORK/app
mkdir -p "$app/src"
cat >"$app/Cargo.toml" <<'EOF'
[package]
name = "rust-bench-app"
version = "0.1.0"
edition = "2021"

[dependencies]
anyhow = "1"
blake3 = "1"
clap = { version = "4", features = ["derive"] }
globset = "0.4"
ignore = "0.4"
rayon = "1"
regex = "1"
serde = { version = "1", features = ["derive"] }
serde_json = "1"
thiserror = "2"
tokio = { version = "1", features = ["rt-multi-thread", "macros", "fs", "net", "time"] }
toml = "0.8"
tracing = "0.1"
EOF
cat >"$app/src/main.rs" <<'EOF'
use clap::Parser;

#[derive(Parser, serde::Serialize, serde::Deserialize, Debug)]
struct Args {
    #[arg(default_value = "a+b")]
    pattern: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let re = regex::Regex::new(&args.pattern)?;
    let sum: u64 = rayon::iter::ParallelIterator::sum(rayon::iter::IntoParallelIterator::into_par_iter(0..100u64));
    println!("{} {} {}", re.is_match("aab"), sum, blake3::hash(b"x"));
    println!("{}", serde_json::to_string(&args)?);
    Ok(())
}
EOF
(cd "$app" && cargo fetch --quiet)

ms_now() { date +%s%3N; }
T=$(mktemp -d /tmp/rust-bench-state.XXXXXX)
trap 'rm -rf "$T"' EXIT
declare -A COLD WARM
for tool in $TOOLS; do
  st=$T/$tool
  (
    tool_env "$tool" "$st"
    tool_start "$tool"
    export CARGO_INCREMENTAL=0 CARGO_TARGET_DIR=$st/target
    if [[ -n $WRAP ]]; then export RUSTC_WRAPPER=$WRAP; else unset RUSTC_WRAPPER; fi
    cd "$app"
    t0=$(ms_now); cargo build --quiet --offline; t1=$(ms_now)
    cargo clean --quiet
    t2=$(ms_now); cargo build --quiet --offline; t3=$(ms_now)
    "$CARGO_TARGET_DIR/debug/rust-bench-app" >/dev/null
    tool_stop "$tool" "$st"
    echo "$((t1 - t0)) $((t3 - t2))" >"$st/times"
  )
  read -r COLD[$tool] WARM[$tool] <"$st/times"
  say "  $tool: cold ${COLD[$tool]} ms, warm ${WARM[$tool]} ms"
done

crates=$(cd "$app" && cargo metadata --offline --format-version 1 2>/dev/null | grep -o '"id":' | wc -l)
echo "# bench/rust.sh: $crates packages, debug, CARGO_INCREMENTAL=0, $(rustc --version)"
echo
echo "| tool | cold s | warm (after cargo clean) s | cold / bare | warm / bare |"
echo "|---|---|---|---|---|"
for tool in $TOOLS; do
  awk -v t="$tool" -v c="${COLD[$tool]}" -v w="${WARM[$tool]}" -v bc="${COLD[bare]:-0}" -v bw="${WARM[bare]:-0}" \
    'BEGIN { printf "| %s | %.2f | %.2f | %s | %s |\n", t, c/1000, w/1000,
      (bc ? sprintf("%.3f", c/bc) : "-"), (bw ? sprintf("%.3f", w/bw) : "-") }'
done
