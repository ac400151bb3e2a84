//! Make-style dependency files as gcc and clang write them (`-MD -MF`): the prerequisites
//! of the first rule, the same file with some of them left out (what `-MMD` writes), and
//! the same file for other targets (a hit for another object), byte for byte as the
//! compiler would write it.

use std::borrow::Cow;

use super::args::DepTarget;

/// The prerequisites of the first rule of `text` (escaped spaces and `$$` undone).
pub fn prerequisites(text: &str) -> Vec<String> {
    first_rule(text)
        .map(|(_, deps, _)| deps.iter().map(|d| unescape(d)).collect())
        .unwrap_or_default()
}

/// Which compiler family wrote a depfile: gcc and clang wrap and order it differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// gcc: wraps at column 72, indents one space, puts `-MT` targets before `-MQ` ones.
    Gcc,
    /// clang: wraps at 75, indents two spaces, keeps the targets in command order.
    Clang,
}

impl Flavor {
    /// The family of the compiler whose `--version` answered `version`.
    pub fn of(version: &[u8]) -> Flavor {
        match version.windows(5).any(|w| w == b"clang") {
            true => Flavor::Clang,
            false => Flavor::Gcc,
        }
    }
}

/// The target words a compile's depfile starts with, quoted and ordered as its compiler
/// writes them: the `-MT` (as is) and `-MQ` (quoted) names, else the object (quoted).
pub fn target_words(targets: &[DepTarget], output: &str, flavor: Flavor) -> Vec<String> {
    if targets.is_empty() {
        return vec![quote(output)];
    }
    let word = |t: &DepTarget| match t.quoted {
        true => quote(&t.name),
        false => t.name.clone(),
    };
    if flavor == Flavor::Clang {
        return targets.iter().map(word).collect();
    }
    // gcc's driver hands cc1 every -MQ, then every -MT; cc1 swaps each unquoted target
    // into the place of the lowest quoted one (mkdeps.cc, deps_add_target).
    let mut words: Vec<String> = targets.iter().filter(|t| t.quoted).map(word).collect();
    for (unquoted, t) in targets.iter().filter(|t| !t.quoted).enumerate() {
        let moved = match unquoted < words.len() {
            true => std::mem::replace(&mut words[unquoted], t.name.clone()),
            false => t.name.clone(),
        };
        words.push(moved);
    }
    words
}

/// A name quoted for make as gcc's `munge` and clang's `QuoteTarget` do: a space or tab
/// gets a backslash (and the backslashes before it are doubled), `$` is `$$`, `#` is `\#`.
fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    let mut slashes = 0;
    for c in name.chars() {
        match c {
            '\\' => slashes += 1,
            ' ' | '\t' => {
                out.extend(std::iter::repeat_n('\\', slashes + 1));
                slashes = 0;
            }
            '$' => {
                out.push('$');
                slashes = 0;
            }
            '#' => {
                out.push('\\');
                slashes = 0;
            }
            _ => slashes = 0,
        }
        out.push(c);
    }
    out
}

/// `text`, a depfile written for some targets, as its compiler would have written it for
/// `targets` (from [`target_words`]): the first rule rewritten and rewrapped, the rest
/// (`-MP`'s phony rules) as is. `text` itself when the targets are the same.
pub fn retarget<'a>(text: &'a str, targets: &[String], flavor: Flavor) -> Cow<'a, str> {
    let Some((old, deps, rest)) = first_rule(text) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 64);
    let column = write_targets(&mut out, targets, flavor);
    if out == old {
        return Cow::Borrowed(text);
    }
    out.push(':');
    write_deps(&mut out, column + 1, &deps, flavor);
    out.push('\n');
    out.push_str(rest);
    Cow::Owned(out)
}

