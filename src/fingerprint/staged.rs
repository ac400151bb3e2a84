//! The input set as staged in git's index (`--staged`, for pre-commit hooks): tracked files
//! from `git ls-files -s -z`, each hashed by its staged content exactly as the working tree
//! would be (blake3 of the bytes, of the link text for a symlink), so a staged check of the
//! same bytes as the working tree has the same key as an ordinary check: one result serves
//! both. Names are kept whatever their bytes (`relpath`).
//!
//! Reading every staged blob on every commit would cost as much as the commit's whole tree;
//! the digest of each blob id is therefore remembered in `F.blobs` ([`blobs`]), and only
//! blobs not seen before are read: from the working tree when the file there still holds the
//! blob (checked by its git id), else in one `git cat-file --batch`.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rayon::prelude::*;

use super::FpError;
use super::blobs::{BlobId, Blobs, ObjectHasher};
use super::filter::Filter;
use super::hash::{Digest, content_hasher};
use super::scan::{EntryKind, Stat};
use super::table::{Entry, Table};
use crate::relpath;

/// Git's mode of a symlink.
const SYMLINK_MODE: &[u8] = b"120000";
/// Git's mode of an executable file.
const EXEC_MODE: &[u8] = b"100755";
/// Git's mode of a submodule (a commit, not a blob).
const GITLINK_MODE: &[u8] = b"160000";

/// One index record under the root.
struct Record {
    path: String,
    kind: EntryKind,
    exec: bool,
    gitlink: bool,
    blob: BlobId,
}

/// The staged entries under `root` that pass `filter`, sorted by path, and how many blobs
/// had to be read. `memo` is the remembered blob digests; it is saved back when blobs were
/// read and `save` allows.
pub fn staged_entries(
    root: &Path,
    filter: &Filter,
    memo: &Path,
    save: bool,
) -> Result<(Vec<Entry>, usize), FpError> {
    let records = staged_records(root, filter)?;
    let known = Blobs::load(memo);
    let mut digests: Vec<Option<Digest>> = records
        .iter()
        .map(|r| known.get(&r.blob, r.kind).filter(|_| !r.gitlink))
        .collect();
    let missing: Vec<&Record> = records
        .iter()
        .zip(&digests)
        .filter(|(r, digest)| !r.gitlink && digest.is_none())
        .map(|(r, _)| r)
        .collect();
    if !missing.is_empty() {
        let read = read_missing(root, &missing)?;
        for (r, digest) in records.iter().zip(&mut digests) {
            if digest.is_none() && !r.gitlink {
                *digest = read.get(&r.blob, r.kind);
            }
        }
        if save {
            let kept = records.iter().zip(&digests);
            let kept = kept.filter_map(|(r, d)| Some((r.blob, r.kind, (*d)?)));
            // A memo that cannot be written costs reading these blobs again, nothing else.
            let _ = Blobs::from_iter(kept).save(memo);
        }
    }
    // A submodule's commit, or a blob git does not have, is named by its id: never equal to
    // a working tree's content, always equal to itself.
    let by_id = |r: &Record| Digest::of(format!("git object {}", r.blob).as_bytes());
    let entries = records
        .iter()
        .zip(digests)
        .map(|(r, digest)| entry(r, digest.unwrap_or_else(|| by_id(r))))
        .collect();
    Ok((entries, missing.len()))
}

/// The index records under `root` that pass `filter`, sorted by path.
fn staged_records(root: &Path, filter: &Filter) -> Result<Vec<Record>, FpError> {
    let listing = git(root, &["ls-files", "--stage", "-z", "--full-name"])?;
    let prefix = git(root, &["rev-parse", "--show-prefix"])?;
    let prefix = prefix.strip_suffix(b"\n").unwrap_or(&prefix);
    let mut records: Vec<Record> = listing
        .split(|&b| b == 0)
        .filter_map(|record| parse_record(record, prefix))
        .filter(|r| included(filter, &r.path))
        .collect();
    records.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(records)
}

