//! Direct mode's view of headers: the ones a compile read (from its depfile), whether they
//! are still as they were, and whether a new file now shadows one on the include path.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::args::Compile;
use super::regular;
use super::request::Request;
use crate::fingerprint::{Digest, mtime_ns};
use crate::paths::lexically_absolute;

/// One header as a manifest remembers it: its path as the depfile spelled it (relative
/// paths are relative to the compile's working directory, so a moved tree still matches).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Header {
    pub(super) path: PathBuf,
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    /// The inode change time: an edit that puts the size and mtime back (`cp -p`, `touch
    /// -d`) still moves it. 0 in manifests written before it was kept: never a match, so
    /// such a header is compared by content.
    #[serde(default)]
    pub(super) ctime_ns: i64,
    pub(super) hash: Digest,
}

/// What a compile's depfile says about direct mode.
pub(super) enum Learned {
    /// The headers it read, hashed.
    Headers(Vec<Header>),
    /// A header uses `__DATE__`/`__TIME__`: only preprocessor mode may cache it.
    Dated(Vec<Header>),
    /// A header could not be read, or was written after `started`: nothing may be stored.
    Untrusted,
}

/// The files among a depfile's prerequisites (paths relative to `cwd`; `source`, keyed on
/// its own, left out), hashed.
pub(super) fn learn_headers(cwd: &Path, source: &Path, deps: &[String], started: i64) -> Learned {
    let mut headers: Vec<Header> = Vec::new();
    let mut dated = false;
    for dep in deps {
        let path = PathBuf::from(dep);
        let resolved = cwd.join(&path);
        if resolved == source || headers.iter().any(|h| h.path == path) {
            continue;
        }
        let Ok((bytes, meta)) = regular::read_with_metadata(&resolved) else {
            return Learned::Untrusted;
        };
        let (mtime_ns, ctime_ns) = (mtime_ns(&meta), ctime_ns(&meta));
        if mtime_ns >= started || ctime_ns >= started {
            return Learned::Untrusted;
        }
        dated |= uses_the_clock(&bytes);
        headers.push(Header {
            path,
            size: meta.size(),
            mtime_ns,
            ctime_ns,
            hash: Digest::of(&bytes),
        });
    }
    headers.sort_by(|a, b| a.path.cmp(&b.path));
    match dated {
        true => Learned::Dated(headers),
        false => Learned::Headers(headers),
    }
}

/// A file's inode change time, in nanoseconds since the epoch.
fn ctime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.ctime() * 1_000_000_000 + meta.ctime_nsec()
}

/// True when C text mentions `__DATE__` or `__TIME__` (whose expansion changes by itself).
pub(super) fn uses_the_clock(text: &[u8]) -> bool {
    let has = |needle: &[u8]| memchr::memmem::find(text, needle).is_some();
    has(b"__DATE__") || has(b"__TIME__")
}

/// True when the header is as recorded: same size, mtime and ctime, else same content.
pub(super) fn header_unchanged(h: &Header, cwd: &Path) -> bool {
    let path = cwd.join(&h.path);
    let Ok(meta) = regular::metadata(&path) else {
        return false;
    };
    if meta.size() == h.size && mtime_ns(&meta) == h.mtime_ns && ctime_ns(&meta) == h.ctime_ns {
        return true;
    }
    regular::read(&path).is_ok_and(|bytes| Digest::of(&bytes) == h.hash)
}

/// A compile's include search path: the user part from the command line (the source's
/// directory for quoted includes, then `-I`/`-iquote`/`-isystem`/`-idirafter` in order)
/// and the compiler's system directories.
pub(super) struct SearchPath {
    cwd: PathBuf,
    user: Vec<PathBuf>,
    /// Each user directory's entry names, listed once when first needed (`None`: not
    /// listable, so each candidate is looked up itself).
    listings: Vec<OnceCell<Option<HashSet<OsString>>>>,
    system: Arc<Vec<PathBuf>>,
}

impl SearchPath {
    /// The search path of `c` run in `req.cwd`, with the compiler's `system` directories.
    pub(super) fn new(req: &Request, c: &Compile, system: Arc<Vec<PathBuf>>) -> Self {
        let source_dir = Path::new(&c.source).parent().map(Path::to_path_buf);
        let user = source_dir
            .into_iter()
            .chain(c.include_dirs.iter().map(PathBuf::from))
            .map(|d| lexically_absolute(&req.cwd, &d))
            .collect::<Vec<_>>();
        SearchPath {
            cwd: req.cwd.clone(),
            listings: user.iter().map(|_| OnceCell::new()).collect(),
            user,
            system,
        }
    }

