//! Worktrees and clones share task results on one machine (issue P item 2): each success is
//! published under the portable key into this machine's store, with no remote configured,
//! and a second checkout whose inputs are the same skips and gets the outputs restored.

use std::fs;

use crate::support::Sandbox;

/// A repository with a task that concatenates its sources into `dist/out.txt`, committed.
fn repository() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("src/a.txt", "alpha\n")
        .write("src/b.txt", "beta\n")
        .write(".gitignore", "dist/\n.zccache/\n")
        .write(
            "zccache.toml",
            "[tasks.build]\ncommand = \"mkdir -p dist && cat src/*.txt > dist/out.txt && echo built >> \\\"$MARKER\\\"\"\noutputs = [\"dist\"]\n",
        );
    sb.git(&["init", "-q", "-b", "main"]).status(0);
    sb.git(&["add", "-A"]).status(0);
    sb.git(&["commit", "-qm", "init"]).status(0);
    sb
}

/// `zccache run build` (its command counts its runs in the marker file).
fn build(sb: &Sandbox) -> crate::support::Cmd {
    sb.cmd(["run", "build"]).env("MARKER", sb.marker())
}

#[test]
fn issue_p_a_second_worktree_skips_what_the_first_passed() {
    let sb = repository();
    build(&sb)
        .status(0)
        .stderr_has("run build (no previous success");
    assert_eq!(sb.marker_count(), 1);

    let second = sb.outside("second");
    sb.git(&["worktree", "add", "-q"]).args([&second]).status(0);
    build(&sb).cwd(&second).status(0).stderr_has(&format!(
        "skip build (the same inputs passed in {}; restored 1 output",
        sb.root().display()
    ));
    assert_eq!(sb.marker_count(), 1, "the second worktree ran nothing");
    assert_eq!(
        fs::read_to_string(second.join("dist/out.txt")).unwrap(),
        "alpha\nbeta\n"
    );
    // Recorded there as a success of its own: the next check skips by itself.
    build(&sb).cwd(&second).status(0).stderr_has("skip build (");

    // Other inputs in the second worktree: it runs.
    fs::write(second.join("src/b.txt"), "gamma\n").unwrap();
    build(&sb)
        .cwd(&second)
        .status(0)
        .stderr_has("run build (1 file changed: src/b.txt");
    assert_eq!(sb.marker_count(), 2);

    // ...and that success serves the first worktree when it gets the same bytes.
    sb.write("src/b.txt", "gamma\n");
    build(&sb)
        .status(0)
        .stderr_has("skip build (the same inputs passed in ");
    assert_eq!(sb.marker_count(), 2);
    assert_eq!(sb.read("dist/out.txt"), "alpha\ngamma\n");
}

#[test]
fn issue_p_a_checkout_never_takes_its_own_published_result_over_its_record() {
    let sb = repository();
    build(&sb).status(0);
    // Forgetting this checkout's record means: run. Its own published success is no skip.
    sb.cmd([
        "fp",
        "--cache-file",
        ".zccache/run/build.json",
        "invalidate",
    ])
    .status(0);
    build(&sb).status(0).stderr_has("run build (");
    assert_eq!(sb.marker_count(), 2);
}

#[test]
fn issue_p_a_clone_elsewhere_with_other_inputs_runs() {
    let sb = repository();
    build(&sb).status(0);
    let clone = sb.outside("clone");
    sb.git(&["clone", "-q", "."]).args([&clone]).status(0);
    fs::write(clone.join("src/a.txt"), "other\n").unwrap();
    build(&sb)
        .cwd(&clone)
        .status(0)
        .stderr_has("run build (no previous success");
    assert_eq!(sb.marker_count(), 2);
    assert_eq!(
        fs::read_to_string(clone.join("dist/out.txt")).unwrap(),
        "other\nbeta\n"
    );
}
