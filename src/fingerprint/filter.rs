//! Which paths under a root belong to the input set: `--ext`, `--include` and `--exclude`,
//! plus the entries zccache always leaves out (`.git`, its own `.zccache` state, its
//! temporaries).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use super::FpError;
use super::globs::{Globs, parsed};
use crate::paths::TEMP_PREFIX;

/// How many compiled filters a process keeps for reuse (a daemon sees a few per task).
const COMPILED_KEPT: usize = 32;

/// Filters compiled in this process, most recent last.
static COMPILED: Mutex<Vec<(FilterSpec, Arc<Filter>)>> = Mutex::new(Vec::new());

/// Directory or file names never part of an input set.
const ALWAYS_EXCLUDED: [&str; 2] = [".git", ".zccache"];

/// What starts an exclude that keeps a path instead.
pub const KEEP: &str = "!";

/// The filters as the user gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct FilterSpec {
    /// Extensions without the dot (`rs`); a leading dot is tolerated.
    pub extensions: Vec<String>,
    /// Globs relative to the root; a file matching any of them is selected.
    pub include: Vec<String>,
    /// Bare names (any entry of that name, anywhere) or globs relative to the root; `!PATH`
    /// keeps PATH (relative to the root), and the directories above it, whatever glob
    /// would leave them out (a shared input that a per-file task's `--files` glob matches).
    pub exclude: Vec<String>,
}

impl FilterSpec {
    /// Checks that each glob parses, compiling none: the error [`Filter::compiled`] gives
    /// for a glob that does not. (A run checks its filters first, and the walk that uses
    /// one compiles it beside the other work.)
    pub fn check_globs(&self) -> Result<(), FpError> {
        let excluded = self.exclude.iter().filter(|p| !p.starts_with(KEEP));
        let excluded = excluded.filter_map(|p| exclude_glob(p));
        self.include
            .iter()
            .map(String::as_str)
            .chain(excluded)
            .try_for_each(|pattern| parsed(pattern).map(drop))
    }
}

/// A compiled [`FilterSpec`].
#[derive(Debug)]
pub struct Filter {
    extensions: HashSet<String>,
    include: Option<Globs>,
    /// Where `--include` globs can match when they alone select: each glob's literal leading
    /// directory, and whether it matches below it too (`None`: anywhere).
    include_dirs: Option<Vec<(String, bool)>>,
    /// Names excluded wherever they occur: a few, compared one by one (hashing each entry's
    /// name cost more).
    exclude_names: Vec<String>,
    exclude_globs: Globs,
    /// The paths `!PATH` excludes keep, and the directories above each.
    kept: HashSet<String>,
}

impl Filter {
    /// The spec compiled, once per process: a run validates its filters, then checks and
    /// walks with them, and each compile of its globs costs more than matching a thousand
    /// paths.
    pub fn compiled(spec: &FilterSpec) -> Result<Arc<Self>, FpError> {
        let kept = |compiled: &Vec<(FilterSpec, Arc<Filter>)>| {
            let found = compiled.iter().rev().find(|(known, _)| known == spec);
            found.map(|(_, filter)| Arc::clone(filter))
        };
        if let Some(filter) = kept(&COMPILED.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(filter);
        }
        let filter = Arc::new(Filter::new(spec)?);
        let mut compiled = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
        if compiled.len() >= COMPILED_KEPT {
            compiled.remove(0);
        }
        compiled.push((spec.clone(), Arc::clone(&filter)));
        Ok(filter)
    }

    /// Compiles the spec; a glob that does not parse is an error naming it.
    fn new(spec: &FilterSpec) -> Result<Self, FpError> {
        let extensions = spec
            .extensions
            .iter()
            .map(|e| e.trim_start_matches('.').to_string())
            .collect();
        let include = if spec.include.is_empty() {
            None
        } else {
            // Paths are matched as `a/b.rs`: a glob written `./a/*.rs` means the same.
            Some(Globs::new(
                spec.include.iter().map(|p| p.trim_start_matches("./")),
            )?)
        };
        let mut exclude_names: Vec<String> =
            ALWAYS_EXCLUDED.iter().map(|s| s.to_string()).collect();
        let mut exclude_globs = Vec::new();
        let mut kept = HashSet::new();
        for pattern in &spec.exclude {
            if let Some(path) = pattern.strip_prefix(KEEP) {
                kept.extend(with_parents(path));
                continue;
            }
            match exclude_glob(pattern) {
                Some(glob) => exclude_globs.push(glob),
                None => {
                    let name = pattern.trim_end_matches('/');
                    if !exclude_names.iter().any(|n| n == name) {
                        exclude_names.push(name.to_string());
                    }
                }
            }
        }
        let include_dirs = match extensions_given(spec) {
            true => None,
            false => spec.include.iter().map(|p| include_dir(p)).collect(),
        };
        Ok(Filter {
            extensions,
            include,
            include_dirs: include_dirs.filter(|dirs: &Vec<_>| !dirs.is_empty()),
            exclude_names,
            exclude_globs: Globs::new(exclude_globs.into_iter())?,
            kept,
        })
    }

