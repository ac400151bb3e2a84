//! `zccache report`: a build's compile journal rolled up — totals, time saved, hits and
//! misses by output kind, tool and source file, misses grouped by reason, the slowest
//! misses, and a timeline — as text, JSON or one self-contained HTML page.

pub mod classify;
pub mod html;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

use classify::{flag_value, output_of};

/// Rows kept per table.
const TOP: usize = 20;
/// Compiles drawn on the timeline at most (a longer build is sampled evenly).
const TIMELINE_POINTS: usize = 4000;

/// The part of a journal line a report reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Line {
    /// Seconds since the epoch when it was served (when it ended: it started `latency_ns`
    /// before).
    pub ts: f64,
    /// `hit`, `miss`, `error`, `link_hit`, `link_miss`, `passthrough`.
    pub outcome: String,
    /// The compiler or tool.
    pub compiler: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// The directory it ran in (empty in journals written before it was recorded).
    #[serde(default)]
    pub cwd: String,
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
    /// Misses (compiles run and stored).
    pub misses: u64,
    /// Errors (compiles that failed).
    pub errors: u64,
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
    /// When it started, seconds after the first compile started.
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
    /// Wall time from the first compile's start to the last one's end, s.
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
    /// Rows each table left off past its first 20, by table (`by_source`, `miss_reasons`,
    /// ...); a table that shows every row is absent.
    pub left_off: BTreeMap<String, u64>,
    /// The compiles over time.
    pub timeline: Vec<Point>,
}

/// Reads `path` (a JSONL journal) and rolls up the lines `filter` keeps; paths in reasons
/// are shown relative to `root` (the project) when under it.
pub fn from_journal(path: &Path, filter: &Filter, root: &Path) -> std::io::Result<Rollup> {
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
    let mut rollup = rollup(&lines, root);
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

/// How one outcome counts: a hit, a miss (a compile run and stored), an error (a compile
/// that failed: nothing stored, so no miss), or a passthrough. The one definition every
/// count of the report uses, as `zccache status` and the session counters do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// `hit`, `link_hit`.
    Hit,
    /// `miss`, `link_miss`.
    Miss,
    /// `error`.
    Error,
    /// `passthrough` and anything else.
    Passthrough,
}

impl Counted {
    /// How `outcome` counts.
    pub fn of(outcome: &str) -> Counted {
        match outcome {
            "hit" | "link_hit" => Counted::Hit,
            "miss" | "link_miss" => Counted::Miss,
            "error" => Counted::Error,
            _ => Counted::Passthrough,
        }
    }
}

/// What a pass over the lines gathers besides the groups.
#[derive(Default)]
struct Tally {
    reasons: HashMap<String, u64>,
    passed: HashMap<String, u64>,
    last_miss_ms: HashMap<String, f64>,
    miss_ms: f64,
    miss_count: u64,
    /// Hits of outputs never missed in this journal: their number and their own time.
    unpriced_hits: u64,
    unpriced_ms: f64,
    saved_ms: f64,
    slowest: Vec<Slow>,
}

impl Tally {
    fn add(&mut self, line: &Line, output: String, ms: f64, root: &Path) {
        match Counted::of(&line.outcome) {
            Counted::Miss => {
                self.miss_ms += ms;
                self.miss_count += 1;
                self.last_miss_ms.insert(output.clone(), ms);
                let reason = line
                    .miss_reason
                    .as_ref()
                    .map(|r| classify::normalise_reason(r, &line.cwd, root));
                if let Some(reason) = &reason {
                    *self.reasons.entry(reason.clone()).or_default() += 1;
                }
                self.slowest.push(Slow { output, ms, reason });
            }
            Counted::Passthrough => {
                // Journals written before reasons were recorded have none.
                let reason = line.passthrough_reason.as_deref();
                let reason = reason.unwrap_or("(no reason recorded)");
                *self.passed.entry(reason.to_string()).or_default() += 1;
            }
            Counted::Hit => match self.last_miss_ms.get(&output) {
                Some(cost) => self.saved_ms += (cost - ms).max(0.0),
                None => {
                    self.unpriced_hits += 1;
                    self.unpriced_ms += ms;
                }
            },
            Counted::Error => {}
        }
    }

    /// Time saved: the priced hits, then the rest at the mean miss time.
    fn saved_ms(&self) -> f64 {
        match self.miss_count {
            0 => self.saved_ms,
            n => {
                let priced = self.unpriced_hits as f64 * (self.miss_ms / n as f64);
                self.saved_ms + (priced - self.unpriced_ms).max(0.0)
            }
        }
    }
}

