//! README.md as the checker reads it: fenced blocks (with the line each starts on), inline
//! code spans, a transcript's `$ ` steps, and the rule for comparing shown output with real
//! output, where only a clock time, a duration and an explicit `...` may differ.

/// A fenced code block.
pub struct Block {
    /// The word after the opening fence (`sh`, `toml`, empty).
    pub lang: String,
    /// The README line of the block's first content line (1-based).
    pub line: usize,
    /// The content lines.
    pub lines: Vec<String>,
}

/// The fenced blocks of `markdown`, in order; a block indented under a list item has its
/// indentation taken off.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(Block, usize)> = None;
    for (index, line) in markdown.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        match (open.take(), line.trim_start().strip_prefix("```")) {
            (None, Some(lang)) => {
                let block = Block {
                    lang: lang.trim().to_string(),
                    line: index + 2,
                    lines: Vec::new(),
                };
                open = Some((block, indent));
            }
            (Some((block, _)), Some(_)) => blocks.push(block),
            (Some((mut block, indent)), None) => {
                let cut = indent.min(line.len() - line.trim_start().len());
                block.lines.push(line[cut..].to_string());
                open = Some((block, indent));
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README: a fence is never closed");
    blocks
}

/// The inline code spans outside fenced blocks, as (line, text); a span that wraps is
/// joined with single spaces.
pub fn code_spans(markdown: &str) -> Vec<(usize, String)> {
    let mut prose = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        let fence = line.trim_start().starts_with("```");
        fenced ^= fence;
        // Blank lines keep the numbering, and a backtick inside a block pairs with nothing.
        prose.push_str(if fenced || fence { "" } else { line });
        prose.push('\n');
    }
    let mut spans = Vec::new();
    let mut rest = prose.as_str();
    let mut line = 1;
    while let Some(start) = rest.find('`') {
        line += rest[..start].matches('\n').count();
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else { break };
        let span = after[..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        spans.push((line, span));
        line += after[..end].matches('\n').count();
        rest = &after[end + 1..];
    }
    spans
}

/// One `$ COMMAND` line of a transcript and the output lines shown under it.
pub struct Step {
    /// The README line of the `$ ` line.
    pub line: usize,
    /// The command, as the shell gets it.
    pub command: String,
    /// The lines shown under it (up to the next `$ `), blank ones left out.
    pub shown: Vec<String>,
    /// Whether its output is compared with `shown` (a synopsis form that shows none is only
    /// run).
    pub compared: bool,
}

/// The steps of a transcript block (one whose lines start with `$ `).
pub fn steps(block: &Block) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for (offset, line) in block.lines.iter().enumerate() {
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                line: block.line + offset,
                command: command.to_string(),
                shown: Vec::new(),
                compared: true,
            });
        } else if let Some(step) = steps.last_mut().filter(|_| !line.trim().is_empty()) {
            step.shown.push(line.clone());
        }
    }
    steps
}

/// The runnable forms of a synopsis block (`zccache run lint test`, not `zccache tasks
/// [--json]` or `zccache kv get KEY`) as steps; the `# zccache: ...` comments on a form's
/// line and the comment lines under it are its shown output.
pub fn synopsis_steps(block: &Block) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut last_runnable = false;
    for (offset, line) in block.lines.iter().enumerate() {
        let (form, comment) = line.split_once(" #").unwrap_or((line, ""));
        if form.starts_with("zccache ") {
            last_runnable = runnable(form);
            if last_runnable {
                steps.push(Step {
                    line: block.line + offset,
                    command: form.trim().to_string(),
                    shown: Vec::new(),
                    compared: false,
                });
            }
        }
        let shown = comment.trim().strip_prefix("zccache:").is_some();
        if let Some(step) = steps.last_mut().filter(|_| shown && last_runnable) {
            step.shown.push(comment.trim().to_string());
            step.compared = true;
        }
    }
    steps
}

/// Whether a form is a command as it stands: no `[optional]`, `a|b` or `...`, and no
/// placeholder word (`KEY`, `FILE`).
fn runnable(form: &str) -> bool {
    let placeholder = |w: &str| w.chars().any(|c| c.is_ascii_uppercase()) && !w.contains('-');
    !form.contains(['[', '|']) && !form.contains("...") && !form.split_whitespace().any(placeholder)
}

/// Whether `block` is a transcript.
pub fn is_transcript(block: &Block) -> bool {
    block.lines.iter().any(|l| l.starts_with("$ "))
}

/// Checks a step's real output against what the README shows: every shown line must
/// appear, in order; every real `zccache:` line must be one of them (other lines, such as
/// cargo's, may be left out of the README).
pub fn compare(shown: &[String], actual: &str) -> Result<(), String> {
    let mut actual = actual.lines().filter(|l| !l.trim().is_empty());
    for expected in shown {
        loop {
            let Some(line) = actual.next() else {
                return Err(format!("never printed: {expected}"));
            };
            if line_matches(expected, line) {
                break;
            }
            if line.starts_with("zccache:") {
                return Err(format!("printed: {line}\n  README: {expected}"));
            }
        }
    }
    match actual.find(|l| l.starts_with("zccache:")) {
        Some(line) => Err(format!("printed, not in the README: {line}")),
        None => Ok(()),
    }
}

/// A part of a shown line.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Piece {
    /// This character.
    Char(char),
    /// `...` or `…`: any text.
    Any,
    /// A clock time (`10:02`): any time, with the date when it is not today.
    Clock,
    /// A duration (`2 ms`, `1.2 s`): any number, in either unit.
    Duration,
}

/// Whether a real output line matches a shown one.
pub fn line_matches(shown: &str, actual: &str) -> bool {
    let actual: Vec<char> = actual.trim_end().chars().collect();
    matches(&pieces(shown.trim_end()), &actual)
}

