//! Per-file tasks (`--files GLOB`, `files = [...]`): lint only what has not passed.
//!
//! The task's key is made as any task's (command line, tool, `--env` values, and its shared
//! inputs: the input set less the per-file files), through the daemon when one runs. Each
//! per-file file then has a key of its own: the task's key, its path relative to the root
//! and its content. The files whose key has not passed are given to the command, in batches;
//! a batch that exits 0 passes its files (with the content read before it ran, if the file
//! still holds it), a failing batch passes none and the task fails with its status. So a
//! shared input's edit re-opens every file, a file's edit only that file, a failed file is
//! run again until it passes, and a deleted file is forgotten.
//!
//! Through a running daemon, one round trip answers the task's check and hands over the
//! per-file set as the daemon watches it (nothing is walked here); without one (a first
//! run), the task is judged in-process while a daemon starts in the background, and with no
//! record at all the command starts at once on every file (see `deferred`).

mod batches;
mod codec;
mod deferred;
mod passing;
mod report;
mod run;
mod select;
mod settle;
mod share;
mod staged;
mod state;
mod whole;

use std::time::Instant;

use super::check::{self, Recorder};
use super::outcome::{Ended, Outcome};
use super::record::RunFiles;
use super::spec::{PerFile, RunSpec};
use super::task_lock::TaskLock;
use super::tool::PlainTools;
use super::{ERROR_EXIT, WOULD_RUN, key_parts};
use crate::cli::RunArgs;
use crate::daemon::lifecycle::daemon_disabled;
use crate::fingerprint::{Decision, Digest, now_ns};
use crate::ui::Ui;
use deferred::Deferred;
use passing::{keep, run_and_mark};
use select::{Current, Unpassed, Why};
use state::FilesRecord;
use whole::{Asked, DaemonStart};

/// What the check of a per-file task found.
struct Judged {
    /// The shared check's decision (its key is the task's key).
    decision: Decision,
    /// How to record the shared check's outcome.
    recorder: Recorder,
    /// The per-file record as loaded.
    record: FilesRecord,
    /// The per-file set now.
    current: Current,
    /// Its files that have not passed.
    unpassed: Vec<Unpassed>,
    /// When the per-file set was read, ns since the epoch.
    scanned_at: i64,
    /// How many per-file files there are.
    total: usize,
    /// Skipped on the whole set's key (`whole`): nothing per file was read, nor is written.
    whole_skip: bool,
    /// With `--share`: the task's portable key, under which its files' passes are published.
    portable: Option<String>,
    /// How many files another machine or checkout passed (not run here).
    elsewhere: usize,
    /// The per-file set's key, when the daemon made it.
    set_key: Option<Digest>,
    /// With no record: the files whose digests are read after the command ran.
    deferred: Option<Deferred>,
    /// Whether every file that ran passed (set once the batches were marked).
    ran_all_passed: Option<bool>,
    /// A daemon this run starts for the runs after it.
    daemon: DaemonStart,
}

pub use settle::{exit_follows_the_run, serve as settle_files};

