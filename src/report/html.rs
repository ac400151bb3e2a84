//! The report as one self-contained HTML page: inline styles and SVG, no scripts, fonts or
//! network; narrow screens get one column.

use std::fmt::Write;

use super::text::left_off;
use super::{Group, Rollup};

/// One `zccache run` task of the current directory, from its ledger (its recent
/// decisions), for the page's task section.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskVerdict {
    /// The task (its state file's name).
    pub task: String,
    /// The last decision: `skip` or `run`.
    pub decision: String,
    /// The last reason's text.
    pub message: String,
    /// When (`10:02` today, else the date).
    pub when: String,
    /// Runs among the recent decisions.
    pub runs: u64,
    /// Skips (restores included) among them.
    pub skips: u64,
    /// How long the last run took, ms.
    pub last_run_ms: Option<f64>,
    /// Time the skips saved: each priced at the run before it (else the mean run) less
    /// its own time, ms.
    pub saved_ms: f64,
}

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;\
padding:12px;color:#1d232a;background:#fafbfc}h1{font-size:1.5em}h2{font-size:1.15em;\
margin-top:1.6em}.cards{display:flex;flex-wrap:wrap;gap:8px}.card{background:#fff;\
border:1px solid #d8dee4;border-radius:6px;padding:8px 12px;min-width:120px}.card b{\
display:block;font-size:1.4em}table{border-collapse:collapse;width:100%;background:#fff;\
font-size:.92em}td,th{border-bottom:1px solid #e6e9ed;padding:4px 6px;text-align:left;\
vertical-align:top}.n{text-align:right;font-variant-numeric:tabular-nums}.wrap{\
overflow-x:auto}svg{width:100%;height:auto;min-height:60px;background:#fff;border:1px solid #d8dee4}\
.key span{display:inline-block;margin-right:12px}.sw{display:inline-block;width:10px;\
height:10px;margin-right:4px}.note{color:#57606a}";

/// Colour and row of an outcome on the timeline.
fn lane(outcome: &str) -> (&'static str, u32) {
    match outcome {
        "hit" | "link_hit" => ("#2da44e", 0),
        "miss" | "link_miss" => ("#d97706", 1),
        "error" => ("#cf222e", 2),
        _ => ("#8c959f", 3),
    }
}

/// `text` safe inside HTML.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A table row that spans `columns` and says `text` (`none`, `... and 3 more`).
fn note_row(out: &mut String, columns: usize, text: &str) {
    let _ = write!(
        out,
        "<tr><td colspan=\"{columns}\" class=\"note\">{}</td></tr>",
        esc(text)
    );
}

/// `none` in an empty table, `... and N more` in one that left rows off.
fn table_end(out: &mut String, columns: usize, empty: bool, more: u64) {
    if empty {
        note_row(out, columns, "none");
    }
    if more > 0 {
        note_row(out, columns, &format!("... and {more} more"));
    }
    out.push_str("</table></div>");
}

/// The whole page; `tasks` is `None` where `zccache run` has no task (no section then).
pub fn page(r: &Rollup, tasks: Option<&[TaskVerdict]>, source: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\
         <title>zccache report</title><style>{STYLE}</style></head><body>\
         <h1>zccache build report</h1>"
    );
    if let Some(tasks) = tasks {
        tasks_section(&mut out, tasks);
        out.push_str("<h2>Compiles</h2>");
        if r.lines == 0 {
            let _ = writeln!(out, "<p>none in {}</p></body></html>", esc(source));
            return out;
        }
    }
    let _ = write!(
        out,
        "<p>{} — {} compiles over {:.1} s</p>",
        esc(source),
        r.lines,
        r.span_s
    );
    cards(&mut out, r);
    timeline(&mut out, r);
    reasons_tables(&mut out, r);
    out.push_str("<h2>Slowest misses</h2><div class=\"wrap\"><table><tr><th class=\"n\">ms</th><th>output</th><th>why</th></tr>");
    for s in &r.slowest {
        let why = s.reason.as_deref().unwrap_or("-");
        let _ = write!(
            out,
            "<tr><td class=\"n\">{:.1}</td><td>{}</td><td>{}</td></tr>",
            s.ms,
            esc(&s.output),
            esc(why)
        );
    }
    table_end(&mut out, 3, r.slowest.is_empty(), 0);
    for (title, table, groups) in [
        ("By output kind", "by_extension", &r.by_extension),
        ("By tool", "by_tool", &r.by_tool),
        ("By source file", "by_source", &r.by_source),
    ] {
        groups_table(&mut out, title, groups, left_off(r, table));
    }
    out.push_str("</body></html>\n");
    out
}

/// The compile cards: hits, misses and errors apart (a failed compile is no miss), the hit
/// rate over hits and misses.
fn cards(out: &mut String, r: &Rollup) {
    let n = |k: &str| r.outcomes.get(k).copied().unwrap_or(0);
    let hits = n("hit") + n("link_hit");
    let misses = n("miss") + n("link_miss");
    let rate = match hits + misses {
        0 => 0.0,
        cached => 100.0 * hits as f64 / cached as f64,
    };
    out.push_str("<div class=\"cards\">");
    for (label, value) in [
        ("compiles", r.lines.to_string()),
        ("hits", hits.to_string()),
        ("misses", misses.to_string()),
        ("errors", n("error").to_string()),
        ("passthroughs", n("passthrough").to_string()),
        ("hit rate", format!("{rate:.1}%")),
        ("time saved", format!("~{:.1} s", r.saved_ms / 1000.0)),
    ] {
        let _ = write!(
            out,
            "<div class=\"card\" id=\"{}\">{label}<b>{value}</b></div>",
            label.replace(' ', "-")
        );
    }
    out.push_str("</div>");
}

/// Misses and passthroughs by reason.
fn reasons_tables(out: &mut String, r: &Rollup) {
    for (title, noun, table, reasons) in [
        (
            "Misses by reason",
            "misses",
            "miss_reasons",
            &r.miss_reasons,
        ),
        (
            "Passthroughs by reason",
            "passthroughs",
            "passthrough_reasons",
            &r.passthrough_reasons,
        ),
    ] {
        let _ = write!(
            out,
            "<h2>{title}</h2><div class=\"wrap\"><table><tr><th class=\"n\">{noun}</th><th>reason</th></tr>"
        );
        for (reason, count) in reasons {
            let _ = write!(
                out,
                "<tr><td class=\"n\">{count}</td><td>{}</td></tr>",
                esc(reason)
            );
        }
        table_end(out, 2, reasons.is_empty(), left_off(r, table));
    }
}

/// The tasks of `zccache run` in this directory: cards (skips, runs, time saved) and one
/// row per task.
fn tasks_section(out: &mut String, tasks: &[TaskVerdict]) {
    let runs: u64 = tasks.iter().map(|t| t.runs).sum();
    let skips: u64 = tasks.iter().map(|t| t.skips).sum();
    let saved: f64 = tasks.iter().map(|t| t.saved_ms).sum();
    out.push_str("<h2>Tasks of zccache run</h2><div class=\"cards\">");
    for (id, label, value) in [
        ("task-count", "tasks", tasks.len().to_string()),
        ("task-skips", "skips", skips.to_string()),
        ("task-runs", "runs", runs.to_string()),
        (
            "task-saved",
            "time saved",
            format!("~{:.1} s", saved / 1000.0),
        ),
    ] {
        let _ = write!(
            out,
            "<div class=\"card\" id=\"{id}\">{label}<b>{value}</b></div>"
        );
    }
    out.push_str("</div><div class=\"wrap\"><table><tr><th>task</th><th>last verdict</th><th>why</th><th>when</th><th class=\"n\">last run s</th><th class=\"n\">skips</th><th class=\"n\">runs</th><th class=\"n\">saved s</th></tr>");
    for t in tasks {
        let last_run = t
            .last_run_ms
            .map_or("-".to_string(), |ms| format!("{:.1}", ms / 1000.0));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{last_run}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}</td></tr>",
            esc(&t.task),
            esc(&t.decision),
            esc(&t.message),
            esc(&t.when),
            t.skips,
            t.runs,
            t.saved_ms / 1000.0
        );
    }
    table_end(out, 8, tasks.is_empty(), 0);
}

