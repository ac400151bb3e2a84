//! Which files are zccache's own state, by name alone, so that no task's state is ever an
//! input of another task (or of itself), wherever `--cache` puts it.
//!
//! A state file `F` has companions beside it, all named `F.<word>` or `F.<word>.<more>`
//! ([`WORDS`]: `F.pending`, `F.log`, `F.run`, `F.replay/`, `F.blobs`, `F.files`, `F.task.lock`,
//! temporaries `F.tmp.*`, ...). The first thing any writer of `F` creates is its lock, `F.zccache-lock`
//! ([`MARKER`]), a name no other tool makes; it is never removed. So the rule a walk applies
//! is: a file named `X.zccache-lock` makes `X` and every companion name of `X` in the same
//! directory (and everything below `X.replay/`) no input. Finding the markers costs one
//! suffix comparison per file; nothing is read or stat'ed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The suffix of the lock that marks `F` as a zccache state file.
pub const MARKER: &str = ".zccache-lock";

/// The words that make `F.<word>` a companion of `F` (`lock` is the lock's name before it
/// was [`MARKER`]; `task` the runner's one-run-at-a-time lock, `F.task.lock`; a directory
/// companion, `replay`, takes everything below it).
const WORDS: [&str; 10] = [
    "zccache-lock",
    "lock",
    "task",
    "pending",
    "log",
    "run",
    "replay",
    "blobs",
    "files",
    "tmp",
];

/// True when a name that starts with a state file's name, followed by `rest`, is that file
/// or one of its companions (or lies below a companion directory, when `rest` holds a `/`).
pub fn is_companion_rest(rest: &[u8]) -> bool {
    let Some(tail) = rest.strip_prefix(b".") else {
        return rest.is_empty();
    };
    WORDS.iter().any(|word| {
        tail.strip_prefix(word.as_bytes())
            .is_some_and(|after| matches!(after.first(), None | Some(b'.' | b'/')))
    })
}

/// The state file a marker names (`lint.json.zccache-lock` → `lint.json`), if `name` is one.
pub fn marked_state(name: &[u8]) -> Option<&[u8]> {
    name.strip_suffix(MARKER.as_bytes())
        .filter(|state| !state.is_empty())
}

/// The path (relative to the root, encoded) of the state file that the entry `name` of the
/// directory `dir` (relative, encoded; `""` for the root) names, if it is a marker.
pub fn marked_state_at(dir: &str, name: &[u8]) -> Option<String> {
    let state = crate::relpath::encode(marked_state(name)?);
    Some(crate::relpath::child(dir, state))
}

/// Removes from `files` (sorted by path) and `dirs` every state file that `states` (paths
/// of marked state files, relative to the same root) names, with its companions.
pub fn drop_marked<T>(
    files: &mut Vec<T>,
    path_of: impl Fn(&T) -> &str,
    dirs: &mut Vec<String>,
    states: &[String],
) {
    if states.is_empty() {
        return;
    }
    let mut dropped = vec![false; files.len()];
    for state in states {
        let start = files.partition_point(|f| path_of(f) < state.as_str());
        for (i, file) in files.iter().enumerate().skip(start) {
            let Some(rest) = path_of(file).strip_prefix(state.as_str()) else {
                break;
            };
            dropped[i] |= is_companion_rest(rest.as_bytes());
        }
    }
    let mut flags = dropped.into_iter();
    files.retain(|_| !flags.next().unwrap_or(false));
    dirs.retain(|dir| {
        !states.iter().any(|state| {
            dir.strip_prefix(state.as_str())
                .is_some_and(|rest| is_companion_rest(rest.as_bytes()))
        })
    });
}

/// True when `start` (a directory below `root` where a walk begins) lies inside a companion
/// directory of a marked state file (`X.replay/`), where the walk cannot see the marker.
pub fn inside_marked_dir(root: &Path, start: &Path) -> bool {
    let Ok(rel) = start.strip_prefix(root) else {
        return false;
    };
    let mut parent = root.to_path_buf();
    for part in rel.iter() {
        let name = part.as_bytes();
        if let Some(state) = name.strip_suffix(b".replay")
            && !state.is_empty()
        {
            let mut marker = state.to_vec();
            marker.extend_from_slice(MARKER.as_bytes());
            if std::fs::symlink_metadata(parent.join(OsStr::from_bytes(&marker))).is_ok() {
                return true;
            }
        }
        parent.push(part);
    }
    false
}

