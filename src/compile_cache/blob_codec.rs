//! How a blob's bytes lie on disk and on the remote tier: a zstd frame, or raw when
//! compression is off or does not pay. Either way the blob is named by the blake3 of its
//! uncompressed bytes, and reading it back checks that name: a blob written before
//! compression existed (raw) reads as it always did, and no stored form — corrupted,
//! forged, or a frame that inflates past its recorded size — is ever delivered.

use std::borrow::Cow;

use rayon::prelude::*;

use crate::fingerprint::Digest;

/// Below this, a blob is kept raw: a zstd frame's header eats the gain.
const MIN_COMPRESSED: usize = 64;
/// The bytes of one frame of a large blob (level 1's window is half of it).
const CHUNK: usize = 1 << 20;
/// The first bytes of every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The form of `bytes` to store at zstd `level` (`None`: raw): compressed only when that
/// saves at least 1/32 of the size. A large blob is a run of independent frames of
/// `CHUNK` bytes each, so a hit inflates it on every core.
pub fn encode(bytes: &[u8], level: Option<i32>) -> Cow<'_, [u8]> {
    let Some(level) = level.filter(|_| bytes.len() >= MIN_COMPRESSED) else {
        return Cow::Borrowed(bytes);
    };
    let Ok(mut compressor) = zstd::bulk::Compressor::new(level) else {
        return Cow::Borrowed(bytes);
    };
    let mut packed = Vec::with_capacity(bytes.len() / 3);
    for chunk in bytes.chunks(CHUNK) {
        match compressor.compress(chunk) {
            Ok(frame) => packed.extend_from_slice(&frame),
            Err(_) => return Cow::Borrowed(bytes),
        }
        if packed.len() >= bytes.len() {
            return Cow::Borrowed(bytes);
        }
    }
    match packed.len() < bytes.len() - bytes.len() / 32 {
        true => Cow::Owned(packed),
        false => Cow::Borrowed(bytes),
    }
}

/// The blob `stored` holds, if it is `size` bytes hashing to `digest` — raw, or zstd frames
/// declaring contents that add up to exactly `size`, each inflated into its own part (in
/// parallel) and never past it.
pub fn decode(stored: Vec<u8>, size: u64, digest: Digest) -> Option<Vec<u8>> {
    if stored.len() as u64 == size && hashes_to(&stored, digest) {
        return Some(stored);
    }
    if !stored.starts_with(&ZSTD_MAGIC) {
        return None;
    }
    let frames = frames(&stored)?;
    let total: u64 = frames.iter().map(|(_, len)| *len as u64).sum();
    if total != size {
        return None;
    }
    let mut bytes = vec![0u8; usize::try_from(size).ok()?];
    let mut parts = Vec::with_capacity(frames.len());
    let mut rest = bytes.as_mut_slice();
    for (frame, len) in &frames {
        let (part, tail) = rest.split_at_mut(*len);
        parts.push((*frame, part));
        rest = tail;
    }
    let whole = match parts.len() {
        1 => parts.into_iter().all(|(frame, part)| inflate(frame, part)),
        _ => parts
            .into_par_iter()
            .all(|(frame, part)| inflate(frame, part)),
    };
    (whole && hashes_to(&bytes, digest)).then_some(bytes)
}

/// The frames of `stored`, each with the content size it declares; `None` when it is not a
/// run of whole frames that declare theirs.
fn frames(stored: &[u8]) -> Option<Vec<(&[u8], usize)>> {
    let mut frames = Vec::new();
    let mut rest = stored;
    while !rest.is_empty() {
        let len = zstd::zstd_safe::find_frame_compressed_size(rest).ok()?;
        let (frame, tail) = rest.split_at_checked(len)?;
        let content = zstd::zstd_safe::get_frame_content_size(frame).ok()??;
        frames.push((frame, usize::try_from(content).ok()?));
        rest = tail;
    }
    Some(frames)
}

