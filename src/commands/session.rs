//! `zccache session-start | session-stats | session-end`: counters and a journal for one
//! build (`ZCCACHE_SESSION_ID=<id> make`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;

use crate::cli::{SessionArgs, SessionStartArgs};
use crate::daemon::client;
use crate::daemon::lifecycle::DaemonPaths;
use crate::daemon::protocol::{NormalizedPath, Request, Response, SessionCounts};

/// Opens a session and prints `{"session_id": ..., "journal_path": ...}`.
pub fn start(args: &SessionStartArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir()?;
    let path = |p: &Path| NormalizedPath::new(&cwd, p);
    let request = Request::SessionStart {
        client_pid: args.owner_pid.unwrap_or(0),
        working_dir: path(Path::new(".")),
        log_file: args.log.as_deref().map(path),
        track_stats: args.stats,
        journal_path: args.journal.as_deref().map(path),
        profile: args.profile,
    };
    match client::call(&DaemonPaths::from_env()?, &request)? {
        Response::SessionStarted {
            session_id,
            journal_path,
        } => {
            let json =
                serde_json::json!({ "session_id": session_id, "journal_path": journal_path });
            println!("{json}");
            Ok(ExitCode::SUCCESS)
        }
        other => bail!("unexpected daemon reply: {other:?}"),
    }
}

/// Prints a session's counters so far.
pub fn stats(args: &SessionArgs) -> anyhow::Result<ExitCode> {
    let request = Request::SessionStats {
        session_id: args.id.clone(),
    };
    match client::call(&DaemonPaths::from_env()?, &request)? {
        Response::SessionStats(counts) => print_counts(&counts, args.json),
        other => bail!("unexpected daemon reply: {other:?}"),
    }
}

/// Closes a session and prints its counters.
pub fn end(args: &SessionArgs) -> anyhow::Result<ExitCode> {
    let request = Request::SessionEnd {
        session_id: args.id.clone(),
    };
    match client::call(&DaemonPaths::from_env()?, &request)? {
        Response::SessionEnded { stats } => print_counts(&stats, args.json),
        other => bail!("unexpected daemon reply: {other:?}"),
    }
}

fn print_counts(counts: &SessionCounts, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string(counts)?);
    } else {
        println!(
            "session {}: {} hits, {} misses, {} passthrough, {} errors, hit rate {:.0}%, ~{:.0} ms saved",
            counts.session_id,
            counts.hits,
            counts.misses,
            counts.passthroughs,
            counts.errors,
            counts.hit_rate * 100.0,
            counts.time_saved_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}
