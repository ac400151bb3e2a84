//! zccache: a fingerprint-first task runner and compiler cache.
//!
//! The engines are synchronous libraries; `main.rs` and (later) the daemon call into them.

#![warn(clippy::too_many_lines)]

pub mod child;
pub mod cli;
pub mod commands;
pub mod compile_cache;
pub mod config;
pub mod console;
pub mod daemon;
pub mod dir_fd;
pub mod fingerprint;
pub mod mtimes;
pub mod os;
pub mod paths;
pub mod private_dir;
pub mod program;
pub mod quote;
pub mod relpath;
pub mod report;
pub mod runner;
pub mod suggest;
pub mod trace_times;
pub mod ui;
pub mod watch;
