//! Issue Q (items 1-3): what is in a task's input set. Every file git would see counts,
//! whatever the bytes of its name; no file zccache writes counts for any task; and a
//! `--staged` check of the same bytes as the working tree is the same key as an ordinary one.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::support::{Cmd, Sandbox};

/// `zccache run ARGS` with `MARKER` set.
fn run(sb: &Sandbox, args: &[&str]) -> Cmd {
    sb.cmd(["run"]).args(args).env("MARKER", sb.marker())
}

/// A path under the project from raw bytes.
fn raw(sb: &Sandbox, rel: &[u8]) -> PathBuf {
    sb.root().join(OsStr::from_bytes(rel))
}

fn append(path: &PathBuf, text: &str) {
    use std::io::Write;
    let mut file = fs::File::options().append(true).open(path).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

/// Q.1: names that are not UTF-8 are inputs like any other, in every mode (daemon,
/// in-process, staged), are kept exactly in the state (the next check skips) and are
/// printed quoted as git prints them.
#[test]
fn issue_q_non_utf8_names_are_inputs() {
    let sb = Sandbox::new();
    sb.git(&["init", "-q"]).status(0);
    sb.write(".gitignore", ".zccache/\n")
        .write("ok.txt", "ok\n");
    let bad = raw(&sb, b"bad\xff\xfe.txt");
    fs::write(&bad, "bad\n").unwrap();
    fs::create_dir(raw(&sb, b"dir\xc3\x28")).unwrap();
    let inner = raw(&sb, b"dir\xc3\x28/x.txt");
    fs::write(&inner, "x\n").unwrap();
    sb.git(&["add", "-A"]).status(0);
    for mode in [&[][..], &["--no-daemon"], &["--staged"]] {
        let args = |extra: &[&'static str]| -> Vec<&str> {
            let mut all = mode.to_vec();
            all.extend_from_slice(extra);
            // One command per mode, so each mode has its own state.
            all.extend([
                "--",
                "sh",
                "-c",
                "echo $0 >> \"$MARKER\"",
                mode.first().unwrap_or(&"daemon"),
            ]);
            all
        };
        let tag = format!("{mode:?}");
        run(&sb, &args(&[]))
            .status(0)
            .stderr_has("run (no previous success)");
        run(&sb, &args(&[]))
            .status(0)
            .stderr_has("skip (4 files unchanged");
        append(&bad, "more\n");
        sb.git(&["add", "-A"]).status(0);
        let changed = run(&sb, &args(&["--json"])).status(0);
        let json = changed.stderr_json();
        assert_eq!(json["outcome"], "ran", "{tag}: {}", changed.stderr);
        assert_eq!(
            json["changes"][0]["path"], "bad\u{0}FF\u{0}FE.txt",
            "{tag}: the JSON path is exact"
        );
        run(&sb, &args(&[]))
            .status(0)
            .stderr_has("skip (4 files unchanged");
        append(&inner, "more\n");
        sb.git(&["add", "-A"]).status(0);
        run(&sb, &args(&[]))
            .status(0)
            .stderr_has(r#"run (1 file changed: "dir\303(/x.txt")"#);
        append(&bad, "again\n");
        sb.git(&["add", "-A"]).status(0);
        run(&sb, &args(&["--explain"]))
            .status(0)
            .stderr_has(r#"run (1 file changed: "bad\377\376.txt")"#)
            .stderr_has(r#"modified "bad\377\376.txt""#);
    }
}

/// Q.2: the files one task's state writes — the state, its lock, ledger, record, replays,
/// pending check — are never inputs of another task sharing the root, wherever `--cache`
/// puts them, with or without the daemon; files that merely share their prefix still are.
#[test]
fn issue_q_one_tasks_state_is_never_anothers_input() {
    let sb = Sandbox::new();
    sb.write("src/a.rs", "fn a() {}\n").write(
        "zccache.toml",
        "[tasks.test]\ncommand = \"echo test >> \\\"$MARKER\\\"\"\n",
    );
    // A user's own pair that looks like a file and its lock stays an input.
    sb.write("deps", "1\n").write("deps.lock", "1\n");
    let lint = |sb: &Sandbox, force: &[&str]| {
        let mut args = vec!["--cache", ".cache/lint.json", "--replay"];
        args.extend_from_slice(force);
        args.extend(["--", "echo", "lint"]);
        run(sb, &args).status(0)
    };
    let other = |sb: &Sandbox| run(sb, &["--cache", "state/other", "--", "true"]).status(0);
    run(&sb, &["test"]).status(0).stderr_has("run test");
    lint(&sb, &[]).stderr_has("run (no previous success)");
    other(&sb);
    sb.fp(&["check"]).status(0);
    for mode in [&["--explain"][..], &["--explain", "--no-daemon"]] {
        let mut args = mode.to_vec();
        args.push("test");
        run(&sb, &args)
            .status(0)
            .stderr_has("skip test (4 files unchanged");
        // Each writes its state again (a run, a skip with a replay, a pending check).
        lint(&sb, &["--force"]).stderr_has("run (forced)");
        lint(&sb, &[]).stderr_has("skip");
        sb.fp(&["check"]).status(0);
        run(&sb, &args)
            .status(0)
            .stderr_has("skip test (4 files unchanged");
    }
    for written in [
        ".cache/lint.json.log",
        ".cache/lint.json.run",
        ".cache/fp.json.pending",
    ] {
        assert!(sb.path(written).exists(), "{written}");
    }
    assert!(sb.path(".cache/lint.json.replay").is_dir());
    for user_file in [".cache/lint.jsonc", "state/other.rs", "deps"] {
        sb.write(user_file, "mine\n");
        run(&sb, &["test"])
            .status(0)
            .stderr_has(&format!("run test (1 file changed: {user_file})"));
    }
    assert_eq!(fs::read_to_string(sb.marker()).unwrap().lines().count(), 4);
}

/// A git project with a task per kind of input: a file, an executable, a symlink.
fn staged_project() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("src/a.rs", "fn a() {}\n")
        .write("run.sh", "#!/bin/sh\n")
        .write(".gitignore", ".zccache/\ndist/\n")
        .write(
            "zccache.toml",
            "[tasks.lint]\ncommand = \"echo lint >> \\\"$MARKER\\\"\"\n",
        );
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(sb.path("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("src/a.rs", sb.path("link")).unwrap();
    sb.git(&["init", "-q"]).status(0);
    sb.git(&["add", "-A"]).status(0);
    sb
}

/// Q.3: a `--staged` check of the same bytes as the working tree is the same key as an
/// ordinary check, both ways; a staged edit that differs from the working tree runs and its
/// reason names the file.
#[test]
fn issue_q_a_staged_result_serves_an_ordinary_run_and_back() {
    let sb = staged_project();
    run(&sb, &["--staged", "lint"])
        .status(0)
        .stderr_has("run lint");
    run(&sb, &["lint"]).status(0).stderr_has("skip lint");
    run(&sb, &["--no-daemon", "lint"])
        .status(0)
        .stderr_has("skip lint");
    let tasks = sb.cmd(["tasks"]).status(0);
    assert!(tasks.stdout.contains("would skip"), "{}", tasks.stdout);
    // The reverse: an ordinary run, then the hook's check of the same bytes.
    sb.write("src/a.rs", "fn a() { 2 }\n");
    run(&sb, &["lint"])
        .status(0)
        .stderr_has("run lint (1 file changed: src/a.rs)");
    sb.git(&["add", "src/a.rs"]).status(0);
    run(&sb, &["--staged", "lint"])
        .status(0)
        .stderr_has("skip lint");
    // Staged bytes that the working tree does not hold.
    sb.write("src/a.rs", "fn a() { 3 }\n");
    sb.git(&["add", "src/a.rs"]).status(0);
    sb.write("src/a.rs", "fn a() { 4 }\n");
    run(&sb, &["--staged", "--explain", "lint"])
        .status(0)
        .stderr_has("run lint (1 file changed: src/a.rs)")
        .stderr_has("modified src/a.rs");
    run(&sb, &["lint"])
        .status(0)
        .stderr_has("run lint (1 file changed: src/a.rs)");
    assert_eq!(fs::read_to_string(sb.marker()).unwrap().lines().count(), 4);
}

/// Q.3 through the real hook: after a commit ran a build, `run --all` skips it, and a build
/// run by hand is not replaced by an older one at the next commit.
#[test]
fn issue_q_the_hook_and_ordinary_runs_share_results() {
    let sb = staged_project();
    sb.write(
        "zccache.toml",
        "[tasks.build]\ncommand = \"mkdir -p dist && cat src/a.rs > dist/out && echo build >> \\\"$MARKER\\\"\"\noutputs = [\"dist\"]\n",
    );
    sb.cmd(["hook", "install"]).status(0);
    sb.git(&["add", "-A"]).status(0);
    sb.git(&["commit", "-q", "-m", "first"])
        .env("MARKER", sb.marker())
        .status(0)
        .stderr_has("run build");
    run(&sb, &["--all"]).status(0).stderr_has("skip build");
    sb.write("src/a.rs", "fn a() { 2 }\n");
    run(&sb, &["build"]).status(0).stderr_has("run build");
    sb.git(&["commit", "-q", "-am", "second"])
        .env("MARKER", sb.marker())
        .status(0)
        .stderr_has("skip build");
    assert_eq!(sb.read("dist/out"), "fn a() { 2 }\n");
    assert_eq!(fs::read_to_string(sb.marker()).unwrap().lines().count(), 2);
}

/// git's global excludes leave files out of every walk (the parallel one of a whole set,
/// the own one of a per-file set): the default file (`$XDG_CONFIG_HOME/git/ignore`), or
/// the file a git config names (`core.excludesFile`, any case), which replaces the default.
#[test]
fn gits_global_excludes_leave_files_out_of_every_walk() {
    let sb = Sandbox::new();
    sb.write("a.py", "a\n")
        .write("b.log", "b\n")
        .write("c.tmp", "c\n");
    let home = sb.outside("home");
    fs::create_dir_all(&home).unwrap();
    let config_home = sb.state().with_file_name("config");
    fs::create_dir_all(config_home.join("git")).unwrap();
    fs::write(config_home.join("git/ignore"), "*.log\n").unwrap();
    let named = sb.outside("excludes");
    fs::write(&named, "*.tmp\n").unwrap();
    let gitconfig = sb.outside("gitconfig");
    let setting = format!("[core]\n\tExcludesFile = {}\n", named.display());
    fs::write(&gitconfig, setting).unwrap();
    let cases = [
        ("/dev/null", "b.log", "c.tmp"),
        (gitconfig.to_str().unwrap(), "c.tmp", "b.log"),
    ];
    for (config, left_out, kept) in cases {
        let with = |cmd: Cmd| cmd.env("HOME", &home).env("GIT_CONFIG_GLOBAL", config);
        let listed = with(run(&sb, &["--cache", ".cache/each.json", "--files", "*"]))
            .args(["--", "true"])
            .status(0);
        assert!(listed.stderr.contains(kept), "{}", listed.stderr);
        assert!(!listed.stderr.contains(left_out), "{}", listed.stderr);
        let whole = ["--cache", ".cache/whole.json", "--", "sh", "-c"];
        let whole = |sb: &Sandbox| with(run(sb, &whole)).args(["echo ran >> \"$MARKER\""]);
        let before = sb.marker_count();
        whole(&sb).status(0);
        sb.write(left_out, format!("edited with {config}\n"));
        whole(&sb).status(0).stderr_has("skip (");
        sb.write(kept, format!("edited with {config}\n"));
        whole(&sb).status(0);
        assert_eq!(sb.marker_count(), before + 2, "{config}");
        sb.cmd(["stop"]).status(0);
        fs::remove_dir_all(sb.path(".cache")).unwrap();
    }
}
