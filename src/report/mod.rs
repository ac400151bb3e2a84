//! `zccache report`: a build's compile journal rolled up — totals, time saved, hits and
//! misses by output kind, tool and source file, misses grouped by reason, the slowest
//! misses, and a timeline — as text, JSON or one self-contained HTML page.

pub mod html;

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Rows kept per table.
const TOP: usize = 20;
/// Compiles drawn on the timeline at most (a longer build is sampled evenly).
const TIMELINE_POINTS: usize = 4000;

/// The part of a journal line a report reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Line {
    /// Seconds since the epoch when it was served.
    pub ts: f64,
    /// `hit`, `miss`, `error`, `link_hit`, `link_miss`, `passthrough`.
    pub outcome: String,
    /// The compiler or tool.
    pub compiler: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// The session, if any.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Time spent serving it, ns.
    #[serde(default)]
    pub latency_ns: u64,
    /// Why a miss missed.
    #[serde(default)]
    pub miss_reason: Option<String>,
    /// Why a passthrough was not cached.
    #[serde(default)]
    pub passthrough_reason: Option<String>,
}

/// Which lines count.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this session's lines.
    pub session: Option<String>,
    /// Only lines with this outcome.
    pub outcome: Option<String>,
    /// Only compiles of this crate (`--crate-name`).
    pub crate_name: Option<String>,
}

/// Hits, misses and the rest of one group, with the time they took.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Group {
    /// What the group is (an extension, a tool, a source file).
    pub name: String,
    /// Hits (compiles and links).
    pub hits: u64,
    /// Misses and errors.
    pub misses: u64,
    /// Passthroughs.
    pub passthroughs: u64,
    /// Time spent serving them, ms.
    pub ms: f64,
}

/// One slow miss.
#[derive(Debug, Clone, Serialize)]
pub struct Slow {
    /// What it wrote.
    pub output: String,
    /// How long it took, ms.
    pub ms: f64,
    /// Why it missed, when known.
    pub reason: Option<String>,
}

/// One compile on the timeline: start (s after the first), length (ms), outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Seconds after the journal's first line.
    pub at_s: f64,
    /// How long it took, ms.
    pub ms: f64,
    /// Its outcome.
    pub outcome: String,
}

/// A journal rolled up.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rollup {
    /// Lines counted (after the filters).
    pub lines: u64,
    /// Lines that were not journal lines.
    pub unreadable: u64,
    /// Lines by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Wall time from the first line to the last, s.
    pub span_s: f64,
    /// Estimated compile time hits saved, ms: each hit's own time taken from the last miss
    /// time of the same output, else from the mean miss time.
    pub saved_ms: f64,
    /// By output extension.
    pub by_extension: Vec<Group>,
    /// By tool.
    pub by_tool: Vec<Group>,
    /// By source file.
    pub by_source: Vec<Group>,
    /// Misses by reason, most first.
    pub miss_reasons: Vec<(String, u64)>,
    /// Passthroughs by reason, most first.
    pub passthrough_reasons: Vec<(String, u64)>,
    /// The slowest misses.
    pub slowest: Vec<Slow>,
    /// The compiles over time.
    pub timeline: Vec<Point>,
}

/// Reads `path` (a JSONL journal) and rolls up the lines `filter` keeps.
pub fn from_journal(path: &Path, filter: &Filter) -> std::io::Result<Rollup> {
    let file = std::fs::File::open(path)?;
    let mut lines = Vec::new();
    let mut unreadable = 0;
    for text in std::io::BufReader::new(file).lines() {
        match serde_json::from_str::<Line>(&text?) {
            Ok(line) if filter.keeps(&line) => lines.push(line),
            Ok(_) => {}
            Err(_) => unreadable += 1,
        }
    }
    let mut rollup = rollup(&lines);
    rollup.unreadable = unreadable;
    Ok(rollup)
}

impl Filter {
    fn keeps(&self, line: &Line) -> bool {
        self.session
            .as_ref()
            .is_none_or(|s| line.session_id.as_ref() == Some(s))
            && self.outcome.as_ref().is_none_or(|o| &line.outcome == o)
            && self
                .crate_name
                .as_ref()
                .is_none_or(|c| flag_value(&line.args, "--crate-name") == Some(c.as_str()))
    }
}

