//! Tools a stock Rust machine may lack (clang, redis-server, moto): a test that needs one asks
//! `available` first. Missing, the test prints one `skipped:` line and returns; under `CI=true`
//! or `ZCCACHE_TEST_STRICT=1` it fails instead, so CI (whose `.ci/run` installs them) still
//! runs every test. The run ends with one summary line naming what was skipped.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Mutex, Once, OnceLock};

/// A tool some tests need.
#[derive(Clone, Copy, Debug)]
pub enum Tool {
    /// The clang C compiler.
    Clang,
    /// redis-server and redis-cli.
    Redis,
    /// The moto S3 server and boto3, for python3.
    Moto,
    /// Acting as a second local user (`nobody`, through setpriv): needs root.
    SecondUser,
    /// Mounting a small tmpfs (a filesystem to fill): needs root.
    Mount,
    /// rustup, with its `rustc` proxy beside it.
    Rustup,
    /// jq, which the README's session idiom pipes through.
    Jq,
    /// shellcheck, a per-file linter.
    Shellcheck,
    /// distcc and distccd, a build farm's client and server.
    Distcc,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Clang => "clang",
            Tool::Redis => "redis-server",
            Tool::Moto => "moto",
            Tool::SecondUser => "a second user",
            Tool::Mount => "root to mount a tmpfs",
            Tool::Rustup => "rustup and its rustc proxy",
            Tool::Jq => "jq",
            Tool::Shellcheck => "shellcheck",
            Tool::Distcc => "distcc",
        }
    }

    fn how_to_get(self) -> &'static str {
        match self {
            Tool::Clang => "apt-get install clang",
            Tool::Redis => "apt-get install redis-server",
            Tool::Moto => "pip install 'moto[server]'",
            Tool::SecondUser => {
                "run the tests as root, as .ci/run does: they act as nobody via setpriv"
            }
            Tool::Mount => "run the tests as root, as .ci/run does: they fill a small tmpfs",
            Tool::Jq => "apt-get install jq",
            Tool::Shellcheck => "apt-get install shellcheck",
            Tool::Distcc => "apt-get install distcc",
            Tool::Rustup => "install Rust with rustup: https://rustup.rs",
        }
    }

    fn present(self) -> bool {
        let probe = |program: &str, args: &[&str]| {
            Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        match self {
            Tool::Clang => probe("clang", &["--version"]),
            Tool::Redis => {
                probe("redis-server", &["--version"]) && probe("redis-cli", &["--version"])
            }
            Tool::Moto => probe("python3", &["-c", "import moto.server, boto3"]),
            Tool::Jq => probe("jq", &["--version"]),
            Tool::Shellcheck => probe("shellcheck", &["--version"]),
            Tool::Distcc => probe("distccd", &["--version"]),
            Tool::Rustup => probe(
                "sh",
                &[
                    "-c",
                    "command -v rustup && [ -x \"$(dirname \"$(command -v rustup)\")/rustc\" ]",
                ],
            ),
            Tool::SecondUser => {
                // SAFETY: geteuid has no preconditions.
                let root = unsafe { libc::geteuid() } == 0;
                root && probe(
                    "setpriv",
                    &[
                        "--reuid=nobody",
                        "--regid=nogroup",
                        "--clear-groups",
                        "true",
                    ],
                )
            }
            Tool::Mount => {
                let Ok(dir) = tempfile::tempdir() else {
                    return false;
                };
                let Some(at) = dir.path().to_str() else {
                    return false;
                };
                probe("mount", &["-t", "tmpfs", "-o", "size=64k", "tmpfs", at])
                    && probe("umount", &[at])
            }
        }
    }
}

/// Whether `tool` is here. When it is not, the calling test should return at once: this
/// prints its skip line (or, in strict mode, fails the test).
pub fn available(tool: Tool) -> bool {
    // One slot per tool: `Distcc` is the last variant.
    const TOOLS: usize = Tool::Distcc as usize + 1;
    static PRESENT: [OnceLock<bool>; TOOLS] = [const { OnceLock::new() }; TOOLS];
    let present = *PRESENT[tool as usize].get_or_init(|| tool.present());
    if !present {
        skip(tool);
    }
    present
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether a missing tool fails the test instead of skipping it.
fn strict() -> bool {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
    std::env::var("CI").is_ok_and(|v| v == "true") || set("ZCCACHE_TEST_STRICT")
}

/// The tests skipped so far, with the tool each lacked.
static SKIPPED: Mutex<Vec<(String, &'static str)>> = Mutex::new(Vec::new());

fn skip(tool: Tool) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test").to_string();
    assert!(
        !strict(),
        "{test}: needs {} ({}); CI=true / ZCCACHE_TEST_STRICT=1 make a missing tool fail",
        tool.name(),
        tool.how_to_get()
    );
    // Straight to the stderr handle: the test harness captures print macros of passing tests.
    let line = format!(
        "skipped: {test}: needs {} ({})\n",
        tool.name(),
        tool.how_to_get()
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    lock(&SKIPPED).push((test, tool.name()));
    static SUMMARY: Once = Once::new();
    // SAFETY: registering a plain extern "C" function with no captured state.
    SUMMARY.call_once(|| unsafe {
        libc::atexit(print_summary);
    });
}

/// Runs when the test binary exits: one line saying what was skipped (not passed).
extern "C" fn print_summary() {
    let skipped = lock(&SKIPPED);
    let mut tools: Vec<&str> = skipped.iter().map(|(_, tool)| *tool).collect();
    tools.sort_unstable();
    tools.dedup();
    let line = format!(
        "zccache tests: {} skipped, not passed (missing: {}); .ci/run installs everything\n",
        skipped.len(),
        tools.join(", ")
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
}
