//! Counters a long check updates while it hashes, for a caller to show progress.

use std::sync::atomic::{AtomicU64, Ordering};

/// Files and bytes hashed so far, out of how many files need hashing.
#[derive(Debug, Default)]
pub struct Progress {
    total: AtomicU64,
    hashed: AtomicU64,
    bytes: AtomicU64,
}

impl Progress {
    /// `n` more files will be hashed.
    pub fn add_total(&self, n: usize) {
        self.total.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// One file of `bytes` was hashed.
    pub fn hashed_one(&self, bytes: u64) {
        self.hashed.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// (files hashed, files to hash, bytes hashed).
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.hashed.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }
}