    /// True when the entry (file or directory) at `rel`, named `name`, is left out
    /// together with everything below it.
    pub fn excludes(&self, rel: &str, name: &str) -> bool {
        // (An empty set still prepares the path for matching: asked first.)
        self.exclude_names.iter().any(|n| n == name)
            || name.starts_with(TEMP_PREFIX)
            || (!self.exclude_globs.is_empty()
                && self.exclude_globs.is_match(rel)
                && !self.kept.contains(rel))
    }

    /// True when the directory at `rel` may hold a selected file, so a walk must enter it:
    /// false only where `--include` globs alone select and none can match at or below it
    /// (`src/**/*.py` leaves out `docs/`; a literal `pyproject.toml`, every directory).
    pub fn may_hold(&self, rel: &str) -> bool {
        let Some(dirs) = &self.include_dirs else {
            return true;
        };
        dirs.iter()
            .any(|(dir, deep)| is_under(dir, rel) || (*deep && is_under(rel, dir)))
    }

    /// True when the filter selects only files `--include` names one by one (no glob, no
    /// extension): a walk for it enters only their directories.
    pub fn names_single_files(&self) -> bool {
        self.include_dirs
            .as_ref()
            .is_some_and(|dirs| dirs.iter().all(|(_, deep)| !deep))
    }

    /// True when a file at `rel` passes `--ext` / `--include` (either one when both are given).
    pub fn selects(&self, rel: &str) -> bool {
        if self.extensions.is_empty() && self.include.is_none() {
            return true;
        }
        let ext_ok = rel
            .rsplit_once('.')
            .filter(|(stem, _)| !stem.ends_with('/') && !stem.is_empty())
            .is_some_and(|(_, ext)| !ext.contains('/') && self.extensions.contains(ext));
        ext_ok || self.include.as_ref().is_some_and(|g| g.is_match(rel))
    }
}

fn extensions_given(spec: &FilterSpec) -> bool {
    spec.extensions
        .iter()
        .any(|e| !e.trim_start_matches('.').is_empty())
}

/// The literal leading directory of an `--include` glob and whether the glob can match
/// below it (`None`: it can match anywhere). The first component with a glob character, or
/// one that is empty, `.` or `..`, ends the literal part; a glob without any names one file.
fn include_dir(pattern: &str) -> Option<(String, bool)> {
    let parts: Vec<&str> = pattern.split('/').collect();
    let ends = |p: &&str| p.contains(['*', '?', '[', '{', '\\']) || matches!(*p, "" | "." | "..");
    match parts.iter().position(ends) {
        Some(0) => None,
        Some(k) => Some((parts[..k].join("/"), true)),
        None => Some((parts[..parts.len() - 1].join("/"), false)),
    }
}

/// True when `path` is `dir` or lies below it (every path lies below the root, `""`).
fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn is_bare_name(pattern: &str) -> bool {
    !pattern.is_empty() && !pattern.contains(['/', '*', '?', '[', '{'])
}

/// The glob an `--exclude` pattern is matched with; `None` for a bare name.
fn exclude_glob(pattern: &str) -> Option<&str> {
    let pattern = pattern.trim_end_matches('/');
    (!is_bare_name(pattern)).then(|| pattern.trim_start_matches("./"))
}

