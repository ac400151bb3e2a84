//! rustc's incremental state kept beside a crate's cached compile, so the first real
//! compile after a hit is incremental too.
//!
//! rustc keeps a crate's state in `DIR/{crate}-{id}/s-{time}-{random}-{svh}/` (one lock file
//! `s-{time}-{random}.lock` beside it) and starts each compile from the newest such session,
//! checking every query and object in it against the real inputs: a session from another
//! compile of the crate costs time, never correctness. When a miss compiled with
//! `-C incremental=DIR` has finished, the session it left is stored (in this machine's store
//! only: it is never uploaded, as rustc would link its objects unverified) under the
//! artifact's key. When that artifact is delivered as a hit and rustc holds no state of its
//! own for the crate (after `cargo clean`), the session is written back, so the next edit
//! compiles incrementally instead of from scratch. A crate with state of its own is left
//! alone.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::compile_cache::artifact::Artifact;
use crate::compile_cache::regular;
use crate::compile_cache::store::Store;
use crate::fingerprint::Digest;

/// Most files a kept session may hold (rustc writes a few per codegen unit).
const MAX_FILES: usize = 8192;
/// Most bytes a kept session may hold (it is read into memory to be stored; real ones are a
/// few MB, a large crate's tens).
const MAX_BYTES: u64 = 256 << 20;

/// The session a compile left: its crate directory under `DIR` and its own name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    dir: PathBuf,
    crate_dir: String,
    name: String,
}

/// The store key of the session kept for the artifact stored under `artifact_key`.
pub(super) fn key_of(artifact_key: &str) -> String {
    format!(
        "rust-incremental/{}",
        Digest::of(artifact_key.as_bytes()).to_hex()
    )
}

/// The session of crate `crate_name` that rustc finalized under `dir` between `started`
/// and `ended` (ns). When two crates of that name compiled at once (a library and its test
/// harness), the one whose `metadata.rmeta` is the compile's own `.rmeta` output (rustc
/// hard-links the two), given as `rmeta_inode`; `None` when it cannot be told.
pub(super) fn finished_session(
    dir: &Path,
    crate_name: &str,
    (started, ended): (i64, i64),
    rmeta_inode: Option<u64>,
) -> Option<Session> {
    let (from, to) = (started / 1000, ended / 1000);
    let mut found = Vec::new();
    for crate_dir in names_in(dir).filter(|n| is_crate_dir(n, crate_name)) {
        for name in names_in(&dir.join(&crate_dir)) {
            if finalized_at(&name).is_some_and(|micros| (from..=to).contains(&micros)) {
                found.push(Session {
                    dir: dir.to_path_buf(),
                    crate_dir: crate_dir.clone(),
                    name,
                });
            }
        }
    }
    if found.len() > 1
        && let Some(inode) = rmeta_inode
    {
        found.retain(|s| {
            let metadata = s
                .dir
                .join(&s.crate_dir)
                .join(&s.name)
                .join("metadata.rmeta");
            fs::symlink_metadata(metadata).is_ok_and(|m| m.ino() == inode)
        });
    }
    match found.len() {
        1 => found.pop(),
        _ => None,
    }
}

impl Session {
    /// Its files as an artifact whose outputs are named `{crate dir}:{session}:{file}`;
    /// `None` when one is not a regular file or it holds too much.
    pub(super) fn read(&self) -> Option<Artifact> {
        let path = self.dir.join(&self.crate_dir).join(&self.name);
        let mut outputs = Vec::new();
        let mut total = 0u64;
        for entry in fs::read_dir(&path).ok()? {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            if !entry.file_type().ok()?.is_file() || outputs.len() >= MAX_FILES {
                return None;
            }
            let bytes = regular::read(&entry.path()).ok()?;
            total += bytes.len() as u64;
            if total > MAX_BYTES {
                return None;
            }
            outputs.push((format!("{}:{}:{name}", self.crate_dir, self.name), bytes));
        }
        // rustc never changes a finished session, only removes it whole (`cargo clean`, or
        // its next compile of the crate): if every file was read and none went away, the
        // session is whole.
        if names_in(&path).count() != outputs.len() {
            return None;
        }
        outputs.sort_by(|a, b| a.0.cmp(&b.0));
        Some(Artifact {
            outputs,
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_code: 0,
        })
    }
}

