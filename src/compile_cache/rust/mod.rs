//! The Rust side of the compile cache: rustc invocations from `RUSTC_WRAPPER=zccache`
//! (argument classification, keys, the dep-info manifest, delivery) and the listing of
//! what it stored.

pub mod args;
pub mod compile;

use std::path::Path;

/// True when `compiler` is rustc (by name: `rustc`, `rustc-1.80`, a toolchain's
/// `bin/rustc`); clippy-driver and rustup proxies are not (they are run as given).
pub fn is_rustc(compiler: &Path) -> bool {
    compiler
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "rustc" || n.starts_with("rustc-"))
}
