//! `zccache run` of several tasks as a graph: independent tasks at once (`-j`), dependencies
//! after their prerequisites, the first failure stopping new tasks (`--keep-going` not), each
//! task's output whole or line-prefixed, one summary line, one JSON object per task.

use std::path::Path;

use crate::support::Sandbox;

/// A task command that writes its start and end times (ns) to `$TIMES/NAME.start|end`
/// around `body`.
fn timed(name: &str, body: &str) -> String {
    format!(
        "command = \"date +%s%N > \\\"$TIMES/{name}.start\\\"; {body}; s=$?; \
         date +%s%N > \\\"$TIMES/{name}.end\\\"; exit $s\"\n"
    )
}

fn project(tasks: &str) -> Sandbox {
    let sb = Sandbox::new();
    sb.write("src/in.txt", "1\n").write("zccache.toml", tasks);
    sb
}

fn run(sb: &Sandbox, args: &[&str]) -> crate::support::Cmd {
    sb.cmd(["run"])
        .args(args)
        .env("TIMES", sb.outside("times/x").parent().unwrap())
}

/// The time a task wrote, `None` when it never started or ended.
fn at(sb: &Sandbox, file: &str) -> Option<u128> {
    let path = sb.outside("times/x").parent().unwrap().join(file);
    std::fs::read_to_string(Path::new(&path))
        .ok()
        .map(|t| t.trim().parse().expect("a time in ns"))
}

#[test]
fn independent_tasks_overlap_and_a_dependency_waits_for_its_prerequisite() {
    let sb = project(&format!(
        "[tasks.a]\n{}[tasks.b]\n{}[tasks.c]\n{}depends_on = [\"a\"]\n",
        timed("a", "sleep 1"),
        timed("b", "sleep 1"),
        timed("c", "true"),
    ));
    let ran = run(&sb, &["-j", "2", "--all"]).status(0);
    let time = |f: &str| at(&sb, f).unwrap_or_else(|| panic!("{f} missing:\n{}", ran.stderr));
    assert!(
        time("a.start") < time("b.end") && time("b.start") < time("a.end"),
        "a and b did not overlap"
    );
    assert!(time("c.start") >= time("a.end"), "c started before a ended");
    assert!(
        ran.stderr.contains("zccache: 3 tasks: 3 ran in "),
        "{}",
        ran.stderr
    );
    // The same graph one at a time never overlaps.
    std::fs::remove_dir_all(sb.outside("times/x").parent().unwrap()).unwrap();
    run(&sb, &["-j", "1", "--all", "--force"]).status(0);
    let time = |f: &str| at(&sb, f).unwrap();
    assert!(time("a.end") <= time("b.start") || time("b.end") <= time("a.start"));
    // Unchanged: all skip, counted.
    run(&sb, &["--all"])
        .status(0)
        .stderr_has("zccache: 3 tasks: 3 skipped in ");
}

#[test]
fn jobs_come_from_the_defaults_when_not_given() {
    let sb = project(&format!(
        "[defaults]\njobs = 1\n[tasks.a]\n{}[tasks.b]\n{}",
        timed("a", "sleep 0.3"),
        timed("b", "sleep 0.3"),
    ));
    run(&sb, &["--all"]).status(0);
    let time = |f: &str| at(&sb, f).unwrap();
    assert!(time("a.end") <= time("b.start") || time("b.end") <= time("a.start"));
}

