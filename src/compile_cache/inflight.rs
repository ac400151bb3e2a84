//! Compile-once: a compile that finds an identical one (same inputs, same output) already
//! running waits for it and then takes its stored result, instead of compiling again.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use crate::fingerprint::Digest;

/// Identifies a compile: its source-side key and the output it writes.
pub type FlightKey = (Digest, String);

#[derive(Default)]
struct Flight {
    done: Mutex<bool>,
    finished: Condvar,
}

/// The compiles running now.
#[derive(Default)]
pub struct InFlight {
    running: Mutex<HashMap<FlightKey, Arc<Flight>>>,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InFlight")
    }
}

/// Leadership of one compile; dropping it wakes the compiles waiting for it.
pub struct Lead<'a> {
    owner: &'a InFlight,
    key: FlightKey,
    flight: Arc<Flight>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        self.owner.lock().remove(&self.key);
        *self.flight.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.flight.finished.notify_all();
    }
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FlightKey, Arc<Flight>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leads the compile of `key`, or, when an identical one is running, waits until it is
    /// done and returns `None`.
    pub fn lead_or_wait(&self, key: FlightKey) -> Option<Lead<'_>> {
        let running = {
            let mut map = self.lock();
            match map.get(&key) {
                Some(flight) => Arc::clone(flight),
                None => {
                    let flight = Arc::new(Flight::default());
                    map.insert(key.clone(), Arc::clone(&flight));
                    return Some(Lead {
                        owner: self,
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
