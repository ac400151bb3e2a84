//! Issue G: trust boundaries. What zccache did not make itself is hostile: another local
//! user (played by `nobody` through setpriv), a state directory it does not own, a remote
//! anyone can write. Each case is the attack itself, run for real.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::remote::Redis;
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

/// A second "machine" sharing the sandbox's tree (links key the working directory): its
/// own state dir, its daemon stopped on drop.
pub(crate) struct Machine<'a> {
    sb: &'a Sandbox,
    state: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
}

impl<'a> Machine<'a> {
    pub(crate) fn new(sb: &'a Sandbox, name: &str, env: Vec<(&'static str, String)>) -> Self {
        let state = sb.outside(name);
        fs::create_dir(&state).unwrap();
        Machine { sb, state, env }
    }

    pub(crate) fn cmd<const N: usize>(&self, args: [&str; N]) -> crate::support::Cmd {
        let mut cmd = self.sb.cmd(args).env("ZCCACHE_DIR", &self.state);
        for (name, value) in &self.env {
            cmd = cmd.env(name, value);
        }
        cmd
    }

    fn remote_status(&self) -> serde_json::Value {
        self.cmd(["status", "--json"]).status(0).json()["daemon"]["remote"].clone()
    }
}

impl Drop for Machine<'_> {
    fn drop(&mut self) {
        let _ = self.cmd(["stop"]).output();
    }
}

/// Stores `bytes` as a blob on the remote and returns the entry's reference to it.
pub(crate) fn put_blob(redis: &Redis, name: &str, bytes: &str) -> serde_json::Value {
    let hex = blake3::hash(bytes.as_bytes()).to_hex().to_string();
    redis.cli(&["SET", &format!("zccache:blob:{hex}"), bytes]);
    serde_json::json!({"name": name, "blob": hex, "size": bytes.len()})
}

/// The remote entry (key, JSON) whose outputs include `output`.
pub(crate) fn entry_with(redis: &Redis, output: &str) -> (String, serde_json::Value) {
    redis
        .keys("zccache:entry:*")
        .into_iter()
        .map(|key| {
            let json = serde_json::from_str(redis.cli(&["GET", &key]).trim()).unwrap();
            (key, json)
        })
        .find(|(_, json): &(String, serde_json::Value)| {
            json["outputs"]
                .as_array()
                .unwrap()
                .iter()
                .any(|o| o["name"] == output)
        })
        .unwrap_or_else(|| panic!("no remote entry with {output}"))
}

