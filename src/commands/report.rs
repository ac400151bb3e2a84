//! `zccache report`: the compile journal (the daemon's, a session's, or a file) rolled up as
//! text, JSON or an HTML page, with the last verdicts of this project's `zccache run` tasks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{ReportArgs, ReportFormat};
use crate::config;
use crate::daemon::client;
use crate::daemon::lifecycle::DaemonPaths;
use crate::daemon::protocol::{Request, Response};
use crate::report::html::{self, TaskVerdict};
use crate::report::{self, Filter};
use crate::runner::ledger::{self, LedgerLine};
use crate::runner::record::RunFiles;
use crate::runner::spec::STATE_DIR;
use crate::runner::tasks::{plain_run_args, task_spec};
use crate::runner::when;

/// Writes the report to `-o FILE` or stdout.
pub fn execute(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let journal = match &args.journal {
        Some(file) => file.clone(),
        None => DaemonPaths::from_env()?
            .dir
            .join("logs")
            .join("compile_journal.jsonl"),
    };
    let filter = Filter {
        session: args.session.clone(),
        outcome: args.outcome.clone(),
        crate_name: args.crate_name.clone(),
    };
    let cwd = std::env::current_dir()?;
    let root = project_of(&cwd);
    // Before the first compile the daemon's journal does not exist yet: no compiles.
    let rollup = match report::from_journal(&journal, &filter, &root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && args.journal.is_none() => {
            report::rollup(&[], &root)
        }
        read => read.with_context(|| format!("cannot read the journal {}", journal.display()))?,
    };
    // A session or crate that names nothing is a mistake (an empty report would hide it).
    if rollup.lines == 0 && (args.session.is_some() || args.crate_name.is_some()) {
        let asked = [
            ("--session", &args.session),
            ("--crate", &args.crate_name),
            ("--outcome", &args.outcome),
        ]
        .iter()
        .filter_map(|(flag, value)| Some(format!("{flag} {}", value.as_ref()?)))
        .collect::<Vec<_>>()
        .join(" ");
        anyhow::bail!("no compile in {} matches {asked}", journal.display());
    }
    let format = args.format.unwrap_or(match &args.output {
        Some(_) => ReportFormat::Html,
        None => ReportFormat::Text,
    });
    let text = match format {
        ReportFormat::Text => report::text::render(&rollup),
        ReportFormat::Json => serde_json::to_string(&rollup)? + "\n",
        ReportFormat::Html => {
            let tasks = task_verdicts(&cwd);
            let source = journal.display().to_string();
            html::page(&rollup, tasks.as_deref(), &source)
        }
    };
    match &args.output {
        Some(file) => std::fs::write(file, text)
            .with_context(|| format!("cannot write {}", file.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The project holding `dir`: the nearest directory above with a `.git`, else `dir`.
/// Paths in reasons are shown relative to it.
fn project_of(dir: &Path) -> PathBuf {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .unwrap_or(dir)
        .to_path_buf()
}

/// The last decision of every task of `dir`: the tasks of its zccache.toml (wherever their
/// `cache` file lies), every ledger in `dir/.zccache/run/`, and the tasks the running
/// daemon watches under `dir` (a `--cache FILE` run anywhere). `None` when there is no
/// task at all; a task that has not decided yet has no row.
fn task_verdicts(dir: &Path) -> Option<Vec<TaskVerdict>> {
    let mut ledgers: Vec<(String, PathBuf)> = Vec::new();
    // One ledger reached two ways (a task's own name, its file in the state directory) is
    // one task: compared by its real directory.
    let mut add = |name: String, ledger: PathBuf| {
        let real = match (ledger.parent(), ledger.file_name()) {
            (Some(dir), Some(file)) => std::fs::canonicalize(dir).map(|d| d.join(file)),
            _ => Ok(ledger.clone()),
        };
        let ledger = real.unwrap_or(ledger);
        if !ledgers.iter().any(|(_, known)| *known == ledger) {
            ledgers.push((name, ledger));
        }
    };
    if let Ok(config) = config::load(None, dir) {
        for name in config.tasks.keys() {
            if let Ok(spec) = task_spec(&config, name, &plain_run_args(false)) {
                add(name.clone(), RunFiles::new(&spec.cache_file).ledger);
            }
        }
    }
    let state = dir.join(STATE_DIR);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&state)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".json.log"))
        .collect();
    found.sort();
    for ledger in found {
        let name = ledger.file_name().unwrap_or_default().to_string_lossy();
        add(
            name.trim_end_matches(".json.log").to_string(),
            ledger.clone(),
        );
    }
    for cache_file in watched_under(dir) {
        let shown = cache_file.strip_prefix(dir).unwrap_or(&cache_file);
        add(
            shown.display().to_string(),
            RunFiles::new(&cache_file).ledger,
        );
    }
    let any = !ledgers.is_empty() || state.is_dir();
    let verdicts = ledgers
        .iter()
        .filter_map(|(name, path)| verdict(name, &ledger::read(path)))
        .collect();
    any.then_some(verdicts)
}

/// The state files of the tasks the running daemon (if one runs: none is started) watches
/// with a root under `dir`.
fn watched_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(paths) = DaemonPaths::from_env() else {
        return Vec::new();
    };
    let Ok(Some(Response::Status(status))) = client::call_running(&paths, &Request::Status) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = status
        .indexes
        .into_iter()
        .filter(|index| Path::new(&index.root).starts_with(dir))
        .map(|index| PathBuf::from(index.cache_file))
        .collect();
    files.sort();
    files
}

