//! The bytes of a per-file record (`F.files`): a compact binary form read with one read and
//! decoded without parsing text (the JSON record of 2,000 files cost ~8 ms to read and
//! write, most of it hex digests and string escapes). Its stat table (`F.files.table`) is
//! in the engine's binary form (`fingerprint::encode_table`).
//!
//! The bytes: a magic line, the paths (each with its pass keys, flags, and the passed and
//! failed digests), then the blake3 digest of all the bytes before it. Integers are
//! little-endian; lengths are u32. Anything that does not decode whole and exactly, or
//! whose digest does not match, decodes as `None`: the caller then holds no record and
//! every file runs, so a corrupt record costs a run, never a pass.

use std::collections::BTreeMap;

use super::state::PathRecord;
use crate::fingerprint::{Digest, MAX_SUCCESSES, Reader, open, put_len, put_str, seal};

const RECORD_MAGIC: &[u8] = b"zccache per-file v2\n";
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
    let n = r.length()?;
    let paths: Vec<(String, PathRecord)> =
        (0..n).map(|_| get_path(&mut r)).collect::<Option<_>>()?;
    if !r.0.is_empty() || !paths.is_sorted_by(|a, b| a.0 < b.0) {
        return None;
    }
    Some(BTreeMap::from_iter(paths))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> BTreeMap<String, PathRecord> {
        let mut record = super::super::state::FilesRecord::default();
        record.pass("a.py", Digest([7; 32]), Digest([1; 32]));
        record.pass("a.py", Digest([8; 32]), Digest([1; 32]));
        record.fail("b/ü.py", Digest([2; 32]));
        record.paths
    }

    #[test]
    fn a_record_round_trips_and_any_damage_is_none() {
        assert_eq!(decode_paths(&encode_paths(&paths())), Some(paths()));
        let empty = BTreeMap::new();
        assert_eq!(decode_paths(&encode_paths(&empty)), Some(empty));
        let bytes = encode_paths(&paths());
        crate::fingerprint::assert_every_damage_refused(&bytes, |b| decode_paths(b).is_some());
        assert!(decode_paths(b"{\"version\":1,\"paths\":{}}").is_none());
    }
}
