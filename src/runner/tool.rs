//! Tool identity: which program a command line would start, so that replacing it (or
//! switching the rustup toolchain behind a proxy) forces a run.
//!
//! A plain program is identified by its resolved path, size, mtime and inode. A rustup proxy
//! (`cargo`, `rustc`, `clippy-driver`, ... linked to `rustup`) is identified by the binary
//! `rustup which` selects here; that answer is memoized under everything that can change the
//! selection (`RUSTUP_TOOLCHAIN`, `+toolchain`, the nearest `rust-toolchain(.toml)`, rustup's
//! settings and installed toolchains), so a skip does not pay for a `rustup` process.
//!
//! A `sh -c SCRIPT` command (what a string command in `zccache.toml` becomes) also keys each
//! program the script starts (`script::read`), identified the same way, as a key part
//! `tool PROGRAM`.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::script;
use crate::fingerprint::Digest;
use crate::quote;

/// Shells whose `-c SCRIPT` is read for the programs it starts.
const SHELLS: &[&str] = &["sh", "bash", "dash", "ksh", "zsh"];

/// A remembered `rustup which` answer and the selection inputs it was given under.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RustupMemo {
    /// Digest of everything that decides the toolchain.
    pub selection: Digest,
    /// The binary rustup resolved.
    pub resolved: PathBuf,
}

/// The identity digest of the program `argv` starts, and an updated rustup memo if one was
/// computed. An unresolvable program has an identity too (its name), so it can be recorded.
/// `plain` remembers plain programs already identified by the caller (the tasks of one
/// graph, identified in one go, mostly start the same tool).
pub fn identity(
    argv: &[OsString],
    cwd: &Path,
    memo: Option<&RustupMemo>,
    plain: &mut PlainTools,
) -> Result<(Digest, Option<RustupMemo>), String> {
    let Some(program) = argv.first() else {
        return Err("empty command".to_string());
    };
    let place = (program.clone(), where_resolved(program, cwd));
    if let Some(known) = plain.0.get(&place) {
        return Ok((*known, None));
    }
    let Some(resolved) = resolve_program(program, cwd) else {
        return Ok((tagged(b"missing", program.as_bytes()), None));
    };
    if !is_rustup_proxy(&resolved) {
        let digest = stat_identity(&resolved)?;
        plain.0.insert(place, digest);
        return Ok((digest, None));
    }
    let toolchain = argv
        .get(1)
        .and_then(|a| a.to_str())
        .and_then(|a| a.strip_prefix('+'));
    let name = resolved.file_name().unwrap_or(program.as_os_str());
    let selection = rustup_selection(&resolved, name, toolchain, cwd);
    let fresh = match memo {
        Some(m) if m.selection == selection && m.resolved.exists() => m.clone(),
        _ => RustupMemo {
            selection,
            resolved: rustup_which(name, toolchain, cwd)?,
        },
    };
    let digest = stat_identity(&fresh.resolved)?;
    Ok((digest, Some(fresh)))
}

/// The script of `sh -c SCRIPT ...` (what a string command becomes), if `argv` is one.
pub fn shell_script(argv: &[OsString]) -> Option<&str> {
    let [shell, flag, script, ..] = argv else {
        return None;
    };
    let name = Path::new(shell).file_name()?.to_str()?;
    (SHELLS.contains(&name) && flag == "-c")
        .then(|| script.to_str())
        .flatten()
}

/// The key part of each program `script` starts (`tool cargo`, `tool cargo +nightly`) with
/// its identity as [`identity`] makes it; `memos` holds the rustup memo of each part,
/// updated (and emptied of programs the script no longer starts).
pub fn script_identities(
    script: &str,
    cwd: &Path,
    memos: &mut BTreeMap<String, RustupMemo>,
    plain: &mut PlainTools,
) -> Result<Vec<(String, Digest)>, String> {
    let mut parts = Vec::new();
    for command in script::read(script).commands {
        let part = script_part(&command);
        let argv: Vec<OsString> = command.into_iter().map(OsString::from).collect();
        let (digest, memo) = identity(&argv, cwd, memos.get(&part), plain)?;
        if let Some(memo) = memo {
            memos.insert(part.clone(), memo);
        }
        parts.push((part, digest));
    }
    memos.retain(|part, _| parts.iter().any(|(p, _)| p == part));
    Ok(parts)
}

/// Like [`script_identities`] with [`portable_identity`].
pub fn script_portable_identities(
    script: &str,
    cwd: &Path,
    memos: &BTreeMap<String, RustupMemo>,
) -> Result<Vec<(String, Digest)>, String> {
    let commands = script::read(script).commands;
    let mut parts = Vec::with_capacity(commands.len());
    for command in commands {
        let part = script_part(&command);
        let argv: Vec<OsString> = command.into_iter().map(OsString::from).collect();
        let digest = portable_identity(&argv, cwd, memos.get(&part))?;
        parts.push((part, digest));
    }
    Ok(parts)
}

