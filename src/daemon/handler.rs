//! One small function per request; engine work runs on the blocking pool.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use super::compiles;
use super::fingerprints::Mark;
use super::frame::BINARY_VERSION;
use super::protocol::{
    Blob, DaemonStatus, MAX_BATCH, NormalizedPath, RemoteStatus, Request, Response, RunCheckAnswer,
    RunCheckSpec,
};
use super::shared::{Shared, account_store, blocking};
use crate::compile_cache::artifact::Artifact;
use crate::compile_cache::request::Peer;
use crate::fingerprint::{
    CacheType, CheckRequest, CheckWrites, Digest, FilterSpec, FpError, Table, encode_table,
};

/// Answers one request that came on the connection `peer`.
pub async fn handle(shared: Arc<Shared>, request: Request, peer: Peer) -> Response {
    match request {
        Request::Ping => Response::Pong,
        Request::Shutdown => Response::ShuttingDown,
        Request::Status => blocking(shared, status).await,
        Request::Clear => blocking(shared, clear).await,
        Request::Lookup { cache_key } => blocking(shared, move |s| lookup(s, &cache_key)).await,
        Request::Store {
            cache_key,
            artifact,
        } => blocking(shared, move |s| store(s, &cache_key, &artifact)).await,
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
        request @ (Request::CompileEphemeral { .. }
        | Request::Compile { .. }
        | Request::LinkEphemeral { .. }
        | Request::SessionStart { .. }
        | Request::SessionStats { .. }
        | Request::SessionEnd { .. }
        | Request::ListRustArtifacts
        | Request::CompileDone { .. }
        | Request::WhyOutput { .. }) => compiles::handle(shared, request, peer).await,
        Request::RunCheck(spec) => blocking(shared, move |s| run_check(s, &spec)).await,
        // The connection itself serves it (`watch_stream`): it answers more than once.
        Request::Watch { .. } => Response::Error {
            message: "a watch is served by its connection".to_string(),
        },
        Request::RunCheckBatch(specs) => {
            blocking(shared, move |s| run_check_batch(s, &specs)).await
        }
        Request::PerFileCheck { task, set, passed } => {
            blocking(shared, move |s| per_file_check(s, &task, &set, &passed)).await
        }
        Request::RunRecord {
            cache_file,
            pending_id,
            key,
            success,
        } => {
            blocking(shared, move |s| {
                let recorded =
                    s.fingerprints
                        .record_run(cache_file.as_path(), &pending_id, &key, success);
                ack(recorded)
            })
            .await
        }
    }
}

fn status(shared: &Shared) -> Response {
    shared.compiles.settle();
    let indexes = shared.fingerprints.status();
    let packed = shared.store.packed();
    Response::Status(DaemonStatus {
        version: BINARY_VERSION.to_string(),
        pid: std::process::id(),
        uptime_secs: shared.started.elapsed().as_secs(),
        requests: shared.requests.load(Ordering::SeqCst),
        dir: shared.paths.dir.display().to_string(),
        indexes,
        watching: shared.fingerprints.watching(),
        out_of_space: shared.compiles.out_of_space(),
        remote_off: shared.remote_off.clone(),
        artifact_entries: packed.entries,
        artifact_bytes: packed.on_disk,
        max_size: shared.max_size,
        cache_hits: shared.compile_counts[0].load(Ordering::SeqCst),
        cache_misses: shared.compile_counts[1].load(Ordering::SeqCst),
        passthroughs: shared.compile_counts[2].load(Ordering::SeqCst),
        cache_errors: shared.compile_counts[3].load(Ordering::SeqCst),
        artifact_raw_bytes: packed.raw,
        compression: shared.store.compression(),
        watches: shared.watches.status(),
        remote: shared.store.remote().map(|remote| {
            let counts = &remote.counts;
            let n = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
            RemoteStatus {
                readonly: remote.readonly(),
                hits: n(&counts.hits),
                misses: n(&counts.misses),
                uploads: n(&counts.uploads),
                dropped: n(&counts.dropped),
                refused: n(&counts.refused),
                errors: n(&counts.errors),
            }
        }),
    })
}

