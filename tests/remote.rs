//! The remote tier on a real redis-server and a real S3-compatible server (moto), each
//! started per test on a free loopback port: two "machines" (two `ZCCACHE_DIR`s, two copies
//! of a project) sharing one store.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Cmd, Sandbox, Tool, available};

/// A shared store the tests can look into.
trait Server {
    /// The env vars that point zccache at it.
    fn env(&self) -> Vec<(&'static str, String)>;
    /// The keys zccache wrote of one kind (`entry`, `blob`), in the default namespace.
    fn keys(&self, kind: &str) -> Vec<String>;
    /// Overwrites one of those keys.
    fn set(&self, key: &str, value: &str);
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A redis-server of this test's own, stopped on drop.
pub(crate) struct Redis {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// A new server, or `None` (the test is skipped) without redis-server.
    pub(crate) fn start() -> Option<Redis> {
        if !available(Tool::Redis) {
            return None;
        }
        let port = free_port();
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
            .expect("redis-server");
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
        Some(redis)
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub(crate) fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub(crate) fn keys(&self, pattern: &str) -> Vec<String> {
        self.cli(&["--scan", "--pattern", pattern])
            .lines()
            .map(String::from)
            .collect()
    }

    /// The value of `key`, byte for byte.
    fn get_bytes(&self, key: &str) -> Vec<u8> {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "GET", key])
            .output()
            .expect("redis-cli");
        let mut bytes = out.stdout;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        bytes
    }

    /// Sets `key` to `value`, byte for byte.
    fn set_bytes(&self, key: &str, value: &[u8]) {
        use std::io::Write;
        let mut child = Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "-x", "SET", key])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-cli");
        child.stdin.take().unwrap().write_all(value).unwrap();
        assert!(child.wait().unwrap().success());
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

impl Server for Redis {
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![("ZCCACHE_REMOTE", self.url())]
    }

    fn keys(&self, kind: &str) -> Vec<String> {
        self.keys(&format!("zccache:{kind}:*"))
    }

    fn set(&self, key: &str, value: &str) {
        self.cli(&["SET", key, value]);
    }
}

/// An S3-compatible server (moto) with one bucket, stopped on drop.
struct S3 {
    port: u16,
    child: Child,
}

const BUCKET: &str = "zccache-test";

