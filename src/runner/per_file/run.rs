//! Running a per-file task's batches: up to `jobs` at once, each in its own process group
//! (as a task's command is), its output shown as the tool printed it — straight through when
//! batches run one at a time, else each batch's whole when it ends, so two never interleave.
//! Once zccache was interrupted, no further batch starts.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::child::{self, Group, Started};
use crate::console::{Console, OutputMode};
use crate::ui::Ui;

/// One batch: the indices of its files (in the caller's list) and its command line.
pub struct Batch {
    /// Which files it holds.
    pub files: Vec<usize>,
    /// The command line with those files.
    pub argv: Vec<OsString>,
}

/// How a batch ended: its status, `None` when it did not start (zccache was interrupted).
pub type Status = Option<i32>;

/// Runs `batches` in `cwd`, up to `jobs` at once; their statuses, in order.
pub fn run_all(ui: &Ui, batches: &[Batch], cwd: &Path, jobs: usize) -> Vec<Status> {
    if let [batch] = batches {
        return vec![run_one(ui, batch, cwd, ui.console())];
    }
    let parallel = jobs > 1 && batches.len() > 1;
    let next = AtomicUsize::new(0);
    let ends: Mutex<Vec<Status>> = Mutex::new(vec![None; batches.len()]);
    let printing = Mutex::new(());
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(batches.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(batch) = batches.get(i) else { break };
                    let status = match parallel {
                        true => run_grouped(ui, batch, cwd, &printing),
                        false => run_one(ui, batch, cwd, ui.console()),
                    };
                    lock(&ends)[i] = status;
                    if status.is_none() {
                        break;
                    }
                }
            });
        }
    });
    ends.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// A batch run beside others: its output held and passed to the task's console whole.
fn run_grouped(ui: &Ui, batch: &Batch, cwd: &Path, printing: &Mutex<()>) -> Status {
    let console = Console::new(OutputMode::Grouped, "", true);
    let status = run_one(ui, batch, cwd, &console);
    let _printing = lock(printing);
    console.finish_into(ui.console());
    status
}

fn run_one(ui: &Ui, batch: &Batch, cwd: &Path, console: &Console) -> Status {
    end(ui, start(batch, cwd, console)?)
}

/// Starts `batch` in `cwd`, its output going to `console`; `None` when zccache was
/// interrupted (it did not start). Its status comes from [`end`].
pub fn start<'c>(batch: &Batch, cwd: &Path, console: &'c Console) -> Option<Started<'c>> {
    child::start(&batch.argv, cwd, false, console, Group::for_task(console))
}

/// Waits for a batch [`start`] started: its status (that of a command not found when it
/// could not start, said on the way).
pub fn end(ui: &Ui, started: Started<'_>) -> Status {
    let finished = started.finish();
    if let Some(why) = &finished.spawn_error {
        ui.error(why);
    }
    Some(finished.code)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
