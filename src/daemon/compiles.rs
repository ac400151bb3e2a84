//! The daemon's compile requests: `CompileEphemeral`, `Compile` in a session,
//! `LinkEphemeral`, the session verbs and `ListRustArtifacts`; every compile and link is
//! counted daemon-wide and in its session, and journaled.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::protocol::{NormalizedPath, Request, Response};
use super::sessions::{JournalLine, now_secs};
use super::shared::{Shared, account_store, blocking, handler_failed};
use crate::compile_cache::compile;
use crate::compile_cache::profile::{self, Profile};
use crate::compile_cache::request::{self, Peer, Served};
use crate::compile_cache::rust::store_job::StoreJob;

/// Answers a compile or session request that came on the connection `peer` (other requests
/// are not routed here).
pub async fn handle(shared: Arc<Shared>, request: Request, peer: Peer) -> Response {
    match request {
        Request::CompileEphemeral {
            compiler,
            args,
            cwd,
            env,
            stdin,
            ..
        } => {
            let req = compile_request(&compiler, args, &cwd, env, stdin, &peer);
            blocking(shared, move |s| serve(s, &req, None, Tool::Compiler)).await
        }
        Request::LinkEphemeral {
            tool,
            args,
            cwd,
            env,
            ..
        } => {
            let req = compile_request(&tool, args, &cwd, env, Vec::new(), &peer);
            blocking(shared, move |s| serve(s, &req, None, Tool::Linker)).await
        }
        Request::Compile {
            session_id,
            args,
            cwd,
            compiler,
            env,
            stdin,
        } => {
            if !shared.sessions.exists(&session_id) {
                return unknown_session(&session_id);
            }
            let req = compile_request(&compiler, args, &cwd, env, stdin, &peer);
            blocking(shared, move |s| {
                serve(s, &req, Some(session_id), Tool::Compiler)
            })
            .await
        }
        Request::SessionStart {
            client_pid,
            journal_path,
            log_file,
            profile,
            ..
        } => {
            let journal = journal_path.map(|p| PathBuf::from(p.as_path()));
            let log = log_file.map(|p| PathBuf::from(p.as_path()));
            match shared
                .sessions
                .start(client_pid, journal.clone(), log, profile)
            {
                Ok(session_id) => Response::SessionStarted {
                    session_id,
                    journal_path: journal.map(|p| p.display().to_string()),
                },
                Err(message) => Response::Error { message },
            }
        }
        Request::SessionStats { session_id } => match shared.sessions.stats(&session_id) {
            Some(stats) => Response::SessionStats(stats),
            None => unknown_session(&session_id),
        },
        Request::SessionEnd { session_id } => match shared.sessions.end(&session_id) {
            Some(stats) => Response::SessionEnded { stats },
            None => unknown_session(&session_id),
        },
        Request::CompileDone {
            token,
            exit_code,
            stdout,
            stderr,
            session_id,
        } => {
            let result = (exit_code, stdout, stderr);
            compile_done(shared, token, result, session_id).await
        }
        Request::WhyOutput { output } => Response::OutputMisses {
            misses: shared.compiles.misses_of(output.as_path()),
        },
        Request::ListRustArtifacts => {
            blocking(shared, |s| {
                s.compiles.settle();
                Response::RustArtifacts {
                    artifacts: s.compiles.rust_artifacts(),
                }
            })
            .await
        }
        other => Response::Error {
            message: format!("not a compile request: {other:?}"),
        },
    }
}

/// The request of a wrapper's message that came on `peer` (a wrapper can compile a miss
/// itself).
fn compile_request(
    compiler: &NormalizedPath,
    args: Vec<String>,
    cwd: &NormalizedPath,
    env: Option<Vec<(String, String)>>,
    stdin: Vec<u8>,
    peer: &Peer,
) -> request::Request {
    let mut req = request::Request::new(
        PathBuf::from(compiler.as_path()),
        args,
        PathBuf::from(cwd.as_path()),
        env.unwrap_or_else(|| std::env::vars().collect()),
        stdin,
    );
    req.can_compile_here = true;
    req.peer = peer.clone();
    req
}

fn unknown_session(id: &str) -> Response {
    Response::Error {
        message: format!(
            "no session {id:?} (ended, idle past its timeout, or its owner process exited)"
        ),
    }
}

