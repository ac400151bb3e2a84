//! The watch loop: a first round of every task, then one round per burst of changes, of
//! the tasks whose sets changed and their dependents, in dependency order, through the
//! runner's graph run. Each round starts with one line (time, what changed, what runs) and
//! ends with the runner's summary line; a failure does not end the watch. Changes heard
//! during a round make one more round after it. A zccache.toml edit reloads the tasks (a
//! broken file: one error line, the old tasks go on). When the daemon goes away, the watch
//! goes on with a watcher of its own, after a round that catches up on what it missed.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::debounce::{Burst, next_burst};
use super::loops::{Loops, Verdict};
use super::plan::Plan;
use super::source::{Event, Source, Sources};
use crate::cli::WatchArgs;
use crate::runner::outcome::Outcome;
use crate::runner::tasks::run_graph;
use crate::ui::Ui;

/// A running watch.
pub struct Watch<'a> {
    args: &'a WatchArgs,
    ui: Ui,
    plan: Plan,
    sources: Sources,
    source: Source,
    loops: Loops,
    /// Per task, the changed paths no round has seen yet.
    pending: Vec<BTreeSet<String>>,
    /// Per task, how many more paths changed than the daemon named (it names 20 a set).
    unnamed: Vec<u64>,
    /// Per task, whether its last end let its dependents run.
    healthy: Vec<bool>,
}

impl<'a> Watch<'a> {
    /// Resolves the tasks and subscribes to their input sets; says how on one line.
    pub fn start(args: &'a WatchArgs) -> anyhow::Result<Self> {
        let ui = Ui::new(args.run.quiet);
        let plan = Plan::load(&args.run)?;
        let settle = Duration::from_millis(args.debounce);
        let mut sources = Sources::new(args.run.no_daemon, settle);
        let source = sources.open(&plan.sets()).map_err(anyhow::Error::msg)?;
        ui.say(format_args!(
            "watching {} ({}); Ctrl-C stops",
            plan.graph.names.join(", "),
            source.how
        ));
        let tasks = plan.specs.len();
        Ok(Watch {
            args,
            ui,
            plan,
            sources,
            source,
            loops: Loops::new(tasks),
            pending: vec![BTreeSet::new(); tasks],
            unnamed: vec![0; tasks],
            healthy: vec![true; tasks],
        })
    }

    /// Runs rounds until interrupted; returns 128 + the signal.
    pub fn run(mut self) -> u8 {
        self.round(&vec![true; self.plan.specs.len()], "first run");
        // The engine reports a burst once it went quiet for --debounce; what is queued by
        // then is one round.
        let quiet = Duration::from_millis(1);
        let stop = || crate::os::interrupted().is_some();
        loop {
            let events = match next_burst(&self.source.events, quiet, stop) {
                Burst::Stopped => break,
                Burst::Closed => vec![Event::Lost("the event stream ended".to_string())],
                Burst::Events(events) => events,
            };
            let config_changed = self.take(events);
            // A broken zccache.toml keeps the old tasks: the burst's other changes make
            // their round now.
            if config_changed && self.reload() {
                continue;
            }
            // Tasks not run last time join a round that something new starts.
            let changed: Vec<bool> = self.pending.iter().map(|p| !p.is_empty()).collect();
            let new = self.pending.iter().flatten().any(|p| p != NOT_RUN);
            if new {
                let what = self.describe_changes();
                let sound = self.sound_outputs();
                let keep = self.plan.round(&changed, &sound);
                self.round(&keep, &what);
            }
        }
        let signal = crate::os::interrupted().unwrap_or(libc::SIGINT);
        u8::try_from(128 + signal).unwrap_or(1)
    }

    /// Sorts a burst's changes into the tasks' pending paths; true when zccache.toml changed.
    fn take(&mut self, events: Vec<Event>) -> bool {
        let tasks = self.plan.specs.len();
        let mut config_changed = false;
        for event in events {
            let changes = match event {
                Event::Lost(why) => {
                    self.fall_back(&why);
                    continue;
                }
                Event::Changed(changes) => changes,
            };
            for change in changes {
                let i = change.set as usize;
                if i >= tasks {
                    config_changed = true;
                    continue;
                }
                // A report with a marker (not a path: the ignore rules changed) names files
                // whose times cannot date the change: each is pending as it is.
                let undated = change.paths.iter().any(|p| p.starts_with('('));
                for path in change.paths {
                    match undated {
                        true => _ = self.pending[i].insert(path),
                        false => self.judge(i, path),
                    }
                }
                if change.more > 0 {
                    self.unnamed[i] += u64::from(change.more);
                    self.pending[i].insert("(more than the daemon named)".to_string());
                }
            }
        }
        config_changed
    }

    fn judge(&mut self, i: usize, path: String) {
        let file = self.plan.specs[i].root.join(&path);
        let written = std::fs::symlink_metadata(file).map(|m| changed_at(&m));
        match self.loops.judge(i, &path, written.ok()) {
            Verdict::Pending => {
                self.pending[i].insert(path);
            }
            Verdict::OwnWrite => {
                let name = &self.plan.graph.names[i];
                self.ui.warn(format_args!(
                    "{name} writes {} inside its own input set while it runs; that no longer \
                     triggers {name} (declare it an output, or exclude it)",
                    crate::quote::path(&path)
                ));
            }
            Verdict::Seen | Verdict::Ignored => {}
        }
    }

