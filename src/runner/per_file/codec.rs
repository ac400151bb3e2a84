//! The bytes of a per-file record (`F.files`) and of its stat table (`F.files.table`): a
//! compact binary form read with one read and decoded without parsing text (the JSON record
//! of 2,000 files cost ~8 ms to read and write, most of it hex digests and string escapes).
//!
//! Each file is its magic line, its body, then the blake3 digest of all the bytes before
//! it. The record's body: the paths, each with its pass keys, flags, and the passed and
//! failed digests. The table's: its scan time and its entries (path, kind, exec, size,
//! mtime, ctime, inode, digest). Integers are little-endian; lengths are u32. Anything that
//! does not decode whole and exactly, or whose digest does not match, decodes as `None`:
//! the caller then holds no record (every file runs) or no table (every file is read), so
//! a corrupt file costs work, never a pass.

use std::collections::BTreeMap;

use super::state::PathRecord;
use crate::fingerprint::{Digest, Entry, EntryKind, MAX_SUCCESSES, Stat, Table};

const RECORD_MAGIC: &[u8] = b"zccache per-file v2\n";
const TABLE_MAGIC: &[u8] = b"zccache per-file table v1\n";
const PASSED: u8 = 1;
const FAILED: u8 = 2;

/// The bytes of the record of `paths`.
pub fn encode_paths(paths: &BTreeMap<String, PathRecord>) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_MAGIC.len() + 96 * paths.len() + 64);
    out.extend_from_slice(RECORD_MAGIC);
    put_len(&mut out, paths.len());
    for (path, known) in paths {
        put_str(&mut out, path);
        out.push(u8::try_from(known.keys.len().min(MAX_SUCCESSES)).unwrap_or(0));
        for key in known.keys.iter().take(MAX_SUCCESSES) {
            out.extend_from_slice(&key.0);
        }
        let flags =
            u8::from(known.passed.is_some()) * PASSED + u8::from(known.failed.is_some()) * FAILED;
        out.push(flags);
        for digest in [known.passed, known.failed].into_iter().flatten() {
            out.extend_from_slice(&digest.0);
        }
    }
    seal(out)
}

/// The paths of the record in `bytes`; `None` unless they are one whole, intact record.
pub fn decode_paths(bytes: &[u8]) -> Option<BTreeMap<String, PathRecord>> {
    let mut r = open(RECORD_MAGIC, bytes)?;
    let n = r.len()?;
    let paths: Vec<(String, PathRecord)> =
        (0..n).map(|_| get_path(&mut r)).collect::<Option<_>>()?;
    if !r.0.is_empty() || !paths.is_sorted_by(|a, b| a.0 < b.0) {
        return None;
    }
    Some(BTreeMap::from_iter(paths))
}

/// The bytes of `table`.
pub fn encode_table(table: &Table) -> Vec<u8> {
    let mut out = Vec::with_capacity(TABLE_MAGIC.len() + 112 * table.entries.len() + 64);
    out.extend_from_slice(TABLE_MAGIC);
    out.extend_from_slice(&table.scanned_at_ns.to_le_bytes());
    put_len(&mut out, table.entries.len());
    for entry in &table.entries {
        put_entry(&mut out, entry);
    }
    seal(out)
}

/// The table in `bytes`; `None` unless it is one whole, intact table.
pub fn decode_table(bytes: &[u8]) -> Option<Table> {
    let mut r = open(TABLE_MAGIC, bytes)?;
    let scanned_at_ns = i64::from_le_bytes(r.array()?);
    let n = r.len()?;
    let entries: Vec<Entry> = (0..n).map(|_| get_entry(&mut r)).collect::<Option<_>>()?;
    if !r.0.is_empty() || !entries.is_sorted_by(|a, b| a.path < b.path) {
        return None;
    }
    Some(Table {
        scanned_at_ns,
        entries,
    })
}