/// True when `bytes` hash to `digest` (large ones on every core).
fn hashes_to(bytes: &[u8], digest: Digest) -> bool {
    let found: Digest = match bytes.len() >= CHUNK {
        true => blake3::Hasher::new().update_rayon(bytes).finalize().into(),
        false => Digest::of(bytes),
    };
    found == digest
}

thread_local! {
    /// This thread's zstd context, kept: making one per blob cost more than the inflating
    /// itself on a hit (a hit reads an object and a depfile).
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `frame` inflated into exactly `part`, with this thread's context.
fn inflate(frame: &[u8], part: &mut [u8]) -> bool {
    DECOMPRESSOR.with(|slot| {
        let Ok(mut slot) = slot.try_borrow_mut() else {
            return false;
        };
        if slot.is_none() {
            *slot = zstd::bulk::Decompressor::new().ok();
        }
        slot.as_mut()
            .and_then(|d| d.decompress_to_buffer(frame, part).ok())
            .is_some_and(|n| n == part.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(n: usize) -> Vec<u8> {
        (0..n).map(|i| b"abcdefgh"[i % 8]).collect()
    }

    #[test]
    fn compressible_blobs_round_trip_compressed() {
        let bytes = text(10_000);
        let stored = encode(&bytes, Some(1));
        assert!(stored.len() < bytes.len() / 10, "{}", stored.len());
        let back = decode(stored.into_owned(), 10_000, Digest::of(&bytes));
        assert_eq!(back.as_deref(), Some(&bytes[..]));
    }

    #[test]
    fn small_incompressible_or_off_stays_raw() {
        let small = text(20);
        assert!(matches!(encode(&small, Some(1)), Cow::Borrowed(_)));
        let mut noise = vec![0; 4096];
        blake3::Hasher::new().finalize_xof().fill(&mut noise);
        assert!(matches!(encode(&noise, Some(1)), Cow::Borrowed(_)));
        assert!(matches!(encode(&text(10_000), None), Cow::Borrowed(_)));
    }

    #[test]
    fn a_large_blob_is_frames_that_inflate_in_parallel_and_round_trip() {
        let bytes = text(3 * CHUNK + 12_345);
        let stored = encode(&bytes, Some(1)).into_owned();
        assert_eq!(frames(&stored).unwrap().len(), 4);
        let back = decode(stored.clone(), bytes.len() as u64, Digest::of(&bytes));
        assert_eq!(back.as_deref(), Some(&bytes[..]));
        // One frame dropped or one too many: the sizes no longer add up.
        let first = zstd::zstd_safe::find_frame_compressed_size(&stored).unwrap();
        let short = stored[first..].to_vec();
        assert_eq!(decode(short, bytes.len() as u64, Digest::of(&bytes)), None);
        let mut long = stored.clone();
        long.extend_from_slice(&stored[..first]);
        assert_eq!(decode(long, bytes.len() as u64, Digest::of(&bytes)), None);
    }

    #[test]
    fn a_raw_blob_that_looks_like_a_frame_still_reads_raw() {
        let mut bytes = ZSTD_MAGIC.to_vec();
        bytes.extend(text(100));
        let back = decode(bytes.clone(), bytes.len() as u64, Digest::of(&bytes));
        assert_eq!(back, Some(bytes));
    }

    #[test]
    fn a_frame_inflating_past_its_size_or_to_other_bytes_is_refused() {
        let bytes = text(10_000);
        let stored = encode(&bytes, Some(3)).into_owned();
        assert_eq!(decode(stored.clone(), 9_999, Digest::of(&bytes)), None);
        assert_eq!(decode(stored.clone(), 10_000, Digest::of(b"other")), None);
        let mut cut = stored;
        cut.truncate(cut.len() / 2);
        assert_eq!(decode(cut, 10_000, Digest::of(&bytes)), None);
    }
}
