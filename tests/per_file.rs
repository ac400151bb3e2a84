//! Per-file tasks (`--files`, `files = [...]`): only the files that have not passed are given
//! to the command. A checker script of the tests' own logs every file it is given (one a
//! line, a `# batch` line first) and fails on a file holding the line `LINT-FAIL`, so the
//! logic is tested without network tools; shellcheck runs too where it is installed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{Cmd, Sandbox, Tool, ZCCACHE, available};

const CHECKER: &str = r##"#!/bin/sh
echo "# batch" >> "$LINT_LOG"
status=0
for f in "$@"; do
  echo "$f" >> "$LINT_LOG"
  if [ -n "$EDIT_DURING" ] && [ "$f" = "$EDIT_DURING" ]; then echo fixed > "$f"; fi
  if [ -n "$TOUCH_DURING" ] && [ "$f" = "$TOUCH_DURING" ]; then touch "$f"; fi
  if [ -n "$SWAP_DURING" ] && [ "$f" = "$SWAP_DURING" ]; then
    cp "$f" "$f.orig"; echo "swapped in" > "$f"
  fi
  if grep -qx LINT-FAIL "$f" 2>/dev/null; then echo "$f: LINT-FAIL"; status=3; fi
  if [ -n "$SWAP_DURING" ] && [ "$f" = "$SWAP_DURING" ]; then
    cat "$f.orig" > "$f"; rm "$f.orig"
  fi
  if [ -n "$FAIL_AFTER" ] && [ "$f" = "$FAIL_AFTER" ]; then echo LINT-FAIL > "$f"; fi
done
if [ -n "$HOLD_UNTIL" ]; then
  echo "# holding" >> "$LINT_LOG"
  while [ ! -e "$HOLD_UNTIL" ]; do sleep 0.02; done
fi
if [ -n "$PEER_DIR" ]; then
  : > "$PEER_DIR/$$"
  tries=0
  while [ "$(ls "$PEER_DIR" | wc -l)" -lt 2 ] && [ $tries -lt 200 ]; do
    sleep 0.05; tries=$((tries + 1))
  done
  [ "$(ls "$PEER_DIR" | wc -l)" -ge 2 ] && echo overlapped >> "$PEER_DIR.log"
fi
exit $status
"##;

/// A project of `n` files `src/fNN.txt` and a shared config `lint.toml`, with the checker.
fn project(n: usize) -> (Sandbox, PathBuf) {
    let sb = Sandbox::new();
    for i in 0..n {
        sb.write(&format!("src/f{i:02}.txt"), format!("file {i}\n"));
    }
    sb.write("lint.toml", "strict = true\n");
    let checker = sb.outside("check.sh");
    fs::write(&checker, CHECKER).unwrap();
    fs::set_permissions(&checker, fs::Permissions::from_mode(0o755)).unwrap();
    (sb, checker)
}

fn log(sb: &Sandbox) -> PathBuf {
    sb.outside("lint.log")
}

/// `zccache run --files 'src/*.txt' --include lint.toml EXTRA -- CHECKER`.
fn lint(sb: &Sandbox, checker: &PathBuf, extra: &[&str]) -> Cmd {
    sb.cmd(["run", "--files", "src/*.txt", "--include", "lint.toml"])
        .args(extra)
        .args(["--"])
        .args([checker])
        .env("LINT_LOG", log(sb))
}

/// The files the checker was given since the last call (the log is emptied).
fn linted(sb: &Sandbox) -> Vec<String> {
    let text = fs::read_to_string(log(sb)).unwrap_or_default();
    let _ = fs::remove_file(log(sb));
    text.lines()
        .filter(|l| !l.starts_with("# batch"))
        .map(String::from)
        .collect()
}

/// How many times the checker ran since the log was last read.
fn batches(sb: &Sandbox) -> usize {
    fs::read_to_string(log(sb))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("# batch"))
        .count()
}

#[test]
fn issue_m_an_edit_lints_one_file() {
    let (sb, checker) = project(5);
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("zccache: run (5 of 5 files: src/f00.txt, src/f01.txt, src/f02.txt, ...)");
    assert_eq!(linted(&sb).len(), 5);
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("zccache: skip (all 5 files passed, ");
    assert!(linted(&sb).is_empty());
    sb.write("src/f03.txt", "file 3, edited\n");
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("zccache: run (1 of 5 files: src/f03.txt)");
    assert_eq!(linted(&sb), ["src/f03.txt"]);
    // Back to content that passed before: its key is still known.
    sb.write("src/f03.txt", "file 3\n");
    lint(&sb, &checker, &[]).status(0).stderr_has("skip (all 5");
}

