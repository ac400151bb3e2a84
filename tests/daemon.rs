//! The daemon: lifecycle, robustness against bad clients, and watched fingerprints that are
//! never stale.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use zccache::daemon::frame;
use zccache::daemon::protocol::{Request, Response};

use crate::support::{Ran, Sandbox};

const RUN: i32 = 0;
const SKIP: i32 = 1;

fn status(sb: &Sandbox) -> serde_json::Value {
    sb.cmd(["status", "--json"]).status(0).json()
}

fn daemon_pid(sb: &Sandbox) -> u64 {
    status(sb)["daemon"]["pid"]
        .as_u64()
        .expect("daemon running")
}

/// `fp check --json`, asserting the exit code; returns the JSON.
fn check(sb: &Sandbox, code: i32) -> serde_json::Value {
    sb.fp(&["check", "--json"]).status(code).json()
}

fn succeed(sb: &Sandbox) {
    sb.fp(&["check"]).status(RUN);
    sb.fp(&["mark-success"]).status(0);
}

/// A project checked and marked once, so the daemon holds its index.
fn watched() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("src/a.rs", "a").write("src/b.rs", "b");
    succeed(&sb);
    assert_eq!(check(&sb, SKIP)["mode"], "watched");
    sb
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn alive(pid: u64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[test]
fn start_status_stop_and_auto_start() {
    let sb = Sandbox::new();
    assert_eq!(status(&sb)["running"], false);
    sb.cmd(["start"]).status(0).stderr_has("daemon running");
    let pid = daemon_pid(&sb);
    assert_eq!(status(&sb)["daemon"]["version"], env!("CARGO_PKG_VERSION"));
    sb.cmd(["start"]).status(0);
    assert_eq!(daemon_pid(&sb), pid, "a second start keeps the daemon");
    sb.cmd(["stop"]).status(0).stderr_has("daemon stopped");
    wait_until("the stopped daemon to exit", || !alive(pid));
    assert!(!sb.state().join("daemon.sock").exists());
    assert_eq!(status(&sb)["running"], false);
    sb.write("a.txt", "x");
    check(&sb, RUN);
    assert!(status(&sb)["running"] == true, "fp check starts the daemon");
}

#[test]
fn state_dir_and_socket_are_private() {
    let sb = Sandbox::new();
    let state = sb.outside("fresh/state");
    let cmd = |verb: &str| sb.cmd([verb]).env("ZCCACHE_DIR", &state);
    cmd("start").status(0);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let modes = (mode(&state), mode(&state.join("daemon.sock")));
    cmd("stop").status(0);
    assert_eq!(modes, (0o700, 0o600));
}

#[test]
fn a_second_daemon_on_one_dir_is_refused() {
    let sb = Sandbox::new();
    sb.cmd(["start"]).status(0);
    let pid = daemon_pid(&sb);
    sb.cmd(["daemon-serve"]).status(0);
    assert_eq!(daemon_pid(&sb), pid);
}

#[test]
fn racing_clients_end_with_one_daemon() {
    let sb = Sandbox::new();
    sb.write("a.txt", "x");
    let children: Vec<_> = (0..8)
        .map(|i| {
            sb.cmd(["fp", "--cache-file", &format!(".cache/{i}.json"), "check"])
                .spawn()
        })
        .collect();
    for child in children {
        assert_eq!(child.wait_with_output().unwrap().status.code(), Some(RUN));
    }
    let pid = daemon_pid(&sb);
    let serving: Vec<u64> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &u64| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let dir = format!("ZCCACHE_DIR={}", sb.state().display());
            String::from_utf8_lossy(&cmdline).contains("daemon-serve")
                && String::from_utf8_lossy(&environ).contains(&dir)
        })
        .collect();
    assert_eq!(serving, vec![pid]);
}

