//! Errors of the fingerprint engine. Every io error names the operation and the path.

use std::io;
use std::path::PathBuf;

/// What went wrong while fingerprinting or recording a result.
#[derive(Debug, thiserror::Error)]
pub enum FpError {
    /// An operating-system call failed on a path.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. "read" or "rename".
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The root to scan does not exist or is not a directory.
    #[error("root {} is not a directory", .0.display())]
    BadRoot(PathBuf),
    /// An `--include` or `--exclude` pattern does not parse.
    #[error("bad glob {pattern:?}: {message}")]
    BadGlob {
        /// The pattern as given.
        pattern: String,
        /// Why it was refused.
        message: String,
    },
    /// `mark-success` or `mark-failure` without a `check` before it.
    #[error("no pending check for {}: run `check` first", .0.display())]
    NoPending(PathBuf),
    /// A `zccache run` outcome that does not belong to the check it names.
    #[error("not recorded for {}: {why}", path.display())]
    ForeignRecord {
        /// The state file the outcome was for.
        path: PathBuf,
        /// Why it was refused.
        why: &'static str,
    },
}

impl FpError {
    /// Wraps an io error with the operation and path it came from.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        FpError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
