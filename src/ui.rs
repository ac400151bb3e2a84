//! User-facing messages: one line each on stderr (or in a task's output), prefixed
//! `zccache:`. Not logs. A line never carries a control character: names in it are quoted
//! where they are formatted (`quote::path`), and whatever else slipped in (a path in an
//! error) is escaped here, so no message can drive the terminal.

use std::fmt::Display;
use std::io::Write;
use std::sync::Arc;

use crate::console::{Console, Stream};
use crate::quote;

/// Prints zccache's own messages unless `--quiet` asked for silence.
#[derive(Debug, Clone, Default)]
pub struct Ui {
    quiet: bool,
    /// The task whose output these lines belong to (None: straight to stderr).
    console: Option<Arc<Console>>,
}

impl Ui {
    /// A printer that stays silent when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Ui {
            quiet,
            console: None,
        }
    }

    /// A printer whose lines go into a task's `console`.
    pub fn to_console(quiet: bool, console: Arc<Console>) -> Self {
        Ui {
            quiet,
            console: Some(console),
        }
    }

    /// Where the task's command writes: its console, or straight to the terminal.
    pub fn console(&self) -> &Console {
        static DIRECT: Console = Console::Direct;
        self.console.as_deref().unwrap_or(&DIRECT)
    }

    fn line(&self, text: std::fmt::Arguments<'_>) {
        let text = text.to_string();
        let text = quote::controls(&text);
        match &self.console {
            Some(console) => console.write(Stream::Err, format!("{text}\n").as_bytes()),
            // A message that cannot be written (a full disk, a closed stderr) is not a
            // reason to stop.
            None => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    /// Whether a progress line may be drawn: not quiet, and not inside a task's output that
    /// other tasks share the terminal with.
    pub fn shows_progress(&self) -> bool {
        !self.quiet && self.console.as_deref().is_none_or(Console::is_direct)
    }

    /// Prints `zccache: {msg}` unless quiet.
    pub fn say(&self, msg: impl Display) {
        if !self.quiet {
            self.line(format_args!("zccache: {msg}"));
        }
    }

    /// Prints an error line; errors are shown even when quiet.
    pub fn error(&self, msg: impl Display) {
        self.line(format_args!("zccache: error: {msg}"));
    }

    /// Prints a warning; warnings are shown even when quiet.
    pub fn warn(&self, msg: impl Display) {
        self.line(format_args!("zccache: warning: {msg}"));
    }
}

/// Prints an error: `zccache: error: ...` with its causes, on one line unless the message
/// is a block of its own (a TOML parser's, with the line and a caret), whose lines are kept;
/// no other control character reaches the terminal.
pub fn error(err: &anyhow::Error) {
    let text = format!("{err:#}");
    let lines: Vec<_> = text.split('\n').map(quote::controls).collect();
    eprintln!("zccache: error: {}", lines.join("\n"));
}

/// A progress line on stderr for checks that take a while: it appears only on a terminal,
/// only after `ZCCACHE_PROGRESS_DELAY_MS` (default 1000), and is cleared when dropped.
pub struct ProgressLine {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What a progress line shows.
pub enum Shown {
    /// Files hashed out of the total, with throughput (in-process checks).
    Hashing(std::sync::Arc<crate::fingerprint::Progress>),
    /// Time waited (checks served by the daemon).
    Waiting(&'static str),
}

impl ProgressLine {
    /// Starts the line's timer; prints nothing when `quiet` or stderr is not a terminal.
    pub fn start(shown: Shown, quiet: bool) -> Self {
        use std::io::IsTerminal;
        if quiet || !std::io::stderr().is_terminal() {
            return ProgressLine {
                stop: None,
                thread: None,
            };
        }
        let delay = std::env::var("ZCCACHE_PROGRESS_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let (stop, stopped) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || draw(&shown, delay, &stopped));
        ProgressLine {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn draw(shown: &Shown, delay_ms: u64, stopped: &std::sync::mpsc::Receiver<()>) {
    use std::time::{Duration, Instant};
    let started = Instant::now();
    let line = |shown: &Shown| {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let text = match shown {
            Shown::Hashing(progress) => {
                let (done, total, bytes) = progress.snapshot();
                let rate = bytes as f64 / secs / 1e6;
                format!("hashed {done}/{total} files ({rate:.0} MB/s)")
            }
            Shown::Waiting(what) => format!("{what} ({secs:.0} s)"),
        };
        eprint!("\r\x1b[2Kzccache: {text}");
    };
    // A zero delay shows the line from the very start.
    let mut drawn = delay_ms == 0;
    if drawn {
        line(shown);
    }
    let mut wait = Duration::from_millis(delay_ms.max(1));
    while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
        line(shown);
        drawn = true;
        wait = Duration::from_millis(200);
    }
    if drawn {
        eprint!("\r\x1b[2K");
    }
}
