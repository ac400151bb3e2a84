//! `F.blobs`: the content digest of each git blob a `--staged` check has read, so the next
//! one reads only blobs it has not seen. A blob id names its content, so an entry never goes
//! stale; the file keeps the blobs of the last staged check only, which bounds it by the
//! index.
//!
//! Binary, read without parsing: a header line, then fixed records sorted by key (the kind
//! of entry and the hex-decoded id, zero-padded: SHA-1 and SHA-256 ids alike) each followed by
//! its 32-byte digest. Anything unreadable loads as empty: the blobs are read again.

use std::path::Path;

use super::hash::Digest;
use super::scan::EntryKind;
use super::state::{read_state_file, write_file_atomic};

const HEADER: &[u8] = b"zccache-blobs 1\n";
/// Kind byte plus the longest id (SHA-256).
const KEY_LEN: usize = 33;
const RECORD_LEN: usize = KEY_LEN + 32;

/// A git object id as git prints it: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlobId(String);

impl BlobId {
    /// `hex` when it is an object id.
    pub fn new(hex: &str) -> Option<Self> {
        let valid = matches!(hex.len(), 40 | 64) && hex.bytes().all(|b| b.is_ascii_hexdigit());
        valid.then(|| BlobId(hex.to_ascii_lowercase()))
    }

    /// The hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn key(&self, kind: EntryKind) -> [u8; KEY_LEN] {
        let mut key = [0u8; KEY_LEN];
        key[0] = kind as u8;
        let hex = self.0.as_bytes();
        for (i, pair) in hex.chunks(2).enumerate() {
            let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            key[1 + i] = digit(pair[0]) << 4 | digit(pair[1]);
        }
        key
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Blob digests, sorted by key.
#[derive(Debug, Default)]
pub struct Blobs {
    records: Vec<([u8; KEY_LEN], Digest)>,
}

impl Blobs {
    /// The memo at `path`; empty when there is none or it cannot be used.
    pub fn load(path: &Path) -> Self {
        let Ok(Some(bytes)) = read_state_file(path) else {
            return Blobs::default();
        };
        let Some(body) = bytes.strip_prefix(HEADER) else {
            return Blobs::default();
        };
        if !body.len().is_multiple_of(RECORD_LEN) {
            return Blobs::default();
        }
        let records: Vec<([u8; KEY_LEN], Digest)> = body
            .chunks_exact(RECORD_LEN)
            .filter_map(|r| {
                let (key, digest) = r.split_at(KEY_LEN);
                Some((key.try_into().ok()?, Digest(digest.try_into().ok()?)))
            })
            .collect();
        match records.is_sorted_by(|a, b| a.0 < b.0) {
            true => Blobs { records },
            false => Blobs::default(),
        }
    }

    /// The memo of `entries` (blob, how it is read, digest).
    pub fn from_iter(entries: impl IntoIterator<Item = (BlobId, EntryKind, Digest)>) -> Self {
        let mut records: Vec<([u8; KEY_LEN], Digest)> = entries
            .into_iter()
            .map(|(id, kind, digest)| (id.key(kind), digest))
            .collect();
        records.sort_by_key(|r| r.0);
        records.dedup_by(|a, b| a.0 == b.0);
        Blobs { records }
    }

    /// The digest of blob `id` read as `kind`, if known.
    pub fn get(&self, id: &BlobId, kind: EntryKind) -> Option<Digest> {
        let key = id.key(kind);
        let at = self.records.binary_search_by(|r| r.0.cmp(&key)).ok()?;
        Some(self.records[at].1)
    }

    /// Writes the memo to `path` atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(HEADER.len() + self.records.len() * RECORD_LEN);
        bytes.extend_from_slice(HEADER);
        for (key, digest) in &self.records {
            bytes.extend_from_slice(key);
            bytes.extend_from_slice(&digest.0);
        }
        write_file_atomic(path, &bytes, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char, len: usize) -> BlobId {
        BlobId::new(&c.to_string().repeat(len)).unwrap()
    }

    #[test]
    fn ids_are_checked() {
        assert!(BlobId::new("abc").is_none());
        assert!(BlobId::new(&"g".repeat(40)).is_none());
        assert!(BlobId::new(&"A".repeat(64)).is_some());
    }

    #[test]
    fn memo_round_trips_and_keeps_kinds_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.blobs");
        let (a, b) = (id('a', 40), id('b', 64));
        Blobs::from_iter([
            (b.clone(), EntryKind::File, Digest::of(b"b")),
            (a.clone(), EntryKind::File, Digest::of(b"a")),
            (a.clone(), EntryKind::Symlink, Digest::of(b"link a")),
        ])
        .save(&path)
        .unwrap();
        let memo = Blobs::load(&path);
        assert_eq!(memo.get(&a, EntryKind::File), Some(Digest::of(b"a")));
        assert_eq!(
            memo.get(&a, EntryKind::Symlink),
            Some(Digest::of(b"link a"))
        );
        assert_eq!(memo.get(&b, EntryKind::File), Some(Digest::of(b"b")));
        assert_eq!(memo.get(&id('c', 40), EntryKind::File), None);
    }

    #[test]
    fn a_damaged_memo_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.blobs");
        std::fs::write(&path, b"zccache-blobs 1\nshort").unwrap();
        assert!(Blobs::load(&path).records.is_empty());
    }
}
