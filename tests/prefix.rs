//! `ZCCACHE_PREFIX` (issue P item 4): a C/C++ miss runs through a build farm's client, here a
//! real distccd on loopback; a hit never reaches it and the key is the one without it.

use std::fs;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Cmd, Sandbox, Tool, available};

/// A distccd of this test's own on a free loopback port, logging to a file; stopped on drop.
struct Distccd {
    port: u16,
    child: Child,
    log: std::path::PathBuf,
}

impl Distccd {
    fn start(sb: &Sandbox) -> Option<Distccd> {
        if !available(Tool::Distcc) {
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let log = sb.outside("distccd.log");
        let child = Command::new("distccd")
            .args([
                "--daemon",
                "--no-detach",
                "--log-stderr",
                "--log-level",
                "info",
            ])
            .args([
                "--allow",
                "127.0.0.1",
                "--listen",
                "127.0.0.1",
                "--user",
                "nobody",
            ])
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("distccd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "distccd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Distccd { port, child, log })
    }

    /// Compiles distccd finished, once it has logged at least `n` (it logs a job after the
    /// client has its result; bounded wait).
    fn jobs(&self, n: usize) -> usize {
        let count = || {
            fs::read_to_string(&self.log)
                .unwrap_or_default()
                .matches("COMPILE_OK")
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while count() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        count()
    }
}

impl Distccd {
    /// Stops distccd and counts the jobs its whole log holds.
    fn stopped_jobs(mut self) -> usize {
        let _ = self.child.kill();
        let _ = self.child.wait();
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("COMPILE_OK")
            .count()
    }
}

impl Drop for Distccd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn project() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("inc/h.h", "#define H 5\n")
        .write("a.c", "#include \"h.h\"\nint f(void) { return H * 3; }\n");
    sb
}

/// `zccache gcc` through distcc on `farm` only (no local fallback: a failure to distribute
/// fails the compile).
fn compile(sb: &Sandbox, farm: &Distccd) -> Cmd {
    let state = sb.outside("distcc-state");
    fs::create_dir_all(&state).unwrap();
    sb.cmd(["gcc", "-O2", "-Iinc", "-c", "a.c", "-o", "a.o"])
        .env("ZCCACHE_PREFIX", "distcc")
        .env("DISTCC_HOSTS", format!("127.0.0.1:{}/2", farm.port))
        .env("DISTCC_FALLBACK", "0")
        .env("DISTCC_DIR", state)
}

fn bare_object(sb: &Sandbox) -> Vec<u8> {
    let out = sb.outside("bare.o");
    sb.program("gcc")
        .args(["-O2", "-Iinc", "-c", "a.c", "-o"])
        .args([&out])
        .status(0);
    fs::read(out).unwrap()
}

fn counts(sb: &Sandbox) -> (u64, u64) {
    let d = sb.cmd(["status", "--json"]).status(0).json()["daemon"].clone();
    (
        d["cache_hits"].as_u64().unwrap(),
        d["cache_misses"].as_u64().unwrap(),
    )
}

#[test]
fn issue_p_a_miss_compiles_through_distcc_and_a_hit_never_does() {
    let sb = project();
    let Some(farm) = Distccd::start(&sb) else {
        return;
    };
    compile(&sb, &farm).status(0);
    assert_eq!(farm.jobs(1), 1, "the miss went to distccd");
    assert_eq!(fs::read(sb.path("a.o")).unwrap(), bare_object(&sb));

    fs::remove_file(sb.path("a.o")).unwrap();
    compile(&sb, &farm).status(0);
    assert_eq!(counts(&sb), (1, 1));
    assert_eq!(farm.jobs(1), 1, "a hit never reaches distcc");

    // The key is the one without the prefix: a plain compile hits the same entry.
    fs::remove_file(sb.path("a.o")).unwrap();
    sb.cmd(["gcc", "-O2", "-Iinc", "-c", "a.c", "-o", "a.o"])
        .status(0);
    assert_eq!(counts(&sb), (2, 1));

    // A header edit misses, and the miss goes through distcc again.
    sb.write("inc/h.h", "#define H 6\n");
    compile(&sb, &farm).status(0);
    assert_eq!(counts(&sb), (2, 2));
    assert_eq!(farm.jobs(2), 2);
    assert_eq!(fs::read(sb.path("a.o")).unwrap(), bare_object(&sb));
    assert_eq!(
        farm.stopped_jobs(),
        2,
        "the two misses, and no hit, in distccd's log"
    );
}

#[test]
fn issue_p_the_users_config_names_the_prefix() {
    let sb = project();
    let Some(farm) = Distccd::start(&sb) else {
        return;
    };
    sb.user_config("[compile]\nprefix = \"distcc\"\n");
    compile(&sb, &farm).env_remove("ZCCACHE_PREFIX").status(0);
    assert_eq!(farm.jobs(1), 1);
    assert_eq!(fs::read(sb.path("a.o")).unwrap(), bare_object(&sb));
}