#[test]
fn issue_m_a_failing_file_is_linted_again_until_fixed() {
    let (sb, checker) = project(4);
    sb.write("src/f01.txt", "LINT-FAIL\n");
    lint(&sb, &checker, &[])
        .status(3)
        .stderr_has("run (4 of 4 files");
    assert_eq!(linted(&sb).len(), 4);
    // The failing batch passed none of its files: all four again, then only the culprit
    // once the others passed in a batch of their own.
    lint(&sb, &checker, &["--batch-size", "1", "--explain"])
        .status(3)
        .stderr_has("failed last time      src/f01.txt");
    assert_eq!(linted(&sb).len(), 4);
    lint(&sb, &checker, &[])
        .status(3)
        .stderr_has("run (1 of 4 files: src/f01.txt)");
    assert_eq!(linted(&sb), ["src/f01.txt"]);
    sb.write("src/f01.txt", "fixed\n");
    lint(&sb, &checker, &[]).status(0);
    assert_eq!(linted(&sb), ["src/f01.txt"]);
    lint(&sb, &checker, &[]).status(0).stderr_has("skip (all 4");
}

#[test]
fn issue_m_a_shared_input_edit_relints_all() {
    let (sb, checker) = project(4);
    lint(&sb, &checker, &[]).status(0);
    linted(&sb);
    sb.write("lint.toml", "strict = false\n");
    lint(&sb, &checker, &["--explain"])
        .status(0)
        .stderr_has("run (4 of 4 files")
        .stderr_has("shared inputs changed");
    assert_eq!(linted(&sb).len(), 4);
    // The command line is part of every file's key too.
    lint(&sb, &checker, &["--env", "LINT_LEVEL"])
        .status(0)
        .stderr_has("run (4 of 4 files");
}

/// A shared input that `--include` names itself stays shared when the per-file glob also
/// matches it (`eslint.config.js` of `**/*.js`): its edit lints every file again, in-process
/// and through the daemon. (It was a per-file file only: its edit linted itself alone.)
#[test]
fn issue_m_a_named_shared_input_the_per_file_glob_matches_relints_all() {
    let (sb, checker) = project(4);
    sb.write("src/rules.txt", "strict\n");
    let lint_with_rules = |extra: &[&str]| {
        sb.cmd([
            "run",
            "--files",
            "src/*.txt",
            "--include",
            "./src/rules.txt",
        ])
        .args(extra)
        .args(["--"])
        .args([&checker])
        .env("LINT_LOG", log(&sb))
    };
    lint_with_rules(&[])
        .status(0)
        .stderr_has("run (5 of 5 files");
    lint_with_rules(&[]).status(0).stderr_has("skip (all 5");
    linted(&sb);
    for (i, mode) in [&[][..], &["--no-daemon"][..]].into_iter().enumerate() {
        sb.write("src/rules.txt", format!("lax {i}\n"));
        lint_with_rules(&[mode, &["--explain"]].concat())
            .status(0)
            .stderr_has("run (5 of 5 files")
            .stderr_has("shared inputs changed");
        assert_eq!(linted(&sb).len(), 5, "{mode:?}");
        sb.write("src/f01.txt", format!("file 1, edit {i}\n"));
        lint_with_rules(mode)
            .status(0)
            .stderr_has("run (1 of 5 files: src/f01.txt)");
        linted(&sb);
    }
}

#[test]
fn issue_m_a_file_edited_during_its_batch_is_not_passed() {
    let (sb, checker) = project(3);
    // The checker fixes the file before it reads it: the bytes zccache read before the run
    // (a failing file) never passed.
    sb.write("src/f01.txt", "LINT-FAIL\n");
    lint(&sb, &checker, &[])
        .env("EDIT_DURING", "src/f01.txt")
        .status(0);
    linted(&sb);
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("run (1 of 3 files: src/f01.txt)");
    fails_on_f01(&sb, &checker);
}

/// `src/f01.txt` made failing again is linted (never passed with the failing bytes) and fails.
fn fails_on_f01(sb: &Sandbox, checker: &PathBuf) {
    sb.write("src/f01.txt", "LINT-FAIL\n");
    lint(sb, checker, &[])
        .status(3)
        .stderr_has("run (1 of 3 files: src/f01.txt)");
}

#[test]
fn issue_m_a_file_edited_during_its_batch_is_not_passed_through_the_daemon() {
    let (sb, checker) = project(3);
    lint(&sb, &checker, &[]).status(0);
    // The first run left a daemon started: from now on it hands over the per-file set.
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("skip (all 3 files passed");
    linted(&sb);
    sb.write("src/f01.txt", "LINT-FAIL\n");
    lint(&sb, &checker, &[])
        .env("EDIT_DURING", "src/f01.txt")
        .status(0)
        .stderr_has("run (1 of 3 files: src/f01.txt)");
    assert_eq!(linted(&sb), ["src/f01.txt"]);
    // The failing bytes the daemon handed over were never passed.
    fails_on_f01(&sb, &checker);
}

#[test]
fn issue_m_a_corrupt_record_relints_all() {
    let (sb, checker) = project(4);
    lint(&sb, &checker, &[]).status(0);
    linted(&sb);
    settled(&sb);
    // One flipped bit in the last file's pass key (the record ends with that key, the
    // file's flags, its passed digest and the record's checksum): the record is no record.
    let path = per_file_record(&sb);
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len() - 32 - 32 - 1 - 16;
    bytes[at] ^= 0x01;
    fs::write(&path, bytes).unwrap();
    sb.write("src/f01.txt", "file 1, edited\n");
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("run (4 of 4 files");
    assert_eq!(linted(&sb).len(), 4);
    lint(&sb, &checker, &[]).status(0).stderr_has("skip (all 4");
}

