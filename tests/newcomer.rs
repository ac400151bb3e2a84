//! Issue Q: a newcomer's first day. Usage errors stop with one clear line and exit 2,
//! nothing panics, and what zccache does on its own is said.

use crate::support::Sandbox;

/// Q.5: a reader that goes away (`| head -1`) ends zccache quietly, as it ends cat or git:
/// no panic, no message.
#[test]
fn issue_q_a_closed_pipe_ends_a_command_quietly() {
    let sb = Sandbox::new();
    let tasks: String = (0..40)
        .map(|n| format!("[tasks.t{n}]\ncommand = \"true\"\n"))
        .collect();
    sb.write("zccache.toml", tasks);
    for listing in ["tasks", "tasks --json"] {
        for _ in 0..3 {
            let script = format!(
                "{} {listing} | head -c1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
                crate::support::ZCCACHE
            );
            let ran = sb.program("bash").args(["-c", &script]).status(0);
            assert!(ran.stderr.is_empty(), "{listing}: {}", ran.stderr);
            assert!(
                matches!(ran.stdout.trim(), "0" | "141"),
                "{listing}: {}",
                ran.stdout
            );
        }
    }
}

/// Q.7: a first word that is no subcommand and names no compiler, rustc, ar or ld is an
/// unknown subcommand with a hint (exit 2), not a "compiler not found" or a run of
/// `/usr/bin/stat`; a path or `--` still runs any tool.
#[test]
fn issue_q_an_unknown_first_word_is_a_usage_error_with_a_hint() {
    let sb = Sandbox::new();
    sb.cmd(["rn", "--all"])
        .status(2)
        .stderr_has("unrecognized subcommand 'rn'")
        .stderr_has("did you mean 'run'?")
        .stderr_lacks("compiler not found");
    let stat = sb.cmd(["stat", "x"]).status(2);
    assert!(stat.stdout.is_empty() && !stat.stderr.contains("cannot statx"));
    let through = sb.cmd(["--", "sh", "-c", "echo through; exit 3"]).status(3);
    assert_eq!(through.stdout, "through\n");
    let by_path = sb.cmd(["/bin/sh", "-c", "echo by path"]).status(0);
    assert_eq!(by_path.stdout, "by path\n");
}

/// Q.8: `hook install --tasks` checks the names against zccache.toml (a hook naming a task
/// that does not exist would fail every commit) and trims them.
#[test]
fn issue_q_hook_install_checks_and_trims_task_names() {
    let sb = Sandbox::new();
    sb.write(
        "zccache.toml",
        "[tasks.lint]\ncommand = \"true\"\n[tasks.test]\ncommand = \"true\"\n",
    );
    sb.git(&["init", "-q"]).status(0);
    let hook = sb.path(".git/hooks/pre-commit");
    sb.cmd(["hook", "install", "--tasks", "lint,nosuch"])
        .status(2)
        .stderr_has("no task named \"nosuch\"");
    assert!(!hook.exists(), "no hook written");
    sb.cmd(["hook", "install", "--tasks", "lint, test"])
        .status(0);
    let script = std::fs::read_to_string(&hook).unwrap();
    assert!(script.contains("run --staged 'lint' 'test'"), "{script}");
}