/// Checks and runs the per-file task `spec`, holding its task lock `lock` (passed on to the
/// process that writes a first run's record).
pub(super) fn run_task(
    ui: &Ui,
    spec: &RunSpec,
    (per_file, args): (&PerFile, &RunArgs),
    started: Instant,
    mut lock: Option<TaskLock>,
) -> Ended {
    if lock.is_some() {
        settle::show_last_errors(ui, &spec.cache_file);
    }
    let mut judged = match judge(ui, spec, per_file, args) {
        Ok(judged) => judged,
        Err(why) => {
            ui.error(format_args!("cannot fingerprint the per-file task ({why})"));
            return Ended {
                outcome: Outcome::Unknown,
                status: ERROR_EXIT,
            };
        }
    };
    let check_ms = started.elapsed().as_secs_f64() * 1000.0;
    report::decision(ui, args, spec, &judged, check_ms);
    let (ended, statuses) = match (judged.unpassed.is_empty(), args.dry_run) {
        (true, true) => (ended(Outcome::WouldSkip, 0), None),
        (false, true) => (ended(Outcome::WouldRun, WOULD_RUN.into()), None),
        (true, false) => {
            keep(ui, spec, &mut judged, true);
            (ended(Outcome::Skipped, 0), None)
        }
        (false, false) => {
            let (code, statuses) =
                run_and_mark(ui, spec, (per_file, args, started), &mut judged, &mut lock);
            let outcome = if code == 0 {
                Outcome::Ran
            } else {
                Outcome::Failed
            };
            (ended(outcome, code), Some(statuses))
        }
    };
    // A run wrote its ledger line before its record (see `passing`).
    if !args.dry_run && statuses.is_none() {
        report::ledger(ui, spec, &judged, started, None);
    }
    if args.json {
        let total_ms = started.elapsed().as_secs_f64() * 1000.0;
        report::json(ui, args, spec, &judged, (check_ms, total_ms), ended);
    }
    crate::trace_times::mark("report");
    // A daemon this process starts is up before it exits: none is left starting unseen (a
    // first run's is started by its record writer, and `zccache stop` waits for it).
    if judged.daemon.join() {
        crate::trace_times::mark("daemon start");
    }
    crate::trace_times::report();
    ended
}

/// Whether `spec` would skip now (every file passed), deciding quietly and writing
/// nothing (`None`: unknown).
pub(super) fn would_skip(spec: &RunSpec, per_file: &PerFile, args: &RunArgs) -> Option<bool> {
    let judged = judge(&Ui::new(true), spec, per_file, args).ok()?;
    Some(judged.unpassed.is_empty())
}

fn ended(outcome: Outcome, status: i32) -> Ended {
    Ended {
        outcome,
        status: exit_byte(status),
    }
}

/// The exit status zccache gives for a task's status `status` (1 for one out of range).
fn exit_byte(status: i32) -> u8 {
    u8::try_from(status).unwrap_or(1)
}

/// The task's key (the shared check), the per-file set and its unpassed files. Through a
/// running daemon, the whole set is asked first: when every file passed as they are now,
/// nothing per file is read; otherwise the daemon's table of the set is judged. With no
/// daemon running, a run starts one in the background (a first run, once its record is
/// written) and judges in-process.
fn judge(ui: &Ui, spec: &RunSpec, per_file: &PerFile, args: &RunArgs) -> Result<Judged, String> {
    let mut run_record = RunFiles::new(&spec.cache_file).load();
    let parts = key_parts(spec, &mut run_record, &mut PlainTools::default())?;
    crate::trace_times::mark("key");
    let Asking {
        mut asked,
        loaded,
        use_daemon,
        start_daemon,
        skip,
    } = ask_daemon(spec, per_file, args, &parts);
    if let Some((shared, counts)) = skip {
        return Ok(whole_skip(ui, shared, counts));
    }
    let defer = loaded.is_none() && asked.table.is_none();
    let defer = defer && !(spec.share || spec.staged || args.dry_run);
    let daemon = match (start_daemon, defer) {
        (false, _) => DaemonStart::None,
        (true, true) => DaemonStart::AfterRecord,
        (true, false) => DaemonStart::now(),
    };
    let answered = asked.shared.take();
    // With no record, the per-file set is walked while the shared inputs are checked, both
    // on the thread pool the walk uses anyway (a thread of their own cost a start, and on two
    // CPUs one more thread to run beside the pool's).
    let check = || check::check(ui, spec, parts, (args.dry_run, use_daemon), answered);
    let (checked, walked) = match defer {
        true => {
            let walk = || {
                let walk = std::panic::AssertUnwindSafe(|| {
                    deferred::current(spec, per_file, why_all(args))
                });
                std::panic::catch_unwind(walk).unwrap_or_else(|_| Err("walk panicked".into()))
            };
            let (walked, checked) = rayon::join(walk, check);
            (checked, Some(walked))
        }
        false => (check(), None),
    };
    let (decision, recorder) = checked?;
    crate::trace_times::mark("check");
    let portable = match spec.share {
        true => shared_key(ui, spec, &decision, &run_record),
        false => None,
    };
    let record = loaded.unwrap_or_default();
    let set = match walked {
        Some(walked) => JudgedSet::deferred(walked?),
        None => judge_set(spec, per_file, args, (&record, decision.key), asked)?,
    };
    crate::trace_times::mark("set");
    let mut judged = Judged {
        decision,
        recorder,
        record,
        total: set.current.entries.len(),
        current: set.current,
        unpassed: set.unpassed,
        scanned_at: set.scanned_at,
        set_key: set.set_key,
        whole_skip: false,
        portable,
        elsewhere: 0,
        deferred: set.deferred,
        ran_all_passed: None,
        daemon,
    };
    if !args.force {
        take_shared(ui, &mut judged);
    }
    Ok(judged)
}

