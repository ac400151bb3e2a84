//! Running the real compiler for a miss: private scratch outputs (so no other process's
//! half-written file is ever read), exactly the request's environment and stdin, and
//! atomic delivery of the results.

use std::borrow::Cow;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::args::Compile;
use super::depfile::{Flavor, retarget, target_words};
use super::profile::{Phase, timed};
use super::request::{Outcome, Request, Served};
use crate::compile_cache::artifact::Artifact;
use crate::fingerprint::write_file_atomic_with_mode;
use crate::os::exit_code;

/// The daemon's private directory for what misses write (`ZCCACHE_DIR/scratch`, mode
/// 0700, this user's only): never the shared `/tmp`, where another user could plant a
/// symlink or rewrite a depfile between the compile and its reading.
#[derive(Debug, Clone)]
pub struct ScratchDir(Arc<PathBuf>);

impl ScratchDir {
    /// Creates (or checks) `state_dir/scratch` and removes what an earlier daemon left
    /// there (a `kill -9` leaves its scratch files behind).
    pub fn open(state_dir: &Path) -> io::Result<Self> {
        let dir = state_dir.join("scratch");
        crate::private_dir::ensure(&dir)?;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let _ = match entry.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(entry.path()),
                _ => std::fs::remove_file(entry.path()),
            };
        }
        Ok(ScratchDir(Arc::new(dir)))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// Numbers this process's scratch directories, so concurrent compiles never share one.
static SCRATCH: AtomicU64 = AtomicU64::new(0);

/// A miss's own fresh directory (created exclusively) holding its object and depfile;
/// removed when dropped.
pub(super) struct Scratch {
    dir: PathBuf,
    pub(super) object: PathBuf,
    pub(super) depfile: PathBuf,
}

impl Scratch {
    pub(super) fn new(scratch: &ScratchDir) -> io::Result<Self> {
        let n = SCRATCH.fetch_add(1, Ordering::Relaxed);
        let dir = scratch.0.join(n.to_string());
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Scratch {
            object: dir.join("out.o"),
            depfile: dir.join("out.d"),
            dir,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `args` writing the object and depfile to `scratch` instead: `-o` and `-MF` redirected,
/// `-MD -MF` added when the build asked for no depfile, `-MMD` widened to `-MD` (the
/// manifest needs the system headers too), and the depfile's target kept the build's
/// (`-MQ <output>`) unless it named one.
pub(super) fn private_outputs(args: &[String], c: &Compile, scratch: &Scratch) -> Vec<String> {
    let object = scratch.object.display().to_string();
    let depfile = scratch.depfile.display().to_string();
    let mut out = Vec::with_capacity(args.len() + 4);
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-o" | "-MF" => {
                iter.next();
            }
            a if a.starts_with("-o") || a.starts_with("-MF") => {}
            "-MMD" => out.push("-MD".to_string()),
            _ => out.push(arg.clone()),
        }
    }
    out.extend(["-o".to_string(), object]);
    if c.depfile.is_none() {
        out.push("-MD".to_string());
    } else if !args
        .iter()
        .any(|a| a.starts_with("-MT") || a.starts_with("-MQ"))
    {
        out.extend(["-MQ".to_string(), c.output.clone()]);
    }
    out.extend(["-MF".to_string(), depfile]);
    out
}

/// Writes the depfile (for this compile's own targets) and then the object of a hit or a
/// miss; written now, so they get a fresh mtime, the depfile's never later than the
/// object's (a make rule `%.o: %.c %.d` would rebuild an object older than its depfile).
pub(super) fn deliver(
    req: &Request,
    c: &Compile,
    artifact: &Artifact,
    flavor: Flavor,
) -> io::Result<()> {
    if req.peer.hung_up() {
        // The client gave up on us and compiled by itself: its outputs are its own now.
        return Ok(());
    }
    let output = |wanted: &str| {
        artifact
            .outputs
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, bytes)| bytes)
    };
    if let (Some(depfile), Some(bytes)) = (&c.depfile, output("depfile")) {
        let text = for_targets(bytes, c, flavor);
        write_output(&req.cwd.join(depfile), &text, req.umask)?;
    }
    if let Some(bytes) = output("object") {
        write_output(&req.cwd.join(&c.output), bytes, req.umask)?;
    }
    Ok(())
}