/// `path` (`a/b/c`) and the directories above it (`a/b`, `a`).
fn with_parents(path: &str) -> impl Iterator<Item = String> + '_ {
    let path = path.trim_start_matches("./");
    let cuts = path.match_indices('/').map(|(at, _)| at);
    std::iter::once(path.to_string()).chain(cuts.map(|at| path[..at].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(ext: &[&str], include: &[&str], exclude: &[&str]) -> Filter {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Filter::new(&FilterSpec {
            extensions: owned(ext),
            include: owned(include),
            exclude: owned(exclude),
        })
        .unwrap()
    }

    macro_rules! selects {
        ($name:ident, $ext:expr, $inc:expr, $path:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(filter(&$ext, &$inc, &[]).selects($path), $want);
            }
        };
    }

    macro_rules! excludes {
        ($name:ident, $exc:expr, $path:expr, $want:expr) => {
            #[test]
            fn $name() {
                let name = $path.rsplit('/').next().unwrap();
                assert_eq!(filter(&[], &[], &$exc).excludes($path, name), $want);
            }
        };
    }

    selects!(no_filters_select_all, [], [], "a/b.txt", true);
    selects!(ext_matches, ["rs"], [], "src/a.rs", true);
    selects!(ext_with_dot, [".rs"], [], "src/a.rs", true);
    selects!(ext_other, ["rs"], [], "src/a.py", false);
    selects!(ext_no_extension, ["rs"], [], "Makefile", false);
    selects!(ext_dotfile_is_not_ext, ["rs"], [], "dir/.rs", false);
    selects!(ext_dir_dot, ["rs"], [], "a.rs/b", false);
    selects!(include_glob, [], ["src/**/*.c"], "src/x/y.c", true);
    selects!(include_glob_miss, [], ["src/**/*.c"], "lib/y.c", false);
    selects!(ext_or_include_ext, ["rs"], ["*.toml"], "a.rs", true);
    selects!(ext_or_include_glob, ["rs"], ["*.toml"], "Cargo.toml", true);
    selects!(ext_or_include_none, ["rs"], ["*.toml"], "a.md", false);
    selects!(include_dot_slash, [], ["./src/a.toml"], "src/a.toml", true);
    selects!(include_dot_slash_glob, [], ["./src/*.c"], "src/x.c", true);

    excludes!(always_git, [], ".git", true);
    excludes!(always_state, [], "sub/.zccache", true);
    excludes!(bare_name_anywhere, ["target"], "a/b/target", true);
    excludes!(bare_name_trailing_slash, ["target/"], "target", true);
    excludes!(bare_name_other, ["target"], "a/targets", false);
    excludes!(glob_relative, ["docs/*.md"], "docs/a.md", true);
    excludes!(glob_relative_miss, ["docs/*.md"], "src/a.md", false);
    excludes!(path_literal, ["src/gen"], "src/gen", true);
    excludes!(dot_slash_prefix, ["./src/gen"], "src/gen", true);
    excludes!(
        kept_path,
        ["src/*.txt", "!src/rules.txt"],
        "src/rules.txt",
        false
    );
    excludes!(
        kept_path_bare_name_wins,
        ["src", "!./src/a/b.txt"],
        "src",
        true
    );
    excludes!(
        kept_path_dir_glob,
        ["src/*", "!./src/a/b.txt"],
        "src/a",
        false
    );
    excludes!(
        kept_path_other,
        ["src/*.txt", "!src/rules.txt"],
        "src/f.txt",
        true
    );

    macro_rules! may_hold {
        ($name:ident, $ext:expr, $inc:expr, $dir:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(filter(&$ext, &$inc, &[]).may_hold($dir), $want);
            }
        };
    }

    may_hold!(hold_no_filters, [], [], "a", true);
    may_hold!(hold_ext_anywhere, ["py"], ["src/*.c"], "docs", true);
    may_hold!(hold_glob_ancestor, [], ["src/a/**/*.c"], "src", true);
    may_hold!(hold_glob_own_dir, [], ["src/**/*.c"], "src", true);
    may_hold!(hold_glob_below, [], ["src/**/*.c"], "src/x/y", true);
    may_hold!(hold_star_below, [], ["src/*.c"], "src/x", true);
    may_hold!(hold_glob_outside, [], ["src/**/*.c"], "docs", false);
    may_hold!(hold_glob_sibling_prefix, [], ["src/**/*.c"], "src2", false);
    may_hold!(hold_literal_parent, [], ["a/b/c.toml"], "a/b", true);
    may_hold!(hold_literal_below, [], ["a/b/c.toml"], "a/b/d", false);
    may_hold!(hold_literal_root_file, [], ["pyproject.toml"], "py", false);
    may_hold!(hold_leading_glob, [], ["**/*.c", "src/*.h"], "docs", true);
    may_hold!(hold_leading_dot, [], ["./src/*.c"], "docs", true);
    may_hold!(hold_brace, [], ["{src,lib}/*.c"], "docs", true);
    may_hold!(hold_two_globs, [], ["src/*.c", "lib/**/*.h"], "lib/x", true);

    #[test]
    fn bad_glob_is_named() {
        let err = Filter::new(&FilterSpec {
            include: vec!["src/[".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("src/["), "{err}");
    }

    #[test]
    fn globs_are_checked_as_compiling_them_would() {
        let spec = |include: &str, exclude: &str| FilterSpec {
            include: vec![include.into()],
            exclude: vec![exclude.into()],
            ..Default::default()
        };
        for (bad, named) in [(spec("src/[", "x"), "src/["), (spec("a", "b/[c"), "b/[c")] {
            let checked = bad.check_globs().unwrap_err().to_string();
            let compiled = Filter::new(&bad).unwrap_err().to_string();
            assert_eq!(checked, compiled);
            assert!(checked.contains(named), "{checked}");
        }
        let good = spec("src/**/*.py", "build/");
        assert!(good.check_globs().is_ok() && Filter::new(&good).is_ok());
    }
}
