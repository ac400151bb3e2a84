#!/usr/bin/env bash
# bench/cold_floor.sh: the floor under a cold per-file run (issue 22's cold bar, 1.05x the
# tool on every file), measured in one run. What any wrapper must do before the tool starts
# is timed in C, as small as it can be made: a process start with no C library, one with
# glibc (static), and one listing the set and reading each file's stat stamp. Beside them:
# ruff on every file (alone, and after `git ls-files` as per_file.sh's column runs it) and
# a cold `zccache run --files` (state wiped before each run). Each iteration runs every
# way once, in turn; each cell is a median.
#
# Needs gcc, python3 (venv for ruff). Env: N (2000), RUNS (101),
# TOOLS_DIR (/tmp/zccache-bench-tools, shared with per_file.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-2000}
RUNS=${RUNS:-101}
TOOLS_DIR=${TOOLS_DIR:-/tmp/zccache-bench-tools}
if [[ ! -x $TOOLS_DIR/venv/bin/ruff ]]; then
  python3 -m venv "$TOOLS_DIR/venv" && "$TOOLS_DIR/venv/bin/pip" install -q ruff
fi
ruff=$TOOLS_DIR/venv/bin/ruff
(cd "$here" && cargo build --release --quiet)
z=$here/target/release/zccache
work=$(mktemp -d /tmp/zccache-cold-floor.XXXXXX)
export ZCCACHE_DIR=$work/state
trap '"$z" stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# The per_file.sh tree: file i is py/d<i % 40>/m<i>.py.
repo=$work/repo
mkdir -p "$repo" && cd "$repo"
git init -q && git config user.email bench@invalid && git config user.name bench
printf '[tool.ruff]\nline-length = 100\n' > pyproject.toml
printf '.zccache/\n' > .gitignore
for ((i = 0; i < N; i++)); do
  d=py/d$((i % 40))
  mkdir -p "$d"
  printf 'import os\n\n\ndef f%d(x):\n    return os.path.join(x, "%d")\n' "$i" "$i" > "$d/m$i.py"
done
git add -A && git commit -qm tree

cat > "$work/bare.c" <<'C'
void _start(void) { __asm__ volatile("mov $60, %eax\n xor %edi, %edi\n syscall"); }
C
cat > "$work/noop.c" <<'C'
int main(void) { return 0; }
C
# Lists the tree under argv[1] (no dot entries) and reads each regular file's stat stamp.
cat > "$work/liststat.c" <<'C'
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
static long walk(int dir) {
  DIR *d = fdopendir(dir);
  long files = 0;
  struct dirent *e;
  struct statx sx;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    if (e->d_type == DT_DIR) {
      int sub = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY);
      if (sub >= 0) files += walk(sub);
    } else if (e->d_type == DT_REG) {
      files += statx(dirfd(d), e->d_name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, &sx) == 0;
    }
  }
  if (d) closedir(d);
  return files;
}
int main(int argc, char **argv) {
  return argc > 1 && walk(open(argv[1], O_RDONLY | O_DIRECTORY)) > 0 ? 0 : 1;
}
C
gcc -O2 -static -nostdlib -o "$work/bare" "$work/bare.c"
gcc -O2 -static -o "$work/noop" "$work/noop.c"
gcc -O2 -static -o "$work/liststat" "$work/liststat.c"

python3 - "$work" "$z" "$ruff" "$N" "$RUNS" <<'PY'
import os, shutil, statistics, subprocess, sys, time
work, z, ruff, n, runs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
state = os.environ["ZCCACHE_DIR"]
files = subprocess.run(["git", "ls-files", "--", "py"], capture_output=True, text=True).stdout.split()
lint = [ruff, "check", "--no-cache"]
ways = {
    "bare": [f"{work}/bare"],
    "glibc": [f"{work}/noop"],
    "liststat": [f"{work}/liststat", "py"],
    "ruff": lint + files,
    "column": ["sh", "-c", f"{ruff} check --no-cache $(git ls-files -- py)"],
    "zccache": [z, "run", "--cache", ".zccache/run/ruff.json", "--files", "py/**/*.py",
                "--include", "pyproject.toml", "--"] + lint,
}

def wipe():
    # The record writer the last cold run left behind ends first (it takes a few ms).
    time.sleep(0.05)
    subprocess.run([z, "stop"], capture_output=True)
    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(".zccache", ignore_errors=True)
    os.makedirs(state)

def timed(argv):
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t0) * 1000

# Every way once per iteration, in turn, so that the machine's load falls on all of them.
times = {way: [] for way in ways}
for i in range(runs):
    for way, argv in ways.items():
        if way == "zccache":
            wipe()
        times[way].append(timed(argv))
    # The daemon the record writer started goes too: it would index the tree under the
    # next iteration's ways.
    wipe()
ms = {way: statistics.median(t) for way, t in times.items()}
print(f"cold_floor.sh: {n} files, median of {runs} iterations (each way once per iteration), ms")
print()
print("| what | ms |")
print("|---|---|")
rows = [
    ("a process with no C library (exit at once)", "bare"),
    ("a static glibc process (`int main() { return 0; }`)", "glibc"),
    ("a static C process listing the set and stat-ing each file", "liststat"),
    ("ruff on every file (alone)", "ruff"),
    ("ruff after `git ls-files` (per_file.sh's column)", "column"),
    ("cold `zccache run --files`", "zccache"),
]
for label, key in rows:
    print(f"| {label} | {ms[key]:.2f} |")
print()
for base in ("ruff", "column"):
    diffs = [zt - bt for zt, bt in zip(times["zccache"], times[base])]
    print(f"against {base}: 1.05x leaves {0.05 * ms[base]:.2f} ms; the floor (liststat, a "
          f"glibc start included) takes {ms['liststat']:.2f}; zccache's paired overhead is "
          f"{statistics.median(diffs):.2f} ms, {ms['zccache'] / ms[base]:.3f}x")
PY
