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
pub struct RulesStamp(Vec<(PathBuf, Option<Stat>)>);

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
        RulesStamp(
            files
                .into_iter()
                .map(|f| {
                    let was = stamp(&f);
                    (f, was)
                })
                .collect(),
        )
    }

    /// Whether a rule file changed, appeared or went since the stamps were taken.
    pub fn moved(&self) -> bool {
        self.0.iter().any(|(file, was)| stamp(file) != *was)
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
    }
}
