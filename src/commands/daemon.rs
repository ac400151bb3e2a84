//! `zccache start | stop | status | clear` and the hidden `daemon-serve`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::cli::StatusArgs;
use crate::compile_cache::store::Store;
use crate::daemon::client::{self, ClientError};
use crate::daemon::lifecycle::{self, DaemonPaths};
use crate::daemon::protocol::{Request, Response};
use crate::daemon::server;
use crate::ui::Ui;

use super::status_text;

/// How long `stop` waits for the daemon to exit: as long as its own shutdown may take
/// (in-flight requests, then the remote uploads), and a little more.
const STOP_WAIT: Duration =
    Duration::from_secs(server::DRAIN_TIMEOUT.as_secs() + server::UPLOAD_DRAIN.as_secs() + 5);
/// After this long, `stop` says what it is waiting for.
const STOP_NOTE: Duration = Duration::from_secs(2);
/// How long the daemon's process may outlive its lock.
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// How long `stop` waits for a daemon start a first per-file run left under way.
const MARKED_START_WAIT: Duration = Duration::from_secs(15);

/// `zccache start`.
pub fn start() -> anyhow::Result<ExitCode> {
    let paths = DaemonPaths::from_env()?;
    client::call(&paths, &Request::Ping)?;
    let pid = paths.read_pid().map_or("?".to_string(), |p| p.to_string());
    Ui::default().say(format_args!(
        "daemon running (pid {pid}, {})",
        paths.dir.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// `zccache stop`: returns once the daemon has exited. A daemon that cannot be asked (its
/// socket removed, or stopped or hung) is signalled, when the pid on file is a zccache
/// daemon of this directory.
pub fn stop() -> anyhow::Result<ExitCode> {
    let paths = DaemonPaths::from_env()?;
    // A daemon a first run's record writer is about to start is the one to stop.
    lifecycle::await_marked_starts(&paths, MARKED_START_WAIT, || {
        Ui::default().say("waiting for the daemon a first run's record writer is starting");
    });
    let pid = paths.read_pid();
    let asked = client::call_running(&paths, &Request::Shutdown);
    let pid = match asked {
        Ok(Some(_)) => pid,
        Ok(None) | Err(ClientError::Unavailable(_)) => match lifecycle::signal_daemon(&paths) {
            Some(pid) => Some(pid),
            None => {
                Ui::default().say("no daemon running");
                return Ok(ExitCode::SUCCESS);
            }
        },
        Err(err) => return Err(err.into()),
    };
    if lifecycle::wait_lock_free(&paths, STOP_NOTE).is_err() {
        Ui::default().say(format_args!(
            "waiting for the daemon to finish its requests and uploads (up to {} s)",
            STOP_WAIT.as_secs()
        ));
        lifecycle::wait_lock_free(&paths, STOP_WAIT)?;
    }
    // The lock goes last, a moment before the process itself.
    if let Some(pid) = pid
        && !lifecycle::wait_exited(pid, EXIT_WAIT)
    {
        bail!("the daemon (pid {pid}) released its lock but has not exited");
    }
    Ui::default().say("daemon stopped");
    Ok(ExitCode::SUCCESS)
}

/// `zccache status [--json]`.
pub fn status(args: &StatusArgs) -> anyhow::Result<ExitCode> {
    let paths = DaemonPaths::from_env()?;
    let status = match client::call_running(&paths, &Request::Status) {
        Ok(Some(Response::Status(status))) => Some(status),
        Ok(Some(other)) => bail!("unexpected reply to Status: {other:?}"),
        Ok(None) => None,
        Err(ClientError::Unavailable(why)) => {
            Ui::default().warn(format_args!("daemon unavailable ({why})"));
            None
        }
        Err(err) => return Err(err.into()),
    };
    if args.json {
        let json = match &status {
            Some(s) => serde_json::json!({ "running": true, "daemon": s }),
            None => serde_json::json!({ "running": false, "dir": paths.dir }),
        };
        println!("{json}");
    } else {
        match &status {
            Some(s) => print!("{}", status_text::describe(s)),
            None => println!("no daemon running for {}", paths.dir.display()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `zccache clear`.
pub fn clear(yes: bool) -> anyhow::Result<ExitCode> {
    let paths = DaemonPaths::from_env()?;
    if !yes && std::io::stdin().is_terminal() && !confirmed(&paths)? {
        Ui::default().say("nothing deleted");
        return Ok(ExitCode::from(1));
    }
    match client::call_running(&paths, &Request::Clear)? {
        Some(Response::Cleared {
            fingerprint_indexes,
            artifact_entries,
            artifact_bytes,
        }) => Ui::default().say(format_args!(
            "cleared {} and {} ({})",
            status_text::count(
                fingerprint_indexes,
                "fingerprint index",
                "fingerprint indexes"
            ),
            status_text::count(artifact_entries, "artifact", "artifacts"),
            status_text::bytes(artifact_bytes)
        )),

        Some(other) => bail!("unexpected reply to Clear: {other:?}"),
        None => {
            let removed = Store::new(&paths.dir).clear()?;
            Ui::default().say(format_args!(
                "no daemon running; cleared {} ({})",
                status_text::count(removed.entries, "artifact", "artifacts"),
                status_text::bytes(removed.bytes)
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Asks on the terminal whether to delete the store; true on `y` or `yes`.
fn confirmed(paths: &DaemonPaths) -> anyhow::Result<bool> {
    eprint!(
        "zccache: delete the artifact store in {} (cached compiles, links, task outputs, kv values)? [y/N] ",
        paths.dir.display()
    );
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// `zccache daemon-serve`: be the daemon.
pub fn serve() -> anyhow::Result<ExitCode> {
    server::serve(DaemonPaths::from_env()?)?;
    Ok(ExitCode::SUCCESS)
}