/// What asking a running daemon first gave.
struct Asking {
    /// Its answers (none without a daemon).
    asked: Asked,
    /// The per-file record as read (beside the daemon's answer, when one runs): read once,
    /// whichever way the run goes.
    loaded: Option<FilesRecord>,
    /// Whether the task's check goes through the daemon.
    use_daemon: bool,
    /// Whether to start a daemon in the background (none was running).
    start_daemon: bool,
    /// Every file passed: the task's check and the set's counts (files, read).
    skip: Option<(check::Answer, (usize, usize))>,
}

/// Asks a running daemon for the task's check and its per-file set, reading the record
/// meanwhile; with none running, starts one in the background for the next runs (this one
/// judges in-process).
fn ask_daemon(
    spec: &RunSpec,
    per_file: &PerFile,
    args: &RunArgs,
    parts: &std::collections::BTreeMap<String, Digest>,
) -> Asking {
    let use_daemon = !args.no_daemon && !daemon_disabled();
    let mut asking = Asking {
        asked: Asked::default(),
        loaded: None,
        use_daemon,
        start_daemon: false,
        skip: None,
    };
    if !use_daemon || spec.staged || args.force {
        asking.loaded = state::load(&spec.cache_file);
        return asking;
    }
    // The record is read while the daemon answers (unused when every file passed); with
    // none running, it is read here (a thread took longer to start than the reading).
    let (mut asked, loaded) = match whole::running_daemon() {
        Some(daemon) => std::thread::scope(|scope| {
            let loading = scope.spawn(|| state::load(&spec.cache_file));
            let asked = whole::ask(daemon, spec, per_file, parts, args.dry_run);
            (asked, loading.join().ok().flatten())
        }),
        None => (Asked::default(), state::load(&spec.cache_file)),
    };
    crate::trace_times::mark("ask");
    if asked.all_passed()
        && let (Some(shared), Some(set)) = (asked.shared.take(), &asked.set)
    {
        asking.skip = Some((shared, (set.decision.files, set.decision.hashed)));
    } else if !asked.running && !args.dry_run {
        asking.start_daemon = true;
        asking.use_daemon = false;
    }
    asking.asked = asked;
    asking.loaded = loaded;
    asking
}

/// Why every file runs when all do: `--force`, or nothing passed yet.
fn why_all(args: &RunArgs) -> Why {
    match args.force {
        true => Why::Forced,
        false => Why::New,
    }
}

/// The per-file set now and its unpassed files.
struct JudgedSet {
    current: Current,
    unpassed: Vec<Unpassed>,
    /// When its digests were last verified, ns since the epoch.
    scanned_at: i64,
    /// Its key, when the daemon made it.
    set_key: Option<Digest>,
    deferred: Option<Deferred>,
}

impl JudgedSet {
    /// A set walked with no record, its digests read after the run.
    fn deferred((current, unpassed, deferred): (Current, Vec<Unpassed>, Deferred)) -> Self {
        JudgedSet {
            current,
            unpassed,
            scanned_at: deferred.scanned_at,
            set_key: None,
            deferred: Some(deferred),
        }
    }
}

