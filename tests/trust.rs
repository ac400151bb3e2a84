//! Issue G: trust boundaries. What zccache did not make itself is hostile: another local
//! user (played by `nobody` through setpriv), a state directory it does not own, a remote
//! anyone can write. Each case is the attack itself, run for real.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::support::{Sandbox, Tool, available};

const SOURCE: &str = "int f(void) { return 42; }\n";

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn daemon_pid(sb: &Sandbox) -> u64 {
    sb.cmd(["status", "--json"]).status(0).json()["daemon"]["pid"]
        .as_u64()
        .expect("a daemon")
}

/// Issue G.3: misses write their object and depfile in a private directory of the state
/// dir, never in the shared temp dir, where another user planted symlinks to a file of ours
/// under the names the daemon used to pick (`zccache-<pid>-<n>.o/.d`).
#[test]
fn issue_g_scratch_files_are_private_and_planted_links_are_never_followed() {
    if !available(Tool::SecondUser) {
        return;
    }
    let sb = Sandbox::new();
    sb.open_to_others().write("a.c", SOURCE);
    let shared_tmp = sb.outside("tmp");
    fs::create_dir(&shared_tmp).unwrap();
    fs::set_permissions(&shared_tmp, fs::Permissions::from_mode(0o1777)).unwrap();
    let victim = sb.outside("victim");
    fs::write(&victim, "precious\n").unwrap();
    // A leftover of a daemon killed by -9: swept when the next one starts.
    fs::create_dir(sb.state().join("scratch")).unwrap();
    fs::set_permissions(
        sb.state().join("scratch"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    fs::create_dir(sb.state().join("scratch/7")).unwrap();
    fs::write(sb.state().join("scratch/7/out.o"), "stale").unwrap();

    sb.cmd(["start"]).env("TMPDIR", &shared_tmp).status(0);
    let pid = daemon_pid(&sb);
    let plant = format!(
        "for n in $(seq 0 40); do for e in o d; do ln -s {v} {t}/zccache-{pid}-$n.$e; done; done",
        v = victim.display(),
        t = shared_tmp.display()
    );
    sb.as_nobody(&plant).status(0);
    let planted = fs::read_dir(&shared_tmp).unwrap().count();

    let compile = ["gcc", "-c", "a.c", "-MD", "-o", "a.o"];
    sb.cmd(compile).status(0);
    sb.cmd(["gcc", "a.o", "-shared", "-o", "liba.so"]).status(0);
    sb.cmd(["ar", "rcs", "liba.a", "a.o"]).status(0);

    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(fs::read_dir(&shared_tmp).unwrap().count(), planted);
    let object = fs::read(sb.path("a.o")).unwrap();
    assert!(object.starts_with(b"\x7fELF"));
    assert!(sb.read("a.d").contains("a.c"));
    let scratch = sb.state().join("scratch");
    assert_eq!(mode(&scratch), 0o700);
    assert_eq!(
        fs::read_dir(&scratch).unwrap().count(),
        0,
        "the leftover was swept and each miss removed its own"
    );
}

/// Issue G.7: a state directory owned by another user (with a `daemon.pid` symlink aimed at
/// a file of ours) or a symlink to a world-writable directory is refused with one line; the
/// wrapped compiler still runs, nothing is written there or through it, no mode changes.
#[test]
fn issue_g_a_state_dir_of_another_user_is_refused_and_left_alone() {
    if !available(Tool::SecondUser) {
        return;
    }
    let sb = Sandbox::new();
    sb.open_to_others().write("a.c", SOURCE);
    let victim = sb.outside("victim");
    fs::write(&victim, "precious\n").unwrap();
    let common = sb.outside("common");
    fs::create_dir(&common).unwrap();
    fs::set_permissions(&common, fs::Permissions::from_mode(0o1777)).unwrap();
    let theirs = common.join("theirs");
    let script = format!(
        "mkdir -m 0755 {d} && ln -s {v} {d}/daemon.pid && ln -s {v} {d}/daemon.log",
        d = theirs.display(),
        v = victim.display()
    );
    sb.as_nobody(&script).status(0);
    let open_dir = sb.outside("open");
    fs::create_dir(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o1777)).unwrap();
    let linked = sb.outside("linked");
    std::os::unix::fs::symlink(&open_dir, &linked).unwrap();

    for (dir, why) in [
        (&theirs, "is owned by uid 65534"),
        (&linked, "is a symlink"),
    ] {
        let ran = sb
            .cmd(["gcc", "-c", "a.c", "-o", "a.o"])
            .env("ZCCACHE_DIR", dir)
            .status(0)
            .stderr_has(why)
            .stderr_has("refusing to use it");
        assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
        assert!(fs::read(sb.path("a.o")).unwrap().starts_with(b"\x7fELF"));
        sb.cmd(["status"])
            .env("ZCCACHE_DIR", dir)
            .status(2)
            .stderr_has("refusing to use it");
        sb.run_sh(&["--cache", ".cache/t.json"], "true")
            .env("ZCCACHE_DIR", dir)
            .status(0)
            .stderr_has("refusing to use it");
    }
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(fs::read_dir(&theirs).unwrap().count(), 2);
    assert_eq!(fs::symlink_metadata(&theirs).unwrap().uid(), 65534);
    assert_eq!(mode(&open_dir), 0o1777, "never chmodded");
    assert_eq!(fs::read_dir(&open_dir).unwrap().count(), 0);
}
