//! Issue L, "Names and state": task names that would be paths, file names that hold terminal
//! escapes, the watcher after `rm -rf .zccache/`, state files planted as symlinks or FIFOs,
//! and a forged shared replay. Each case is the attack (or the accident) itself, run for real.

use crate::support::Sandbox;

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
