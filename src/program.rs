//! Which binary a command's program is: found as `execvp` finds it, and a rustup proxy
//! (`cargo`, `rustc`, `clippy-driver`, ... linked to `rustup`) taken to the toolchain binary
//! rustup would run in its place.
//!
//! The runner (a task's tool) and the compile cache (the wrapper's rustc, the linker rustc
//! runs) both ask; the daemon asks on behalf of a client, so the place of the question (its
//! directory and environment) is explicit: [`Place`].

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fingerprint::Digest;

/// Where a program is looked up and rustup makes its choice: a directory and an
/// environment (`None`: this process's own).
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The working directory (`rust-toolchain.toml` is looked for from here up).
    pub cwd: &'a Path,
    /// The environment, last value of a name winning; `None` for this process's.
    pub env: Option<&'a [(String, String)]>,
}

impl<'a> Place<'a> {
    /// `cwd` with this process's environment.
    pub fn here(cwd: &'a Path) -> Self {
        Place { cwd, env: None }
    }

    /// The value of `name` in this place's environment.
    pub fn var(&self, name: &str) -> Option<OsString> {
        match self.env {
            None => std::env::var_os(name),
            Some(env) => env
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| OsString::from(v)),
        }
    }
}

/// Finds the program as `execvp` would: a path with a `/` relative to `cwd`, else `PATH`.
pub fn resolve_program(program: &OsStr, cwd: &Path) -> Option<PathBuf> {
    resolve_program_except(program, cwd, |_| false)
}

/// Like [`resolve_program`], passing over `PATH` entries for which `skip` is true (a
/// masquerading zccache must not find itself).
pub fn resolve_program_except(
    program: &OsStr,
    cwd: &Path,
    skip: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    resolve_program_on(program, cwd, &std::env::var_os("PATH")?, skip)
}

/// Like [`resolve_program_except`] with another process's `PATH` (the daemon resolving a
/// client's tool).
pub fn resolve_program_on(
    program: &OsStr,
    cwd: &Path,
    path_var: &OsStr,
    skip: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if program.as_bytes().contains(&b'/') {
        let path = cwd.join(program);
        return (path.is_file() && !skip(&path)).then_some(path);
    }
    std::env::split_paths(path_var)
        .map(|dir| cwd.join(dir).join(program))
        .find(|candidate| is_executable(candidate) && !skip(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
}

/// True when `resolved` is one of rustup's proxies (a link to `rustup` under another name).
pub fn is_rustup_proxy(resolved: &Path) -> bool {
    rustup_of(resolved).is_some()
}

/// The `rustup` binary behind the proxy `resolved`: its symlink's target, or the `rustup`
/// hard-linked beside it; `None` when it is no proxy (or is `rustup` itself).
fn rustup_of(resolved: &Path) -> Option<PathBuf> {
    if resolved.file_name() == Some(OsStr::new("rustup")) {
        return None;
    }
    let canonical = std::fs::canonicalize(resolved).ok()?;
    if canonical.file_name() == Some(OsStr::new("rustup")) {
        return Some(canonical);
    }
    let sibling = resolved.with_file_name("rustup");
    let (a, b) = (
        std::fs::metadata(resolved).ok()?,
        std::fs::metadata(&sibling).ok()?,
    );
    (a.dev() == b.dev() && a.ino() == b.ino()).then_some(sibling)
}

/// The identity of a binary: its canonical path, size, mtime and inode.
pub fn stat_identity(path: &Path) -> Result<Digest, String> {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let meta = std::fs::metadata(&canonical)
        .map_err(|e| format!("cannot stat {}: {e}", canonical.display()))?;
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"tool\0");
    hasher.update(canonical.as_os_str().as_bytes());
    hasher.update(&[0]);
    hasher.update(&meta.size().to_le_bytes());
    hasher.update(&meta.mtime().to_le_bytes());
    hasher.update(&meta.mtime_nsec().to_le_bytes());
    hasher.update(&meta.ino().to_le_bytes());
    Ok(hasher.finalize().into())
}

/// Digest of every input to rustup's choice of a toolchain for the proxy `proxy` (named
/// `name`) run at `place`, `+toolchain` given or not: while it stays, the answer of
/// [`rustup_which`] does too.
pub fn rustup_selection(
    proxy: &Path,
    name: &OsStr,
    toolchain: Option<&str>,
    place: Place<'_>,
) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"rustup selection v1\0");
    hasher.update(name.as_bytes());
    hasher.update(&[0]);
    hasher.update(toolchain.unwrap_or("").as_bytes());
    hasher.update(&[0]);
    for var in ["RUSTUP_TOOLCHAIN", "RUSTUP_HOME", "CARGO_HOME"] {
        let value = place.var(var).unwrap_or_default();
        hasher.update(value.as_bytes());
        hasher.update(&[0]);
    }
    if let Ok(id) = stat_identity(proxy) {
        hasher.update(&id.0);
    }
    if let Some((file, content)) = nearest_toolchain_file(place.cwd) {
        hasher.update(file.as_os_str().as_bytes());
        hasher.update(&content);
    }
    let home = rustup_home(place);
    if let Ok(settings) = std::fs::read(home.join("settings.toml")) {
        hasher.update(&settings);
    }
    if let Ok(meta) = std::fs::metadata(home.join("toolchains")) {
        hasher.update(&meta.mtime().to_le_bytes());
        hasher.update(&meta.mtime_nsec().to_le_bytes());
    }
    hasher.finalize().into()
}

