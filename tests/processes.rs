//! `zccache run` and the processes it starts, with real signals to real process trees: a
//! signal starts nothing new and stops every task's whole tree, a background process a
//! command leaves behind does not hold its task open, a command that has the terminal stays
//! in its foreground, two runs of one task never run it at once, and a task's held output
//! survives a spill file that cannot grow.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{Ran, Sandbox, wait_for};

/// The pid a command wrote into `path`.
fn pid_in(path: &Path) -> i32 {
    wait_for(path);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(pid) = fs::read_to_string(path).unwrap_or_default().trim().parse() {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` is gone (a dead orphan nobody reaped counts as gone).
fn gone(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

/// Waits up to 10 s for process `pid` to be gone.
fn ends_soon(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Sleeps a test started that may outlive it when zccache misbehaves: killed on drop.
#[derive(Default)]
struct Leftovers(Vec<i32>);

impl Leftovers {
    fn add(&mut self, pid: i32) -> i32 {
        self.0.push(pid);
        pid
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for &pid in &self.0 {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline.starts_with(b"sleep") {
                // SAFETY: kill has no memory effects; pid is a sleep this test started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn send(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill has no memory effects; pid is our own child.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Waits up to `secs` for `child` to exit (killing it and failing after that).
fn finish(child: Child, secs: u64) -> Ran {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(output) => Ran::from(output.unwrap()),
        Err(_) => {
            // SAFETY: kill has no memory effects; pid is our own, still unreaped, child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("zccache did not exit within {secs} s");
        }
    }
}

/// A project whose task `b` starts `cargo`, a rustup proxy here: checking `b` asks `rustup
/// which`, which waits until the file `go` appears (or 20 s), so the test decides how long
/// `b` stays in its check. Task `a` writes its pid and sleeps. Run `cargo`, `b` touches
/// `b.started`.
struct Checking {
    sb: Sandbox,
    marks: PathBuf,
    path: String,
}

impl Checking {
    fn new() -> Self {
        let sb = Sandbox::new();
        let marks = sb.outside("marks/x").parent().unwrap().to_path_buf();
        let bin = sb.outside("bin/x").parent().unwrap().to_path_buf();
        let rustup = bin.join("rustup");
        let m = marks.display();
        let script = format!(
            "#!/bin/sh\nif [ \"$1\" = which ]; then\n  touch '{m}/which'\n  i=0\n  \
             while [ ! -e '{m}/go' ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\n  \
             echo '{}'\n  exit 0\nfi\ntouch '{m}/b.started'\n",
            rustup.display()
        );
        fs::write(&rustup, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&rustup, fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("rustup", bin.join("cargo")).unwrap();
        sb.write("src/in.txt", "1\n").write(
            "zccache.toml",
            "[tasks.a]\ncommand = \"echo $$ > \\\"$MARKS/a.pid\\\"; exec sleep 30\"\n\
             [tasks.b]\ncommand = [\"cargo\", \"build\"]\n",
        );
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        Checking { sb, marks, path }
    }

    fn run(&self, args: &[&str]) -> crate::support::Cmd {
        self.sb
            .cmd(["run", "--no-daemon"])
            .args(args)
            .env("MARKS", &self.marks)
            .env("PATH", &self.path)
    }

    fn mark(&self, name: &str) -> PathBuf {
        self.marks.join(name)
    }
}

/// Issue L.9: a signal that comes while a task is still being checked (its neighbour's
/// command running) starts no command afterwards and records no success; the run exits
/// 128 + N.
#[test]
fn issue_l_a_signal_while_a_task_checks_starts_no_command() {
    for (signal, status) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let p = Checking::new();
        let mut leftovers = Leftovers::default();
        let child = p.run(&["-j", "2", "--all"]).spawn();
        wait_for(&p.mark("which"));
        let a = leftovers.add(pid_in(&p.mark("a.pid")));
        send(&child, signal);
        assert!(ends_soon(a), "a's command outlived the signal");
        // b's check ends only now, after a's command is gone.
        fs::write(p.mark("go"), "").unwrap();
        let ran = finish(child, 30);
        assert_eq!(ran.code, Some(status), "{}", ran.stderr);
        assert!(
            !p.mark("b.started").exists(),
            "b started after the signal:\n{}",
            ran.stderr
        );
        assert!(ran.stderr.contains("zccache: not started b (interrupted)"));
        // Nothing was recorded as a success: b would still run.
        p.run(&["b", "--dry-run"])
            .status(1)
            .stderr_has("zccache: run b (no previous success)");
    }
}

/// Issue L.9: the first signal lets a check in progress end (nothing starts after it); a
/// second one quits at once.
#[test]
fn issue_l_a_second_signal_quits_at_once() {
    let p = Checking::new();
    let child = p.run(&["b"]).spawn();
    wait_for(&p.mark("which"));
    send(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    send(&child, libc::SIGINT);
    // The check would take 20 s more.
    let ran = finish(child, 10);
    fs::write(p.mark("go"), "").unwrap();
    assert_eq!(ran.code, Some(130), "{}", ran.stderr);
    assert!(!p.mark("b.started").exists());
}

/// A signal zccache was started with ignored (`nohup`, a background job of a script) stays
/// ignored: it interrupts nothing.
#[test]
fn issue_l_a_signal_ignored_at_start_stays_ignored() {
    let sb = Sandbox::new();
    let marks = sb.outside("marks/x").parent().unwrap().to_path_buf();
    sb.write("src/in.txt", "1\n");
    let child = sb
        .program("sh")
        .args([
            "-c",
            "trap '' HUP; exec \"$0\" run -- sh -c 'touch \"$MARKS/ready\"; sleep 1'",
            crate::support::ZCCACHE,
        ])
        .env("MARKS", &marks)
        .spawn();
    wait_for(&marks.join("ready"));
    send(&child, libc::SIGHUP);
    let ran = finish(child, 20);
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
}

/// A `zccache.toml` task whose command starts a shell that starts `sleep 30` in the
/// foreground: the sleep is a grandchild of zccache; its pid goes into `$MARKS/NAME.pid`.
fn grandchild_task(name: &str) -> String {
    format!(
        "[tasks.{name}]\ncommand = \"sh -c 'echo $$ > \\\"$MARKS/{name}.pid\\\"; \
         exec sleep 30'; echo after\"\n"
    )
}

/// Issue L.10: SIGINT stops every task's whole process tree (each task's command has its
/// own process group, and the signal goes to the group), not only the shells zccache
/// started.
#[test]
fn issue_l_a_signal_stops_every_tasks_grandchildren() {
    let sb = Sandbox::new();
    let marks = sb.outside("marks/x").parent().unwrap().to_path_buf();
    sb.write("src/in.txt", "1\n").write(
        "zccache.toml",
        format!("{}{}", grandchild_task("x"), grandchild_task("y")),
    );
    let mut leftovers = Leftovers::default();
    let child = sb
        .cmd(["run", "-j", "2", "--all"])
        .env("MARKS", &marks)
        .spawn();
    let sleeps = [
        leftovers.add(pid_in(&marks.join("x.pid"))),
        leftovers.add(pid_in(&marks.join("y.pid"))),
    ];
    send(&child, libc::SIGINT);
    let ran = finish(child, 20);
    assert_eq!(ran.code, Some(130), "{}", ran.stderr);
    for pid in sleeps {
        assert!(ends_soon(pid), "a task's grandchild outlived SIGINT");
    }
}

/// Issue L.10: a single task run without a terminal (as in CI) has its own process group
/// too: SIGTERM stops its grandchildren.
#[test]
fn issue_l_sigterm_stops_a_single_commands_grandchildren() {
    let sb = Sandbox::new();
    let marks = sb.outside("marks/x").parent().unwrap().to_path_buf();
    sb.write("src/in.txt", "1\n");
    let mut leftovers = Leftovers::default();
    let mut command = sb
        .cmd(["run", "--no-daemon", "--", "sh", "-c"])
        .args(["sh -c 'echo $$ > \"$MARKS/solo.pid\"; exec sleep 30'; echo after"])
        .env("MARKS", &marks)
        .into_command();
    // SAFETY: setsid is async-signal-safe; it leaves the child without a terminal.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let sleep = leftovers.add(pid_in(&marks.join("solo.pid")));
    send(&child, libc::SIGTERM);
    let ran = finish(child, 20);
    assert_eq!(ran.code, Some(143), "{}", ran.stderr);
    assert!(
        ends_soon(sleep),
        "the command's grandchild outlived SIGTERM"
    );
}

/// Issue L.10: when a task's command has exited, a background process it left holding the
/// output pipe does not keep the task (and zccache) waiting; what the command printed
/// before it exited is all there.
#[test]
fn issue_l_a_background_process_does_not_hold_its_task_open() {
    let sb = Sandbox::new();
    let marks = sb.outside("marks/x").parent().unwrap().to_path_buf();
    sb.write("src/in.txt", "1\n").write(
        "zccache.toml",
        "[tasks.bg]\ncommand = \"sleep 6 & echo $! > \\\"$MARKS/bg.pid\\\"; echo started\"\n\
         [tasks.quick]\ncommand = \"echo quick\"\n",
    );
    let mut leftovers = Leftovers::default();
    let started = Instant::now();
    let ran = sb
        .cmd(["run", "-j", "2", "--all"])
        .env("MARKS", &marks)
        .status(0);
    let took = started.elapsed();
    leftovers.add(pid_in(&marks.join("bg.pid")));
    assert!(took < Duration::from_secs(4), "held for {took:?}");
    assert!(ran.stdout.contains("started\n") && ran.stdout.contains("quick\n"));

    // The same with one task whose output is captured (`--replay`).
    let started = Instant::now();
    let ran = sb
        .run_sh(
            &["--replay"],
            &format!(
                "sleep 6 & echo $! > '{}/solo.pid'; echo solo",
                marks.display()
            ),
        )
        .status(0);
    let took = started.elapsed();
    leftovers.add(pid_in(&marks.join("solo.pid")));
    assert!(took < Duration::from_secs(4), "held for {took:?}");
    assert_eq!(ran.stdout, "solo\n");
}

/// A pseudo-terminal: the controller and the path of the terminal end.
fn pseudo_terminal() -> (fs::File, PathBuf) {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt returns a new fd we own; grantpt/unlockpt/ptsname_r act on it.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(fd >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0);
        let path = std::ffi::CStr::from_ptr(name.as_ptr()).to_str().unwrap();
        (fs::File::from_raw_fd(fd), PathBuf::from(path))
    }
}

/// Issue L.10, the choice for a command that has the terminal: with zccache in the
/// foreground of a terminal, a single task's command stays in zccache's process group (the
/// foreground), so it reads the terminal (in a group of its own it would be stopped by
/// SIGTTIN).
#[test]
fn issue_l_a_command_that_has_the_terminal_stays_in_its_foreground() {
    let sb = Sandbox::new();
    let marks = sb.outside("marks/x").parent().unwrap().to_path_buf();
    sb.write("src/in.txt", "1\n");
    let (mut controller, terminal) = pseudo_terminal();
    let tty = || {
        fs::File::options()
            .read(true)
            .write(true)
            .open(&terminal)
            .unwrap()
    };
    let mut command = sb
        .cmd(["run", "--no-daemon", "--", "sh", "-c"])
        .args(["read line; echo \"$line\" > \"$MARKS/got\"; ps -o pgid= -p $$ > \"$MARKS/pgid\""])
        .env("MARKS", &marks)
        .into_command();
    // SAFETY: setsid and ioctl are async-signal-safe; they make the terminal on fd 0 the
    // controlling terminal of a new session whose foreground is zccache.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let child = command
        .stdin(tty())
        .stdout(tty())
        .stderr(tty())
        .spawn()
        .unwrap();
    controller.write_all(b"hello\n").unwrap();
    let zccache = child.id();
    let ran = finish(child, 20);
    assert_eq!(ran.code, Some(0));
    assert_eq!(fs::read_to_string(marks.join("got")).unwrap(), "hello\n");
    let pgid = fs::read_to_string(marks.join("pgid")).unwrap();
    assert_eq!(pgid.trim(), zccache.to_string(), "not in zccache's group");
}

/// Issue L.11: two runs of one task at the same time never both run its command: the
/// second waits for the first, says so, then checks again and skips. A dry run takes no
/// lock.
#[test]
fn issue_l_two_runs_of_one_task_never_run_it_at_once() {
    let sb = Sandbox::new();
    let marks = sb.outside("marks/x").parent().unwrap().to_path_buf();
    sb.write("src/in.txt", "1\n").write(
        "zccache.toml",
        "[tasks.slow]\ncommand = \"echo run >> \\\"$MARKER\\\"; touch \\\"$MARKS/started\\\"; \
         sleep 2; mkdir -p out; echo built > out/f\"\noutputs = [\"out\"]\n",
    );
    let run = || {
        sb.cmd(["run", "slow"])
            .env("MARKS", &marks)
            .env("MARKER", sb.marker())
    };
    let first = run().spawn();
    wait_for(&marks.join("started"));
    let second = run().spawn();
    run()
        .args(["--dry-run"])
        .status(1)
        .stderr_lacks("waiting for another run");
    let first_pid = first.id();
    let first = finish(first, 30);
    assert_eq!(first.code, Some(0), "{}", first.stderr);
    let second = finish(second, 30);
    assert_eq!(second.code, Some(0), "{}", second.stderr);
    assert!(
        second.stderr.contains(&format!(
            "zccache: waiting for another run of slow (pid {first_pid})"
        )),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("zccache: skip slow ("),
        "{}",
        second.stderr
    );
    assert_eq!(sb.marker_count(), 1, "the command ran twice");
    assert_eq!(sb.read("out/f"), "built\n");
}

/// Issue L.12: when a task's spilled output cannot grow (here the file size limit), every
/// line is still printed, in order, and the run succeeds.
#[test]
fn issue_l_held_output_survives_a_spill_file_that_cannot_grow() {
    let sb = Sandbox::new();
    sb.write("src/in.txt", "1\n").write(
        "zccache.toml",
        "[tasks.a]\ncommand = \"seq -f 'a%.0f' 1 1000000\"\n\
         [tasks.b]\ncommand = \"seq -f 'b%.0f' 1 1000000\"\n",
    );
    // 4096 blocks: 2 or 4 MiB, far below the 8 MB each task prints.
    let ran = sb
        .program("sh")
        .args([
            "-c",
            "ulimit -f 4096; exec \"$0\" run -j 2 --all --no-daemon",
            crate::support::ZCCACHE,
        ])
        .status(0);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 2_000_000, "{}", ran.stderr);
    let first = &lines[0][..1];
    for (i, line) in lines.iter().enumerate() {
        let (task, n) = match i < 1_000_000 {
            true => (first, i + 1),
            false => (if first == "a" { "b" } else { "a" }, i - 999_999),
        };
        assert_eq!(*line, format!("{task}{n}"), "line {i}");
    }
}