/// Machine one archives `build/sub/liba.a` and uploads it; returns the redis server.
fn uploaded_archive(sb: &Sandbox, env: Vec<(&'static str, String)>) -> Redis {
    let redis = Redis::start().expect("checked by the caller");
    sb.write("build/sub/a.c", SOURCE);
    sb.program("gcc")
        .args(["-c", "a.c", "-o", "a.o"])
        .cwd(sb.path("build/sub"))
        .status(0);
    let mut env = env;
    env.push(("ZCCACHE_REMOTE", redis.url()));
    let one = Machine::new(sb, "one", env);
    one.cmd(["ar", "rcs", "liba.a", "a.o"])
        .cwd(sb.path("build/sub"))
        .status(0);
    one.cmd(["stop"]).status(0);
    fs::remove_file(sb.path("build/sub/liba.a")).unwrap();
    redis
}

/// Issue G.4: a remote entry is data. A forged mode (setuid) is masked to the permission
/// bits; a forged side file `../../PWNED` makes the whole entry refused, nothing written.
#[test]
fn issue_g_forged_remote_entries_never_become_paths_or_setuid_files() {
    if !available(Tool::Redis) {
        return;
    }
    let sb = Sandbox::new();
    let redis = uploaded_archive(&sb, Vec::new());
    let (key, mut entry) = entry_with(&redis, "output");
    let modes = entry["outputs"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|o| o["name"] == "modes")
        .unwrap();
    *modes = put_blob(&redis, "modes", "output 4755\n");
    redis.cli(&["SET", &key, &entry.to_string()]);

    // Blobs stored raw, so the test can read and forge them with redis-cli.
    let env = vec![
        ("ZCCACHE_REMOTE", redis.url()),
        ("ZCCACHE_COMPRESSION", "off".to_string()),
    ];
    let two = Machine::new(&sb, "two", env.clone());
    let archive = ["ar", "rcs", "liba.a", "a.o"];
    two.cmd(archive).cwd(sb.path("build/sub")).status(0);
    assert_eq!(
        two.remote_status()["hits"],
        1,
        "the archive came from the remote"
    );
    let delivered = mode(&sb.path("build/sub/liba.a"));
    assert_eq!(delivered, 0o755, "setuid masked away: {delivered:o}");

    entry["outputs"]
        .as_array_mut()
        .unwrap()
        .push(put_blob(&redis, "side:../../PWNED", "pwned\n"));
    redis.cli(&["SET", &key, &entry.to_string()]);
    fs::remove_file(sb.path("build/sub/liba.a")).unwrap();
    let three = Machine::new(&sb, "three", env);
    three.cmd(archive).cwd(sb.path("build/sub")).status(0);
    assert!(!sb.path("PWNED").exists() && !sb.path("build/PWNED").exists());
    assert!(three.remote_status()["refused"].as_u64().unwrap() >= 1);
    assert_eq!(mode(&sb.path("build/sub/liba.a")) & 0o7000, 0);
}

/// Issue G.5: with `ZCCACHE_REMOTE_KEY`, uploads are signed and only entries signed with
/// the same key are taken; unsigned or otherwise signed ones are refused and counted.
#[test]
fn issue_g_signed_remotes_take_only_entries_signed_with_their_key() {
    if !available(Tool::Redis) {
        return;
    }
    let key = |k: &str| vec![("ZCCACHE_REMOTE_KEY", k.to_string())];
    let sb = Sandbox::new();
    let redis = uploaded_archive(&sb, key("team secret, long enough to sign entries"));
    let (_, entry) = entry_with(&redis, "output");
    assert!(entry["mac"].is_string(), "uploads carry a signature");
    let archive = ["ar", "rcs", "liba.a", "a.o"];
    let fetch = |name: &str, env: Vec<(&'static str, String)>| {
        let mut env = env;
        env.push(("ZCCACHE_REMOTE", redis.url()));
        let machine = Machine::new(&sb, name, env);
        let _ = fs::remove_file(sb.path("build/sub/liba.a"));
        machine.cmd(archive).cwd(sb.path("build/sub")).status(0);
        machine.remote_status()
    };
    let same = fetch("same-key", key("team secret, long enough to sign entries"));
    assert_eq!(
        (same["hits"].as_u64(), same["refused"].as_u64()),
        (Some(1), Some(0))
    );
    let other = fetch("other-key", key("a guess that is at least 32 bytes long"));
    assert_eq!(
        (other["hits"].as_u64(), other["refused"].as_u64()),
        (Some(0), Some(1))
    );

    // An attacker without the key rewrites the entry unsigned: refused.
    let (entry_key, mut entry) = entry_with(&redis, "output");
    entry.as_object_mut().unwrap().remove("mac");
    redis.cli(&["SET", &entry_key, &entry.to_string()]);
    let unsigned = fetch("unsigned", key("team secret, long enough to sign entries"));
    assert_eq!(unsigned["hits"], 0);
    assert!(unsigned["refused"].as_u64().unwrap() >= 1);
    assert!(
        fs::read(sb.path("build/sub/liba.a"))
            .unwrap()
            .starts_with(b"!<arch>")
    );
}

/// Issue G.4: a manifest's header paths are read only when they are regular files: a FIFO
/// named by a forged remote manifest hung the compile (and then `zccache stop`).
#[test]
fn issue_g_a_fifo_in_a_forged_manifest_is_never_opened() {
    if !available(Tool::Redis) {
        return;
    }
    let redis = Redis::start().expect("checked");
    let sb = Sandbox::new();
    sb.write("inc/h.h", "#define H 1\n")
        .write("a.c", "#include \"h.h\"\nint f(void) { return H; }\n");
    let fifo = sb.outside("fifo");
    sb.program("mkfifo").args([&fifo]).status(0);
    // Blobs stored raw, so the test can read and forge them with redis-cli.
    let env = vec![
        ("ZCCACHE_REMOTE", redis.url()),
        ("ZCCACHE_COMPRESSION", "off".to_string()),
    ];
    let compile = ["gcc", "-c", "a.c", "-Iinc", "-o", "a.o"];
    let one = Machine::new(&sb, "one", env.clone());
    one.cmd(compile).status(0);
    one.cmd(["stop"]).status(0);

    let (key, mut entry) = entry_with(&redis, "manifest");
    let hex = entry["outputs"][0]["blob"].as_str().unwrap().to_string();
    let blob = redis.cli(&["GET", &format!("zccache:blob:{hex}")]);
    let mut manifest: serde_json::Value = serde_json::from_str(blob.trim()).unwrap();
    for header in manifest["entries"][0].as_array_mut().unwrap() {
        header["path"] = serde_json::json!(fifo.display().to_string());
    }
    entry["outputs"][0] = put_blob(&redis, "manifest", &manifest.to_string());
    redis.cli(&["SET", &key, &entry.to_string()]);

    let two = Machine::new(&sb, "two", env);
    let mut child = two.cmd(compile).spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the compile hung on the FIFO");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success());
    assert!(fs::read(sb.path("a.o")).unwrap().starts_with(b"\x7fELF"));
    two.cmd(["stop"]).status(0);
}

/// `field` of /proc/PID/status in kB, or utime+stime ticks for "cpu".
fn proc_stat(pid: u64, field: &str) -> u64 {
    if field == "cpu" {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        return fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    }
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Issue G.8: clients are bounded. Connections beyond the fd budget wait instead of making
/// the accept loop spin; a frame header announcing the 256 MiB maximum allocates nothing
/// until the bytes arrive; the daemon answers again once the flood is gone.
#[test]
fn issue_g_a_flood_of_clients_neither_spins_nor_balloons_the_daemon() {
    let sb = Sandbox::new();
    sb.program("prlimit")
        .args(["--nofile=48", "--", crate::support::ZCCACHE, "start"])
        .status(0);
    let pid = daemon_pid(&sb);
    let socket = sb.state().join("daemon.sock");
    let size_before = proc_stat(pid, "VmSize:");
    let huge = zccache::daemon::frame::MAX_FRAME.to_le_bytes();
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut stream = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        std::io::Write::write_all(&mut stream, &huge).unwrap();
        std::io::Write::write_all(&mut stream, b"x").unwrap();
        held.push(stream);
    }
    for _ in 0..60 {
        held.push(std::os::unix::net::UnixStream::connect(&socket).unwrap());
    }
    let ticks_before = proc_stat(pid, "cpu");
    std::thread::sleep(std::time::Duration::from_secs(2));
    let ticks = proc_stat(pid, "cpu") - ticks_before;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    assert!(
        ticks < per_second,
        "the daemon burned {ticks} ticks in 2 s with its connections full"
    );
    let grown_mib = proc_stat(pid, "VmSize:").saturating_sub(size_before) / 1024;
    assert!(
        grown_mib < 512,
        "8 announced 256 MiB frames grew it by {grown_mib} MiB"
    );
    drop(held);
    sb.cmd(["status"]).status(0);
    assert_eq!(daemon_pid(&sb), pid);
}

/// Issue G.9: outputs get the client's umask, as the compiler would give them: under umask
/// 077 a miss and a hit write a 0600 object and a 0700 program (the daemon's is 022).
#[test]
fn issue_g_outputs_follow_the_clients_umask() {
    let sb = Sandbox::new();
    sb.write("a.c", "int main(void) { return 0; }\n");
    let under_077 = |line: &str| {
        sb.program("sh")
            .args(["-c", &format!("umask 077; exec \"$Z\" {line}")])
            .env("Z", crate::support::ZCCACHE)
    };
    sb.cmd(["start"]).status(0);
    for round in ["miss", "hit"] {
        let _ = fs::remove_file(sb.path("a.o"));
        let _ = fs::remove_file(sb.path("app"));
        under_077("gcc -c a.c -o a.o").status(0);
        under_077("gcc a.o -o app").status(0);
        assert_eq!(mode(&sb.path("a.o")), 0o600, "{round}: object");
        assert_eq!(mode(&sb.path("app")), 0o700, "{round}: program");
    }
    let d = sb.cmd(["status", "--json"]).status(0).json()["daemon"].clone();
    assert_eq!(
        d["cache_hits"], 2,
        "the second round was served from the cache"
    );
    sb.cmd(["gcc", "-c", "a.c", "-o", "b.o"]).status(0);
    assert_eq!(mode(&sb.path("b.o")), 0o644, "umask 022 as before");
}

/// Issue H.2 meets G: a shared task record from the remote is data. An entry that climbs
/// out of its output (`../../PWNED`) or lies below a symlink the record makes is refused:
/// the task runs, and nothing is written outside the output.
#[test]
fn forged_shared_task_records_never_write_outside_their_outputs() {
    if !available(Tool::Redis) {
        return;
    }
    let redis = Redis::start().expect("checked");
    let sb = Sandbox::new();
    sb.write("deep/er/src.txt", "input\n");
    let task = "echo ran >> \"$MARKER\"; mkdir -p out; cp src.txt out/copy.txt";
    // Blobs stored raw, so the test can read and forge them with redis-cli.
    let env = vec![
        ("ZCCACHE_REMOTE", redis.url()),
        ("ZCCACHE_COMPRESSION", "off".to_string()),
    ];
    let run = |machine: &Machine| {
        machine
            .cmd(["run", "--share", "--output", "out", "--", "sh", "-c", task])
            .env("MARKER", sb.marker())
            .cwd(sb.path("deep/er"))
    };
    let one = Machine::new(&sb, "one", env.clone());
    run(&one).status(0);
    one.cmd(["stop"]).status(0);
    // Another machine: a fresh checkout has neither the outputs nor the task's local state.
    let fresh_checkout = || {
        fs::remove_dir_all(sb.path("deep/er/out")).unwrap();
        fs::remove_dir_all(sb.path("deep/er/.zccache")).unwrap();
    };
    fresh_checkout();
    let honest_machine = Machine::new(&sb, "honest", env.clone());
    run(&honest_machine)
        .status(0)
        .stderr_has("skip (the same inputs passed on another machine; restored 1 output");
    fresh_checkout();
    let (key, mut entry) = entry_with(&redis, "record-v2");
    let at = entry["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .position(|o| o["name"] == "record-v2")
        .unwrap();
    let hex = entry["outputs"][at]["blob"].as_str().unwrap().to_string();
    let text = redis.cli(&["GET", &format!("zccache:blob:{hex}")]);
    let honest: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    let copy = honest["outputs"]["out"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "copy.txt")
        .unwrap()
        .clone();
    let forgeries = [
        serde_json::json!({"path": "../../PWNED", "kind": "file", "mode": 420, "digest": copy["digest"]}),
        serde_json::json!({"path": "link", "kind": {"symlink": "../.."}, "mode": 511, "digest": copy["digest"]}),
    ];
    for (n, forged) in forgeries.into_iter().enumerate() {
        let mut record = honest.clone();
        let entries = record["outputs"]["out"].as_array_mut().unwrap();
        entries.push(forged);
        if n == 1 {
            let mut below = copy.clone();
            below["path"] = serde_json::json!("link/PWNED");
            entries.push(below);
        }
        entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        entry["outputs"][at] = put_blob(&redis, "record-v2", &record.to_string());
        redis.cli(&["SET", &key, &entry.to_string()]);
        let machine = Machine::new(&sb, &format!("two-{n}"), env.clone());
        run(&machine).status(0).stderr_has("zccache: run (");
        assert!(!sb.path("PWNED").exists() && !sb.path("deep/PWNED").exists());
        fresh_checkout();
    }
    assert_eq!(sb.marker_count(), 3, "both forgeries ran the task");
}
