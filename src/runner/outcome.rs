//! How a task ended, for the summary line, `--json` and the task graph's scheduling.

use serde::Serialize;

/// What happened to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Nothing changed since its last success; nothing written.
    Skipped,
    /// Skipped, with outputs written back from the cache.
    Restored,
    /// Ran and succeeded.
    Ran,
    /// Ran and failed (or could not start).
    Failed,
    /// A dry run that would skip.
    WouldSkip,
    /// A dry run that would run.
    WouldRun,
    /// A dry run that could not decide.
    Unknown,
    /// Not started: a task it depends on failed, or an earlier failure stopped the run.
    NotRun,
}

/// A task's outcome and exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// What happened.
    pub outcome: Outcome,
    /// The exit status zccache gives it (the command's, or 0 for a skip).
    pub status: u8,
}

impl Ended {
    /// True when the tasks that depend on it may start.
    pub fn lets_dependents_run(&self) -> bool {
        !matches!(
            self.outcome,
            Outcome::Failed | Outcome::NotRun | Outcome::Unknown
        )
    }
}
