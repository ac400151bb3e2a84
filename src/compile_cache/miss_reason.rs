//! Why a compile missed: what its key was made of, kept per output after each miss (in
//! memory, for a bounded number of outputs; a hit adds nothing), and which parts differ from
//! the last compile of that output.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::fingerprint::Digest;

/// Outputs remembered at most (past it, the one missed least recently is forgotten).
const MAX_OUTPUTS: usize = 2048;
/// Misses kept per output for `zccache why OUTPUT`.
const MAX_MISSES: usize = 8;

/// One miss of an output: when (ms since the epoch) and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Miss {
    /// When it was compiled.
    pub at_ms: u64,
    /// What differed from the compile before it.
    pub reasons: Vec<String>,
}

/// What a compile's key was made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyParts {
    /// The compiler as shown: its path and version line.
    pub compiler: String,
    /// Its identity (path, size, mtime, version).
    pub compiler_id: Digest,
    /// The keyed arguments, in order.
    pub args: Vec<String>,
    /// The keyed env vars.
    pub env: Vec<(String, String)>,
    /// The source's content.
    pub source: Digest,
    /// The source as a reason names it (`source changed: src/lib.rs`); `None`: unnamed.
    pub source_name: Option<String>,
    /// The other files it read (headers; a crate's modules), as the depfile spells them,
    /// with their content.
    pub inputs: Vec<(String, Digest)>,
    /// What `inputs` are called in a reason: `header` or `file`.
    pub input_noun: &'static str,
    /// Other inputs of the key by label (`--extern serde`, `linker cc`, `library
    /// /x/libz.a`), with their content.
    pub named: Vec<(String, Digest)>,
}

/// The parts of `new` that differ from `old` (the last compile of the same output), most
/// telling first: the compiler (it changes every output at once), what the user edits (the
/// source, then the other files read), then the other inputs (`--extern` crates, the
/// linker, libraries), then flags, then env; `first compile of this output` without an
/// `old`.
pub fn reasons(old: Option<&KeyParts>, new: &KeyParts) -> Vec<String> {
    let Some(old) = old else {
        return vec!["first compile of this output".to_string()];
    };
    let mut out = Vec::new();
    if old.compiler_id != new.compiler_id {
        out.push(format!("compiler changed: {}", new.compiler));
    }
    if old.source != new.source {
        out.push(match &new.source_name {
            Some(name) => format!("source changed: {name}"),
            None => "source changed".to_string(),
        });
    }
    out.extend(input_changes(&old.inputs, &new.inputs, new.input_noun));
    out.extend(named_changes(&old.named, &new.named));
    if old.args != new.args {
        out.push(format!(
            "argument changed: {}",
            arg_change(&old.args, &new.args)
        ));
    }
    let old_env: BTreeMap<&str, &str> = pairs(&old.env);
    let new_env: BTreeMap<&str, &str> = pairs(&new.env);
    let names: std::collections::BTreeSet<&str> =
        old_env.keys().chain(new_env.keys()).copied().collect();
    for name in names {
        if old_env.get(name) != new_env.get(name) {
            out.push(format!("env {name} changed"));
        }
    }
    if out.is_empty() {
        out.push(
            "nothing zccache names changed (the entry was evicted or cleared, or a file found \
             on a search path changed)"
                .to_string(),
        );
    }
    out
}