#[test]
fn issue_m_a_first_run_returns_before_its_record_is_written_and_the_next_run_waits_for_it() {
    let (sb, checker) = project(60);
    age(&sb, 60);
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("run (60 of 60 files");
    // The record is written by the process the lock was passed on to: its file says so
    // (a run that writes it itself leaves the lock file empty).
    let lock = fs::read_dir(sb.path(".zccache/run"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".task.lock"))
        .unwrap();
    assert!(fs::read_to_string(&lock).unwrap().starts_with("settling"));
    // The next run, started at once, waits for that record without a word, and skips.
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("skip (all 60 files passed")
        .stderr_lacks("waiting for another run");
    linted(&sb);
    // It had nothing to say: no message is left for the next run.
    let left = fs::read_dir(sb.path(".zccache/run")).unwrap();
    assert!(
        !left
            .map(|e| e.unwrap().path())
            .any(|p| p.to_string_lossy().contains("settle"))
    );
    // A file edited the moment a first run returns never passes with its new bytes (the
    // record is written meanwhile: it passes with the bytes the checker saw, or not at all).
    // (No daemon: one running would hand the set over, and the run would not be a first.)
    sb.cmd(["stop"]).status(0);
    fs::remove_dir_all(sb.path(".zccache")).unwrap();
    age(&sb, 60);
    lint(&sb, &checker, &["--no-daemon"]).status(0);
    sb.write("src/f07.txt", "LINT-FAIL\n");
    assert!(fs::read_to_string(&lock).unwrap().starts_with("settling"));
    linted(&sb);
    lint(&sb, &checker, &[])
        .status(3)
        .stderr_has("run (1 of 60 files: src/f07.txt)");
    assert_eq!(linted(&sb), ["src/f07.txt"]);
}

#[test]
fn issue_m_a_first_run_record_that_cannot_be_written_is_said_by_the_next_run() {
    let (sb, checker) = project(3);
    // The record's name is taken by a directory: it cannot be written (the whole set's
    // pass, a file of its own, still is).
    fs::create_dir_all(sb.path("state/lint.json.files")).unwrap();
    let cache = ["--cache", "state/lint.json"];
    lint(&sb, &checker, &cache)
        .status(0)
        .stderr_has("run (3 of 3 files");
    lint(&sb, &checker, &cache)
        .status(0)
        .stderr_has("warning: the last run's record: cannot record the passed files")
        .stderr_has("skip (all 3 files passed");
    // Said once.
    lint(&sb, &checker, &cache)
        .status(0)
        .stderr_lacks("warning")
        .stderr_has("skip (all 3 files passed");
    assert!(!sb.path("state/lint.json.files.settle-errors").exists());
}

#[test]
fn issue_m_a_file_swapped_out_and_back_while_its_batch_ran_is_not_passed() {
    let (sb, checker) = project(3);
    lint(&sb, &checker, &[]).status(0);
    sb.write("src/f02.txt", "LINT-FAIL\n");
    linted(&sb);
    // The checker is shown other bytes, which pass; the failing ones are back after it.
    lint(&sb, &checker, &[])
        .env("SWAP_DURING", "src/f02.txt")
        .status(0)
        .stderr_has("run (1 of 3 files: src/f02.txt)");
    assert_eq!(sb.read("src/f02.txt"), "LINT-FAIL\n");
    lint(&sb, &checker, &[])
        .status(3)
        .stderr_has("run (1 of 3 files: src/f02.txt)");
}

#[test]
fn issue_m_the_settling_process_refuses_work_it_cannot_read() {
    let sb = Sandbox::new();
    sb.cmd(["settle-files"])
        .stdin(b"garbage".to_vec())
        .status(2)
        .stderr_has("zccache: error: cannot read the work");
}

#[test]
fn issue_m_a_first_run_passes_only_files_whose_stamp_held_while_they_were_read() {
    let (sb, checker) = project(4);
    // Older than the racy window: with no record, the checker starts at once and zccache
    // reads these files beside it, vouched for by their stat stamp across the run.
    age(&sb, 4);
    // f01 is touched (same bytes, its stamp moves) and f02 made failing while the checker
    // runs: neither passes with what was read during the run.
    lint(&sb, &checker, &[])
        .env("TOUCH_DURING", "src/f01.txt")
        .env("FAIL_AFTER", "src/f02.txt")
        .status(0)
        .stderr_has("run (4 of 4 files");
    linted(&sb);
    lint(&sb, &checker, &[])
        .status(3)
        .stderr_has("run (2 of 4 files: src/f01.txt, src/f02.txt)");
    assert_eq!(linted(&sb), ["src/f01.txt", "src/f02.txt"]);
}

