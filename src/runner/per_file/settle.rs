//! A first run's record, written after its command ended by a process of its own, so that
//! zccache returns with the command's status at once.
//!
//! With no record, every file runs (see `deferred`): what is left after the command is to
//! read the files' digests, pass those whose stamp held across the run, save the record and
//! the stat table, and record the task's check. The run hands that over to
//! `zccache settle-files`, started with the work (its spec, the check, the files with the
//! stamps taken before the command, and, once the command ended, the outcome: how each
//! file's batch ended) in an in-memory file as its standard input, and the task's lock file
//! as its standard output: it holds the lock until the record is saved, so the next run of
//! the task waits for it (silently, see `task_lock`), and it reaches no other process. It is
//! the very code that runs in-process when the hand-over cannot be made (not Linux, a spec
//! that does not encode, a spawn that fails). What it would have warned of (a record that
//! cannot be written: a full disk, say) goes to `F.files.settle-errors`, which the next run
//! of the task shows and removes.
//!
//! `zccache run -- CMD`, which exits once its run is done, starts that process while the
//! command runs (`start_early`), on the CPU the command leaves while it starts, and only
//! adds the outcome once it ended: handing the work over after the command took 0.8 ms of
//! a first run. The process (`--after PID`) waits for the run's exit before it reads the
//! work: a run killed or interrupted meanwhile wrote no outcome, and leaves no record. A
//! task graph or `watch`, which go on after a run, hand a whole work over once it ended.
//!
//! With no daemon running, this process also starts one for the next runs (before it lets
//! the lock go), off the run's time: started with the command, the daemon took CPU from it
//! (1.5-2.5 ms of a 30 ms ruff run on 2 CPUs). The run marks the start in the state directory
//! (`lifecycle::mark_start_by`) once its command ended, and `zccache stop` waits for it.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use super::Judged;
use super::deferred::Deferred;
use super::passing::record_outcome;
use super::run::Status;
use super::select::{Current, Why, all_unpassed};
use super::state::FilesRecord;
use super::whole::DaemonStart;
use crate::daemon::client::Client;
use crate::daemon::lifecycle::{self, DaemonPaths};
use crate::fingerprint::{Decision, Table, decode_table, encode_entries, read_state_file_at_most};
use crate::paths::with_suffix;
use crate::runner::check::Recorder;
use crate::runner::spec::RunSpec;
use crate::runner::task_lock::TaskLock;
use crate::ui::Ui;

/// The hidden subcommand that settles a record.
const SETTLE_COMMAND: &str = lifecycle::MARKED_STARTER;

/// The most bytes of work read (a set of a million files takes some 200 MB).
const MAX_WORK: u64 = 1 << 30;

/// How often the settling process looks whether its caller exited, where it cannot be told.
const CALLER_LOOK_AGAIN: std::time::Duration = std::time::Duration::from_millis(5);

/// Whether this process exits as soon as its run is done (`zccache run -- CMD`; a task
/// graph or `watch` goes on): a record writer it starts then waits for that exit.
static EXIT_FOLLOWS: AtomicBool = AtomicBool::new(false);

/// Says that this process exits as soon as its one run is done.
pub fn exit_follows_the_run() {
    EXIT_FOLLOWS.store(true, Ordering::Relaxed);
}

/// The longest the task's lock is kept for the daemon this process starts (a start takes
/// some milliseconds, unless another client holds the start lock).
const DAEMON_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The most bytes of the settling process's messages shown.
const MAX_SHOWN: usize = 4096;

/// The longest a settling process may take (it holds the task's lock): past it, it is
/// stopped (`SIGALRM`), the lock is free, and the next run is a first run again.
const SETTLE_LIMIT_SECS: u32 = 600;

/// The work handed over: what the record is made of, known before the command starts.
/// Its bytes are this in bincode, then the length of the per-file set and the set (every
/// file of which ran, with the stamps read before the command, and when the walk that read
/// them started) as the engine's binary table (in bincode, each digest is hex, and encoding
/// 2,000 of them took a third of a millisecond of the run), then the [`Outcome`].
#[derive(Serialize, Deserialize)]
struct Work {
    spec: RunSpec,
    decision: Decision,
    recorder: Recorder,
    /// Why they ran.
    why: Why,
    rehashed: usize,
    /// Whether to start a daemon for the next runs (none was running): here, off the
    /// run's time, where its start does not take CPU from the command.
    start_daemon: bool,
}