/// The roll-up of `lines`; paths in reasons relative to `root` when under it.
pub fn rollup(lines: &[Line], root: &Path) -> Rollup {
    let mut r = Rollup {
        lines: lines.len() as u64,
        ..Rollup::default()
    };
    let (mut by_ext, mut by_tool, mut by_source) = (HashMap::new(), HashMap::new(), HashMap::new());
    let mut tally = Tally::default();
    for line in lines {
        *r.outcomes.entry(line.outcome.clone()).or_default() += 1;
        let ms = line.latency_ns as f64 / 1e6;
        let output = output_of(line);
        for (map, key) in [
            (&mut by_ext, classify::kind_of(line, &output)),
            (&mut by_tool, classify::tool_of(line)),
            (&mut by_source, classify::source_of(line)),
        ] {
            count(map, key, line, ms);
        }
        tally.add(line, output, ms, root);
    }
    r.saved_ms = tally.saved_ms();
    tally.slowest.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    tally.slowest.truncate(TOP);
    r.slowest = tally.slowest;
    let mut left_off = |table: &str, n: usize| {
        if n > TOP {
            r.left_off.insert(table.to_string(), (n - TOP) as u64);
        }
    };
    left_off("by_extension", by_ext.len());
    left_off("by_tool", by_tool.len());
    left_off("by_source", by_source.len());
    left_off("miss_reasons", tally.reasons.len());
    left_off("passthrough_reasons", tally.passed.len());
    r.by_extension = top(by_ext);
    r.by_tool = top(by_tool);
    r.by_source = top(by_source);
    r.miss_reasons = most_first(tally.reasons);
    r.passthrough_reasons = most_first(tally.passed);
    (r.span_s, r.timeline) = timeline(lines);
    r
}

/// The wall time from the first compile's start to the last one's end, and the compiles
/// on it (sampled evenly past `TIMELINE_POINTS`). A line's `ts` is when it was served, so
/// it started `latency` before.
fn timeline(lines: &[Line]) -> (f64, Vec<Point>) {
    let start = |l: &Line| l.ts - l.latency_ns as f64 / 1e9;
    let first = lines.iter().map(start).fold(f64::INFINITY, f64::min);
    let last = lines.iter().map(|l| l.ts).fold(f64::NEG_INFINITY, f64::max);
    if lines.is_empty() {
        return (0.0, Vec::new());
    }
    let step = lines.len().div_ceil(TIMELINE_POINTS).max(1);
    let points = lines
        .iter()
        .step_by(step)
        .map(|l| Point {
            at_s: start(l) - first,
            ms: l.latency_ns as f64 / 1e6,
            outcome: l.outcome.clone(),
        })
        .collect();
    ((last - first).max(0.0), points)
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
    match Counted::of(&line.outcome) {
        Counted::Hit => group.hits += 1,
        Counted::Miss => group.misses += 1,
        Counted::Error => group.errors += 1,
        Counted::Passthrough => group.passthroughs += 1,
    }
    group.ms += ms;
}

/// The groups with the most compiles first, at most `TOP`.
fn top(map: HashMap<String, Group>) -> Vec<Group> {
    let mut groups: Vec<Group> = map.into_values().collect();
    groups.sort_by(|a, b| {
        let n = |g: &Group| g.hits + g.misses + g.errors + g.passthroughs;
        n(b).cmp(&n(a)).then_with(|| a.name.cmp(&b.name))
    });
    groups.truncate(TOP);
    groups
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
            cwd: "/p".into(),
            session_id: None,
            latency_ns: ms * 1_000_000,
            miss_reason: reason.map(String::from),
            passthrough_reason: None,
        }
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
        let r = rollup(&lines, Path::new("/p"));
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

    #[test]
    fn an_error_is_no_miss_and_bars_start_where_compiles_began() {
        let lines = [
            line(
                "miss",
                &["-c", "a.c", "-o", "a.o"],
                100,
                Some("source changed"),
            ),
            line(
                "error",
                &["-c", "b.c", "-o", "b.o"],
                300,
                Some("source changed"),
            ),
        ];
        let r = rollup(&lines, Path::new("/p"));
        let o = &r.by_extension[0];
        assert_eq!((o.misses, o.errors), (1, 1));
        assert_eq!(r.miss_reasons, [("source changed".to_string(), 1)]);
        assert_eq!(r.slowest.len(), 1);
        // a.o ran 1000.0..1000.1, b.o 1000.0..1000.3.
        assert!((r.span_s - 0.3).abs() < 1e-9, "{}", r.span_s);
        assert!(
            r.timeline.iter().all(|p| p.at_s.abs() < 1e-9),
            "{:?}",
            r.timeline
        );
    }
}
