//! zccache.toml.example documents every key: each key the binary accepts (as its own
//! "unknown field, expected one of ..." error lists them) is in the file, set or commented
//! out, and the file loads with every commented-out key switched on.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::Sandbox;

fn example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("zccache.toml.example");
    std::fs::read_to_string(path).expect("read zccache.toml.example")
}

/// The keys the binary accepts where `table` is (`""`, `[defaults]`, a task), from the
/// error a key it does not know gets.
fn accepted(table: &str) -> BTreeSet<String> {
    let sb = Sandbox::new();
    sb.write("zccache.toml", format!("{table}\nno_such_key = 1\n"));
    let err = sb.cmd(["tasks"]).status(2).stderr;
    let (_, listed) = err
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("no list of keys in:\n{err}"));
    let listed = listed.lines().next().unwrap_or_default();
    listed
        .split(", ")
        .map(|key| key.trim_matches('`').to_string())
        .collect()
}

/// Which table a line of the example is in.
#[derive(Clone, Copy, PartialEq)]
enum Table {
    Top,
    Defaults,
    Task,
}

/// The key a line sets, or would set with its `# ` taken away.
fn key_of(line: &str) -> Option<&str> {
    let code = line.strip_prefix("# ").unwrap_or(line);
    let (key, _) = code.split_once(" =")?;
    let plain = key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    (plain && !key.is_empty()).then_some(key)
}

/// The keys the example names per table, set or commented out (`# key = ...`).
fn documented(text: &str) -> BTreeSet<(u8, String)> {
    let mut table = Table::Top;
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("[defaults]") {
            table = Table::Defaults;
        } else if line.starts_with("[tasks.") {
            table = Table::Task;
        } else if let Some(key) = key_of(line) {
            keys.insert((table as u8, key.to_string()));
        }
    }
    keys
}

#[test]
fn issue_q_the_example_names_every_key() {
    let text = example();
    let keys = documented(&text);
    let named = |table: Table, key: &str| keys.contains(&(table as u8, key.to_string()));
    let mut missing = Vec::new();
    for key in accepted("") {
        if !text.contains(&format!("[{key}")) {
            missing.push(format!("the [{key}] table"));
        }
    }
    for (table, header) in [
        (Table::Defaults, "[defaults]"),
        (Table::Task, "[tasks.t]\ncommand = \"true\""),
    ] {
        let accepted = accepted(header);
        missing.extend(accepted.iter().filter(|k| !named(table, k)).cloned());
        let unknown: Vec<_> = keys
            .iter()
            .filter(|(t, k)| *t == table as u8 && !accepted.contains(k))
            .collect();
        assert!(
            unknown.is_empty(),
            "the example names keys the binary refuses: {unknown:?}"
        );
    }
    assert!(missing.is_empty(), "zccache.toml.example lacks {missing:?}");
}

#[test]
fn issue_q_the_example_loads_with_every_key_switched_on() {
    let switched_on: String = example()
        .lines()
        .map(|line| match key_of(line) {
            Some(_) => line.strip_prefix("# ").unwrap_or(line),
            None => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let sb = Sandbox::new();
    sb.write("zccache.toml", &switched_on)
        .write("docs/index.md", "# docs\n");
    let ran = sb.cmd(["run", "--all", "--dry-run"]).status(1);
    for task in ["lint", "fmt", "test", "codegen", "docs"] {
        let line = format!("zccache: run {task} (no previous success)");
        assert!(
            ran.stderr.contains(&line),
            "{line:?} missing:\n{}",
            ran.stderr
        );
    }
}
