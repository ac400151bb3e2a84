//! No loops: which changes may trigger a task again. The input sets already leave out a
//! task's declared outputs, `.git/`, `.zccache/` and the state files; what is left is a
//! task that writes inside its own input set while it runs. Changes are judged by the
//! changed file's mtime, not by when their event arrived (events take a moment): a file
//! written while the task's command ran is a suspect, and makes one more round, as a
//! user's edit during the run must. When the same path is written again during that next
//! run, the task wrote it: a warning names it once and it never triggers that task again.
//! A file written before the task's check began is one the check already saw.

use std::collections::BTreeSet;
use std::time::SystemTime;

/// What becomes of one changed path of a task's set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The task's next round must see it.
    Pending,
    /// Its last check began after this arrived: already seen.
    Seen,
    /// The task writes this path while it runs: from now on ignored (warn now).
    OwnWrite,
    /// An own write found earlier.
    Ignored,
}

/// A task's last run in a round.
#[derive(Debug, Default)]
struct LastRun {
    window: Option<(SystemTime, SystemTime)>,
    ran_command: bool,
    /// Paths changed during this run.
    suspects: BTreeSet<String>,
    /// Paths changed during the run before (when its command ran then too).
    earlier: BTreeSet<String>,
}

/// Loop prevention for every task of a watch.
#[derive(Debug)]
pub struct Loops {
    runs: Vec<LastRun>,
    ignored: Vec<BTreeSet<String>>,
}

impl Loops {
    /// For `tasks` tasks, none run yet.
    pub fn new(tasks: usize) -> Self {
        Loops {
            runs: (0..tasks).map(|_| LastRun::default()).collect(),
            ignored: vec![BTreeSet::new(); tasks],
        }
    }

    /// Task `i` was checked (and, with `ran_command`, ran) in `window` of a round.
    pub fn ran(&mut self, i: usize, window: (SystemTime, SystemTime), ran_command: bool) {
        let run = &mut self.runs[i];
        run.earlier = match run.ran_command && ran_command {
            true => std::mem::take(&mut run.suspects),
            false => BTreeSet::new(),
        };
        run.suspects.clear();
        run.window = Some(window);
        run.ran_command = ran_command;
    }

    /// Judges a change of `path` in task `i`'s set, the file now written `at` (its mtime;
    /// `None`: it is gone).
    pub fn judge(&mut self, i: usize, path: &str, at: Option<SystemTime>) -> Verdict {
        if self.ignored[i].contains(path) {
            return Verdict::Ignored;
        }
        let run = &mut self.runs[i];
        let (Some((began, ended)), Some(at)) = (run.window, at) else {
            return Verdict::Pending;
        };
        if at < began {
            return Verdict::Seen;
        }
        if !run.ran_command || at > ended {
            return Verdict::Pending;
        }
        if run.earlier.contains(path) {
            self.ignored[i].insert(path.to_string());
            return Verdict::OwnWrite;
        }
        run.suspects.insert(path.to_string());
        Verdict::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn window(from: SystemTime) -> (SystemTime, SystemTime) {
        (from, from + Duration::from_secs(1))
    }

    #[test]
    fn a_path_written_during_two_runs_in_a_row_is_the_tasks_own() {
        let t0 = SystemTime::now();
        let mut loops = Loops::new(1);
        loops.ran(0, window(t0), true);
        let during = t0 + Duration::from_millis(500);
        assert_eq!(loops.judge(0, "stamp", Some(during)), Verdict::Pending);
        let t1 = t0 + Duration::from_secs(5);
        loops.ran(0, window(t1), true);
        let during = t1 + Duration::from_millis(500);
        assert_eq!(loops.judge(0, "stamp", Some(during)), Verdict::OwnWrite);
        assert_eq!(
            loops.judge(0, "stamp", Some(t1 + Duration::from_secs(60))),
            Verdict::Ignored
        );
    }

    #[test]
    fn an_edit_during_one_run_only_makes_one_more_round() {
        let t0 = SystemTime::now();
        let mut loops = Loops::new(1);
        loops.ran(0, window(t0), true);
        assert_eq!(
            loops.judge(0, "a", Some(t0 + Duration::from_millis(10))),
            Verdict::Pending
        );
        let t1 = t0 + Duration::from_secs(5);
        loops.ran(0, window(t1), true);
        // After the run (and its late events): an edit of the user's.
        assert_eq!(
            loops.judge(0, "a", Some(t1 + Duration::from_secs(9))),
            Verdict::Pending
        );
    }

    #[test]
    fn changes_before_the_check_were_seen_and_a_skip_writes_nothing() {
        let t0 = SystemTime::now() + Duration::from_secs(1);
        let mut loops = Loops::new(2);
        loops.ran(0, window(t0), false);
        assert_eq!(
            loops.judge(0, "a", Some(t0 - Duration::from_millis(1))),
            Verdict::Seen
        );
        assert_eq!(
            loops.judge(0, "a", Some(t0 + Duration::from_millis(1))),
            Verdict::Pending
        );
        assert_eq!(loops.judge(1, "a", Some(t0)), Verdict::Pending);
    }
}