/// A task's row from its recent decisions (`None` without any): the last verdict, counts,
/// the last run's time, and what the skips saved — each priced at the last run before it
/// (the mean run when none came before) less its own time.
fn verdict(task: &str, lines: &[LedgerLine]) -> Option<TaskVerdict> {
    let last = lines.last()?;
    let is_run = |l: &LedgerLine| l.decision == "run" && l.exit_status.is_some();
    let run_times: Vec<f64> = lines
        .iter()
        .filter(|l| is_run(l))
        .map(|l| l.duration_ms)
        .collect();
    let mean_run = match run_times.len() {
        0 => 0.0,
        n => run_times.iter().sum::<f64>() / n as f64,
    };
    let (mut saved_ms, mut skips, mut price) = (0.0, 0, None);
    for line in lines {
        if is_run(line) {
            price = Some(line.duration_ms);
        } else if line.decision == "skip" {
            skips += 1;
            saved_ms += (price.unwrap_or(mean_run) - line.duration_ms).max(0.0);
        }
    }
    Some(TaskVerdict {
        task: task.to_string(),
        decision: last.decision.clone(),
        message: last.message.clone(),
        when: when(last.at_ms),
        runs: run_times.len() as u64,
        skips,
        last_run_ms: run_times.last().copied(),
        saved_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(decision: &str, ms: f64, exit_status: Option<i32>) -> LedgerLine {
        LedgerLine {
            at_ms: 0,
            decision: decision.to_string(),
            reason: String::new(),
            message: format!("{decision} {ms}"),
            changes: Vec::new(),
            changed_parts: Vec::new(),
            duration_ms: ms,
            exit_status,
            command: Vec::new(),
        }
    }

    #[test]
    fn skips_are_priced_at_the_run_before_them() {
        let lines = [
            line("skip", 10.0, None),
            line("run", 1000.0, Some(0)),
            line("skip", 5.0, None),
            line("run", 3000.0, Some(1)),
            line("skip", 20.0, None),
            line("run", 0.5, None),
        ];
        let v = verdict("lint", &lines).unwrap();
        assert_eq!((v.runs, v.skips), (2, 3));
        assert_eq!(v.last_run_ms, Some(3000.0));
        // The first skip has no run before it: the mean (2000) less its 10 ms.
        assert_eq!(v.saved_ms, 1990.0 + 995.0 + 2980.0);
        assert_eq!(v.decision, "run");
        assert!(verdict("none", &[]).is_none());
    }
}
