//! zccache.toml tasks, `zccache tasks`, git hooks, `--staged`, completions.

use std::fs;

use crate::support::Sandbox;

/// A project with two tasks: `lint` sees `*.rs`, `test` sees `*.rs` and `*.txt`.
fn project() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("src/a.rs", "fn a() {}\n")
        .write("data/t.txt", "1\n");
    sb.write(
        "zccache.toml",
        r#"
[defaults]
exclude = [".cache"]

[tasks.lint]
command = "echo lint >> \"$MARKER\""
ext = ["rs"]

[tasks.test]
command = ["sh", "-c", "echo test >> \"$MARKER\""]
ext = ["rs", "txt"]
depends_on = ["lint"]
"#,
    );
    sb
}

fn marker_lines(sb: &Sandbox) -> Vec<String> {
    fs::read_to_string(sb.marker())
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

fn run(sb: &Sandbox, args: &[&str]) -> crate::support::Cmd {
    sb.cmd(["run"]).args(args).env("MARKER", sb.marker())
}

#[test]
fn config_errors_name_file_line_and_key() {
    let sb = Sandbox::new();
    sb.write(
        "zccache.toml",
        "[tasks.lint]\ncommand = \"true\"\nbogus = 1\n",
    );
    run(&sb, &["lint"])
        .status(2)
        .stderr_has("zccache.toml")
        .stderr_has("line 3")
        .stderr_has("bogus");
    sb.write(
        "zccache.toml",
        "[tasks.lint]\ncommand = \"true\"\ncache_type = \"zip\"\n",
    );
    run(&sb, &["lint"]).status(2).stderr_has("line 3");
}

#[test]
fn depends_on_cycles_are_refused_and_named() {
    let sb = Sandbox::new();
    sb.write(
        "zccache.toml",
        "[tasks.a]\ncommand = \"true\"\ndepends_on = [\"b\"]\n\
         [tasks.b]\ncommand = \"true\"\ndepends_on = [\"a\"]\n",
    );
    run(&sb, &["a"]).status(2).stderr_has("a -> b -> a");
    // The file is refused as a whole (issue Q.6), whatever task is asked for.
    run(&sb, &["nope"]).status(2).stderr_has("a -> b -> a");
    sb.write("zccache.toml", "[tasks.a]\ncommand = \"true\"\n");
    run(&sb, &["nope"])
        .status(2)
        .stderr_has("no task named \"nope\"");
}

#[test]
fn dependencies_run_first_and_once() {
    let sb = project();
    let ran = run(&sb, &["test", "lint"]).status(0);
    assert_eq!(marker_lines(&sb), ["lint", "test"]);
    let lint_at = ran.stderr.find("run lint (").unwrap();
    let test_at = ran.stderr.find("run test (").unwrap();
    assert!(lint_at < test_at, "{}", ran.stderr);
}

#[test]
fn lint_skips_while_test_runs() {
    let sb = project();
    run(&sb, &["lint", "test"]).status(0);
    sb.write("data/t.txt", "2\n");
    run(&sb, &["lint", "test"])
        .status(0)
        .stderr_has("zccache: skip lint (1 file unchanged since")
        .stderr_has("zccache: run test (1 file changed: data/t.txt)");
    assert_eq!(marker_lines(&sb), ["lint", "test", "test"]);
    assert!(sb.path(".zccache/run/lint.json").exists());
}

#[test]
fn first_failure_stops_with_its_status() {
    let sb = Sandbox::new();
    sb.write(
        "zccache.toml",
        "[tasks.fail]\ncommand = \"echo fail >> \\\"$MARKER\\\"; exit 3\"\n\
         [tasks.after]\ncommand = \"echo after >> \\\"$MARKER\\\"\"\n",
    );
    // One at a time, the failure comes first and nothing starts after it.
    run(&sb, &["-j", "1", "fail", "after"]).status(3);
    assert_eq!(marker_lines(&sb), ["fail"]);
    run(&sb, &["-j", "1", "--all"]).status(3);
    assert_eq!(marker_lines(&sb), ["fail", "after", "fail"]);
}

#[test]
fn command_line_flags_override_the_task() {
    let sb = project();
    sb.write("notes.md", "a");
    run(&sb, &["lint"]).status(0);
    sb.write("notes.md", "b");
    run(&sb, &["lint"]).status(0).stderr_has("skip lint");
    run(&sb, &["lint", "--ext", "md"])
        .status(0)
        .stderr_has("run lint");
    sb.write("notes.md", "c");
    run(&sb, &["lint", "--ext", "md"])
        .status(0)
        .stderr_has("run lint (1 file changed: notes.md)");
}

#[test]
fn tasks_and_commands_do_not_mix() {
    let sb = project();
    run(&sb, &["lint", "--", "true"])
        .status(2)
        .stderr_has("not both");
    run(&sb, &[]).status(2).stderr_has("nothing to run");
}

#[test]
fn tasks_lists_results_as_text_and_json() {
    let sb = project();
    run(&sb, &["lint"]).status(0);
    let ran = sb.cmd(["tasks"]).status(0);
    assert!(ran.stdout.contains("lint"), "{}", ran.stdout);
    assert!(ran.stdout.contains("would skip"), "{}", ran.stdout);
    assert!(ran.stdout.contains("never run"), "{}", ran.stdout);
    let ran = sb.cmd(["tasks", "--json"]).status(0);
    let lines: Vec<serde_json::Value> = ran
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["task"], "lint");
    assert_eq!(lines[0]["would_skip"], true);
    assert_eq!(lines[0]["last"]["decision"], "run");
    assert_eq!(lines[0]["last"]["exit_status"], 0);
    assert!(lines[0]["last_success_ms"].as_u64().is_some());
    assert_eq!(lines[1]["task"], "test");
    assert_eq!(lines[1]["would_skip"], false);
    assert_eq!(lines[1]["depends_on"][0], "lint");
    assert!(lines[1]["last"].is_null());
    assert!(lines[1]["last_success_ms"].is_null());
    assert_eq!(marker_lines(&sb), ["lint"], "listing runs nothing");
}