    /// The daemon went away: follow the sets here, then catch up with a round of all tasks.
    fn fall_back(&mut self, why: &str) {
        if !self.source.from_daemon {
            return;
        }
        self.ui.warn(format_args!(
            "lost the daemon ({why}); inotify in this process watches from now on"
        ));
        match self
            .sources
            .local(&self.plan.sets(), "the daemon went away")
        {
            Ok(source) => self.source = source,
            Err(why) => {
                self.ui
                    .error(format_args!("cannot watch without the daemon: {why}"));
                std::process::exit(2);
            }
        }
        for (i, pending) in self.pending.iter_mut().enumerate() {
            pending.insert(format!("(events missed while the daemon went away: {i})"));
        }
    }

    /// zccache.toml changed: the new tasks and a round of them (true), or (a broken file)
    /// one error line and the old tasks (false).
    fn reload(&mut self) -> bool {
        let plan = match Plan::load(&self.args.run) {
            Ok(plan) => plan,
            Err(e) => {
                let text = format!("{e:#}");
                let line: Vec<&str> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect();
                self.ui.error(format_args!(
                    "zccache.toml changed but cannot be used ({}); still watching the tasks as they were",
                    line.join(" ")
                ));
                return false;
            }
        };
        match self.sources.open(&plan.sets()) {
            Ok(source) => self.source = source,
            Err(why) => {
                self.ui
                    .error(format_args!("cannot watch the new tasks: {why}"));
                return false;
            }
        }
        let tasks = plan.specs.len();
        self.plan = plan;
        self.loops = Loops::new(tasks);
        self.pending = vec![BTreeSet::new(); tasks];
        self.unnamed = vec![0; tasks];
        self.healthy = vec![true; tasks];
        self.round(&vec![true; tasks], "zccache.toml changed, reloaded");
        true
    }

    /// Per task: whether it ended well last time and no change pending in any set lies
    /// under its declared outputs (a dependency's deleted or edited output is restored by
    /// running it first, through the cache).
    fn sound_outputs(&self) -> Vec<bool> {
        let changed: Vec<PathBuf> = self
            .pending
            .iter()
            .zip(&self.plan.specs)
            .flat_map(|(paths, spec)| paths.iter().map(|p| spec.root.join(p)))
            .collect();
        self.plan
            .specs
            .iter()
            .zip(&self.healthy)
            .map(|(spec, healthy)| *healthy && !changed.iter().any(|c| spec.outputs_hold(c)))
            .collect()
    }

    /// `src/a.rs changed`, `src/a.rs and 3 more changed`.
    fn describe_changes(&self) -> String {
        let all: BTreeSet<&str> = self
            .pending
            .iter()
            .flatten()
            .map(String::as_str)
            .filter(|p| !p.starts_with('('))
            .collect();
        let unnamed = self.unnamed.iter().copied().max().unwrap_or(0);
        match (all.first(), all.len() as u64 + unnamed) {
            (None, _) => "caught up after the daemon went away".to_string(),
            (Some(first), 1) => format!("{first} changed"),
            (Some(first), n) => format!("{first} and {} more changed", n - 1),
        }
    }

    /// One round: the first line, the tasks in `keep` through the cache, the summary.
    fn round(&mut self, keep: &[bool], what: &str) {
        let (graph, kept) = self.plan.graph.restricted(keep);
        if self.args.clear {
            print!("\x1b[2J\x1b[3J\x1b[H");
            let _ = std::io::stdout().flush();
        }
        self.ui.say(format_args!(
            "{} {what}: {}",
            clock(),
            graph.names.join(", ")
        ));
        let specs: Vec<_> = kept.iter().map(|&i| self.plan.specs[i].clone()).collect();
        let taken: Vec<_> = kept
            .iter()
            .map(|&i| (std::mem::take(&mut self.pending[i]), self.unnamed[i]))
            .collect();
        for &i in &kept {
            self.unnamed[i] = 0;
        }
        let started = Instant::now();
        let (run, windows) = run_graph(&graph, &specs, &self.args.run, self.plan.limits);
        for ((j, &i), (paths, unnamed)) in kept.iter().enumerate().zip(taken) {
            let end = run.ends[j];
            self.healthy[i] = end.lets_dependents_run();
            match windows[j] {
                Some(window) => {
                    let ran = matches!(end.outcome, Outcome::Ran | Outcome::Failed);
                    self.loops.ran(i, window, ran);
                }
                // Never started (an earlier failure stopped the graph): what it has not
                // seen makes it part of the next round.
                None => {
                    self.pending[i].extend(paths);
                    self.pending[i].insert(NOT_RUN.to_string());
                    self.unnamed[i] += unnamed;
                }
            }
        }
        if crate::os::interrupted().is_none() {
            if let Some(ended) = windows.iter().flatten().map(|(_, ended)| *ended).max() {
                super::loops::stamp_after(ended);
            }
            let summary = crate::runner::summary(&run.ends, started.elapsed());
            self.ui.say(format_args!("{summary}; watching"));
        }
    }
}

/// What a task that did not start in a round has pending (not a path: named by none).
const NOT_RUN: &str = "(not run in the last round)";

/// The local time now, `HH:MM:SS`.
fn clock() -> String {
    let ms = crate::fingerprint::now_ms();
    let secs = (ms / 1000) % 60;
    match crate::os::local_time(ms) {
        Some(t) => format!("{:02}:{:02}:{secs:02}", t.hour, t.minute),
        None => format!("{secs:02}s"),
    }
}

/// When a file last changed: the later of its mtime and its ctime (`Stat::changed_ns`). The
/// mtime alone can be older than the change that brought it (`mv` of an older file, `cp -p`,
/// `tar x`, `touch -d`); the ctime, which nothing sets back, is not.
fn changed_at(meta: &std::fs::Metadata) -> std::time::SystemTime {
    let ns = crate::fingerprint::Stat::of(meta).changed_ns();
    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}