/// The end of the work, written once the command ended: how each file's batch ended, and
/// which files the record may vouch for. A work that has none (the run was interrupted, or
/// zccache killed) leaves no record.
#[derive(Serialize, Deserialize)]
struct Outcome {
    deferred: Deferred,
    /// How each file's batch ended.
    ended: Vec<Status>,
    succeeded: bool,
}

/// A record writer started while the command runs, by a `zccache run -- CMD` that exits
/// once its run is done: it holds the task's lock with this process, and reads its work
/// (in memory: the file here) only after this process exited, by then ended with the
/// [`Outcome`]. Its start (0.8 ms, most of it encoding the set) is off the time after the
/// command, and it takes the CPU the command leaves while it starts.
pub struct Early {
    work: File,
    pid: u32,
}

/// Starts the record writer of the first run `judged` while its command runs, sharing
/// `lock` with it; `None` where the record is to be handed over or written after the run
/// instead: a process that goes on after the run (a task graph, `watch`), a container's
/// first process, a set too large, a start that fails.
pub fn start_early(spec: &RunSpec, judged: &Judged, lock: &TaskLock) -> Option<Early> {
    if !EXIT_FOLLOWS.load(Ordering::Relaxed) || first_process().is_some() {
        return None;
    }
    let work = work_file(spec, judged).ok()?;
    let holder = lock.share().ok()?;
    let pid = start(&work, holder, &spec.cache_file, true).ok()?;
    Some(Early { work, pid })
}

/// Ends the work of the record writer `early` with how the files ended (`ended`, and
/// whether the run `succeeded`), and leaves `lock` to it; gives the lock back, with why,
/// when it cannot (the caller records in-process then; the writer, finding no outcome,
/// records nothing).
pub fn finish_early(
    early: Early,
    judged: &mut Judged,
    (ended, succeeded): (&[Status], bool),
    lock: TaskLock,
) -> Result<(), (TaskLock, String)> {
    if !crate::os::child_running(early.pid) {
        return Err((lock, "the record writer is gone".into()));
    }
    let Some(outcome) = take_outcome(judged, ended, succeeded) else {
        return Err((lock, "nothing deferred".into()));
    };
    if let Err(why) = append(&early.work, &outcome) {
        judged.deferred = Some(outcome.deferred);
        return Err((lock, why.to_string()));
    }
    passed_on(judged, &outcome.deferred, early.pid, lock);
    Ok(())
}

/// Hands the record of `judged` (a first run whose files ended as `ended`) over to a
/// `zccache settle-files` process along with `lock`, once the run ended; gives the lock
/// back, with why, when it cannot (the caller records in-process then).
pub fn hand_over(
    spec: &RunSpec,
    judged: &mut Judged,
    (ended, succeeded): (&[Status], bool),
    lock: TaskLock,
) -> Result<(), (TaskLock, String)> {
    if let Some(why) = first_process() {
        return Err((lock, why.into()));
    }
    let Some(outcome) = take_outcome(judged, ended, succeeded) else {
        return Err((lock, "nothing deferred".into()));
    };
    let started = work_file(spec, judged).and_then(|work| {
        append(&work, &outcome)?;
        start(&work, lock.share()?, &spec.cache_file, false)
    });
    match started {
        Ok(pid) => {
            passed_on(judged, &outcome.deferred, pid, lock);
            Ok(())
        }
        Err(why) => {
            judged.deferred = Some(outcome.deferred);
            Err((lock, why.to_string()))
        }
    }
}

/// The outcome of the run `judged` (its files ended as `ended`), its deferred files taken;
/// `None` when it deferred none.
fn take_outcome(judged: &mut Judged, ended: &[Status], succeeded: bool) -> Option<Outcome> {
    Some(Outcome {
        deferred: judged.deferred.take()?,
        ended: ended.to_vec(),
        succeeded,
    })
}

/// Appends `outcome` to the work in `work`, within the most the writer reads.
fn append(mut work: &File, outcome: &Outcome) -> io::Result<()> {
    let bytes = bincode::serde::encode_to_vec(outcome, bincode::config::standard())
        .map_err(io::Error::other)?;
    if work.metadata()?.len() + bytes.len() as u64 > MAX_WORK {
        return Err(io::Error::other("too much work to hand over"));
    }
    work.write_all(&bytes)
}

/// Why the record may not be left to a process of its own: a container's first process
/// (zccache, or its parent: `sh -c`, tini) exits with or right after this run, and its exit
/// ends every other, the record writer too.
fn first_process() -> Option<&'static str> {
    // SAFETY: getppid has no preconditions and touches no memory.
    let first = std::process::id() == 1 || unsafe { libc::getppid() } == 1;
    first.then_some("zccache or its parent is the first process here")
}