#[test]
fn staged_mode_sees_staged_edits_only() {
    let sb = project();
    sb.git(&["init", "-q"]).status(0);
    sb.git(&["add", "-A"]).status(0);
    run(&sb, &["--staged", "lint"])
        .status(0)
        .stderr_has("run lint");
    run(&sb, &["--staged", "lint"])
        .status(0)
        .stderr_has("skip lint");
    sb.write("src/a.rs", "fn a() { unstaged() }\n");
    run(&sb, &["--staged", "lint"])
        .status(0)
        .stderr_has("skip lint");
    sb.git(&["add", "src/a.rs"]).status(0);
    run(&sb, &["--staged", "lint"])
        .status(0)
        .stderr_has("run lint");
    assert_eq!(marker_lines(&sb), ["lint", "lint"]);
}

#[test]
fn pre_commit_hook_runs_tasks_skips_unchanged_and_blocks_failures() {
    let sb = Sandbox::new();
    sb.write("src/a.rs", "fn a() {}\n").write(
        "zccache.toml",
        "[tasks.check]\ncommand = \"echo check >> \\\"$MARKER\\\"; test ! -f src/fail.rs\"\next = [\"rs\"]\n",
    );
    sb.write(".gitignore", ".zccache/\n");
    sb.git(&["init", "-q"]).status(0);
    sb.cmd(["hook", "install", "--tasks", "check"])
        .status(0)
        .stderr_has("installed");
    sb.git(&["add", "-A"]).status(0);
    sb.git(&["commit", "-q", "-m", "first"]).status(0);
    assert_eq!(marker_lines(&sb), ["check"]);
    sb.git(&["commit", "-q", "--allow-empty", "-m", "second"])
        .status(0)
        .stderr_has("skip check");
    assert_eq!(marker_lines(&sb), ["check"]);
    sb.write("src/fail.rs", "// breaks the check\n");
    sb.git(&["add", "-A"]).status(0);
    sb.git(&["commit", "-q", "-m", "third"]).status(1);
    assert_eq!(marker_lines(&sb), ["check", "check"]);
    let log = sb.git(&["log", "--oneline"]).status(0);
    assert_eq!(
        log.stdout.lines().count(),
        2,
        "the failing commit was blocked"
    );
}

#[test]
fn hook_install_respects_foreign_hooks() {
    let sb = Sandbox::new();
    sb.git(&["init", "-q"]).status(0);
    let hook = sb.path(".git/hooks/pre-commit");
    fs::create_dir_all(hook.parent().unwrap()).unwrap();
    fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
    sb.cmd(["hook", "install"]).status(2).stderr_has("--force");
    assert_eq!(fs::read_to_string(&hook).unwrap(), "#!/bin/sh\necho mine\n");
    sb.cmd(["hook", "install", "--force"]).status(0);
    assert!(
        fs::read_to_string(&hook)
            .unwrap()
            .contains("run --staged --all")
    );
    sb.cmd(["hook", "uninstall"])
        .status(0)
        .stderr_has("restored");
    assert_eq!(fs::read_to_string(&hook).unwrap(), "#!/bin/sh\necho mine\n");
    sb.cmd(["hook", "uninstall"])
        .status(2)
        .stderr_has("not written by zccache");
}