    /// True for a header in one of the compiler's system directories (what `-MMD` omits).
    pub(super) fn is_system(&self, path: &str) -> bool {
        let path = lexically_absolute(&self.cwd, Path::new(path));
        self.system.iter().any(|d| path.starts_with(d))
    }

    /// True when a file that would now be found first stands earlier on the user search
    /// path than the header the compile used (a header newly created in front of the old
    /// one). Every user directory containing the header is a way it may have been found;
    /// each is checked. A system header is looked for, under each name a system directory
    /// gives it, in every user directory. (One system header shadowing another is left to
    /// `#include_next`, which does exactly that on purpose.)
    pub(super) fn shadowed(&self, h: &Header) -> bool {
        let path = lexically_absolute(&self.cwd, &h.path);
        let bytes = path.as_os_str().as_bytes();
        let other_file = |at: usize, name: &[u8]| self.other_file(at, name, &path);
        let mut under_a_user_dir = false;
        for (at, dir) in self.user.iter().enumerate() {
            let Some(name) = below(bytes, dir) else {
                continue;
            };
            under_a_user_dir = true;
            if (0..at).any(|earlier| other_file(earlier, name)) {
                return true;
            }
        }
        if under_a_user_dir {
            return false;
        }
        self.system
            .iter()
            .filter_map(|d| below(bytes, d))
            .any(|name| (0..self.user.len()).any(|at| other_file(at, name)))
    }

    /// True when user directory `at` holds `name` and it is not `header` itself. The
    /// directory's listing answers first (one read instead of a lookup per name); a name
    /// whose first part is listed is then looked up.
    fn other_file(&self, at: usize, name: &[u8], header: &Path) -> bool {
        let listing = self.listings[at].get_or_init(|| {
            let entries = std::fs::read_dir(&self.user[at]).ok()?;
            Some(
                entries
                    .filter_map(|e| e.ok().map(|e| e.file_name()))
                    .collect(),
            )
        });
        let first = name.split(|b| *b == b'/').next().unwrap_or(name);
        if let Some(listing) = listing
            && !listing.contains(OsStr::from_bytes(first))
        {
            return false;
        }
        let candidate = self.user[at].join(OsStr::from_bytes(name));
        candidate != header && candidate.exists()
    }
}

/// The part of `path` below `dir`, both normalized absolute paths (as `lexically_absolute`
/// makes them, so comparing bytes at a `/` boundary is `Path::strip_prefix` without walking
/// components: the shadow check runs it for every header of every hit).
fn below<'a>(path: &'a [u8], dir: &Path) -> Option<&'a [u8]> {
    let dir = dir.as_os_str().as_bytes();
    let rest = path.strip_prefix(dir)?;
    match dir.ends_with(b"/") {
        true => Some(rest),
        false => rest.strip_prefix(b"/"),
    }
}

/// `kind/<hash>` of `base` and the files' paths and content hashes: where the artifact of
/// one manifest entry is stored.
pub(super) fn full_key(kind: &str, base: &Digest, headers: &[Header]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&base.0);
    for h in headers {
        hasher.update(h.path.as_os_str().as_encoded_bytes());
        hasher.update(&h.hash.0);
    }
    format!("{kind}/{}", hasher.finalize().to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_strip_prefix_on_normalized_paths() {
        for (path, dir) in [
            ("/usr/include/stdio.h", "/usr/include"),
            ("/usr/include/bits/types.h", "/usr/include"),
            ("/usr/includes/x.h", "/usr/include"),
            ("/usr/include", "/usr/include"),
            ("/a/b.h", "/"),
            (
                "/usr/lib/gcc/x/12/include/stddef.h",
                "/usr/lib/gcc/x/12/include-fixed",
            ),
        ] {
            let expected = Path::new(path)
                .strip_prefix(dir)
                .ok()
                .filter(|rest| !rest.as_os_str().is_empty())
                .map(|rest| rest.as_os_str().as_bytes().to_vec());
            let got = below(path.as_bytes(), Path::new(dir)).map(<[u8]>::to_vec);
            assert_eq!(got, expected, "{path} under {dir}");
        }
    }
}
