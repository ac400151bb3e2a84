//! One path's change since the last success: what the stat table finds and a decision reports.

use serde::{Deserialize, Serialize};

/// How one path changed since the last success.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// New in the input set.
    Added,
    /// Gone from the input set.
    Removed,
    /// Content, type or mode differs.
    Modified,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Path relative to the root.
    pub path: String,
    /// Added, removed or modified.
    pub kind: ChangeKind,
}
