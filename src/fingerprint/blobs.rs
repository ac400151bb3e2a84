//! `F.blobs`: the content digest of each git blob a `--staged` check has read, so the next
//! one reads only blobs it has not seen. A blob id names its content, so an entry never goes
//! stale; the file keeps the blobs of the last staged check only, which bounds it by the
//! index.
//!
//! Binary, read without parsing: a header line, then fixed records (the kind of entry and the
//! raw id, zero-padded: SHA-1 and SHA-256 ids alike), each followed by its 32-byte digest.
//! Anything unreadable loads as empty: the blobs are read again.

use std::collections::HashMap;
use std::path::Path;

use super::hash::Digest;
use super::scan::EntryKind;
use super::state::{read_state_file, write_file_atomic};

const HEADER: &[u8] = b"zccache-blobs 1\n";
/// Kind byte plus the longest id (SHA-256).
const KEY_LEN: usize = 33;
const RECORD_LEN: usize = KEY_LEN + 32;

/// A git object id: 20 bytes (SHA-1) or 32 (SHA-256), kept raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobId {
    len: u8,
    raw: [u8; 32],
}

impl BlobId {
    /// The id git prints as `hex` (40 or 64 hex digits), if it is one.
    pub fn new(hex: &[u8]) -> Option<Self> {
        if !matches!(hex.len(), 40 | 64) {
            return None;
        }
        let mut raw = [0u8; 32];
        for (byte, pair) in raw.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
            *byte = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Some(BlobId {
            len: (hex.len() / 2) as u8,
            raw,
        })
    }

    /// The raw bytes.
    fn bytes(&self) -> &[u8] {
        &self.raw[..usize::from(self.len)]
    }

    fn key(&self, kind: EntryKind) -> [u8; KEY_LEN] {
        let mut key = [0u8; KEY_LEN];
        key[0] = kind as u8;
        key[1..].copy_from_slice(&self.raw);
        key
    }
}

/// Hashes bytes into a git blob id, as git does (`blob <len>\0` then the bytes), with the
/// algorithm of the id it is compared with (SHA-1, or SHA-256 for a 64-digit id).
pub struct ObjectHasher(Algorithm);

enum Algorithm {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl ObjectHasher {
    /// A hasher for a blob of `len` bytes, to be compared with `id`.
    pub fn new(id: &BlobId, len: u64) -> Self {
        use sha2::Digest as _;
        let header = format!("blob {len}\0");
        let mut algorithm = match id.len {
            32 => Algorithm::Sha256(sha2::Sha256::new()),
            _ => Algorithm::Sha1(sha1::Sha1::new()),
        };
        match &mut algorithm {
            Algorithm::Sha1(h) => h.update(header.as_bytes()),
            Algorithm::Sha256(h) => h.update(header.as_bytes()),
        }
        ObjectHasher(algorithm)
    }

    /// Adds content.
    pub fn update(&mut self, bytes: &[u8]) {
        use sha2::Digest as _;
        match &mut self.0 {
            Algorithm::Sha1(h) => h.update(bytes),
            Algorithm::Sha256(h) => h.update(bytes),
        }
    }

    /// True when the bytes hashed are the blob `id` names.
    pub fn is(self, id: &BlobId) -> bool {
        use sha2::Digest as _;
        match self.0 {
            Algorithm::Sha1(h) => h.finalize().as_slice() == id.bytes(),
            Algorithm::Sha256(h) => h.finalize().as_slice() == id.bytes(),
        }
    }
}

impl std::fmt::Display for BlobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.bytes().iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Blob digests by blob and kind.
#[derive(Debug, Default)]
pub struct Blobs {
    digests: HashMap<[u8; KEY_LEN], Digest>,
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
        let digests = body
            .chunks_exact(RECORD_LEN)
            .filter_map(|r| {
                let (key, digest) = r.split_at(KEY_LEN);
                Some((key.try_into().ok()?, Digest(digest.try_into().ok()?)))
            })
            .collect();
        Blobs { digests }
    }

    /// The memo of `entries` (blob, how it is read, digest).
    pub fn from_iter(entries: impl IntoIterator<Item = (BlobId, EntryKind, Digest)>) -> Self {
        let digests = entries
            .into_iter()
            .map(|(id, kind, digest)| (id.key(kind), digest))
            .collect();
        Blobs { digests }
    }

    /// The digest of blob `id` read as `kind`, if known.
    pub fn get(&self, id: &BlobId, kind: EntryKind) -> Option<Digest> {
        self.digests.get(&id.key(kind)).copied()
    }

    /// Writes the memo to `path` atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(HEADER.len() + self.digests.len() * RECORD_LEN);
        bytes.extend_from_slice(HEADER);
        for (key, digest) in &self.digests {
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
        BlobId::new(c.to_string().repeat(len).as_bytes()).unwrap()
    }

    #[test]
    fn ids_are_checked_and_print_as_git_does() {
        assert!(BlobId::new(b"abc").is_none());
        assert!(BlobId::new("g".repeat(40).as_bytes()).is_none());
        let hex = "ce013625030ba8dba906f756967f9e9ca394464a";
        assert_eq!(BlobId::new(hex.as_bytes()).unwrap().to_string(), hex);
        assert_eq!(id('A', 64).to_string(), "a".repeat(64));
    }

    #[test]
    fn memo_round_trips_and_keeps_kinds_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.blobs");
        let (a, b) = (id('a', 40), id('b', 64));
        Blobs::from_iter([
            (b, EntryKind::File, Digest::of(b"b")),
            (a, EntryKind::File, Digest::of(b"a")),
            (a, EntryKind::Symlink, Digest::of(b"link a")),
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
    fn object_ids_are_git_s() {
        // `printf 'hello\n' | git hash-object --stdin`, and its SHA-256 form.
        let sha1 = BlobId::new(b"ce013625030ba8dba906f756967f9e9ca394464a").unwrap();
        let sha256 =
            BlobId::new(b"2cf8d83d9ee29543b34a87727421fdecb7e3f3a183d337639025de576db9ebb4")
                .unwrap();
        for id in [&sha1, &sha256] {
            let mut hasher = ObjectHasher::new(id, 6);
            hasher.update(b"hello\n");
            assert!(hasher.is(id), "{id}");
        }
        let mut other = ObjectHasher::new(&sha1, 6);
        other.update(b"hellO\n");
        assert!(!other.is(&sha1));
    }

    #[test]
    fn a_damaged_memo_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.blobs");
        std::fs::write(&path, b"zccache-blobs 1\nshort").unwrap();
        assert!(Blobs::load(&path).digests.is_empty());
    }
}
