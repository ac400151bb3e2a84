//! Make-style dependency files as gcc and clang write them (`-MD -MF`): the prerequisites
//! of the first rule, and the same file with some of them left out (what `-MMD` writes).

/// The prerequisites of the first rule of `text` (escaped spaces and `$$` undone).
pub fn prerequisites(text: &str) -> Vec<String> {
    first_rule(text)
        .map(|(_, deps)| deps.iter().map(|d| unescape(d)).collect())
        .unwrap_or_default()
}

/// The depfile `text` with only the prerequisites `keep` accepts (the first, the source,
/// always stays), written the way the compiler that wrote `text` writes them: gcc wraps at
/// column 72 and indents one space, clang at 75 and two; with `-MP` (`phony`) each kept
/// header also gets an empty rule. `text` itself when nothing is left out.
pub fn keep_prerequisites(text: &str, phony: bool, keep: impl Fn(&str) -> bool) -> String {
    let Some((target, deps)) = first_rule(text) else {
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
    let clang = text.contains(" \\\n  ") || text.contains("\n\n");
    let mut out = String::from(target);
    out.push(':');
    let mut column = target.rsplit('\n').next().unwrap_or(target).len() + 1;
    for dep in &kept {
        let n = dep.len();
        if clang && column + n + 3 > 75 {
            out.push_str(" \\\n ");
            column = 2;
        } else if !clang && column + n > 72 {
            out.push_str(" \\\n");
            column = 0;
        }
        out.push(' ');
        out.push_str(dep);
        column += n + 1;
    }
    out.push('\n');
    if phony {
        for dep in kept.iter().skip(1) {
            if clang {
                out.push('\n');
            }
            out.push_str(dep);
            out.push_str(":\n");
        }
    }
    out
}

/// The first rule's target text and its prerequisites as written (still escaped).
fn first_rule(text: &str) -> Option<(&str, Vec<&str>)> {
    let body = text.trim_start();
    let bytes = body.as_bytes();
    let colon = (0..bytes.len()).find(|&i| {
        bytes[i] == b':' && matches!(bytes.get(i + 1), None | Some(b' ' | b'\n' | b'\r'))
    })?;
    let end = (colon..bytes.len())
        .find(|&i| bytes[i] == b'\n' && !body[..i].trim_end_matches('\r').ends_with('\\'))
        .unwrap_or(bytes.len());
    Some((&body[..colon], split_words(&body[colon + 1..end])))
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
    use super::{keep_prerequisites, prerequisites};

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
            keep_prerequisites(full, true, |d| !d.starts_with("/usr")),
            "m.o: m.c inc/a_fairly_long_header_name_for_wrapping.h inc/b.h\n\
             inc/a_fairly_long_header_name_for_wrapping.h:\ninc/b.h:\n"
        );
        assert_eq!(keep_prerequisites(full, false, |_| true), full);
    }

    #[test]
    fn clang_style_rewraps_at_75() {
        let full = "m.o: m.c /usr/include/stdio.h \\\n  /usr/include/x86_64-linux-gnu/bits/libc-header-start.h \\\n  inc/b.h\n";
        assert_eq!(
            keep_prerequisites(full, true, |d| d != "/usr/include/stdio.h"),
            "m.o: m.c /usr/include/x86_64-linux-gnu/bits/libc-header-start.h inc/b.h\n\n\
             /usr/include/x86_64-linux-gnu/bits/libc-header-start.h:\n\ninc/b.h:\n"
        );
    }

    #[test]
    fn wrapped_targets_keep_their_text() {
        let full = "a \\\n second.o: \\\n m.c /usr/include/stdio.h\n";
        assert_eq!(
            keep_prerequisites(full, false, |_| false),
            "a \\\n second.o: m.c\n"
        );
    }

    #[test]
    fn empty_and_odd_files() {
        assert!(prerequisites("").is_empty());
        assert!(prerequisites("garbage without a rule").is_empty());
    }
}
