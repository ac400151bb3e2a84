#!/usr/bin/env bash
# bench/per_file.sh: per-file tasks (issue 22) against the ways peers lint, in one run, on a
# generated git repository of N files per tool (default 2,000): ruff on Python, shellcheck on
# shell scripts, eslint on JavaScript.
#
# Columns: the tool on every file; the tool on `git diff --name-only` files (lint-staged's
# way); `pre-commit run --all-files` with the tool as a `repo: local`, `language: system`
# hook; `zccache run --files` (through its daemon). Rows: cold; nothing changed; one file
# edited; 20 files edited; the config edited; a second clone with `--share` from a real
# redis-server (the first clone published with `--share`). Each cell is the median of RUNS
# runs, the ways taking turns in each run, in ms; zccache's cells say how many files it gave
# the tool.
#
# Needs: shellcheck and redis-server (apt), python3 (venv), npm. ruff and pre-commit are
# pip-installed into a venv and eslint npm-installed into a prefix under TOOLS_DIR (kept
# between runs). Env: N, RUNS (default 3), TOOLS ("ruff shellcheck eslint"), WORK,
# TOOLS_DIR. ruff runs with --no-cache in every column, so that its own cache does not
# stand in for the per-file logic being measured.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-2000}
RUNS=${RUNS:-3}
TOOLS=${TOOLS:-ruff shellcheck eslint}
TOOLS_DIR=${TOOLS_DIR:-/tmp/zccache-bench-tools}
WORK=${WORK:-$(mktemp -d /tmp/zccache-per-file-bench.XXXXXX)}
(cd "$here" && cargo build --release --quiet)
Z=$here/target/release/zccache

install_tools() {
  mkdir -p "$TOOLS_DIR"
  if [[ ! -x $TOOLS_DIR/venv/bin/ruff || ! -x $TOOLS_DIR/venv/bin/pre-commit ]]; then
    python3 -m venv "$TOOLS_DIR/venv"
    "$TOOLS_DIR/venv/bin/pip" install -q ruff pre-commit
  fi
  if [[ $TOOLS == *eslint* && ! -x $TOOLS_DIR/npm/node_modules/.bin/eslint ]]; then
    mkdir -p "$TOOLS_DIR/npm"
    (cd "$TOOLS_DIR/npm" && npm init -y >/dev/null && npm install --silent eslint@9)
  fi
  for tool in shellcheck redis-server git; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $tool)" >&2; exit 2; }
  done
}

# The per-tool settings: glob, shared config, command, pre-commit file regex, file name
# stem (file i is DIR/d<i % 40>/<stem><i>.<ext>), comment prefix.
settings() {
  case $1 in
    ruff) echo "py/**/*.py|pyproject.toml|ruff check --no-cache|^py/.*\\.py\$|m|#" ;;
    shellcheck) echo "sh/**/*.sh|.shellcheckrc|shellcheck|^sh/.*\\.sh\$|s|#" ;;
    eslint) echo "js/**/*.js|eslint.config.js|eslint|^js/.*\\.js\$|m|//" ;;
  esac
}

generate() {
  local repo=$1
  mkdir -p "$repo" && cd "$repo"
  git init -q && git config user.email bench@invalid && git config user.name bench
  printf '[tool.ruff]\nline-length = 100\n' > pyproject.toml
  printf 'disable=SC1091\n' > .shellcheckrc
  printf 'export default [{ files: ["js/**/*.js"], rules: { "no-unused-vars": "error", "no-undef": "error" },\n  languageOptions: { globals: { console: "readonly" } } }];\n' > eslint.config.js
  printf '.zccache/\n' > .gitignore
  local i d
  for ((i = 0; i < N; i++)); do
    d=d$((i % 40))
    mkdir -p py/$d sh/$d js/$d
    printf 'import os\n\n\ndef f%d(x):\n    return os.path.join(x, "%d")\n' "$i" "$i" > py/$d/m$i.py
    printf '#!/bin/sh\nset -eu\necho "file %d: $1"\n' "$i" > sh/$d/s$i.sh
    printf 'export function f%d(x) {\n  console.log(x, %d);\n  return x + %d;\n}\n' "$i" "$i" "$i" > js/$d/m$i.js
  done
  {
    echo "repos:"
    echo "- repo: local"
    echo "  hooks:"
    for tool in $TOOLS; do
      IFS='|' read -r _ _ cmd regex _ _ <<<"$(settings "$tool")"
      printf '  - id: %s\n    name: %s\n    entry: %s\n    language: system\n    files: %s\n' \
        "$tool" "$tool" "$cmd" "'$regex'"
    done
  } > .pre-commit-config.yaml
  git add -A && git commit -qm generated
}

