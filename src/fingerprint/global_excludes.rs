//! git's global excludes file, as the `ignore` crate finds it (`build_global`), without its
//! cost when no git config names one: `ignore` compiles a regex to look for
//! `core.excludesFile` in each config it reads, a third of a millisecond in every process
//! that walks, while almost no config sets it. Here the configs are read and the regex is
//! left to `ignore` only when one of them holds the word; else the answer is the default
//! file (`$XDG_CONFIG_HOME/git/ignore`), the one `ignore` would fall back to.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder, gitconfig_excludes_path};

/// The rules of git's global excludes file, matched from `cwd`; empty when there is none
/// (or it does not parse, as with `build_global`).
pub fn rules(cwd: &Path) -> Gitignore {
    // Read in `ignore`'s order, and no further than the first that may name the file (as
    // `ignore` reads no further than the one that does: a later one may be a FIFO).
    let named = configs().any(|path| std::fs::read(path).is_ok_and(|c| names_excludes_file(&c)));
    let path = match named {
        true => gitconfig_excludes_path(),
        false => default_file(),
    };
    let Some(path) = path.filter(|p| p.is_file()) else {
        return Gitignore::empty();
    };
    let mut builder = GitignoreBuilder::new(cwd);
    builder.add(path);
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

/// The files that decide the global rules: each git config read for the setting, and the
/// excludes file itself where one is named or the default one.
pub fn deciding_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = configs().collect();
    files.extend(gitconfig_excludes_path());
    files.extend(default_file());
    files
}

/// Each git config `ignore` reads for the setting, in its order.
fn configs() -> impl Iterator<Item = PathBuf> {
    let home = std::env::home_dir();
    let global = std::env::var_os("GIT_CONFIG_GLOBAL")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let system = std::env::var_os("GIT_CONFIG_SYSTEM")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from("/etc/gitconfig"), PathBuf::from);
    [
        global,
        home.map(|h| h.join(".gitconfig")),
        config_home().map(|c| c.join("git/config")),
        Some(system),
    ]
    .into_iter()
    .flatten()
}

/// Whether a config's text holds `excludesfile` in any case: the regex `ignore` runs
/// cannot match where it does not.
fn names_excludes_file(config: &[u8]) -> bool {
    const WORD: &[u8] = b"excludesfile";
    config
        .windows(WORD.len())
        .any(|w| w.eq_ignore_ascii_case(WORD))
}

/// `$XDG_CONFIG_HOME/git/ignore`, or `~/.config/git/ignore`.
fn default_file() -> Option<PathBuf> {
    config_home().map(|c| c.join("git/ignore"))
}

/// `$XDG_CONFIG_HOME` when set and not empty, else `~/.config`.
fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|h| h.join(".config")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_looked_for_in_any_case() {
        assert!(names_excludes_file(b"[core]\n\texcludesFile = ~/x\n"));
        assert!(names_excludes_file(b"[core]\nEXCLUDESFILE=/x"));
        assert!(!names_excludes_file(b"[core]\nexcludeFile = /x\n"));
        assert!(!names_excludes_file(b""));
    }
}
