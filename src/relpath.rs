//! Paths of the input set as strings, for any bytes a Unix name may hold.
//!
//! A path relative to the root is kept as a `/`-separated `String` (in tables, state files,
//! the ledger, JSON). A name that is valid UTF-8 is kept as it is, so existing state files
//! read unchanged. A byte that is not part of valid UTF-8 is written as NUL followed by two
//! uppercase hex digits (`bad\xFF` → `"bad\u{0}FF"`): no Unix name holds a NUL, so the form
//! is unambiguous and [`decode`] gives back exactly the bytes on disk. Messages never print
//! it raw: `quote::path` shows such a byte in octal, as git does (`"bad\377"`).

use std::borrow::Cow;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The character that starts an encoded byte.
const ESCAPE: char = '\0';

/// `path` relative to `root`, encoded (see the module docs).
pub fn relative(root: &Path, path: &Path) -> String {
    // A walk's paths are the root's bytes, `/`, then the rest: cut without parsing them.
    let (root_bytes, bytes) = (root.as_os_str().as_bytes(), path.as_os_str().as_bytes());
    match bytes.strip_prefix(root_bytes) {
        Some([]) => String::new(),
        Some([b'/', rest @ ..]) if !root_bytes.ends_with(b"/") && is_plain(rest) => encode(rest),
        _ => {
            let rel = path.strip_prefix(root).unwrap_or(path);
            encode(rel.as_os_str().as_bytes())
        }
    }
}

/// The path of the entry `name` (encoded) of the directory `dir` (relative to the root and
/// encoded, `""` for the root itself).
pub fn child(dir: &str, name: String) -> String {
    if dir.is_empty() {
        return name;
    }
    let mut path = String::with_capacity(dir.len() + 1 + name.len());
    path.push_str(dir);
    path.push('/');
    path.push_str(&name);
    path
}

/// True when `rel` is a relative path as `Path::strip_prefix` would give it back unchanged:
/// no empty, `.` or trailing component.
fn is_plain(rel: &[u8]) -> bool {
    !rel.is_empty()
        && !rel.ends_with(b"/")
        && rel
            .split(|b| *b == b'/')
            .all(|part| !part.is_empty() && part != b".")
}

/// `bytes` as a string: valid UTF-8 kept, every other byte as NUL + two hex digits.
pub fn encode(bytes: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_string();
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push(ESCAPE);
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}

/// The bytes `rel` stands for (the inverse of [`encode`]). A NUL not followed by two hex
/// digits, which `encode` never writes, is kept as a NUL.
pub fn decode(rel: &str) -> Cow<'_, [u8]> {
    if !rel.contains(ESCAPE) {
        return Cow::Borrowed(rel.as_bytes());
    }
    let mut out = Vec::with_capacity(rel.len());
    let mut rest = rel;
    while let Some(at) = rest.find(ESCAPE) {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        let after = &rest[at + 1..];
        match escaped_byte(after) {
            Some(b) => {
                out.push(b);
                rest = &after[2..];
            }
            None => {
                out.push(0);
                rest = after;
            }
        }
    }
    out.extend_from_slice(rest.as_bytes());
    Cow::Owned(out)
}

/// The byte encoded by the two hex digits at the start of `text`, if they are there.
pub fn escaped_byte(text: &str) -> Option<u8> {
    let hex = text.get(..2)?;
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// The file `rel` (encoded) names under `root`.
pub fn join(root: &Path, rel: &str) -> PathBuf {
    root.join(OsStr::from_bytes(&decode(rel)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_cuts_the_root_as_strip_prefix_does() {
        let cases = [
            ("/r", "/r/a/b.py"),
            ("/r", "/r"),
            ("/r", "/r/"),
            ("/r", "/rx/a"),
            ("/", "/a/b"),
            ("/r/", "/r/a"),
            ("/r", "/r//a"),
            ("/r", "/r/./a"),
            ("/r", "/r/a/"),
            ("/r", "/other/a"),
        ];
        for (root, path) in cases {
            let (root, path) = (Path::new(root), Path::new(path));
            let slow = path.strip_prefix(root).unwrap_or(path);
            assert_eq!(
                relative(root, path),
                encode(slow.as_os_str().as_bytes()),
                "{path:?}"
            );
        }
    }

    #[test]
    fn utf8_names_are_kept_as_they_are() {
        assert_eq!(encode(b"src/caf\xc3\xa9.rs"), "src/café.rs");
        assert_eq!(encode(b"a\\xFF"), "a\\xFF", "a literal backslash-x stays");
        assert_eq!(relative(Path::new("/r"), Path::new("/r/a/b.c")), "a/b.c");
    }

    #[test]
    fn other_bytes_round_trip_and_stay_distinct() {
        let names: [&[u8]; 6] = [
            b"bad\xff\xfe.txt",
            b"dir\xc3\x28/x.txt",
            b"end\xe2\x82",
            b"a\\xFF",
            b"a\xff",
            b"\x80",
        ];
        let encoded: Vec<String> = names.iter().map(|n| encode(n)).collect();
        for (name, enc) in names.iter().zip(&encoded) {
            assert_eq!(&*decode(enc), *name, "{enc:?}");
        }
        let mut unique = encoded.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        assert_eq!(encoded[0], "bad\u{0}FF\u{0}FE.txt");
    }

    #[test]
    fn encoding_composes_across_slashes() {
        let whole = encode(b"dir\xc3\x28/x\xff.txt");
        assert_eq!(
            whole,
            format!("{}/{}", encode(b"dir\xc3\x28"), encode(b"x\xff.txt"))
        );
    }

    #[test]
    fn a_stray_nul_decodes_as_itself() {
        assert_eq!(&*decode("a\u{0}zz"), b"a\0zz");
        assert_eq!(&*decode("a\u{0}F"), b"a\0F");
    }

    #[test]
    fn join_gives_the_bytes_on_disk() {
        let path = join(Path::new("/r"), &encode(b"bad\xff.txt"));
        assert_eq!(path.as_os_str().as_bytes(), b"/r/bad\xff.txt");
    }
}