fn pieces(shown: &str) -> Vec<Piece> {
    let chars: Vec<char> = shown.chars().collect();
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let rest = &chars[at..];
        let after_word = at == 0 || !chars[at - 1].is_ascii_alphanumeric();
        let (piece, len) = if rest.starts_with(&['.', '.', '.']) {
            (Piece::Any, 3)
        } else if rest[0] == '…' {
            (Piece::Any, 1)
        } else if let Some(len) = clock(rest).filter(|_| after_word) {
            (Piece::Clock, len)
        } else if let Some(len) = duration(rest).filter(|_| after_word) {
            (Piece::Duration, len)
        } else {
            (Piece::Char(rest[0]), 1)
        };
        pieces.push(piece);
        at += len;
    }
    pieces
}

/// The length of a `HH:MM` clock at the start of `text`, if there is one.
fn clock(text: &[char]) -> Option<usize> {
    let digit = |i: usize| text.get(i).is_some_and(char::is_ascii_digit);
    let clock = digit(0) && digit(1) && text.get(2) == Some(&':') && digit(3) && digit(4);
    (clock && !digit(5)).then_some(5)
}

/// The length of a duration (`2 ms`, `1.2 s`) at the start of `text`, if there is one.
fn duration(text: &[char]) -> Option<usize> {
    let number = text
        .iter()
        .take_while(|c| c.is_ascii_digit() || **c == '.')
        .count();
    if number == 0 || !text[0].is_ascii_digit() {
        return None;
    }
    let rest: String = text[number..].iter().take(4).collect();
    let unit = ["ms", "s"].into_iter().find(|unit| {
        let tail = rest.strip_prefix(' ').and_then(|r| r.strip_prefix(unit));
        tail.is_some_and(|t| !t.starts_with(|c: char| c.is_ascii_alphanumeric()))
    })?;
    Some(number + 1 + unit.len())
}

fn matches(pieces: &[Piece], actual: &[char]) -> bool {
    let Some((first, rest)) = pieces.split_first() else {
        return actual.is_empty();
    };
    match first {
        Piece::Char(c) => actual.first() == Some(c) && matches(rest, &actual[1..]),
        Piece::Any => (0..=actual.len()).any(|skip| matches(rest, &actual[skip..])),
        Piece::Clock => {
            let dated = date(actual).map_or(0, |len| len + 1);
            clock(&actual[dated..]).is_some_and(|len| matches(rest, &actual[dated + len..]))
        }
        Piece::Duration => duration(actual).is_some_and(|len| matches(rest, &actual[len..])),
    }
}

/// The length of a `YYYY-MM-DD` date followed by a space at the start of `text`, if any.
fn date(text: &[char]) -> Option<usize> {
    let shape = "dddd-dd-dd ";
    let fits = shape.chars().enumerate().all(|(i, s)| {
        text.get(i).is_some_and(|c| {
            if s == 'd' {
                c.is_ascii_digit()
            } else {
                *c == s
            }
        })
    });
    fits.then_some(shape.len() - 1)
}

#[test]
fn shown_lines_differ_only_in_times_durations_and_ellipses() {
    let shown = "zccache: skip (4 files unchanged since 10:02, 2 ms)";
    assert!(line_matches(
        shown,
        "zccache: skip (4 files unchanged since 05:13, 12 ms)"
    ));
    assert!(line_matches(
        shown,
        "zccache: skip (4 files unchanged since 2026-12-05 23:59, 1.2 s)"
    ));
    assert!(!line_matches(
        shown,
        "zccache: skip (5 files unchanged since 10:02, 2 ms)"
    ));
    assert!(!line_matches(
        shown,
        "zccache: run (4 files unchanged since 10:02, 2 ms)"
    ));
    assert!(!line_matches(
        shown,
        "zccache: skip (4 files unchanged since 10:02)"
    ));
    assert!(line_matches(
        "    Checking app v0.1.0 (...)",
        "    Checking app v0.1.0 (/t/app)"
    ));
    assert!(line_matches(
        "session 0000…: 3 hits",
        "session 00004e52: 3 hits"
    ));
    assert!(line_matches(
        "zccache: 2 tasks: 1 skipped, 1 ran in 1.2 s",
        "zccache: 2 tasks: 1 skipped, 1 ran in 0.0 s"
    ));
    assert!(!line_matches(
        "zccache: 2 tasks: 1 skipped, 1 ran in 1.2 s",
        "zccache: 2 tasks: 2 skipped in 0.0 s"
    ));
    assert!(line_matches("exit 1", "exit 1") && !line_matches("exit 1", "exit 0"));
}

#[test]
fn fenced_blocks_are_found_indented_too() {
    let text = "a\n```sh\nls\n```\n- item:\n  ```\n  $ true\n    x\n  ```\n`zccache run`\n";
    let found = blocks(text);
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].lang.as_str(), found[0].line), ("sh", 3));
    assert_eq!(found[1].lines, ["$ true", "  x"]);
    assert_eq!(code_spans(text), [(10, "zccache run".to_string())]);
}

#[test]
fn every_zccache_line_must_be_shown_and_in_order() {
    let shown = ["zccache: run (no previous success)".to_string()];
    let actual = "  Creating app\nzccache: run (no previous success)\n    Checking app\n";
    assert_eq!(compare(&shown, actual), Ok(()));
    assert!(
        compare(
            &shown,
            "zccache: note: full stat pass\nzccache: run (no previous success)"
        )
        .is_err()
    );
    assert!(
        compare(
            &shown,
            "zccache: run (no previous success)\nzccache: warning: x"
        )
        .is_err()
    );
    assert!(compare(&shown, "nothing\n").is_err());
}
