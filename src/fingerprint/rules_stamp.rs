//! The ignore rules a watch cannot see change: files outside the watched tree (the
//! `.gitignore` of a directory above the root, git's global excludes and the configs that
//! name it) or inside `.git/`, which is never watched (`info/exclude`). Their stat stamps
//! are taken with a full walk; a check that finds one moved walks the whole root again
//! instead of trusting the watch (an edit of `info/exclude` that lets a file into the set
//! would go unseen otherwise).

use std::path::{Path, PathBuf};

use super::scan::Stat;
use super::{global_excludes, own_walk};

/// The stamps of the rule files a watch of a root cannot see.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RulesStamp {
    files: Vec<(PathBuf, Option<Stat>)>,
    /// A rule file changed while the walk that took these stamps ran: moved already.
    stale: bool,
}

impl RulesStamp {
    /// The stamps for `root`, with the repositories whose `.git` lies in one of the
    /// directories `dirs` (relative to `root`, as a walk gives them) besides `root`'s own.
    pub fn of<'a>(root: &Path, dirs: impl Iterator<Item = &'a str>) -> Self {
        let nested: Vec<PathBuf> = dirs
            .filter(|d| !d.is_empty())
            .map(|d| crate::relpath::join(root, d))
            .filter(|d| std::fs::symlink_metadata(d.join(".git")).is_ok())
            .collect();
        let mut files = own_walk::rule_files_outside(root, nested.iter().map(PathBuf::as_path));
        files.extend(global_excludes::deciding_files());
        let files = files
            .into_iter()
            .map(|f| {
                let was = stamp(&f);
                (f, was)
            })
            .collect();
        RulesStamp {
            files,
            stale: false,
        }
    }

    /// These stamps (taken after a walk), moved already when a file they share with
    /// `before` (taken before it) changed in between: the walk may have read either rules.
    pub fn since(mut self, before: &RulesStamp) -> Self {
        self.stale = before.files.iter().any(|(file, was)| {
            self.files
                .iter()
                .any(|(same, now)| same == file && now != was)
        });
        self
    }

    /// Whether a rule file changed, appeared or went since the stamps were taken.
    pub fn moved(&self) -> bool {
        self.stale || self.files.iter().any(|(file, was)| stamp(file) != *was)
    }
}

/// `file`'s stamp, following a link (a rule file read through one changes with its target);
/// `None` when there is none.
fn stamp(file: &Path) -> Option<Stat> {
    std::fs::metadata(file).ok().map(|m| Stat::of(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edit_of_info_exclude_moves_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".git/info")).unwrap();
        std::fs::create_dir_all(root.join("sub/.git/info")).unwrap();
        let stamp = RulesStamp::of(root, ["", "sub"].into_iter());
        assert!(!stamp.moved());
        std::fs::write(root.join("sub/.git/info/exclude"), "x\n").unwrap();
        assert!(stamp.moved());
        let stamp = RulesStamp::of(root, ["", "sub"].into_iter());
        std::fs::write(root.join(".git/info/exclude"), "gen.txt\n").unwrap();
        assert!(stamp.moved());
        // Changed between the stamps around a walk: moved whatever comes after.
        let after = RulesStamp::of(root, ["", "sub"].into_iter());
        assert!(!after.clone().since(&after).moved());
        assert!(after.since(&stamp).moved());
    }
}
