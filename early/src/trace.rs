//! `ZCCACHE_TRACE_TIMES=1` for the early client: one stderr line of its phases
//! (`zccache: times: early, plan 0.012 ms, ..., total 0.480 ms`), as the wrapper prints its own.

use crate::bytes::{Arena, Buf, Decimal};
use crate::sys;

/// The phases, in the order they end.
const PHASES: [&[u8]; 5] = [b"plan", b"connect", b"send", b"wait", b"replay"];

/// Phase marks, kept only when tracing.
pub struct Times {
    on: bool,
    start: u64,
    marks: [u64; 5],
    count: usize,
}

impl Times {
    /// Starts the clock if `on`.
    #[inline(always)]
    pub fn start(on: bool) -> Self {
        Times {
            on,
            start: if on { sys::now_ns() } else { 0 },
            marks: [0; 5],
            count: 0,
        }
    }

    /// Ends the next phase now.
    pub fn mark(&mut self) {
        if self.on && self.count < self.marks.len() {
            self.marks[self.count] = sys::now_ns();
            self.count += 1;
        }
    }

    /// Prints the phases and their total to stderr, if tracing.
    pub fn report(&self, arena: &mut Arena) {
        let Some(mut line) = arena.buf(512).filter(|_| self.on) else {
            return;
        };
        line.push(b"zccache: times: early");
        let mut last = self.start;
        for (label, &at) in PHASES.iter().zip(&self.marks[..self.count]) {
            line.push(b", ");
            line.push(label);
            line.push(b" ");
            push_ms(&mut line, at.saturating_sub(last));
            last = at;
        }
        line.push(b", total ");
        push_ms(&mut line, last.saturating_sub(self.start));
        line.push(b"\n");
        sys::write(2, line.as_bytes());
    }
}

/// Appends `ns` as milliseconds with three decimals and the unit.
fn push_ms(line: &mut Buf, ns: u64) {
    let micros = ns / 1000;
    line.push(Decimal::new(micros / 1000, false).as_bytes());
    let frac = micros % 1000;
    line.push(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
    line.push(b" ms");
}
