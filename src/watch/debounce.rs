//! Turning a stream of events into rounds: wait for the first, then take every event until
//! the sets stay quiet for the debounce period, so an editor's write-and-rename or a `git
//! checkout` of 500 files is one round. A burst that never goes quiet still ends after
//! [`LONGEST_BURST`], so a tree that is written to without pause still gets rounds.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often the wait for a first event looks for Ctrl-C.
const TICK: Duration = Duration::from_millis(100);
/// The longest a burst may keep a round waiting.
pub const LONGEST_BURST: Duration = Duration::from_secs(2);

/// What the wait brought.
#[derive(Debug)]
pub enum Burst<T> {
    /// The events of one burst, in arrival order (at least one).
    Events(Vec<T>),
    /// `stop()` said to stop.
    Stopped,
    /// Every sender is gone.
    Closed,
}

/// The next burst of `events`: blocks until one arrives (or `stop()`), then takes more
/// until none came for `quiet`.
pub fn next_burst<T>(events: &Receiver<T>, quiet: Duration, stop: impl Fn() -> bool) -> Burst<T> {
    let first = loop {
        if stop() {
            return Burst::Stopped;
        }
        match events.recv_timeout(TICK) {
            Ok(event) => break event,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Burst::Closed,
        }
    };
    let began = Instant::now();
    let mut burst = vec![first];
    while began.elapsed() < LONGEST_BURST && !stop() {
        match events.recv_timeout(quiet) {
            Ok(event) => burst.push(event),
            Err(_) => break,
        }
    }
    Burst::Events(burst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn events_queued_together_make_one_burst() {
        let (tx, rx) = channel();
        for i in 0..200 {
            tx.send(i).unwrap();
        }
        match next_burst(&rx, Duration::from_millis(20), || false) {
            Burst::Events(events) => assert_eq!(events.len(), 200),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stop_ends_the_wait_and_a_closed_channel_says_so() {
        let (tx, rx) = channel::<u8>();
        assert!(matches!(
            next_burst(&rx, Duration::from_millis(5), || true),
            Burst::Stopped
        ));
        drop(tx);
        assert!(matches!(
            next_burst(&rx, Duration::from_millis(5), || false),
            Burst::Closed
        ));
    }
}
