#!/usr/bin/env bash
# bench/soak.sh: the daemon under load and faults (issue R). Release binary, one state dir:
#   1. ROUNDS load rounds: CHECKERS clients x CHECKS skip checks (`fp check`, must exit 1)
#      and COMPILERS clients x COMPILES compiles (`zccache gcc -c`, each object byte-equal
#      to plain gcc's), then the daemon's status counters (exact), RSS and open fds, idle;
#   2. faults under load (CHECKERS + COMPILERS + 1 clients for FAULT_SECS each): two
#      `kill -9`s of the daemon, a removed daemon.sock, a SIGSTOP of 8 s; every request must
#      still succeed, with its longest wait reported;
#   3. start races: RACES times, 8 clients on a stopped daemon; exactly one daemon after.
# Prints one table per part (markdown). Env: ROUNDS (3), CHECKERS (8), CHECKS (1000),
# COMPILERS (4), COMPILES (600), FAULT_SECS (12), RACES (10), WORK (a temp dir).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
(cd "$here" && cargo build --release --quiet)
export Z=$here/target/release/zccache
export WORK=${WORK:-$(mktemp -d /tmp/zccache-soak.XXXXXX)}
export ZCCACHE_DIR=$WORK/state ZCCACHE_IDLE_TIMEOUT=600
trap '"$Z" stop >/dev/null 2>&1 || true' EXIT
python3 - <<'PY'
import json, os, signal, statistics, subprocess, threading, time

Z, WORK = os.environ["Z"], os.environ["WORK"]
STATE = os.environ["ZCCACHE_DIR"]
ROUNDS = int(os.environ.get("ROUNDS", 3))
CHECKERS, CHECKS = int(os.environ.get("CHECKERS", 8)), int(os.environ.get("CHECKS", 1000))
COMPILERS, COMPILES = int(os.environ.get("COMPILERS", 4)), int(os.environ.get("COMPILES", 600))
FAULT_SECS = float(os.environ.get("FAULT_SECS", 12))
RACES = int(os.environ.get("RACES", 10))
TREE, SRC = f"{WORK}/tree", f"{WORK}/src"


def sh(*args, **kw):
    return subprocess.run(args, capture_output=True, **kw)


def setup():
    os.makedirs(STATE, mode=0o700, exist_ok=True)
    for d in range(20):
        os.makedirs(f"{TREE}/d{d}", exist_ok=True)
        for f in range(50):
            with open(f"{TREE}/d{d}/f{f}.rs", "w") as out:
                out.write(f"// {d}/{f}\n")
    os.makedirs(SRC, exist_ok=True)
    refs = {}
    for i in range(8):
        path = f"{SRC}/u{i}.c"
        with open(path, "w") as out:
            out.write(f"#include <stdio.h>\nint u{i}(int a) {{ return a * {i + 2}; }}\n")
        sh("gcc", "-O2", "-c", path, "-o", f"{SRC}/ref{i}.o", check=True)
        refs[i] = open(f"{SRC}/ref{i}.o", "rb").read()
    return refs


def check_once(n):
    cache = f"{WORK}/fp{n % 4}.json"
    r = sh(Z, "fp", "--cache-file", cache, "check", "--root", TREE, "--quiet")
    return r.returncode == 1, r


def compile_once(n, refs, seq):
    i = seq % len(refs)
    out = f"{SRC}/c{n}.o"
    r = sh(Z, "gcc", "-O2", "-c", f"{SRC}/u{i}.c", "-o", out)
    ok = r.returncode == 0 and open(out, "rb").read() == refs[i]
    return ok, r


class Tally:
    def __init__(self):
        self.lock, self.ok, self.errors = threading.Lock(), 0, 0
        self.waits, self.first_error = {"check": [], "compile": []}, None

    def add(self, kind, ok, r, wait):
        with self.lock:
            self.waits[kind].append(wait)
            if ok:
                self.ok += 1
            else:
                self.errors += 1
                self.first_error = self.first_error or (r.returncode, r.stderr[-300:])


def client(tally, kind, op, count=None, until=None):
    seq = 0
    while (count is None or seq < count) and (until is None or time.time() < until):
        started = time.time()
        ok, r = op(seq)
        tally.add(kind, ok, r, time.time() - started)
        seq += 1