/// Leaves `lock` to the record writer `pid` (which starts the daemon for the next runs when
/// the run is to start one; `zccache stop` waits for that start); the files read after the
/// run (of `deferred`) are counted as read, as in-process.
fn passed_on(judged: &mut Judged, deferred: &Deferred, pid: u32, lock: TaskLock) {
    let start_daemon = matches!(judged.daemon, DaemonStart::AfterRecord);
    if start_daemon && let Ok(paths) = DaemonPaths::from_env() {
        let _ = lifecycle::mark_start_by(&paths, pid);
    }
    lock.passed_on();
    judged.daemon = DaemonStart::None;
    judged.current.rehashed += deferred.read_after();
}

/// An in-memory file holding the work of `judged` up to its outcome, its offset at its end.
fn work_file(spec: &RunSpec, judged: &Judged) -> io::Result<File> {
    let work = Work {
        spec: spec.clone(),
        decision: judged.decision.clone(),
        recorder: judged.recorder.clone(),
        why: judged.unpassed.first().map_or(Why::New, |u| u.why),
        rehashed: judged.current.rehashed,
        start_daemon: matches!(judged.daemon, DaemonStart::AfterRecord),
    };
    let table = encode_entries(judged.scanned_at, &judged.current.entries);
    let mut bytes = bincode::serde::encode_to_vec(&work, bincode::config::standard())
        .map_err(io::Error::other)?;
    bytes.extend_from_slice(&(table.len() as u64).to_le_bytes());
    if bytes.len() as u64 + table.len() as u64 > MAX_WORK {
        return Err(io::Error::other("too much work to hand over"));
    }
    let mut file = in_memory()?;
    file.write_all(&bytes)?;
    file.write_all(&table)?;
    Ok(file)
}

/// Starts `zccache settle-files` with `work` as its input, `holder` (the lock file) as its
/// output and the task's `F.files.settle-errors` (of `cache_file`) for its messages; its
/// pid. With `after_exit`, it reads its work only once this process has exited; without,
/// it is reaped in the background.
fn start(work: &File, holder: File, cache_file: &Path, after_exit: bool) -> io::Result<u32> {
    let messages = messages_file(cache_file).map_or_else(|_| Stdio::null(), Stdio::from);
    let mut command = Command::new(std::env::current_exe()?);
    command.arg(SETTLE_COMMAND);
    if after_exit {
        command.args(["--after", &std::process::id().to_string()]);
    }
    let mut child = command
        .stdin(work.try_clone()?)
        .stdout(holder)
        .stderr(messages)
        // Out of the terminal's process group: a Ctrl-C meant for what runs next does not
        // cut a record short.
        .process_group(0)
        .spawn()?;
    let pid = child.id();
    // One started for after this process's exit outlives it: nothing here is to reap.
    if !after_exit {
        std::thread::spawn(move || child.wait());
    }
    Ok(pid)
}

/// `F.files.settle-errors`, emptied, for the settling process's messages: never through a
/// symlink, never a FIFO (whose opening would wait) nor a file with other names (a hard
/// link planted there is not emptied).
fn messages_file(cache_file: &Path) -> io::Result<File> {
    let file = File::options()
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(errors_of(cache_file))?;
    let meta = file.metadata()?;
    if !meta.is_file() || std::os::unix::fs::MetadataExt::nlink(&meta) != 1 {
        return Err(io::Error::other("not a file of its own"));
    }
    file.set_len(0)?;
    Ok(file)
}