fn groups_table(out: &mut String, title: &str, groups: &[Group], more: u64) {
    let _ = write!(
        out,
        "<h2>{title}</h2><div class=\"wrap\"><table><tr><th>name</th><th class=\"n\">hits</th>\
         <th class=\"n\">misses</th><th class=\"n\">errors</th><th class=\"n\">passthroughs</th>\
         <th class=\"n\">ms</th></tr>"
    );
    for g in groups {
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{:.1}</td></tr>",
            esc(&g.name),
            g.hits,
            g.misses,
            g.errors,
            g.passthroughs,
            g.ms
        );
    }
    table_end(out, 6, groups.is_empty(), more);
}

/// Compiles by wall time, one row per outcome; each bar spans the compile, from its start
/// to its end (a bar too short to see is widened, to the left at the chart's end).
fn timeline(out: &mut String, r: &Rollup) {
    const WIDTH: f64 = 1000.0;
    let span = r.span_s.max(0.001);
    let _ = write!(
        out,
        "<h2>Timeline</h2><svg viewBox=\"0 0 {WIDTH} 100\" role=\"img\" \
         aria-label=\"compiles over time\">"
    );
    for p in &r.timeline {
        let (colour, row) = lane(&p.outcome);
        let w = (p.ms / 1000.0 / span * WIDTH).clamp(0.6, WIDTH);
        let x = (p.at_s / span * WIDTH).clamp(0.0, WIDTH - w);
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{}\" width=\"{w:.1}\" height=\"20\" fill=\"{colour}\"/>",
            4 + row * 24
        );
    }
    out.push_str("</svg><p class=\"key\">");
    for (label, outcome) in [
        ("hit", "hit"),
        ("miss", "miss"),
        ("error", "error"),
        ("passthrough", "passthrough"),
    ] {
        let (colour, _) = lane(outcome);
        let _ = write!(
            out,
            "<span><i class=\"sw\" style=\"background:{colour}\"></i>{label}</span>"
        );
    }
    out.push_str("</p>");
}