#[test]
fn completions_for_each_shell() {
    let sb = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let ran = sb.cmd(["completions", shell]).status(0);
        assert!(ran.stdout.contains("zccache"), "{shell}");
        assert!(ran.stdout.contains("mark-success"), "{shell}");
    }
    sb.cmd(["completions", "nosh"]).status(2);
}

#[test]
fn why_names_a_task_wherever_its_root_is() {
    let sb = Sandbox::new();
    sb.write("src/a.rs", "fn a() {}\n").write(
        "zccache.toml",
        "[defaults]\nroot = \"src\"\n[tasks.lint]\ncommand = \"exit 3\"\n",
    );
    run(&sb, &["lint"]).status(3);
    let ran = sb.cmd(["why", "lint"]).status(0);
    assert!(
        ran.stdout.contains("run (no previous success), exit 3"),
        "{}",
        ran.stdout
    );
    assert!(sb.path("src/.zccache/run/lint.json.log").exists());
}

/// Writes an executable `mytool` into `bin` that prints `body` and marks a run.
fn install_tool(bin: &std::path::Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(bin).unwrap();
    let tmp = bin.join("mytool.new");
    let script = format!("#!/bin/sh\necho {body}\necho ran >> \"$MARKER\"\n");
    fs::write(&tmp, script).unwrap();
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
    fs::rename(&tmp, bin.join("mytool")).unwrap();
}

/// Issue O.1: a string command keys the program it starts, as an argv command does: a
/// different `mytool` at the same name in `PATH` makes it run, the same one skips; what the
/// script runs that cannot be read is said by `--explain`.
#[test]
fn issue_o_a_string_command_keys_the_tools_it_starts() {
    let sb = Sandbox::new();
    sb.write("src/a.rs", "fn a() {}\n").write(
        "zccache.toml",
        "[tasks.t]\ncommand = \"V=1 mytool --version && echo $(date) >/dev/null\"\n",
    );
    let bin = sb.outside("bin/x").parent().unwrap().to_path_buf();
    install_tool(&bin, "v1");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let t = |args: &[&str]| {
        sb.cmd(["run", "t"])
            .args(args)
            .env("PATH", &path)
            .env("MARKER", sb.marker())
    };
    t(&[]).status(0);
    t(&["--dry-run", "--explain"])
        .status(0)
        .stderr_has("skip t")
        .stderr_has("  not keyed: command substitution in the script");
    install_tool(&bin, "v2");
    t(&["--dry-run", "--explain"])
        .status(1)
        .stderr_has("run t (tool mytool changed)")
        .stderr_has("  changed: tool mytool");
    let ran = t(&[]).status(0).stderr_has("run t (tool mytool changed)");
    assert_eq!(ran.stdout, "v2\n");
    t(&[]).status(0).stderr_has("skip t");
    assert_eq!(marker_lines(&sb), ["ran", "ran"]);
}

/// Issue O.1: a string command that starts `cargo` through rustup's proxy runs again when
/// `RUSTUP_TOOLCHAIN` selects another toolchain, and skips on the same one.
#[test]
fn issue_o_a_string_command_follows_the_rustup_toolchain() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    sb.write("src/a.rs", "fn a() {}\n")
        .write("zccache.toml", "[tasks.t]\ncommand = \"cargo --version\"\n");
    let home = sb.outside("rustup");
    for (name, body) in [("tca", "a"), ("tcb", "b")] {
        let bin = home.join("toolchains").join(name).join("bin");
        fs::create_dir_all(&bin).unwrap();
        let script = format!("#!/bin/sh\necho cargo-{body}\necho ran >> \"$MARKER\"\n");
        fs::write(bin.join("cargo"), script).unwrap();
        fs::set_permissions(bin.join("cargo"), fs::Permissions::from_mode(0o755)).unwrap();
    }
    let settings = "version = \"12\"\ndefault_toolchain = \"tca\"\nprofile = \"default\"\n";
    fs::write(home.join("settings.toml"), settings).unwrap();
    let t = |toolchain: &str| {
        sb.cmd(["run", "t"])
            .env("RUSTUP_HOME", &home)
            .env("RUSTUP_TOOLCHAIN", toolchain)
            .env("MARKER", sb.marker())
    };
    assert_eq!(t("tca").status(0).stdout, "cargo-a\n");
    t("tca").status(0).stderr_has("skip t");
    let ran = t("tcb").status(0).stderr_has("run t (tool cargo changed)");
    assert_eq!(ran.stdout, "cargo-b\n");
    t("tcb").status(0).stderr_has("skip t");
    assert_eq!(marker_lines(&sb), ["ran", "ran"]);
}
