//! The compile cache: for now its artifact store, served by the daemon as a key-value face
//! (`Lookup`/`Store`, `zccache kv`). Compiler wrapping builds on it.

pub mod args;
pub mod compile;
pub mod compiler;
pub mod depfile;
mod headers;
pub mod inflight;
mod invoke;
pub mod limits;
pub mod store;
