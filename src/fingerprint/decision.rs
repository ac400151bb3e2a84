//! The verdict of a check — skip or run — with the reason and what changed.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::change::Change;
use super::hash::Digest;
use super::state::{Loaded, State};
use crate::quote;

/// Skip the task or run it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Inputs are as they were after a successful run.
    Skip,
    /// Something differs, or nothing is known: run the task.
    Run,
}

/// Why the verdict was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    /// The key matches one of the recorded successes.
    Unchanged,
    /// No success has been recorded.
    NoPreviousSuccess,
    /// The last run with these very inputs failed.
    LastRunFailed,
    /// Some key part (files, command, env, tool, ...) differs from the last success.
    Changed,
    /// The state file could not be used; the text says why.
    UnreadableState(String),
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Skip or run.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
    /// Number of files in the input set.
    pub files: usize,
    /// Changed paths since the last success (empty when unknown, e.g. `hash` caches).
    pub changes: Vec<Change>,
    /// Names of the key parts that differ from the last success (`files`, `command`, ...).
    pub changed_parts: Vec<String>,
    /// Number of files whose content was read by this check.
    pub hashed: usize,
    /// When the matching (or latest) success was recorded, ms since the epoch.
    pub last_success_ms: Option<u64>,
    /// The full key of this check.
    pub key: Digest,
    /// Its input files' part: relative paths, kinds and content, the same on every machine.
    pub files_key: Digest,
}

/// Decides from the loaded state and the key (with its parts) of the current inputs.
pub(crate) fn decide(loaded: &Loaded, key: Digest, parts: &BTreeMap<String, Digest>) -> Judged {
    let state = match loaded {
        Loaded::Unreadable(why) => return Judged::run(Reason::UnreadableState(why.clone())),
        Loaded::Fresh => return Judged::run(Reason::NoPreviousSuccess),
        Loaded::Ok(state) => state,
    };
    if let Some(hit) = state.successes.iter().find(|s| s.key == key) {
        return Judged {
            verdict: Verdict::Skip,
            reason: Reason::Unchanged,
            changed_parts: Vec::new(),
            last_success_ms: Some(hit.at_ms),
        };
    }
    if state.last_failure == Some(key) {
        return Judged::run(Reason::LastRunFailed);
    }
    judge_change(state, parts)
}

fn judge_change(state: &State, parts: &BTreeMap<String, Digest>) -> Judged {
    let Some(last) = state.successes.first() else {
        return Judged::run(Reason::NoPreviousSuccess);
    };
    let mut names: Vec<String> = parts
        .iter()
        .filter(|(name, digest)| last.parts.get(*name) != Some(digest))
        .map(|(name, _)| name.clone())
        .collect();
    names.extend(
        last.parts
            .keys()
            .filter(|name| !parts.contains_key(*name))
            .cloned(),
    );
    Judged {
        verdict: Verdict::Run,
        reason: Reason::Changed,
        changed_parts: names,
        last_success_ms: Some(last.at_ms),
    }
}

/// The verdict before the file-level details are attached.
pub(crate) struct Judged {
    pub verdict: Verdict,
    pub reason: Reason,
    pub changed_parts: Vec<String>,
    pub last_success_ms: Option<u64>,
}

impl Judged {
    fn run(reason: Reason) -> Self {
        Judged {
            verdict: Verdict::Run,
            reason,
            changed_parts: Vec::new(),
            last_success_ms: None,
        }
    }
}

impl Reason {
    /// A stable machine-readable name: `unchanged`, `no_previous_success`, ...
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Unchanged => "unchanged",
            Reason::NoPreviousSuccess => "no_previous_success",
            Reason::LastRunFailed => "last_run_failed",
            Reason::Changed => "changed",
            Reason::UnreadableState(_) => "unreadable_state",
        }
    }
}

impl Decision {
    /// The decision as one JSON object (schema in README: "Machine-readable output").
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "decision": self.verdict,
            "reason": self.reason.code(),
            "message": self.summary(),
            "files": self.files,
            "hashed": self.hashed,
            "changed_parts": self.changed_parts,
            "changes": self.changes,
            "last_success_ms": self.last_success_ms,
        })
    }

    /// The one-line summary after `skip` / `run`, e.g. `2 files changed: src/a.rs, src/b.rs`.
    pub fn summary(&self) -> String {
        match &self.reason {
            Reason::Unchanged => format!("{} unchanged", plural_files(self.files)),
            Reason::NoPreviousSuccess => "no previous success".to_string(),
            Reason::LastRunFailed => "last run failed".to_string(),
            Reason::UnreadableState(why) => format!("unreadable state: {why}"),
            Reason::Changed => self.changed_summary(),
        }
    }

    fn changed_summary(&self) -> String {
        let mut pieces: Vec<String> = self
            .changed_parts
            .iter()
            .filter(|p| p.as_str() != FILES_PART)
            .map(|p| format!("{p} changed"))
            .collect();
        if self.changed_parts.iter().any(|p| p == FILES_PART) {
            pieces.insert(0, self.files_summary());
        }
        if pieces.is_empty() {
            pieces.push("inputs changed".to_string());
        }
        pieces.join("; ")
    }

    fn files_summary(&self) -> String {
        const SHOWN: usize = 3;
        if self.changes.is_empty() {
            return "files changed".to_string();
        }
        // Names from the tree are quoted (an escape sequence in one must not reach the
        // terminal).
        let names: Vec<Cow<'_, str>> = self
            .changes
            .iter()
            .take(SHOWN)
            .map(|c| quote::path(&c.path))
            .collect();
        let more = self.changes.len().saturating_sub(SHOWN);
        let tail = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        format!(
            "{} changed: {}{tail}",
            plural_files(self.changes.len()),
            names.join(", ")
        )
    }
}

/// The key part that stands for the input file set.
pub const FILES_PART: &str = "files";

/// `1 file`, `1,204 files`.
pub fn plural_files(n: usize) -> String {
    format!("{} file{}", thousands(n), if n == 1 { "" } else { "s" })
}

/// `1204` → `1,204`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
