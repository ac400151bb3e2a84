//! What a record may say of an output. A record — the task's own `F.run` or a result another
//! machine published — is data, so before anything is written from it, each output's
//! entries must be: sorted and unique; in normal form (`a/b`, never `a/./b`, `a//b`, `..`
//! or a leading `/`); below recorded directories only (a plain output), or matched by the
//! output's glob and never under `.git/` or `.zccache/` (a glob output); and a symlink must
//! be relative and resolve inside its output (a glob's: inside its literal leading
//! directories, to a path the glob matches, so the task's next run cannot write through it
//! into an input), decided on path components. The output itself is never a symlink to
//! restore: its target would resolve outside it.

use globset::GlobMatcher;

use super::output_entry::{OutputEntry, OutputKind};

/// True when an `--output` is a glob (`dist/**`, `*.gen.rs`) rather than a path.
pub fn is_glob(output: &str) -> bool {
    output.contains(['*', '?', '[', '{'])
}

/// Path parts no output ever holds: git's and zccache's own directories.
const NEVER_OUTPUT: [&str; 2] = [".git", ".zccache"];

/// The matcher of a glob output (`*` stays within one path part).
pub fn glob_matcher(pattern: &str) -> Result<GlobMatcher, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|glob| glob.compile_matcher())
        .map_err(|e| format!("bad --output glob {pattern:?}: {e}"))
}

/// The literal leading directories of a glob (`gen/sub` of `gen/sub/*.txt`).
pub fn literal_parts(pattern: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = pattern.split('/').collect();
    parts.truncate(parts.iter().position(|p| is_glob(p)).unwrap_or(parts.len()));
    parts
}

/// True when `rel` lies in `.git/` or `.zccache/` (or is one of them).
pub fn never_an_output(rel: &str) -> bool {
    rel.split('/').any(|part| NEVER_OUTPUT.contains(&part))
}

/// Checks the entries a record gives for the output `shown`; Err says what is refused.
pub fn check(shown: &str, entries: &[OutputEntry]) -> Result<(), String> {
    if !entries.windows(2).all(|w| w[0].path < w[1].path) {
        return Err(format!("{shown}: the record's entries are not sorted"));
    }
    let glob = match is_glob(shown) {
        true => Some(glob_matcher(shown)?),
        false => None,
    };
    let refuse = |path: &str, why: &str| Err(format!("{shown}: {path:?} {why}"));
    if glob.is_none() && entries.first().is_none_or(|e| !e.path.is_empty()) {
        return Err(format!(
            "{shown}: the record does not list the output itself"
        ));
    }
    let floor = match glob {
        Some(_) => literal_parts(shown).len(),
        None => 0,
    };
    for entry in entries {
        let path = entry.path.as_str();
        if path.is_empty() {
            if glob.is_some() || matches!(entry.kind, OutputKind::Symlink(_)) {
                return refuse(path, "cannot be restored (the output itself)");
            }
            continue;
        }
        if !is_normal(path) {
            return refuse(path, "is not a plain relative path");
        }
        let placed = match &glob {
            Some(matcher) => {
                entry.kind != OutputKind::Dir && matcher.is_match(path) && !never_an_output(path)
            }
            None => find(entries, parent(path)).is_some_and(|p| p.kind == OutputKind::Dir),
        };
        if !placed {
            return refuse(path, "is not inside the output");
        }
        if glob.is_some() && ancestors(path).any(|a| find(entries, a).is_some()) {
            return refuse(path, "lies below a symlink or file");
        }
        if let OutputKind::Symlink(target) = &entry.kind
            && !link_stays_inside(path, target, floor, glob.as_ref(), entries)
        {
            return refuse(path, "is a symlink leading out of the output");
        }
    }
    Ok(())
}

/// True when `path` is `a/b/c`: no empty, `.` or `..` part, no NUL.
fn is_normal(path: &str) -> bool {
    !path.contains('\0')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// The path of the directory holding `path` (`""`: the output itself).
fn parent(path: &str) -> &str {
    path.rfind('/').map_or("", |at| &path[..at])
}

/// Every proper ancestor of `path` (`a`, `a/b` of `a/b/c`).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(at, _)| &path[..at])
}

fn find<'a>(entries: &'a [OutputEntry], path: &str) -> Option<&'a OutputEntry> {
    let at = entries
        .binary_search_by(|e| e.path.as_str().cmp(path))
        .ok()?;
    entries.get(at)
}

