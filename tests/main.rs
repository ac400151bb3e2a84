//! Black-box tests of the built `zccache` binary, one module per feature.

mod support;

mod compile_c;
mod daemon;
mod early;
mod faults;
mod fp;
mod graph;
mod input_set;
mod kv;
mod miss_reasons;
mod mtimes;
mod names_state;
mod newcomer;
mod per_file;
mod prefix;
mod processes;
mod readme;
mod remote;
mod report;
mod restore;
mod run;
mod rust;
mod store;
mod tasks;
mod trust;
mod watch;
mod worktrees;
