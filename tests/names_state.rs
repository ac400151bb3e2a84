//! Issue L, "Names and state": task names that would be paths, file names that hold terminal
//! escapes, the watcher after `rm -rf .zccache/`, state files planted as symlinks or FIFOs,
//! and a forged shared replay. Each case is the attack (or the accident) itself, run for real.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::remote::Redis;
use crate::support::{Cmd, Ran, Sandbox, Tool, available};
use crate::trust::entry_with;

/// A name that retitles the terminal, and one that clears it, printed raw.
const RETITLE: &str = "\u{1b}]0;PWNED\u{7}evil.txt";
const CLEAR: &str = "\u{1b}[2J\u{1b}[Hclear.txt";
/// How git would quote them.
const RETITLE_QUOTED: &str = "\"\\033]0;PWNED\\aevil.txt\"";
const CLEAR_QUOTED: &str = "\"\\033[2J\\033[Hclear.txt\"";

fn assert_no_escape(what: &str, bytes: &[u8]) {
    assert!(
        !bytes.contains(&0x1b) && !bytes.contains(&0x07),
        "{what} printed a raw control byte:\n{}",
        String::from_utf8_lossy(bytes)
    );
}

/// Issue L.13: a task name is a plain file name; anything else is a config error naming the
/// file, the line and the key, and no state is written anywhere.
#[test]
fn issue_l_task_names_that_are_paths_are_config_errors() {
    let sb = Sandbox::new();
    for (n, name) in ["../../../outside/escaped", "sub/dir", ".hidden", ""]
        .iter()
        .enumerate()
    {
        let text = format!(
            "[tasks.ok]\ncommand = \"true\"\n\n[tasks.\"{name}\"]\ncommand = \"echo ran >> \\\"$MARKER\\\"\"\n"
        );
        sb.write("zccache.toml", text);
        let ran = sb
            .cmd(["run", "--all"])
            .env("MARKER", sb.marker())
            .status(2)
            .stderr_has("zccache.toml")
            .stderr_has("line 4")
            .stderr_has(&format!("bad task name {name:?}"));
        assert_eq!(sb.marker_count(), 0, "case {n} ran: {}", ran.stderr);
        sb.cmd(["tasks"]).status(2).stderr_has("bad task name");
    }
    assert!(!sb.outside("").join("escaped.json").exists());
    assert!(!sb.path(".zccache").exists(), "no state written anywhere");
    // A name on the command line is looked up, never made a path.
    sb.write("zccache.toml", "[tasks.ok]\ncommand = \"true\"\n");
    sb.cmd(["run", "../x"])
        .status(2)
        .stderr_has("no task named \"../x\"");
    assert!(!sb.path(".zccache").exists());
}

fn git_project() -> Sandbox {
    let sb = Sandbox::new();
    sb.git(&["init", "-q"]).status(0);
    sb.write("ok.txt", "1\n");
    sb
}

/// Issue L.14: file names holding escape sequences are quoted as git does in every human
/// message (`run`'s verdict line, `--explain`, `why`, `status`), never printed raw; JSON keeps
/// the exact names.
#[test]
fn issue_l_escape_sequences_in_file_names_never_reach_the_terminal() {
    let sb = git_project();
    let run = |extra: &[&str]| {
        sb.cmd(["run", "--cache", ".cache/t.json"])
            .args(extra)
            .args(["--", "true"])
    };
    run(&[]).status(0);
    sb.write(RETITLE, "x\n").write(CLEAR, "y\n");
    let json = run(&["--dry-run", "--json"]).status(1).stderr_json();
    let paths: Vec<&str> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, [CLEAR, RETITLE], "JSON keeps the exact names");
    let explained = run(&["--explain"]).status(0);
    assert_no_escape("run --explain", &explained.stderr_bytes);
    explained
        .stderr_has(&format!(
            "2 files changed: {CLEAR_QUOTED}, {RETITLE_QUOTED}"
        ))
        .stderr_has(&format!("added    {RETITLE_QUOTED}"));
    let why = sb.cmd(["why", "--cache", ".cache/t.json"]).status(0);
    assert_no_escape("why", &why.stdout_bytes);
    assert!(
        why.stdout.contains(&format!("added    {CLEAR_QUOTED}")),
        "{}",
        why.stdout
    );
    sb.write("ok.txt", "2\n");
    fs::remove_file(sb.path(RETITLE)).unwrap();
    let plain = run(&[]).status(0);
    assert_no_escape("run", &plain.stderr_bytes);
    plain.stderr_has(&format!("2 files changed: {RETITLE_QUOTED}, ok.txt"));
}

