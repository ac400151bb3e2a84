//! `ZCCACHE_TRACE_TIMES=1`: the wrapper client, and a per-file `zccache run`, print where
//! their own time went, phase by phase, as one stderr line when they exit (`zccache: times:
//! args 0.041 ms, ...`), for the hit-path and per-file tables in `bench/README.md`. Off (one
//! relaxed load per mark) unless the variable is set when zccache starts.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The variable that turns the trace on.
pub const TRACE_ENV: &str = "ZCCACHE_TRACE_TIMES";

static ON: AtomicBool = AtomicBool::new(false);
static MARKS: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());

/// Starts the trace when `ZCCACHE_TRACE_TIMES` is set (not empty, not `0`).
pub fn start() {
    let on = std::env::var_os(TRACE_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    if on {
        ON.store(true, Ordering::Relaxed);
        mark("start");
    }
}

/// Ends the phase named `label` now (the time since the previous mark).
pub fn mark(label: &'static str) {
    if ON.load(Ordering::Relaxed) {
        let now = Instant::now();
        MARKS
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((label, now));
    }
}

/// Prints the phases and their total, if the trace is on.
pub fn report() {
    if !ON.load(Ordering::Relaxed) {
        return;
    }
    let marks = MARKS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(line) = phases_line(&marks) {
        eprintln!("zccache: times: {line}");
    }
}

/// `label ms` for each mark after the first (the time since the one before), then the total.
fn phases_line(marks: &[(&'static str, Instant)]) -> Option<String> {
    let (first, last) = (marks.first()?.1, marks.last()?.1);
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let mut parts: Vec<String> = marks
        .windows(2)
        .map(|w| format!("{} {:.3} ms", w[1].0, ms(w[1].1 - w[0].1)))
        .collect();
    parts.push(format!("total {:.3} ms", ms(last - first)));
    Some(parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn phases_are_the_gaps_between_marks() {
        let t0 = Instant::now();
        let marks = [
            ("start", t0),
            ("args", t0 + Duration::from_micros(50)),
            ("reply", t0 + Duration::from_micros(1050)),
        ];
        assert_eq!(
            phases_line(&marks).as_deref(),
            Some("args 0.050 ms, reply 1.000 ms, total 1.050 ms")
        );
        assert_eq!(phases_line(&[]), None);
    }
}
