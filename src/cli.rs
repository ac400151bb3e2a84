//! The command line, as clap derive types. Doc comments are the help text.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::console::OutputMode;
use crate::fingerprint::{CacheType, FilterSpec};

/// Fingerprint-first task runner and compiler cache: never do the same work twice.
#[derive(Debug, Parser)]
#[command(name = "zccache", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// `zccache run ...` parsed with only `run`'s arguments built: building every
    /// subcommand's took most of the ~0.3 ms a run spent on its arguments. `None` unless it
    /// parses (help, a usage error): the full parser then says what it says.
    pub fn parse_run(argv: &[OsString]) -> Option<Cli> {
        use clap::FromArgMatches;
        let run = RunArgs::augment_args(clap::Command::new("run"));
        let matches = clap::Command::new("zccache")
            .subcommand(run)
            .try_get_matches_from(argv)
            .ok()?;
        let ("run", run) = matches.subcommand()? else {
            return None;
        };
        let args = RunArgs::from_arg_matches(run).ok()?;
        Some(Cli {
            command: Command::Run(args),
        })
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command unless its inputs are as they were after its last success.
    Run(RunArgs),
    /// Run tasks (or a command) again whenever their inputs change, through the cache, until
    /// Ctrl-C.
    Watch(WatchArgs),
    /// Show the last decision of `zccache run` and its reasons.
    Why(WhyArgs),
    /// Fingerprint primitives: check, mark-success, mark-failure, invalidate.
    Fp(FpArgs),
    /// Start the daemon (commands start it on demand anyway).
    Start,
    /// Stop the daemon after its in-flight requests.
    Stop,
    /// Show the daemon's state and its watched tasks.
    Status(StatusArgs),
    /// Delete the artifact store (every cached compile, link, task output and kv value) and
    /// drop the daemon's in-memory indexes; asks first when stdin is a terminal.
    Clear(ClearArgs),
    /// List the tasks of zccache.toml with their last result and whether they would skip.
    Tasks(TasksArgs),
    /// Install or remove the git pre-commit hook that runs tasks.
    #[command(subcommand)]
    Hook(HookCommand),
    /// Open a compile session; prints {"session_id": ...} for ZCCACHE_SESSION_ID.
    SessionStart(SessionStartArgs),
    /// A session's counters so far.
    SessionStats(SessionArgs),
    /// Close a session and print its counters.
    SessionEnd(SessionArgs),
    /// The artifact store as a key-value store.
    #[command(subcommand)]
    Kv(KvCommand),
    /// List every cached rustc compile: crate, types, files, size.
    RustArtifacts {
        /// One JSON object per artifact, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Keep a restored build cache fresh after a checkout: save files' mtimes, set them back
    /// where the content still matches.
    #[command(subcommand)]
    Mtimes(MtimesCommand),
    /// Roll up the compile journal: totals, time saved, misses by reason, the slowest, by
    /// output kind, tool and source file, as text, JSON or an HTML page.
    Report(ReportArgs),
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Serve as the daemon in the foreground (started by clients).
    #[command(hide = true)]
    DaemonServe,
    /// Write a first per-file run's record (started by that run, which passes it the work).
    #[command(hide = true)]
    SettleFiles {
        /// The run's pid: its exit is waited for before the work starts.
        #[arg(long)]
        after: Option<u32>,
    },
}

/// `zccache tasks [--json]`.
#[derive(Debug, Args)]
pub struct TasksArgs {
    /// One JSON object per task, one per line.
    #[arg(long)]
    pub json: bool,
    /// The zccache.toml to use (default: the nearest one above the current directory).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Check in-process, without the daemon.
    #[arg(long)]
    pub no_daemon: bool,
}

/// `zccache hook install | uninstall`.
#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Write .git/hooks/pre-commit running `zccache run --staged` on the tasks.
    Install {
        /// Comma-separated tasks (default: all tasks of zccache.toml).
        #[arg(long, value_delimiter = ',', value_name = "TASKS")]
        tasks: Vec<String>,
        /// Replace a pre-commit hook that zccache did not write (a backup is kept).
        #[arg(long)]
        force: bool,
    },
    /// Remove zccache's pre-commit hook, restoring a backed-up one.
    Uninstall,
}

