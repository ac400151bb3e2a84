//! `zccache watch`: run the graph once, then again whenever a task's input set changes,
//! each round a normal run through the cache of the changed tasks and their dependents, until
//! Ctrl-C. The events come from the daemon's watcher (`source`), bursts become rounds
//! (`debounce`), a task's own writes never retrigger it (`loops`), and `rounds` ties these
//! to the runner's graph run (`plan` says what runs).

mod debounce;
mod loops;
mod plan;
mod rounds;
mod source;

use std::process::ExitCode;

use crate::cli::WatchArgs;

/// Runs `zccache watch` until Ctrl-C (or SIGTERM/SIGHUP): exits 128 + that signal.
pub fn execute(args: &WatchArgs) -> anyhow::Result<ExitCode> {
    crate::os::catch_signals();
    let run = &args.run;
    if run.dry_run || run.staged || run.json {
        anyhow::bail!("--dry-run, --staged and --json do not go with watch");
    }
    let watch = rounds::Watch::start(args)?;
    Ok(ExitCode::from(watch.run()))
}
