//! `zccache run NAME...` / `--all`: tasks from `zccache.toml`, dependencies first, each once,
//! stopping at the first failure. Flags given on the command line override a task's settings.

use std::ffi::OsString;
use std::process::ExitCode;

use super::run_spec;
use super::spec::{RunSpec, TaskSource};
use clap::Parser;

use crate::cli::{Cli, Command, InputArgs, RunArgs, TaskArgs};
use crate::config::{self, Config, Task};

/// Runs the named tasks (or all); exits with the first failing task's status.
pub fn run_tasks(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir()?;
    let config = config::load(args.config.as_deref(), &cwd)?;
    let wanted: Vec<String> = if args.all {
        config.tasks.keys().cloned().collect()
    } else {
        args.tasks.clone()
    };
    for name in config.order(&wanted)? {
        let spec = task_spec(&config, &name, args)?;
        let status = run_spec(&spec, args);
        if status != 0 {
            return Ok(ExitCode::from(status));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The resolved spec of task `name`, with command-line flags over the file's settings.
pub fn task_spec(config: &Config, name: &str, args: &RunArgs) -> anyhow::Result<RunSpec> {
    let task = config.task(name)?;
    let (inputs, task_args) = merged(config, task, &args.inputs, &args.task);
    let argv: Vec<OsString> = task
        .command
        .as_ref()
        .map(|c| c.argv().into_iter().map(OsString::from).collect())
        .unwrap_or_default();
    let cwd = config.dir.join(task.cwd.as_deref().unwrap_or(".".as_ref()));
    let cwd = std::fs::canonicalize(&cwd).unwrap_or(cwd);
    let cache_type = args
        .cache_type
        .or(task.cache_type)
        .or(config.defaults.cache_type)
        .unwrap_or_default();
    let replay = args.replay || task.replay.or(config.defaults.replay).unwrap_or(false);
    let share = args.share || task.share.or(config.defaults.share).unwrap_or(false);
    Ok(RunSpec::resolve(TaskSource {
        name: Some(name),
        inputs: &inputs,
        task: &task_args,
        cache_type,
        argv,
        cwd,
        replay,
        share,
        staged: args.staged,
    }))
}

/// The task's input set and identity: the command line's values where given, else the
/// task's, else `[defaults]`. Paths from the file are made relative to the task's cwd.
fn merged(
    config: &Config,
    task: &Task,
    cli: &InputArgs,
    cli_task: &TaskArgs,
) -> (InputArgs, TaskArgs) {
    let defaults = &config.defaults;
    let cwd = config.dir.join(task.cwd.as_deref().unwrap_or(".".as_ref()));
    let from_file = |p: &std::path::Path| config.dir.join(p);
    let root = cli.root.clone().or_else(|| {
        task.root
            .as_deref()
            .or(defaults.root.as_deref())
            .map(from_file)
    });
    let pick = |given: &Vec<String>, own: &Option<Vec<String>>, shared: &Vec<String>| {
        if given.is_empty() {
            own.clone().unwrap_or_else(|| shared.clone())
        } else {
            given.clone()
        }
    };
    let joined = |given: &Vec<String>, own: &Vec<String>, shared: &Vec<String>| {
        if given.is_empty() {
            shared.iter().chain(own).cloned().collect()
        } else {
            given.clone()
        }
    };
    let inputs = InputArgs {
        root: Some(root.unwrap_or_else(|| config.dir.clone())),
        extensions: pick(&cli.extensions, &task.ext, &defaults.ext),
        include: pick(&cli.include, &task.include, &defaults.include),
        exclude: joined(&cli.exclude, &task.exclude, &defaults.exclude),
    };
    let outputs = if cli_task.outputs.is_empty() {
        task.outputs.iter().map(|p| from_file(p)).collect()
    } else {
        cli_task.outputs.clone()
    };
    let task_args = TaskArgs {
        cache: cli_task.cache.clone(),
        env: joined(&cli_task.env, &task.env, &defaults.env),
        outputs: outputs
            .into_iter()
            .map(|p| p.strip_prefix(&cwd).map(|r| r.to_path_buf()).unwrap_or(p))
            .collect(),
    };
    (inputs, task_args)
}

/// `zccache run` arguments with nothing overridden.
pub fn plain_run_args(no_daemon: bool) -> RunArgs {
    let mut argv = vec!["zccache", "run"];
    if no_daemon {
        argv.push("--no-daemon");
    }
    match Cli::parse_from(argv).command {
        Command::Run(args) => args,
        _ => unreachable!("parsed a run command"),
    }
}