/// Q.12: `clear` deletes the artifact store, so on a terminal it asks first (through a real
/// pseudo-terminal, `script`); `n` keeps everything, `--yes` or a non-terminal stdin does
/// not ask.
#[test]
fn issue_q_clear_asks_on_a_terminal_before_deleting_the_store() {
    let sb = Sandbox::new();
    sb.cmd(["kv", "put", "k"]).stdin("value").status(0);
    let on_a_terminal = |answer: &str| {
        let command = format!("{} clear", crate::support::ZCCACHE);
        sb.program("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(answer)
            .output()
    };
    let kept = on_a_terminal("n\n");
    let said = String::from_utf8_lossy(&kept.stdout);
    assert!(said.contains("delete the artifact store"), "{said}");
    assert!(said.contains("nothing deleted"), "{said}");
    assert_eq!(sb.cmd(["kv", "get", "k"]).status(0).stdout, "value");
    on_a_terminal("y\n");
    sb.cmd(["kv", "get", "k"]).status(1);
    sb.cmd(["kv", "put", "k"]).stdin("again").status(0);
    sb.cmd(["clear", "--yes"]).status(0).stderr_has("cleared");
    sb.cmd(["kv", "get", "k"]).status(1);
}

/// Q.4, Q.9: an empty command (`[]`, `""`) or a command of the wrong type is a config error
/// naming file, line and key (exit 2), in the TOML parser's own layout, never a panic, a
/// "success" or serde's "untagged enum".
#[test]
fn issue_q_empty_or_mistyped_commands_are_config_errors() {
    let sb = Sandbox::new();
    for (command, said) in [
        ("[]", "the command is empty"),
        ("\"\"", "the command is empty"),
        ("5", "expected a string or a list of strings"),
    ] {
        sb.write("zccache.toml", format!("[tasks.a]\ncommand = {command}\n"));
        let ran = sb
            .cmd(["run", "a"])
            .status(2)
            .stderr_has("zccache.toml")
            .stderr_has(said)
            .stderr_lacks("panicked")
            .stderr_lacks("untagged");
        assert!(ran.stderr.contains("line 2"), "{}", ran.stderr);
    }
    sb.write("zccache.toml", "[tasks.a]\ncomand = \"true\"\n");
    let ran = sb.cmd(["run", "a"]).status(2);
    assert!(
        ran.stderr.contains("\n2 | comand = \"true\"\n"),
        "the parser's block keeps its lines:\n{}",
        ran.stderr
    );
}

/// Q.6: usage errors stop (exit 2, one line, nothing run) instead of warning and running:
/// a `--cache` that is a directory, `root = "nope"`, `jobs = 0`, a depends_on cycle in
/// `zccache tasks`, `run --all` on a file without tasks; an input set that matches no file
/// is said, not skipped in silence.
#[test]
fn issue_q_usage_errors_stop_before_anything_runs() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path(".cache/dir")).unwrap();
    sb.run_sh(&["--cache", ".cache/dir"], "echo ran >> \"$MARKER\"")
        .status(2)
        .stderr_has("is a directory");
    let bad = [
        (
            "[tasks.a]\ncommand = \"true\"\nroot = \"nope\"\n",
            "does not exist",
        ),
        (
            "[defaults]\njobs = 0\n[tasks.a]\ncommand = \"true\"\n",
            "jobs must be 1 to 256",
        ),
        (
            "[tasks.a]\ncommand = \"true\"\ndepends_on = [\"b\"]\n[tasks.b]\ncommand = \"true\"\ndepends_on = [\"a\"]\n",
            "a -> b -> a",
        ),
    ];
    for (file, said) in bad {
        sb.write("zccache.toml", file);
        sb.cmd(["run", "a"]).status(2).stderr_has(said);
        if said.contains("->") {
            sb.cmd(["tasks"]).status(2).stderr_has(said);
        }
    }
    sb.write("zccache.toml", "[defaults]\nexclude = [\"x\"]\n");
    sb.cmd(["run", "--all"])
        .status(2)
        .stderr_has("defines no tasks");
    assert_eq!(sb.marker_count(), 0);
    sb.write(
        "zccache.toml",
        "[tasks.b]\ncommand = \"true\"\next = [\"nothing\"]\n",
    );
    sb.cmd(["run", "b"])
        .status(0)
        .stderr_has("b: the input set is empty");
    sb.cmd(["run", "b"])
        .status(0)
        .stderr_has("skip b")
        .stderr_has("the input set is empty");
}

/// Q.10: `why` says what it looked for and how to point it: a compile output that never
/// missed is asked of the daemon (not "no zccache.toml"), and a bare `why` after runs with
/// `--cache` names `--cache`.
#[test]
fn issue_q_why_says_where_it_looked_and_how_to_point_it() {
    let sb = Sandbox::new();
    sb.cmd(["start"]).status(0);
    sb.cmd(["why", "nonexist.o"])
        .status(1)
        .stderr_lacks("zccache.toml");
    sb.run_sh(&["--cache", ".cache/lint.json"], "true")
        .status(0);
    sb.cmd(["why"])
        .status(2)
        .stderr_has("zccache why --cache FILE")
        .stderr_lacks("No such file");
    sb.cmd(["why", "lint"])
        .status(2)
        .stderr_has("\"lint\" is no task")
        .stderr_has("no zccache.toml");
}

