//! zccache: a fingerprint-first task runner and compiler cache.
//!
//! The engines are synchronous libraries; `main.rs` and (later) the daemon call into them.

pub mod cli;
pub mod commands;
pub mod fingerprint;
pub mod ui;