/// Which entry point a request takes.
enum Tool {
    /// A compiler (or a driver linking): `CompileEphemeral`, `Compile`.
    Compiler,
    /// `ar` or `ld`: `LinkEphemeral`.
    Linker,
}

/// Serves a compile or link, counts it daemon-wide and in its session, and journals it (a
/// miss the wrapper compiles itself: when it reports back).
fn serve(
    shared: &Shared,
    req: &request::Request,
    session_id: Option<String>,
    tool: Tool,
) -> Response {
    let started = std::time::Instant::now();
    profile::take();
    let outcome = match tool {
        Tool::Compiler => shared.compiles.compile(req),
        Tool::Linker => shared.compiles.link(req),
    };
    if let Served::Delegated(token) = outcome.served {
        return Response::CompileHere { token };
    }
    account(shared, req, outcome, session_id, started)
}

/// Answers a wrapper's report of a miss it compiled, then stores what the miss wrote: the
/// wrapper is answered before the store, so the build goes on.
async fn compile_done(
    shared: Arc<Shared>,
    token: u64,
    result: (i32, Vec<u8>, Vec<u8>),
    session_id: Option<String>,
) -> Response {
    let done = Arc::clone(&shared);
    let (response, job) =
        tokio::task::spawn_blocking(move || compiled_here(&done, token, result, session_id))
            .await
            .unwrap_or_else(|e| (handler_failed(&e), None));
    if let Some(job) = job {
        let background = Arc::clone(&shared);
        background.background.run(move || {
            let written = shared.compiles.store_rust(job);
            if written > 0 {
                account_store(&shared, written);
            }
        });
    }
    response
}

/// A miss compiled by its wrapper: counted and journaled as the daemon's own are; the
/// store of its outputs, to run once the wrapper is answered.
fn compiled_here(
    shared: &Shared,
    token: u64,
    result: (i32, Vec<u8>, Vec<u8>),
    session_id: Option<String>,
) -> (Response, Option<StoreJob>) {
    profile::take();
    match shared.compiles.finish_rust(token, result) {
        Some((outcome, delegated, job)) => {
            account(shared, &delegated.req, outcome, session_id, delegated.since);
            (Response::Ack, job)
        }
        None => (
            Response::Error {
                message: "no compile waits under that token (the daemon restarted?)".to_string(),
            },
            None,
        ),
    }
}

/// Counts `outcome` daemon-wide and in its session, journals it, and answers the wrapper.
fn account(
    shared: &Shared,
    req: &request::Request,
    outcome: request::Outcome,
    session_id: Option<String>,
    started: std::time::Instant,
) -> Response {
    let (counter, label) = match outcome.served {
        Served::Hit => (0, "hit"),
        Served::LinkHit => (0, "link_hit"),
        Served::Miss | Served::LinkMiss if outcome.exit_code != 0 => (3, "error"),
        Served::Miss => (1, "miss"),
        Served::LinkMiss => (1, "link_miss"),
        Served::Passthrough(reason) => {
            tracing::debug!("passthrough: {reason}: {:?}", req.args);
            (2, "passthrough")
        }
        Served::Delegated(_) => (1, "miss"),
    };
    shared.compile_counts[counter].fetch_add(1, Ordering::SeqCst);
    if outcome.stored_bytes > 0 {
        account_store(shared, outcome.stored_bytes);
    }
    shared.sessions.record(&JournalLine {
        ts: now_secs(),
        outcome: label,
        compiler: req.compiler.display().to_string(),
        args: req.args.clone(),
        cwd: req.cwd.display().to_string(),
        env: compile::keyed_env(&req.compiler, &req.env),
        exit_code: outcome.exit_code,
        session_id,
        latency_ns: u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
        miss_reason: outcome.why.first().cloned(),
        changed: outcome.why.clone(),
        passthrough_reason: match outcome.served {
            Served::Passthrough(reason) => Some(reason),
            _ => None,
        },
        profile: Profile {
            self_profile_ns: profile::take(),
            ..outcome.profile
        },
    });
    Response::CompileResult {
        exit_code: outcome.exit_code,
        stdout: outcome.stdout,
        stderr: outcome.stderr,
        cached: matches!(outcome.served, Served::Hit | Served::LinkHit),
    }
}
