//! Direct mode's view of headers: the ones a compile read (from its depfile), whether they
//! are still as they were, and whether a new file now shadows one on the include path.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::args::Compile;
use super::compile::Request;
use super::depfile::prerequisites;
use crate::fingerprint::{Digest, mtime_ns};

/// One header as a manifest remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Header {
    pub(super) path: PathBuf,
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    pub(super) hash: Digest,
}

/// The headers a depfile lists (the source itself left out), hashed; `None` when one cannot
/// be trusted (unreadable, or written after the compile started).
pub(super) fn learn_headers(
    req: &Request,
    c: &Compile,
    depfile: &str,
    started: i64,
) -> Option<Vec<Header>> {
    let source = req.cwd.join(&c.source);
    let mut headers: Vec<Header> = Vec::new();
    for dep in prerequisites(depfile) {
        let path = req.cwd.join(&dep);
        if path == source || headers.iter().any(|h| h.path == path) {
            continue;
        }
        let meta = std::fs::metadata(&path).ok()?;
        let mtime_ns = mtime_ns(&meta);
        if mtime_ns >= started {
            return None;
        }
        let hash = Digest::of(&std::fs::read(&path).ok()?);
        headers.push(Header {
            path,
            size: meta.size(),
            mtime_ns,
            hash,
        });
    }
    headers.sort_by(|a, b| a.path.cmp(&b.path));
    Some(headers)
}

/// True when the header is as recorded: same size and mtime, else same content.
pub(super) fn header_unchanged(h: &Header) -> bool {
    let Ok(meta) = std::fs::metadata(&h.path) else {
        return false;
    };
    let mtime_ns = mtime_ns(&meta);
    if meta.size() == h.size && mtime_ns == h.mtime_ns {
        return true;
    }
    std::fs::read(&h.path).is_ok_and(|bytes| Digest::of(&bytes) == h.hash)
}

/// The include search path as far as the command line tells: the source's directory (for
/// quoted includes), then the `-I`/`-iquote`/`-isystem`/`-idirafter` directories in order.
pub(super) fn search_dirs(req: &Request, c: &Compile) -> Vec<PathBuf> {
    let source_dir = req.cwd.join(&c.source).parent().map(Path::to_path_buf);
    source_dir
        .into_iter()
        .chain(c.include_dirs.iter().map(|d| req.cwd.join(d)))
        .collect()
}

/// True when a file that would now be found first stands earlier on the search path than
/// the header the compile used (a header newly created in front of the old one). Every
/// listed directory that contains the header is a way it may have been found; each is checked
/// (doubt means a miss). A header outside them (a system header) has its trailing path
/// components looked for in every listed directory.
pub(super) fn shadowed(h: &Header, search: &[PathBuf]) -> bool {
    let other_file = |candidate: PathBuf| candidate != h.path && candidate.exists();
    let mut under_a_listed_dir = false;
    for (at, dir) in search.iter().enumerate() {
        let Ok(name) = h.path.strip_prefix(dir) else {
            continue;
        };
        under_a_listed_dir = true;
        if search[..at].iter().any(|d| other_file(d.join(name))) {
            return true;
        }
    }
    if under_a_listed_dir {
        return false;
    }
    let parts: Vec<_> = h.path.components().collect();
    (1..=parts.len().min(3)).any(|n| {
        let name: PathBuf = parts[parts.len() - n..].iter().collect();
        search.iter().any(|d| other_file(d.join(&name)))
    })
}

pub(super) fn full_key(base: &Digest, headers: &[Header]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&base.0);
    for h in headers {
        hasher.update(h.path.as_os_str().as_encoded_bytes());
        hasher.update(&h.hash.0);
    }
    format!("compile/{}", hasher.finalize().to_hex())
}
