//! Compile-once: a compile that finds an identical one already running waits for it and
//! then looks the store up again, instead of compiling again.
//!
//! "Identical" is the source-side key alone (the base key: compiler, arguments but the
//! output paths, keyed env, source). The output's name is not part of it: `-o y1.o` and
//! `-o y2.o` of one source make the same object, which is why a hit may deliver one
//! compile's result to the other. A lead is owned (no borrow), so a Rust miss handed to its
//! wrapper keeps it until the wrapper reports back or hangs up.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::fingerprint::Digest;

#[derive(Default)]
struct Flight {
    done: Mutex<bool>,
    finished: Condvar,
}

type Running = Arc<Mutex<HashMap<Digest, Arc<Flight>>>>;

/// The compiles running now, by base key.
#[derive(Default)]
pub struct InFlight {
    running: Running,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlight")
    }
}

/// Leadership of one compile; dropping it wakes the compiles waiting for it.
pub struct Lead {
    running: Running,
    key: Digest,
    flight: Arc<Flight>,
}

impl std::fmt::Debug for Lead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lead({})", self.key.to_hex())
    }
}

impl Drop for Lead {
    fn drop(&mut self) {
        lock(&self.running).remove(&self.key);
        *self.flight.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.flight.finished.notify_all();
    }
}

fn lock(running: &Running) -> MutexGuard<'_, HashMap<Digest, Arc<Flight>>> {
    running.lock().unwrap_or_else(|p| p.into_inner())
}

impl InFlight {
    /// Leads the compile of `key`, or, when an identical one is running, waits until it is
    /// done and returns `None` (the caller looks the store up again, then asks once more).
    pub fn lead_or_wait(&self, key: Digest) -> Option<Lead> {
        let running = {
            let mut map = lock(&self.running);
            match map.get(&key) {
                Some(flight) => Arc::clone(flight),
                None => {
                    let flight = Arc::new(Flight::default());
                    map.insert(key, Arc::clone(&flight));
                    return Some(Lead {
                        running: Arc::clone(&self.running),
                        key,
                        flight,
                    });
                }
            }
        };
        let mut done = running.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = running
                .finished
                .wait(done)
                .unwrap_or_else(|p| p.into_inner());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn one_leads_the_others_wait_until_it_is_dropped() {
        let flights = Arc::new(InFlight::default());
        let key = Digest::of(b"y.c");
        let lead = flights.lead_or_wait(key).unwrap();
        let started = Instant::now();
        let waiter = {
            let flights = Arc::clone(&flights);
            std::thread::spawn(move || flights.lead_or_wait(key).is_none())
        };
        std::thread::sleep(Duration::from_millis(100));
        drop(lead);
        assert!(waiter.join().unwrap(), "the second compile waited, not led");
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(
            flights.lead_or_wait(key).is_some(),
            "a later compile leads again"
        );
        assert!(flights.lead_or_wait(Digest::of(b"other")).is_some());
    }
}
