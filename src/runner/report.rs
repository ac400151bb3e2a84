//! What `zccache run` prints: the decision line (or JSON object), `--explain`'s details, and
//! a replay of captured output on a skip.

use std::io::Write;
use std::time::Instant;

use super::spec::RunSpec;
use super::{EXPLAIN_LIMIT, Judgement};
use crate::cli::RunArgs;
use crate::fingerprint::{Decision, FILES_PART, Verdict, now_ms};
use crate::os::local_time;
use crate::ui::Ui;

/// Prints the decision line (or JSON object) and, with `--explain`, what changed.
pub(crate) fn decision(ui: &Ui, args: &RunArgs, spec: &RunSpec, j: &Judgement, started: Instant) {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if args.json {
        let mut json = j
            .decision
            .as_ref()
            .map(Decision::to_json)
            .unwrap_or_default();
        json["decision"] = serde_json::json!(j.verdict);
        json["reason"] = serde_json::json!(j.code);
        json["message"] = serde_json::json!(j.message);
        json["duration_ms"] = serde_json::json!(ms);
        json["cache"] = serde_json::json!(spec.cache_file);
        json["dry_run"] = serde_json::json!(args.dry_run);
        eprintln!("{json}");
        return;
    }
    let name = spec
        .name
        .as_ref()
        .map(|n| format!(" {n}"))
        .unwrap_or_default();
    match j.verdict {
        Verdict::Skip => {
            let since = j
                .decision
                .as_ref()
                .and_then(|d| d.last_success_ms)
                .filter(|_| j.code != "restored")
                .map(|at| format!(" since {}", when(at)))
                .unwrap_or_default();
            ui.say(format_args!(
                "skip{name} ({}{since}, {ms:.0} ms)",
                j.message
            ));
        }
        Verdict::Run => ui.say(format_args!("run{name} ({})", j.message)),
    }
    if args.explain {
        explain(ui, j);
    }
}

fn explain(ui: &Ui, j: &Judgement) {
    let Some(decision) = &j.decision else { return };
    for part in decision.changed_parts.iter().filter(|p| *p != FILES_PART) {
        ui.say(format_args!("  changed: {part}"));
    }
    for change in decision.changes.iter().take(EXPLAIN_LIMIT) {
        let kind = serde_json::to_value(change.kind).unwrap_or_default();
        ui.say(format_args!(
            "  {:<8} {}",
            kind.as_str().unwrap_or("?"),
            change.path
        ));
    }
    let more = decision.changes.len().saturating_sub(EXPLAIN_LIMIT);
    if more > 0 {
        ui.say(format_args!("  ... and {more} more"));
    }
}

/// `10:02` today, `2026-11-23 10:02` another day.
pub fn when(at_ms: u64) -> String {
    let (Some(then), Some(today)) = (local_time(at_ms), local_time(now_ms())) else {
        return "an unknown time".to_string();
    };
    let clock = format!("{:02}:{:02}", then.hour, then.minute);
    if (then.year, then.month, then.day) == (today.year, today.month, today.day) {
        clock
    } else {
        format!("{}-{:02}-{:02} {clock}", then.year, then.month, then.day)
    }
}

pub(crate) fn replay(streams: Option<&(Vec<u8>, Vec<u8>)>) {
    if let Some((out, err)) = streams {
        let _ = std::io::stdout()
            .write_all(out)
            .and_then(|()| std::io::stdout().flush());
        let _ = std::io::stderr().write_all(err);
    }
}