/// `zccache mtimes save | restore`.
#[derive(Debug, Subcommand)]
pub enum MtimesCommand {
    /// Record size, mtime and blake3 of every file under the roots (ignore rules apply).
    Save {
        /// The snapshot to write.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Directories (or files) inside the current directory; default `.`.
        #[arg(value_name = "ROOT")]
        roots: Vec<PathBuf>,
        /// Print the count as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Set each saved file's mtime back where its size and content still match.
    Restore {
        /// The snapshot `save` wrote (paths are relative to the current directory).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Print the counts as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// `zccache clear`.
#[derive(Debug, Args)]
pub struct ClearArgs {
    /// Do not ask.
    #[arg(long, short)]
    pub yes: bool,
}

/// `zccache session-start`.
#[derive(Debug, Args)]
pub struct SessionStartArgs {
    /// Accepted and ignored: hit and miss counts are always kept.
    #[arg(long)]
    pub stats: bool,
    /// Append one line per compile of the session to this file.
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Also journal the session's compiles here (must end in .jsonl).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Add profiling fields to the session journal.
    #[arg(long)]
    pub profile: bool,
    /// End the session when this process exits (without it, the session lasts until
    /// session-end or an hour without compiles).
    #[arg(long, value_name = "PID")]
    pub owner_pid: Option<u32>,
}

/// `zccache session-stats | session-end ID`.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// The session id from session-start.
    pub id: String,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `zccache kv get | put`.
#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Print the value of KEY (to FILE if given); exit 1 when there is none.
    Get {
        /// The key.
        key: String,
        /// Where to write the value (default: stdout).
        file: Option<PathBuf>,
    },
    /// Store FILE (default: stdin) under KEY.
    Put {
        /// The key.
        key: String,
        /// The value's file (default: stdin).
        file: Option<PathBuf>,
    },
}

/// `zccache status [--json]`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `zccache run [TASK]... [OPTIONS] [-- CMD ARGS...]`.
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// Tasks from zccache.toml to run (dependencies first), instead of a command.
    #[arg(value_name = "TASK")]
    pub tasks: Vec<String>,
    /// Run every task of zccache.toml.
    #[arg(long, conflicts_with = "tasks")]
    pub all: bool,
    /// The zccache.toml to use (default: the nearest one above the current directory).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Most tasks running at once (default: `[defaults] jobs`, else the number of CPUs).
    #[arg(long, short, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,
    /// After a task fails, still run the tasks that do not depend on it.
    #[arg(long)]
    pub keep_going: bool,
    /// How the output of tasks running at once is shown: each task's whole when it ends
    /// (`grouped`), or line by line prefixed with the task's name (`prefixed`).
    #[arg(long, value_enum, default_value_t)]
    pub output_mode: OutputMode,
    /// Fingerprint what is staged in git's index, not the working tree (for pre-commit hooks).
    #[arg(long)]
    pub staged: bool,
    /// The input set.
    #[command(flatten)]
    pub inputs: InputArgs,
    /// The task's identity: state file, env names, outputs.
    #[command(flatten)]
    pub task: TaskArgs,
    /// `two-layer` (stat table + content hashes, the default) or `hash` (aggregate key only).
    #[arg(long, value_enum)]
    pub cache_type: Option<CacheType>,
    /// Run (and record) even when nothing changed.
    #[arg(long, conflicts_with = "dry_run")]
    pub force: bool,
    /// Print the decision and exit 0 (would skip), 1 (would run) or 2 (cannot tell); run and
    /// write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// List the changed paths (up to 20) and the key parts that changed.
    #[arg(long)]
    pub explain: bool,
    /// Capture stdout/stderr of a successful run and print them again on a skip.
    #[arg(long)]
    pub replay: bool,
    /// Share results through the remote cache tier: publish a success, and skip when the same
    /// inputs passed on another machine (`share = true` in a task).
    #[arg(long)]
    pub share: bool,
    /// Work in-process, without the daemon (also `ZCCACHE_NO_DAEMON=1`).
    #[arg(long)]
    pub no_daemon: bool,
    /// Print no `zccache:` lines (warnings still show).
    #[arg(long, short)]
    pub quiet: bool,
    /// Print each decision as one JSON object on stderr instead of a `zccache:` line.
    #[arg(long)]
    pub json: bool,
    /// The command to run, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// `zccache watch [TASK]... [--all] [run options] [-- CMD ARGS...]`.
#[derive(Debug, Args, Clone)]
pub struct WatchArgs {
    /// Clear the screen before each round.
    #[arg(long)]
    pub clear: bool,
    /// How long (ms) the input sets must stay quiet before a round starts (a long burst, such
    /// as a checkout, 100 ms): a burst of writes makes one round.
    #[arg(long, value_name = "MS", default_value_t = 10)]
    pub debounce: u64,
    /// The tasks and how they run, as `zccache run` takes them.
    #[command(flatten)]
    pub run: RunArgs,
}

/// What identifies a task besides its command line.
#[derive(Debug, Args, Clone)]
pub struct TaskArgs {
    /// State file (default: `<root>/.zccache/run/<16 hex of the command key>.json`).
    #[arg(long, value_name = "FILE")]
    pub cache: Option<PathBuf>,
    /// Environment variable whose value (or absence) is part of the key; repeatable.
    #[arg(long = "env", value_name = "NAME")]
    pub env: Vec<String>,
    /// A file or directory (or a glob) the command produces: stored after a success and
    /// restored from the cache when missing or edited.
    #[arg(long = "output", value_name = "PATH")]
    pub outputs: Vec<PathBuf>,
    /// Per-file task: the files matching this glob (relative to the root) are judged one by
    /// one, and only those that have not passed are given to the command (appended, or at a
    /// `{files}` argument); repeatable.
    #[arg(long = "files", value_name = "GLOB")]
    pub files: Vec<String>,
    /// Most files per run of a per-file task's command (default: as many as the OS's
    /// argument limit takes).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: Option<u32>,
}

/// `zccache report [--session ID | --journal FILE] [-o report.html] [--format F]`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The journal to read (default: the daemon's, `ZCCACHE_DIR/logs/compile_journal.jsonl`).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Only this session's compiles.
    #[arg(long, value_name = "ID")]
    pub session: Option<String>,
    /// Only compiles with this outcome.
    #[arg(long, value_name = "OUTCOME", value_parser = [
        "hit", "miss", "error", "link_hit", "link_miss", "passthrough",
    ])]
    pub outcome: Option<String>,
    /// Only compiles of this crate.
    #[arg(long = "crate", value_name = "NAME")]
    pub crate_name: Option<String>,
    /// Write to this file (HTML unless --format says otherwise) instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// `text` (default on a terminal), `json` or `html` (default with -o).
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
}