/// Issue L.14: a task's command and a project directory named with escapes are shown
/// escaped by `tasks` and `status`; a replay of the task's own output stays byte-exact.
#[test]
fn issue_l_tasks_and_status_escape_and_local_replays_stay_exact() {
    let sb = git_project();
    let dir = sb.path("proj\u{1b}]0;T\u{7}");
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join("zccache.toml"),
        "[tasks.t]\ncommand = \"printf '\\u001b[31mred\\u001b]0;mine\\u0007\\\\n'\"\nreplay = true\n",
    )
    .unwrap();
    let first = sb.cmd(["run", "t"]).cwd(&dir).status(0);
    let own = b"\x1b[31mred\x1b]0;mine\x07\n";
    assert_eq!(first.stdout_bytes, own);
    let skipped = sb.cmd(["run", "t"]).cwd(&dir).status(0);
    assert_eq!(skipped.stdout_bytes, own, "a local replay is exact");
    let tasks = sb.cmd(["tasks"]).cwd(&dir).status(0);
    assert_no_escape("tasks", &tasks.stdout_bytes);
    assert!(tasks.stdout.contains("\\033[31mred"), "{}", tasks.stdout);
    let status: Ran = sb.cmd(["status"]).status(0);
    assert_no_escape("status", &status.stdout_bytes);
    assert!(
        status.stdout.contains("proj\\033]0;T\\a"),
        "{}",
        status.stdout
    );
}

/// Runs `cmd` to its end within `secs`; on a hang, unblocks whoever waits on `fifo` (so the
/// daemon can stop) and fails.
fn within(cmd: Cmd, secs: u64, fifo: &Path) -> Ran {
    let mut child = cmd.spawn();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            // A reader blocked on the FIFO sees EOF once a writer comes and goes; a writer
            // blocked on it goes on once a reader opens it.
            let open = |write: bool| {
                fs::File::options()
                    .read(!write)
                    .write(write)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(fifo)
            };
            drop((open(true), open(false)));
            panic!("hung on the FIFO {}", fifo.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ran::from(child.wait_with_output().unwrap())
}

fn mkfifo(sb: &Sandbox, path: &Path) {
    let _ = fs::remove_file(path);
    sb.program("mkfifo").args([path]).status(0);
}

/// Issue L.16: `F`, `F.run` and `F.log` are read without following a symlink and only when
/// they are regular files. A link planted over one (to a file that says "skip") makes the
/// task run and is never read or written through; a FIFO never hangs a run or `why`.
#[test]
fn issue_l_state_files_planted_as_links_or_fifos_are_never_followed() {
    let sb = Sandbox::new();
    sb.write("a.txt", "1\n");
    let run = || {
        sb.run_sh(
            &["--cache", ".cache/t.json", "--output", "out"],
            "echo ran >> \"$MARKER\"; mkdir -p out; echo x > out/f",
        )
    };
    run().status(0);
    run().status(0).stderr_has("zccache: skip (");
    assert_eq!(sb.marker_count(), 1);
    for (n, companion) in ["t.json.run", "t.json"].into_iter().enumerate() {
        // The real file moves away and a link to it takes its place: read through the link,
        // it would say "skip".
        let file = sb.path(&format!(".cache/{companion}"));
        let target = sb.outside(&format!("moved-{companion}"));
        fs::rename(&file, &target).unwrap();
        std::os::unix::fs::symlink(&target, &file).unwrap();
        let kept = fs::read(&target).unwrap();
        run().status(0).stderr_has("zccache: run (");
        assert_eq!(
            sb.marker_count(),
            n + 2,
            "{companion} as a link: the task ran"
        );
        assert_eq!(fs::read(&target).unwrap(), kept, "never written through");
        assert!(
            !fs::symlink_metadata(&file).unwrap().is_symlink(),
            "replaced"
        );
        run().status(0).stderr_has("zccache: skip (");
    }
    for (n, companion) in ["t.json", "t.json.run"].into_iter().enumerate() {
        let fifo = sb.path(&format!(".cache/{companion}"));
        mkfifo(&sb, &fifo);
        within(run(), 20, &fifo)
            .stderr_has("zccache: run (")
            .code
            .filter(|c| *c == 0)
            .expect("ran");
        assert_eq!(
            sb.marker_count(),
            n + 4,
            "{companion} as a FIFO: the task ran"
        );
    }
    let ledger = sb.path(".cache/t.json.log");
    mkfifo(&sb, &ledger);
    let skipped = within(run(), 20, &ledger).stderr_has("zccache: skip (");
    assert_eq!(skipped.code, Some(0));
    let why = within(sb.cmd(["why", "--cache", ".cache/t.json"]), 20, &ledger);
    assert_eq!(why.code, Some(2), "{}", why.stderr);
    assert_eq!(sb.marker_count(), 5);
}

/// Another "machine" on the sandbox's tree: its own state dir, its daemon stopped on drop.
struct Machine<'a> {
    sb: &'a Sandbox,
    state: std::path::PathBuf,
}