fn clear(shared: &Shared) -> Response {
    shared.compiles.settle();
    let indexes = shared.fingerprints.clear() as u64;
    shared.compiles.forget();
    match shared.store.clear() {
        Ok(removed) => {
            shared.store_bytes.store(0, Ordering::SeqCst);
            Response::Cleared {
                fingerprint_indexes: indexes,
                artifact_entries: removed.entries,
                artifact_bytes: removed.bytes,
            }
        }
        Err(e) => Response::Error {
            message: format!("cannot clear the artifact store: {e}"),
        },
    }
}

fn lookup(shared: &Shared, key: &str) -> Response {
    match shared.store.get(key) {
        Ok(artifact) => Response::LookupResult { artifact },
        Err(e) => Response::Error {
            message: format!("cannot read the artifact store: {e}"),
        },
    }
}

/// Stores, then trims the store if it outgrew `ZCCACHE_MAX_SIZE`.
fn store(shared: &Shared, key: &str, artifact: &Artifact) -> Response {
    match shared.store.put(key, artifact) {
        Ok(written) => {
            account_store(shared, written);
            Response::Stored {
                bytes_written: written,
            }
        }
        Err(e) => Response::Error {
            message: format!("cannot write the artifact store: {e}"),
        },
    }
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
    match run_check_as_of(shared, spec, shared.fingerprints.sync_point(), false).0 {
        RunCheckAnswer::Checked {
            decision,
            mode,
            pending_id,
        } => Response::RunChecked {
            decision,
            mode,
            pending_id,
        },
        RunCheckAnswer::Failed { message } => Response::Error { message },
    }
}

/// `PerFileCheck`: both checks as of one sync point, and the per-file set's table unless
/// the pair of their keys passed.
fn per_file_check(
    shared: &Shared,
    task: &RunCheckSpec,
    set: &RunCheckSpec,
    passed: &[(String, String)],
) -> Response {
    let as_of = shared.fingerprints.sync_point();
    let ((task, _), (set, table)) = rayon::join(
        || run_check_as_of(shared, task, as_of, false),
        || run_check_as_of(shared, set, as_of, true),
    );
    let pair = match (&task, &set) {
        (
            RunCheckAnswer::Checked { decision: t, .. },
            RunCheckAnswer::Checked { decision: s, .. },
        ) => Some((t.key.to_hex(), s.files_key.to_hex())),
        _ => None,
    };
    let table = table
        .filter(|_| pair.is_some_and(|pair| !passed.contains(&pair)))
        .map(|table| Blob(encode_table(&table)));
    Response::PerFileChecked { task, set, table }
}

/// `RunCheck` seeing the changes made before `as_of` (the watcher's `sync_point`), with
/// the input set's table when `with_table`.
fn run_check_as_of(
    shared: &Shared,
    spec: &RunCheckSpec,
    as_of: u64,
    with_table: bool,
) -> (RunCheckAnswer, Option<Table>) {
    let writes = if spec.dry_run {
        CheckWrites::Nothing
    } else {
        CheckWrites::State
    };
    let req = match check_request(spec, writes) {
        Ok(req) => req,
        Err(message) => return (RunCheckAnswer::Failed { message }, None),
    };
    match shared.fingerprints.check_as_of(&req, as_of, with_table) {
        Ok(served) => {
            let pending_id = shared
                .fingerprints
                .keep_pending(req.cache_file.clone(), served.checked.pending);
            let answer = RunCheckAnswer::Checked {
                decision: served.checked.decision,
                mode: served.mode,
                pending_id,
            };
            (answer, served.table)
        }
        Err(err) => {
            let message = err.to_string();
            (RunCheckAnswer::Failed { message }, None)
        }
    }
}

/// Each spec checked as `RunCheck` would, answered in order; one failing spec fails alone.
/// The checks run in parallel (each input set has its own lock): a cold graph walks its
/// roots at once.
fn run_check_batch(shared: &Shared, specs: &[RunCheckSpec]) -> Response {
    if specs.len() > MAX_BATCH {
        return Response::Error {
            message: format!("a batch of {} checks exceeds {MAX_BATCH}", specs.len()),
        };
    }
    let as_of = shared.fingerprints.sync_point();
    let answers = specs
        .par_iter()
        .map(|spec| run_check_as_of(shared, spec, as_of, false).0)
        .collect();
    Response::RunCheckedBatch(answers)
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
