//! The stat table in bytes: a compact binary form, read with one read and decoded without
//! parsing text, for a per-file task's `F.files.table` and for the per-file set the daemon
//! hands a client (hex digests in JSON or serde cost more than the rest of such a check).
//!
//! The bytes: a magic line, the scan time, the entries (path, kind, exec, size, mtime,
//! ctime, inode, digest), then the blake3 digest of all the bytes before it ([`seal`]).
//! Integers are little-endian; lengths are u32. Anything that does not decode whole and
//! exactly, or whose digest does not match, decodes as `None`: the caller holds no table
//! and reads every file, so damage costs work, never a wrong digest.

use super::hash::Digest;
use super::scan::{EntryKind, Stat};
use super::table::{Entry, Table};

const TABLE_MAGIC: &[u8] = b"zccache table v1\n";

/// The bytes of `table`.
pub fn encode_table(table: &Table) -> Vec<u8> {
    encode_entries(table.scanned_at_ns, &table.entries)
}

/// The bytes of the table of `entries` scanned at `scanned_at_ns` (as [`encode_table`]).
pub fn encode_entries(scanned_at_ns: i64, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(TABLE_MAGIC.len() + 112 * entries.len() + 64);
    out.extend_from_slice(TABLE_MAGIC);
    out.extend_from_slice(&scanned_at_ns.to_le_bytes());
    put_len(&mut out, entries.len());
    for entry in entries {
        put_entry(&mut out, entry);
    }
    seal(out)
}

/// The table in `bytes`; `None` unless it is one whole, intact table.
pub fn decode_table(bytes: &[u8]) -> Option<Table> {
    let mut r = open(TABLE_MAGIC, bytes)?;
    let scanned_at_ns = i64::from_le_bytes(r.array()?);
    let n = r.length()?;
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
pub fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Asserts that every cut of `bytes` short of whole, and every byte of it flipped, is
/// refused by `decodes` (for the codecs sealed with [`seal`]).
#[cfg(test)]
pub fn assert_every_damage_refused(bytes: &[u8], decodes: impl Fn(&[u8]) -> bool) {
    for len in 0..bytes.len() {
        assert!(!decodes(&bytes[..len]), "cut at {len}");
    }
    for at in 0..bytes.len() {
        let mut bad = bytes.to_vec();
        bad[at] ^= 0x10;
        assert!(!decodes(&bad), "flipped at {at}");
    }
}

/// A reader of the body of `bytes`, when they start with `magic` and end with the digest of
/// what comes before it.
pub fn open<'a>(magic: &[u8], bytes: &'a [u8]) -> Option<Reader<'a>> {
    let (sealed, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(sealed).as_bytes() != sum {
        return None;
    }
    Some(Reader(sealed.strip_prefix(magic)?))
}

/// Appends the length `n` (u32).
pub fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

/// Appends `s`, its length first.
pub fn put_str(out: &mut Vec<u8>, s: &str) {
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

/// Takes bytes from the front of a slice; `None` once it runs short.
pub struct Reader<'a>(pub &'a [u8]);

impl Reader<'_> {
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    /// The next byte.
    pub fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    /// The next `N` bytes.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// The next length (u32).
    pub fn length(&mut self) -> Option<usize> {
        usize::try_from(u32::from_le_bytes(self.array()?)).ok()
    }

    /// The next string (its length first; UTF-8).
    pub fn string(&mut self) -> Option<String> {
        let n = self.length()?;
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

    #[test]
    fn a_table_round_trips_and_any_damage_is_none() {
        let bytes = encode_table(&table());
        assert_eq!(decode_table(&bytes), Some(table()));
        assert_every_damage_refused(&bytes, |b| decode_table(b).is_some());
    }
}
