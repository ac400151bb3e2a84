//! What `zccache run` decided about a task, in the runner's terms: the engine's decision
//! and how to record its outcome, refined by the outputs, the replay and shared results.

use super::check::Recorder;
use crate::fingerprint::{Decision, Verdict};

/// What was decided, in the runner's terms.
pub(crate) struct Judgement {
    /// Skip or run.
    pub(crate) verdict: Verdict,
    /// Machine-readable reason.
    pub(crate) code: &'static str,
    /// Text after `skip` / `run`.
    pub(crate) message: String,
    /// The engine's decision (None when fingerprinting failed).
    pub(crate) decision: Option<Decision>,
    /// How to record the outcome (None when fingerprinting failed).
    pub(crate) recorder: Option<Recorder>,
    /// Captured streams to print on a skip.
    pub(crate) replay: Option<(Vec<u8>, Vec<u8>)>,
    /// The shared-result key, when results are shared.
    pub(crate) shared_key: Option<String>,
    /// The skip comes from a result shared by another machine (record it here).
    pub(crate) shared_skip: bool,
    /// The skip wrote outputs back from the cache.
    pub(crate) restored: bool,
}

impl Judgement {
    /// The check's own verdict, reason and summary.
    pub(crate) fn from_check(decision: Decision, recorder: Recorder) -> Self {
        Judgement {
            verdict: decision.verdict,
            code: decision.reason.code(),
            message: decision.summary(),
            decision: Some(decision),
            recorder: Some(recorder),
            replay: None,
            shared_key: None,
            shared_skip: false,
            restored: false,
        }
    }

    /// A run when fingerprinting failed: never skip on doubt.
    pub(crate) fn unknown() -> Self {
        Judgement {
            verdict: Verdict::Run,
            code: "fingerprint_error",
            message: "fingerprint failed".to_string(),
            decision: None,
            recorder: None,
            replay: None,
            shared_key: None,
            shared_skip: false,
            restored: false,
        }
    }

    /// True when the check went through the daemon (shared results then go through its
    /// store, with its remote tier).
    pub(crate) fn through_daemon(&self) -> bool {
        matches!(self.recorder, Some(Recorder::Daemon { .. }))
    }

    /// Turns the verdict into a run, for `code` and `message`.
    pub(crate) fn rerun(&mut self, code: &'static str, message: String) {
        self.verdict = Verdict::Run;
        self.code = code;
        self.message = message;
    }
}