fn nearest_toolchain_file(cwd: &Path) -> Option<(PathBuf, Vec<u8>)> {
    cwd.ancestors().find_map(|dir| {
        ["rust-toolchain.toml", "rust-toolchain"]
            .iter()
            .find_map(|name| {
                let file = dir.join(name);
                std::fs::read(&file).ok().map(|content| (file, content))
            })
    })
}

fn rustup_home(place: Place<'_>) -> PathBuf {
    if let Some(home) = place.var("RUSTUP_HOME") {
        return PathBuf::from(home);
    }
    place
        .var("HOME")
        .map(|h| PathBuf::from(h).join(".rustup"))
        .unwrap_or_else(|| PathBuf::from(".rustup"))
}

/// The binary rustup runs for the proxy `proxy` (named `name`) at `place`: `rustup which`,
/// asked of the rustup behind the proxy, in that place's directory and environment.
pub fn rustup_which(
    proxy: &Path,
    name: &OsStr,
    toolchain: Option<&str>,
    place: Place<'_>,
) -> Result<PathBuf, String> {
    let rustup = rustup_of(proxy).unwrap_or_else(|| PathBuf::from("rustup"));
    let mut cmd = Command::new(rustup);
    cmd.arg("which").current_dir(place.cwd);
    if let Some(env) = place.env {
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    if let Some(toolchain) = toolchain {
        cmd.args(["--toolchain", toolchain]);
    }
    let output = cmd
        .arg(name)
        .output()
        .map_err(|e| format!("cannot run rustup which: {e}"))?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        let first = why.lines().next().unwrap_or("failed").trim();
        return Err(format!("rustup which {}: {first}", name.to_string_lossy()));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(PathBuf::from(text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_reads_its_own_environment_last_value_winning() {
        let env = [
            ("RUSTUP_TOOLCHAIN".to_string(), "a".to_string()),
            ("RUSTUP_TOOLCHAIN".to_string(), "b".to_string()),
        ];
        let place = Place {
            cwd: Path::new("/"),
            env: Some(&env),
        };
        assert_eq!(place.var("RUSTUP_TOOLCHAIN"), Some(OsString::from("b")));
        assert_eq!(place.var("HOME"), None);
    }

    #[test]
    fn a_toolchain_file_or_variable_changes_the_selection() {
        let dir = tempfile::tempdir().unwrap();
        let proxy = dir.path().join("rustc");
        let env = |t: &str| vec![("RUSTUP_TOOLCHAIN".to_string(), t.to_string())];
        let (a, b) = (env("a"), env("b"));
        let at = |env| Place {
            cwd: dir.path(),
            env: Some(env),
        };
        let name = OsStr::new("rustc");
        let first = rustup_selection(&proxy, name, None, at(&a));
        assert_eq!(first, rustup_selection(&proxy, name, None, at(&a)));
        assert_ne!(first, rustup_selection(&proxy, name, None, at(&b)));
        std::fs::write(dir.path().join("rust-toolchain.toml"), "[toolchain]\n").unwrap();
        assert_ne!(first, rustup_selection(&proxy, name, None, at(&a)));
    }
}