/// The per-file set from the daemon's table when it sent one, else walked here (its digests
/// read through the stat table of the last walk), and its files that did not pass.
fn judge_set(
    spec: &RunSpec,
    per_file: &PerFile,
    args: &RunArgs,
    (record, task_key): (&FilesRecord, Digest),
    asked: Asked,
) -> Result<JudgedSet, String> {
    let (current, scanned_at, set_key) = match (asked.table, asked.set) {
        (Some(table), set) => {
            let current = Current {
                entries: table.entries,
                // The daemon keeps it: `F.files.table` stays for checks made here.
                table: None,
                rehashed: set.as_ref().map_or(0, |set| set.decision.hashed),
            };
            let set_key = set.map(|set| set.decision.files_key);
            (current, table.scanned_at_ns, set_key)
        }
        (None, _) => {
            let scanned_at = now_ns();
            let previous = state::load_table(&spec.cache_file);
            let current = select::current(spec, per_file, previous.as_ref(), !args.dry_run)?;
            (current, scanned_at, None)
        }
    };
    let unpassed = match args.force {
        true => select::all_unpassed(&current.entries, Why::Forced),
        false => select::unpassed(record, task_key, &current.entries),
    };
    Ok(JudgedSet {
        current,
        unpassed,
        scanned_at,
        set_key,
        deferred: None,
    })
}

/// The task's portable key for `--share` (`None`, said, when it cannot be made).
fn shared_key(
    ui: &Ui,
    spec: &RunSpec,
    decision: &Decision,
    run_record: &crate::runner::record::RunRecord,
) -> Option<String> {
    super::shared::portable_key(spec, decision, run_record)
        .inspect_err(|why| ui.warn(format_args!("cannot share the results ({why})")))
        .ok()
}

/// Passes here the unpassed files another machine or checkout passed, and runs only the
/// others.
fn take_shared(ui: &Ui, judged: &mut Judged) {
    let Some(portable) = judged.portable.as_deref() else {
        return;
    };
    if judged.unpassed.is_empty() {
        return;
    }
    let files: Vec<(&str, Digest)> = judged
        .unpassed
        .iter()
        .map(|u| (u.entry.path.as_str(), u.entry.hash))
        .collect();
    let held = share::passed_elsewhere(ui, portable, &files);
    let before = judged.unpassed.len();
    let key = judged.decision.key;
    let mut held = held.into_iter();
    let record = &mut judged.record;
    judged.unpassed.retain(|u| {
        if !held.next().unwrap_or(false) {
            return true;
        }
        record.pass(&u.entry.path, u.key_under(key), u.entry.hash);
        false
    });
    judged.elsewhere = before - judged.unpassed.len();
}

/// A skip on the whole set's key: the daemon's answer to the task's check, and how many
/// per-file files there are and how many of them it read.
fn whole_skip(ui: &Ui, shared: check::Answer, (total, hashed): (usize, usize)) -> Judged {
    let (decision, recorder) = check::from_answer(ui, shared);
    Judged {
        decision,
        recorder,
        record: FilesRecord::default(),
        current: Current {
            entries: Vec::new(),
            table: None,
            rehashed: hashed,
        },
        unpassed: Vec::new(),
        scanned_at: now_ns(),
        set_key: None,
        total,
        whole_skip: true,
        portable: None,
        elsewhere: 0,
        deferred: None,
        ran_all_passed: None,
        daemon: DaemonStart::None,
    }
}

/// The first few names of `unpassed`, for the decision line.
fn first_names(unpassed: &[Unpassed]) -> String {
    const SHOWN: usize = 3;
    let mut names: Vec<String> = unpassed
        .iter()
        .take(SHOWN)
        .map(|u| crate::quote::path(&u.entry.path).into_owned())
        .collect();
    if unpassed.len() > SHOWN {
        names.push("...".to_string());
    }
    names.join(", ")
}
