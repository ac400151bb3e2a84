//! What `zccache run` prints: the decision line (or a JSON object per task), `--explain`'s
//! details, and a replay of captured output on a skip.

use super::EXPLAIN_LIMIT;
use super::judgement::Judgement;
use super::outcome::{Ended, Outcome};
use super::spec::RunSpec;
use crate::cli::RunArgs;
use crate::console::{Console, Stream};
use crate::fingerprint::{Decision, FILES_PART, Verdict, now_ms};
use crate::os::local_time;
use crate::quote;
use crate::ui::Ui;

/// Prints the decision line and, with `--explain`, what changed (nothing with `--json`:
/// its object comes when the task ends).
pub(crate) fn decision(ui: &Ui, args: &RunArgs, spec: &RunSpec, j: &Judgement, ms: f64) {
    if args.json {
        return;
    }
    let name = spec.shown_name();
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
        for what in super::tool::script_unread(&spec.argv) {
            ui.say(format_args!("  not keyed: {what} in the script"));
        }
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
            quote::path(&change.path)
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

/// Prints a task's one JSON object: the decision, its reasons and how the task ended;
/// `ms` is (time to decide, time to the end).
pub(crate) fn json(
    console: &Console,
    args: &RunArgs,
    spec: &RunSpec,
    j: &Judgement,
    ms: (f64, f64),
    ended: Ended,
) {
    let mut json = j
        .decision
        .as_ref()
        .map(Decision::to_json)
        .unwrap_or_default();
    if let Some(name) = &spec.name {
        json["task"] = serde_json::json!(name);
    }
    json["decision"] = serde_json::json!(j.verdict);
    json["reason"] = serde_json::json!(j.code);
    json["message"] = serde_json::json!(j.message);
    json["outcome"] = serde_json::json!(ended.outcome);
    json["exit_status"] = serde_json::json!(ended.status);
    json["duration_ms"] = serde_json::json!(ms.0);
    json["total_ms"] = serde_json::json!(ms.1);
    json["cache"] = serde_json::json!(spec.cache_file.to_string_lossy());
    json["dry_run"] = serde_json::json!(args.dry_run);
    console.write(Stream::Err, format!("{json}\n").as_bytes());
}

/// `5 tasks: 3 skipped, 1 restored, 1 ran in 1.2 s` (the kinds that occurred, in a fixed
/// order).
pub(crate) fn summary(ends: &[Ended], elapsed: std::time::Duration) -> String {
    let kinds = [
        (Outcome::Skipped, "skipped"),
        (Outcome::Restored, "restored"),
        (Outcome::Ran, "ran"),
        (Outcome::Failed, "failed"),
        (Outcome::NotRun, "not run"),
        (Outcome::WouldSkip, "would skip"),
        (Outcome::WouldRun, "would run"),
        (Outcome::Unknown, "undecided"),
    ];
    let counts: Vec<String> = kinds
        .iter()
        .filter_map(|(kind, text)| {
            let n = ends.iter().filter(|e| e.outcome == *kind).count();
            (n > 0).then(|| format!("{n} {text}"))
        })
        .collect();
    let noun = if ends.len() == 1 { "task" } else { "tasks" };
    format!(
        "{} {noun}: {} in {:.1} s",
        ends.len(),
        counts.join(", "),
        elapsed.as_secs_f64()
    )
}

/// The JSON object of a task that never started.
pub(crate) fn not_run_json(name: Option<&str>) {
    let mut json = serde_json::json!({"outcome": Outcome::NotRun});
    if let Some(name) = name {
        json["task"] = serde_json::json!(name);
    }
    eprintln!("{json}");
}

/// Prints the streams a skipped task replays.
pub(crate) fn replay(console: &Console, streams: Option<&(Vec<u8>, Vec<u8>)>) {
    if let Some((out, err)) = streams {
        console.write(Stream::Out, out);
        console.write(Stream::Err, err);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_of_another_day_carries_its_date() {
        let today = when(now_ms());
        assert_eq!(today.len(), 5, "{today}");
        let days_ago = when(now_ms() - 3 * 86_400_000);
        let (date, clock) = days_ago.split_once(' ').unwrap();
        assert_eq!((date.len(), clock.len()), (10, 5), "{days_ago}");
        assert!(date.starts_with("20"), "{days_ago}");
    }
}
