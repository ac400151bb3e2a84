//! Make-style dependency files as gcc writes them (`-MD -MF`): the prerequisites of the
//! first rule.

/// The prerequisites of the first rule of `text` (escaped spaces and `$$` undone).
pub fn prerequisites(text: &str) -> Vec<String> {
    let joined = text.replace("\\\r\n", " ").replace("\\\n", " ");
    let Some(first) = joined.lines().find(|l| !l.trim().is_empty()) else {
        return Vec::new();
    };
    let Some((_, deps)) = split_rule(first) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            '$' if chars.peek() == Some(&'$') => {
                current.push('$');
                chars.next();
            }
            c if c.is_whitespace() => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `target: deps` → (target, deps), at the first `: ` or a trailing `:`.
fn split_rule(line: &str) -> Option<(&str, &str)> {
    let at = line
        .find(": ")
        .or_else(|| line.strip_suffix(':').map(str::len))?;
    Some((&line[..at], line.get(at + 1..).unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::prerequisites;

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
    fn empty_and_odd_files() {
        assert!(prerequisites("").is_empty());
        assert!(prerequisites("garbage without a rule").is_empty());
    }
}
