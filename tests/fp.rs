//! `zccache fp`: check / mark-success / mark-failure / invalidate against real temp trees.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::Sandbox;

const RUN: i32 = 0;
const SKIP: i32 = 1;
const ERROR: i32 = 2;

/// A project with two sources, checked and marked successful once.
fn recorded() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("src/a.rs", "fn a() {}\n")
        .write("src/b.rs", "fn b() {}\n");
    succeed(&sb, &[]);
    sb
}

fn succeed(sb: &Sandbox, check_args: &[&str]) {
    let mut args = vec!["check"];
    args.extend_from_slice(check_args);
    sb.fp(&args).status(RUN);
    sb.fp(&["mark-success"]).status(0);
}

fn check(sb: &Sandbox) -> crate::support::Cmd {
    sb.fp(&["check"])
}

#[test]
fn first_check_runs_then_unchanged_skips() {
    let sb = Sandbox::new();
    sb.write("a.txt", "x");
    check(&sb)
        .status(RUN)
        .stderr_has("zccache: run (no previous success)");
    sb.fp(&["mark-success"]).status(0);
    check(&sb)
        .status(SKIP)
        .stderr_has("zccache: skip (1 file unchanged)");
    check(&sb).status(SKIP);
}

#[test]
fn content_edit_runs_and_names_the_file() {
    let sb = recorded();
    sb.write("src/a.rs", "fn a() { edited() }\n");
    check(&sb)
        .status(RUN)
        .stderr_has("run (1 file changed: src/a.rs)");
}

#[test]
fn added_file_runs() {
    let sb = recorded();
    sb.write("src/c.rs", "");
    check(&sb).status(RUN).stderr_has("src/c.rs");
}

#[test]
fn deleted_file_runs() {
    let sb = recorded();
    sb.remove("src/b.rs");
    check(&sb).status(RUN).stderr_has("src/b.rs");
}

#[test]
fn rename_runs_where_the_peer_skips() {
    let sb = recorded();
    fs::rename(sb.path("src/a.rs"), sb.path("src/c.rs")).unwrap();
    check(&sb)
        .status(RUN)
        .stderr_has("2 files changed: src/a.rs, src/c.rs");
}