#[test]
fn issue_m_a_deleted_file_is_forgotten() {
    let (sb, checker) = project(3);
    lint(&sb, &checker, &[]).status(0);
    linted(&sb);
    sb.remove("src/f02.txt");
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("skip (all 2 files passed");
    let text = String::from_utf8_lossy(&fs::read(per_file_record(&sb)).unwrap()).into_owned();
    assert!(text.contains("src/f01.txt"), "{text}");
    assert!(!text.contains("src/f02.txt"), "{text}");
    // Back again with other bytes, it is a new file. (With the same bytes, the whole set
    // is one that passed before: a skip, as a `git checkout` back is.)
    sb.write("src/f02.txt", "file 2, back\n");
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("run (1 of 3 files: src/f02.txt)");
}

/// Waits until every task's record is written: a first run's is written after zccache
/// returned, by a process holding the task's lock.
fn settled(sb: &Sandbox) {
    for dir in [".zccache/run", "state"] {
        settled_in(sb, dir);
    }
}

fn settled_in(sb: &Sandbox, dir: &str) {
    let Ok(entries) = fs::read_dir(sb.path(dir)) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".task.lock") {
            let lock = fs::File::open(&path).unwrap();
            lock.lock().unwrap();
            lock.unlock().unwrap();
        }
    }
}

/// Sets the mtime of each of the `n` project files an hour back (out of the racy window:
/// with no record, such files are read after the checker ran, not before).
fn age(sb: &Sandbox, n: usize) {
    for i in 0..n {
        sb.age(&format!("src/f{i:02}.txt"), 3600);
    }
}

/// The task's per-file record, `F.files`.
fn per_file_record(sb: &Sandbox) -> PathBuf {
    fs::read_dir(sb.path(".zccache/run"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".json.files"))
        .expect("the per-file record")
}

#[test]
fn issue_m_nothing_changed_skips_through_the_daemon_without_the_per_file_record() {
    let (sb, checker) = project(5);
    lint(&sb, &checker, &[]).status(0);
    linted(&sb);
    // A failure leaves no whole-set pass behind.
    sb.write("src/f04.txt", "LINT-FAIL\n");
    lint(&sb, &checker, &[]).status(3);
    lint(&sb, &checker, &[])
        .status(3)
        .stderr_has("run (1 of 5 files: src/f04.txt)");
    sb.write("src/f04.txt", "file 4\n");
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("skip (all 5 files passed, ");
    linted(&sb);
    // The daemon finds the whole set as it passed: the per-file record is not even read,
    // so garbage in it costs nothing.
    fs::write(per_file_record(&sb), b"garbage").unwrap();
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("skip (all 5 files passed, ");
    assert!(linted(&sb).is_empty());
    // An edit is seen (the record, unreadable, counts as empty: every file runs).
    sb.write("src/f02.txt", "edited\n");
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("run (5 of 5 files");
    assert_eq!(linted(&sb).len(), 5);
}

#[test]
fn issue_m_files_go_at_the_placeholder() {
    let (sb, checker) = project(2);
    let base = ["run", "--files", "src/*.txt", "--"];
    sb.cmd(base)
        .args([&checker])
        .args(["{files}", "TRAILER"])
        .env("LINT_LOG", log(&sb))
        .status(0);
    assert_eq!(linted(&sb), ["src/f00.txt", "src/f01.txt", "TRAILER"]);
    // In a shell script, the files are its arguments: each one word.
    sb.write("src/with space.txt", "x\n");
    let script = format!(
        "{} {{files}} && echo after >> \"$LINT_LOG\"",
        checker.display()
    );
    sb.cmd(base)
        .args(["sh", "-c", &script])
        .env("LINT_LOG", log(&sb))
        .status(0);
    assert_eq!(
        linted(&sb),
        ["src/f00.txt", "src/f01.txt", "src/with space.txt", "after"]
    );
}

#[test]
fn issue_m_batches_over_the_argument_limit_lint_each_file_once() {
    let sb = Sandbox::new();
    let long = "x".repeat(120);
    let mut all = Vec::new();
    for i in 0..10_000 {
        let rel = format!("src/d{}/{long}{i:05}.txt", i % 10);
        let path = sb.path(&rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"ok\n").unwrap();
        all.push(rel);
    }
    let checker = sb.outside("check.sh");
    fs::write(&checker, CHECKER).unwrap();
    fs::set_permissions(&checker, fs::Permissions::from_mode(0o755)).unwrap();
    // A 1 MiB stack makes the argument limit 256 KiB: 10,000 paths of 140 bytes need 6.
    sb.program("sh")
        .args(["-c", "ulimit -s 1024 && exec \"$@\"", "sh", ZCCACHE])
        .args(["run", "--files", "src/**/*.txt", "--"])
        .args([&checker])
        .env("LINT_LOG", log(&sb))
        .status(0)
        .stderr_has("run (10,000 of 10,000 files");
    assert!(batches(&sb) >= 6, "{} batches", batches(&sb));
    let mut got = linted(&sb);
    got.sort();
    all.sort();
    assert_eq!(got.len(), 10_000);
    assert_eq!(got, all, "each file exactly once");
}

