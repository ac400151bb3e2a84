//! The Rust side of the compile cache: rustc invocations from `RUSTC_WRAPPER=zccache`
//! (argument classification, keys, the dep-info manifest, delivery) and the listing of
//! what it stored.

pub mod args;
pub mod compile;
pub mod delegated;
mod incremental;
mod inputs;
mod pending;
pub mod store_job;

use std::path::Path;

/// True when `compiler` is rustc (by name: `rustc`, `rustc-1.80`, a toolchain's
/// `bin/rustc`).
pub fn is_rustc(compiler: &Path) -> bool {
    name_of(compiler).is_some_and(|n| n == "rustc" || n.starts_with("rustc-"))
}

/// True for clippy-driver (`RUSTC_WORKSPACE_WRAPPER` under `cargo clippy`): Rust mode, run
/// as given.
pub fn is_clippy_driver(compiler: &Path) -> bool {
    name_of(compiler) == Some("clippy-driver")
}

fn name_of(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}
