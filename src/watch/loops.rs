//! No loops: which changes may trigger a task again. The input sets already leave out a
//! task's declared outputs, `.git/`, `.zccache/` and the state files; what is left is a
//! task that writes inside its own input set while it runs. Changes are judged by when the
//! file last changed (the later of its mtime and ctime), not by when their event arrived
//! (events take a moment): a file
//! written while the task's command ran is a suspect, and makes one more round, as a
//! user's edit during the run must. When the same path is written again during that next
//! run, the task wrote it: a warning names it once, and its writes while the task runs never
//! trigger it again (a write while the task is idle is somebody else's edit, and does).
//! A file written before the task's check began is one the check already saw.
//!
//! A file's time comes from the kernel's coarse clock, up to a tick behind the moment it was
//! written. So a check's start is read on that clock (a file stamped before it was written
//! before it, and seen); and a round ends (its "watching" line) only once a file written
//! from then on is stamped after the round's runs, so that an edit made right after it is
//! never taken for the task's own write (and ignored from then on).

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

/// How long the coarse clock takes to pass a moment at most (its tick, 1-10 ms, with room).
const STAMP_LAG: Duration = Duration::from_millis(20);

/// Waits until a file written from now on is stamped after `ended` (a tick at most).
pub fn stamp_after(ended: SystemTime) {
    let deadline = Instant::now() + STAMP_LAG;
    while crate::os::file_clock_now() <= ended && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

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

    /// Task `i` was checked (and, with `ran_command`, ran) in `window` of a round (its start
    /// on the clock file times come from, `os::file_clock_now`).
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
        let run = &mut self.runs[i];
        if self.ignored[i].contains(path) {
            // The task writes it while it runs; written after its last run ended, it is
            // somebody else's edit (a user saving while a test suite runs, twice).
            let after_the_run =
                matches!((run.window, at), (Some((_, ended)), Some(at)) if at > ended);
            return match after_the_run {
                true => Verdict::Pending,
                false => Verdict::Ignored,
            };
        }
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
        let t2 = t1 + Duration::from_secs(5);
        loops.ran(0, window(t2), true);
        let during = t2 + Duration::from_millis(500);
        assert_eq!(loops.judge(0, "stamp", Some(during)), Verdict::Ignored);
        // Written while the task is idle: somebody else's edit, which it must see.
        assert_eq!(
            loops.judge(0, "stamp", Some(t2 + Duration::from_secs(60))),
            Verdict::Pending
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

    #[test]
    fn a_file_written_after_a_check_began_is_stamped_at_or_after_its_start() {
        let began = crate::os::file_clock_now();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edited");
        std::fs::write(&file, "x").unwrap();
        let stamped = std::fs::metadata(&file).unwrap().modified().unwrap();
        assert!(stamped >= began, "{stamped:?} {began:?}");
        let mut loops = Loops::new(1);
        loops.ran(0, (began, SystemTime::now()), false);
        assert_eq!(loops.judge(0, "edited", Some(stamped)), Verdict::Pending);
    }

    #[test]
    fn a_file_written_once_a_round_ended_is_stamped_after_it() {
        let ended = SystemTime::now();
        stamp_after(ended);
        assert!(crate::os::file_clock_now() > ended);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("edited");
        std::fs::write(&file, "x").unwrap();
        let stamped = std::fs::metadata(&file).unwrap().modified().unwrap();
        assert!(stamped > ended, "{stamped:?} {ended:?}");
    }
}