/// What a script runs that cannot be keyed (`command substitution`, `eval`, ...).
pub fn script_unread(argv: &[OsString]) -> Vec<&'static str> {
    shell_script(argv)
        .map(|s| script::read(s).unread)
        .unwrap_or_default()
}

/// The key part of a program a script starts; control characters made visible (it is
/// printed by `--explain`).
fn script_part(command: &[String]) -> String {
    format!("tool {}", quote::controls(&command.join(" ")))
}

/// Plain programs (no rustup proxy) identified so far, by name and the directory their
/// lookup depended on.
#[derive(Debug, Default)]
pub struct PlainTools(HashMap<(OsString, Option<PathBuf>), Digest>);

/// The directory that finding `program` depends on: `cwd` for a path, or for a `PATH` with
/// a relative entry; `None` when the lookup is the same from everywhere.
fn where_resolved(program: &OsStr, cwd: &Path) -> Option<PathBuf> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    let relative_path = std::env::split_paths(&path_var).any(|d| !d.is_absolute());
    (program.as_bytes().contains(&b'/') || relative_path).then(|| cwd.to_path_buf())
}

/// The identity of the program `argv` starts by its content (and name), not where it lies
/// or when it was written: the same on every machine with the same tool, for results shared
/// between machines. A rustup proxy is taken through `memo`'s resolved binary.
pub fn portable_identity(
    argv: &[OsString],
    cwd: &Path,
    memo: Option<&RustupMemo>,
) -> Result<Digest, String> {
    let program = argv.first().ok_or("empty command")?;
    let Some(resolved) = resolve_program(program, cwd) else {
        return Ok(tagged(b"missing", program.as_bytes()));
    };
    let binary = match memo {
        Some(memo) if is_rustup_proxy(&resolved) => memo.resolved.clone(),
        _ => resolved,
    };
    let bytes = std::fs::read(&binary).map_err(|e| format!("read {}: {e}", binary.display()))?;
    let name = binary.file_name().unwrap_or_default();
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"tool content\0");
    hasher.update(name.as_bytes());
    hasher.update(&[0]);
    hasher.update(Digest::of(&bytes).0.as_slice());
    Ok(hasher.finalize().into())
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

fn is_rustup_proxy(resolved: &Path) -> bool {
    if resolved.file_name() == Some(OsStr::new("rustup")) {
        return false;
    }
    let canonical = std::fs::canonicalize(resolved).ok();
    if canonical.as_deref().and_then(Path::file_name) == Some(OsStr::new("rustup")) {
        return true;
    }
    // Hard-linked proxies: the same inode as a `rustup` beside them.
    let sibling = resolved.with_file_name("rustup");
    match (std::fs::metadata(resolved), std::fs::metadata(sibling)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

fn stat_identity(path: &Path) -> Result<Digest, String> {
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

fn tagged(tag: &[u8], bytes: &[u8]) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(tag);
    hasher.update(&[0]);
    hasher.update(bytes);
    hasher.finalize().into()
}

/// Digest of every input to rustup's toolchain choice for `name` run in `cwd`.
fn rustup_selection(proxy: &Path, name: &OsStr, toolchain: Option<&str>, cwd: &Path) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"rustup selection v1\0");
    hasher.update(name.as_bytes());
    hasher.update(&[0]);
    hasher.update(toolchain.unwrap_or("").as_bytes());
    hasher.update(&[0]);
    for var in ["RUSTUP_TOOLCHAIN", "RUSTUP_HOME", "CARGO_HOME"] {
        let value = std::env::var_os(var).unwrap_or_default();
        hasher.update(value.as_bytes());
        hasher.update(&[0]);
    }
    if let Ok(id) = stat_identity(proxy) {
        hasher.update(&id.0);
    }
    if let Some((file, content)) = nearest_toolchain_file(cwd) {
        hasher.update(file.as_os_str().as_bytes());
        hasher.update(&content);
    }
    let home = rustup_home();
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

fn rustup_home() -> PathBuf {
    if let Some(home) = std::env::var_os("RUSTUP_HOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".rustup"))
        .unwrap_or_else(|| PathBuf::from(".rustup"))
}

fn rustup_which(name: &OsStr, toolchain: Option<&str>, cwd: &Path) -> Result<PathBuf, String> {
    let mut cmd = Command::new("rustup");
    cmd.arg("which").current_dir(cwd);
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
