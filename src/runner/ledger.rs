//! The decision ledger `F.log`: one JSON line per decision (the last [`LEDGER_LINES`]), so
//! `zccache why` can say after the fact what happened and why.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fingerprint::{Change, write_file_atomic};

/// How many decisions a ledger keeps.
pub const LEDGER_LINES: usize = 50;

/// One decision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerLine {
    /// When, ms since the epoch.
    pub at_ms: u64,
    /// `skip` or `run`.
    pub decision: String,
    /// Machine-readable reason.
    pub reason: String,
    /// The message shown.
    pub message: String,
    /// Changed paths (at most 20).
    pub changes: Vec<Change>,
    /// Key parts that changed.
    pub changed_parts: Vec<String>,
    /// Wall time of the whole `zccache run`, ms.
    pub duration_ms: f64,
    /// The command's exit status (`None` on a skip).
    pub exit_status: Option<i32>,
    /// The command line.
    pub command: Vec<String>,
}

/// Appends `line`, dropping the oldest beyond [`LEDGER_LINES`]. Unreadable lines are dropped.
pub fn append(path: &Path, line: &LedgerLine) -> io::Result<()> {
    let mut lines = read(path);
    lines.push(line.clone());
    let start = lines.len().saturating_sub(LEDGER_LINES);
    let mut text = String::new();
    for line in &lines[start..] {
        text.push_str(&serde_json::to_string(line).map_err(io::Error::other)?);
        text.push('\n');
    }
    write_file_atomic(path, text.as_bytes(), false)
}

/// Every readable line, oldest first.
pub fn read(path: &Path) -> Vec<LedgerLine> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
