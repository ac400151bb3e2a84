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
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::script;
use crate::fingerprint::Digest;
use crate::program::{
    Place, is_rustup_proxy, resolve_program, rustup_selection, rustup_which, stat_identity,
};
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
    let selection = rustup_selection(&resolved, name, toolchain, Place::here(cwd));
    let fresh = match memo {
        Some(m) if m.selection == selection && m.resolved.exists() => m.clone(),
        _ => RustupMemo {
            selection,
            resolved: rustup_which(&resolved, name, toolchain, Place::here(cwd))?,
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

fn tagged(tag: &[u8], bytes: &[u8]) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(tag);
    hasher.update(&[0]);
    hasher.update(bytes);
    hasher.finalize().into()
}