now_ns() { date +%s%N; }

# Runs "$@" quietly; prints its wall time in ms (one decimal). Its stderr stays in $WORK/err.
timed() {
  local t0 t1
  t0=$(now_ns)
  "$@" >/dev/null 2>"$WORK/err" || true
  t1=$(now_ns)
  awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f", d / 1e6 }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# How many files zccache's last run gave the tool.
zfiles() {
  if grep -q 'zccache: skip' "$WORK/err"; then echo 0; return; fi
  grep -o 'run ([0-9,]* of' "$WORK/err" | head -1 | tr -dc '0-9'
}

# The four ways, for $tool in the repository of the current directory.
way_all() { $cmd $(git ls-files -- "${glob%%/*}") ; }
way_diff() { git diff --name-only -- "${glob%%/*}" | xargs -r $cmd; }
way_precommit() { PRE_COMMIT_HOME=$WORK/pre-commit-home pre-commit run "$tool" --all-files; }
way_zccache() { "$Z" run --cache .zccache/run/$tool.json --files "$glob" --include "$config" "$@" -- $cmd; }

edit_counter=0
# Appends a comment to $1 distinct files of the tool (fresh content each time).
edit_files() {
  local n=$1 k i dir=${glob%%/*}
  for ((k = 0; k < n; k++)); do
    edit_counter=$((edit_counter + 1))
    i=$(( (edit_counter * 7919) % N ))
    echo "$comment edit $edit_counter" >> "$dir/d$((i % 40))/$stem$i.$dir"
  done
}

# One row: "$label" then, per way, the median of RUNS runs of (prepare; time the way). The
# ways take turns within each run, so a change of the machine's load falls on all of them.
# With ALONE set, the tool on that one file alone is timed in each run too (into $alone).
row() {
  local label=$1 prepare=$2 way r zf= m cells=()
  local -A times=()
  local alone_times=()
  for ((r = 0; r < RUNS; r++)); do
    for way in all diff precommit zccache; do
      $prepare "$way"
      times[$way]+="$(timed way_$way) "
      if [[ $way == zccache ]]; then zf=$(zfiles); quiesce; fi
    done
    if [[ -n ${ALONE:-} ]]; then alone_times+=("$(timed $cmd "$ALONE")"); fi
  done
  for way in all diff precommit zccache; do
    m=$(printf '%s\n' ${times[$way]} | median)
    if [[ $way == zccache ]]; then m="$m ($zf files)"; fi
    cells+=("$m")
  done
  if [[ -n ${ALONE:-} ]]; then alone=$(printf '%s\n' "${alone_times[@]}" | median); fi
  printf '| %s | %s | %s | %s | %s |\n' "$label" "${cells[@]}"
}

# After a zccache run: its record writer (a first run's record is written after zccache
# returned, holding the task's lock) and the daemon it starts are let finish, so that their
# work does not fall on the next way's timing.
quiesce() {
  local lock=.zccache/run/$tool.json.task.lock
  if [[ -e $lock ]]; then flock "$lock" true; fi
  sleep 0.2
}

fresh_state() {
  "$Z" stop >/dev/null 2>&1 || true
  rm -rf "$ZCCACHE_DIR" .zccache
  mkdir -p "$ZCCACHE_DIR"
}
# Before each timed run: the tree as committed (so `git diff` names exactly this row's
# edits), zccache having passed it, then the row's edit.
settle() {
  git checkout -q -- .
  if [[ $1 == zccache ]]; then way_zccache >/dev/null 2>&1 || true; fi
}
prep_cold() { if [[ $1 == zccache ]]; then fresh_state; fi; }
prep_none() { settle "$1"; }
prep_one() { settle "$1"; edit_files 1; }
prep_twenty() { settle "$1"; edit_files 20; }
prep_config() {
  settle "$1"
  edit_counter=$((edit_counter + 1))
  echo "$comment config edit $edit_counter" >> "$config"
}

bench_tool() {
  tool=$1
  IFS='|' read -r glob config cmd _ stem comment <<<"$(settings "$tool")"
  local repo=$WORK/repo
  cd "$repo"
  export ZCCACHE_DIR=$WORK/zc-$tool
  echo
  echo "### $tool, $N files ($(${cmd%% *} --version | head -1))"
  echo
  echo "| | $tool on every file | on \`git diff\` files | \`pre-commit run --all-files\` | zccache per-file |"
  echo "|---|---|---|---|---|"
  row cold prep_cold
  row "nothing changed" prep_none
  ALONE=$(git ls-files -- "${glob%%/*}" | sed -n 1p) row "one file edited" prep_one
  row "20 files edited" prep_twenty
  row "config edited" prep_config
  git checkout -q -- . && git clean -qfd -e .zccache
  way_zccache >/dev/null 2>&1
  share_row "$repo"
  echo
  echo "The tool on one file alone (timed in the one-file row's runs): $alone ms."
  ZCCACHE_DIR=$ZCCACHE_DIR "$Z" stop >/dev/null 2>&1 || true
}

# A second clone with --share: the first clone publishes (a forced run with --share), then
# a clone on another "machine" (its own ZCCACHE_DIR) runs with --share.
share_row() {
  local repo=$1 clone=$WORK/clone-$tool
  local publish
  publish=$(cd "$repo" && ZCCACHE_REMOTE=$REDIS timed way_zccache --share --force)
  rm -rf "$clone" && git clone -q "$repo" "$clone"
  local cells=() times=() zf= r
  cd "$clone"
  cells+=("$(for ((r = 0; r < RUNS; r++)); do timed way_all; echo; done | median)")
  cells+=("$(for ((r = 0; r < RUNS; r++)); do timed way_diff; echo; done | median)")
  cells+=("$(for ((r = 0; r < RUNS; r++)); do timed way_precommit; echo; done | median)")
  for ((r = 0; r < RUNS; r++)); do
    local dir=$WORK/zc2-$tool-$r
    rm -rf .zccache
    times+=("$(ZCCACHE_DIR=$dir ZCCACHE_REMOTE=$REDIS timed way_zccache --share)")
    zf=$(zfiles)
    ZCCACHE_DIR=$dir "$Z" stop >/dev/null 2>&1 || true
  done
  cells+=("$(printf '%s\n' "${times[@]}" | median) ($zf files)")
  printf '| second clone, --share (publish: %s ms) | %s | %s | %s | %s |\n' "$publish" "${cells[@]}"
  cd "$repo"
}

install_tools
export PATH=$TOOLS_DIR/venv/bin:$TOOLS_DIR/npm/node_modules/.bin:$PATH
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK/redis"
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$WORK/redis" >/dev/null &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null || true' EXIT
REDIS=redis://127.0.0.1:$port/0
generate "$WORK/repo" >/dev/null
echo "per_file.sh: $N files per tool, median of $RUNS runs, ms; $(nproc) CPUs; $(date -u +%F)"
for t in $TOOLS; do bench_tool "$t"; done