/// An empty file in memory.
#[cfg(target_os = "linux")]
fn in_memory() -> io::Result<File> {
    // SAFETY: a NUL-terminated name and valid flags; the descriptor returned is owned here.
    let fd = unsafe { libc::memfd_create(c"zccache-settle".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(File::from(unsafe {
        <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
    }))
}

#[cfg(not(target_os = "linux"))]
fn in_memory() -> io::Result<File> {
    Err(io::Error::other("no in-memory files here"))
}

/// Where the settling process's messages go: `F.files.settle-errors`.
fn errors_of(cache_file: &Path) -> PathBuf {
    with_suffix(cache_file, ".files.settle-errors")
}

/// Shows what the process that settled the last run's record said (as warnings), and
/// forgets it.
/// (Call it holding the task's lock: the file may be being written otherwise.)
pub fn show_last_errors(ui: &Ui, cache_file: &Path) {
    let path = errors_of(cache_file);
    let Ok(Some(bytes)) = read_state_file_at_most(&path, MAX_WORK) else {
        return;
    };
    let shown = &bytes[..bytes.len().min(MAX_SHOWN)];
    let text = String::from_utf8_lossy(shown);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let said = line
            .trim_start_matches("zccache: ")
            .trim_start_matches("warning: ");
        ui.warn(format_args!("the last run's record: {said}"));
    }
    if bytes.len() > MAX_SHOWN {
        let more = bytes.len() - MAX_SHOWN;
        ui.warn(format_args!(
            "the last run's record: ... ({more} more bytes)"
        ));
    }
    let _ = std::fs::remove_file(&path);
}

/// `zccache settle-files`: reads the work on standard input (with `--after PID`, once that
/// process, the run that started it, has exited), takes the task lock passed as standard
/// output, and records the run; false when it could not (said on standard error, the
/// task's messages file, before the lock is let go). The messages file is removed, the lock
/// still held, when it stayed empty.
pub fn serve(after: Option<u32>) -> bool {
    close_inherited();
    if let Some(caller) = after {
        await_exit_of(caller);
    }
    // SAFETY: alarm only arms a timer; SIGALRM's default action ends the process.
    unsafe { libc::alarm(SETTLE_LIMIT_SECS) };
    let settled = take_output()
        .map_err(|e| format!("cannot take the lock passed on: {e}"))
        .and_then(|holder| settle(&holder));
    if let Err(why) = &settled {
        say(why);
    }
    // A start the run marked for this process and that never came is not waited for.
    if let Ok(paths) = DaemonPaths::from_env() {
        lifecycle::unmark_start(&paths);
    }
    settled.is_ok()
}

/// Waits until `caller`, the run that started this process while its command ran, has
/// exited, having written the work's outcome (or not: interrupted, or killed). A caller
/// that is no longer this process's parent has exited already (its pid may be another
/// process's by now).
fn await_exit_of(caller: u32) {
    let Ok(pid) = libc::pid_t::try_from(caller) else {
        return;
    };
    // SAFETY: getppid has no preconditions.
    let parent = || unsafe { libc::getppid() };
    if parent() != pid {
        return;
    }
    // Still the parent once the descriptor is open: it names the caller, not a reused pid.
    match crate::os::pidfd(pid).filter(|_| parent() == pid) {
        Some(exited) => {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&exited);
            while crate::os::readable_within(fd, -1).is_ok_and(|ready| !ready) {}
        }
        // No pidfd (a kernel before 5.3): a child outlives its parent as another's child.
        None => {
            while parent() == pid {
                std::thread::sleep(CALLER_LOOK_AGAIN);
            }
        }
    }
}

/// Writes `zccache: error: WHY` on standard error (a failed write is not a reason to stop).
fn say(why: &str) {
    let _ = writeln!(io::stderr(), "zccache: error: {why}");
}

/// Closes every descriptor above standard error: what zccache's caller left open (a pipe
/// it waits on to end) must not stay open as long as the record takes.
fn close_inherited() {
    // SAFETY: close_range only closes descriptors; none above 2 is in use yet.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
}

/// Records the run handed over, holding the lock through `holder`; a work without its
/// outcome (the run was interrupted, or its zccache killed) records nothing.
fn settle(holder: &File) -> Result<(), String> {
    let holder = holder.try_clone().map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    // Written by the run up to its end: read from the start (a pipe, from where it is).
    io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .and_then(|mut input| {
            match input.rewind() {
                Err(err) if err.raw_os_error() != Some(libc::ESPIPE) => return Err(err),
                _ => {}
            }
            input.take(MAX_WORK).read_to_end(&mut bytes)
        })
        .map_err(|e| format!("cannot read the work: {e}"))?;
    let (work, set, outcome) = decoded(&bytes)?;
    let Some(outcome) = outcome else {
        forget_messages_if_none(&work.spec.cache_file);
        return Ok(());
    };
    let lock = TaskLock::adopt(&work.spec.cache_file, holder).map_err(|e| e.to_string())?;
    let start_daemon = work.start_daemon;
    let (spec, mut judged, ended, succeeded) = judged_of(work, set, outcome)?;
    // Up before the lock is let go, so that whoever waits for the record finds the daemon
    // started; but a start that waits (another client holds the start lock) keeps the task
    // waiting no longer than `DAEMON_UP_WAIT`. Its mark goes as soon as it is up (a stop
    // waits for the start, not for the record), so this process ends only after it.
    let (up, is_up) = std::sync::mpsc::channel();
    let starting = start_daemon.then(|| {
        std::thread::spawn(move || {
            start_marked_daemon();
            let _ = up.send(());
        })
    });
    record_outcome(&Ui::new(true), &spec, &mut judged, &ended, succeeded);
    if starting.is_some() {
        let _ = is_up.recv_timeout(DAEMON_UP_WAIT);
    }
    forget_messages_if_none(&spec.cache_file);
    lock.release();
    if let Some(starting) = starting {
        let _ = starting.join();
    }
    Ok(())
}

