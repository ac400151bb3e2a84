//! What a profiled session (`session-start --profile`) adds to each journal line: the
//! output's kind (`output_ext`), the crate's name and type for rustc, and where the daemon's
//! own time went (`self_profile_ns`: lookup, compile, store, deliver).
//!
//! Phases are measured on the thread serving the request: `timed` adds the time of its
//! closure to a phase unless an outer `timed` already counts it (a lookup that reads the
//! store is one lookup), and `take` returns and resets the totals.

use std::cell::Cell;
use std::time::Instant;

use serde::Serialize;

/// Nanoseconds the daemon spent in each phase of one compile or link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Phases {
    /// Keys, manifests and the store's lookups (local and remote).
    pub lookup: u64,
    /// Running the real tool.
    pub compile: u64,
    /// Writing what it made into the store.
    pub store: u64,
    /// Writing outputs into the build.
    pub deliver: u64,
}

/// A phase of serving a request.
#[derive(Debug, Clone, Copy)]
pub enum Phase {
    /// See `Phases::lookup`.
    Lookup,
    /// See `Phases::compile`.
    Compile,
    /// See `Phases::store`.
    Store,
    /// See `Phases::deliver`.
    Deliver,
}

/// The profile fields of one compile or link.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Profile {
    /// The main output's extension (`o`, `rlib`, `rmeta`, `a`, `so`); `None` for a program
    /// or when no output is known (a passthrough).
    pub output_ext: Option<String>,
    /// rustc's `--crate-name`.
    pub crate_name: Option<String>,
    /// rustc's `--crate-type`s, comma-separated.
    pub crate_type: Option<String>,
    /// The daemon's own time, by phase.
    pub self_profile_ns: Phases,
}

impl Profile {
    /// A profile whose output is `path` (its extension, if any).
    pub fn of_output(path: &str) -> Self {
        let name = path.rsplit('/').next().unwrap_or(path);
        let output_ext = name
            .rsplit_once('.')
            .filter(|(stem, _)| !stem.is_empty())
            .map(|(_, ext)| ext.to_string());
        Profile {
            output_ext,
            ..Profile::default()
        }
    }
}

thread_local! {
    static TOTALS: Cell<Phases> = const { Cell::new(Phases { lookup: 0, compile: 0, store: 0, deliver: 0 }) };
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, adding its time to `phase` (unless an enclosing `timed` counts it already).
pub fn timed<T>(phase: Phase, f: impl FnOnce() -> T) -> T {
    let outer = DEPTH.with(|d| d.replace(d.get() + 1)) == 0;
    let started = Instant::now();
    let result = f();
    DEPTH.with(|d| d.set(d.get() - 1));
    if outer {
        add(phase, started.elapsed());
    }
    result
}

/// Adds `spent` to `phase` (time spent outside this thread: a compile the wrapper ran).
pub fn add(phase: Phase, spent: std::time::Duration) {
    let ns = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
    TOTALS.with(|t| {
        let mut totals = t.get();
        let slot = match phase {
            Phase::Lookup => &mut totals.lookup,
            Phase::Compile => &mut totals.compile,
            Phase::Store => &mut totals.store,
            Phase::Deliver => &mut totals.deliver,
        };
        *slot = slot.saturating_add(ns);
        t.set(totals);
    });
}

/// This thread's totals since the last call, reset.
pub fn take() -> Phases {
    TOTALS.with(|t| t.replace(Phases::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_time_counts_once_and_take_resets() {
        take();
        timed(Phase::Lookup, || {
            timed(Phase::Store, || {
                std::thread::sleep(std::time::Duration::from_millis(2))
            })
        });
        let phases = take();
        assert!(phases.lookup >= 2_000_000);
        assert_eq!(phases.store, 0);
        assert_eq!(take(), Phases::default());
    }

    #[test]
    fn extensions_of_outputs() {
        assert_eq!(
            Profile::of_output("build/a.o").output_ext.as_deref(),
            Some("o")
        );
        assert_eq!(
            Profile::of_output("liba.a").output_ext.as_deref(),
            Some("a")
        );
        assert_eq!(Profile::of_output("out/app").output_ext, None);
        assert_eq!(Profile::of_output(".hidden").output_ext, None);
    }
}
