//! The daemon's memory of recently stored or delivered blobs, decoded and verified, so a hit
//! on a blob it has just seen (a rebuild after `make clean`, the same object asked again)
//! costs a copy instead of a read, an inflate and a hash. Content-addressed: a blob here is
//! exactly the bytes its digest names, so it can never be stale; the entry that names it is
//! still read from disk on every lookup, so what the store no longer holds is never served.
//! Bounded in bytes, least recently used first out; large blobs are not kept.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use crate::fingerprint::Digest;

/// Bytes of blobs kept (a few builds' worth of C objects).
pub const MEMO_BYTES: usize = 64 << 20;
/// Largest blob kept: big ones (Rust rlibs) would push out many small ones for little gain.
const MAX_KEPT_BLOB: usize = 4 << 20;

/// Decoded blobs by digest, least recently used dropped first once over its budget.
#[derive(Debug)]
pub struct BlobMemo {
    budget: usize,
    inner: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    blobs: HashMap<Digest, (Arc<[u8]>, u64)>,
    by_use: BTreeMap<u64, Digest>,
    bytes: usize,
    clock: u64,
}

impl BlobMemo {
    /// A memo holding at most `budget` bytes of blobs.
    pub fn new(budget: usize) -> Self {
        BlobMemo {
            budget,
            inner: Mutex::new(Kept::default()),
        }
    }

    /// The bytes of `digest`, if kept (and marks them recently used).
    pub fn get(&self, digest: Digest) -> Option<Arc<[u8]>> {
        let mut kept = self.lock();
        let kept = &mut *kept;
        kept.clock += 1;
        let (bytes, used) = kept.blobs.get_mut(&digest)?;
        kept.by_use.remove(used);
        *used = kept.clock;
        kept.by_use.insert(kept.clock, digest);
        Some(Arc::clone(bytes))
    }

    /// Keeps `bytes`, which the caller knows are the blob `digest` names.
    pub fn put(&self, digest: Digest, bytes: &[u8]) {
        if bytes.len() > MAX_KEPT_BLOB.min(self.budget) || bytes.is_empty() {
            return;
        }
        let mut kept = self.lock();
        let kept = &mut *kept;
        kept.clock += 1;
        if let Some((_, used)) = kept.blobs.get_mut(&digest) {
            kept.by_use.remove(used);
            *used = kept.clock;
            kept.by_use.insert(kept.clock, digest);
            return;
        }
        kept.blobs.insert(digest, (Arc::from(bytes), kept.clock));
        kept.by_use.insert(kept.clock, digest);
        kept.bytes += bytes.len();
        while kept.bytes > self.budget {
            let Some((_, oldest)) = kept.by_use.pop_first() else {
                break;
            };
            if let Some((dropped, _)) = kept.blobs.remove(&oldest) {
                kept.bytes -= dropped.len();
            }
        }
    }

    /// Forgets everything (the store was cleared).
    pub fn clear(&self) {
        *self.lock() = Kept::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_fits_and_drops_the_least_recently_used() {
        let memo = BlobMemo::new(10);
        let (a, b, c) = (b"aaaa".as_slice(), b"bbbb".as_slice(), b"cccc".as_slice());
        memo.put(Digest::of(a), a);
        memo.put(Digest::of(b), b);
        assert_eq!(memo.get(Digest::of(a)).as_deref(), Some(a));
        memo.put(Digest::of(c), c);
        assert!(
            memo.get(Digest::of(b)).is_none(),
            "b was used least recently"
        );
        assert_eq!(memo.get(Digest::of(a)).as_deref(), Some(a));
        assert_eq!(memo.get(Digest::of(c)).as_deref(), Some(c));
    }

    #[test]
    fn a_blob_over_the_budget_is_not_kept() {
        let memo = BlobMemo::new(4);
        let big = b"12345".as_slice();
        memo.put(Digest::of(big), big);
        assert!(memo.get(Digest::of(big)).is_none());
        memo.clear();
    }
}