/// A stored depfile as `c`'s compiler would write it for `c`'s targets (as stored when
/// they are the same, or it is no text with a rule).
fn for_targets<'a>(bytes: &'a [u8], c: &Compile, flavor: Flavor) -> Cow<'a, [u8]> {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Cow::Borrowed(bytes);
    };
    let targets = target_words(&c.targets, &c.output, flavor);
    match retarget(text, &targets, flavor) {
        Cow::Borrowed(_) => Cow::Borrowed(bytes),
        Cow::Owned(text) => Cow::Owned(text.into_bytes()),
    }
}

/// Writes one output: over the existing file in place when it is a plain file with no
/// other name (a rebuild: no new inode, and no flush ext4 forces on a rename over a file),
/// else as a new file renamed into place, so no one sees it half written. Either way the
/// bytes are a copy: nothing the build does to its output reaches the store. A new file gets
/// the mode the compiler would give it under the client's `umask` (0666 masked).
pub(super) fn write_output(target: &Path, bytes: &[u8], umask: u32) -> io::Result<()> {
    timed(Phase::Deliver, || {
        write_output_untimed(target, bytes, umask)
    })
}

fn write_output_untimed(target: &Path, bytes: &[u8], umask: u32) -> io::Result<()> {
    let existing = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target);
    if let Ok(mut file) = existing {
        let meta = file.metadata()?;
        if meta.is_file() && meta.nlink() == 1 {
            file.write_all(bytes)?;
            return file.set_len(bytes.len() as u64);
        }
    }
    write_file_atomic_with_mode(target, bytes, Some(0o666 & !umask))
}

/// The caller's variable naming a command a compile miss runs through (`distcc`, `icecc`).
pub const PREFIX_ENV: &str = "ZCCACHE_PREFIX";

/// Runs the compiler with exactly the request's environment and stdin; (status, stdout,
/// stderr).
pub(super) fn run(req: &Request, args: &[String]) -> io::Result<(i32, Vec<u8>, Vec<u8>)> {
    timed(Phase::Compile, || run_untimed(req, None, args))
}

/// Runs a compile miss: through the prefix command (`distcc gcc ARGS`) when the caller's
/// `ZCCACHE_PREFIX`, else `[compile] prefix` of the user's config, names one. The key never
/// sees it, and a hit never reaches it.
pub(super) fn run_miss(req: &Request, args: &[String]) -> io::Result<(i32, Vec<u8>, Vec<u8>)> {
    let from_env = req
        .env
        .iter()
        .find(|(k, v)| k == PREFIX_ENV && !v.trim().is_empty())
        .map(|(_, v)| v.clone());
    let prefix = from_env.or_else(super::user_config::compile_prefix);
    let words: Vec<String> = prefix
        .map(|p| p.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    timed(Phase::Compile, || {
        run_untimed(req, Some(&words).filter(|w| !w.is_empty()), args)
    })
}

/// Runs `prefix... compiler args` (or the compiler alone).
fn run_untimed(
    req: &Request,
    prefix: Option<&Vec<String>>,
    args: &[String],
) -> io::Result<(i32, Vec<u8>, Vec<u8>)> {
    let umask = req.umask as libc::mode_t;
    let mut command = match prefix {
        Some(words) => {
            let mut command = Command::new(&words[0]);
            command.args(&words[1..]).arg(&req.compiler);
            command
        }
        None => Command::new(&req.compiler),
    };
    // SAFETY: umask is async-signal-safe and cannot fail.
    unsafe {
        command.pre_exec(move || {
            libc::umask(umask);
            Ok(())
        });
    }
    let mut child = command
        .args(args)
        .current_dir(&req.cwd)
        .env_clear()
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .stdin(if req.stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let feeder = child.stdin.take().map(|mut pipe| {
        let bytes = req.stdin.clone();
        // A separate thread, so a compiler that writes before it reads cannot deadlock us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let output = child.wait_with_output()?;
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    Ok((exit_code(output.status), output.stdout, output.stderr))
}

/// Runs the compile as given, uncached (not when its client gave up waiting: it runs the
/// compile itself).
pub(super) fn run_plain(req: &Request, served: Served) -> Outcome {
    if req.peer.hung_up() {
        let gone = b"zccache: the client hung up before the compile ran\n".to_vec();
        return Outcome::new(served, (1, Vec::new(), gone));
    }
    match run(req, &req.args) {
        Ok((exit_code, stdout, stderr)) => Outcome::new(served, (exit_code, stdout, stderr)),
        Err(err) => Outcome::new(
            served,
            (
                127,
                Vec::new(),
                format!("zccache: cannot run {}: {err}\n", req.compiler.display()).into_bytes(),
            ),
        ),
    }
}
