//! The decision ledger `F.log`: one JSON line per decision (the last [`LEDGER_LINES`] are
//! read; the file is appended to and cut back now and then), so
//! `zccache why` can say after the fact what happened and why.

use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fingerprint::{Change, read_state_file, write_file_atomic};

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

/// Once the file is this large it is rewritten with its last [`LEDGER_LINES`] lines.
const COMPACT_AT: u64 = 256 << 10;

/// Appends `line` (one write to the end of the file: no rewrite, no rename per decision);
/// a file grown past [`COMPACT_AT`] is first cut to its last [`LEDGER_LINES`] lines.
pub fn append(path: &Path, line: &LedgerLine) -> io::Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.len() > COMPACT_AT) {
        let mut text = String::new();
        for kept in read(path) {
            text.push_str(&serde_json::to_string(&kept).map_err(io::Error::other)?);
            text.push('\n');
        }
        write_file_atomic(path, text.as_bytes(), false)?;
    }
    let mut text = serde_json::to_string(line).map_err(io::Error::other)?;
    text.push('\n');
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    file.write_all(text.as_bytes())
}

/// The last [`LEDGER_LINES`] readable lines, oldest first (none when the file is not a
/// regular file: a symlink or FIFO there is never followed or waited on).
pub fn read(path: &Path) -> Vec<LedgerLine> {
    let bytes = read_state_file(path).ok().flatten().unwrap_or_default();
    let mut lines: Vec<LedgerLine> = String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let start = lines.len().saturating_sub(LEDGER_LINES);
    lines.drain(..start);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: u64) -> LedgerLine {
        LedgerLine {
            at_ms: n,
            decision: "run".into(),
            reason: "changed".into(),
            message: "x".repeat(3000),
            changes: Vec::new(),
            changed_parts: Vec::new(),
            duration_ms: 1.0,
            exit_status: Some(0),
            command: vec!["true".into()],
        }
    }

    #[test]
    fn keeps_the_last_lines_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json.log");
        for n in 0..200 {
            append(&path, &line(n)).unwrap();
        }
        let kept = read(&path);
        assert_eq!(kept.len(), LEDGER_LINES);
        assert_eq!(kept.last().unwrap().at_ms, 199);
        assert_eq!(kept.first().unwrap().at_ms, 150);
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size <= COMPACT_AT + 4096, "cut back: {size} bytes");
    }
}
