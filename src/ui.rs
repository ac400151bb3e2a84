//! User-facing messages: one line each on stderr, prefixed `zccache:`. Not logs.

use std::fmt::Display;

/// Prints zccache's own messages unless `--quiet` asked for silence.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ui {
    quiet: bool,
}

impl Ui {
    /// A printer that stays silent when `quiet`.
    pub fn new(quiet: bool) -> Self {
        Ui { quiet }
    }

    /// Prints `zccache: {msg}` unless quiet.
    pub fn say(&self, msg: impl Display) {
        if !self.quiet {
            eprintln!("zccache: {msg}");
        }
    }

    /// Prints a warning; warnings are shown even when quiet.
    pub fn warn(&self, msg: impl Display) {
        eprintln!("zccache: warning: {msg}");
    }
}

/// Prints an error as one line: `zccache: error: ...` with its causes.
pub fn error(err: &anyhow::Error) {
    eprintln!("zccache: error: {err:#}");
}