#[test]
fn issue_m_batches_run_in_parallel_with_jobs() {
    let (sb, checker) = project(4);
    let peers = sb.outside("peers");
    fs::create_dir_all(&peers).unwrap();
    lint(&sb, &checker, &["-j", "2"])
        .env("PEER_DIR", &peers)
        .status(0);
    assert_eq!(batches(&sb), 2);
    let overlapped = fs::read_to_string(peers.with_extension("log")).unwrap_or_default();
    assert_eq!(overlapped.lines().count(), 2, "both batches ran at once");
    assert_eq!(linted(&sb).len(), 4);
}

#[test]
fn issue_m_a_task_of_zccache_toml_with_tasks_dry_run_json_and_why() {
    let (sb, checker) = project(3);
    sb.write(
        "zccache.toml",
        format!(
            "[tasks.lint]\ncommand = [{:?}]\nfiles = [\"src/*.txt\"]\ninclude = [\"lint.toml\"]\n",
            checker.display().to_string()
        ),
    );
    let with_log = |cmd: Cmd| cmd.env("LINT_LOG", log(&sb));
    with_log(sb.cmd(["tasks"])).status(0);
    with_log(sb.cmd(["run", "lint"]))
        .status(0)
        .stderr_has("run lint (3 of 3 files");
    linted(&sb);
    let listed = with_log(sb.cmd(["tasks"])).status(0);
    assert!(listed.stdout.contains("would skip"), "{}", listed.stdout);
    sb.write("src/f01.txt", "edited\n");
    with_log(sb.cmd(["run", "lint", "--dry-run"]))
        .status(1)
        .stderr_has("run lint (1 of 3 files: src/f01.txt)")
        .stderr_has("edited                src/f01.txt");
    assert!(linted(&sb).is_empty(), "a dry run runs nothing");
    let ran = with_log(sb.cmd(["run", "lint", "--json"])).status(0);
    let json = ran.stderr_json();
    assert_eq!(json["run_files"][0]["path"], "src/f01.txt");
    assert_eq!(json["run_files"][0]["why"], "edited");
    assert_eq!(json["files"], 3);
    let why = sb.cmd(["why", "lint"]).status(0);
    assert!(
        why.stdout.contains("1 of 3 files: src/f01.txt (1 edited)"),
        "{}",
        why.stdout
    );
}

#[test]
fn issue_m_shellcheck_lints_only_what_has_not_passed() {
    if !available(Tool::Shellcheck) {
        return;
    }
    let sb = Sandbox::new();
    sb.write("bin/a.sh", "#!/bin/sh\necho \"$1\"\n")
        .write("bin/b.sh", "#!/bin/sh\necho \"$1\"\n");
    let shellcheck = ["run", "--files", "bin/*.sh", "--", "shellcheck"];
    sb.cmd(shellcheck).status(0).stderr_has("run (2 of 2 files");
    sb.write("bin/b.sh", "#!/bin/sh\necho $1\n");
    sb.cmd(shellcheck)
        .status(1)
        .stderr_has("run (1 of 2 files: bin/b.sh)");
    sb.cmd(shellcheck)
        .status(1)
        .stderr_has("run (1 of 2 files: bin/b.sh)");
    sb.write("bin/b.sh", "#!/bin/sh\necho \"$1\"\n");
    sb.cmd(shellcheck)
        .status(0)
        .stderr_has("skip (all 2 files passed");
}

#[test]
fn issue_m_staged_judges_and_lints_the_index_bytes_of_a_partly_staged_file() {
    let (sb, checker) = project(3);
    sb.git(&["init", "-q"]).status(0);
    sb.git(&["add", "src", "lint.toml"]).status(0);
    sb.git(&["commit", "-qm", "init"]).status(0);
    // Staged: a failing file; in the working tree: fixed.
    sb.write("src/f01.txt", "LINT-FAIL\n");
    sb.git(&["add", "src/f01.txt"]).status(0);
    sb.write("src/f01.txt", "fixed\n");
    lint(&sb, &checker, &["--staged", "--batch-size", "1"])
        .status(3)
        .stderr_has("run (3 of 3 files");
    linted(&sb);
    sb.git(&["add", "src/f01.txt"]).status(0);
    lint(&sb, &checker, &["--staged"])
        .status(0)
        .stderr_has("run (1 of 3 files: src/f01.txt)");
    lint(&sb, &checker, &["--staged"])
        .status(0)
        .stderr_has("skip (all 3 files passed");
    // The working tree holds the same bytes: the index's results serve it too.
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("skip (all 3 files passed");
    let copies = fs::read_dir(sb.state().join("staged")).map_or(0, |d| d.count());
    assert_eq!(copies, 0, "the copy of the index is removed");
}