def load(refs, checks=None, compiles=None, until=None, extra=0):
    tally = Tally()
    def check(s, n):
        return check_once(n)

    def compile(s, n):
        return compile_once(n, refs, s)

    threads = [threading.Thread(target=client, args=(tally, "check", lambda s, n=n: check(s, n), checks, until))
               for n in range(CHECKERS + extra)]
    threads += [threading.Thread(target=client, args=(tally, "compile", lambda s, n=n: compile(s, n), compiles, until))
                for n in range(COMPILERS)]
    for t in threads:
        t.start()
    return tally, threads


def daemon():
    return json.loads(sh(Z, "status", "--json").stdout).get("daemon")


def rss_fds(pid):
    rss = next(l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")).split()[1]
    return int(rss) / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def rounds(refs):
    print("| round | requests | errors | hits | misses | status exact | RSS MB | fds idle |")
    print("|---|---|---|---|---|---|---|---|")
    for n in range(4):
        check_once(n)
        sh(Z, "fp", "--cache-file", f"{WORK}/fp{n}.json", "mark-success")
    rss, fds = rss_fds(daemon()["pid"])
    print(f"| before | | | | | | {rss:.0f} | {fds} |")
    for r in range(1, ROUNDS + 1):
        before = daemon()
        tally, threads = load(refs, CHECKS, COMPILES)
        for t in threads:
            t.join()
        time.sleep(1)
        after = daemon()
        hits = after["cache_hits"] - before["cache_hits"]
        misses = after["cache_misses"] - before["cache_misses"]
        exact = hits + misses == COMPILERS * COMPILES and after["passthroughs"] == before["passthroughs"]
        rss, fds = rss_fds(after["pid"])
        print(f"| {r} | {tally.ok + tally.errors:,} | {tally.errors} | {hits:,} | {misses} | "
              f"{'yes' if exact else 'NO'} | {rss:.0f} | {fds} |")
        if tally.first_error:
            print("  first error:", tally.first_error)


def fault(refs, name, act):
    until = time.time() + FAULT_SECS
    tally, threads = load(refs, until=until, extra=1)
    time.sleep(2)
    act()
    for t in threads:
        t.join()
    longest = {kind: max(waits) for kind, waits in tally.waits.items()}
    median = statistics.median(tally.waits["check"] + tally.waits["compile"])
    deadline = time.time() + 20
    while not (d := daemon()) and time.time() < deadline:
        time.sleep(0.5)
    print(f"| {name} | {tally.ok + tally.errors:,} | {tally.errors} | {longest['check']:.2f} | "
          f"{longest['compile']:.2f} | {median * 1000:.1f} | {'yes, pid ' + str(d['pid']) if d else 'NO'} |")
    if tally.first_error:
        print("  first error:", tally.first_error)


def kill9():
    for _ in range(2):
        os.kill(daemon()["pid"], signal.SIGKILL)
        time.sleep(3)


def unlink():
    os.unlink(f"{STATE}/daemon.sock")


def sigstop():
    pid = daemon()["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(8)
    finally:
        os.kill(pid, signal.SIGCONT)


def faults(refs):
    print()
    print(f"| fault ({CHECKERS + 1 + COMPILERS} clients, {FAULT_SECS:.0f} s) | requests | errors | "
          "longest check s | longest compile s | median ms | daemon after |")
    print("|---|---|---|---|---|---|---|")
    fault(refs, "2 x kill -9", kill9)
    fault(refs, "daemon.sock removed", unlink)
    fault(refs, "SIGSTOP 8 s", sigstop)


def serving():
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            env = open(f"/proc/{pid}/environ", "rb").read()
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cmd[1:2] == [b"daemon-serve"] and f"ZCCACHE_DIR={STATE}".encode() in env and state != "Z":
            out.append(pid)
    return out


def races():
    one = 0
    for _ in range(RACES):
        sh(Z, "stop")
        procs = [subprocess.Popen([Z, "fp", "--cache-file", f"{WORK}/race{n}.json", "check", "--root", TREE,
                                   "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for n in range(8)]
        for p in procs:
            p.wait()
        one += len(serving()) == 1
    print()
    print(f"start races: {one} of {RACES} ended with exactly one daemon")


refs = setup()
sh(Z, "start", check=True)
rounds(refs)
faults(refs)
races()
PY
