//! Declared outputs (`--output PATH`): the files each one held after a success, compared
//! before a skip (a deleted or edited file the run made means the output changed; a file in
//! an output directory that the run did not make is the user's and does not count).
//!
//! A file is read and hashed unless its inode, size, mtime and ctime are those recorded
//! with its digest, taken when both times were already 2 s old (a rewrite within the same
//! clock tick could not have kept them; no one can set a ctime back).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::output_entry::{OutputDigests, OutputEntry, OutputKind};
use super::output_rules::{glob_matcher, is_glob, literal_parts, never_an_output};
use crate::fingerprint::{Digest, EntryKind, hash_entry, mtime_ns};
use crate::paths::is_temp;

/// What identifies a file's content without reading it, once it has settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stamp {
    /// The stamp of a file now.
    fn of(meta: &std::fs::Metadata) -> Self {
        Stamp {
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: mtime_ns(meta),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }
    }
}

/// `output\0path` → the stamp of that file when its recorded digest was taken.
pub type Stamps = BTreeMap<String, Stamp>;

/// How old a file's times must be before its stamp stands for its content.
const SETTLED_NS: i64 = 2_000_000_000;

/// What a listing of the outputs found.
#[derive(Debug, Default)]
pub struct Listing {
    /// Each output's entries.
    pub digests: OutputDigests,
    /// The stamps of the settled files.
    pub stamps: Stamps,
    /// zccache's own temporaries met on the way (never entries).
    pub strays: Vec<PathBuf>,
    /// FIFOs, sockets and devices met on the way (never entries: not cached, not compared).
    pub specials: Vec<PathBuf>,
}

/// Lists every output: a file, a symlink (not followed), or a directory and all below it;
/// a glob, the files and symlinks it matches under its base (none matched: missing).
pub fn digest_outputs(outputs: &[(String, PathBuf)]) -> io::Result<OutputDigests> {
    digest_outputs_known(outputs, None).map(|listing| listing.digests)
}

/// Like [`digest_outputs`], taking a recorded digest instead of reading a file whose stamp
/// is the one recorded with it in `known`; also returns the stamps of the settled files.
pub fn digest_outputs_known(
    outputs: &[(String, PathBuf)],
    known: Option<(&OutputDigests, &Stamps)>,
) -> io::Result<Listing> {
    let mut lister = Lister {
        known,
        listing: Listing::default(),
        now_ns: crate::fingerprint::now_ns(),
        output: String::new(),
    };
    let digests = outputs
        .iter()
        .map(|(shown, path)| {
            lister.output.clone_from(shown);
            let listed = match is_glob(shown) {
                true => lister.list_glob(path, shown)?,
                false => lister.list_output(path)?,
            };
            Ok((shown.clone(), listed))
        })
        .collect::<io::Result<OutputDigests>>()?;
    Ok(Listing {
        digests,
        ..lister.listing
    })
}

/// Lists outputs, reusing what `known` vouches for.
struct Lister<'a> {
    known: Option<(&'a OutputDigests, &'a Stamps)>,
    listing: Listing,
    now_ns: i64,
    /// The output being listed.
    output: String,
}

/// The outputs that do not hold what was recorded: missing now (or then), or one of the
/// recorded entries gone or different. Entries the record does not name are ignored.
pub fn changed_outputs(recorded: &OutputDigests, now: &OutputDigests) -> Vec<String> {
    now.iter()
        .filter(|(path, entries)| {
            let (Some(Some(was)), Some(is)) = (recorded.get(*path), entries) else {
                return true;
            };
            !holds(is, was)
        })
        .map(|(path, _)| path.clone())
        .collect()
}

/// True when `now` (a listing, sorted) has every entry of `was`, identical — a mode may also
/// be the recorded one under the user's umask, as a restore writes it.
pub fn holds(now: &[OutputEntry], was: &[OutputEntry]) -> bool {
    was.iter().all(|entry| {
        now.binary_search_by(|e| e.path.cmp(&entry.path))
            .is_ok_and(|at| {
                let is = &now[at];
                is.kind == entry.kind
                    && is.digest == entry.digest
                    && (is.mode == entry.mode
                        || is.mode == entry.mode & 0o777 & !crate::os::umask())
            })
    })
}

