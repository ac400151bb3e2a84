//! `zccache rust-artifacts [--json]`: every cached rustc compile (crate, types, files, size,
//! last use), from the daemon or, when it cannot be reached, from the store directly.

use std::process::ExitCode;

use anyhow::bail;

use crate::compile_cache::artifact::RustArtifact;
use crate::compile_cache::rust::compile::RustCache;
use crate::compile_cache::store::Store;
use crate::daemon::client::call_or_in_process;
use crate::daemon::lifecycle::DaemonPaths;
use crate::daemon::protocol::{Request, Response};

/// Runs `zccache rust-artifacts`.
pub fn execute(json: bool) -> anyhow::Result<ExitCode> {
    let paths = DaemonPaths::from_env()?;
    let artifacts = match call_or_in_process(&paths, &Request::ListRustArtifacts)? {
        Some(Response::RustArtifacts { artifacts }) => artifacts,
        Some(other) => bail!("unexpected daemon reply: {other:?}"),
        None => RustCache::new(Store::new(&paths.dir), Default::default()).list(),
    };
    for artifact in &artifacts {
        if json {
            println!("{}", serde_json::to_string(artifact)?);
        } else {
            println!("{}", line(artifact));
        }
    }
    if !json && artifacts.is_empty() {
        println!("no cached Rust artifacts");
    }
    Ok(ExitCode::SUCCESS)
}

/// `serde 1.0 rlib  412.3 KiB  libserde-ab.rlib, libserde-ab.rmeta, serde-ab.d`.
fn line(a: &RustArtifact) -> String {
    format!(
        "{:<24} {:<10} {:>10.1} KiB  {}",
        a.crate_name,
        a.crate_types.join(","),
        a.size as f64 / 1024.0,
        a.outputs.join(", ")
    )
}