#[test]
fn executable_bit_change_runs() {
    let sb = Sandbox::new();
    sb.write("run.sh", "#!/bin/sh\necho hi\n");
    succeed(&sb, &[]);
    fs::set_permissions(sb.path("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    check(&sb).status(RUN).stderr_has("run.sh");
}

#[test]
fn touch_without_content_change_skips() {
    let sb = recorded();
    sb.age("src/a.rs", 0);
    sb.age("src/b.rs", 3600);
    check(&sb).status(SKIP);
}

#[test]
fn same_size_and_mtime_with_other_content_runs() {
    let sb = Sandbox::new();
    sb.write("src/a.rs", "aaaa");
    sb.age("src/a.rs", 100);
    succeed(&sb, &[]);
    check(&sb).status(SKIP);
    // A copy with other content of the same size and the very same mtime (cp -p).
    let backup = sb.root().parent().unwrap().join("backup");
    fs::write(&backup, "bbbb").unwrap();
    let mtime = fs::metadata(sb.path("src/a.rs"))
        .unwrap()
        .modified()
        .unwrap();
    fs::File::options()
        .write(true)
        .open(&backup)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let cp = std::process::Command::new("cp")
        .arg("-p")
        .arg(&backup)
        .arg(sb.path("src/a.rs"))
        .status()
        .unwrap();
    assert!(cp.success());
    check(&sb).status(RUN).stderr_has("src/a.rs");
}

#[test]
fn failure_runs_next_time() {
    let sb = recorded();
    sb.write("src/a.rs", "broken");
    check(&sb).status(RUN);
    sb.fp(&["mark-failure"]).status(0);
    check(&sb).status(RUN).stderr_has("run (last run failed)");
    sb.fp(&["mark-failure"]).status(0);
    check(&sb).status(RUN).stderr_has("run (last run failed)");
}

#[test]
fn failure_after_a_skip_verdict_runs_next_time() {
    let sb = recorded();
    check(&sb).status(SKIP);
    sb.fp(&["mark-failure"]).status(0);
    check(&sb).status(RUN);
}

#[test]
fn invalidate_forgets_success() {
    let sb = recorded();
    sb.fp(&["invalidate"]).status(0);
    check(&sb).status(RUN).stderr_has("no previous success");
    sb.fp(&["invalidate"]).status(0);
}

#[test]
fn switching_back_to_an_earlier_success_skips() {
    let sb = recorded();
    sb.write("src/a.rs", "branch b\n");
    succeed(&sb, &[]);
    sb.write("src/a.rs", "fn a() {}\n");
    check(&sb).status(SKIP);
    sb.write("src/a.rs", "branch b\n");
    check(&sb).status(SKIP);
}

#[test]
fn only_the_last_eight_successes_are_kept() {
    let sb = Sandbox::new();
    for i in 0..9 {
        sb.write("v.txt", format!("version {i}"));
        succeed(&sb, &[]);
    }
    sb.write("v.txt", "version 1");
    check(&sb).status(SKIP);
    sb.write("v.txt", "version 0");
    check(&sb).status(RUN);
}

#[test]
fn ext_filter_ignores_other_files() {
    let sb = recorded();
    sb.write("notes.md", "x");
    sb.fp(&["check", "--ext", "rs"]).status(SKIP);
    sb.write("notes.md", "changed");
    sb.fp(&["check", "--ext", "rs"]).status(SKIP);
    sb.write("src/a.rs", "changed");
    sb.fp(&["check", "--ext", "rs"]).status(RUN);
}

#[test]
fn include_glob_and_ext_are_either_or() {
    let sb = recorded();
    sb.write("Cargo.toml", "[package]").write("README.md", "hi");
    let args = ["check", "--ext", "rs", "--include", "*.toml"];
    succeed(&sb, &args[1..]);
    sb.write("README.md", "changed");
    sb.fp(&args).status(SKIP);
    sb.write("Cargo.toml", "[package] # changed");
    sb.fp(&args).status(RUN).stderr_has("Cargo.toml");
}

#[test]
fn exclude_bare_name_drops_directories_anywhere() {
    let sb = recorded();
    sb.write("target/out.o", "1").write("sub/target/x", "1");
    sb.fp(&["check", "--exclude", "target"]).status(SKIP);
    sb.write("target/out.o", "2").write("sub/target/x", "2");
    sb.fp(&["check", "--exclude", "target"]).status(SKIP);
}

#[test]
fn exclude_glob_is_relative_to_root() {
    let sb = recorded();
    sb.write("docs/a.md", "1").write("src/docs/a.md", "1");
    succeed(&sb, &["--exclude", "docs/*.md"]);
    sb.write("docs/a.md", "2");
    sb.fp(&["check", "--exclude", "docs/*.md"]).status(SKIP);
    sb.write("src/docs/a.md", "2");
    sb.fp(&["check", "--exclude", "docs/*.md"])
        .status(RUN)
        .stderr_has("src/docs/a.md");
}

#[test]
fn gitignored_files_do_not_count_even_outside_git() {
    let sb = recorded();
    sb.write(".gitignore", "*.log\nbuild/\n")
        .write("debug.log", "1")
        .write("build/x", "1");
    succeed(&sb, &[]);
    sb.write("debug.log", "2").write("build/x", "2");
    check(&sb).status(SKIP);
    sb.write("src/a.rs", "edit");
    check(&sb).status(RUN);
}

#[test]
fn gitignored_files_do_not_count_in_a_git_repo() {
    let sb = recorded();
    let git = std::process::Command::new("git")
        .args(["init", "-q"])
        .current_dir(sb.root())
        .status()
        .unwrap();
    assert!(git.success());
    sb.write(".gitignore", "gen/\n").write("gen/out.rs", "1");
    succeed(&sb, &[]);
    sb.write("gen/out.rs", "2");
    check(&sb).status(SKIP);
}

#[test]
fn dot_git_and_own_state_are_not_inputs() {
    let sb = recorded();
    sb.write(".git/HEAD", "ref: x")
        .write(".zccache/run/x.json", "{}");
    check(&sb).status(SKIP);
    sb.write(".git/HEAD", "ref: y")
        .write(".zccache/run/x.json", "[]");
    check(&sb).status(SKIP);
    // The cache file itself lives under the root (.cache/fp.json) and changes on every check.
    check(&sb).status(SKIP);
}

#[test]
fn edit_between_check_and_mark_success_is_seen_next_time() {
    let sb = recorded();
    sb.write("src/a.rs", "v2");
    check(&sb).status(RUN);
    sb.write("src/a.rs", "v3, written while the task ran");
    sb.fp(&["mark-success"]).status(0);
    check(&sb).status(RUN).stderr_has("src/a.rs");
}

#[test]
fn corrupt_truncated_or_empty_state_runs_without_panic() {
    let sb = recorded();
    let full = sb.read(".cache/fp.json");
    let truncated = &full[..full.len() / 2];
    for bad in [
        "",
        truncated,
        "not json at all",
        "{\"format\":\"other\"}",
        "[1,2,3]",
    ] {
        sb.write(".cache/fp.json", bad);
        check(&sb)
            .status(RUN)
            .stderr_has("unreadable state")
            .stderr_lacks("panicked");
    }
    sb.fp(&["mark-success"]).status(0);
    check(&sb).status(SKIP);
}

#[test]
fn corrupt_pending_is_a_plain_error() {
    let sb = recorded();
    check(&sb).status(SKIP);
    sb.write(".cache/fp.json.pending", "garbage");
    sb.fp(&["mark-success"])
        .status(ERROR)
        .stderr_has("no pending check")
        .stderr_lacks("panicked");
}

#[test]
fn mark_without_check_is_an_error() {
    let sb = Sandbox::new();
    sb.fp(&["mark-success"])
        .status(ERROR)
        .stderr_has("zccache: error: no pending check");
    sb.fp(&["mark-failure"]).status(ERROR);
}

#[test]
fn missing_root_and_bad_glob_exit_2_with_one_line() {
    let sb = Sandbox::new();
    let ran = sb.fp(&["check", "--root", "nope"]).status(ERROR);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(ran.stderr.contains("nope"));
    sb.fp(&["check", "--include", "src/[a"])
        .status(ERROR)
        .stderr_has("src/[a");
    sb.fp(&["check", "--bogus"]).status(ERROR);
    sb.cmd(["fp", "--cache-file", "x", "--cache-type", "nope", "check"])
        .status(ERROR);
}

#[test]
fn empty_file_set_is_a_valid_input_set() {
    let sb = Sandbox::new();
    succeed(&sb, &["--ext", "nothing"]);
    sb.fp(&["check", "--ext", "nothing"])
        .status(SKIP)
        .stderr_has("0 files unchanged");
    sb.write("a.nothing", "");
    sb.fp(&["check", "--ext", "nothing"]).status(RUN);
}

#[test]
fn hash_cache_type_detects_edits() {
    let sb = Sandbox::new();
    sb.write("a.c", "int a;");
    let hash = |verb: &str| sb.cmd(["fp", "--cache-file", "h.json", "--cache-type", "hash", verb]);
    hash("check").status(RUN);
    hash("mark-success").status(0);
    hash("check").status(SKIP);
    let state = sb.read("h.json");
    assert!(
        !state.contains("a.c"),
        "hash state keeps no file table: {state}"
    );
    sb.write("a.c", "int b;");
    hash("check").status(RUN).stderr_has("files changed");
}

#[test]
fn unicode_and_spaces_in_names() {
    let sb = Sandbox::new();
    sb.write("dir with space/naïve café.txt", "1")
        .write("日本/ファイル.rs", "1");
    succeed(&sb, &[]);
    check(&sb).status(SKIP);
    sb.write("日本/ファイル.rs", "2");
    check(&sb).status(RUN).stderr_has("日本/ファイル.rs");
}

#[test]
fn symlinks_hash_their_target_text_and_are_not_followed() {
    let sb = Sandbox::new();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("big"), "outside").unwrap();
    sb.write("a.txt", "a").write("b.txt", "b");
    std::os::unix::fs::symlink("a.txt", sb.path("link")).unwrap();
    std::os::unix::fs::symlink(outside.path(), sb.path("out")).unwrap();
    succeed(&sb, &[]);
    // Content behind a link that leaves the root is not an input.
    fs::write(outside.path().join("big"), "changed").unwrap();
    check(&sb).status(SKIP);
    fs::remove_file(sb.path("link")).unwrap();
    std::os::unix::fs::symlink("b.txt", sb.path("link")).unwrap();
    check(&sb).status(RUN).stderr_has("link");
}

#[test]
fn json_output_describes_the_decision() {
    let sb = recorded();
    sb.write("src/a.rs", "new");
    let ran = sb.fp(&["check", "--json"]).status(RUN);
    let json = ran.json();
    assert_eq!(json["decision"], "run");
    assert_eq!(json["reason"], "changed");
    assert_eq!(json["files"], 2);
    assert_eq!(json["changes"][0]["path"], "src/a.rs");
    assert_eq!(json["changes"][0]["kind"], "modified");
    assert!(json["duration_ms"].as_f64().is_some());
    assert!(ran.stderr.is_empty(), "{}", ran.stderr);
}

#[test]
fn two_thousand_files() {
    let sb = Sandbox::new();
    for i in 0..2000 {
        sb.write(&format!("d{}/f{i}.txt", i % 37), format!("file {i}"));
    }
    succeed(&sb, &[]);
    let json = sb.fp(&["check", "--json"]).status(SKIP).json();
    assert_eq!(json["files"], 2000);
    sb.write("d5/f1000.txt", "edited");
    let json = sb.fp(&["check", "--json"]).status(RUN).json();
    assert_eq!(json["changes"].as_array().unwrap().len(), 1);
}

#[test]
fn concurrent_checks_and_marks_leave_valid_state() {
    let sb = recorded();
    let children: Vec<_> = (0..8)
        .map(|i| {
            let verb = if i % 2 == 0 { "mark-success" } else { "mark-failure" };
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "\"$0\" fp --cache-file .cache/fp.json check; \"$0\" fp --cache-file .cache/fp.json {verb}"
                ))
                .arg(crate::support::ZCCACHE)
                .env("ZCCACHE_DIR", sb.state())
                .env("ZCCACHE_IDLE_TIMEOUT", "120")
                .current_dir(sb.root())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        child.wait().unwrap();
    }
    let state: serde_json::Value = serde_json::from_str(&sb.read(".cache/fp.json")).unwrap();
    assert!(state["successes"].is_array());
    let code = check(&sb).output().status.code();
    assert!(matches!(code, Some(RUN | SKIP)), "{code:?}");
}