#[test]
fn stale_socket_after_kill_9_is_recovered() {
    let sb = watched();
    let pid = daemon_pid(&sb);
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    wait_until("the daemon to die", || !alive(pid));
    assert!(
        sb.state().join("daemon.sock").exists(),
        "the stale socket stays"
    );
    sb.write("src/a.rs", "edited while no daemon ran");
    let ran = sb
        .fp(&["check", "--json"])
        .status(RUN)
        .stderr_lacks("warning");
    let json = ran.json();
    assert_eq!(json["changes"][0]["path"], "src/a.rs");
    assert_ne!(daemon_pid(&sb), pid);
}

#[test]
fn changes_made_while_the_daemon_was_down_are_seen() {
    let sb = watched();
    sb.cmd(["stop"]).status(0);
    sb.write("src/c.rs", "new");
    check(&sb, RUN);
    sb.fp(&["mark-success"]).status(0);
    assert_eq!(check(&sb, SKIP)["mode"], "watched");
}

#[test]
fn a_daemon_of_another_version_is_replaced() {
    let sb = Sandbox::new();
    let script = r#"
import fcntl, os, socket, struct, sys
d = sys.argv[1]
lock = open(os.path.join(d, "daemon.lock"), "w")
fcntl.flock(lock, fcntl.LOCK_EX)
open(os.path.join(d, "daemon.pid"), "w").write(str(os.getpid()))
s = socket.socket(socket.AF_UNIX)
s.bind(os.path.join(d, "daemon.sock"))
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.recv(65536)
    body = struct.pack("<I", 1) + bytes([9]) + b"0.0.0-old" + b"\x00"
    c.sendall(struct.pack("<I", len(body)) + body)
    c.close()
"#;
    fs::create_dir_all(sb.state()).unwrap();
    let mut fake = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(sb.state())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 5];
    fake.stdout.take().unwrap().read_exact(&mut ready).unwrap();
    let fake_pid = u64::from(fake.id());
    sb.cmd(["start"]).status(0);
    sb.write("a.txt", "x");
    check(&sb, RUN);
    let _ = fake.kill();
    let _ = fake.wait();
    let pid = daemon_pid(&sb);
    assert_ne!(pid, fake_pid);
    assert_eq!(status(&sb)["daemon"]["version"], env!("CARGO_PKG_VERSION"));
}