#[test]
fn the_first_failure_stops_new_tasks_with_its_status() {
    // `fail` fails at once while `slow` runs; `late` would start after `slow`, and
    // `after_fail` depends on the failure.
    let tasks = format!(
        "[tasks.fail]\n{}[tasks.slow]\n{}[tasks.late]\n{}depends_on = [\"slow\"]\n\
         [tasks.after_fail]\n{}depends_on = [\"fail\"]\n",
        timed("fail", "exit 3"),
        timed("slow", "sleep 1"),
        timed("late", "true"),
        timed("after_fail", "true"),
    );
    let sb = project(&tasks);
    let ran = run(&sb, &["-j", "2", "--all"]).status(3);
    assert!(
        at(&sb, "slow.end").is_some(),
        "a running task is waited for"
    );
    assert_eq!(
        at(&sb, "late.start"),
        None,
        "late started after the failure"
    );
    assert_eq!(at(&sb, "after_fail.start"), None);
    assert!(
        ran.stderr
            .contains("zccache: 4 tasks: 1 ran, 1 failed, 2 not run in "),
        "{}",
        ran.stderr
    );

    // --keep-going runs what does not depend on the failure; the status is still the first
    // failure's.
    let sb = project(&tasks);
    run(&sb, &["-j", "2", "--all", "--keep-going"])
        .status(3)
        .stderr_has("4 tasks: 2 ran, 1 failed, 1 not run");
    assert!(at(&sb, "late.end").is_some(), "keep-going did not run late");
    assert_eq!(at(&sb, "after_fail.start"), None);
}

/// Two tasks printing lines alternately, 50 ms apart, on stdout and stderr.
fn chatty_project() -> Sandbox {
    let chatty = |name: &str| {
        format!(
            "[tasks.{name}]\ncommand = \"for i in 1 2 3 4 5; do echo {name}$i; \
             echo {name}-err$i >&2; sleep 0.05; done\"\n"
        )
    };
    project(&format!("{}{}", chatty("a"), chatty("b")))
}

#[test]
fn parallel_output_is_never_interleaved_within_a_task() {
    let sb = chatty_project();
    let ran = run(&sb, &["-j", "2", "--all"]).status(0);
    for (stream, suffix) in [(&ran.stdout, ""), (&ran.stderr, "-err")] {
        let lines: Vec<&str> = stream
            .lines()
            .filter(|l| l.starts_with('a') || l.starts_with('b'))
            .collect();
        let expected_a: Vec<String> = (1..=5).map(|i| format!("a{suffix}{i}")).collect();
        let expected_b: Vec<String> = (1..=5).map(|i| format!("b{suffix}{i}")).collect();
        let a_first = lines.first().is_some_and(|l| l.starts_with('a'));
        let expected: Vec<String> = match a_first {
            true => expected_a.into_iter().chain(expected_b).collect(),
            false => expected_b.into_iter().chain(expected_a).collect(),
        };
        assert_eq!(lines, expected, "interleaved:\n{stream}");
    }
    // zccache's own line about a task sits in that task's block.
    let stderr: Vec<&str> = ran.stderr.lines().collect();
    let run_a = stderr
        .iter()
        .position(|l| *l == "zccache: run a (no previous success)");
    let first_a = stderr.iter().position(|l| *l == "a-err1");
    assert_eq!(run_a.map(|i| i + 1), first_a, "{}", ran.stderr);
}

/// `zccache run -j 2 --all` where `big` prints 1..=`n`, one number a line, while `small`
/// prints three lines: (lines of big seen in order, small's lines, whether one of small's
/// lines landed inside big's block, zccache's peak memory in KiB).
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4, which also gives its peak memory"
)]
fn print_alongside(n: u64) -> (u64, usize, bool, i64) {
    let sb = project(&format!(
        "[tasks.big]\ncommand = \"seq 1 {n}\"\n\
         [tasks.small]\ncommand = \"for i in 1 2 3; do echo small$i; sleep 0.05; done\"\n"
    ));
    // No shared temp dir is used: with TMPDIR naming none that exists, the output still
    // spills (into the state dir's private `spill/`).
    let mut child = run(&sb, &["-j", "2", "--all"])
        .env("TMPDIR", sb.outside("no-such-dir"))
        .spawn();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let (mut next, mut smalls, mut split) = (1u64, 0, false);
        for line in std::io::BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if line.starts_with("small") {
                smalls += 1;
                split |= next > 1 && next <= n;
            } else {
                assert_eq!(line, next.to_string(), "big's lines in order");
                next += 1;
            }
        }
        (next - 1, smalls, split)
    });
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for this child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: waits for our own child, with pointers to live locals.
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    let (lines, smalls, split) = reader.join().unwrap();
    (lines, smalls, split, usage.ru_maxrss)
}