/// Removes the task's messages file (of `cache_file`) when this process said nothing in it.
fn forget_messages_if_none(cache_file: &Path) {
    let said = io::stderr().as_fd().try_clone_to_owned().map(File::from);
    if said.and_then(|f| f.metadata()).is_ok_and(|m| m.len() == 0) {
        let _ = std::fs::remove_file(errors_of(cache_file));
    }
}

/// The work in `bytes`: its start, its per-file set, and its outcome (`None` when the run
/// wrote none).
fn decoded(bytes: &[u8]) -> Result<(Work, Table, Option<Outcome>), String> {
    let bad = |what: &str| format!("cannot read the work: {what}");
    let config = bincode::config::standard();
    let (work, read): (Work, usize) =
        bincode::serde::decode_from_slice(bytes, config).map_err(|e| bad(&e.to_string()))?;
    let rest = &bytes[read..];
    let (len, rest) = rest
        .split_first_chunk::<8>()
        .ok_or_else(|| bad("it is cut short"))?;
    let len = usize::try_from(u64::from_le_bytes(*len)).unwrap_or(usize::MAX);
    let (set, rest) = rest
        .split_at_checked(len)
        .ok_or_else(|| bad("it is cut short"))?;
    let set = decode_table(set).ok_or_else(|| bad("its files do not decode"))?;
    if rest.is_empty() {
        return Ok((work, set, None));
    }
    let (outcome, read): (Outcome, usize) =
        bincode::serde::decode_from_slice(rest, config).map_err(|e| bad(&e.to_string()))?;
    if read != rest.len() {
        return Err(bad("it runs on past its outcome"));
    }
    Ok((work, set, Some(outcome)))
}

/// The run as the work describes it: its spec, its judgement (every file ran), how each
/// file's batch ended, and whether the run succeeded.
fn judged_of(
    work: Work,
    Table {
        scanned_at_ns: scanned_at,
        entries,
    }: Table,
    Outcome {
        deferred,
        ended,
        succeeded,
    }: Outcome,
) -> Result<(RunSpec, Judged, Vec<Status>, bool), String> {
    let Work {
        spec,
        decision,
        recorder,
        why,
        rehashed,
        start_daemon: _,
    } = work;
    if entries.len() != ended.len() || !deferred.fits(entries.len()) {
        return Err("the work does not add up".into());
    }
    let unpassed = all_unpassed(&entries, why);
    let judged = Judged {
        decision,
        recorder,
        record: FilesRecord::default(),
        total: entries.len(),
        current: Current {
            entries,
            table: None,
            rehashed,
        },
        unpassed,
        scanned_at,
        whole_skip: false,
        portable: None,
        elsewhere: 0,
        set_key: None,
        deferred: Some(deferred),
        ran_all_passed: None,
        daemon: DaemonStart::None,
    };
    Ok((spec, judged, ended, succeeded))
}

/// Starts the daemon the run marked this process to start, and removes the mark once it
/// is up.
fn start_marked_daemon() {
    if let Ok(paths) = DaemonPaths::from_env() {
        let _ = Client::start_unless_starting(&paths);
        lifecycle::unmark_start(&paths);
    }
}

/// The file passed as standard output (the lock), with `/dev/null` put in its place.
fn take_output() -> io::Result<File> {
    let output = io::stdout().as_fd().try_clone_to_owned()?;
    let null = File::options().write(true).open("/dev/null")?;
    // SAFETY: both descriptors are open; dup2 only replaces descriptor 1.
    if unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 1) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(File::from(output))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[test]
    fn the_settling_process_is_started_with_the_hidden_subcommand() {
        let args = ["zccache", super::SETTLE_COMMAND, "--after", "7"];
        let cli = crate::cli::Cli::try_parse_from(args).unwrap();
        assert!(matches!(
            cli.command,
            crate::cli::Command::SettleFiles { after: Some(7) }
        ));
    }
}
