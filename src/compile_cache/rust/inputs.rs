//! What a crate compile read and how its outputs are keyed, shared by the lookup (is an
//! input set unchanged?) and the store (what a miss read): input sets, their manifest, the
//! artifact key, and the out-dir mark that lets a hit land in another target directory.

use serde::{Deserialize, Serialize};

use super::args::RustCompile;
use crate::compile_cache::headers::{Header, full_key};
use crate::fingerprint::Digest;

/// Stands for the output directory in stored dep-info and diagnostics, so a hit delivered
/// into another target directory names its own.
pub(super) const OUT_DIR_MARK: &str = "\u{1}zccache-out-dir\u{1}";

/// One set of inputs a compile read: files with their hashes, and `env!` vars with their
/// values (`None`: unset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Inputs {
    /// The files of the dep-info (the crate root left out: it is in the base key).
    pub files: Vec<Header>,
    /// The `env!` vars of the dep-info.
    pub env: Vec<(String, Option<String>)>,
}

/// The input sets seen for one crate's base key.
pub(super) type Manifest = crate::compile_cache::manifest::Manifest<Inputs>;
/// Where Rust manifests are stored (`rust-manifest/<base>`).
pub(super) const MANIFEST_KIND: &str = "rust-manifest";

/// `bytes` with every `from` replaced by `to`.
pub(super) fn mark_out_dir(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let from = from.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = memchr::memmem::find(rest, from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to.as_bytes());
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The `# env-dep:NAME=VALUE` (or `# env-dep:NAME`, unset) lines of a dep-info file.
pub(super) fn env_deps(dep_info: &str) -> Vec<(String, Option<String>)> {
    let mut deps: Vec<(String, Option<String>)> = dep_info
        .lines()
        .filter_map(|line| line.strip_prefix("# env-dep:"))
        .map(|dep| match dep.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(unescape_env(value))),
            None => (dep.to_string(), None),
        })
        .collect();
    deps.sort();
    deps.dedup();
    deps
}

/// rustc writes `\n` and `\\` escaped in env-dep values.
fn unescape_env(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// `rust/<crate>/<types>/<hash>`: the crate's name and types stay readable for
/// `ListRustArtifacts`.
pub(super) fn artifact_key(c: &RustCompile, base: &Digest, inputs: &Inputs) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&base.0);
    hasher.update(format!("{:?}", inputs.env).as_bytes());
    let with_env: Digest = hasher.finalize().into();
    let kind = format!("rust/{}/{}", c.crate_name, c.crate_types.join(","));
    full_key(&kind, &with_env, &inputs.files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_deps_are_read_with_their_values() {
        let text = "/t/a.d: src/lib.rs\n\nsrc/lib.rs:\n\n# env-dep:CARGO_PKG_NAME=a\n\
                    # env-dep:GREETING=hi\\nthere\n# env-dep:UNSET_ONE\n";
        assert_eq!(
            env_deps(text),
            [
                ("CARGO_PKG_NAME".to_string(), Some("a".to_string())),
                ("GREETING".to_string(), Some("hi\nthere".to_string())),
                ("UNSET_ONE".to_string(), None),
            ]
        );
    }

    #[test]
    fn the_out_dir_is_marked_and_restored() {
        let text = b"/t/debug/deps/a.d: src/lib.rs\n/t/debug/deps/liba.rmeta: src/lib.rs\n";
        let marked = mark_out_dir(text, "/t/debug/deps", OUT_DIR_MARK);
        assert!(!String::from_utf8_lossy(&marked).contains("/t/debug"));
        let moved = mark_out_dir(&marked, OUT_DIR_MARK, "/u/target/debug/deps");
        assert_eq!(
            moved,
            b"/u/target/debug/deps/a.d: src/lib.rs\n/u/target/debug/deps/liba.rmeta: src/lib.rs\n"
        );
    }
}
