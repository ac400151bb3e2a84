//! The README names only subcommands, flags and values the binary has: every synopsis line,
//! inline `zccache SUB ...` span and yaml hook command is checked against `--help` of its
//! subcommand (and of the sub-subcommands it names: `fp check`, `hook install`).

use std::collections::BTreeMap;

use super::{Kind, blocks_of, markdown, readme};
use crate::support::Sandbox;

/// `zccache ARGS --help`, each asked once.
struct Help {
    sb: Sandbox,
    texts: BTreeMap<String, String>,
}

impl Help {
    fn of(&mut self, args: &[&str]) -> String {
        let key = args.join(" ");
        if !self.texts.contains_key(&key) {
            let text = self.sb.cmd(args).args(["--help"]).status(0).stdout;
            self.texts.insert(key.clone(), text);
        }
        self.texts[&key].clone()
    }

    /// The subcommands listed under `Commands:` in `zccache ARGS --help`.
    fn subcommands(&mut self, args: &[&str]) -> Vec<String> {
        let text = self.of(args);
        let Some((_, listed)) = text.split_once("Commands:\n") else {
            return Vec::new();
        };
        listed
            .lines()
            .take_while(|l| l.starts_with("  "))
            .filter_map(|l| l.split_whitespace().next().map(String::from))
            .collect()
    }
}

/// Every `zccache ...` command form the README writes, with its line.
fn mentions() -> Vec<(usize, String)> {
    let mut found: Vec<(usize, String)> = markdown::code_spans(&readme())
        .into_iter()
        .filter(|(_, span)| span.starts_with("zccache "))
        .collect();
    for block in blocks_of(Kind::Synopsis) {
        for (offset, line) in block.lines.iter().enumerate() {
            let code = line.split(" #").next().unwrap_or_default();
            match found.last_mut() {
                _ if code.starts_with("zccache ") => {
                    found.push((block.line + offset, code.to_string()));
                }
                Some((_, last)) if !code.trim().is_empty() => *last += code,
                _ => {}
            }
        }
    }
    for block in blocks_of(Kind::Yaml) {
        for (offset, line) in block.lines.iter().enumerate() {
            if let Some(at) = line.find("zccache ") {
                found.push((block.line + offset, line[at..].to_string()));
            }
        }
    }
    for (_, form) in &mut found {
        *form = form.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    found
}

/// The words of a command form before its command (a `--` outside brackets).
fn own_words(form: &str) -> Vec<&str> {
    let mut depth = 0;
    let mut words = Vec::new();
    for word in form.split_whitespace() {
        if word == "--" && depth == 0 {
            break;
        }
        depth += word.matches('[').count();
        depth -= word.matches(']').count().min(depth);
        words.push(word);
    }
    words
}

/// What `help` must mention for one word of a form: its flags (`--cache`, `-j`) and, for
/// `a|b` alternatives, each value.
fn needed(word: &str) -> Vec<String> {
    let bare = word.trim_matches(|c: char| "[](),.".contains(c));
    let parts: Vec<&str> = bare.split('|').filter(|p| !p.is_empty()).collect();
    let mut needs = Vec::new();
    for part in &parts {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let flag = name.starts_with("--") || (name.len() == 2 && name.starts_with('-'));
        let value = parts.len() > 1 && name.chars().all(|c| c.is_ascii_lowercase() || c == '-');
        if flag || value {
            needs.push(name);
        }
    }
    needs
}

/// Whether `help` has `needle` as a flag or a value (not as part of a longer word).
fn mentions_word(help: &str, needle: &str) -> bool {
    help.match_indices(needle).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + needle.len()..].chars().next();
        let part = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
        !part(before) && !part(after)
    })
}

fn check(help: &mut Help, form: &str) -> Result<(), String> {
    let words = own_words(form);
    let top = help.subcommands(&[]);
    let Some(sub) = words.get(1).filter(|w| top.iter().any(|t| t == *w)) else {
        // A compiler, a path, `--` or a typo shown on purpose: not a subcommand.
        return Ok(());
    };
    let mut text = help.of(&[sub]);
    for inner in help.subcommands(&[sub]) {
        if words.contains(&inner.as_str()) {
            text += &help.of(&[sub, &inner]);
        }
    }
    let missing: Vec<String> = words[2..]
        .iter()
        .flat_map(|w| needed(w))
        .filter(|need| !mentions_word(&text, need))
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(format!(
            "`{form}`: `zccache {sub} --help` has no {missing:?}"
        )),
    }
}

#[test]
fn issue_q_readme_names_only_real_subcommands_flags_and_values() {
    let mut help = Help {
        sb: Sandbox::new(),
        texts: BTreeMap::new(),
    };
    let forms = mentions();
    assert!(forms.len() > 20, "the README's command forms are found");
    let wrong: Vec<String> = forms
        .iter()
        .filter_map(|(line, form)| {
            check(&mut help, form)
                .err()
                .map(|e| format!("README line {line}: {e}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn command_forms_are_split_into_what_help_must_have() {
    assert_eq!(
        own_words("zccache why [TASK | --cache FILE | -- CMD ARGS...] [--json]").len(),
        11
    );
    assert_eq!(
        own_words("zccache run --cache F -- cargo clippy -- -D warnings").len(),
        4
    );
    assert_eq!(needed("[--cache-type"), ["--cache-type"]);
    assert_eq!(needed("two-layer|hash]"), ["two-layer", "hash"]);
    assert_eq!(needed("[-j"), ["-j"]);
    assert_eq!(needed("--tasks=lint,test]"), ["--tasks"]);
    assert!(needed("FILE").is_empty() && needed("lint,test]").is_empty());
    assert!(mentions_word("  --cache <FILE>", "--cache"));
    assert!(!mentions_word("  --cache-type <T>", "--cache"));
}