/// The digests of the `missing` blobs: from the working tree where the file at the same path
/// still holds the blob (its bytes are hashed once into both the git id, which must be the
/// blob's, and the digest), else from git (`cat-file`), which is slower by far.
fn read_missing(root: &Path, missing: &[&Record]) -> Result<Blobs, FpError> {
    let from_tree: Vec<Option<Digest>> = missing
        .par_iter()
        .map(|r| worktree_digest(&relpath::join(root, &r.path), r.kind, &r.blob))
        .collect();
    let mut found: Vec<(BlobId, EntryKind, Digest)> = Vec::with_capacity(missing.len());
    let mut unread: Vec<(BlobId, EntryKind)> = Vec::new();
    for (r, digest) in missing.iter().zip(from_tree) {
        match digest {
            Some(digest) => found.push((r.blob, r.kind, digest)),
            None => unread.push((r.blob, r.kind)),
        }
    }
    unread.sort_by_key(|(id, kind)| (*id, *kind as u8));
    unread.dedup();
    found.extend(read_blobs(root, &unread)?);
    Ok(Blobs::from_iter(found))
}

/// The digest of the file or link at `path` if it holds exactly the blob `id` (`None`: it
/// differs, is gone or is something else). The bytes are read once and hashed both ways, so a
/// file changed meanwhile can only fail the id check, never lend its digest to the blob.
fn worktree_digest(path: &Path, kind: EntryKind, id: &BlobId) -> Option<Digest> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mut content = content_hasher(kind);
    let object = match kind {
        EntryKind::Symlink if meta.file_type().is_symlink() => {
            let target = std::fs::read_link(path).ok()?;
            let bytes = target.as_os_str().as_bytes();
            let mut object = ObjectHasher::new(id, bytes.len() as u64);
            object.update(bytes);
            content.update(bytes);
            object
        }
        EntryKind::File if meta.is_file() => {
            let mut file = std::fs::File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(path)
                .ok()?;
            let meta = file.metadata().ok()?;
            let mut object = ObjectHasher::new(id, meta.len());
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let n = file.read(&mut buf).ok()?;
                if n == 0 {
                    break;
                }
                object.update(&buf[..n]);
                content.update(&buf[..n]);
            }
            object
        }
        _ => return None,
    };
    object.is(id).then(|| content.finalize().into())
}

/// The stat table to keep after a staged success: an entry of `previous` (the working tree's
/// last table) where the staged entry has the same path, kind, mode and content — its stat
/// still vouches for that content, so the next ordinary check need not read the file — else
/// the staged entry without a stat, which no file matches, so it is read.
pub fn staged_table(previous: Option<&Table>, entries: &[Entry]) -> Table {
    let Some(previous) = previous else {
        return Table {
            scanned_at_ns: 0,
            entries: entries.to_vec(),
        };
    };
    let mut old = previous.entries.iter().peekable();
    let entries = entries
        .iter()
        .map(|e| {
            while old.next_if(|o| o.path < e.path).is_some() {}
            match old.next_if(|o| o.path == e.path) {
                Some(o) if o.kind == e.kind && o.exec == e.exec && o.hash == e.hash => o.clone(),
                _ => e.clone(),
            }
        })
        .collect();
    Table {
        scanned_at_ns: previous.scanned_at_ns,
        entries,
    }
}

fn entry(r: &Record, hash: Digest) -> Entry {
    Entry {
        path: r.path.clone(),
        kind: r.kind,
        exec: r.exec,
        // No stat: a staged entry is never reused by metadata.
        stat: Stat {
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
        },
        hash,
    }
}

/// Runs git in `root` and returns its stdout, or an error with the first line git said.
fn git(root: &Path, args: &[&str]) -> Result<Vec<u8>, FpError> {
    let output = Command::new("git")
        .args(args)
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| FpError::io("run git in", root, e))?;
    if !output.status.success() {
        return Err(git_failed(root, &output.stderr));
    }
    Ok(output.stdout)
}

fn git_failed(root: &Path, stderr: &[u8]) -> FpError {
    let why = String::from_utf8_lossy(stderr);
    let first = why.lines().next().unwrap_or("failed").to_string();
    FpError::io("read the git index of", root, io::Error::other(first))
}

