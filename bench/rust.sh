#!/usr/bin/env bash
# bench/rust.sh: RUSTC_WRAPPER caches on a real crate graph (a two-member workspace: an app
# and a `util` library, with common registry dependencies: serde, serde_json, regex, clap,
# tokio, rayon, blake3, ... about 80 crates), in one run: bare cargo, sccache, zccache 1.15.8
# and ours. Per tool and setting: cold build with an empty cache, then `cargo clean` + warm
# build, then one edit of util's source + rebuild (its first real compile since the warm
# build: for a cache, util and the app were hits, so rustc starts from whatever incremental
# state the cache gave back) and five more edits + rebuilds (the steady dev loop; the
# median), then the edits undone. Debug profile, two
# settings: `CARGO_INCREMENTAL=0`, and cargo's defaults (workspace members compile
# incrementally). Prints a table with ratios to bare cargo under the same setting.
# Env: TOOLS (default "bare sccache zccache ours"), SETTINGS (default "incremental-off
# default"), WORK (default /tmp/zccache-rust-bench).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
shared=${SHARED:-$here/../shared/bench}
WORK=${WORK:-/tmp/zccache-rust-bench}
TOOLS=${TOOLS:-bare sccache zccache ours}
SETTINGS=${SETTINGS:-incremental-off default}
(cd "$here" && cargo build --release --quiet)
[[ -x /tmp/peers/bin/sccache ]] || bash "$shared/install_peers.sh" /tmp/peers >/dev/null
export PATH=/tmp/peers/bin:$PATH OURS=$here/target/release/zccache
. "$shared/peers_lib.sh"

app=$WORK/app
mkdir -p "$app/src" "$app/util/src"
cat >"$app/util/Cargo.toml" <<'EOF'
[package]
name = "util"
version = "0.1.0"
edition = "2021"

[dependencies]
regex = "1"
EOF
cat >"$app/util/src/lib.rs" <<'EOF'
/// Whether `text` matches `pattern`.
pub fn matches(pattern: &str, text: &str) -> bool {
    regex::Regex::new(pattern).is_ok_and(|re| re.is_match(text))
}
EOF
cat >"$app/Cargo.toml" <<'EOF'
[workspace]

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
util = { path = "util" }
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
    println!("{} {} {} {}", re.is_match("aab"), util::matches("b+", "ab"), sum, blake3::hash(b"x"));
    println!("{}", serde_json::to_string(&args)?);
    Ok(())
}
EOF
(cd "$app" && cargo fetch --quiet)

ms_now() { date +%s%3N; }
T=$(mktemp -d /tmp/rust-bench-state.XXXXXX)
trap 'rm -rf "$T"' EXIT
declare -A COLD WARM EDIT EDIT2
for setting in $SETTINGS; do
for tool in $TOOLS; do
  st=$T/$setting-$tool
  (
    tool_env "$tool" "$st"
    tool_start "$tool"
    export CARGO_TARGET_DIR=$st/target
    if [[ $setting == incremental-off ]]; then export CARGO_INCREMENTAL=0; else unset CARGO_INCREMENTAL; fi
    if [[ -n $WRAP ]]; then export RUSTC_WRAPPER=$WRAP; else unset RUSTC_WRAPPER; fi
    cd "$app"
    t0=$(ms_now); cargo build --quiet --offline; t1=$(ms_now)
    cargo clean --quiet
    t2=$(ms_now); cargo build --quiet --offline; t3=$(ms_now)
    "$CARGO_TARGET_DIR/debug/rust-bench-app" >/dev/null
    cp util/src/lib.rs "$st/lib.rs.orig"
    printf '\n/// Added by the bench.\npub fn edited() -> u32 {\n    %d\n}\n' "$RANDOM" >>util/src/lib.rs
    t4=$(ms_now); cargo build --quiet --offline; t5=$(ms_now)
    again=()
    for round in 1 2 3 4 5; do
      printf '\n/// Added by the bench.\npub fn again%d() -> u32 {\n    %d\n}\n' "$round" "$RANDOM" >>util/src/lib.rs
      t6=$(ms_now); cargo build --quiet --offline; t7=$(ms_now)
      again+=($((t7 - t6)))
    done
    again_median=$(printf '%s\n' "${again[@]}" | sort -n | sed -n 3p)
    cp "$st/lib.rs.orig" util/src/lib.rs
    cargo build --quiet --offline
    tool_stop "$tool" "$st"
    echo "$((t1 - t0)) $((t3 - t2)) $((t5 - t4)) $again_median" >"$st/times"
  )
  k=$setting-$tool
  read -r COLD[$k] WARM[$k] EDIT[$k] EDIT2[$k] <"$st/times"
  say "  $setting $tool: cold ${COLD[$k]} ms, warm ${WARM[$k]} ms, edit ${EDIT[$k]} ms, edit again ${EDIT2[$k]} ms"
done
done

crates=$(cd "$app" && cargo metadata --offline --format-version 1 2>/dev/null | grep -o '"id":' | wc -l)
echo "# bench/rust.sh: $crates packages, debug, $(rustc --version)"
echo
echo "| setting | tool | cold s | warm (after cargo clean) s | edit util, rebuild s | edit again (median of 5) s | cold / bare | warm / bare | edit / bare | again / bare |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for setting in $SETTINGS; do
  for tool in $TOOLS; do
    k=$setting-$tool b=$setting-bare
    awk -v s="$setting" -v t="$tool" -v c="${COLD[$k]}" -v w="${WARM[$k]}" -v e="${EDIT[$k]}" \
      -v a="${EDIT2[$k]}" -v bc="${COLD[$b]:-0}" -v bw="${WARM[$b]:-0}" -v be="${EDIT[$b]:-0}" \
      -v ba="${EDIT2[$b]:-0}" \
      'function r(x, y) { return y ? sprintf("%.3f", x / y) : "-" }
       BEGIN { printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %s | %s | %s | %s |\n", s, t, c/1000,
         w/1000, e/1000, a/1000, r(c, bc), r(w, bw), r(e, be), r(a, ba) }'
  done
done