impl S3 {
    /// A new server, or `None` (the test is skipped) without moto.
    fn start() -> Option<S3> {
        if !available(Tool::Moto) {
            return None;
        }
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server");
        let s3 = S3 { port, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        s3.boto("s3.create_bucket(Bucket=sys.argv[1])", &[BUCKET]);
        Some(s3)
    }

    /// Runs `code` with `s3`, a boto3 client of this server (boto3 comes with moto), and
    /// `sys.argv[1:]` = `args`; returns its stdout.
    fn boto(&self, code: &str, args: &[&str]) -> String {
        let script = format!(
            "import sys, boto3\ns3 = boto3.client('s3', endpoint_url='http://127.0.0.1:{}', \
             aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n{code}",
            self.port
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .args(args)
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "{code}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server for S3 {
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ZCCACHE_REMOTE", format!("s3://{BUCKET}/ci")),
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }

    fn keys(&self, kind: &str) -> Vec<String> {
        let code = "r = s3.list_objects_v2(Bucket=sys.argv[1], Prefix=sys.argv[2])\n\
                    print('\\n'.join(o['Key'] for o in r.get('Contents', [])))";
        let prefix = format!("ci/zccache/{kind}:");
        self.boto(code, &[BUCKET, &prefix])
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }

    fn set(&self, key: &str, value: &str) {
        let code = "s3.put_object(Bucket=sys.argv[1], Key=sys.argv[2], Body=sys.argv[3].encode())";
        self.boto(code, &[BUCKET, key, value]);
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

fn compile(sb: &Sandbox, unit: &str, server: &dyn Server) -> Cmd {
    let mut cmd = sb
        .cmd(["gcc", "-c", &format!("{unit}.c"), "-Iinc", "-O2"])
        .args(["-o", &format!("{unit}.o")]);
    for (name, value) in server.env() {
        cmd = cmd.env(name, value);
    }
    cmd
}

fn build(sb: &Sandbox, server: &dyn Server) {
    for unit in UNITS {
        compile(sb, unit, server).status(0);
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

/// Machine 1 builds and uploads; machine 2 builds everything from the remote.
fn second_machine_builds_from_the_first_ones_uploads(server: &dyn Server) {
    let first = machine();
    build(&first, server);
    assert_eq!(counts(&first), (0, 3));
    stop(&first); // drains the upload queue
    assert!(
        server.keys("entry").len() >= 6,
        "entries and manifests uploaded"
    );

    let second = machine();
    build(&second, server);
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
        compile(&other_project, unit, server)
            .env("ZCCACHE_REMOTE_NAMESPACE", "another")
            .status(0);
    }
    assert_eq!(
        counts(&other_project),
        (0, 3),
        "another namespace shares nothing"
    );
}

/// Every blob on the remote overwritten: refused, compiled instead.
fn a_corrupted_remote_blob_is_refused(server: &dyn Server) {
    let first = machine();
    build(&first, server);
    stop(&first);
    let blobs = server.keys("blob");
    assert!(!blobs.is_empty());
    for blob in blobs {
        server.set(&blob, "not what the name says");
    }
    let second = machine();
    build(&second, server);
    assert_eq!(counts(&second), (0, 3), "refused: compiled instead");
    assert!(status(&second)["remote"]["refused"].as_u64().unwrap() >= 1);
    assert_eq!(objects(&second), bare_objects(&second));
}

#[test]
fn redis_a_second_machine_builds_from_the_first_ones_uploads() {
    if let Some(server) = Redis::start() {
        second_machine_builds_from_the_first_ones_uploads(&server);
    }
}

#[test]
fn s3_a_second_machine_builds_from_the_first_ones_uploads() {
    if let Some(server) = S3::start() {
        second_machine_builds_from_the_first_ones_uploads(&server);
    }
}

#[test]
fn redis_a_corrupted_remote_blob_is_refused() {
    if let Some(server) = Redis::start() {
        a_corrupted_remote_blob_is_refused(&server);
    }
}

#[test]
fn issue_p_remote_blobs_travel_compressed_and_a_forged_frame_is_refused() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let first = machine();
    build(&first, &redis);
    stop(&first);
    let blobs = Server::keys(&redis, "blob");
    let framed = blobs
        .iter()
        .filter(|key| redis.get_bytes(key).starts_with(&[0x28, 0xb5, 0x2f, 0xfd]))
        .count();
    assert!(
        framed >= 1,
        "uploaded as zstd frames: {framed} of {}",
        blobs.len()
    );

    // Every blob replaced by a frame that inflates to 1 MiB of zeros: past its size.
    let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 1).unwrap();
    for key in &blobs {
        redis.set_bytes(key, &bomb);
    }
    let second = machine();
    build(&second, &redis);
    assert_eq!(counts(&second), (0, 3), "refused: compiled instead");
    assert!(status(&second)["remote"]["refused"].as_u64().unwrap() >= 1);
    assert_eq!(objects(&second), bare_objects(&second));
}

#[test]
fn s3_a_corrupted_remote_blob_is_refused() {
    if let Some(server) = S3::start() {
        a_corrupted_remote_blob_is_refused(&server);
    }
}

#[test]
fn redis_stopping_mid_build_leaves_a_local_cache() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
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
    let Some(redis) = Redis::start() else {
        return;
    };
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
fn the_users_config_file_names_the_remote() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let sb = machine();
    sb.user_config(&format!(
        "[remote]\nurl = \"{}\"\nnamespace = \"team\"\n",
        redis.url()
    ));
    sb.cmd(["gcc", "-c", "a.c", "-Iinc", "-o", "a.o"]).status(0);
    assert_eq!(status(&sb)["remote"]["readonly"], false);
    stop(&sb);
    assert!(!redis.keys("team:entry:*").is_empty());
}

#[test]
fn rustcs_incremental_state_is_kept_locally_never_uploaded() {
    // rustc would link the objects of a session unverified: a session goes to this
    // machine's store only, while the crate's compile is shared as any other.
    let Some(redis) = Redis::start() else {
        return;
    };
    let sb = Sandbox::new();
    sb.write("src/lib.rs", "pub fn one() -> u32 {\n    1\n}\n");
    fs::create_dir(sb.path("out")).unwrap();
    sb.cmd([crate::rust::real_rustc().as_str()])
        .args(["--crate-name", "one", "--edition=2021", "src/lib.rs"])
        .args(["--crate-type", "lib", "--emit=dep-info,metadata,link"])
        .args(["-C", "incremental=inc", "--out-dir", "out"])
        .env("ZCCACHE_REMOTE", redis.url())
        .status(0);
    stop(&sb);
    let kinds = |entries: Vec<String>| -> Vec<String> {
        let mut kinds: Vec<String> = entries
            .into_iter()
            .map(|text| {
                let entry: serde_json::Value = serde_json::from_str(&text).unwrap();
                let key = entry["key"].as_str().unwrap();
                key.split('/').next().unwrap().to_string()
            })
            .collect();
        kinds.sort();
        kinds
    };
    let local = fs::read_dir(sb.state().join("artifacts/entries"))
        .unwrap()
        .map(|e| fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(
        kinds(local),
        ["rust", "rust-incremental", "rust-manifest"],
        "the session is kept here"
    );
    let uploaded = redis
        .keys("zccache:entry:*")
        .iter()
        .map(|key| redis.cli(&["GET", key]))
        .collect();
    assert_eq!(
        kinds(uploaded),
        ["rust", "rust-manifest"],
        "and not uploaded"
    );
}

/// Issue G.6: a project's zccache.toml cannot name the remote of the whole daemon (it sent
/// every other project's objects there and served them from it).
#[test]
fn issue_g_a_projects_remote_never_applies_to_the_daemon() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let sb = machine();
    sb.write(
        "zccache.toml",
        format!(
            "[remote]\nurl = \"{}\"\n\n[tasks.t]\ncommand = \"true\"\n",
            redis.url()
        ),
    );
    sb.cmd(["run", "t"])
        .status(2)
        .stderr_has("[remote] is not read from a project's file");
    sb.cmd(["gcc", "-c", "a.c", "-Iinc", "-o", "a.o"]).status(0);
    assert!(status(&sb)["remote"].is_null(), "no remote tier");
    stop(&sb);
    assert_eq!(redis.cli(&["DBSIZE"]).trim(), "0");
}

#[test]
fn a_shared_task_result_skips_on_another_machine() {
    let Some(redis) = Redis::start() else {
        return;
    };
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

/// Issue H.2: a shared success carries its outputs and its replay: a second machine (a
/// fresh checkout without `dist/`) restores them byte for byte with their modes and skips,
/// printing what the first machine's run printed.
#[test]
fn a_shared_result_brings_its_outputs_and_replay() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let script = "echo ran >> \"$MARKER\"; echo building; mkdir -p dist; \
                  cat a.c > dist/a.txt; printf '#!/bin/sh\\n' > dist/run; chmod 751 dist/run";
    let run_with = |sb: &Sandbox, extra: &[&str]| {
        let mut flags = vec!["--share", "--replay", "--output", "dist"];
        flags.extend_from_slice(extra);
        sb.run_sh(&flags, script).env("ZCCACHE_REMOTE", redis.url())
    };
    let run = |sb: &Sandbox| run_with(sb, &[]);
    let first = machine();
    run(&first).status(0);
    stop(&first);

    let second = machine();
    run_with(&second, &["--dry-run"])
        .status(0)
        .stderr_has("skip (the same inputs passed on another machine; would restore 1 output,");
    assert!(!second.path("dist").exists(), "a dry run writes nothing");
    let skipped = run(&second)
        .status(0)
        .stderr_has("skip (the same inputs passed on another machine; restored 1 output,");
    assert_eq!(
        skipped.stdout, "building\n",
        "the first machine's output, replayed"
    );
    assert_eq!(second.marker_count(), 0);
    assert_eq!(second.read("dist/a.txt"), first.read("dist/a.txt"));
    let mode = fs::metadata(second.path("dist/run"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o751);
    fs::remove_dir_all(second.path("dist")).unwrap();
    run(&second)
        .status(0)
        .stderr_has("skip (restored 1 output: dist, ");
    assert_eq!(second.marker_count(), 0, "the local success restores too");
}