#[test]
fn a_task_printing_much_more_than_memory_holds_is_printed_whole_and_bounded() {
    // 48 MB from one task while another runs: the block goes to an unnamed temp file past
    // 1 MiB, so zccache's peak memory stays far below what the task printed. Measured
    // against the same run printing 70 bytes, so the bound is on what the output costs,
    // not on the binary's own size.
    let (_, _, _, base_kib) = print_alongside(20);
    let (lines, smalls, split, peak_kib) = print_alongside(6_000_000);
    assert_eq!((lines, smalls), (6_000_000, 3));
    assert!(!split, "small's lines landed inside big's block");
    assert!(
        peak_kib - base_kib < 8 * 1024,
        "zccache held {peak_kib} KiB for 48 MB of output, {base_kib} KiB for 70 bytes"
    );
}

#[test]
fn prefixed_output_names_the_task_on_every_line() {
    let sb = chatty_project();
    let ran = run(&sb, &["-j", "2", "--all", "--output-mode", "prefixed"]).status(0);
    let stdout: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(stdout.len(), 10, "{}", ran.stdout);
    for i in 1..=5 {
        assert!(
            stdout.contains(&format!("a: a{i}").as_str()),
            "{}",
            ran.stdout
        );
        assert!(
            stdout.contains(&format!("b: b{i}").as_str()),
            "{}",
            ran.stdout
        );
    }
    assert!(ran.stderr.contains("a: a-err3\n"), "{}", ran.stderr);
}

#[test]
fn json_gives_one_object_per_task_with_its_outcome() {
    let sb = project(
        "[tasks.ok]\ncommand = \"true\"\n[tasks.bad]\ncommand = \"exit 5\"\n\
         [tasks.later]\ncommand = \"true\"\ndepends_on = [\"bad\"]\n",
    );
    let ran = run(&sb, &["--all", "--json", "--keep-going"]).status(5);
    let objects: Vec<serde_json::Value> = ran
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(objects.len(), 3, "{}", ran.stderr);
    let of = |task: &str| {
        objects
            .iter()
            .find(|o| o["task"] == task)
            .unwrap_or_else(|| panic!("no object for {task}:\n{}", ran.stderr))
    };
    assert_eq!(of("ok")["outcome"], "ran");
    assert_eq!(of("bad")["outcome"], "failed");
    assert_eq!(of("bad")["exit_status"], 5);
    assert_eq!(of("later")["outcome"], "not_run");
    assert!(!ran.stderr.contains("zccache: "), "{}", ran.stderr);
    let ran = run(&sb, &["ok", "--json"]).status(0);
    assert_eq!(ran.stderr_json()["outcome"], "skipped");
}

#[test]
fn bad_job_counts_are_refused() {
    let sb = project("[tasks.a]\ncommand = \"true\"\n");
    run(&sb, &["-j", "0", "a"]).status(2).stderr_has("--jobs");
    run(&sb, &["-j", "many", "a"]).status(2);
    assert_eq!(at(&sb, "a.start"), None);
}

/// The daemon's request count, from `zccache status --json`.
fn daemon_requests(sb: &Sandbox) -> u64 {
    let status = sb.cmd(["status", "--json"]).status(0).json();
    status["daemon"]["requests"].as_u64().expect("requests")
}

#[test]
fn a_fully_cached_graph_asks_the_daemon_once() {
    let sb = project(
        "[tasks.a]\ncommand = \"true\"\n[tasks.b]\ncommand = \"true\"\n\
         [tasks.c]\ncommand = \"true\"\ndepends_on = [\"a\", \"b\"]\n",
    );
    run(&sb, &["--all"]).status(0).stderr_has("3 ran");
    let before = daemon_requests(&sb);
    run(&sb, &["--all"]).status(0).stderr_has("3 skipped");
    // One batched check, and the status request itself.
    assert_eq!(daemon_requests(&sb), before + 2);
}

