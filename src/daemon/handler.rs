//! One small function per request; engine work runs on the blocking pool.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::fingerprints::Mark;
use super::frame::BINARY_VERSION;
use super::protocol::{DaemonStatus, NormalizedPath, Request, Response, RunCheckSpec};
use super::server::Shared;
use crate::fingerprint::{CacheType, CheckRequest, CheckWrites, Digest, FilterSpec, FpError};

/// Answers one request.
pub async fn handle(shared: Arc<Shared>, request: Request) -> Response {
    match request {
        Request::Ping => Response::Pong,
        Request::Shutdown => Response::ShuttingDown,
        Request::Status => status(&shared),
        Request::Clear => Response::Cleared {
            fingerprint_indexes: shared.fingerprints.clear() as u64,
        },
        Request::FingerprintCheck {
            cache_file,
            cache_type,
            root,
            extensions,
            include_globs,
            exclude,
        } => {
            let spec = RunCheckSpec {
                cache_file,
                cache_type,
                root,
                extensions,
                include_globs,
                exclude,
                extra_parts: Vec::new(),
                dry_run: false,
            };
            blocking(shared, move |s| fp_check(s, &spec)).await
        }
        Request::FingerprintMarkSuccess { cache_file } => {
            blocking(shared, move |s| mark(s, &cache_file, Mark::Success)).await
        }
        Request::FingerprintMarkFailure { cache_file } => {
            blocking(shared, move |s| mark(s, &cache_file, Mark::Failure)).await
        }
        Request::FingerprintInvalidate { cache_file } => {
            blocking(shared, move |s| mark(s, &cache_file, Mark::Invalidate)).await
        }
        Request::RunCheck(spec) => blocking(shared, move |s| run_check(s, &spec)).await,
        Request::RunRecord {
            cache_file,
            pending_id,
            success,
        } => {
            blocking(shared, move |s| {
                let recorded = s
                    .fingerprints
                    .record_run(cache_file.as_path(), pending_id, success);
                ack(recorded)
            })
            .await
        }
        other => Response::Unsupported {
            request: variant_name(&other),
        },
    }
}

async fn blocking(
    shared: Arc<Shared>,
    work: impl FnOnce(&Shared) -> Response + Send + 'static,
) -> Response {
    tokio::task::spawn_blocking(move || work(&shared))
        .await
        .unwrap_or_else(|e| Response::Error {
            message: format!("handler failed: {e}"),
        })
}

fn status(shared: &Shared) -> Response {
    let indexes = shared.fingerprints.status();
    Response::Status(DaemonStatus {
        version: BINARY_VERSION.to_string(),
        pid: std::process::id(),
        uptime_secs: shared.started.elapsed().as_secs(),
        requests: shared.requests.load(Ordering::SeqCst),
        dir: shared.paths.dir.display().to_string(),
        indexes,
    })
}

fn fp_check(shared: &Shared, spec: &RunCheckSpec) -> Response {
    let req = match check_request(spec, CheckWrites::StateAndPendingFile) {
        Ok(req) => req,
        Err(message) => return Response::Error { message },
    };
    match shared.fingerprints.check(&req) {
        Ok(served) => Response::FingerprintChecked {
            decision: served.checked.decision,
            mode: served.mode,
        },
        Err(err) => error(&err),
    }
}

fn run_check(shared: &Shared, spec: &RunCheckSpec) -> Response {
    let writes = if spec.dry_run {
        CheckWrites::Nothing
    } else {
        CheckWrites::State
    };
    let req = match check_request(spec, writes) {
        Ok(req) => req,
        Err(message) => return Response::Error { message },
    };
    match shared.fingerprints.check(&req) {
        Ok(served) => {
            let pending_id = shared
                .fingerprints
                .keep_pending(req.cache_file.clone(), served.checked.pending);
            Response::RunChecked {
                decision: served.checked.decision,
                mode: served.mode,
                pending_id,
            }
        }
        Err(err) => error(&err),
    }
}

fn mark(shared: &Shared, cache_file: &NormalizedPath, verb: Mark) -> Response {
    ack(shared.fingerprints.mark(cache_file.as_path(), verb))
}

fn ack(result: Result<(), FpError>) -> Response {
    match result {
        Ok(()) => Response::Ack,
        Err(err) => error(&err),
    }
}

fn error(err: &FpError) -> Response {
    Response::Error {
        message: err.to_string(),
    }
}

fn check_request(spec: &RunCheckSpec, writes: CheckWrites) -> Result<CheckRequest, String> {
    let cache_type = match spec.cache_type.as_str() {
        "two-layer" => CacheType::TwoLayer,
        "hash" => CacheType::Hash,
        other => return Err(format!("unknown cache type {other:?}")),
    };
    let mut extra_parts = std::collections::BTreeMap::new();
    for (name, hex) in &spec.extra_parts {
        let digest = Digest::from_hex(hex).ok_or_else(|| format!("bad digest for {name}"))?;
        extra_parts.insert(name.clone(), digest);
    }
    Ok(CheckRequest {
        cache_file: PathBuf::from(spec.cache_file.as_path()),
        cache_type,
        root: PathBuf::from(spec.root.as_path()),
        filter: FilterSpec {
            extensions: spec.extensions.clone(),
            include: spec.include_globs.clone(),
            exclude: spec.exclude.clone(),
        },
        extra_parts,
        writes,
        staged: false,
        progress: None,
    })
}

fn variant_name(request: &Request) -> String {
    let debug = format!("{request:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("request")
        .to_string()
}