/// The roll-up of `lines`.
pub fn rollup(lines: &[Line]) -> Rollup {
    let mut r = Rollup {
        lines: lines.len() as u64,
        ..Rollup::default()
    };
    let first = lines.iter().map(|l| l.ts).fold(f64::INFINITY, f64::min);
    let last = lines.iter().map(|l| l.ts).fold(f64::NEG_INFINITY, f64::max);
    r.span_s = if lines.is_empty() { 0.0 } else { last - first };
    let (mut by_ext, mut by_tool, mut by_source) = (HashMap::new(), HashMap::new(), HashMap::new());
    let mut reasons: HashMap<String, u64> = HashMap::new();
    let mut passed: HashMap<String, u64> = HashMap::new();
    let mut last_miss_ms: HashMap<String, f64> = HashMap::new();
    let (mut miss_ms, mut miss_count) = (0.0, 0u64);
    // Hits of outputs never missed in this journal: their number and their own time.
    let (mut unpriced_hits, mut unpriced_ms) = (0u64, 0.0);
    let mut slowest = Vec::new();
    for line in lines {
        *r.outcomes.entry(line.outcome.clone()).or_default() += 1;
        let ms = line.latency_ns as f64 / 1e6;
        let output = output_of(line);
        for (map, key) in [
            (&mut by_ext, extension_of(line, &output)),
            (&mut by_tool, tool_of(line)),
            (&mut by_source, source_of(line)),
        ] {
            count(map, key, line, ms);
        }
        match line.outcome.as_str() {
            "miss" | "link_miss" | "error" => {
                miss_ms += ms;
                miss_count += 1;
                last_miss_ms.insert(output.clone(), ms);
                if let Some(reason) = &line.miss_reason {
                    *reasons.entry(reason.clone()).or_default() += 1;
                }
                slowest.push(Slow {
                    output,
                    ms,
                    reason: line.miss_reason.clone(),
                });
            }
            "passthrough" => {
                // Journals written before reasons were recorded have none.
                let reason = line.passthrough_reason.as_deref();
                let reason = reason.unwrap_or("(no reason recorded)");
                *passed.entry(reason.to_string()).or_default() += 1;
            }
            "hit" | "link_hit" => match last_miss_ms.get(&output) {
                Some(cost) => r.saved_ms += (cost - ms).max(0.0),
                None => {
                    unpriced_hits += 1;
                    unpriced_ms += ms;
                }
            },
            _ => {}
        }
    }
    if miss_count > 0 {
        let priced = unpriced_hits as f64 * (miss_ms / miss_count as f64);
        r.saved_ms += (priced - unpriced_ms).max(0.0);
    }
    slowest.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    slowest.truncate(TOP);
    r.slowest = slowest;
    r.by_extension = top(by_ext);
    r.by_tool = top(by_tool);
    r.by_source = top(by_source);
    r.miss_reasons = most_first(reasons);
    r.passthrough_reasons = most_first(passed);
    let step = lines.len().div_ceil(TIMELINE_POINTS).max(1);
    r.timeline = lines
        .iter()
        .step_by(step)
        .map(|l| Point {
            at_s: l.ts - first,
            ms: l.latency_ns as f64 / 1e6,
            outcome: l.outcome.clone(),
        })
        .collect();
    r
}

/// Reasons with the most lines first (ties by name), at most `TOP`.
fn most_first(reasons: HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut reasons: Vec<(String, u64)> = reasons.into_iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    reasons.truncate(TOP);
    reasons
}

fn count(map: &mut HashMap<String, Group>, key: String, line: &Line, ms: f64) {
    let group = map.entry(key.clone()).or_insert_with(|| Group {
        name: key,
        ..Group::default()
    });
    match line.outcome.as_str() {
        "hit" | "link_hit" => group.hits += 1,
        "passthrough" => group.passthroughs += 1,
        _ => group.misses += 1,
    }
    group.ms += ms;
}

/// The groups with the most compiles first, at most `TOP`.
fn top(map: HashMap<String, Group>) -> Vec<Group> {
    let mut groups: Vec<Group> = map.into_values().collect();
    groups.sort_by(|a, b| {
        let n = |g: &Group| g.hits + g.misses + g.passthroughs;
        n(b).cmp(&n(a)).then_with(|| a.name.cmp(&b.name))
    });
    groups.truncate(TOP);
    groups
}

fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// What the compile wrote: `-o`'s value, an archive, a crate's name, or `-` when unknown.
fn output_of(line: &Line) -> String {
    if let Some(out) = flag_value(&line.args, "-o") {
        return out.to_string();
    }
    if tool_of(line).ends_with("ar")
        && let Some(archive) = line.args.iter().find(|a| a.ends_with(".a"))
    {
        return archive.clone();
    }
    match flag_value(&line.args, "--crate-name") {
        Some(name) => format!("{name} ({})", crate_kind(line)),
        None => "-".to_string(),
    }
}

fn crate_kind(line: &Line) -> &str {
    flag_value(&line.args, "--crate-type").unwrap_or("lib")
}