/// The digests of `blobs` (id, and whether it is read as a file or as link text), streamed
/// from one `git cat-file --batch` (hashed as they arrive, never all in memory).
fn read_blobs(
    root: &Path,
    blobs: &[(BlobId, EntryKind)],
) -> Result<Vec<(BlobId, EntryKind, Digest)>, FpError> {
    if blobs.is_empty() {
        return Ok(Vec::new());
    }
    let failed = |e| FpError::io("read blobs with git cat-file in", root, e);
    let mut child = Command::new("git")
        .args(["cat-file", "--batch"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(failed)?;
    let mut ids = Vec::with_capacity(blobs.len() * 41);
    for (id, _) in blobs {
        ids.extend_from_slice(id.to_string().as_bytes());
        ids.push(b'\n');
    }
    // Fed from another thread: git answers while it reads, and both pipes are bounded.
    let mut stdin = child.stdin.take();
    let feeder = std::thread::spawn(move || stdin.as_mut().map(|s| s.write_all(&ids)));
    let mut read = Vec::with_capacity(blobs.len());
    let streamed = match child.stdout.take() {
        Some(stdout) => digest_objects(&mut BufReader::new(stdout), blobs, &mut read),
        None => Err(io::Error::other("no pipe from git")),
    };
    let _ = feeder.join();
    let output = child.wait_with_output().map_err(failed)?;
    if !output.status.success() {
        return Err(git_failed(root, &output.stderr));
    }
    streamed.map_err(failed)?;
    Ok(read)
}

/// Reads one object per blob, in order, and keeps the digest of each one git has.
fn digest_objects(
    reader: &mut impl BufRead,
    blobs: &[(BlobId, EntryKind)],
    read: &mut Vec<(BlobId, EntryKind, Digest)>,
) -> io::Result<()> {
    for (id, kind) in blobs {
        let Some(size) = next_header(reader)? else {
            continue;
        };
        let mut hasher = content_hasher(*kind);
        let copied = io::copy(&mut reader.by_ref().take(size), &mut hasher)?;
        let mut newline = [0u8; 1];
        reader.read_exact(&mut newline)?;
        if copied != size {
            return Err(io::Error::other("git cat-file output ended early"));
        }
        read.push((*id, *kind, hasher.finalize().into()));
    }
    Ok(())
}

/// The size of the next object of `cat-file --batch` output, or `None` when git says it is
/// missing.
fn next_header(reader: &mut impl BufRead) -> io::Result<Option<u64>> {
    let mut header = String::new();
    reader.read_line(&mut header)?;
    let mut fields = header.split_whitespace();
    let (Some(_id), Some(kind)) = (fields.next(), fields.next()) else {
        return Err(io::Error::other("git cat-file output ended early"));
    };
    match fields.next().and_then(|s| s.parse::<u64>().ok()) {
        Some(size) => Ok(Some(size)),
        None if matches!(kind, "missing" | "ambiguous") => Ok(None),
        None => Err(io::Error::other(format!(
            "bad git cat-file header {header:?}"
        ))),
    }
}

/// `<mode> <blob> <stage>\t<path>` → a record, its path relative to the root (`prefix` is the
/// root's place in the repository) and encoded; `None` outside the root.
fn parse_record(record: &[u8], prefix: &[u8]) -> Option<Record> {
    let tab = record.iter().position(|&b| b == b'\t')?;
    let (meta, path) = (&record[..tab], &record[tab + 1..]);
    let mut fields = meta.split(|&b| b == b' ');
    let (mode, blob) = (fields.next()?, fields.next()?);
    let path = path.strip_prefix(prefix)?;
    Some(Record {
        path: relpath::encode(path),
        kind: match mode == SYMLINK_MODE {
            true => EntryKind::Symlink,
            false => EntryKind::File,
        },
        exec: mode == EXEC_MODE,
        gitlink: mode == GITLINK_MODE,
        blob: BlobId::new(blob)?,
    })
}

/// Whether a tracked path passes the filters: no excluded directory on its way, selected.
fn included(filter: &Filter, path: &str) -> bool {
    let mut at = 0;
    for part in path.split('/') {
        let end = at + part.len();
        if filter.excludes(&path[..end], part) {
            return false;
        }
        at = end + 1;
    }
    filter.selects(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn records_parse_with_mode_and_prefix() {
        let line = |mode: &str, path: &[u8]| {
            let mut r = format!("{mode} {ID} 0\t").into_bytes();
            r.extend_from_slice(path);
            r
        };
        let e = parse_record(&line("100755", b"sub/run.sh"), b"sub/").unwrap();
        assert_eq!(e.path, "run.sh");
        assert!(e.exec);
        assert!(parse_record(&line("100644", b"other/x"), b"sub/").is_none());
        let link = parse_record(&line("120000", b"l"), b"").unwrap();
        assert_eq!(link.kind, EntryKind::Symlink);
        let raw = parse_record(&line("100644", b"bad\xff.txt"), b"").unwrap();
        assert_eq!(&*relpath::decode(&raw.path), b"bad\xff.txt");
    }

    #[test]
    fn a_working_tree_file_lends_its_digest_only_when_it_holds_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let hello = BlobId::new(b"ce013625030ba8dba906f756967f9e9ca394464a").unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "hello\n").unwrap();
        let digest = worktree_digest(&file, EntryKind::File, &hello);
        assert_eq!(digest, Some(Digest::of(b"hello\n")));
        std::fs::write(&file, "hello!\n").unwrap();
        assert_eq!(worktree_digest(&file, EntryKind::File, &hello), None);
        assert_eq!(worktree_digest(&file, EntryKind::Symlink, &hello), None);
        let link = dir.path().join("l");
        std::os::unix::fs::symlink("hello\n", &link).unwrap();
        let mut expected = content_hasher(EntryKind::Symlink);
        expected.update(b"hello\n");
        let digest = worktree_digest(&link, EntryKind::Symlink, &hello);
        assert_eq!(digest, Some(expected.finalize().into()));
        assert_eq!(worktree_digest(&link, EntryKind::File, &hello), None);
    }

    #[test]
    fn a_staged_table_keeps_the_stats_that_still_hold() {
        let file = |path: &str, content: &[u8], inode: u64| Entry {
            path: path.into(),
            kind: EntryKind::File,
            exec: false,
            stat: Stat {
                size: 1,
                mtime_ns: 1,
                ctime_ns: 1,
                inode,
            },
            hash: Digest::of(content),
        };
        let previous = Table {
            scanned_at_ns: 7,
            entries: vec![file("a", b"1", 1), file("b", b"1", 2), file("u", b"1", 3)],
        };
        let staged = [file("a", b"1", 0), file("b", b"2", 0), file("c", b"1", 0)];
        let table = staged_table(Some(&previous), &staged);
        let inodes: Vec<u64> = table.entries.iter().map(|e| e.stat.inode).collect();
        assert_eq!(inodes, [1, 0, 0]);
        assert_eq!(table.scanned_at_ns, 7);
    }

    #[test]
    fn batch_output_is_hashed_as_the_working_tree_is() {
        let ids: Vec<(BlobId, EntryKind)> = ['a', 'b', 'c']
            .into_iter()
            .map(|c| {
                (
                    BlobId::new(c.to_string().repeat(40).as_bytes()).unwrap(),
                    EntryKind::File,
                )
            })
            .collect();
        let mut blobs = ids.clone();
        blobs[2].1 = EntryKind::Symlink;
        let out = b"a blob 3\nabc\nb missing\nc blob 6\ntarget\n";
        let mut read = Vec::new();
        digest_objects(&mut BufReader::new(&out[..]), &blobs, &mut read).unwrap();
        let mut link = content_hasher(EntryKind::Symlink);
        link.update(b"target");
        let got: Vec<Digest> = read.iter().map(|r| r.2).collect();
        assert_eq!(got, [Digest::of(b"abc"), link.finalize().into()]);
        let short = b"a blob 3\nab";
        let err = digest_objects(&mut BufReader::new(&short[..]), &ids, &mut Vec::new());
        assert!(err.is_err());
    }
}