/// The depfile `text` with only the prerequisites `keep` accepts (the first, the source,
/// always stays), written the way `flavor` writes them; with `-MP` (`phony`) each kept
/// header also gets an empty rule. `text` itself when nothing is left out.
pub fn keep_prerequisites(
    text: &str,
    phony: bool,
    flavor: Flavor,
    keep: impl Fn(&str) -> bool,
) -> String {
    let Some((target, deps, _)) = first_rule(text) else {
        return text.to_string();
    };
    let kept: Vec<&str> = deps
        .iter()
        .enumerate()
        .filter(|(i, d)| *i == 0 || keep(&unescape(d)))
        .map(|(_, d)| *d)
        .collect();
    if kept.len() == deps.len() {
        return text.to_string();
    }
    let mut out = String::from(target);
    out.push(':');
    let column = target.rsplit('\n').next().unwrap_or(target).len() + 1;
    write_deps(&mut out, column, &kept, flavor);
    out.push('\n');
    if phony {
        for dep in kept.iter().skip(1) {
            if flavor == Flavor::Clang {
                out.push('\n');
            }
            out.push_str(dep);
            out.push_str(":\n");
        }
    }
    out
}

/// Writes the targets of a rule the way `flavor` wraps them; the column it ends at.
fn write_targets(out: &mut String, targets: &[String], flavor: Flavor) -> usize {
    let mut column = 0;
    for target in targets {
        let n = target.len();
        match flavor {
            _ if column == 0 => column = n,
            Flavor::Gcc if column + n > 72 => {
                out.push_str(" \\\n ");
                column = n + 1;
            }
            Flavor::Clang if column + n + 2 > 75 => {
                out.push_str(" \\\n  ");
                column = n + 2;
            }
            _ => {
                out.push(' ');
                column += n + 1;
            }
        }
        out.push_str(target);
    }
    column
}

/// Writes prerequisites after a rule's `:` at `column`, wrapped the way `flavor` wraps.
fn write_deps(out: &mut String, mut column: usize, deps: &[&str], flavor: Flavor) {
    for dep in deps {
        let n = dep.len();
        match flavor {
            Flavor::Clang if column + n + 3 > 75 => {
                out.push_str(" \\\n ");
                column = 2;
            }
            Flavor::Gcc if column + n > 72 => {
                out.push_str(" \\\n");
                column = 0;
            }
            _ => {}
        }
        out.push(' ');
        out.push_str(dep);
        column += n + 1;
    }
}

/// The first rule's target text, its prerequisites as written (still escaped), and the
/// text after the rule.
fn first_rule(text: &str) -> Option<(&str, Vec<&str>, &str)> {
    let body = text.trim_start();
    let bytes = body.as_bytes();
    let colon = (0..bytes.len()).find(|&i| {
        bytes[i] == b':' && matches!(bytes.get(i + 1), None | Some(b' ' | b'\n' | b'\r'))
    })?;
    let end = (colon..bytes.len())
        .find(|&i| bytes[i] == b'\n' && !body[..i].trim_end_matches('\r').ends_with('\\'))
        .unwrap_or(bytes.len());
    let rest = body.get(end + 1..).unwrap_or("");
    Some((&body[..colon], split_words(&body[colon + 1..end]), rest))
}

/// Whitespace-separated words, where `\ ` keeps a space and `\` + newline is a space.
fn split_words(deps: &str) -> Vec<&str> {
    let bytes = deps.as_bytes();
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let continuation = bytes[i] == b'\\' && matches!(bytes.get(i + 1), Some(b'\n' | b'\r'));
        if bytes[i].is_ascii_whitespace() || continuation {
            if let Some(s) = start.take() {
                out.push(&deps[s..i]);
            }
        } else {
            start.get_or_insert(i);
            if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b' ') {
                i += 1;
            }
        }
        i += 1;
    }
    if let Some(s) = start {
        out.push(&deps[s..]);
    }
    out
}

