//! Where a task's output goes: straight to the terminal, into a block printed whole when the
//! task ends (parallel tasks never interleave), or line by line prefixed with the task's name.
//! zccache's own `zccache:` lines of a task go the same way as its command's output.

use std::io::Write;
use std::sync::Mutex;

/// One of the two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// How output is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputMode {
    /// Each task's output printed whole when it ends.
    #[default]
    Grouped,
    /// Each line printed as it comes, prefixed with the task's name.
    Prefixed,
}

/// Serializes the blocks and lines that several tasks print.
static PRINTING: Mutex<()> = Mutex::new(());

/// A task's destination for its command's output and zccache's lines about it.
#[derive(Debug)]
pub enum Console {
    /// Written through at once (one task at a time: the command inherits the terminal).
    Direct,
    /// Kept in order and printed as one block by `finish`.
    Grouped(Mutex<Vec<(Stream, Vec<u8>)>>),
    /// Printed per complete line with `name: ` before it; a partial line waits for its end.
    Prefixed {
        /// What each line starts with.
        prefix: Vec<u8>,
        /// The unfinished line of stdout and of stderr.
        partial: Mutex<[Vec<u8>; 2]>,
    },
}

impl Console {
    /// The console of a task named `name` in `mode`; `parallel` says whether other tasks may
    /// print at the same time (without them, grouped output goes straight through).
    pub fn new(mode: OutputMode, name: &str, parallel: bool) -> Self {
        match mode {
            OutputMode::Prefixed => Console::Prefixed {
                prefix: format!("{name}: ").into_bytes(),
                partial: Mutex::new([Vec::new(), Vec::new()]),
            },
            OutputMode::Grouped if parallel => Console::Grouped(Mutex::new(Vec::new())),
            OutputMode::Grouped => Console::Direct,
        }
    }

    /// True when the command may inherit the terminal instead of writing through pipes.
    pub fn is_direct(&self) -> bool {
        matches!(self, Console::Direct)
    }

    /// Passes `bytes` of `stream` on.
    pub fn write(&self, stream: Stream, bytes: &[u8]) {
        match self {
            Console::Direct => emit(stream, bytes),
            Console::Grouped(chunks) => {
                let mut chunks = lock(chunks);
                match chunks.last_mut() {
                    Some((last, kept)) if *last == stream => kept.extend_from_slice(bytes),
                    _ => chunks.push((stream, bytes.to_vec())),
                }
            }
            Console::Prefixed { prefix, partial } => {
                let mut partial = lock(partial);
                let pending = &mut partial[stream as usize];
                pending.extend_from_slice(bytes);
                let Some(end) = pending.iter().rposition(|&b| b == b'\n') else {
                    return;
                };
                let rest = pending.split_off(end + 1);
                let complete = std::mem::replace(pending, rest);
                emit(stream, &prefixed(prefix, &complete));
            }
        }
    }

    /// Prints what is still held: the whole block, or the last unfinished lines.
    pub fn finish(&self) {
        match self {
            Console::Direct => {}
            Console::Grouped(chunks) => {
                let chunks = std::mem::take(&mut *lock(chunks));
                let _printing = lock(&PRINTING);
                for (stream, bytes) in chunks {
                    write_stream(stream, &bytes);
                }
            }
            Console::Prefixed { prefix, partial } => {
                let mut partial = lock(partial);
                for (i, stream) in [Stream::Out, Stream::Err].into_iter().enumerate() {
                    let mut line = std::mem::take(&mut partial[i]);
                    if !line.is_empty() {
                        line.push(b'\n');
                        emit(stream, &prefixed(prefix, &line));
                    }
                }
            }
        }
    }
}

/// Every line of `lines` (which ends with a newline) with `prefix` in front.
fn prefixed(prefix: &[u8], lines: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.len() + prefix.len() * 4);
    for line in lines.split_inclusive(|&b| b == b'\n') {
        out.extend_from_slice(prefix);
        out.extend_from_slice(line);
    }
    out
}

fn emit(stream: Stream, bytes: &[u8]) {
    let _printing = lock(&PRINTING);
    write_stream(stream, bytes);
}

/// Writes and flushes; a closed terminal must not stop a task.
fn write_stream(stream: Stream, bytes: &[u8]) {
    let _ = match stream {
        Stream::Out => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
        Stream::Err => std::io::stderr().lock().write_all(bytes),
    };
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_every_line() {
        assert_eq!(prefixed(b"a: ", b"x\ny\n"), b"a: x\na: y\n");
    }

    #[test]
    fn grouped_keeps_the_order_of_streams() {
        let console = Console::new(OutputMode::Grouped, "t", true);
        console.write(Stream::Out, b"1");
        console.write(Stream::Out, b"2");
        console.write(Stream::Err, b"3");
        console.write(Stream::Out, b"4");
        let Console::Grouped(chunks) = &console else {
            panic!("not grouped")
        };
        let chunks = chunks.lock().unwrap();
        let streams: Vec<Stream> = chunks.iter().map(|(s, _)| *s).collect();
        assert_eq!(streams, [Stream::Out, Stream::Err, Stream::Out]);
        assert_eq!(chunks[0].1, b"12");
    }

    #[test]
    fn prefixed_holds_a_partial_line() {
        let console = Console::new(OutputMode::Prefixed, "t", true);
        console.write(Stream::Out, b"ab");
        let Console::Prefixed { partial, .. } = &console else {
            panic!("not prefixed")
        };
        assert_eq!(partial.lock().unwrap()[0], b"ab");
        console.write(Stream::Out, b"c\nd");
        assert_eq!(partial.lock().unwrap()[0], b"d");
    }
}
