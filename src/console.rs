//! Where a task's output goes: straight to the terminal, into a block printed whole when the
//! task ends (parallel tasks never interleave), or line by line prefixed with the task's name.
//! zccache's own `zccache:` lines of a task go the same way as its command's output.
//!
//! Memory stays bounded whatever a command prints: a block past `HELD_IN_MEMORY` bytes goes
//! on in a file with no name (`O_TMPFILE`) in this user's own `ZCCACHE_DIR/spill` (0700),
//! never in a shared temp directory; and a prefixed line without an end is printed in pieces
//! of `LONGEST_LINE`. Nothing is ever dropped: when that file cannot be made or cannot grow
//! (disk full, the file size limit), what it holds stays and the rest is held in memory.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

/// Most bytes of a grouped block held in memory.
const HELD_IN_MEMORY: usize = 1 << 20;
/// Longest unfinished line a prefixed console holds before printing it as a line.
const LONGEST_LINE: usize = 64 << 10;

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
    Grouped(Mutex<Block>),
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
            OutputMode::Grouped if parallel => {
                Console::Grouped(Mutex::new(Block::new(HELD_IN_MEMORY)))
            }
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
            Console::Grouped(block) => lock(block).add(stream, bytes),
            Console::Prefixed { prefix, partial } => {
                let mut partial = lock(partial);
                if let Some(complete) = complete_lines(&mut partial[stream as usize], bytes) {
                    emit(stream, &prefixed(prefix, &complete));
                }
            }
        }
    }

    /// Passes a grouped block on to `parent` whole (a part of a task run beside its other
    /// parts goes into the task's own console); any other console finishes as usual.
    pub fn finish_into(&self, parent: &Console) {
        match self {
            Console::Grouped(block) => {
                let block = std::mem::replace(&mut *lock(block), Block::new(0));
                block.print(|stream, bytes| parent.write(stream, bytes));
            }
            _ => self.finish(),
        }
    }

    /// Prints what is still held: the whole block, or the last unfinished lines.
    pub fn finish(&self) {
        match self {
            Console::Direct => {}
            Console::Grouped(block) => {
                let block = std::mem::replace(&mut *lock(block), Block::new(0));
                let _printing = lock(&PRINTING);
                block.print(write_stream);
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

/// A grouped block: chunks in order, in memory up to a bound, then in a temporary file.
#[derive(Debug)]
pub struct Block {
    chunks: Vec<(Stream, Vec<u8>)>,
    held: usize,
    limit: usize,
    /// Past the bound: the chunks from then on, as (stream, length, bytes) records; those
    /// in `chunks` come after them.
    spilled: Option<File>,
    /// The bytes of whole records in that file (a failed write may leave part of one).
    spilled_len: u64,
    /// The file could not be made or cannot grow: everything from now on stays in memory.
    in_memory: bool,
    /// Where that file goes (`None`: `spill_dir()`).
    spill_in: Option<PathBuf>,
}

impl Block {
    fn new(limit: usize) -> Self {
        Block {
            chunks: Vec::new(),
            held: 0,
            limit,
            spilled: None,
            spilled_len: 0,
            in_memory: false,
            spill_in: None,
        }
    }

    fn add(&mut self, stream: Stream, bytes: &[u8]) {
        if let Some(file) = self.spilled.as_mut().filter(|_| !self.in_memory) {
            match record(file, stream, bytes) {
                Ok(len) => {
                    self.spilled_len += len;
                    return;
                }
                // The disk is full or the file at its size limit: what it holds stays, the
                // rest is held in memory after it.
                Err(_) => self.in_memory = true,
            }
        }
        match self.chunks.last_mut() {
            Some((last, kept)) if *last == stream => kept.extend_from_slice(bytes),
            _ => self.chunks.push((stream, bytes.to_vec())),
        }
        self.held += bytes.len();
        if self.held > self.limit && !self.in_memory {
            self.in_memory = !self.spill();
        }
    }

    /// Moves the chunks held into a file with no name in `spill_dir`; false (and they stay
    /// in memory) when none can be made or written.
    fn spill(&mut self) -> bool {
        let Some(dir) = self.spill_in.clone().or_else(spill_dir) else {
            return false;
        };
        let Ok(mut file) = File::options()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE)
            .open(dir)
        else {
            return false;
        };
        let mut len = 0;
        for (stream, bytes) in &self.chunks {
            match record(&mut file, *stream, bytes) {
                Ok(n) => len += n,
                Err(_) => return false,
            }
        }
        self.chunks.clear();
        self.held = 0;
        self.spilled = Some(file);
        self.spilled_len = len;
        true
    }

    /// Hands every chunk, in order, to `out` (the spilled ones in pieces).
    fn print(self, mut out: impl FnMut(Stream, &[u8])) {
        if let Some(mut file) = self.spilled
            && let Err(e) = replay(&mut file, self.spilled_len, &mut out)
        {
            let lost = format!("zccache: error: part of a task's output was lost: {e}\n");
            out(Stream::Err, lost.as_bytes());
        }
        for (stream, bytes) in &self.chunks {
            out(*stream, bytes);
        }
    }
}

/// `ZCCACHE_DIR/spill`, created 0700 or checked to be this user's alone; `None` when it
/// cannot be had.
fn spill_dir() -> Option<PathBuf> {
    let state = crate::private_dir::state_dir().ok()?;
    crate::private_dir::ensure(&state).ok()?;
    let dir = state.join("spill");
    crate::private_dir::ensure(&dir).ok()?;
    Some(dir)
}

/// Appends one chunk to a spilled block; returns the bytes the record took.
fn record(file: &mut File, stream: Stream, bytes: &[u8]) -> std::io::Result<u64> {
    let len = bytes.len() as u64;
    file.write_all(&[stream as u8])?;
    file.write_all(&len.to_le_bytes())?;
    file.write_all(bytes)?;
    Ok(1 + 8 + len)
}

/// Reads the first `len` bytes of a spilled block back, chunk by chunk.
fn replay(file: &mut File, len: u64, out: &mut impl FnMut(Stream, &[u8])) -> std::io::Result<()> {
    file.rewind()?;
    let mut reader = std::io::BufReader::new(Read::take(&*file, len));
    let mut header = [0u8; 9];
    let mut piece = vec![0u8; LONGEST_LINE];
    while reader.read_exact(&mut header).is_ok() {
        let stream = if header[0] == Stream::Err as u8 {
            Stream::Err
        } else {
            Stream::Out
        };
        let mut left = u64::from_le_bytes(header[1..].try_into().unwrap_or_default());
        while left > 0 {
            let n = usize::try_from(left).map_or(piece.len(), |l| l.min(piece.len()));
            reader.read_exact(&mut piece[..n])?;
            out(stream, &piece[..n]);
            left -= n as u64;
        }
    }
    Ok(())
}

/// `bytes` added to the unfinished line `pending`; the complete lines now there, taken out
/// (an unfinished line past `LONGEST_LINE` counts as complete).
fn complete_lines(pending: &mut Vec<u8>, bytes: &[u8]) -> Option<Vec<u8>> {
    pending.extend_from_slice(bytes);
    if pending.len() > LONGEST_LINE && !pending.contains(&b'\n') {
        pending.push(b'\n');
    }
    let end = pending.iter().rposition(|&b| b == b'\n')?;
    let rest = pending.split_off(end + 1);
    Some(std::mem::replace(pending, rest))
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

    /// What a block prints, as (stream, bytes) runs.
    fn printed(block: Block) -> Vec<(Stream, Vec<u8>)> {
        let mut runs: Vec<(Stream, Vec<u8>)> = Vec::new();
        block.print(|stream, bytes| match runs.last_mut() {
            Some((last, kept)) if *last == stream => kept.extend_from_slice(bytes),
            _ => runs.push((stream, bytes.to_vec())),
        });
        runs
    }

    #[test]
    fn grouped_keeps_the_order_of_streams() {
        let mut block = Block::new(HELD_IN_MEMORY);
        for (stream, bytes) in [
            (Stream::Out, b"1"),
            (Stream::Out, b"2"),
            (Stream::Err, b"3"),
        ] {
            block.add(stream, bytes);
        }
        block.add(Stream::Out, b"4");
        assert!(block.spilled.is_none());
        assert_eq!(
            printed(block),
            [
                (Stream::Out, b"12".to_vec()),
                (Stream::Err, b"3".to_vec()),
                (Stream::Out, b"4".to_vec())
            ]
        );
    }

    #[test]
    fn a_large_block_goes_to_a_file_and_comes_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut block = Block::new(1000);
        block.spill_in = Some(dir.path().to_path_buf());
        let mut expected: Vec<(Stream, Vec<u8>)> = Vec::new();
        for i in 0..300u32 {
            let stream = if i % 7 == 0 { Stream::Err } else { Stream::Out };
            let bytes = format!("line {i} {}\n", "x".repeat(i as usize * 3)).into_bytes();
            block.add(stream, &bytes);
            match expected.last_mut() {
                Some((last, kept)) if *last == stream => kept.extend_from_slice(&bytes),
                _ => expected.push((stream, bytes)),
            }
        }
        assert!(
            block.spilled.is_some(),
            "past the bound the block is in a file"
        );
        assert!(
            block.held <= 1000 + 300 * 3 + 20,
            "memory stays bounded: {}",
            block.held
        );
        assert_eq!(printed(block), expected);
    }

    #[test]
    fn a_spill_file_that_cannot_grow_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut block = Block::new(100);
        block.spill_in = Some(dir.path().to_path_buf());
        let mut expected = Vec::new();
        let mut add = |block: &mut Block, i: u32| {
            let line = format!("line {i}\n").into_bytes();
            block.add(Stream::Out, &line);
            expected.extend_from_slice(&line);
        };
        (0..50).for_each(|i| add(&mut block, i));
        let file = block.spilled.take().expect("spilled past the bound");
        // The same file open for reading only: every write to it fails from now on, as on a
        // full disk.
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        block.spilled = Some(File::open(format!("/proc/self/fd/{fd}")).unwrap());
        drop(file);
        (50..100).for_each(|i| add(&mut block, i));
        assert!(block.in_memory);
        let printed: Vec<u8> = printed(block).into_iter().flat_map(|(_, b)| b).collect();
        assert_eq!(
            String::from_utf8(printed).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }

    #[test]
    fn an_endless_line_is_printed_in_pieces() {
        let mut pending = Vec::new();
        assert_eq!(complete_lines(&mut pending, b"ab"), None);
        assert_eq!(
            complete_lines(&mut pending, b"c\nd"),
            Some(b"abc\n".to_vec())
        );
        let endless = vec![b'x'; LONGEST_LINE];
        let piece = complete_lines(&mut pending, &endless).unwrap();
        assert_eq!(piece.len(), LONGEST_LINE + 2, "d, the x's and a newline");
        assert!(pending.is_empty());
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
