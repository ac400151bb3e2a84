//! The remote tier on a real redis-server (started per test on a free loopback port): two
//! "machines" (two `ZCCACHE_DIR`s, two copies of a project) sharing one redis.

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Cmd, Sandbox};

/// A redis-server of this test's own, stopped on drop.
struct Redis {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server; .ci/run does)");
        let redis = Redis {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, pattern: &str) -> Vec<String> {
        self.cli(&["--scan", "--pattern", pattern])
            .lines()
            .map(String::from)
            .collect()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

const UNITS: [&str; 3] = ["a", "b", "c"];

/// A "machine": its own project copy and state dir.
fn machine() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("inc/h.h", "#define H 3\n");
    for unit in UNITS {
        sb.write(
            &format!("{unit}.c"),
            format!("#include \"h.h\"\nint {unit}(void) {{ return H + '{unit}'; }}\n"),
        );
    }
    sb
}

fn compile(sb: &Sandbox, unit: &str, redis: &Redis) -> Cmd {
    sb.cmd(["gcc", "-c", &format!("{unit}.c"), "-Iinc", "-O2"])
        .args(["-o", &format!("{unit}.o")])
        .env("ZCCACHE_REMOTE", redis.url())
}

fn build(sb: &Sandbox, redis: &Redis) {
    for unit in UNITS {
        compile(sb, unit, redis).status(0);
    }
}

fn objects(sb: &Sandbox) -> Vec<Vec<u8>> {
    UNITS
        .iter()
        .map(|u| fs::read(sb.path(&format!("{u}.o"))).unwrap())
        .collect()
}

fn status(sb: &Sandbox) -> serde_json::Value {
    sb.cmd(["status", "--json"]).status(0).json()["daemon"].clone()
}

/// (hits, misses) of compiles.
fn counts(sb: &Sandbox) -> (u64, u64) {
    let d = status(sb);
    (
        d["cache_hits"].as_u64().unwrap(),
        d["cache_misses"].as_u64().unwrap(),
    )
}

fn stop(sb: &Sandbox) {
    sb.cmd(["stop"]).status(0);
}

fn bare_objects(sb: &Sandbox) -> Vec<Vec<u8>> {
    let dir: PathBuf = sb.path("bare");
    fs::create_dir_all(&dir).unwrap();
    UNITS
        .iter()
        .map(|u| {
            let out = dir.join(format!("{u}.o"));
            sb.program("gcc")
                .args([&format!("{u}.c"), "-c", "-Iinc", "-O2", "-o"])
                .args([&out])
                .status(0);
            fs::read(out).unwrap()
        })
        .collect()
}

#[test]
fn a_second_machine_builds_from_the_first_ones_uploads() {
    let redis = Redis::start();
    let first = machine();
    build(&first, &redis);
    assert_eq!(counts(&first), (0, 3));
    stop(&first); // drains the upload queue
    assert!(
        redis.keys("zccache:entry:*").len() >= 6,
        "entries and manifests uploaded"
    );

    let second = machine();
    build(&second, &redis);
    assert_eq!(
        counts(&second),
        (3, 0),
        "every compile a hit from the remote"
    );
    assert!(status(&second)["remote"]["hits"].as_u64().unwrap() >= 3);
    assert_eq!(objects(&second), objects(&first));
    assert_eq!(objects(&second), bare_objects(&second));

    let other_project = machine();
    for unit in UNITS {
        compile(&other_project, unit, &redis)
            .env("ZCCACHE_REMOTE_NAMESPACE", "another")
            .status(0);
    }
    assert_eq!(
        counts(&other_project),
        (0, 3),
        "another namespace shares nothing"
    );
}

#[test]
fn a_corrupted_remote_blob_is_refused() {
    let redis = Redis::start();
    let first = machine();
    build(&first, &redis);
    stop(&first);
    let blobs = redis.keys("zccache:blob:*");
    assert!(!blobs.is_empty());
    for blob in blobs {
        redis.cli(&["SET", &blob, "not what the name says"]);
    }
    let second = machine();
    build(&second, &redis);
    assert_eq!(counts(&second), (0, 3), "refused: compiled instead");
    assert!(status(&second)["remote"]["refused"].as_u64().unwrap() >= 1);
    assert_eq!(objects(&second), bare_objects(&second));
}

#[test]
fn redis_stopping_mid_build_leaves_a_local_cache() {
    let mut redis = Redis::start();
    let sb = machine();
    compile(&sb, "a", &redis).status(0);
    redis.stop();
    compile(&sb, "b", &redis).status(0);
    compile(&sb, "c", &redis).status(0).stderr_lacks("zccache");
    for unit in UNITS {
        fs::remove_file(sb.path(&format!("{unit}.o"))).unwrap();
    }
    build(&sb, &redis);
    assert_eq!(counts(&sb), (3, 3), "the local tier kept everything");
    assert_eq!(objects(&sb), bare_objects(&sb));
}

#[test]
fn read_only_mode_never_writes() {
    let redis = Redis::start();
    let sb = machine();
    for unit in UNITS {
        compile(&sb, unit, &redis)
            .env("ZCCACHE_REMOTE_READONLY", "1")
            .status(0);
    }
    assert_eq!(status(&sb)["remote"]["readonly"], true);
    stop(&sb);
    assert_eq!(redis.cli(&["DBSIZE"]).trim(), "0");
}

#[test]
fn zccache_toml_names_the_remote_for_the_daemon_it_starts() {
    let redis = Redis::start();
    let sb = machine();
    sb.write(
        "zccache.toml",
        format!(
            "[remote]\nurl = \"{}\"\nnamespace = \"team\"\n",
            redis.url()
        ),
    );
    sb.cmd(["gcc", "-c", "a.c", "-Iinc", "-o", "a.o"]).status(0);
    assert_eq!(status(&sb)["remote"]["readonly"], false);
    stop(&sb);
    assert!(!redis.keys("team:entry:*").is_empty());
}

#[test]
fn a_shared_task_result_skips_on_another_machine() {
    let redis = Redis::start();
    let script = "echo ran >> \"$MARKER\"";
    let run = |sb: &Sandbox, share: bool| {
        let flags: &[&str] = if share { &["--share"] } else { &[] };
        sb.run_sh(flags, script).env("ZCCACHE_REMOTE", redis.url())
    };
    let first = machine();
    run(&first, true).status(0);
    assert_eq!(first.marker_count(), 1);
    stop(&first);

    let second = machine();
    run(&second, true)
        .status(0)
        .stderr_has("skip (the same inputs passed on another machine,");
    assert_eq!(second.marker_count(), 0);
    run(&second, true)
        .status(0)
        .stderr_has("files unchanged since");
    second.write("a.c", "int a(void) { return 0; }\n");
    run(&second, true).status(0);
    assert_eq!(second.marker_count(), 1, "other inputs: it runs");

    let third = machine();
    run(&third, false).status(0);
    assert_eq!(
        third.marker_count(),
        1,
        "without --share nothing is looked up"
    );
}