/// A prerequisite as a path: `\ ` is a space, `$$` a `$`.
fn unescape(dep: &str) -> String {
    dep.replace("\\ ", " ").replace("$$", "$")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_lines_and_escapes() {
        let text = "out/a.o: src/a.c include/a.h \\\n  /usr/include/stdio.h my\\ dir/x.h \\\n cost$$.h\n\ninclude/a.h:\n";
        assert_eq!(
            prerequisites(text),
            [
                "src/a.c",
                "include/a.h",
                "/usr/include/stdio.h",
                "my dir/x.h",
                "cost$.h"
            ]
        );
    }

    #[test]
    fn gcc_style_rewraps_at_72() {
        let full = "m.o: m.c /usr/include/stdc-predef.h inc/a_fairly_long_header_name_for_wrapping.h \\\n /usr/include/stdio.h inc/b.h\n";
        assert_eq!(
            keep_prerequisites(full, true, Flavor::Gcc, |d| !d.starts_with("/usr")),
            "m.o: m.c inc/a_fairly_long_header_name_for_wrapping.h inc/b.h\n\
             inc/a_fairly_long_header_name_for_wrapping.h:\ninc/b.h:\n"
        );
        assert_eq!(keep_prerequisites(full, false, Flavor::Gcc, |_| true), full);
    }

    #[test]
    fn clang_style_rewraps_at_75() {
        let full = "m.o: m.c /usr/include/stdio.h \\\n  /usr/include/x86_64-linux-gnu/bits/libc-header-start.h \\\n  inc/b.h\n";
        assert_eq!(
            keep_prerequisites(full, true, Flavor::Clang, |d| d != "/usr/include/stdio.h"),
            "m.o: m.c /usr/include/x86_64-linux-gnu/bits/libc-header-start.h inc/b.h\n\n\
             /usr/include/x86_64-linux-gnu/bits/libc-header-start.h:\n\ninc/b.h:\n"
        );
    }

    #[test]
    fn wrapped_targets_keep_their_text() {
        let full = "a \\\n second.o: \\\n m.c /usr/include/stdio.h\n";
        assert_eq!(
            keep_prerequisites(full, false, Flavor::Gcc, |_| false),
            "a \\\n second.o: m.c\n"
        );
    }

    #[test]
    fn empty_and_odd_files() {
        assert!(prerequisites("").is_empty());
        assert!(prerequisites("garbage without a rule").is_empty());
    }

    fn targets(spec: &[(&str, bool)]) -> Vec<DepTarget> {
        spec.iter()
            .map(|(name, quoted)| DepTarget {
                name: name.to_string(),
                quoted: *quoted,
            })
            .collect()
    }

    #[test]
    fn gcc_puts_mt_first_by_swapping_and_clang_keeps_the_order() {
        // What gcc 12 and clang 14 wrote for these command lines.
        let given = targets(&[("a", true), ("b", true), ("e", true), ("c", false)]);
        assert_eq!(
            target_words(&given, "z.o", Flavor::Gcc),
            ["c", "b", "e", "a"]
        );
        assert_eq!(
            target_words(&given, "z.o", Flavor::Clang),
            ["a", "b", "e", "c"]
        );
        let given = targets(&[("a", true), ("c", false), ("b", true), ("d", false)]);
        assert_eq!(
            target_words(&given, "z.o", Flavor::Gcc),
            ["c", "d", "a", "b"]
        );
        assert_eq!(
            target_words(&[], "out dir/z$.o", Flavor::Gcc),
            ["out\\ dir/z$$.o"]
        );
    }

    #[test]
    fn quoting_follows_make() {
        assert_eq!(quote("q r$#"), "q\\ r$$\\#");
        assert_eq!(quote("a\\ b\\c"), "a\\\\\\ b\\c");
    }

    #[test]
    fn retargeting_rewraps_the_first_rule_only() {
        let text = "z.o: a.c inc/h.h\nh.h:\n";
        assert!(matches!(
            retarget(text, &["z.o".into()], Flavor::Gcc),
            Cow::Borrowed(_)
        ));
        let long = "a_very_long_target_name_that_goes_on_and_on_and_on/and_on.o".to_string();
        assert_eq!(
            retarget(
                text,
                &[long.clone(), "another_long_target_name_here.o".into()],
                Flavor::Gcc
            ),
            format!("{long} \\\n another_long_target_name_here.o: a.c inc/h.h\nh.h:\n")
        );
        assert_eq!(
            retarget(text, &[long.clone(), "b.o".into()], Flavor::Clang),
            format!("{long} b.o: a.c \\\n  inc/h.h\nh.h:\n")
        );
    }
}