/// `--share`, issue M item 4: a second worktree of the same repository, on the same machine
/// (one `ZCCACHE_DIR`), finds the files the first one passed in the local store.
#[test]
fn issue_m_a_second_worktree_takes_the_passes_through_the_local_store() {
    let (sb, checker) = project(3);
    sb.git(&["init", "-q"]).status(0);
    sb.git(&["add", "src", "lint.toml"]).status(0);
    sb.git(&["commit", "-qm", "init"]).status(0);
    let second = sb.outside("second");
    sb.git(&["worktree", "add", "-q"]).args([&second]).status(0);
    lint(&sb, &checker, &["--share"])
        .status(0)
        .stderr_has("run (3 of 3 files");
    assert_eq!(linted(&sb).len(), 3);
    let in_second = |extra: &[&str]| lint(&sb, &checker, extra).cwd(&second);
    in_second(&["--share"])
        .status(0)
        .stderr_has("skip (all 3 files passed; 3 passed elsewhere, ");
    assert!(linted(&sb).is_empty(), "the second worktree lints nothing");
    // Passed here now: no lookup needed.
    in_second(&["--share"])
        .status(0)
        .stderr_has("skip (all 3 files passed, ");
    fs::write(second.join("src/f01.txt"), "edited in the second\n").unwrap();
    in_second(&["--share"])
        .status(0)
        .stderr_has("run (1 of 3 files: src/f01.txt)");
    assert_eq!(linted(&sb), ["src/f01.txt"]);
}

/// A project of three files whose checker lies inside it (`./check.sh`), so that two
/// machines run the very same command line.
fn machine_project() -> Sandbox {
    let sb = Sandbox::new();
    for i in 0..3 {
        sb.write(&format!("src/f{i:02}.txt"), format!("file {i}\n"));
    }
    sb.write("lint.toml", "strict = true\n")
        .write("check.sh", CHECKER);
    fs::set_permissions(sb.path("check.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    sb
}

/// `--share` across machines (two `ZCCACHE_DIR`s, two copies of the project) through a
/// real redis-server: the second lints nothing, and a garbage value or another file's
/// marker under a file's key is never taken as a pass.
#[test]
fn issue_m_two_machines_share_passes_through_redis() {
    let Some(redis) = crate::remote::Redis::start() else {
        return;
    };
    let run = |sb: &Sandbox| {
        sb.cmd([
            "run",
            "--share",
            "--files",
            "src/*.txt",
            "--include",
            "lint.toml",
        ])
        .args(["--", "./check.sh"])
        .env("LINT_LOG", log(sb))
        .env("ZCCACHE_REMOTE", redis.url())
    };
    let first = machine_project();
    run(&first).status(0).stderr_has("run (3 of 3 files");
    assert_eq!(linted(&first).len(), 3);
    let keys = redis.keys("zccache:entry:shared-file/*");
    assert_eq!(keys.len(), 3, "one marker per file: {keys:?}");

    let second = machine_project();
    run(&second)
        .status(0)
        .stderr_has("skip (all 3 files passed; 3 passed elsewhere, ");
    assert!(
        linted(&second).is_empty(),
        "the second machine lints nothing"
    );

    // One key holds garbage, another the marker of a third file: both files run.
    let other = redis.cli(&["GET", &keys[2]]);
    redis.cli(&["SET", &keys[0], "garbage"]);
    redis.cli(&["SET", &keys[1], other.trim_end()]);
    let third = machine_project();
    run(&third).status(0).stderr_has("run (2 of 3 files");
    assert_eq!(linted(&third).len(), 2);
}

#[test]
fn issue_m_a_stop_right_after_a_first_run_leaves_no_daemon_behind() {
    let (sb, checker) = project(200);
    age(&sb, 200);
    // A first run returns before its record is written; the process that writes it starts
    // the daemon for the next runs. A stop given at once waits for that start and stops
    // the daemon it brought up: none comes up unseen afterwards.
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("run (200 of 200 files");
    sb.cmd(["stop"]).status(0).stderr_has("daemon stopped");
    // The record writer lets the task's lock go only once its daemon start ended: after
    // this, no start is under way.
    settled(&sb);
    let status = sb.cmd(["status"]).status(0);
    assert!(
        status.stdout.contains("no daemon running"),
        "{}",
        status.stdout
    );
}

/// The pids of the record writers (`zccache settle-files --after PID`) waiting for `run`.
fn writers_of(run: u32) -> Vec<u32> {
    let after = format!("settle-files\0--after\0{run}\0");
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(after.len()).any(|w| w == after.as_bytes()))
        })
        .collect()
}

