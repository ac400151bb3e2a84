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
