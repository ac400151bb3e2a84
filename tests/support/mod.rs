//! The black-box test harness: a `Sandbox` (temp tree with its own `ZCCACHE_DIR`) and a
//! `#[must_use]` `Cmd` builder that runs the built binary and checks its exit status.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

pub mod elf;
mod tools;
pub use tools::{Tool, available};

/// The binary under test.
pub const ZCCACHE: &str = env!("CARGO_BIN_EXE_zccache");

/// A temporary project tree and state root; its daemon is stopped and the tree removed on
/// drop.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.cmd(["stop"]).output();
        // A per-file first run's record is written after zccache returned, by a process
        // holding the task's lock: it is waited for (10 s at most), so none outlives the test.
        let Ok(entries) = fs::read_dir(self.path(".zccache/run")) else {
            return;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.to_string_lossy().ends_with(".task.lock")
                && let Ok(lock) = fs::File::open(&path)
            {
                let until = std::time::Instant::now() + Duration::from_secs(10);
                while lock.try_lock().is_err() && std::time::Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
}

impl Sandbox {
    /// A new empty sandbox with `root/` (the project) and `state/` (ZCCACHE_DIR).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("root")).unwrap();
        fs::DirBuilder::new()
            .mode(0o700)
            .create(dir.path().join("state"))
            .unwrap();
        Sandbox { dir }
    }

    /// The project directory commands run in.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A path inside the project.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Writes a file (creating directories).
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        self
    }

    /// Replaces a file whole in one step, as an editor saving atomically does: the bytes go
    /// to a temporary file beside the project, renamed over the path (creating directories).
    /// A watcher sees one change, however the machine schedules the writer.
    pub fn replace(&self, rel: &str, content: impl AsRef<[u8]>) -> &Self {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut temp = tempfile::NamedTempFile::new_in(self.dir.path()).unwrap();
        std::io::Write::write_all(&mut temp, content.as_ref()).unwrap();
        temp.persist(&path).unwrap();
        self
    }

    /// Reads a file as text.
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Removes a file.
    pub fn remove(&self, rel: &str) {
        fs::remove_file(self.path(rel)).unwrap();
    }

    /// Sets a file's mtime to `secs_ago` seconds in the past.
    pub fn age(&self, rel: &str, secs_ago: u64) {
        let when = SystemTime::now() - Duration::from_secs(secs_ago);
        fs::File::options()
            .write(true)
            .open(self.path(rel))
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    /// A file outside the project (so not an input) that tasks append to.
    pub fn marker(&self) -> PathBuf {
        self.dir.path().join("marker.log")
    }

    /// How many times a task appended to the marker.
    pub fn marker_count(&self) -> usize {
        fs::read_to_string(self.marker())
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    /// A directory outside the project for tools and scratch files.
    pub fn outside(&self, rel: &str) -> PathBuf {
        let path = self.dir.path().join("outside").join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        path
    }

    /// `zccache run ARGS -- sh -c SCRIPT`, where the script may use `$MARKER`.
    pub fn run_sh(&self, args: &[&str], script: &str) -> Cmd {
        self.cmd(["run"])
            .args(args)
            .args(["--", "sh", "-c", script])
            .env("MARKER", self.marker())
    }

    /// Writes the user's own config file (`$XDG_CONFIG_HOME/zccache/config.toml`, which
    /// every command of the sandbox sees).
    pub fn user_config(&self, text: &str) -> &Self {
        let path = self.dir.path().join("config/zccache/config.toml");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        self
    }

    /// The state directory (`ZCCACHE_DIR`).
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A command running `zccache ARGS` in the project directory.
    pub fn cmd<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Cmd::new(ZCCACHE, self.state(), self.root()).args(args)
    }

    /// Another program (git, sh) with the same scrubbed environment and `MARKER` set.
    pub fn program(&self, program: &str) -> Cmd {
        Cmd::new(program, self.state(), self.root())
            .env("MARKER", self.marker())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
    }

    /// `git ARGS` in the project, as a throwaway identity.
    pub fn git(&self, args: &[&str]) -> Cmd {
        self.program("git")
            .args([
                "-c",
                "user.name=zccache",
                "-c",
                "user.email=z@example.invalid",
            ])
            .args(args)
    }

    /// Lets other users reach the sandbox (its temp dir is private otherwise).
    pub fn open_to_others(&self) -> &Self {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(self.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        self
    }

    /// Two directories outside the project owned by `nobody`, for it to work in: `work`,
    /// and `state-nobody` (private, its `ZCCACHE_DIR`). Opens the sandbox to others.
    pub fn dirs_of_nobody(&self) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        self.open_to_others();
        let (work, state) = (self.outside("work"), self.outside("state-nobody"));
        for dir in [&work, &state] {
            fs::create_dir(dir).unwrap();
            std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
        }
        fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
        (work, state)
    }

    /// `sh -c SCRIPT` as the unprivileged user `nobody` (check `available(Tool::SecondUser)`
    /// and call `open_to_others` first).
    pub fn as_nobody(&self, script: &str) -> Cmd {
        self.program("setpriv")
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .args(["sh", "-c", script])
    }

    /// `zccache fp --cache-file .cache/fp.json ARGS`.
    pub fn fp(&self, args: &[&str]) -> Cmd {
        self.cmd(["fp", "--cache-file", ".cache/fp.json"])
            .args(args)
    }
}