impl<'a> Machine<'a> {
    fn new(sb: &'a Sandbox, name: &str) -> Self {
        let state = sb.outside(name);
        fs::create_dir(&state).unwrap();
        Machine { sb, state }
    }
}

impl Drop for Machine<'_> {
    fn drop(&mut self) {
        let _ = self
            .sb
            .cmd(["stop"])
            .env("ZCCACHE_DIR", &self.state)
            .output();
    }
}

/// Issue L.16: a shared result's replay is bytes anyone who can write the remote chose. A
/// forged one that retitles and clears the terminal is shown with those sequences visible
/// (`^[`), colours kept, on the skip that takes it and on later local skips.
#[test]
fn issue_l_a_forged_shared_replay_cannot_drive_the_terminal() {
    if !available(Tool::Redis) {
        return;
    }
    let redis = Redis::start().expect("checked");
    let sb = Sandbox::new();
    sb.write("src.txt", "input\n");
    let run = |machine: &Machine| {
        sb.run_sh(
            &["--share", "--replay"],
            "echo ran >> \"$MARKER\"; echo honest",
        )
        .env("ZCCACHE_DIR", &machine.state)
        .env("ZCCACHE_REMOTE", redis.url())
    };
    let one = Machine::new(&sb, "one");
    run(&one).status(0);
    drop(one);
    let forged = b"\x1b]0;PWNED\x07\x1b[2J\x1b[31mred\x1b[0m\n".to_vec();
    let (key, mut entry) = entry_with(&redis, "record-v2");
    let hex = blake3::hash(&forged).to_hex().to_string();
    Command::new("redis-cli")
        .args(["-u", &redis.url(), "SET", &format!("zccache:blob:{hex}")])
        .arg(std::ffi::OsStr::from_bytes(&forged))
        .output()
        .expect("redis-cli");
    entry["stdout"] = serde_json::json!({"name": "stdout", "blob": hex, "size": forged.len()});
    redis.cli(&["SET", &key, &entry.to_string()]);
    fs::remove_dir_all(sb.path(".zccache")).unwrap();
    let two = Machine::new(&sb, "two");
    let shown = b"^[]0;PWNED^G^[[2J\x1b[31mred\x1b[0m\n";
    for _ in 0..2 {
        let skipped = run(&two).status(0).stderr_has("zccache: skip (");
        assert_eq!(skipped.stdout_bytes, shown, "{:?}", skipped.stdout);
    }
    assert_eq!(sb.marker_count(), 1, "machine two took the shared result");
}

/// Issue L.15: `rm -rf .zccache/` under a watched root (the task's state kept elsewhere).
/// The daemon makes its cookie directory again: no check falls back to a full stat pass,
/// none waits out the cookie timeout (2 s), and an edit is still seen.
#[test]
fn issue_l_the_watcher_survives_rm_rf_of_its_cookie_directory() {
    let sb = Sandbox::new();
    sb.write("a.txt", "1\n");
    let cache = sb.outside("state/t.json");
    let run = || {
        sb.run_sh(
            &["--cache", cache.to_str().unwrap()],
            "echo ran >> \"$MARKER\"",
        )
    };
    run().status(0);
    run().status(0).stderr_has("zccache: skip (");
    for round in 0..3 {
        fs::remove_dir_all(sb.path(".zccache")).unwrap();
        for check in 0..4 {
            let started = Instant::now();
            let ran = run().status(0);
            let took = started.elapsed();
            let ran = ran
                .stderr_lacks("full stat pass")
                .stderr_has("zccache: skip (");
            assert!(
                took < Duration::from_millis(1500),
                "round {round}, check {check} took {took:?} (a cookie timeout):\n{}",
                ran.stderr
            );
        }
    }
    sb.write("a.txt", "2\n");
    run()
        .status(0)
        .stderr_lacks("full stat pass")
        .stderr_has("run (1 file changed: a.txt)");
    assert_eq!(sb.marker_count(), 2);
}