impl Lister<'_> {
    /// The files and symlinks under `base` whose path relative to it matches `pattern`, walked
    /// from the pattern's literal leading directories.
    fn list_glob(&mut self, base: &Path, pattern: &str) -> io::Result<Option<Vec<OutputEntry>>> {
        let matcher = glob_matcher(pattern).map_err(io::Error::other)?;
        let start = literal_parts(pattern).join("/");
        let mut all = Vec::new();
        let root = base.join(&start);
        let specials_before = self.listing.specials.len();
        if std::fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir()) {
            self.list_tree(&root, &start, &mut all)?;
        }
        let found = self.listing.specials.split_off(specials_before);
        self.listing
            .specials
            .extend(found.into_iter().filter(|path| {
                path.strip_prefix(base).is_ok_and(|rel| {
                    matcher.is_match(rel) && !never_an_output(&rel.to_string_lossy())
                })
            }));
        let mut entries: Vec<OutputEntry> = all
            .into_iter()
            .filter(|e| e.kind != OutputKind::Dir && matcher.is_match(&e.path))
            .filter(|e| !never_an_output(&e.path))
            .collect();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Some(entries).filter(|e| !e.is_empty()))
    }

    fn list_output(&mut self, path: &Path) -> io::Result<Option<Vec<OutputEntry>>> {
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(root) = self.entry(path, String::new(), &meta)? else {
            return Ok(None);
        };
        let mut entries = vec![root];
        if meta.is_dir() {
            self.list_tree(path, "", &mut entries)?;
        }
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Some(entries))
    }

    fn list_tree(&mut self, dir: &Path, rel: &str, out: &mut Vec<OutputEntry>) -> io::Result<()> {
        for item in std::fs::read_dir(dir)? {
            let item = item?;
            if is_temp(&item.file_name()) {
                self.listing.strays.push(item.path());
                continue;
            }
            let name = item.file_name().to_string_lossy().into_owned();
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let meta = std::fs::symlink_metadata(item.path())?;
            out.extend(self.entry(&item.path(), rel.clone(), &meta)?);
            if meta.is_dir() {
                self.list_tree(&item.path(), &rel, out)?;
            }
        }
        Ok(())
    }

    /// The entry of a file, symlink or directory (`None`: a FIFO, socket or device, which
    /// is noted and left out).
    fn entry(
        &mut self,
        path: &Path,
        rel: String,
        meta: &std::fs::Metadata,
    ) -> io::Result<Option<OutputEntry>> {
        let (kind, digest) = if meta.is_symlink() {
            let target = std::fs::read_link(path)?.to_string_lossy().into_owned();
            let digest = hash_entry(path, EntryKind::Symlink, 0)?;
            (OutputKind::Symlink(target), Some(digest))
        } else if meta.is_dir() {
            (OutputKind::Dir, None)
        } else if meta.is_file() {
            (OutputKind::File, Some(self.file_digest(path, &rel, meta)?))
        } else {
            self.listing.specials.push(path.to_path_buf());
            return Ok(None);
        };
        Ok(Some(OutputEntry {
            path: rel,
            kind,
            mode: meta.permissions().mode() & 0o777,
            digest,
        }))
    }

    /// A regular file's digest: the recorded one when the file's stamp is the recorded stamp,
    /// else read and hashed. A settled file's stamp is kept for the record.
    fn file_digest(
        &mut self,
        path: &Path,
        rel: &str,
        meta: &std::fs::Metadata,
    ) -> io::Result<Digest> {
        let stamp = Stamp::of(meta);
        let settled = self.now_ns - stamp.mtime_ns.max(stamp.ctime_ns) > SETTLED_NS;
        let name = format!("{}\0{rel}", self.output);
        let recorded = self.known.and_then(|(digests, stamps)| {
            (stamps.get(&name) == Some(&stamp)).then_some(())?;
            let entries = digests.get(&self.output)?.as_ref()?;
            let at = entries
                .binary_search_by(|e| e.path.as_str().cmp(rel))
                .ok()?;
            entries[at]
                .digest
                .filter(|_| entries[at].kind == OutputKind::File)
        });
        let digest = match recorded {
            Some(digest) => digest,
            None => hash_entry(path, EntryKind::File, meta.len())?,
        };
        if settled {
            self.listing.stamps.insert(name, stamp);
        }
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_stamp_stands_for_the_content_and_another_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.txt");
        std::fs::write(&file, "real").unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let outputs = vec![("out.txt".to_string(), file.clone())];
        let Listing {
            digests, stamps, ..
        } = digest_outputs_known(&outputs, None).unwrap();
        // The ctime is new: nothing is settled yet.
        assert!(stamps.is_empty());
        let real = digests["out.txt"].as_ref().unwrap()[0].digest;
        // A record whose stamp matches is believed without reading (its digest is taken as
        // given); with any other stamp the file is read.
        let mut forged = digests.clone();
        forged.get_mut("out.txt").unwrap().as_mut().unwrap()[0].digest = Some(Digest::of(b"x"));
        let stamp = Stamp::of(&std::fs::metadata(&file).unwrap());
        let name = "out.txt\0".to_string();
        let believed = Stamps::from([(name.clone(), stamp)]);
        let got = digest_outputs_known(&outputs, Some((&forged, &believed)))
            .unwrap()
            .digests;
        assert_eq!(
            got["out.txt"].as_ref().unwrap()[0].digest,
            Some(Digest::of(b"x"))
        );
        let other = Stamps::from([(
            name,
            Stamp {
                ctime_ns: 1,
                ..stamp
            },
        )]);
        let got = digest_outputs_known(&outputs, Some((&forged, &other)))
            .unwrap()
            .digests;
        assert_eq!(got["out.txt"].as_ref().unwrap()[0].digest, real);
    }
}