/// Writes back the session kept under `key` into `dir` for crate `crate_name`, when rustc
/// holds no state of its own for that crate there; true when it did. Never fails a hit:
/// whatever goes wrong leaves rustc to start from scratch, as it would have.
pub(super) fn restore(store: &Store, key: &str, dir: &Path, crate_name: &str) -> bool {
    let Some(names) = store.names_here(key) else {
        return false;
    };
    let Some((crate_dir, session)) = session_named(&names, crate_name) else {
        return false;
    };
    let crate_path = dir.join(&crate_dir);
    if names_in(&crate_path).any(|n| n.starts_with("s-")) {
        return false;
    }
    let Ok(Some(artifact)) = store.get_here(key) else {
        return false;
    };
    match write_session(&artifact, &crate_path, &session) {
        Ok(()) => true,
        Err(err) => {
            tracing::debug!("incremental state not restored in {}: {err}", dir.display());
            false
        }
    }
}

/// The crate directory and session every name of a kept session shares, checked: plain
/// names, the crate's own directory, a finalized session's name.
fn session_named(names: &[String], crate_name: &str) -> Option<(String, String)> {
    let first = names.first()?;
    let mut parts = first.split(':');
    let (crate_dir, session) = (parts.next()?, parts.next()?);
    let ok = is_crate_dir(crate_dir, crate_name)
        && finalized_at(session).is_some()
        && names.iter().all(|n| {
            n.split_once(':')
                .and_then(|(c, rest)| rest.split_once(':').map(|(s, file)| (c, s, file)))
                .is_some_and(|(c, s, file)| c == crate_dir && s == session && is_plain(file))
        });
    ok.then(|| (crate_dir.to_string(), session.to_string()))
}

/// Writes the files into a private directory beside the session, creates the session's
/// lock file (rustc copies only from a session that has one), then renames the directory
/// into place, so rustc never sees a session half written.
fn write_session(artifact: &Artifact, crate_path: &Path, session: &str) -> io::Result<()> {
    fs::create_dir_all(crate_path)?;
    if !fs::symlink_metadata(crate_path)?.is_dir() {
        return Err(io::Error::other("the crate's directory is not a directory"));
    }
    let staging = crate_path.join(format!(".zccache-{}", random_hex()));
    fs::create_dir(&staging)?;
    let written = (|| {
        for (name, bytes) in &artifact.outputs {
            let file = name.rsplit(':').next().unwrap_or(name);
            create_new(&staging.join(file))?.write_all(bytes)?;
        }
        let (stem, _svh) = session.rsplit_once('-').unwrap_or((session, ""));
        create_new(&crate_path.join(format!("{stem}.lock")))?;
        fs::rename(&staging, crate_path.join(session))
    })();
    if written.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    written
}

fn create_new(path: &Path) -> io::Result<fs::File> {
    fs::File::options()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// True for `{crate_name}-{id}`, `id` in rustc's base 36.
fn is_crate_dir(name: &str, crate_name: &str) -> bool {
    name.strip_prefix(crate_name)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(is_base36)
}

/// The creation time (µs) of a finalized session `s-{time}-{random}-{svh}`.
fn finalized_at(name: &str) -> Option<i64> {
    let mut parts = name.split('-');
    let (s, time, random, svh) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let well_formed = s == "s"
        && parts.next().is_none()
        && is_base36(random)
        && is_base36(svh)
        && svh != "working";
    well_formed.then(|| i64::from_str_radix(time, 36).ok())?
}

fn is_base36(text: &str) -> bool {
    !text.is_empty() && text.len() <= 32 && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A file name that stays in its directory.
fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', ':', '\0'])
        && name.len() <= 255
}

fn names_in(dir: &Path) -> impl Iterator<Item = String> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
}

