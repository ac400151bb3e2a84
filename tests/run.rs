//! `zccache run`: check, skip or run, record. Tasks append a line to a marker file outside
//! the project, so "did not run" is proven by the marker, not by a message.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use crate::support::{Sandbox, snapshot, wait_for};

const TASK: &str = "echo ran >> \"$MARKER\"";

fn project() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("src/lib.rs", "pub fn f() {}\n")
        .write("src/util.rs", "pub fn g() {}\n");
    sb
}

#[test]
fn unchanged_inputs_skip_without_running() {
    let sb = project();
    sb.run_sh(&[], TASK)
        .status(0)
        .stderr_has("zccache: run (no previous success)");
    sb.run_sh(&[], TASK)
        .status(0)
        .stderr_has("zccache: skip (2 files unchanged since ");
    assert_eq!(sb.marker_count(), 1);
}

#[test]
fn default_state_file_lives_under_dot_zccache() {
    let sb = project();
    sb.run_sh(&[], TASK).status(0);
    let states: Vec<_> = fs::read_dir(sb.path(".zccache/run"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(states.len(), 1, "{states:?}");
    assert_eq!(states[0].len(), 16 + ".json".len(), "{states:?}");
}

#[test]
fn file_change_runs_and_names_it() {
    let sb = project();
    sb.run_sh(&[], TASK).status(0);
    sb.write("src/util.rs", "pub fn g() { 1; }\n");
    sb.run_sh(&[], TASK)
        .status(0)
        .stderr_has("run (1 file changed: src/util.rs)");
    assert_eq!(sb.marker_count(), 2);
}

#[test]
fn changed_command_line_runs() {
    let sb = project();
    let cache = ["--cache", ".cache/t.json"];
    sb.run_sh(&cache, TASK).status(0);
    sb.run_sh(&cache, &format!("{TASK} # v2"))
        .status(0)
        .stderr_has("run (command changed)");
    assert_eq!(sb.marker_count(), 2);
}

#[test]
fn env_value_and_appearance_change_the_key() {
    let sb = project();
    let args = ["--env", "MODE"];
    sb.run_sh(&args, TASK).env_remove("MODE").status(0);
    sb.run_sh(&args, TASK)
        .env_remove("MODE")
        .status(0)
        .stderr_has("skip");
    sb.run_sh(&args, TASK)
        .env("MODE", "")
        .status(0)
        .stderr_has("run (env MODE changed)");
    sb.run_sh(&args, TASK)
        .env("MODE", "")
        .status(0)
        .stderr_has("skip");
    sb.run_sh(&args, TASK)
        .env("MODE", "release")
        .status(0)
        .stderr_has("run (env MODE changed)");
    // Variables not named with --env do not count.
    sb.run_sh(&args, TASK)
        .env("MODE", "release")
        .env("OTHER", "x")
        .status(0)
        .stderr_has("skip");
    assert_eq!(sb.marker_count(), 3);
}

#[test]
fn replaced_tool_runs() {
    let sb = project();
    let tool = sb.outside("bin/mytool");
    let install = |body: &str| {
        let tmp = tool.with_extension("new");
        fs::write(
            &tmp,
            format!("#!/bin/sh\n{body}\necho ran >> \"$MARKER\"\n"),
        )
        .unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
        fs::rename(&tmp, &tool).unwrap();
    };
    install("# v1");
    let path = format!(
        "{}:{}",
        tool.parent().unwrap().display(),
        std::env::var("PATH").unwrap()
    );
    let run = || {
        sb.cmd(["run", "--", "mytool"])
            .env("PATH", &path)
            .env("MARKER", sb.marker())
    };
    run().status(0);
    run().status(0).stderr_has("skip");
    install("# v2");
    run().status(0).stderr_has("run (tool changed)");
    assert_eq!(sb.marker_count(), 2);
}

#[test]
fn rustup_toolchain_switch_runs() {
    let sb = project();
    let home = sb.outside("rustup");
    for (name, body) in [("tca", "a"), ("tcb", "b")] {
        let bin = home.join("toolchains").join(name).join("bin");
        fs::create_dir_all(&bin).unwrap();
        let cargo = bin.join("cargo");
        let script = format!("#!/bin/sh\necho cargo-{body}\necho ran >> \"$MARKER\"\n");
        fs::write(&cargo, script).unwrap();
        fs::set_permissions(&cargo, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::write(
        home.join("settings.toml"),
        "version = \"12\"\ndefault_toolchain = \"tca\"\nprofile = \"default\"\n",
    )
    .unwrap();
    let cargo = |toolchain: &str| {
        sb.cmd(["run", "--", "cargo"])
            .env("RUSTUP_HOME", &home)
            .env("RUSTUP_TOOLCHAIN", toolchain)
            .env("MARKER", sb.marker())
    };
    let ran = cargo("tca").status(0);
    assert_eq!(ran.stdout, "cargo-a\n");
    cargo("tca").status(0).stderr_has("skip");
    let ran = cargo("tcb").status(0).stderr_has("run (tool changed)");
    assert_eq!(ran.stdout, "cargo-b\n");
    cargo("tcb").status(0).stderr_has("skip");
    assert_eq!(sb.marker_count(), 2);
}

/// The files the task makes: a directory with an executable and a symlink, and a file.
const GEN_TASK: &str = "echo ran >> \"$MARKER\"; mkdir -p gen/sub; cat src/*.rs > gen/all.rs; \
    printf '#!/bin/sh\n' > gen/sub/run.sh; chmod 750 gen/sub/run.sh; ln -sf all.rs gen/link; \
    echo made > made.txt";
const GEN_ARGS: [&str; 4] = ["--output", "gen", "--output", "made.txt"];

fn gen_tree(sb: &Sandbox) -> Vec<(String, Vec<u8>, u32)> {
    let mut files = Vec::new();
    for rel in ["gen/all.rs", "gen/sub/run.sh", "made.txt"] {
        let path = sb.path(rel);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        files.push((rel.to_string(), fs::read(&path).unwrap(), mode));
    }
    let link = fs::read_link(sb.path("gen/link")).unwrap();
    files.push((
        "gen/link".into(),
        link.into_os_string().into_encoded_bytes(),
        0,
    ));
    files
}

/// Issue H.1: deleted or edited outputs are restored from the cache, byte for byte with
/// their modes and symlinks, and the task does not run.
#[test]
fn deleted_or_edited_outputs_are_restored_without_running() {
    let sb = project();
    sb.run_sh(&GEN_ARGS, GEN_TASK).status(0);
    let made = gen_tree(&sb);
    // The outputs live under the root but are not inputs: the next run skips.
    sb.run_sh(&GEN_ARGS, GEN_TASK)
        .status(0)
        .stderr_has("skip (2 files unchanged");
    fs::remove_dir_all(sb.path("gen")).unwrap();
    fs::remove_file(sb.path("made.txt")).unwrap();
    let mut dry = GEN_ARGS.to_vec();
    dry.push("--dry-run");
    sb.run_sh(&dry, GEN_TASK)
        .status(0)
        .stderr_has("skip (would restore 2 outputs: gen, made.txt, ");
    assert!(!sb.path("gen").exists(), "a dry run writes nothing");
    sb.run_sh(&GEN_ARGS, GEN_TASK)
        .status(0)
        .stderr_has("skip (restored 2 outputs: gen, made.txt, ");
    assert_eq!(gen_tree(&sb), made);
    sb.write("gen/all.rs", "hand edit");
    sb.run_sh(&GEN_ARGS, GEN_TASK)
        .status(0)
        .stderr_has("skip (restored 1 output: gen, ");
    assert_eq!(gen_tree(&sb), made);
    assert_eq!(sb.marker_count(), 1, "never ran again");
    sb.write("src/lib.rs", "pub fn f() { 2; }\n");
    sb.run_sh(&GEN_ARGS, GEN_TASK)
        .status(0)
        .stderr_has("run (1 file changed");
    assert_eq!(sb.marker_count(), 2);
}

/// Settled outputs are not read again on a skip (their stamps are kept in the record), but
/// an edit that keeps a file's size and mtime still changes its ctime: restored.
#[test]
fn an_edit_that_keeps_size_and_mtime_is_still_seen() {
    let sb = project();
    sb.run_sh(&GEN_ARGS, GEN_TASK).status(0);
    let made = gen_tree(&sb);
    // Past the 2 s during which a file's times cannot vouch for its content.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    sb.run_sh(&GEN_ARGS, GEN_TASK)
        .status(0)
        .stderr_has("skip (2 files unchanged");
    let record = fs::read_dir(sb.path(".zccache/run"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".json.run"))
        .map(|e| fs::read_to_string(e.path()).unwrap())
        .unwrap();
    assert!(record.contains("\"stamps\""), "no stamps kept: {record}");
    let path = sb.path("made.txt");
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    fs::write(&path, "MADE\n").unwrap();
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    sb.run_sh(&GEN_ARGS, GEN_TASK)
        .status(0)
        .stderr_has("skip (restored 1 output: made.txt, ");
    assert_eq!(gen_tree(&sb), made);
    assert_eq!(sb.marker_count(), 1, "never ran again");
}

/// Issue H.1: a file in an output directory that the run did not make is the user's: it
/// neither makes the task run nor is removed by a restore.
#[test]
fn a_users_file_in_an_output_directory_is_kept() {
    let sb = project();
    sb.run_sh(&GEN_ARGS, GEN_TASK).status(0);
    sb.write("gen/notes.txt", "mine");
    sb.run_sh(&GEN_ARGS, GEN_TASK)
        .status(0)
        .stderr_has("skip (2 files unchanged");
    fs::remove_file(sb.path("gen/all.rs")).unwrap();
    sb.run_sh(&GEN_ARGS, GEN_TASK)
        .status(0)
        .stderr_has("skip (restored 1 output: gen, ");
    assert_eq!(sb.read("gen/notes.txt"), "mine");
    assert!(sb.path("gen/all.rs").exists());
    assert_eq!(sb.marker_count(), 1);
}

/// Issue H.1: a restore that cannot be whole (a blob gone from the store) runs the task.
#[test]
fn a_restore_with_a_missing_blob_runs_the_task() {
    let sb = project();
    sb.run_sh(&GEN_ARGS, GEN_TASK).status(0);
    sb.cmd(["stop"]).status(0);
    fs::remove_dir_all(sb.state().join("artifacts/blobs")).unwrap();
    fs::remove_dir_all(sb.path("gen")).unwrap();
    sb.run_sh(&GEN_ARGS, GEN_TASK)
        .status(0)
        .stderr_has("run (output missing: gen; not restored: the outputs are not in the cache)");
    assert_eq!(sb.marker_count(), 2);
    assert!(sb.path("gen/all.rs").exists());
}

#[test]
fn failing_command_propagates_status_and_runs_again() {
    let sb = project();
    let fail = "echo ran >> \"$MARKER\"; exit 3";
    sb.run_sh(&[], fail).status(3);
    sb.run_sh(&[], fail)
        .status(3)
        .stderr_has("run (last run failed)");
    assert_eq!(sb.marker_count(), 2);
}

#[test]
fn exit_statuses_pass_through() {
    let sb = project();
    for (script, code) in [
        ("exit 0", 0),
        ("exit 1", 1),
        ("exit 3", 3),
        ("exit 255", 255),
        ("kill -TERM $$", 128 + 15),
        ("kill -KILL $$", 128 + 9),
    ] {
        sb.run_sh(&[], script).status(code);
    }
    sb.cmd(["run", "--", "no-such-command-zccache"])
        .status(127)
        .stderr_has("command not found");
    sb.cmd(["run", "--", "no-such-command-zccache"])
        .status(127)
        .stderr_has("last run failed");
}

#[test]
fn usage_errors_exit_2() {
    let sb = project();
    sb.cmd(["run"]).status(2);
    sb.cmd(["run", "--bogus", "--", "true"]).status(2);
    sb.cmd(["run", "--force", "--dry-run", "--", "true"])
        .status(2);
    sb.cmd(["run", "--cache-type", "nope", "--", "true"])
        .status(2);
}

#[test]
fn dry_run_writes_nothing_and_says_what_it_would_do() {
    let sb = project();
    let before = snapshot(&sb.root());
    sb.run_sh(&["--dry-run"], TASK)
        .status(1)
        .stderr_has("run (no previous success)");
    assert_eq!(snapshot(&sb.root()), before);
    assert_eq!(sb.marker_count(), 0);
    sb.run_sh(&[], TASK).status(0);
    let before = snapshot(&sb.root());
    sb.run_sh(&["--dry-run"], TASK).status(0).stderr_has("skip");
    sb.write("src/lib.rs", "changed");
    let before_edit = snapshot(&sb.root());
    sb.run_sh(&["--dry-run"], TASK).status(1);
    assert_eq!(snapshot(&sb.root()), before_edit);
    assert_ne!(before, before_edit);
    sb.run_sh(&["--dry-run", "--root", "missing"], TASK)
        .status(2);
    assert_eq!(sb.marker_count(), 1);
}

#[test]
fn explain_lists_changed_paths_and_parts() {
    let sb = project();
    sb.run_sh(&["--env", "X"], TASK).status(0);
    sb.write("src/new.rs", "").remove("src/util.rs");
    sb.write("src/lib.rs", "changed");
    sb.run_sh(&["--env", "X", "--explain"], TASK)
        .env("X", "1")
        .status(0)
        .stderr_has("zccache:   changed: env X\n")
        .stderr_has("zccache:   modified src/lib.rs\n")
        .stderr_has("zccache:   added    src/new.rs\n")
        .stderr_has("zccache:   removed  src/util.rs\n");
}

#[test]
fn force_runs_and_records() {
    let sb = project();
    sb.run_sh(&[], TASK).status(0);
    sb.run_sh(&["--force"], TASK)
        .status(0)
        .stderr_has("run (forced)");
    sb.run_sh(&[], TASK).status(0).stderr_has("skip");
    assert_eq!(sb.marker_count(), 2);
}

#[test]
fn replay_is_byte_identical() {
    let sb = project();
    let script = "echo ran >> \"$MARKER\"; printf 'out\\000\\377\\001no newline'; \
                  printf 'err\\000\\376' >&2";
    let first = sb.run_sh(&["--replay", "--quiet"], script).status(0);
    let second = sb.run_sh(&["--replay", "--quiet"], script).status(0);
    assert_eq!(sb.marker_count(), 1);
    assert_eq!(first.stdout_bytes, b"out\x00\xff\x01no newline");
    assert_eq!(second.stdout_bytes, first.stdout_bytes);
    assert_eq!(second.stderr_bytes, b"err\x00\xfe");
}

#[test]
fn quiet_silences_and_json_describes() {
    let sb = project();
    let ran = sb.run_sh(&["--quiet"], TASK).status(0);
    assert_eq!(ran.stderr, "");
    let ran = sb.run_sh(&["--json"], TASK).status(0);
    let json = ran.stderr_json();
    assert_eq!(json["decision"], "skip");
    assert_eq!(json["reason"], "unchanged");
    assert_eq!(json["files"], 2);
    assert!(json["duration_ms"].as_f64().is_some());
    assert!(!ran.stderr.contains("zccache:"), "{}", ran.stderr);
}

/// A fingerprint that fails at check time (here the state file's directory cannot be made)
/// runs the command: never skip on doubt. A mistake in how the task is given — a root that
/// does not exist, a glob that does not parse — is a usage error instead (issue Q.6): exit
/// 2, nothing run.
#[test]
fn fingerprint_error_still_runs_the_command() {
    let sb = project();
    sb.write("notadir", "");
    sb.run_sh(&["--cache", "notadir/x.json"], TASK)
        .status(0)
        .stderr_has("cannot fingerprint")
        .stderr_has("running anyway");
    assert_eq!(sb.marker_count(), 1);
    sb.run_sh(&["--root", "missing"], TASK)
        .status(2)
        .stderr_has("the root ")
        .stderr_has("missing does not exist");
    sb.run_sh(&["--include", "src/["], TASK)
        .status(2)
        .stderr_has("src/[");
    assert_eq!(sb.marker_count(), 1);
    assert!(!sb.path("missing").exists());
}

#[test]
fn sigterm_reaches_the_child_and_counts_as_failure() {
    let sb = project();
    let ready = sb.outside("ready");
    let script = format!(
        "trap 'echo term >> \"$MARKER\"; exit 7' TERM; touch {}; \
         while :; do sleep 0.05; done",
        ready.display()
    );
    let mut child = sb.run_sh(&[], &script).spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "task never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7));
    assert_eq!(fs::read_to_string(sb.marker()).unwrap(), "term\n");
    // The interrupted run was recorded as a failure.
    sb.run_sh(&["--dry-run"], &script)
        .status(1)
        .stderr_has("zccache: run (");
}

#[test]
fn concurrent_runs_of_one_task_leave_valid_state() {
    let sb = project();
    let children: Vec<_> = (0..6)
        .map(|_| sb.run_sh(&["--cache", ".cache/c.json"], TASK).spawn())
        .collect();
    for child in children {
        assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
    }
    let state: serde_json::Value = serde_json::from_str(&sb.read(".cache/c.json")).unwrap();
    assert!(!state["successes"].as_array().unwrap().is_empty());
    let before = sb.marker_count();
    sb.run_sh(&["--cache", ".cache/c.json"], TASK)
        .status(0)
        .stderr_has("skip");
    assert_eq!(sb.marker_count(), before);
}

#[test]
fn why_tells_the_last_decision() {
    let sb = project();
    sb.run_sh(&[], TASK).status(0);
    let ran = sb.cmd(["why"]).status(0);
    assert!(
        ran.stdout.contains(": run (no previous success), exit 0"),
        "{}",
        ran.stdout
    );
    sb.run_sh(&[], TASK).status(0);
    let ran = sb.cmd(["why", "--", "sh", "-c", TASK]).status(0);
    assert!(
        ran.stdout.contains(": skip (2 files unchanged)"),
        "{}",
        ran.stdout
    );
    sb.write("src/lib.rs", "x");
    sb.run_sh(&[], "exit 4").status(4);
    let json = sb.cmd(["why", "--json"]).status(0).json();
    assert_eq!(json["decision"], "run");
    assert_eq!(json["exit_status"], 4);
    assert_eq!(sb.cmd(["why", "--cache", "nope.json"]).status(2).stdout, "");
}

/// Issue G.1: a run checked by one daemon and finished after a restart must not record its
/// success against another task's check of the new daemon.
#[test]
fn issue_g_a_restarted_daemon_takes_no_outcome_of_an_earlier_check() {
    let sb = project();
    let (started, go) = (sb.outside("a.started"), sb.outside("a.go"));
    let (c_started, c_go) = (sb.outside("c.started"), sb.outside("c.go"));
    let gated = |started: &std::path::Path, go: &std::path::Path, status: i32| {
        format!(
            "touch {}; for _ in $(seq 1000); do [ -e {} ] && break; sleep 0.02; done; exit {status}",
            started.display(),
            go.display()
        )
    };
    let a = sb
        .run_sh(&["--cache", ".cache/a.json"], &gated(&started, &go, 0))
        .spawn();
    wait_for(&started);
    sb.cmd(["stop"]).status(0);
    let c = sb
        .run_sh(&["--cache", ".cache/c.json"], &gated(&c_started, &c_go, 1))
        .spawn();
    wait_for(&c_started);
    fs::write(&go, "").unwrap();
    let a = a.wait_with_output().unwrap();
    assert_eq!(a.status.code(), Some(0));
    let a_err = String::from_utf8_lossy(&a.stderr);
    assert!(
        a_err.contains("cannot record the result") && a_err.contains("earlier daemon"),
        "{a_err}"
    );
    fs::write(&c_go, "").unwrap();
    assert_eq!(c.wait_with_output().unwrap().status.code(), Some(1));
    // C always fails: it must run again, never skip on A's success.
    sb.run_sh(&["--cache", ".cache/c.json"], &gated(&c_started, &c_go, 1))
        .status(1)
        .stderr_has("zccache: run (");
}

/// Issue H.1: `--output` may be a glob (as in turbo.json); what it matches is restored, and
/// what it does not match is neither an output nor an input.
#[test]
fn glob_outputs_are_restored() {
    let sb = project();
    let task =
        "echo ran >> \"$MARKER\"; mkdir -p dist/js; echo a > dist/js/a.js; echo b > dist/b.map";
    let args = ["--output", "dist/**/*.js", "--exclude", "dist"];
    sb.run_sh(&args, task).status(0);
    fs::remove_dir_all(sb.path("dist")).unwrap();
    sb.run_sh(&args, task)
        .status(0)
        .stderr_has("skip (restored 1 output: dist/**/*.js, ");
    assert_eq!(sb.read("dist/js/a.js"), "a\n");
    assert!(
        !sb.path("dist/b.map").exists(),
        "not an output: not restored"
    );
    assert_eq!(sb.marker_count(), 1);
}

#[test]
fn json_names_a_state_file_whose_name_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let sb = project();
    let cache = std::ffi::OsStr::from_bytes(b"state/lint\xff.json");
    for per_file in [&[][..], &["--files", "src/*"][..]] {
        sb.cmd(["run", "--json", "--cache"])
            .args([cache])
            .args(per_file)
            .args(["--", "true"])
            .status(0)
            .stderr_has("\"cache\":");
    }
}

#[test]
fn a_script_without_a_shebang_line_runs_as_a_shell_would_run_it() {
    let sb = project();
    // No `#!` line: a shell (and execvp) runs such a file with /bin/sh.
    sb.write("plain.sh", "echo from-plain-script\n");
    fs::set_permissions(sb.path("plain.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    let ran = sb
        .cmd(["run", "--cache", "state/plain.json", "--", "./plain.sh"])
        .status(0);
    assert!(ran.stdout.contains("from-plain-script"), "{}", ran.stdout);
}