/// How `zccache report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned tables for a terminal.
    Text,
    /// One JSON object.
    Json,
    /// One self-contained HTML page.
    Html,
}

/// `zccache why [TASK | --cache F | -- CMD ARGS...]`.
#[derive(Debug, Args)]
pub struct WhyArgs {
    /// A task from zccache.toml, or compile outputs (`build/foo.o`, a shell glob of rlibs):
    /// their recent misses and why.
    #[arg(value_name = "TASK|OUTPUT")]
    pub names: Vec<String>,
    /// The zccache.toml to use (default: the nearest one above the current directory).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the ledger line as JSON.
    #[arg(long)]
    pub json: bool,
    /// The input set flags the task runs with (they select its default state file).
    #[command(
        flatten,
        next_help_heading = "The task's flags (they name its state file)"
    )]
    pub inputs: InputArgs,
    /// The task's state file, or the flags that select its default one.
    #[command(
        flatten,
        next_help_heading = "The task's flags (they name its state file)"
    )]
    pub task: TaskArgs,
    /// The task's command (selects its default state file); without it, the most recent
    /// decision under `<root>/.zccache/run/`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
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
    /// Work in-process, without the daemon (also `ZCCACHE_NO_DAEMON=1`).
    #[arg(long)]
    pub no_daemon: bool,
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
    /// The directory whose files are the inputs (default: the current directory; for a
    /// named task, its `root`).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
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
    /// The root as given, `.` when not given.
    pub fn root_or_cwd(&self) -> PathBuf {
        self.root.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    /// The filters as the engine takes them.
    pub fn filter_spec(&self) -> FilterSpec {
        FilterSpec {
            extensions: self.extensions.clone(),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<OsString> {
        std::iter::once("zccache")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// Every `run` line the lean parser takes is taken the same way by the full one.
    #[test]
    fn the_lean_run_parse_agrees_with_the_full_one() {
        let lines: &[&[&str]] = &[
            &["run", "--", "cargo", "clippy"],
            &[
                "run",
                "--cache",
                ".cache/lint.json",
                "--",
                "cargo",
                "clippy",
                "--",
                "-D",
                "x",
            ],
            &["run", "lint", "test", "-j", "3", "--keep-going"],
            &[
                "run",
                "--all",
                "--output-mode",
                "prefixed",
                "--dry-run",
                "--json",
            ],
            &[
                "run",
                "--files",
                "py/**/*.py",
                "--include",
                "pyproject.toml",
                "--batch-size",
                "9",
                "--share",
                "--staged",
                "-q",
                "--",
                "ruff",
                "check",
                "{files}",
            ],
            &[
                "run",
                "--ext",
                "rs",
                "--exclude",
                "target",
                "--env",
                "RUSTFLAGS",
                "--output",
                "out",
                "--cache-type",
                "hash",
                "--force",
                "--replay",
                "--explain",
                "--no-daemon",
                "--config",
                "z.toml",
                "--root",
                "..",
                "--",
                "make",
            ],
        ];
        for words in lines {
            let line = argv(words);
            let full = Cli::try_parse_from(&line).expect("the full parser takes it");
            let lean = Cli::parse_run(&line).expect("the lean parser takes it");
            assert_eq!(format!("{lean:?}"), format!("{full:?}"), "{words:?}");
        }
    }

    /// What the lean parser does not take is left to the full one, which reports it.
    #[test]
    fn the_lean_run_parse_leaves_help_and_errors_to_the_full_one() {
        let lines: &[&[&str]] = &[
            &["run", "--help"],
            &["run", "-h"],
            &["run", "--bogus"],
            &["run", "--all", "lint"],
            &["run", "-j", "0"],
            &["run", "--force", "--dry-run"],
            &["--version"],
            &["status"],
        ];
        for words in lines {
            assert!(Cli::parse_run(&argv(words)).is_none(), "{words:?}");
        }
    }
}