/// One task's own state file and companions, left out of its walk (and of its watcher's
/// events) even before its marker exists.
#[derive(Debug, Clone)]
pub struct OwnState {
    dir: PathBuf,
    name: Vec<u8>,
}

impl OwnState {
    /// The state file at `file` (an absolute path) and its companions.
    pub fn of(file: &Path) -> Self {
        OwnState {
            dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
            name: file
                .file_name()
                .map(|n| n.as_bytes().to_vec())
                .unwrap_or_default(),
        }
    }

    /// True when `path` (named `name`) is this state file or one of its companions.
    pub fn contains(&self, path: &Path, name: &OsStr) -> bool {
        name.as_bytes()
            .strip_prefix(self.name.as_slice())
            .is_some_and(is_companion_rest)
            && path.parent() == Some(self.dir.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! companion {
        ($name:ident, $rest:expr, $want:expr) => {
            #[test]
            fn $name() {
                assert_eq!(is_companion_rest($rest.as_bytes()), $want);
            }
        };
    }

    companion!(the_file_itself, "", true);
    companion!(lock, ".zccache-lock", true);
    companion!(old_lock, ".lock", true);
    companion!(pending, ".pending", true);
    companion!(ledger, ".log", true);
    companion!(record, ".run", true);
    companion!(record_temp, ".run.tmp.12.3", true);
    companion!(own_temp, ".tmp.12.3", true);
    companion!(replay_dir, ".replay", true);
    companion!(below_replay, ".replay/ab.stdout", true);
    companion!(blobs, ".blobs", true);
    companion!(task_lock, ".task.lock", true);
    companion!(per_file_record, ".files", true);
    companion!(per_file_blobs, ".files.blobs", true);
    companion!(other_suffix, ".rs", false);
    companion!(longer_word, ".logs", false);
    companion!(no_dot, "x", false);
    companion!(bare_dot, ".", false);

    #[test]
    fn markers_name_their_state() {
        assert_eq!(
            marked_state(b"lint.json.zccache-lock"),
            Some(&b"lint.json"[..])
        );
        assert_eq!(marked_state(b".zccache-lock"), None);
        assert_eq!(marked_state(b"Cargo.lock"), None);
        let at = |dir, name: &[u8]| marked_state_at(dir, name);
        assert_eq!(at("", b"t.json.zccache-lock").as_deref(), Some("t.json"));
        assert_eq!(
            at("a/b", b"t.json.zccache-lock").as_deref(),
            Some("a/b/t.json")
        );
        assert_eq!(
            at("a", b"x\xff.zccache-lock").as_deref(),
            Some("a/x\u{0}FF")
        );
        assert_eq!(at("a", b"t.json"), None);
    }

    #[test]
    fn marked_state_and_companions_are_dropped() {
        let mut files: Vec<String> = [
            "a.rs",
            "c/lint.json",
            "c/lint.json.log",
            "c/lint.json.replay/k.stdout",
            "c/lint.json.run",
            "c/lint.json5",
            "c/lint.jsonx.log",
            "d.rs",
        ]
        .map(String::from)
        .to_vec();
        let mut dirs = vec!["".into(), "c".into(), "c/lint.json.replay".into()];
        drop_marked(&mut files, |f| f, &mut dirs, &["c/lint.json".into()]);
        assert_eq!(files, ["a.rs", "c/lint.json5", "c/lint.jsonx.log", "d.rs"]);
        assert_eq!(dirs, ["", "c"]);
    }

    #[test]
    fn own_state_is_exact() {
        let own = OwnState::of(Path::new("/r/.cache/build"));
        let has = |p: &str| {
            let p = Path::new(p);
            own.contains(p, p.file_name().unwrap())
        };
        assert!(has("/r/.cache/build"));
        assert!(has("/r/.cache/build.zccache-lock"));
        assert!(has("/r/.cache/build.run"));
        assert!(
            !has("/r/.cache/build.rs"),
            "another file sharing the prefix"
        );
        assert!(!has("/r/build.run"), "another directory");
    }
}