/// `out` followed by its digest.
fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// A reader of the body of `bytes`, when they start with `magic` and end with the digest of
/// what comes before it.
fn open<'a>(magic: &[u8], bytes: &'a [u8]) -> Option<Reader<'a>> {
    let (sealed, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(sealed).as_bytes() != sum {
        return None;
    }
    Some(Reader(sealed.strip_prefix(magic)?))
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_entry(out: &mut Vec<u8>, e: &Entry) {
    put_str(out, &e.path);
    out.push(match e.kind {
        EntryKind::File => 0,
        EntryKind::Symlink => 1,
    });
    out.push(u8::from(e.exec));
    out.extend_from_slice(&e.stat.size.to_le_bytes());
    out.extend_from_slice(&e.stat.mtime_ns.to_le_bytes());
    out.extend_from_slice(&e.stat.ctime_ns.to_le_bytes());
    out.extend_from_slice(&e.stat.inode.to_le_bytes());
    out.extend_from_slice(&e.hash.0);
}

fn get_entry(r: &mut Reader<'_>) -> Option<Entry> {
    let path = r.string()?;
    let kind = match r.byte()? {
        0 => EntryKind::File,
        1 => EntryKind::Symlink,
        _ => return None,
    };
    let exec = match r.byte()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let stat = Stat {
        size: u64::from_le_bytes(r.array()?),
        mtime_ns: i64::from_le_bytes(r.array()?),
        ctime_ns: i64::from_le_bytes(r.array()?),
        inode: u64::from_le_bytes(r.array()?),
    };
    let hash = Digest(r.array()?);
    Some(Entry {
        path,
        kind,
        exec,
        stat,
        hash,
    })
}

fn get_path(r: &mut Reader<'_>) -> Option<(String, PathRecord)> {
    let path = r.string()?;
    let n = usize::from(r.byte()?);
    if n > MAX_SUCCESSES {
        return None;
    }
    let keys = (0..n)
        .map(|_| r.array().map(Digest))
        .collect::<Option<_>>()?;
    let flags = r.byte()?;
    if flags & !(PASSED | FAILED) != 0 {
        return None;
    }
    let mut digest_if = |bit| match flags & bit {
        0 => Some(None),
        _ => r.array().map(|a| Some(Digest(a))),
    };
    let passed = digest_if(PASSED)?;
    let failed = digest_if(FAILED)?;
    Some((
        path,
        PathRecord {
            keys,
            passed,
            failed,
        },
    ))
}

/// Takes bytes from the front of a slice; `None` once it runs short.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn len(&mut self) -> Option<usize> {
        usize::try_from(u32::from_le_bytes(self.array()?)).ok()
    }

    fn string(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let entry = |path: &str, i: u8| Entry {
            path: path.to_string(),
            kind: EntryKind::File,
            exec: i.is_multiple_of(2),
            stat: Stat {
                size: u64::from(i),
                mtime_ns: -i64::from(i),
                ctime_ns: i64::from(i) << 40,
                inode: u64::MAX - u64::from(i),
            },
            hash: Digest([i; 32]),
        };
        Table {
            scanned_at_ns: 1234,
            entries: vec![entry("a.py", 1), entry("b/ü.py", 2)],
        }
    }

    fn paths() -> BTreeMap<String, PathRecord> {
        let mut record = super::super::state::FilesRecord::default();
        record.pass("a.py", Digest([7; 32]), Digest([1; 32]));
        record.pass("a.py", Digest([8; 32]), Digest([1; 32]));
        record.fail("b/ü.py", Digest([2; 32]));
        record.paths
    }

    #[test]
    fn records_and_tables_round_trip() {
        assert_eq!(decode_paths(&encode_paths(&paths())), Some(paths()));
        assert_eq!(decode_table(&encode_table(&table())), Some(table()));
        assert_eq!(
            decode_paths(&encode_paths(&BTreeMap::new())),
            Some(BTreeMap::new())
        );
        assert!(
            decode_table(&encode_paths(&paths())).is_none(),
            "not a table"
        );
    }

    #[test]
    fn any_cut_or_flipped_byte_is_nothing() {
        for bytes in [encode_paths(&paths()), encode_table(&table())] {
            for len in 0..bytes.len() {
                assert!(decode_paths(&bytes[..len]).is_none(), "cut at {len}");
                assert!(decode_table(&bytes[..len]).is_none(), "cut at {len}");
            }
            for at in 0..bytes.len() {
                let mut bad = bytes.clone();
                bad[at] ^= 0x10;
                assert!(decode_paths(&bad).is_none(), "flipped at {at}");
                assert!(decode_table(&bad).is_none(), "flipped at {at}");
            }
        }
        assert!(decode_paths(b"{\"version\":1,\"paths\":{}}").is_none());
    }
}
