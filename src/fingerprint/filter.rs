//! Which paths under a root belong to the input set: `--ext`, `--include` and `--exclude`,
//! plus the entries zccache always leaves out (`.git`, its own `.zccache` state, its
//! temporaries).

use std::collections::HashSet;

use globset::{Glob, GlobSet, GlobSetBuilder};

use super::FpError;
use crate::paths::TEMP_PREFIX;

/// Directory or file names never part of an input set.
const ALWAYS_EXCLUDED: [&str; 2] = [".git", ".zccache"];

/// The filters as the user gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FilterSpec {
    /// Extensions without the dot (`rs`); a leading dot is tolerated.
    pub extensions: Vec<String>,
    /// Globs relative to the root; a file matching any of them is selected.
    pub include: Vec<String>,
    /// Bare names (any entry of that name, anywhere) or globs relative to the root.
    pub exclude: Vec<String>,
}

/// A compiled [`FilterSpec`].
#[derive(Debug)]
pub struct Filter {
    extensions: HashSet<String>,
    include: Option<GlobSet>,
    exclude_names: HashSet<String>,
    exclude_globs: GlobSet,
}

impl Filter {
    /// Compiles the spec; a glob that does not parse is an error naming it.
    pub fn new(spec: &FilterSpec) -> Result<Self, FpError> {
        let extensions = spec
            .extensions
            .iter()
            .map(|e| e.trim_start_matches('.').to_string())
            .collect();
        let include = if spec.include.is_empty() {
            None
        } else {
            Some(build_globs(spec.include.iter().map(String::as_str))?)
        };
        let mut exclude_names: HashSet<String> =
            ALWAYS_EXCLUDED.iter().map(|s| s.to_string()).collect();
        let mut exclude_globs = Vec::new();
        for pattern in &spec.exclude {
            let pattern = pattern.trim_end_matches('/');
            if is_bare_name(pattern) {
                exclude_names.insert(pattern.to_string());
            } else {
                exclude_globs.push(pattern.trim_start_matches("./"));
            }
        }
        Ok(Filter {
            extensions,
            include,
            exclude_names,
            exclude_globs: build_globs(exclude_globs.into_iter())?,
        })
    }

    /// True when the entry (file or directory) at `rel`, named `name`, is left out
    /// together with everything below it.
    pub fn excludes(&self, rel: &str, name: &str) -> bool {
        self.exclude_names.contains(name)
            || name.starts_with(TEMP_PREFIX)
            || self.exclude_globs.is_match(rel)
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

fn is_bare_name(pattern: &str) -> bool {
    !pattern.is_empty() && !pattern.contains(['/', '*', '?', '[', '{'])
}

fn build_globs<'a>(patterns: impl Iterator<Item = &'a str>) -> Result<GlobSet, FpError> {
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|e| FpError::BadGlob {
            pattern: pattern.to_string(),
            message: e.kind().to_string(),
        })?;
        builder.add(glob);
    }
    builder.build().map_err(|e| FpError::BadGlob {
        pattern: e.glob().unwrap_or_default().to_string(),
        message: e.kind().to_string(),
    })
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

    excludes!(always_git, [], ".git", true);
    excludes!(always_state, [], "sub/.zccache", true);
    excludes!(bare_name_anywhere, ["target"], "a/b/target", true);
    excludes!(bare_name_trailing_slash, ["target/"], "target", true);
    excludes!(bare_name_other, ["target"], "a/targets", false);
    excludes!(glob_relative, ["docs/*.md"], "docs/a.md", true);
    excludes!(glob_relative_miss, ["docs/*.md"], "src/a.md", false);
    excludes!(path_literal, ["src/gen"], "src/gen", true);
    excludes!(dot_slash_prefix, ["./src/gen"], "src/gen", true);

    #[test]
    fn bad_glob_is_named() {
        let err = Filter::new(&FilterSpec {
            include: vec!["src/[".into()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("src/["), "{err}");
    }
}
