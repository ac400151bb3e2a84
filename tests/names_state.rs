//! Issue L, "Names and state": task names that would be paths, file names that hold terminal
//! escapes, the watcher after `rm -rf .zccache/`, state files planted as symlinks or FIFOs,
//! and a forged shared replay. Each case is the attack (or the accident) itself, run for real.

use std::fs;

use crate::support::{Ran, Sandbox};

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