fn extension_of(line: &Line, output: &str) -> String {
    if flag_value(&line.args, "--crate-name").is_some() {
        let emit = line
            .args
            .iter()
            .find_map(|a| a.strip_prefix("--emit="))
            .or_else(|| flag_value(&line.args, "--emit"))
            .unwrap_or("link");
        let check = !emit.split(',').any(|kind| kind == "link");
        return match crate_kind(line) {
            "bin" => "program".to_string(),
            _ if check => "rmeta".to_string(),
            "proc-macro" => "so".to_string(),
            _ => "rlib".to_string(),
        };
    }
    let name = output.rsplit('/').next().unwrap_or(output);
    match name.rsplit_once('.') {
        Some((_, ext)) if !ext.is_empty() => ext.to_string(),
        _ if !line.args.iter().any(|a| a == "-c") => "program".to_string(),
        _ => "(none)".to_string(),
    }
}

fn tool_of(line: &Line) -> String {
    line.compiler
        .rsplit('/')
        .next()
        .unwrap_or(&line.compiler)
        .to_string()
}

/// The source a compile read: a C-family or Rust source on its command line.
fn source_of(line: &Line) -> String {
    const SOURCES: [&str; 8] = [".c", ".cc", ".cpp", ".cxx", ".c++", ".m", ".mm", ".rs"];
    line.args
        .iter()
        .find(|a| !a.starts_with('-') && SOURCES.iter().any(|ext| a.ends_with(ext)))
        .cloned()
        .unwrap_or_else(|| "(link or archive)".to_string())
}

/// The roll-up as text for a terminal.
pub fn text(r: &Rollup) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let n = |k: &str| r.outcomes.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "{} compiles over {:.1} s: {} hits, {} misses, {} errors, {} link hits, {} link misses, \
         {} passthroughs; ~{:.1} s saved",
        r.lines,
        r.span_s,
        n("hit"),
        n("miss"),
        n("error"),
        n("link_hit"),
        n("link_miss"),
        n("passthrough"),
        r.saved_ms / 1000.0
    );
    for (title, groups) in [
        ("by output kind", &r.by_extension),
        ("by tool", &r.by_tool),
        ("by source file", &r.by_source),
    ] {
        let _ = writeln!(out, "\n{title}:");
        for g in groups {
            let _ = writeln!(
                out,
                "  {:<40} {:>7} hits {:>7} misses {:>6} passthrough {:>10.1} ms",
                g.name, g.hits, g.misses, g.passthroughs, g.ms
            );
        }
    }
    for (title, reasons) in [
        ("misses by reason", &r.miss_reasons),
        ("passthroughs by reason", &r.passthrough_reasons),
    ] {
        let _ = writeln!(out, "\n{title}:");
        for (reason, count) in reasons {
            let _ = writeln!(out, "  {count:>7}  {reason}");
        }
    }
    let _ = writeln!(out, "\nslowest misses:");
    for s in &r.slowest {
        let why = s.reason.as_deref().unwrap_or("-");
        let _ = writeln!(out, "  {:>10.1} ms  {}  ({why})", s.ms, s.output);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(outcome: &str, args: &[&str], ms: u64, reason: Option<&str>) -> Line {
        Line {
            ts: 1000.0 + ms as f64 / 1000.0,
            outcome: outcome.into(),
            compiler: "/usr/bin/gcc".into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            session_id: None,
            latency_ns: ms * 1_000_000,
            miss_reason: reason.map(String::from),
            passthrough_reason: None,
        }
    }

    #[test]
    fn a_crate_is_an_rlib_unless_it_emits_no_link() {
        let cargo = |emit: &str| {
            let args = [
                "--crate-name",
                "u",
                "--crate-type",
                "lib",
                emit,
                "-C",
                "metadata=1a",
            ];
            let l = line("miss", &args, 1, None);
            extension_of(&l, &output_of(&l))
        };
        assert_eq!(cargo("--emit=dep-info,metadata,link"), "rlib");
        assert_eq!(cargo("--emit=dep-info,metadata"), "rmeta");
    }

    #[test]
    fn counts_groups_reasons_and_savings() {
        let lines = [
            line(
                "miss",
                &["-c", "a.c", "-o", "a.o"],
                100,
                Some("source changed"),
            ),
            line("hit", &["-c", "a.c", "-o", "a.o"], 2, None),
            line(
                "miss",
                &["-c", "b.c", "-o", "b.o"],
                300,
                Some("source changed"),
            ),
            line("passthrough", &["-E", "a.c"], 5, None),
        ];
        let r = rollup(&lines);
        assert_eq!(r.lines, 4);
        assert_eq!(r.outcomes["miss"], 2);
        assert_eq!(r.miss_reasons, [("source changed".to_string(), 2)]);
        assert_eq!(r.slowest[0].output, "b.o");
        assert!((r.saved_ms - 98.0).abs() < 1e-6, "{}", r.saved_ms);
        let o = r.by_extension.iter().find(|g| g.name == "o").unwrap();
        assert_eq!((o.hits, o.misses), (1, 2));
        assert_eq!(r.by_source[0].name, "a.c");
        assert_eq!(
            r.passthrough_reasons,
            [("(no reason recorded)".to_string(), 1)]
        );
    }
}