/// Whether the symlink at `path` with `target` resolves inside the output: relative, its
/// `..` parts only leading and never climbing above `floor` parts, then down through no
/// symlink of the record (which could lead anywhere) and never into `.git`/`.zccache`; for a
/// glob output, to a path the glob matches (beside its outputs may lie inputs).
fn link_stays_inside(
    path: &str,
    target: &str,
    floor: usize,
    glob: Option<&GlobMatcher>,
    entries: &[OutputEntry],
) -> bool {
    if target.is_empty() || target.starts_with('/') || target.contains('\0') {
        return false;
    }
    let mut at: Vec<&str> = parent(path).split('/').filter(|p| !p.is_empty()).collect();
    let mut descended = false;
    for part in target.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            if descended || at.len() <= floor {
                return false;
            }
            at.pop();
            continue;
        }
        let here = at.join("/");
        let is_link = |p: &str| find(entries, p).is_some_and(|e| e.kind != OutputKind::Dir);
        if descended && is_link(&here) {
            return false;
        }
        descended = true;
        at.push(part);
    }
    let resolved = at.join("/");
    !never_an_output(&resolved) && glob.is_none_or(|glob| glob.is_match(&resolved))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: OutputKind) -> OutputEntry {
        OutputEntry {
            path: path.to_string(),
            kind,
            mode: 0o644,
            digest: None,
        }
    }

    fn dir(path: &str) -> OutputEntry {
        entry(path, OutputKind::Dir)
    }

    fn file(path: &str) -> OutputEntry {
        entry(path, OutputKind::File)
    }

    fn link(path: &str, target: &str) -> OutputEntry {
        entry(path, OutputKind::Symlink(target.to_string()))
    }

    #[track_caller]
    fn ok(shown: &str, entries: &[OutputEntry]) {
        assert_eq!(check(shown, entries), Ok(()));
    }

    #[track_caller]
    fn refused(shown: &str, entries: &[OutputEntry]) {
        assert!(check(shown, entries).is_err(), "{entries:?} was taken");
    }

    #[test]
    fn honest_records_pass() {
        ok("out", &[dir(""), file("a"), dir("sub"), file("sub/b")]);
        ok(
            "out",
            &[dir(""), link("lib.so", "lib.so.1"), file("lib.so.1")],
        );
        ok("out", &[dir(""), file("a"), dir("d"), link("d/up", "../a")]);
        ok(
            "out",
            &[dir(""), link("here", "."), link("same", "./sub/./x")],
        );
        ok("gen.rs", &[file("")]);
        ok(
            "gen/*.txt",
            &[file("gen/a.txt"), link("gen/b.txt", "a.txt")],
        );
        ok("dist/**/*.js", &[file("dist/a.js"), file("dist/x/b.js")]);
    }

    #[test]
    fn spellings_that_hide_a_path_are_refused() {
        for bad in [
            "sub/./x", "sub//x", "./x", "x/", "/x", "../x", "x/..", "a\0b",
        ] {
            refused("out", &[dir(""), dir("sub"), file(bad)]);
        }
    }

    #[test]
    fn nothing_lies_below_anything_but_a_recorded_directory() {
        refused("out", &[dir(""), link("sub", "x"), file("sub/PWNED")]);
        refused("out", &[dir(""), file("sub"), file("sub/x")]);
        refused("out", &[dir(""), file("sub/x")]);
        refused("out", &[link("", "sub"), file("x")]);
        refused("out", &[file("x")]);
        refused("gen/**", &[link("gen/l", "x"), file("gen/l/x")]);
    }

    #[test]
    fn the_output_itself_is_never_a_restored_symlink() {
        refused("out", &[link("", "/somewhere")]);
        refused("out", &[link("", "sub")]);
    }

    #[test]
    fn symlinks_resolve_inside_their_output() {
        for bad in [
            "/etc",
            "..",
            "../x",
            "a/../..",
            "sub/../../x",
            ".git/hooks",
            "",
            "x/../y",
        ] {
            refused("out", &[dir(""), dir("a"), link("l", bad)]);
        }
        // Through another link of the record, a path could lead anywhere.
        refused("out", &[dir(""), link("a", "."), link("b", "a/x")]);
        refused("gen/*", &[link("gen/a", "../src.txt")]);
        ok("gen/sub/*", &[link("gen/sub/a", "b")]);
        // Beside a glob's outputs may lie inputs: a link leads only to what it matches.
        refused("gen/*.txt", &[link("gen/a.txt", "main.rs")]);
        refused("**/*.txt", &[link("gen/a.txt", "../main.rs")]);
        ok("**/*.txt", &[link("gen/a.txt", "../b.txt")]);
        refused("gen/sub/*", &[link("gen/sub/a", "../b")]);
    }

    #[test]
    fn glob_entries_match_their_glob_and_never_gits_or_zccaches_own() {
        refused("gen/*.txt", &[file(".git/hooks/pre-commit")]);
        refused("gen/*.txt", &[file("src.txt")]);
        refused("gen/*.txt", &[file("gen/a.rs")]);
        refused("gen/*.txt", &[file("gen/sub/a.txt")]);
        refused("**/*.txt", &[file(".git/x.txt")]);
        refused("**/*.txt", &[file("a/.zccache/x.txt")]);
        refused("gen/*", &[dir("gen/d")]);
        refused("gen/*", &[file("")]);
    }

    #[test]
    fn unsorted_or_repeated_entries_are_refused() {
        refused("out", &[dir(""), file("b"), file("a")]);
        refused("out", &[dir(""), file("a"), file("a")]);
    }

    #[test]
    fn literal_parts_stop_at_the_first_glob() {
        assert_eq!(literal_parts("gen/sub/*.txt"), ["gen", "sub"]);
        assert_eq!(literal_parts("*.txt"), Vec::<&str>::new());
        assert_eq!(literal_parts("a/**/b"), ["a"]);
    }
}