/// Sends raw bytes on a fresh connection and returns what came back before it closed.
fn raw_exchange(sb: &Sandbox, bytes: &[u8]) -> Vec<u8> {
    let mut stream = UnixStream::connect(sb.state().join("daemon.sock")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    reply
}

fn decode_reply(bytes: &[u8]) -> Response {
    frame::read_frame(&mut &bytes[..])
        .unwrap()
        .decode()
        .unwrap()
}

#[test]
fn bad_clients_do_not_hurt_the_daemon_or_others() {
    let sb = watched();
    let pid = daemon_pid(&sb);
    let silent = UnixStream::connect(sb.state().join("daemon.sock")).unwrap();
    let garbage = raw_exchange(
        &sb,
        b"\x0d\x00\x00\x00\x01\x00\x00\x00\x05\x30\x2e\x31\x2e\x30\xff\xff\xff\xff",
    );
    assert!(
        matches!(decode_reply(&garbage), Response::Error { .. }),
        "{garbage:?}"
    );
    let oversized = raw_exchange(&sb, &u32::MAX.to_le_bytes());
    assert!(
        matches!(decode_reply(&oversized), Response::Error { message } if message.contains("exceeds"))
    );
    let mut truncated = frame::encode(&Request::Status).unwrap();
    truncated.truncate(truncated.len() - 3);
    assert!(raw_exchange(&sb, &truncated).is_empty());
    assert!(raw_exchange(&sb, b"").is_empty());
    let well_behaved = frame::encode(&Request::Ping).unwrap();
    assert_eq!(
        decode_reply(&raw_exchange(&sb, &well_behaved)),
        Response::Pong
    );
    sb.write("src/a.rs", "edit");
    assert_eq!(check(&sb, RUN)["mode"], "watched");
    assert_eq!(daemon_pid(&sb), pid);
    drop(silent);
}

#[test]
fn sixteen_concurrent_clients() {
    let sb = watched();
    let children: Vec<_> = (0..16)
        .map(|i| {
            let cache = format!(".cache/c{}.json", i % 4);
            sb.cmd(["fp", "--cache-file", &cache, "check", "--json"])
                .args(["--exclude", ".cache"])
                .spawn()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(matches!(out.status.code(), Some(RUN | SKIP)), "{out:?}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["files"], 2);
    }
}

/// A change applied to a sandbox.
type Change = Box<dyn Fn(&Sandbox)>;

#[test]
fn watched_checks_see_every_kind_of_change() {
    let sb = watched();
    let cases: Vec<(&str, Change, (&str, usize))> = vec![
        (
            "edit",
            Box::new(|sb| {
                sb.write("src/a.rs", "edited");
            }),
            ("src/a.rs", 1),
        ),
        (
            "create",
            Box::new(|sb| {
                sb.write("src/new.rs", "n");
            }),
            ("src/new.rs", 1),
        ),
        (
            "rename",
            Box::new(|sb| fs::rename(sb.path("src/b.rs"), sb.path("src/c.rs")).unwrap()),
            ("src/c.rs", 2),
        ),
        (
            "delete",
            Box::new(|sb| sb.remove("src/new.rs")),
            ("src/new.rs", 1),
        ),
        (
            "mkdir+file",
            Box::new(|sb| {
                sb.write("deep/er/x.rs", "x");
            }),
            ("deep/er/x.rs", 1),
        ),
        (
            "dir rename",
            Box::new(|sb| fs::rename(sb.path("deep"), sb.path("moved")).unwrap()),
            ("moved/er/x.rs", 2),
        ),
        (
            "edit in a renamed dir",
            Box::new(|sb| {
                sb.write("moved/er/x.rs", "edited after the move");
            }),
            ("moved/er/x.rs", 1),
        ),
        (
            "chmod",
            Box::new(|sb| {
                fs::set_permissions(sb.path("src/a.rs"), fs::Permissions::from_mode(0o755)).unwrap()
            }),
            ("src/a.rs", 1),
        ),
        (
            "gitignore",
            Box::new(|sb| {
                sb.write(".gitignore", "moved/\n");
            }),
            ("moved/er/x.rs", 2),
        ),
    ];
    for (what, change, (path, count)) in cases {
        change(&sb);
        let json = check(&sb, RUN);
        assert_eq!(json["mode"], "watched", "{what}");
        let changes = json["changes"].as_array().unwrap();
        assert_eq!(changes.len(), count, "{what}: {changes:?}");
        assert!(
            changes.iter().any(|c| c["path"] == path),
            "{what}: {path} not in {changes:?}"
        );
        sb.fp(&["mark-success"]).status(0);
        assert_eq!(check(&sb, SKIP)["mode"], "watched", "{what}: then skips");
    }
}

#[test]
fn a_burst_of_ten_thousand_files_is_seen() {
    let sb = watched();
    for i in 0..10_000 {
        sb.write(&format!("burst/d{}/f{i}.txt", i % 100), i.to_string());
    }
    let json = check(&sb, RUN);
    assert_eq!(json["files"], 10_002);
    assert_eq!(json["changes"].as_array().unwrap().len(), 10_000);
    sb.fp(&["mark-success"]).status(0);
    sb.write("burst/d7/f7.txt", "edited");
    let json = check(&sb, RUN);
    assert_eq!(json["changes"][0]["path"], "burst/d7/f7.txt");
}

#[test]
fn daemon_and_in_process_checks_agree_and_follow_each_other() {
    let sb = watched();
    sb.write("src/a.rs", "v2");
    sb.fp(&["--no-daemon", "check"]).status(RUN);
    sb.fp(&["--no-daemon", "mark-success"]).status(0);
    check(&sb, SKIP);
    sb.write("src/b.rs", "v2");
    check(&sb, RUN);
    sb.fp(&["mark-success"]).status(0);
    sb.fp(&["--no-daemon", "check"]).status(SKIP);
    sb.fp(&["check"]).env("ZCCACHE_NO_DAEMON", "1").status(SKIP);
}

#[test]
fn no_daemon_env_starts_nothing() {
    let sb = Sandbox::new();
    sb.write("a.txt", "x");
    sb.fp(&["check"]).env("ZCCACHE_NO_DAEMON", "1").status(RUN);
    sb.run_sh(&["--no-daemon"], "true").status(0);
    assert_eq!(status(&sb)["running"], false);
}

#[test]
fn unreachable_daemon_falls_back_with_one_warning() {
    let sb = Sandbox::new();
    sb.write("a.txt", "x");
    let ran = sb
        .fp(&["check"])
        .env("ZCCACHE_DIR", "/dev/null/zccache")
        .status(RUN)
        .stderr_has("daemon unavailable");
    assert_eq!(ran.stderr.matches("warning").count(), 1, "{}", ran.stderr);
    sb.run_sh(&[], "true")
        .env("ZCCACHE_DIR", "/dev/null/zccache")
        .status(0)
        .stderr_has("working in-process");
}

#[test]
fn idle_daemon_exits() {
    let sb = Sandbox::new();
    sb.cmd(["start"]).env("ZCCACHE_IDLE_TIMEOUT", "1").status(0);
    let pid = daemon_pid(&sb);
    wait_until("the idle daemon to exit", || !alive(pid));
    assert_eq!(status(&sb)["running"], false);
}

#[test]
fn status_tells_what_would_skip() {
    let sb = watched();
    let indexes = status(&sb)["daemon"]["indexes"].clone();
    assert_eq!(indexes[0]["would_skip"], true, "{indexes}");
    assert_eq!(indexes[0]["files"], 2);
    sb.write("src/a.rs", "changed");
    let indexes = status(&sb)["daemon"]["indexes"].clone();
    assert_eq!(indexes[0]["would_skip"], false, "{indexes}");
    assert_eq!(indexes[0]["changed_files"], 1, "{indexes}");
    check(&sb, RUN);
}

#[test]
fn run_goes_through_the_daemon() {
    let sb = Sandbox::new();
    sb.write("src/a.rs", "a");
    sb.run_sh(&[], "echo ran >> \"$MARKER\"").status(0);
    sb.run_sh(&[], "echo ran >> \"$MARKER\"")
        .status(0)
        .stderr_has("skip");
    let indexes = status(&sb)["daemon"]["indexes"].clone();
    assert_eq!(indexes.as_array().unwrap().len(), 1, "{indexes}");
    sb.write("src/a.rs", "b");
    sb.run_sh(&[], "echo ran >> \"$MARKER\"")
        .status(0)
        .stderr_has("run (1 file changed: src/a.rs)");
    assert_eq!(sb.marker_count(), 2);
}

#[test]
fn checks_of_different_roots_do_not_wait_for_each_other() {
    let sb = Sandbox::new();
    sb.write("small/a.txt", "1\n").write("slow/a.txt", "1\n");
    // A 2 GiB sparse file: the first check of `slow` hashes it for seconds (no disk used).
    let big = fs::File::create(sb.path("slow/big.bin")).unwrap();
    big.set_len(2 << 30).unwrap();
    let task = |root: &str| {
        let cache = format!("{root}.json");
        sb.cmd(["run", "--root", root, "--cache", &cache, "--", "true"])
    };
    // The daemon is up before the race starts.
    task("small").status(0);
    let mut slow = task("slow").spawn();
    std::thread::sleep(Duration::from_millis(300));
    sb.write("small/a.txt", "2\n");
    task("small").status(0).stderr_has("run (1 file changed");
    assert!(
        slow.try_wait().unwrap().is_none(),
        "the small check waited for the slow one (or the slow one was not slow)"
    );
    assert!(slow.wait().unwrap().success());
}

#[test]
fn the_daemon_works_in_its_own_scratch_directory() {
    // Tools it starts without a directory of their own (a compiler's --version probe) must
    // not write into the directory the daemon was started from, nor `/`.
    let sb = watched();
    let pid = daemon_pid(&sb);
    let cwd = fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    assert_eq!(cwd, sb.state().join("scratch"));
}

/// A sandbox whose project (`outside/work`) and daemon belong to `nobody` (for whom, unlike
/// root, a directory can be unreadable), and a runner of scripts there as `nobody` in which
/// `FP` is `zccache fp --cache-file .cache/fp.json`; `None` without a second user.
fn as_nobody_project() -> Option<(Sandbox, std::path::PathBuf, std::path::PathBuf)> {
    if !crate::support::available(crate::support::Tool::SecondUser) {
        return None;
    }
    let sb = Sandbox::new();
    let (work, state) = sb.dirs_of_nobody();
    Some((sb, work, state))
}

/// `script` run as `nobody` in `work`, `FP` standing for the fp command.
fn nobody_runs(sb: &Sandbox, (work, state): (&Path, &Path), script: &str) -> crate::support::Cmd {
    let fp = format!("{} fp --cache-file .cache/fp.json", crate::support::ZCCACHE);
    let script = script.replace("FP", &fp);
    sb.as_nobody(&format!("cd {} && {script}", work.display()))
        .env("ZCCACHE_DIR", state)
}

/// A change the daemon could not take in (an unreadable directory appeared beside an edit)
/// leaves it no index to trust: once the directory is gone again, the edit still runs (it
/// skipped while the reports not taken in were lost with the failure). Two ways in: a new
/// directory it cannot read fails its full walk (inotify refuses to watch it, so the
/// daemon walks the root), and a watched directory made unreadable fails the re-listing of
/// the reported paths partway (`locked/` before `z/`).
#[test]
fn a_change_the_daemon_failed_to_take_in_is_never_skipped() {
    let cases = [
        ("mkdir z", "mkdir -m 0 locked", "rmdir locked"),
        (
            "mkdir z locked && echo x > locked/x",
            "echo y > locked/x && chmod 0400 locked",
            "chmod 0700 locked",
        ),
    ];
    for (made, broken, mended) in cases {
        let Some((sb, work, state)) = as_nobody_project() else {
            return;
        };
        let run = |script: &str| nobody_runs(&sb, (&work, &state), script);
        run(&format!(
            "{made} && echo v1 > z/f.txt && FP check; FP mark-success"
        ))
        .status(0);
        let watched = run("FP check --json").status(SKIP).json();
        assert_eq!(watched["mode"], "watched", "{watched}");
        run(&format!("echo v2 > z/f.txt && {broken}")).status(0);
        let failed = Ran::from(run("FP check").output());
        assert_ne!(failed.code, Some(SKIP), "{failed:#?}");
        let checked = run(&format!("{mended} && FP check --json")).status(RUN);
        assert!(checked.stdout.contains("z/f.txt"), "{}", checked.stdout);
        run(&format!("{} stop", crate::support::ZCCACHE)).status(0);
    }
}

/// An edit of an ignore rule the daemon's watch cannot see (`.git/info/exclude`: `.git/` is
/// never watched) is never skipped: the next check walks the root again, and the file the
/// rule let in is a change. (The daemon answered `skip` from its watched index before.)
#[test]
fn an_edit_of_info_exclude_is_a_change_through_the_daemon() {
    let sb = Sandbox::new();
    sb.git(&["init", "-q"]).status(0);
    sb.write("src/a.rs", "a").write("src/gen.rs", "generated");
    sb.write(".git/info/exclude", "gen.rs\n");
    succeed(&sb);
    let watched = check(&sb, SKIP);
    assert_eq!(watched["mode"], "watched", "{watched}");
    sb.write(".git/info/exclude", "# nothing left out\n");
    let checked = check(&sb, RUN);
    assert!(
        checked["mode"]
            .as_str()
            .is_some_and(|m| m.contains("ignore rules outside the watch changed")),
        "{checked}"
    );
    assert!(checked.to_string().contains("src/gen.rs"), "{checked}");
}
