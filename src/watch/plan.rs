//! What a watch runs: the graph of the named tasks (or the one command after `--`) with
//! each task's resolved spec, the input sets to follow for them, and which tasks a change
//! brings into a round.

use std::path::PathBuf;

use crate::cli::RunArgs;
use crate::daemon::protocol::{NormalizedPath, WatchSet};
use crate::runner::graph::{Graph, Limits};
use crate::runner::spec::RunSpec;
use crate::runner::tasks::plan_tasks;

/// The tasks of a watch.
#[derive(Debug)]
pub struct Plan {
    /// Tasks in dependency order.
    pub graph: Graph,
    /// Each task's spec, in the graph's order.
    pub specs: Vec<RunSpec>,
    /// The zccache.toml the tasks came from (`None`: a command after `--`).
    pub config: Option<PathBuf>,
    /// How the rounds run.
    pub limits: Limits,
}

impl Plan {
    /// The tasks `args` name (or all, or the command after `--`), resolved as `zccache run`
    /// resolves them; an error for a mistake no run can mend.
    pub fn load(args: &RunArgs) -> anyhow::Result<Plan> {
        let cwd = std::env::current_dir()?;
        if args.tasks.is_empty() && !args.all {
            return command_plan(args, cwd);
        }
        if !args.command.is_empty() {
            anyhow::bail!("give task names or a command after --, not both");
        }
        let tasks = plan_tasks(args, &cwd)?;
        Ok(Plan {
            graph: tasks.graph,
            specs: tasks.specs,
            config: Some(tasks.config.path),
            limits: tasks.limits,
        })
    }

    /// The sets to follow: each task's input set, by index, then the zccache.toml.
    pub fn sets(&self) -> Vec<WatchSet> {
        let mut sets: Vec<WatchSet> = self
            .graph
            .names
            .iter()
            .zip(&self.specs)
            .map(|(name, spec)| input_set(name, spec))
            .collect();
        if let Some(config) = &self.config {
            let file = NormalizedPath::new(std::path::Path::new("/"), config);
            let root =
                NormalizedPath::new(std::path::Path::new("/"), config.parent().unwrap_or(config));
            sets.push(WatchSet {
                label: "zccache.toml".to_string(),
                root,
                extensions: Vec::new(),
                include_globs: Vec::new(),
                exclude: Vec::new(),
                state_file: None,
                file: Some(file),
            });
        }
        sets
    }

    /// The tasks a round runs when the `changed` tasks' sets changed: those, every task
    /// depending on them, and the dependencies of these that are not `sound` (that did not
    /// end well last time, or whose outputs changed), which must run first.
    pub fn round(&self, changed: &[bool], sound: &[bool]) -> Vec<bool> {
        let mut keep = self.graph.with_dependents(changed);
        for i in (0..keep.len()).rev() {
            if keep[i] {
                for &d in &self.graph.deps[i] {
                    keep[d] = keep[d] || !sound[d];
                }
            }
        }
        keep
    }
}

/// The watched set of a task: its input set; for a per-file task, its files too.
fn input_set(name: &str, spec: &RunSpec) -> WatchSet {
    let mut exclude = spec.filter.exclude.clone();
    if let Some(per_file) = &spec.per_file {
        exclude.retain(|e| !per_file.globs.contains(e));
    }
    let root = NormalizedPath::new(&spec.root, &spec.root);
    WatchSet {
        label: name.to_string(),
        root,
        extensions: spec.filter.extensions.clone(),
        include_globs: spec.filter.include.clone(),
        exclude,
        state_file: Some(NormalizedPath::new(&spec.root, &spec.cache_file)),
        file: None,
    }
}

/// The plan of `zccache watch -- CMD ARGS`: one task, named by its command.
fn command_plan(args: &RunArgs, cwd: PathBuf) -> anyhow::Result<Plan> {
    if args.command.is_empty() {
        anyhow::bail!("nothing to watch: give task names, --all, or a command after --");
    }
    let spec = RunSpec::of_command(args, cwd, false)?;
    let name = spec.argv_text().join(" ");
    Ok(Plan {
        graph: Graph {
            names: vec![name],
            deps: vec![Vec::new()],
            serial: vec![None],
        },
        specs: vec![spec],
        config: None,
        limits: Limits {
            jobs: 1,
            keep_going: args.keep_going,
        },
    })
}