/// A command to run, with its environment scrubbed of `ZCCACHE_*`.
#[must_use]
pub struct Cmd {
    command: Command,
    stdin: Option<Vec<u8>>,
}

impl Cmd {
    fn new(program: &str, state: PathBuf, cwd: PathBuf) -> Self {
        let mut command = Command::new(program);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("ZCCACHE_") {
                command.env_remove(name);
            }
        }
        // The user's own config file is the sandbox's (see `Sandbox::user_config`).
        let config_home = state.with_file_name("config");
        command
            .env("XDG_CONFIG_HOME", config_home)
            .env("ZCCACHE_DIR", state)
            .env("ZCCACHE_IDLE_TIMEOUT", "120")
            .current_dir(cwd);
        Cmd {
            command,
            stdin: None,
        }
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.command.args(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(name, value);
        self
    }

    /// Runs in `dir` instead of the project directory.
    pub fn cwd(mut self, dir: impl AsRef<std::path::Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(mut self, name: &str) -> Self {
        self.command.env_remove(name);
        self
    }

    /// Starts the command without waiting (stdout and stderr piped).
    pub fn spawn(mut self) -> std::process::Child {
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn zccache")
    }

    /// The command itself, for a test that sets up the process its own way (a new session,
    /// a terminal).
    pub fn into_command(self) -> Command {
        self.command
    }

    /// Feeds these bytes on stdin.
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs to completion and returns the output.
    pub fn output(mut self) -> Output {
        use std::io::Write;
        let Some(input) = self.stdin.take() else {
            return self
                .command
                .stdin(Stdio::null())
                .output()
                .expect("run zccache");
        };
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child.stdin.take().unwrap().write_all(&input).unwrap();
        child.wait_with_output().expect("wait")
    }

    /// Runs, asserts the exit status, and returns stdout and stderr as text.
    pub fn status(self, code: i32) -> Ran {
        let description = format!("{:?}", self.command);
        let output = self.output();
        let ran = Ran::from(output);
        if ran.code != Some(code) {
            panic!(
                "{description}\nexpected exit {code}, got {:?}\n--- stdout\n{}\n--- stderr\n{}",
                ran.code, ran.stdout, ran.stderr
            );
        }
        ran
    }
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Ran {
    /// Exit code, `None` if killed by a signal.
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
    /// Raw standard output.
    pub stdout_bytes: Vec<u8>,
    /// Raw standard error.
    pub stderr_bytes: Vec<u8>,
}

impl From<Output> for Ran {
    fn from(output: Output) -> Self {
        Ran {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            stdout_bytes: output.stdout,
            stderr_bytes: output.stderr,
        }
    }
}

impl Ran {
    /// Asserts stderr contains `needle`.
    pub fn stderr_has(self, needle: &str) -> Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts stderr does not contain `needle`.
    pub fn stderr_lacks(self, needle: &str) -> Self {
        assert!(
            !self.stderr.contains(needle),
            "stderr has {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    /// Parses the first line of stderr that is a JSON object.
    pub fn stderr_json(&self) -> serde_json::Value {
        self.stderr
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no JSON line on stderr:\n{}", self.stderr))
    }

    /// Parses stdout as one JSON value.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Waits until `path` exists (a command's "I have started" sign), at most 20 s.
pub fn wait_for(path: &std::path::Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Files under `dir` with their contents, for "nothing was written" assertions.
pub fn snapshot(dir: &std::path::Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(snapshot(&path));
        } else {
            out.insert(path.clone(), fs::read(&path).unwrap_or_default());
        }
    }
    out
}
