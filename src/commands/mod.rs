//! Command glue: turn parsed arguments into engine calls, messages and an exit code.

pub mod daemon;
pub mod early;
pub mod fp;
pub mod hook;
pub mod kv;
pub mod mtimes;
pub mod report;
pub mod rust_artifacts;
pub mod session;
pub mod status_text;
pub mod tasks;
pub mod why;
pub mod wrap;