#[test]
fn unchanged_old_files_are_not_read_again() {
    let sb = Sandbox::new();
    sb.write("a.txt", "a").write("b.txt", "b");
    sb.age("a.txt", 100);
    sb.age("b.txt", 100);
    // Old in their ctime too (which no one sets back): past the 2 s racy window.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    succeed(&sb, &[]);
    let json = sb.fp(&["check", "--json"]).status(SKIP).json();
    assert_eq!(json["hashed"], 0);
    sb.age("a.txt", 50);
    let json = sb.fp(&["check", "--json"]).status(SKIP).json();
    assert_eq!(json["hashed"], 1);
}

#[test]
fn progress_line_only_on_a_terminal() {
    let sb = recorded();
    sb.fp(&["--no-daemon", "invalidate"]).status(0);
    let quiet_pipe = sb
        .fp(&["--no-daemon", "check"])
        .env("ZCCACHE_PROGRESS_DELAY_MS", "0")
        .status(RUN);
    assert!(
        !quiet_pipe.stderr.contains("hashed"),
        "{}",
        quiet_pipe.stderr
    );
    sb.fp(&["--no-daemon", "invalidate"]).status(0);
    let under_pty = sb
        .program("python3")
        .args([
            "-c",
            "import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))",
            crate::support::ZCCACHE,
            "fp",
            "--no-daemon",
            "--cache-file",
            ".cache/fp.json",
            "check",
        ])
        .env("ZCCACHE_PROGRESS_DELAY_MS", "0")
        .status(RUN);
    assert!(
        under_pty.stdout.contains("zccache: hashed"),
        "{:?}",
        under_pty.stdout
    );
    assert!(
        under_pty.stdout.contains("files ("),
        "{:?}",
        under_pty.stdout
    );
}