fn pairs(list: &[(String, String)]) -> BTreeMap<&str, &str> {
    list.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// `-O2 -> -O3`, `added -DX`, `removed -g`: the stretch between the common start and end.
fn arg_change(old: &[String], new: &[String]) -> String {
    let start = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let end = old[start..]
        .iter()
        .rev()
        .zip(new[start..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let gone = old[start..old.len() - end].join(" ");
    let came = new[start..new.len() - end].join(" ");
    match (gone.is_empty(), came.is_empty()) {
        (true, _) => format!("added {came}"),
        (_, true) => format!("removed {gone}"),
        _ => format!("{gone} -> {came}"),
    }
}

/// Named inputs (`--extern NAME`, the linker, libraries) changed, added or gone.
fn named_changes(old: &[(String, Digest)], new: &[(String, Digest)]) -> Vec<String> {
    let was: BTreeMap<&str, &Digest> = old.iter().map(|(n, d)| (n.as_str(), d)).collect();
    let is: BTreeMap<&str, &Digest> = new.iter().map(|(n, d)| (n.as_str(), d)).collect();
    let mut out = Vec::new();
    for (name, digest) in &is {
        match was.get(name) {
            Some(before) if before != digest => out.push(format!("{name} changed")),
            Some(_) => {}
            None => out.push(format!("{name} added")),
        }
    }
    out.extend(
        was.keys()
            .filter(|n| !is.contains_key(*n))
            .map(|n| format!("{n} removed")),
    );
    out
}

/// Inputs changed, new (a new one named like one no longer read shadows it), or gone.
fn input_changes(old: &[(String, Digest)], new: &[(String, Digest)], noun: &str) -> Vec<String> {
    let was: HashMap<&str, &Digest> = old.iter().map(|(p, d)| (p.as_str(), d)).collect();
    let is: HashMap<&str, &Digest> = new.iter().map(|(p, d)| (p.as_str(), d)).collect();
    let name = |p: &str| Path::new(p).file_name().map(|n| n.to_os_string());
    let mut gone: Vec<&str> = old
        .iter()
        .map(|(p, _)| p.as_str())
        .filter(|p| !is.contains_key(p))
        .collect();
    let mut out = Vec::new();
    for (path, digest) in new {
        match was.get(path.as_str()) {
            Some(before) if *before != digest => out.push(format!("{noun} changed: {path}")),
            Some(_) => {}
            None => match gone.iter().position(|g| name(g) == name(path)) {
                Some(at) => {
                    let shadowed = gone.remove(at);
                    out.push(format!("new {noun} shadows {shadowed}: {path}"));
                }
                None => out.push(format!("{noun} added: {path}")),
            },
        }
    }
    out.extend(
        gone.into_iter()
            .map(|g| format!("{noun} no longer read: {g}")),
    );
    out
}

/// The key parts of the last miss of each output.
#[derive(Debug, Default)]
pub struct MissMemory {
    inner: Mutex<Memory>,
}

#[derive(Debug, Default)]
struct Memory {
    outputs: HashMap<PathBuf, Remembered>,
    clock: u64,
}

/// An output's last key parts (none when it was only passed through) and its recent
/// misses and passthroughs, newest first.
#[derive(Debug)]
struct Remembered {
    parts: Option<KeyParts>,
    misses: std::collections::VecDeque<Miss>,
    used: u64,
}

/// How a passthrough's entry among an output's misses starts (its reason follows).
pub const PASSED_THROUGH: &str = "not cached, passed through: ";

impl MissMemory {
    /// Remembers `parts` as the last compile of `output`; returns why it missed.
    pub fn record(&self, output: &Path, parts: KeyParts) -> Vec<String> {
        let mut memory = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let last = memory.outputs.get(output).and_then(|r| r.parts.as_ref());
        let why = reasons(last, &parts);
        let entry = memory.entry(output);
        entry.parts = Some(parts);
        entry.push(why.clone());
        why
    }

    /// Remembers that a compile of `output` ran uncached, and why (the last key parts stay:
    /// the next miss is still told apart from the last compile that was cached).
    pub fn record_passthrough(&self, output: &Path, reason: &str) {
        let mut memory = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        memory
            .entry(output)
            .push(vec![format!("{PASSED_THROUGH}{reason}")]);
    }

    /// The recent misses and passthroughs of `output`, newest first; for an output not
    /// remembered by that name, those of a remembered output that is the same file (cargo's
    /// `target/debug/rg` is a hard link of the `target/debug/deps/rg-HASH` rustc wrote).
    pub fn of(&self, output: &Path) -> Vec<Miss> {
        let memory = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(remembered) = memory.outputs.get(output) {
            return remembered.misses.iter().cloned().collect();
        }
        let linked = std::fs::metadata(output).ok().filter(|m| m.nlink() > 1);
        let Some(wanted) = linked else {
            return Vec::new();
        };
        let names: Vec<PathBuf> = memory.outputs.keys().cloned().collect();
        drop(memory);
        // Outside the lock: one stat per remembered output.
        let same = names.into_iter().find(|name| {
            std::fs::metadata(name)
                .is_ok_and(|m| m.dev() == wanted.dev() && m.ino() == wanted.ino())
        });
        let memory = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        same.and_then(|name| memory.outputs.get(&name))
            .map(|r| r.misses.iter().cloned().collect())
            .unwrap_or_default()
    }
}

impl Memory {
    /// The entry of `output`, made the most recently used (the least recently used output
    /// is forgotten to make room for a new one).
    fn entry(&mut self, output: &Path) -> &mut Remembered {
        self.clock += 1;
        if self.outputs.len() >= MAX_OUTPUTS && !self.outputs.contains_key(output) {
            let oldest = self
                .outputs
                .iter()
                .min_by_key(|(_, r)| r.used)
                .map(|(path, _)| path.clone());
            if let Some(oldest) = oldest {
                self.outputs.remove(&oldest);
            }
        }
        let used = self.clock;
        let entry = self
            .outputs
            .entry(output.to_path_buf())
            .or_insert_with(|| Remembered {
                parts: None,
                misses: std::collections::VecDeque::new(),
                used,
            });
        entry.used = used;
        entry
    }
}

impl Remembered {
    fn push(&mut self, reasons: Vec<String>) {
        let miss = Miss {
            at_ms: crate::fingerprint::now_ms(),
            reasons,
        };
        self.misses.push_front(miss);
        self.misses.truncate(MAX_MISSES);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> KeyParts {
        KeyParts {
            compiler: "/usr/bin/gcc (gcc 12)".into(),
            compiler_id: Digest::of(b"gcc"),
            args: ["-c", "-O2", "a.c"].map(String::from).to_vec(),
            env: vec![("CPATH".into(), "/x".into())],
            source: Digest::of(b"int a;"),
            source_name: None,
            inputs: vec![("inc/config.h".into(), Digest::of(b"1"))],
            input_noun: "header",
            named: vec![("--extern serde".into(), Digest::of(b"serde 1"))],
        }
    }

    #[test]
    fn each_part_is_named() {
        let old = parts();
        assert_eq!(reasons(None, &old), ["first compile of this output"]);
        let mut new = old.clone();
        new.args[1] = "-O3".into();
        assert_eq!(reasons(Some(&old), &new), ["argument changed: -O2 -> -O3"]);
        new = old.clone();
        new.args.insert(1, "-g".into());
        assert_eq!(reasons(Some(&old), &new), ["argument changed: added -g"]);
        new = old.clone();
        new.env[0].1 = "/y".into();
        new.source = Digest::of(b"int b;");
        assert_eq!(
            reasons(Some(&old), &new),
            ["source changed", "env CPATH changed"]
        );
        new.source_name = Some("src/lib.rs".into());
        new.args[1] = "-O3".into();
        new.named[0].1 = Digest::of(b"serde 2");
        new.inputs[0].1 = Digest::of(b"2");
        assert_eq!(
            reasons(Some(&old), &new),
            [
                "source changed: src/lib.rs",
                "header changed: inc/config.h",
                "--extern serde changed",
                "argument changed: -O2 -> -O3",
                "env CPATH changed"
            ]
        );
        new = old.clone();
        new.inputs[0].1 = Digest::of(b"2");
        assert_eq!(reasons(Some(&old), &new), ["header changed: inc/config.h"]);
        new = old.clone();
        new.inputs[0].0 = "src/config.h".into();
        assert_eq!(
            reasons(Some(&old), &new),
            ["new header shadows inc/config.h: src/config.h"]
        );
        new = old.clone();
        new.named[0].1 = Digest::of(b"serde 2");
        new.named.push(("--extern log".into(), Digest::of(b"log")));
        assert_eq!(
            reasons(Some(&old), &new),
            ["--extern log added", "--extern serde changed"]
        );
        new = old.clone();
        new.compiler_id = Digest::of(b"clang");
        new.compiler = "/usr/bin/gcc (clang 14)".into();
        assert_eq!(
            reasons(Some(&old), &new),
            ["compiler changed: /usr/bin/gcc (clang 14)"]
        );
    }

    #[test]
    fn memory_compares_with_the_last_miss_of_the_same_output() {
        let memory = MissMemory::default();
        let out = Path::new("/b/a.o");
        assert_eq!(
            memory.record(out, parts()),
            ["first compile of this output"]
        );
        let mut new = parts();
        new.source = Digest::of(b"x");
        assert_eq!(memory.record(out, new), ["source changed"]);
        assert_eq!(
            memory.record(Path::new("/b/other.o"), parts()),
            ["first compile of this output"]
        );
        let misses = memory.of(out);
        assert_eq!(misses.len(), 2);
        assert_eq!(misses[0].reasons, ["source changed"]);
    }
}
