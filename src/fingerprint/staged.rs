//! The input set as staged in git's index (`--staged`, for pre-commit hooks): tracked files
//! from `git ls-files -s -z`, hashed by their blob ids, so a check judges what is being
//! committed rather than the working tree. Names are kept whatever their bytes (`relpath`).

use std::path::Path;
use std::process::Command;

use super::FpError;
use super::filter::Filter;
use super::hash::Digest;
use super::relpath;
use super::scan::{EntryKind, Stat};
use super::table::Entry;

/// Git's mode of a symlink.
const SYMLINK_MODE: &str = "120000";
/// Git's mode of an executable file.
const EXEC_MODE: &str = "100755";

/// The staged entries under `root` that pass `filter`, sorted by path.
pub fn staged_entries(root: &Path, filter: &Filter) -> Result<Vec<Entry>, FpError> {
    let output = Command::new("git")
        .args(["ls-files", "--stage", "-z", "--full-name"])
        .current_dir(root)
        .output()
        .map_err(|e| FpError::io("run git ls-files in", root, e))?;
    if !output.status.success() {
        let why = String::from_utf8_lossy(&output.stderr);
        let first = why.lines().next().unwrap_or("failed").to_string();
        return Err(FpError::io(
            "list the git index of",
            root,
            std::io::Error::other(first),
        ));
    }
    let prefix = git_prefix(root)?;
    let mut entries: Vec<Entry> = output
        .stdout
        .split(|&b| b == 0)
        .filter_map(|record| parse_record(record, &prefix))
        .filter(|e| included(filter, &e.path))
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(entries)
}

/// The root's path inside the repository (`sub/dir/`, as bytes), to make paths root-relative.
fn git_prefix(root: &Path) -> Result<Vec<u8>, FpError> {
    let output = Command::new("git")
        .args(["rev-parse", "--show-prefix"])
        .current_dir(root)
        .output()
        .map_err(|e| FpError::io("run git rev-parse in", root, e))?;
    let mut prefix = output.stdout;
    if prefix.last() == Some(&b'\n') {
        prefix.pop();
    }
    Ok(prefix)
}

/// `<mode> <blob> <stage>\t<path>` → an entry whose hash stands for the blob (and stage), its
/// path relative to the root (`prefix` is the root's place in the repository) and encoded
/// (`relpath`): a name that is not UTF-8 is kept.
fn parse_record(record: &[u8], prefix: &[u8]) -> Option<Entry> {
    let tab = record.iter().position(|&b| b == b'\t')?;
    let (meta, path) = (
        std::str::from_utf8(&record[..tab]).ok()?,
        &record[tab + 1..],
    );
    let mut fields = meta.split(' ');
    let (mode, blob, stage) = (fields.next()?, fields.next()?, fields.next()?);
    let path = relpath::encode(path.strip_prefix(prefix)?);
    Some(Entry {
        path,
        kind: if mode == SYMLINK_MODE {
            EntryKind::Symlink
        } else {
            EntryKind::File
        },
        exec: mode == EXEC_MODE,
        stat: Stat {
            size: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
        },
        hash: Digest::of(format!("git blob {blob} stage {stage}").as_bytes()),
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

    #[test]
    fn records_parse_with_mode_and_prefix() {
        let e = parse_record(b"100755 0123abcd 0\tsub/run.sh", b"sub/").unwrap();
        assert_eq!(e.path, "run.sh");
        assert!(e.exec);
        assert!(parse_record(b"100644 0123abcd 0\tother/x", b"sub/").is_none());
        let link = parse_record(b"120000 aa 0\tl", b"").unwrap();
        assert_eq!(link.kind, EntryKind::Symlink);
        let raw = parse_record(b"100644 aa 0\tbad\xff.txt", b"").unwrap();
        assert_eq!(&*relpath::decode(&raw.path), b"bad\xff.txt");
    }
}