/// The record writers of `run`, once one is up and `ready` holds (within 20 s).
fn await_writers(run: u32, ready: impl Fn() -> bool) -> Vec<u32> {
    let started = std::time::Instant::now();
    loop {
        let writers = writers_of(run);
        if !writers.is_empty() && ready() {
            return writers;
        }
        assert!(
            started.elapsed().as_secs() < 20,
            "no writer came up beside the run"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A first run's record writer starts while the command runs, sharing the task's lock, and
/// reads its work only once zccache exited. A run killed meanwhile wrote no outcome: the
/// writer records nothing and ends, and the next run is a first run again, kept waiting by
/// nothing. A stop meanwhile does not wait for the run.
#[test]
fn issue_m_a_first_run_killed_while_its_command_runs_leaves_no_record_behind() {
    let (sb, checker) = project(5);
    age(&sb, 5);
    let gate = sb.outside("gate");
    let mut run = lint(&sb, &checker, &[]).env("HOLD_UNTIL", &gate).spawn();
    let holding = || fs::read_to_string(log(&sb)).is_ok_and(|l| l.contains("# holding"));
    let writers = await_writers(run.id(), holding);
    let started = std::time::Instant::now();
    assert!(!sb.path(".zccache/run/lint.json.files").exists());
    sb.cmd(["stop"]).status(0).stderr_has("no daemon running");
    // SAFETY: kill sends a signal to the run this test started.
    unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGKILL) };
    run.wait().unwrap();
    while writers
        .iter()
        .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
    {
        assert!(
            started.elapsed().as_secs() < 20,
            "the writer outlived its run"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    fs::write(&gate, "").unwrap();
    let left: Vec<_> = fs::read_dir(sb.path(".zccache/run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".files") || name.contains("settle"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    linted(&sb);
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("run (5 of 5 files")
        .stderr_lacks("waiting");
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("skip (all 5 files passed");
}

/// A first run whose record writer was killed while the command ran records in-process:
/// the next run skips (it was a first run again, with no record, before).
#[test]
fn issue_m_a_first_run_whose_record_writer_was_killed_records_in_process() {
    let (sb, checker) = project(5);
    age(&sb, 5);
    let gate = sb.outside("gate");
    let mut run = lint(&sb, &checker, &[]).env("HOLD_UNTIL", &gate).spawn();
    let writers = await_writers(run.id(), || true);
    for pid in writers {
        // SAFETY: kill sends a signal to the writer this test's run started.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    fs::write(&gate, "").unwrap();
    assert!(run.wait().unwrap().success());
    settled(&sb);
    linted(&sb);
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("skip (all 5 files passed");
    assert!(linted(&sb).is_empty());
}

#[test]
fn issue_m_a_deep_tree_is_walked_within_a_small_descriptor_limit() {
    let (sb, checker) = project(1);
    // 120 nested directories, a file at the bottom: the walk holds no descriptor per level.
    let deep = (0..120).map(|_| "d").collect::<Vec<_>>().join("/");
    sb.write(&format!("src/{deep}/bottom.txt"), "bottom\n");
    let script = format!(
        "ulimit -n 48 && exec \"$ZCCACHE\" run --no-daemon --files 'src/**/*.txt' -- '{}'",
        checker.display()
    );
    sb.program("sh")
        .args(["-c", &script])
        .env("ZCCACHE", ZCCACHE)
        .env("LINT_LOG", log(&sb))
        .status(0)
        .stderr_has("run (2 of 2 files");
    settled(&sb);
}

#[test]
fn issue_m_a_stale_daemon_start_mark_is_not_waited_for() {
    let (sb, _checker) = project(1);
    // A mark left for a pid that now runs something else (a reused pid): stop removes it
    // and goes on (it waited 15 s for any live pid before).
    let mut other = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    fs::create_dir_all(sb.state()).unwrap();
    fs::set_permissions(sb.state(), fs::Permissions::from_mode(0o700)).unwrap();
    let mark = sb.state().join(format!("daemon.starting.{}", other.id()));
    fs::write(&mark, "").unwrap();
    sb.cmd(["stop"]).status(0).stderr_has("no daemon running");
    other.kill().unwrap();
    other.wait().unwrap();
    assert!(!mark.exists());
}

/// A first run lists the files of a directory that settled before it (no entry added or
/// removed for 2 s) without their stamps; once the run ended, a file passes only if its
/// ctime, which nothing sets back, is older than the run by that window: one edited in
/// place just before the run, or swapped out and back while the tool read it, is linted
/// again; the untouched one passes. (Before, the one edited just before the run was read
/// before it, and passed.)
#[test]
fn issue_m_a_first_run_in_settled_directories_passes_only_files_older_than_it() {
    let (sb, checker) = project(3);
    // The directory and its files settle: their ctimes age past the racy window.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    sb.write("src/f01.txt", "file 1, edited just before\n");
    // f02 is swapped out while the tool reads it and put back after, same bytes again.
    lint(&sb, &checker, &[])
        .env("SWAP_DURING", "src/f02.txt")
        .status(0)
        .stderr_has("run (3 of 3");
    assert_eq!(sb.read("src/f02.txt"), "file 2\n");
    linted(&sb);
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("run (2 of 3 files: src/f01.txt, src/f02.txt)");
    lint(&sb, &checker, &[]).status(0).stderr_has("skip (all 3");
}

/// A settled directory's file is vouched for after the run by its device and inode as the
/// listing gave them, not by its inode alone: a filesystem mounted over the directory while
/// the tool ran (or a snapshot swapped in) may hold an old file of the same inode number,
/// whose bytes the tool never saw. (It passed, and the next run skipped it.)
#[test]
fn issue_m_a_file_swapped_in_from_another_filesystem_during_a_first_run_is_not_passed() {
    if !available(Tool::Mount) {
        return;
    }
    let (sb, _) = project(0);
    let checker = sb.outside("check-mount.sh");
    fs::write(
        &checker,
        "#!/bin/sh\nstatus=0\nfor f in \"$@\"; do grep -qx BAD \"$f\" && status=1; done\n\
         [ -n \"$SWAP\" ] && mount --bind \"$SWAP\" src\nexit $status\n",
    )
    .unwrap();
    fs::set_permissions(&checker, fs::Permissions::from_mode(0o755)).unwrap();
    // Two fresh tmpfs, the same files made in the same order (so the same inode numbers);
    // the other's f2 is BAD. Both settle (2 s) before the first run.
    let script = format!(
        "set -e; mkdir -p src other && mount -t tmpfs t src && mount -t tmpfs t other\n\
         for d in src other; do for i in 1 2 3; do echo \"file $i\" > $d/f$i.txt; done; done\n\
         echo BAD > other/f2.txt; sleep 2.5\n\
         run() {{ \"$ZCCACHE\" run --no-daemon --files 'src/*.txt' -- '{checker}'; }}\n\
         SWAP=other run\n\
         if run; then echo NEXT-RUN-PASSED; else echo NEXT-RUN-FAILED; fi",
        checker = checker.display()
    );
    let ran = sb
        .program("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("ZCCACHE", ZCCACHE)
        .status(0);
    assert!(ran.stdout.contains("NEXT-RUN-FAILED"), "{ran:#?}");
}

/// A symlink in the set is linted every time: the tool reads the file it points to, which
/// may lie outside the set, and which its key (the link's text) does not cover. (It
/// passed once, and an edit of its target then skipped.)
#[test]
fn issue_m_a_symlink_in_the_set_never_passes() {
    let (sb, checker) = project(2);
    sb.write("elsewhere/real.txt", "fine\n");
    std::os::unix::fs::symlink("../elsewhere/real.txt", sb.path("src/link.txt")).unwrap();
    lint(&sb, &checker, &[]).status(0).stderr_has("run (3 of 3");
    linted(&sb);
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("run (1 of 3 files: src/link.txt)");
    assert_eq!(linted(&sb), ["src/link.txt"]);
    sb.write("elsewhere/real.txt", "LINT-FAIL\n");
    let failed = lint(&sb, &checker, &[]).status(3);
    assert!(
        failed.stdout.contains("src/link.txt: LINT-FAIL"),
        "{failed:#?}"
    );
}

/// `zccache fp --cache-file F invalidate` forgets a per-file task's passes too, as the README
/// says it forgets everything: every file runs again (it skipped all before).
#[test]
fn issue_m_invalidate_forgets_the_passed_files() {
    let (sb, checker) = project(3);
    lint(&sb, &checker, &[]).status(0).stderr_has("run (3 of 3");
    lint(&sb, &checker, &[]).status(0).stderr_has("skip (all 3");
    let record = per_file_record(&sb);
    let cache_file = record.to_str().unwrap().strip_suffix(".files").unwrap();
    sb.cmd(["fp", "--cache-file", cache_file, "invalidate"])
        .status(0);
    lint(&sb, &checker, &[]).status(0).stderr_has("run (3 of 3");
}

/// A first run's record writer starts the daemon for the next runs before it lets the
/// task's lock go, but waits for that start a moment only: with the daemon's start lock held
/// by another client (half-way through a start, or stopped with Ctrl-Z), the next run of
/// the task skips while that client still holds it, instead of waiting with it.
#[test]
fn issue_m_a_daemon_start_that_waits_does_not_hold_the_next_run() {
    let (sb, checker) = project(3);
    age(&sb, 3);
    fs::create_dir_all(sb.state()).unwrap();
    let mut holder = sb
        .program("flock")
        .args([
            sb.state().join("daemon.start.lock").to_str().unwrap(),
            "sleep",
            "60",
        ])
        .spawn();
    crate::support::wait_for(&sb.state().join("daemon.start.lock"));
    lint(&sb, &checker, &[]).status(0).stderr_has("run (3 of 3");
    lint(&sb, &checker, &[])
        .status(0)
        .stderr_has("skip (all 3 files passed");
    let still_held = holder.try_wait().unwrap().is_none();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert!(
        still_held,
        "the next run waited for the start lock's holder"
    );
}

/// zccache as a container's first process (pid 1 of a pid namespace), or started by it (a
/// shell or an init that exits with it), writes a first run's record itself: a record writer
/// of its own would be killed with every other process there when that first process exits,
/// and the next run would lint every file again.
#[test]
fn issue_m_a_first_run_as_a_containers_first_process_keeps_its_record() {
    if !available(Tool::Mount) {
        return;
    }
    let run =
        "\"$ZCCACHE\" run --no-daemon --files 'src/*.txt' --include lint.toml -- \"$CHECKER\"";
    for script in [format!("exec {run}"), format!("{run}; echo ran")] {
        let (sb, checker) = project(3);
        age(&sb, 3);
        sb.program("unshare")
            .args(["--pid", "--fork", "--mount-proc", "sh", "-c", &script])
            .env("ZCCACHE", ZCCACHE)
            .env("CHECKER", &checker)
            .env("LINT_LOG", log(&sb))
            .status(0)
            .stderr_has("run (3 of 3 files");
        assert_eq!(linted(&sb).len(), 3, "{script}");
        lint(&sb, &checker, &["--no-daemon"])
            .status(0)
            .stderr_has("skip (all 3 files passed");
        assert!(linted(&sb).is_empty(), "{script}");
    }
}
