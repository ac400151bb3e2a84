//! The roll-up as text for a terminal: a summary line, then each table with its columns
//! aligned however long a name is (a name too long for the column gets a line of its
//! own), `none` for an empty table and `... and N more` for rows left off.

use std::fmt::Write;

use super::{Group, Rollup};

/// The widest name column; a longer name is put on a line of its own.
const NAME_WIDTH: usize = 60;

/// The whole text.
pub fn render(r: &Rollup) -> String {
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
    for (title, table, groups) in [
        ("by output kind", "by_extension", &r.by_extension),
        ("by tool", "by_tool", &r.by_tool),
        ("by source file", "by_source", &r.by_source),
    ] {
        let _ = writeln!(out, "\n{title}:");
        groups_table(&mut out, groups);
        ends(&mut out, groups.is_empty(), left_off(r, table));
    }
    for (title, table, reasons) in [
        ("misses by reason", "miss_reasons", &r.miss_reasons),
        (
            "passthroughs by reason",
            "passthrough_reasons",
            &r.passthrough_reasons,
        ),
    ] {
        let _ = writeln!(out, "\n{title}:");
        for (reason, count) in reasons {
            let _ = writeln!(out, "  {count:>7}  {reason}");
        }
        ends(&mut out, reasons.is_empty(), left_off(r, table));
    }
    let _ = writeln!(out, "\nslowest misses:");
    for s in &r.slowest {
        let why = s.reason.as_deref().unwrap_or("-");
        let _ = writeln!(out, "  {:>10.1} ms  {}  ({why})", s.ms, s.output);
    }
    ends(&mut out, r.slowest.is_empty(), 0);
    out
}

/// Rows `table` left off.
pub fn left_off(r: &Rollup, table: &str) -> u64 {
    r.left_off.get(table).copied().unwrap_or(0)
}

/// `none` under an empty table, `... and N more` under one that left rows off.
fn ends(out: &mut String, empty: bool, more: u64) {
    if empty {
        out.push_str("  none\n");
    }
    if more > 0 {
        let _ = writeln!(out, "  ... and {more} more");
    }
}

/// One row per group, the numbers aligned under each other.
fn groups_table(out: &mut String, groups: &[Group]) {
    // As wide as the longest name that fits; a longer one breaks onto its own line.
    let lengths = groups.iter().map(|g| g.name.chars().count());
    let width = lengths.filter(|&n| n <= NAME_WIDTH).max().unwrap_or(0);
    for g in groups {
        let name = match g.name.chars().count() > width {
            true => {
                let _ = writeln!(out, "  {}", g.name);
                ""
            }
            false => g.name.as_str(),
        };
        let _ = writeln!(
            out,
            "  {name:<width$} {:>7} hits {:>7} misses {:>6} errors {:>6} passthrough {:>10.1} ms",
            g.hits, g.misses, g.errors, g.passthroughs, g.ms
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str) -> Group {
        Group {
            name: name.to_string(),
            hits: 1,
            ..Group::default()
        }
    }

    #[test]
    fn columns_stay_aligned_past_long_names() {
        let long = format!("src/{}/x.c", "deep/".repeat(20));
        let mut out = String::new();
        groups_table(&mut out, &[group("a.c"), group(&long), group("lib/mid.c")]);
        let rows: Vec<&str> = out.lines().filter(|l| l.contains(" hits ")).collect();
        assert_eq!(rows.len(), 3, "{out}");
        let at: Vec<usize> = rows.iter().map(|l| l.find(" hits ").unwrap()).collect();
        assert!(at.iter().all(|&a| a == at[0]), "{out}");
        assert_eq!(
            out.lines().nth(1),
            Some(format!("  {long}").as_str()),
            "{out}"
        );
    }
}