fn random_hex() -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(&crate::fingerprint::now_ns().to_le_bytes());
    hasher.update(format!("{:?}", std::thread::current().id()).as_bytes());
    hasher.finalize().to_hex()[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_finalized_session_of_the_crate_is_taken() {
        let time = i64::from_str_radix("hooq0cff52", 36).unwrap();
        assert_eq!(finalized_at("s-hooq0cff52-061t0y9-5ylfbkbjfxk"), Some(time));
        assert_eq!(finalized_at("s-hooq0cff52-061t0y9-working"), None);
        assert_eq!(finalized_at("s-hooq0cff52-061t0y9.lock"), None);
        assert_eq!(finalized_at("s-x-y"), None);
        assert!(is_crate_dir("util-2doqo97xdd8cj", "util"));
        assert!(!is_crate_dir("util_extra-2doqo97xdd8cj", "util"));
        assert!(!is_crate_dir("util-../x", "util"));
    }

    #[test]
    fn of_two_sessions_of_one_name_the_one_holding_the_output_rmeta_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let now = crate::fingerprint::now_ns();
        let stamp = |ns: i64| {
            let mut micros = u64::try_from(ns / 1000).unwrap();
            let mut text = Vec::new();
            while micros > 0 {
                text.push(b"0123456789abcdefghijklmnopqrstuvwxyz"[(micros % 36) as usize]);
                micros /= 36;
            }
            text.reverse();
            String::from_utf8(text).unwrap()
        };
        let output = dir.path().join("libutil-1.rmeta");
        std::fs::write(&output, b"rmeta").unwrap();
        for (crate_dir, linked) in [("util-aaa", false), ("util-bbb", true)] {
            let session = dir
                .path()
                .join(crate_dir)
                .join(format!("s-{}-0r-1s", stamp(now)));
            std::fs::create_dir_all(&session).unwrap();
            match linked {
                true => std::fs::hard_link(&output, session.join("metadata.rmeta")).unwrap(),
                false => std::fs::write(session.join("metadata.rmeta"), b"other").unwrap(),
            }
        }
        let span = (now - 1_000_000, now + 1_000_000);
        assert_eq!(finished_session(dir.path(), "util", span, None), None);
        let inode = std::fs::metadata(&output).unwrap().ino();
        let found = finished_session(dir.path(), "util", span, Some(inode)).unwrap();
        assert_eq!(found.crate_dir, "util-bbb");
        let outside = (now + 5_000_000, now + 6_000_000);
        assert_eq!(
            finished_session(dir.path(), "util", outside, Some(inode)),
            None
        );
    }

    #[test]
    fn kept_names_must_stay_in_one_session_of_the_crate() {
        let name = |s: &str| s.to_string();
        let good = [
            name("util-abc:s-1-2-3:dep-graph.bin"),
            name("util-abc:s-1-2-3:a.o"),
        ];
        assert_eq!(
            session_named(&good, "util"),
            Some((name("util-abc"), name("s-1-2-3")))
        );
        for bad in [
            [
                name("util-abc:s-1-2-3:a.o"),
                name("util-abc:s-1-2-3:../../x"),
            ],
            [name("util-abc:s-1-2-3:a.o"), name("util-abc:s-1-2-3:.")],
            [name("util-abc:s-1-2-3:a.o"), name("util-abd:s-1-2-3:b.o")],
            [name("util-abc:s-1-2-3:a.o"), name("util-abc:s-1-2-3:x:y")],
            [name("other-abc:s-1-2-3:a.o"), name("other-abc:s-1-2-3:b.o")],
            [
                name("util-abc:s-1-2-working:a.o"),
                name("util-abc:s-1-2-working:b.o"),
            ],
        ] {
            assert_eq!(session_named(&bad, "util"), None, "{bad:?}");
        }
    }
}
