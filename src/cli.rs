//! The command line, as clap derive types. Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::fingerprint::{CacheType, FilterSpec};

/// Fingerprint-first task runner and compiler cache: never do the same work twice.
#[derive(Debug, Parser)]
#[command(name = "zccache", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fingerprint primitives: check, mark-success, mark-failure, invalidate.
    Fp(FpArgs),
}

/// `zccache fp --cache-file F [--cache-type T] VERB`.
#[derive(Debug, Args)]
pub struct FpArgs {
    /// The state file that remembers the last successful inputs.
    #[arg(long, value_name = "FILE")]
    pub cache_file: PathBuf,
    /// `two-layer` (stat table + content hashes) or `hash` (aggregate key only).
    #[arg(long, value_enum, default_value_t)]
    pub cache_type: CacheType,
    /// The verb.
    #[command(subcommand)]
    pub verb: FpVerb,
}

/// The fingerprint verbs.
#[derive(Debug, Subcommand)]
pub enum FpVerb {
    /// Exit 0 if the task must run, 1 if it can be skipped, 2 on error.
    Check(CheckArgs),
    /// Record that the task succeeded on the inputs of the last check.
    MarkSuccess,
    /// Record that the task failed on the inputs of the last check.
    MarkFailure,
    /// Forget every recorded result.
    Invalidate,
}

/// Options of `fp check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The input set.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Print the decision as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print no `zccache:` lines.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Which files make up a task's input set.
#[derive(Debug, Args, Clone)]
pub struct InputArgs {
    /// Directory to scan (default: the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub root: PathBuf,
    /// Only files with this extension (no dot); repeatable.
    #[arg(long = "ext", value_name = "EXT")]
    pub extensions: Vec<String>,
    /// Only files matching this glob, relative to the root; repeatable.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out directories of this name anywhere, or paths matching this glob; repeatable.
    #[arg(long, value_name = "PAT")]
    pub exclude: Vec<String>,
}

impl InputArgs {
    /// The filters as the engine takes them.
    pub fn filter_spec(&self) -> FilterSpec {
        FilterSpec {
            extensions: self.extensions.clone(),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
        }
    }
}
