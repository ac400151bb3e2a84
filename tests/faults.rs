//! Faults that must never cost a build (issue R): a full disk under `ZCCACHE_DIR`, a removed
//! socket, a stopped daemon; and identical compiles running at once, which compile once.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{Cmd, Ran, Sandbox, Tool, ZCCACHE, available};

const RUN: i32 = 0;

fn daemon_pid(sb: &Sandbox) -> i32 {
    let status = sb.cmd(["status", "--json"]).status(0).json();
    let pid = status["daemon"]["pid"].as_u64().expect("daemon running");
    i32::try_from(pid).unwrap()
}

/// Whether `pid` runs (a zombie does not: nobody may reap the daemon promptly).
fn alive(pid: i32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z ")
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cmd`; a command still running after `limit` is killed and fails the test, so a
/// hang shows as a failure instead of blocking the suite.
fn bounded(cmd: Cmd, limit: Duration) -> Ran {
    let mut child = cmd.spawn();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running after {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ran::from(child.wait_with_output().unwrap())
}

fn assert_code(ran: &Ran, code: i32) {
    assert_eq!(ran.code, Some(code), "{ran:#?}");
}

/// A daemon stopped with SIGSTOP, resumed when this is dropped (also when the test fails).
struct Stopped(i32);

impl Stopped {
    /// Stops the daemon and waits until each of its threads is stopped: kill(2) returns with
    /// SIGSTOP only queued, and the kernel wakes just the main thread (parked in `block_on`)
    /// to stop the others. Until it gets a CPU, a worker woken by a new connection still takes
    /// the request and is stopped only mid-work, to finish (compile, store, count) once
    /// resumed: on a loaded machine a compile sent right after the kill was counted so.
    fn new(pid: i32) -> Self {
        // SAFETY: plain kill(2) on the test's own daemon.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
        wait_until("each thread of the daemon to stop", || {
            let tasks = fs::read_dir(format!("/proc/{pid}/task")).unwrap();
            tasks.flatten().all(|task| {
                let stat = fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                stat.rsplit_once(") ")
                    .is_none_or(|(_, rest)| rest.starts_with('T'))
            })
        });
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0, libc::SIGCONT) };
    }
}

/// A 4 MiB tmpfs mounted over a sandbox's state directory; on drop its daemon is stopped
/// and it is unmounted.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path) -> Self {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(mounted.success(), "mount a tmpfs on {}", dir.display());
        SmallDisk(dir.to_path_buf())
    }

    /// Writes zeros until no byte is left.
    fn fill(&self) {
        let filled = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", self.0.join("fill").display()))
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(!filled.success(), "dd stops at a full disk");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new(ZCCACHE)
            .arg("stop")
            .env("ZCCACHE_DIR", &self.0)
            .output();
        let unmounted = Command::new("umount").arg(&self.0).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

fn plain_gcc(sb: &Sandbox, source: &str, object: &str) -> Vec<u8> {
    sb.program("gcc")
        .args(["-c", source, "-o", object])
        .status(0);
    fs::read(sb.path(object)).unwrap()
}

#[test]
fn issue_r_a_full_disk_under_the_state_dir_never_fails_a_compile() {
    if !available(Tool::Mount) {
        return;
    }
    let sb = Sandbox::new();
    let disk = SmallDisk::mount(&sb.state());
    sb.write("u.c", "int u(int a) { return a + 1; }\n");
    let want = plain_gcc(&sb, "u.c", "ref.o");
    sb.cmd(["start"]).status(0);
    disk.fill();
    let first = sb.cmd(["gcc", "-c", "u.c", "-o", "u.o"]).status(0);
    assert_eq!(fs::read(sb.path("u.o")).unwrap(), want);
    assert_eq!(
        first.stderr.matches("warning").count(),
        1,
        "{}",
        first.stderr
    );
    assert!(
        first.stderr.contains("the cache is out of space")
            && first.stderr.contains("No space left on device"),
        "{}",
        first.stderr
    );
    // Once a minute, not once per compile.
    sb.cmd(["gcc", "-c", "u.c", "-o", "u2.o"])
        .status(0)
        .stderr_lacks("warning");
    assert_eq!(fs::read(sb.path("u2.o")).unwrap(), want);
    let status = sb.cmd(["status"]).status(0).stdout;
    assert!(
        status.contains("out of space: 2 compiles without the cache"),
        "{status}"
    );
    // A daemon started on the full disk serves (uncached) too.
    sb.cmd(["stop"]).status(0);
    sb.cmd(["gcc", "-c", "u.c", "-o", "u3.o"]).status(0);
    assert_eq!(fs::read(sb.path("u3.o")).unwrap(), want);
    drop(disk);
}

#[test]
fn issue_r_a_daemon_whose_socket_was_removed_exits() {
    let sb = Sandbox::new();
    sb.cmd(["start"]).status(0);
    let pid = daemon_pid(&sb);
    fs::remove_file(sb.state().join("daemon.sock")).unwrap();
    wait_until("the daemon without a socket to exit", || !alive(pid));
    sb.write("a.txt", "x");
    sb.fp(&["check"]).status(RUN).stderr_lacks("warning");
    assert_ne!(daemon_pid(&sb), pid);
}

#[test]
fn issue_r_a_client_replaces_a_daemon_without_a_socket_at_once() {
    let sb = Sandbox::new();
    sb.cmd(["start"]).status(0);
    let pid = daemon_pid(&sb);
    // Stopped, the daemon cannot notice its socket is gone: the client must end it.
    let stopped = Stopped::new(pid);
    fs::remove_file(sb.state().join("daemon.sock")).unwrap();
    sb.write("a.txt", "x");
    sb.fp(&["check"])
        .status(RUN)
        .stderr_lacks("in-process")
        .stderr_lacks("warning");
    wait_until("the old daemon to exit", || !alive(pid));
    assert_ne!(daemon_pid(&sb), pid);
    drop(stopped);
}

#[test]
fn issue_r_stop_stops_a_daemon_without_a_socket_and_waits_for_its_exit() {
    let sb = Sandbox::new();
    sb.cmd(["start"]).status(0);
    let pid = daemon_pid(&sb);
    sb.cmd(["stop"]).status(0).stderr_has("daemon stopped");
    assert!(!alive(pid), "stop returned before the daemon exited");
    sb.cmd(["start"]).status(0);
    let pid = daemon_pid(&sb);
    let stopped = Stopped::new(pid);
    fs::remove_file(sb.state().join("daemon.sock")).unwrap();
    sb.cmd(["stop"]).status(0).stderr_has("daemon stopped");
    assert!(!alive(pid), "stop left the daemon running");
    drop(stopped);
}

/// A compiler that takes `secs` seconds before running gcc.
fn slow_gcc(sb: &Sandbox, secs: u32) -> String {
    let path = sb.outside(&format!("bin/slow{secs}-gcc"));
    fs::write(&path, format!("#!/bin/sh\nsleep {secs}\nexec gcc \"$@\"\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn issue_r_a_stopped_daemon_costs_a_bounded_wait_never_a_build() {
    let sb = Sandbox::new();
    sb.write("y.c", "int y(int a) { return a * 3; }\n");
    let want = plain_gcc(&sb, "y.c", "ref.o");
    // A compile slower than the client's patience is still the daemon's: it says it works.
    let slow = slow_gcc(&sb, 7);
    sb.cmd([slow.as_str(), "-c", "y.c", "-o", "y0.o"])
        .status(0)
        .stderr_lacks("warning");
    let counted = sb.cmd(["status", "--json"]).status(0).json()["daemon"].clone();
    assert_eq!(counted["cache_misses"], 1, "{counted}");
    let pid = daemon_pid(&sb);
    let stopped = Stopped::new(pid);
    let started = Instant::now();
    let limit = Duration::from_secs(30);
    let compiled = bounded(sb.cmd(["gcc", "-c", "y.c", "-o", "y1.o"]), limit);
    assert_code(&compiled, 0);
    // The early client waited the one silence timeout and marked the daemon silent, so the
    // usual start it handed the compile to did not wait a second time.
    assert!(
        compiled.stderr.contains("stopped or hung?"),
        "{compiled:#?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the stopped daemon was waited for twice: {:?}",
        started.elapsed()
    );
    let marker = fs::read_to_string(sb.state().join("daemon.silent")).unwrap();
    assert_eq!(marker.trim(), pid.to_string());
    assert_eq!(fs::read(sb.path("y1.o")).unwrap(), want);
    sb.write("a.txt", "x");
    let checked = bounded(sb.fp(&["check"]), limit);
    assert_code(&checked, RUN);
    assert!(
        checked.stderr.contains("working in-process"),
        "{checked:#?}"
    );
    assert_eq!(checked.stderr.matches("warning").count(), 1, "{checked:#?}");
    assert_code(
        &bounded(sb.run_sh(&[], "echo ran >> \"$MARKER\""), limit),
        0,
    );
    assert_eq!(sb.marker_count(), 1);
    assert_code(&bounded(sb.cmd(["status"]), limit), 0);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the stopped daemon was waited for"
    );
    drop(stopped);
    // Resumed, it drops the requests whose clients gave up: none ran, none was counted.
    let mut status = serde_json::Value::Null;
    wait_until("the resumed daemon to be asked again", || {
        status = sb.cmd(["status", "--json"]).status(0).json();
        status["running"] == true
    });
    let log = fs::read_to_string(sb.state().join("daemon.log")).unwrap_or_default();
    assert_eq!(status["daemon"]["cache_misses"], 1, "{status}\n{log}");
    assert_eq!(status["daemon"]["passthroughs"], 0, "{status}\n{log}");
    assert_eq!(status["daemon"]["pid"], pid, "{status}\n{log}");
}

/// A gcc (or g++) that logs each compile to an object it really runs, slowly enough for
/// identical compiles to overlap.
fn counting_compiler(sb: &Sandbox, real: &str) -> (String, PathBuf) {
    let log = sb.outside(&format!("{real}.runs"));
    let path = sb.outside(&format!("bin/counting-{real}"));
    fs::write(
        &path,
        format!(
            "#!/bin/sh\ncase \" $* \" in *\" -E \"*) ;; *\" -c \"*) echo \"$*\" >> {log}; sleep 1;; esac\n\
             exec {real} \"$@\"\n",
            log = log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    (path.display().to_string(), log)
}

#[test]
fn issue_r_identical_c_and_cxx_compiles_at_once_compile_once() {
    let sb = Sandbox::new();
    sb.write("y.c", "int y(int a) { return a * 3; }\n");
    sb.write(
        "z.cpp",
        "template <int N> int z() { return N; }\nint w() { return z<4>(); }\n",
    );
    sb.cmd(["start"]).status(0);
    for (real, source) in [("gcc", "y.c"), ("g++", "z.cpp")] {
        let (compiler, log) = counting_compiler(&sb, real);
        let children: Vec<_> = (0..8)
            .map(|i| {
                let object = format!("{real}{i}.o");
                sb.cmd([compiler.as_str(), "-O2", "-c", source, "-o", &object])
                    .spawn()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{out:?}");
        }
        let runs = fs::read_to_string(&log).unwrap();
        assert_eq!(
            runs.lines().count(),
            1,
            "{real} ran more than once:\n{runs}"
        );
        let first = fs::read(sb.path(&format!("{real}0.o"))).unwrap();
        for i in 1..8 {
            assert_eq!(fs::read(sb.path(&format!("{real}{i}.o"))).unwrap(), first);
        }
    }
    let counted = sb.cmd(["status", "--json"]).status(0).json()["daemon"].clone();
    assert_eq!(
        (&counted["cache_hits"], &counted["cache_misses"]),
        (&serde_json::json!(14), &serde_json::json!(2)),
        "{counted}"
    );
}

/// R.3, the in-process side: a task's state file whose lock another process keeps (a daemon
/// stopped in the middle of a check) costs a bounded wait, then the check fails and the
/// command runs (never skips on doubt), instead of waiting as long as the holder does.
#[test]
fn issue_r_a_state_lock_held_without_end_costs_a_bounded_wait() {
    let sb = Sandbox::new();
    sb.write("src/a.txt", "a\n");
    sb.run_sh(&["--no-daemon", "--cache", ".cache/t.json"], "true")
        .status(0);
    let mut holder = Command::new("flock")
        .args([".cache/t.json.zccache-lock", "sleep", "60"])
        .current_dir(sb.root())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let cmd = sb.run_sh(
        &["--no-daemon", "--cache", ".cache/t.json"],
        "echo ran >> \"$MARKER\"",
    );
    let ran = bounded(cmd, Duration::from_secs(20));
    let _ = holder.kill();
    let _ = holder.wait();
    assert_code(&ran, 0);
    assert!(ran.stderr.contains("running anyway"), "{}", ran.stderr);
    assert_eq!(sb.marker_count(), 1, "the command ran");
}
