//! Rust misses still being stored after their wrapper was answered. A wrapper that compiled
//! a miss itself is let go as soon as its report is read; the outputs are read and stored
//! afterwards, off the build's critical path. A lookup of the same crate waits for that
//! store, and whatever reads the store as a whole (status, listings, a stop) waits for all
//! of them, so no one sees a build's store half written.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::fingerprint::Digest;

/// Most stores in progress at once; past it a miss is stored before its wrapper is answered.
const MAX_PENDING: usize = 16;
/// Longest a lookup or a reader waits for stores in progress (then goes on without them).
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// The stores in progress, by the crate's base key.
#[derive(Debug, Default)]
pub struct PendingStores {
    by_base: Mutex<HashMap<Digest, usize>>,
    done: Condvar,
}

/// One store in progress; it ends when this is dropped.
#[derive(Debug)]
pub struct Pending {
    stores: Arc<PendingStores>,
    base: Digest,
}

impl PendingStores {
    /// Counts a store of `base` in progress; `None` when too many are.
    pub fn begin(self: &Arc<Self>, base: Digest) -> Option<Pending> {
        let mut by_base = self.lock();
        if by_base.values().sum::<usize>() >= MAX_PENDING {
            return None;
        }
        *by_base.entry(base).or_default() += 1;
        Some(Pending {
            stores: Arc::clone(self),
            base,
        })
    }

    /// Waits until no store of `base` is in progress.
    pub fn wait_for(&self, base: &Digest) {
        self.wait_until(|by_base| !by_base.contains_key(base));
    }

    /// Waits until no store is in progress.
    pub fn settle(&self) {
        self.wait_until(HashMap::is_empty);
    }

    fn wait_until(&self, done: impl Fn(&HashMap<Digest, usize>) -> bool) {
        let deadline = Instant::now() + WAIT_LIMIT;
        let mut by_base = self.lock();
        while !done(&by_base) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!("stores still in progress after {WAIT_LIMIT:?}; going on");
                return;
            }
            by_base = self
                .done
                .wait_timeout(by_base, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Digest, usize>> {
        self.by_base.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut by_base = self.stores.lock();
        if let Some(count) = by_base.get_mut(&self.base) {
            *count -= 1;
            if *count == 0 {
                by_base.remove(&self.base);
            }
        }
        self.stores.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_ends_when_the_store_of_its_key_does() {
        let stores = Arc::new(PendingStores::default());
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        let pending = stores.begin(a).unwrap();
        stores.wait_for(&b);
        let started = Instant::now();
        let ender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(pending);
        });
        stores.wait_for(&a);
        assert!(started.elapsed() >= Duration::from_millis(100));
        ender.join().unwrap();
        stores.settle();
    }

    #[test]
    fn past_the_bound_a_store_is_not_deferred() {
        let stores = Arc::new(PendingStores::default());
        let held: Vec<Pending> = (0..MAX_PENDING)
            .map(|i| stores.begin(Digest::of(&[i as u8])).unwrap())
            .collect();
        assert!(stores.begin(Digest::of(b"one more")).is_none());
        drop(held);
        assert!(stores.begin(Digest::of(b"one more")).is_some());
    }
}