#[test]
fn a_task_after_one_that_wrote_its_inputs_is_checked_again() {
    // `gen` writes src/gen.rs from data/in.txt; `lint` reads src/*.rs after it.
    let sb = Sandbox::new();
    sb.write("data/in.txt", "1\n")
        .write("src/main.rs", "fn main() {}\n");
    sb.write(
        "zccache.toml",
        "[tasks.gen]\ncommand = \"cp data/in.txt src/gen.rs\"\next = [\"txt\"]\n\
         [tasks.lint]\ncommand = \"echo lint >> \\\"$MARKER\\\"\"\next = [\"rs\"]\n\
         depends_on = [\"gen\"]\n",
    );
    let go = || sb.cmd(["run", "--all"]).env("MARKER", sb.marker());
    go().status(0).stderr_has("2 ran");
    go().status(0).stderr_has("2 skipped");
    // Before the graph starts, lint's inputs are unchanged; gen then rewrites one of them.
    sb.write("data/in.txt", "2\n");
    go().status(0).stderr_has("2 ran");
    assert_eq!(
        sb.marker_count(),
        2,
        "lint skipped on a check made before gen ran"
    );
    go().status(0).stderr_has("2 skipped");
}

#[test]
fn a_task_after_a_restore_into_its_inputs_is_checked_again() {
    // `gen` makes gen/x.txt from data/in.txt; `use` reads gen/.
    let sb = Sandbox::new();
    sb.write("data/in.txt", "1\n");
    sb.write(
        "zccache.toml",
        "[tasks.gen]\ncommand = \"mkdir -p gen && cp data/in.txt gen/x.txt\"\n\
         include = [\"data/**\"]\noutputs = [\"gen\"]\n\
         [tasks.use]\ncommand = \"cat gen/x.txt >> \\\"$MARKER\\\"\"\ninclude = [\"gen/**\"]\n\
         depends_on = [\"gen\"]\n",
    );
    let go = |what: &str| sb.cmd(["run", what]).env("MARKER", sb.marker());
    go("--all").status(0).stderr_has("2 ran");
    // gen alone moves on to 2; `use` last saw 1, and gen/x.txt is put back to 1.
    sb.write("data/in.txt", "2\n");
    go("gen").status(0);
    sb.write("gen/x.txt", "1\n");
    // Before the graph starts, `use` would skip; gen's restore then writes 2 into its inputs.
    go("--all")
        .status(0)
        .stderr_has("restored 1 output: gen")
        .stderr_has("1 restored, 1 ran");
    assert_eq!(sb.read("gen/x.txt"), "2\n");
    assert_eq!(
        std::fs::read_to_string(sb.marker()).unwrap(),
        "1\n2\n",
        "use skipped on a check made before gen's restore"
    );
}

/// Issue O.8: two tasks naming the same `serial` group never overlap, even with room for
/// both (`-j 2`); two in different groups do.
#[test]
fn issue_o_tasks_of_one_serial_group_never_overlap() {
    let tasks = |b_group: &str| {
        format!(
            "[tasks.a]\n{}serial = \"cargo\"\n[tasks.b]\n{}serial = \"{b_group}\"\n",
            timed("a", "sleep 1"),
            timed("b", "sleep 1"),
        )
    };
    let sb = project(&tasks("cargo"));
    run(&sb, &["-j", "2", "--all"]).status(0);
    let time = |f: &str| at(&sb, f).unwrap();
    assert!(
        time("a.end") <= time("b.start") || time("b.end") <= time("a.start"),
        "a and b of one serial group overlapped"
    );
    let sb = project(&tasks("npm"));
    run(&sb, &["-j", "2", "--all"]).status(0);
    let time = |f: &str| at(&sb, f).unwrap();
    assert!(
        time("a.start") < time("b.end") && time("b.start") < time("a.end"),
        "a and b of different groups did not overlap"
    );
}

/// Issue O.8: a serial group is a plain name; anything else is a config error naming the
/// file, line and key.
#[test]
fn issue_o_a_bad_serial_group_is_a_config_error() {
    let sb = project("[tasks.a]\ncommand = \"true\"\nserial = \"a/b\"\n");
    run(&sb, &["--all"])
        .status(2)
        .stderr_has("line 3")
        .stderr_has("bad serial group \"a/b\"");
}
