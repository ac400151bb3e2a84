//! Content hashes: blake3 of a file's bytes, or of a symlink's target text.

use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::scan::EntryKind;

/// Files at least this large are read in pieces of this size, each hashed on several
/// threads. (Not mapped: a mapped file cut shorter while it is hashed kills the process with
/// SIGBUS, a daemon included.)
const LARGE_FILE: u64 = 4 << 20;

/// A blake3 digest, serialized as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex form.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// Parses the hex form.
    pub fn from_hex(hex: &str) -> Option<Self> {
        blake3::Hash::from_hex(hex)
            .ok()
            .map(|h| Digest(*h.as_bytes()))
    }
}

impl From<blake3::Hash> for Digest {
    fn from(hash: blake3::Hash) -> Self {
        Digest(*hash.as_bytes())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <&str>::deserialize(d)?;
        Digest::from_hex(text).ok_or_else(|| serde::de::Error::custom("bad digest"))
    }
}

/// A hasher for an entry's content: a file's bytes as they are, a symlink's link text after
/// a tag (so a link never hashes as a file holding its target's name). The working tree and
/// git's staged blobs are hashed alike.
pub fn content_hasher(kind: EntryKind) -> blake3::Hasher {
    let mut hasher = blake3::Hasher::new();
    if kind == EntryKind::Symlink {
        hasher.update(b"symlink\0");
    }
    hasher
}

/// Hashes the entry at `path`: file content, or the link text of a symlink (never followed).
/// A file must still be a regular file: what took its place since the walk (a FIFO, which
/// would block a read for ever; a symlink; a directory) is an error, never read.
pub fn hash_entry(path: &Path, kind: EntryKind, size: u64) -> io::Result<Digest> {
    match kind {
        EntryKind::Symlink => {
            let target = std::fs::read_link(path)?;
            let mut hasher = content_hasher(kind);
            hasher.update(target.as_os_str().as_bytes());
            Ok(hasher.finalize().into())
        }
        EntryKind::File => {
            let mut file = open_regular(path)?;
            if size >= LARGE_FILE {
                return hash_in_pieces(&mut file);
            }
            let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
            io::Read::read_to_end(&mut file, &mut bytes)?;
            Ok(Digest::of(&bytes))
        }
    }
}

/// The digest of what `file` holds from here to its end, read in `LARGE_FILE` pieces.
fn hash_in_pieces(file: &mut std::fs::File) -> io::Result<Digest> {
    let mut hasher = blake3::Hasher::new();
    let mut piece = vec![0u8; LARGE_FILE as usize];
    loop {
        let mut filled = 0;
        while filled < piece.len() {
            match io::Read::read(file, &mut piece[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        hasher.update_rayon(&piece[..filled]);
        if filled < piece.len() {
            return Ok(hasher.finalize().into());
        }
    }
}

/// Opens `path` for reading if it is a regular file, without following a symlink or
/// waiting on a FIFO.
fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let d = Digest::of(b"abc");
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert_eq!(Digest::from_hex("zz"), None);
    }

    #[test]
    fn a_fifo_where_a_file_was_is_an_error_not_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = hash_entry(&path, EntryKind::File, 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        std::os::unix::fs::symlink("fifo", dir.path().join("link")).unwrap();
        assert!(hash_entry(&dir.path().join("link"), EntryKind::File, 10).is_err());
    }

    #[test]
    fn a_large_file_cut_shorter_while_it_is_hashed_is_no_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let file = std::fs::File::create(&path).unwrap();
        let size = 64 << 20;
        file.set_len(size).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    file.set_len(0).unwrap();
                    file.set_len(size).unwrap();
                }
            });
            for _ in 0..20 {
                let _ = hash_entry(&path, EntryKind::File, size);
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }

    #[test]
    fn large_and_small_paths_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let bytes: Vec<u8> = (0..LARGE_FILE + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &bytes).unwrap();
        let in_pieces = hash_entry(&path, EntryKind::File, bytes.len() as u64).unwrap();
        assert_eq!(in_pieces, Digest::of(&bytes));
        let exact: Vec<u8> = (0..2 * LARGE_FILE).map(|i| (i % 241) as u8).collect();
        std::fs::write(&path, &exact).unwrap();
        let whole_pieces = hash_entry(&path, EntryKind::File, exact.len() as u64).unwrap();
        assert_eq!(whole_pieces, Digest::of(&exact));
    }
}