/// Q.11: `status` groups the watched tasks by project (git work tree), sorted, each state
/// file once, with sizes a person reads and plurals that agree.
#[test]
fn issue_q_status_groups_tasks_by_project_in_plain_words() {
    let sb = Sandbox::new();
    for project in ["b", "a"] {
        sb.write(&format!("{project}/src/x.txt"), "x\n");
        sb.git(&["init", "-q", project]).status(0);
    }
    for (dir, cache) in [
        ("a", ".cache/lint.json"),
        ("a", ".cache/test.json"),
        ("b", ".cache/t.json"),
    ] {
        sb.cmd(["run", "--cache", cache, "--", "true"])
            .cwd(sb.path(dir))
            .status(0);
    }
    let status = sb.cmd(["status"]).status(0).stdout;
    let a = status.find(&format!("{} (2 watched tasks):", sb.path("a").display()));
    let b = status.find(&format!("{} (1 watched task):", sb.path("b").display()));
    assert!(a.is_some() && b.is_some() && a < b, "{status}");
    assert!(status.contains("\n    .cache/lint.json: "), "{status}");
    assert!(
        status.contains("\n    .cache/t.json: 1 file, would skip\n"),
        "{status}"
    );
    assert_eq!(status.matches(".cache/lint.json").count(), 1, "{status}");
    assert!(status.contains(" of 10.0 GiB"), "{status}");
    assert!(
        !status.contains(" bytes") && !status.contains(" 1 files"),
        "{status}"
    );
}

/// Q.13: a remote tier that cannot be used (a missing key file, a key shorter than 32
/// bytes) is said on the command line once, when the daemon starts, and shown by `status`.
#[test]
fn issue_q_a_remote_that_cannot_be_used_is_said_once_and_in_status() {
    let sb = Sandbox::new();
    sb.write("src/x.txt", "x\n");
    let missing = sb.outside("no-such.key");
    let short = [("ZCCACHE_REMOTE_KEY", "short".to_string())];
    let file = [("ZCCACHE_REMOTE_KEY_FILE", missing.display().to_string())];
    for (env, said) in [
        (&file[..], "no-such.key"),
        (&short[..], "needs at least 32"),
    ] {
        let with_env = |cmd: crate::support::Cmd| {
            let mut cmd = cmd.env("ZCCACHE_REMOTE", "redis://127.0.0.1:1/0");
            for (name, value) in env {
                cmd = cmd.env(name, value);
            }
            cmd
        };
        with_env(sb.cmd(["run", "--cache", ".cache/t.json", "--", "true"]))
            .status(0)
            .stderr_has("warning: the remote cache tier is off: ")
            .stderr_has(said);
        with_env(sb.cmd(["run", "--cache", ".cache/t.json", "--", "true"]))
            .status(0)
            .stderr_lacks("remote");
        let status = with_env(sb.cmd(["status"])).status(0).stdout;
        assert!(
            status.contains("  remote: off (") && status.contains(said),
            "{status}"
        );
        sb.cmd(["stop"]).status(0);
    }
}

/// Q.6: `zccache tasks` says what is wrong with a task given wrongly (a root that does not
/// exist), as `run` refuses it, instead of "unknown".
#[test]
fn issue_q_tasks_says_why_a_task_is_invalid() {
    let sb = Sandbox::new();
    sb.write(
        "zccache.toml",
        "[tasks.a]\ncommand = \"true\"\nroot = \"nope\"\n[tasks.b]\ncommand = \"true\"\n",
    );
    let listed = sb.cmd(["tasks"]).status(0).stdout;
    assert!(
        listed.contains("a            invalid     the root "),
        "{listed}"
    );
    assert!(listed.contains("nope does not exist"), "{listed}");
    let json = sb.cmd(["tasks", "--json"]).status(0).stdout;
    assert!(json.contains("\"invalid\":\"the root "), "{json}");
}
