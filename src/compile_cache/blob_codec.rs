//! How a blob's bytes lie on disk and on the remote tier: a zstd frame, or raw when
//! compression is off or does not pay. Either way the blob is named by the blake3 of its
//! uncompressed bytes, and reading it back checks that name: a blob written before
//! compression existed (raw) reads as it always did, and no stored form — corrupted,
//! forged, or a frame that inflates past its recorded size — is ever delivered.

use std::borrow::Cow;

use crate::fingerprint::Digest;

/// Below this, a blob is kept raw: a zstd frame's header eats the gain.
const MIN_COMPRESSED: usize = 64;
/// The first bytes of every zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The form of `bytes` to store at zstd `level` (`None`: raw): compressed only when that
/// saves at least 1/32 of the size.
pub fn encode(bytes: &[u8], level: Option<i32>) -> Cow<'_, [u8]> {
    let Some(level) = level.filter(|_| bytes.len() >= MIN_COMPRESSED) else {
        return Cow::Borrowed(bytes);
    };
    match zstd::bulk::compress(bytes, level) {
        Ok(packed) if packed.len() < bytes.len() - bytes.len() / 32 => Cow::Owned(packed),
        _ => Cow::Borrowed(bytes),
    }
}

/// The blob `stored` holds, if it is `size` bytes hashing to `digest` — raw, or a zstd frame
/// inflating to exactly that (never past `size`).
pub fn decode(stored: Vec<u8>, size: u64, digest: Digest) -> Option<Vec<u8>> {
    let holds = |bytes: &[u8]| bytes.len() as u64 == size && Digest::of(bytes) == digest;
    if stored.len() as u64 == size && holds(&stored) {
        return Some(stored);
    }
    if !stored.starts_with(&ZSTD_MAGIC) {
        return None;
    }
    let capacity = usize::try_from(size).ok()?;
    let bytes = inflate(&stored, capacity)?;
    holds(&bytes).then_some(bytes)
}

thread_local! {
    /// This thread's zstd context, kept: making one per blob cost more than the inflating
    /// itself on a hit (a hit reads an object and a depfile).
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// `frame` inflated into at most `capacity` bytes, with this thread's context.
fn inflate(frame: &[u8], capacity: usize) -> Option<Vec<u8>> {
    DECOMPRESSOR.with(|slot| {
        let mut slot = slot.try_borrow_mut().ok()?;
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new().ok()?);
        }
        slot.as_mut()?.decompress(frame, capacity).ok()
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
