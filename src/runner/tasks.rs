//! `zccache run NAME...` / `--all`: tasks from `zccache.toml` as a graph, dependencies
//! first, each once, independent ones at the same time (`-j`) unless they share a `serial`
//! group, stopping at the first failure unless `--keep-going`. Flags given on the command line override a task's settings.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use super::check::Prechecked;
use super::graph::{Graph, GraphRun, Limits, schedule};
use super::outcome::{Ended, Outcome};
use super::report;
use super::spec::{RunSpec, TaskSource};
use super::{precheck, run_spec};
use clap::Parser;

use crate::cli::{Cli, Command, InputArgs, RunArgs, TaskArgs};
use crate::config::{self, Config, Task};
use crate::console::Console;
use crate::ui::Ui;

/// The tasks `args` name (or all) from the zccache.toml found from `cwd`: their graph, each
/// task's spec (validated) and how they run.
pub struct TaskPlan {
    /// The file they came from.
    pub config: Config,
    /// Tasks in dependency order.
    pub graph: Graph,
    /// Each task's spec, in the graph's order.
    pub specs: Vec<RunSpec>,
    /// `-j` and `--keep-going`.
    pub limits: Limits,
}

/// Resolves the tasks `args` name (or all); an error for a mistake no run can mend.
pub fn plan_tasks(args: &RunArgs, cwd: &std::path::Path) -> anyhow::Result<TaskPlan> {
    let config = config::load(args.config.as_deref(), cwd)?;
    let wanted: Vec<String> = if args.all {
        config.tasks.keys().cloned().collect()
    } else {
        args.tasks.clone()
    };
    if wanted.is_empty() {
        anyhow::bail!("{} defines no tasks", config.path.display());
    }
    let graph = Graph::new(&config, &wanted)?;
    let specs = graph
        .names
        .iter()
        .map(|name| task_spec(&config, name, args))
        .collect::<anyhow::Result<Vec<RunSpec>>>()?;
    for (name, spec) in graph.names.iter().zip(&specs) {
        spec.validate()
            .map_err(|why| anyhow::anyhow!("{}: task {name}: {why}", config.path.display()))?;
    }
    let limits = Limits {
        jobs: jobs(args, &config),
        keep_going: args.keep_going,
    };
    Ok(TaskPlan {
        config,
        graph,
        specs,
        limits,
    })
}

/// Runs the named tasks (or all); exits with the first failing task's status.
pub fn run_tasks(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let TaskPlan {
        graph,
        specs,
        limits,
        ..
    } = plan_tasks(args, &std::env::current_dir()?)?;
    let (run, _) = run_graph(&graph, &specs, args, limits);
    if !args.json && specs.len() > 1 {
        Ui::new(args.quiet).say(report::summary(&run.ends, started.elapsed()));
    }
    Ok(ExitCode::from(exit_status(&run.ends, run.first_failure)))
}

/// When (wall clock, comparable with file mtimes) a task's check began and its run ended
/// (`None`: it never started).
pub type Window = Option<(SystemTime, SystemTime)>;

/// Runs `specs` (the tasks of `graph`, in its order) through the cache, each as `zccache
/// run` would; returns every task's end and when it ran.
pub fn run_graph(
    graph: &Graph,
    specs: &[RunSpec],
    args: &RunArgs,
    limits: Limits,
) -> (GraphRun, Vec<Window>) {
    let parallel = limits.jobs > 1 && specs.len() > 1;
    // On the clock file times come from: a file stamped before it was written before.
    let checks_began = crate::os::file_clock_now();
    let prechecked: Vec<Mutex<Option<Prechecked>>> =
        precheck(specs, args).into_iter().map(Mutex::new).collect();
    let written: Mutex<Vec<Wrote>> = Mutex::new(Vec::new());
    let windows: Vec<Mutex<Window>> = specs.iter().map(|_| Mutex::new(None)).collect();
    // The tasks that printed their own JSON object (every one that was handed to `run_spec`).
    let reported: Vec<AtomicBool> = specs.iter().map(|_| AtomicBool::new(false)).collect();
    let run = schedule(graph, limits, |i| {
        let began = crate::os::file_clock_now();
        reported[i].store(true, Ordering::SeqCst);
        // A check made before the graph started holds while no task wrote into its inputs.
        let still_valid = !may_touch(&lock(&written), &specs[i]);
        let prechecked = match still_valid {
            true => lock(&prechecked[i]).take(),
            false => None,
        };
        // A task that goes by that check saw its inputs as they were before the graph.
        let began = match prechecked {
            Some(_) => checks_began,
            None => began,
        };
        let console = Arc::new(Console::new(args.output_mode, &graph.names[i], parallel));
        let ended = run_spec(&specs[i], args, &console, prechecked);
        match ended.outcome {
            Outcome::Restored => lock(&written).push(Wrote::Under(specs[i].output_roots())),
            Outcome::Ran | Outcome::Failed => lock(&written).push(Wrote::Anything),
            _ => {}
        }
        console.finish();
        *lock(&windows[i]) = Some((began, SystemTime::now()));
        ended
    });
    if args.json {
        for (i, name) in graph.names.iter().enumerate() {
            if !reported[i].load(Ordering::SeqCst) {
                report::not_run_json(Some(name));
            }
        }
    }
    let windows = windows.into_iter().map(|w| *lock(&w)).collect();
    (run, windows)
}

/// What a finished task may have written.
enum Wrote {
    /// Files under these paths only (its restored outputs).
    Under(Vec<PathBuf>),
    /// Anything: its command ran.
    Anything,
}

/// Whether the writes of the tasks that ended may have changed `spec`'s inputs.
fn may_touch(written: &[Wrote], spec: &RunSpec) -> bool {
    let mut under = Vec::new();
    for wrote in written {
        match wrote {
            Wrote::Under(paths) => under.extend(paths.iter().map(PathBuf::as_path)),
            Wrote::Anything => return true,
        }
    }
    spec.may_read_under(under)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `-j`, else `[defaults] jobs`, else the number of CPUs this process may use (its CPU
/// affinity and cgroup CPU quota, as std's `available_parallelism` counts them).
pub fn jobs(args: &RunArgs, config: &Config) -> usize {
    args.jobs
        .map(usize::from)
        .or(config.defaults.jobs)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .clamp(1, crate::os::MAX_CHILDREN)
}

/// The first failure's status; else 128 + N when signal N interrupted the run; else (a dry
/// run) the highest: 1 when a task would run.
pub fn exit_status(ends: &[Ended], first_failure: Option<usize>) -> u8 {
    match (first_failure, crate::os::interrupted()) {
        (Some(i), _) => ends[i].status.max(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(1),
        (None, None) => ends.iter().map(|e| e.status).max().unwrap_or(0),
    }
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
        files: match cli_task.files.is_empty() {
            true => task.files.clone(),
            false => cli_task.files.clone(),
        },
        batch_size: cli_task.batch_size.or(task.batch_size),
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
