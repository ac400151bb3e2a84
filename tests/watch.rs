//! `zccache watch` with real edits in temp trees: a round reruns the changed task and its
//! dependents only, through the cache; a burst is one round and a change during a round one
//! more; a task's outputs and its own writes never loop; zccache.toml edits reload; Ctrl-C
//! stops the running task's process group; a daemon stopped under the watch is survived.
//! Every wait is bounded and waits for an expected line.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Sandbox, wait_for};

/// How long a test waits for an expected line.
const PATIENCE: Duration = Duration::from_secs(30);

/// A running `zccache watch` whose stderr lines are collected; killed on drop.
struct Watching {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watching {
    fn start(cmd: crate::support::Cmd) -> Self {
        let mut child = cmd.spawn();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink);
        });
        Watching {
            child: Some(child),
            lines,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// Waits until `needle` has been printed `n` times.
    fn wait_count(&self, needle: &str, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.count(needle) < n {
            assert!(
                Instant::now() < deadline,
                "waited for {n} × {needle:?}:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the end of round `n` (the first run is round 1).
    fn rounds_done(&self, n: usize) {
        self.wait_count("; watching", n);
    }

    /// The first lines of the rounds after the first run.
    fn rounds(&self) -> Vec<String> {
        let lines = self.lines();
        let firsts = lines.iter().filter(|l| is_round_start(l));
        firsts.skip(1).cloned().collect()
    }

    /// Sends `signal` and waits (bounded) for the exit status.
    fn stop(mut self, signal: libc::c_int) -> Option<i32> {
        let mut child = self.child.take().unwrap();
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: kill has no memory effects; pid is our own, unreaped child.
        unsafe { libc::kill(pid, signal) };
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the watch did not exit:\n{}", self.lines().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `zccache: HH:MM:SS <what>: <tasks>`.
fn is_round_start(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("zccache: ") else {
        return false;
    };
    let bytes = rest.as_bytes();
    bytes.len() > 9 && bytes[2] == b':' && bytes[5] == b':' && bytes[8] == b' '
}

fn watch(sb: &Sandbox, args: &[&str]) -> Watching {
    Watching::start(sb.cmd(["watch"]).args(args).env("MARKS", marks(sb)))
}

fn marks(sb: &Sandbox) -> PathBuf {
    sb.outside("marks/x").parent().unwrap().to_path_buf()
}

/// Three tasks: `b` depends on `a`; `c` stands alone. Each reads its own directory.
fn three_tasks() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("a/x.txt", "1\n")
        .write("b/y.txt", "1\n")
        .write("c/z.txt", "1\n")
        .write(
            "zccache.toml",
            "[tasks.a]\ncommand = \"cat a/x.txt\"\ninclude = [\"a/**\"]\n\
             [tasks.b]\ncommand = \"cat b/y.txt\"\ninclude = [\"b/**\"]\ndepends_on = [\"a\"]\n\
             [tasks.c]\ncommand = \"cat c/z.txt\"\ninclude = [\"c/**\"]\n",
        );
    sb
}

/// Issue N.1: an edit reruns its task and the tasks depending on it, nothing else.
#[test]
fn issue_n_an_edit_reruns_the_task_and_its_dependents_only() {
    let sb = three_tasks();
    let w = watch(&sb, &["--all"]);
    w.rounds_done(1);
    assert!(
        w.lines()[0].contains("(events from the daemon)"),
        "{:?}",
        w.lines()
    );
    sb.replace("b/y.txt", "2\n");
    w.rounds_done(2);
    sb.replace("a/x.txt", "2\n");
    w.rounds_done(3);
    let rounds = w.rounds();
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert!(rounds[0].ends_with("b/y.txt changed: b"), "{rounds:?}");
    assert!(rounds[1].ends_with("a/x.txt changed: a, b"), "{rounds:?}");
    assert_eq!(w.count("zccache: run c"), 1, "{:?}", w.lines());
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// Issue N.1: an edit undone makes a round in which the task skips (through the cache);
/// here without a daemon, on the watch's own inotify.
#[test]
fn issue_n_an_undo_skips() {
    let sb = three_tasks();
    let w = watch(&sb, &["c", "--no-daemon"]);
    w.rounds_done(1);
    assert!(w.lines()[0].contains("inotify in this process (--no-daemon)"));
    sb.replace("c/z.txt", "2\n");
    w.rounds_done(2);
    sb.replace("c/z.txt", "1\n");
    w.rounds_done(3);
    assert_eq!(w.count("zccache: run c"), 2, "{:?}", w.lines());
    assert_eq!(w.count("zccache: skip c"), 1, "{:?}", w.lines());
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// An edit that brings an older mtime (an older file moved in, `cp -p`, `tar x`, `touch
/// -d`) makes a round: when a file changed is the later of its mtime and its ctime. (By the
/// mtime alone it was "seen" by the last check, and no round came.)
#[test]
fn an_edit_with_an_older_mtime_makes_a_round() {
    let sb = three_tasks();
    let w = watch(&sb, &["c"]);
    w.rounds_done(1);
    sb.replace("c/z.txt", "2\n");
    sb.age("c/z.txt", 3600);
    w.rounds_done(2);
    sb.replace("old.txt", "3\n");
    sb.age("old.txt", 3600);
    std::fs::rename(sb.path("old.txt"), sb.path("c/z.txt")).unwrap();
    w.rounds_done(3);
    let rounds = w.rounds();
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert!(
        rounds.iter().all(|r| r.ends_with("c/z.txt changed: c")),
        "{rounds:?}"
    );
    assert_eq!(w.count("zccache: run c"), 3, "{:?}", w.lines());
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// A task that a failure stopped from starting (`-j 1`: the first failure ends the
/// graph) joins the next round; and an edit in the same burst as a broken zccache.toml
/// makes its round at once. (Before: `c` never ran again; the edit waited for another.)
#[test]
fn a_task_not_run_joins_the_next_round_and_a_broken_config_holds_nothing_back() {
    let sb = Sandbox::new();
    sb.write("a/x.txt", "1\n").write("c/z.txt", "1\n").write(
        "zccache.toml",
        "[tasks.a]\ncommand = \"test -e a/ok\"\ninclude = [\"a/**\"]\n\
         [tasks.c]\ncommand = \"cat c/z.txt\"\ninclude = [\"c/**\"]\n",
    );
    let w = watch(&sb, &["--all", "-j", "1"]);
    w.rounds_done(1);
    assert_eq!(w.count("zccache: run c"), 0, "{:?}", w.lines());
    sb.replace("a/ok", "");
    w.rounds_done(2);
    assert_eq!(w.count("zccache: run c"), 1, "{:?}", w.lines());
    let config = std::fs::read_to_string(sb.path("zccache.toml")).unwrap();
    sb.replace("c/z.txt", "2\n");
    sb.replace("zccache.toml", format!("{config}garbage [[\n"));
    w.rounds_done(3);
    assert!(w.rounds()[1].contains("c/z.txt changed"), "{:?}", w.lines());
    assert_eq!(w.count("zccache: run c"), 2, "{:?}", w.lines());
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// An edit of an ignore file that lets old files into a set (or leaves some out) makes a
/// round, though the files' own times are older than the last check, through the daemon
/// and without. (No round came: the files were taken as seen.)
#[test]
fn an_ignore_file_edit_that_changes_the_set_makes_a_round() {
    for mode in [&[][..], &["--no-daemon"][..]] {
        let sb = Sandbox::new();
        sb.write("c/z.txt", "1\n")
            .write("c/extra/y.txt", "old\n")
            .write("c/.gitignore", "extra/\n")
            .write(
                "zccache.toml",
                "[tasks.c]\ncommand = \"cat c/z.txt\"\ninclude = [\"c/**/*.txt\"]\n",
            );
        sb.age("c/extra/y.txt", 3600);
        let w = watch(&sb, &[&["c"][..], mode].concat());
        w.rounds_done(1);
        sb.replace("c/.gitignore", "# nothing left out\n");
        w.rounds_done(2);
        let rounds = w.rounds();
        assert!(
            rounds[0].ends_with("c/extra/y.txt changed: c"),
            "{mode:?} {rounds:?}"
        );
        assert_eq!(w.stop(libc::SIGINT), Some(130));
    }
}

/// Issue N.4: a task's outputs written inside the root never trigger it again.
#[test]
fn issue_n_outputs_inside_the_root_do_not_retrigger() {
    let sb = Sandbox::new();
    sb.write("src/a.txt", "1\n").write(
        "zccache.toml",
        "[tasks.build]\ncommand = \"mkdir -p dist && date +%s%N > dist/out.txt\"\n\
         outputs = [\"dist\"]\n",
    );
    let w = watch(&sb, &["build"]);
    w.rounds_done(1);
    sb.replace("src/a.txt", "2\n");
    w.rounds_done(2);
    // A sentinel edit: the round it makes is the next one, none came in between.
    sb.replace("src/a.txt", "3\n");
    w.rounds_done(3);
    let rounds = w.rounds();
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert!(rounds.iter().all(|r| r.contains("src/a.txt changed")));
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// A watch of a task that writes `src/stamp.txt` inside its own input set on every run,
/// once its second round (the one its own write made) has ended with the warning.
fn stamping_task() -> (Sandbox, Watching) {
    let sb = Sandbox::new();
    sb.write("src/a.txt", "1\n").write(
        "zccache.toml",
        "[tasks.stamp]\ncommand = \"date +%s%N > src/stamp.txt\"\n",
    );
    let w = watch(&sb, &["stamp"]);
    w.wait_count("writes src/stamp.txt inside its own input set", 1);
    w.rounds_done(2);
    (sb, w)
}

/// Issue N.4: a task that writes inside its own input set on every run is warned about
/// once, naming the file, and does not loop.
#[test]
fn issue_n_a_task_writing_into_its_own_inputs_warns_once_and_does_not_loop() {
    let (sb, w) = stamping_task();
    sb.replace("src/a.txt", "2\n");
    w.rounds_done(3);
    sb.replace("src/a.txt", "3\n");
    w.rounds_done(4);
    let rounds = w.rounds();
    assert_eq!(rounds.len(), 3, "{rounds:?}");
    assert!(rounds[1].contains("src/a.txt changed") && rounds[2].contains("src/a.txt changed"));
    assert_eq!(w.count("inside its own input set"), 1, "{:?}", w.lines());
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// A path the task writes while it runs is ignored only while it runs: the user's edit of
/// it while the task is idle makes a round (after which the task's own write loops no
/// more). (It was ignored for the rest of the session.)
#[test]
fn an_own_write_path_edited_while_the_task_is_idle_makes_a_round() {
    let (sb, w) = stamping_task();
    sb.replace("src/stamp.txt", "the user's\n");
    w.rounds_done(3);
    // A sentinel edit: its round is the next one, none came in between.
    sb.replace("src/a.txt", "2\n");
    w.rounds_done(4);
    let rounds = w.rounds();
    assert_eq!(rounds.len(), 3, "{rounds:?}");
    assert!(rounds[1].contains("src/stamp.txt changed"), "{rounds:?}");
    assert!(rounds[2].contains("src/a.txt changed"), "{rounds:?}");
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// A dependency's declared output deleted under a dependent that reads it: the round runs
/// the dependency first, which restores it through the cache, and the dependent skips.
/// (Only the dependent ran, and failed on the missing file.)
#[test]
fn a_dependencys_deleted_output_is_restored_in_the_round() {
    let sb = Sandbox::new();
    sb.write("src/x.txt", "1\n").write(
        "zccache.toml",
        "[tasks.gen]\ncommand = \"mkdir -p out && cp src/x.txt out/gen.txt\"\n\
         include = [\"src/**\"]\noutputs = [\"out\"]\n\
         [tasks.use]\ncommand = \"cat out/gen.txt\"\ninclude = [\"out/**\"]\n\
         depends_on = [\"gen\"]\n",
    );
    let w = watch(&sb, &["--all"]);
    w.rounds_done(1);
    std::fs::remove_dir_all(sb.path("out")).unwrap();
    // (gen's first write may make an extra round of `use` first, its time falling in the
    // coarse clock's tick in which `use` began: the round that matters is found by its
    // restore, and waited for to its end.)
    w.wait_count("skip gen (restored", 1);
    let restored = |l: &String| l.contains("skip gen (restored");
    let ended = |w: &Watching| {
        let lines = w.lines();
        let from = lines.iter().position(restored).unwrap_or(lines.len());
        lines[from..].iter().any(|l| l.ends_with("; watching"))
    };
    let deadline = Instant::now() + PATIENCE;
    while !ended(&w) {
        assert!(Instant::now() < deadline, "{:?}", w.lines());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sb.read("out/gen.txt"), "1\n");
    assert_eq!(w.count("No such file"), 0, "{:?}", w.lines());
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// Issue N.3: a burst of 200 writes makes at most two rounds.
#[test]
fn issue_n_a_burst_of_200_writes_makes_at_most_two_rounds() {
    let sb = Sandbox::new();
    sb.write("src/a.txt", "1\n").write(
        "zccache.toml",
        "[tasks.count]\ncommand = \"ls src | wc -l\"\n",
    );
    let w = watch(&sb, &["count"]);
    w.rounds_done(1);
    for i in 0..200 {
        sb.write(&format!("src/f{i}.txt"), format!("{i}\n"));
    }
    w.rounds_done(2);
    // The burst's rounds are over once none starts for a while (on a loaded machine its
    // second round may start after the first ended: a sentinel written then joined it).
    let mut seen = w.rounds().len();
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "{:?}", w.rounds());
        std::thread::sleep(Duration::from_millis(500));
        let now = w.rounds().len();
        if now == seen && w.count("; watching") == now + 1 {
            break;
        }
        seen = now;
    }
    // The sentinel's round is the last: count what came before it.
    std::fs::create_dir_all(sb.path("late")).unwrap();
    sb.replace("late/sentinel.txt", "1\n");
    w.wait_count("late/sentinel.txt changed", 1);
    let rounds = w.rounds();
    let burst = rounds.len() - 1;
    assert!((1..=2).contains(&burst), "{rounds:?}");
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// Issue N.3: changes made while a round runs make exactly one more round.
#[test]
fn issue_n_a_change_during_a_round_makes_exactly_one_more() {
    let sb = Sandbox::new();
    sb.write("src/a.txt", "1\n").write(
        "zccache.toml",
        "[tasks.slow]\ncommand = \"touch \\\"$MARKS/started\\\"; sleep 1\"\n",
    );
    let w = watch(&sb, &["slow"]);
    wait_for(&marks(&sb).join("started"));
    sb.replace("src/a.txt", "2\n");
    sb.replace("src/b.txt", "1\n");
    w.rounds_done(2);
    sb.replace("src/c.txt", "1\n");
    w.wait_count("src/c.txt changed", 1);
    w.rounds_done(3);
    let rounds = w.rounds();
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert!(
        rounds[0].contains("src/a.txt and 1 more changed: slow"),
        "{rounds:?}"
    );
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// A task that goes by the check its round made before any task started (the tasks before
/// it skipped) dates what it saw from that check: an edit of its inputs made after the
/// check, while an earlier task waited for another run of itself, makes one more round.
#[test]
fn an_edit_after_the_rounds_checks_is_not_taken_as_seen() {
    let sb = Sandbox::new();
    let marks = marks(&sb);
    sb.write("a/x.txt", "1\n")
        .write(
            "a/run.sh",
            "cat a/x.txt\nif [ -e \"$MARKS/hold\" ]; then\n  touch \"$MARKS/holding\"\n  \
             while [ ! -e \"$MARKS/go\" ]; do sleep 0.02; done\nfi\n",
        )
        .write("b/y.txt", "1\n")
        .write(
            "zccache.toml",
            "[tasks.a]\ncommand = \"sh a/run.sh\"\ninclude = [\"a/**\"]\n\
             [tasks.b]\ncommand = \"cat b/y.txt\"\ninclude = [\"b/**\"]\ndepends_on = [\"a\"]\n",
        );
    let w = watch(&sb, &["--all", "--debounce", "1500"]);
    w.rounds_done(1);
    // Another run of `a` takes its lock before the round that this edit makes starts.
    std::fs::write(marks.join("hold"), "").unwrap();
    sb.replace("a/x.txt", "2\n");
    let mut other = sb.cmd(["run", "a"]).env("MARKS", &marks).spawn();
    wait_for(&marks.join("holding"));
    // Round 2 checks both tasks at its start (a: run, b: skip; one round trip to the
    // daemon), then its `a` waits for the other run.
    w.wait_count("a/x.txt changed: a, b", 1);
    std::thread::sleep(Duration::from_secs(1));
    sb.replace("b/y.txt", "2\n");
    std::fs::write(marks.join("go"), "").unwrap();
    assert!(other.wait().unwrap().success());
    w.rounds_done(2);
    w.rounds_done(3);
    let rounds = w.rounds();
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    assert!(rounds[1].ends_with("b/y.txt changed: b"), "{rounds:?}");
    assert_eq!(w.count("zccache: run b"), 2, "{:?}", w.lines());
    assert_eq!(
        w.count("waiting for another run of a"),
        1,
        "{:?}",
        w.lines()
    );
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// Issue N.6: an edit of zccache.toml reloads the tasks; a broken one is one error line and
/// the old tasks go on being watched.
#[test]
fn issue_n_zccache_toml_edited_and_broken() {
    let sb = three_tasks();
    let w = watch(&sb, &["--all"]);
    w.rounds_done(1);
    let text = sb.read("zccache.toml");
    sb.replace(
        "zccache.toml",
        format!("{text}[tasks.d]\ncommand = \"echo d\"\ninclude = [\"c/**\"]\n"),
    );
    w.wait_count("zccache.toml changed, reloaded: a, b, c, d", 1);
    w.rounds_done(2);
    sb.replace("zccache.toml", "[tasks.a\ncommand = ");
    w.wait_count("zccache.toml changed but cannot be used", 1);
    sb.replace("c/z.txt", "2\n");
    w.wait_count("c/z.txt changed: c, d", 1);
    w.rounds_done(3);
    let errors: Vec<String> = w
        .lines()
        .into_iter()
        .filter(|l| l.contains("cannot be used"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// Issue N.5: Ctrl-C stops the task running in a round, its whole process group, and the
/// watch exits 130.
#[test]
fn issue_n_ctrl_c_stops_a_running_tasks_process_group() {
    let sb = Sandbox::new();
    sb.write("src/a.txt", "1\n").write(
        "zccache.toml",
        "[tasks.long]\ncommand = \"sh -c 'echo $$ > \\\"$MARKS/pid\\\"; exec sleep 30'; echo after\"\n",
    );
    let w = watch(&sb, &["long"]);
    let pid_file = marks(&sb).join("pid");
    wait_for(&pid_file);
    let deadline = Instant::now() + PATIENCE;
    let pid: i32 = loop {
        if let Ok(pid) = std::fs::read_to_string(&pid_file).unwrap().trim().parse() {
            break pid;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(w.stop(libc::SIGINT), Some(130));
    let deadline = Instant::now() + PATIENCE;
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && !zombie(pid) {
        if Instant::now() > deadline {
            // SAFETY: kill has no memory effects; pid is the sleep this test's task started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("the task's sleep outlived Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
}

/// Issue N.2: the daemon stopped under a running watch: the watch says so and goes on with
/// its own watcher; `status` listed it while the daemon ran.
#[test]
fn issue_n_the_daemon_stopped_under_a_running_watch() {
    let sb = three_tasks();
    let w = watch(&sb, &["c"]);
    w.rounds_done(1);
    let status = sb.cmd(["status"]).status(0);
    assert!(
        status.stdout.contains("zccache watch (pid"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("): c, zccache.toml"),
        "{}",
        status.stdout
    );
    sb.cmd(["stop"]).status(0);
    w.wait_count("lost the daemon", 1);
    w.rounds_done(2);
    sb.replace("c/z.txt", "2\n");
    w.wait_count("c/z.txt changed: c", 1);
    w.rounds_done(3);
    assert_eq!(w.stop(libc::SIGINT), Some(130));
}

/// A set the daemon cannot walk (an unreadable directory appeared in it) does not leave a
/// watch deaf: that change makes a round (whose check says what it cannot read), and once
/// the set can be walked again, an edit makes the next. (The daemon must not be root, for
/// whom no directory is unreadable.)
#[test]
fn a_set_that_could_not_be_walked_is_followed_again() {
    use std::os::unix::fs::PermissionsExt;
    if !crate::support::available(crate::support::Tool::SecondUser) {
        return;
    }
    let sb = Sandbox::new();
    let (work, state) = sb.dirs_of_nobody();
    std::fs::create_dir(work.join("z")).unwrap();
    std::fs::write(work.join("z/f.txt"), "1\n").unwrap();
    let script = format!(
        "cd {} && exec {} watch -- sh -c 'echo ran'",
        work.display(),
        crate::support::ZCCACHE
    );
    let w = Watching::start(sb.as_nobody(&script).env("ZCCACHE_DIR", &state));
    w.rounds_done(1);
    std::fs::create_dir(work.join("locked")).unwrap();
    std::fs::set_permissions(work.join("locked"), std::fs::Permissions::from_mode(0o0)).unwrap();
    w.rounds_done(2);
    std::fs::remove_dir(work.join("locked")).unwrap();
    std::fs::write(work.join("z/f.txt"), "2\n").unwrap();
    w.rounds_done(3);
    assert!(w.rounds()[1].contains("z/f.txt"), "{:?}", w.lines());
    assert_eq!(w.stop(libc::SIGINT), Some(130));
    let stop = format!("{} stop", crate::support::ZCCACHE);
    sb.as_nobody(&stop).env("ZCCACHE_DIR", &state).status(0);
}
