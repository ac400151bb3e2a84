//! `zccache report`: the compile journal (the daemon's, a session's, or a file) rolled up as
//! text, JSON or an HTML page, with the last verdicts of this project's `zccache run` tasks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{ReportArgs, ReportFormat};
use crate::daemon::lifecycle::DaemonPaths;
use crate::report::html::{self, TaskVerdict};
use crate::report::{self, Filter};
use crate::runner::spec::STATE_DIR;
use crate::runner::{ledger, when};

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
    let rollup = report::from_journal(&journal, &filter)
        .with_context(|| format!("cannot read the journal {}", journal.display()))?;
    let format = args.format.unwrap_or(match &args.output {
        Some(_) => ReportFormat::Html,
        None => ReportFormat::Text,
    });
    let text = match format {
        ReportFormat::Text => report::text(&rollup),
        ReportFormat::Json => serde_json::to_string(&rollup)? + "\n",
        ReportFormat::Html => {
            let tasks = task_verdicts(&std::env::current_dir()?);
            html::page(&rollup, &tasks, &journal.display().to_string())
        }
    };
    match &args.output {
        Some(file) => std::fs::write(file, text)
            .with_context(|| format!("cannot write {}", file.display()))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The last decision of every task whose state lives in `dir/.zccache/run/`.
fn task_verdicts(dir: &Path) -> Vec<TaskVerdict> {
    let Ok(entries) = std::fs::read_dir(dir.join(STATE_DIR)) else {
        return Vec::new();
    };
    let mut ledgers: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".json.log"))
        .collect();
    ledgers.sort();
    ledgers
        .iter()
        .filter_map(|path| {
            let line = ledger::read(path).pop()?;
            let name = path.file_name()?.to_string_lossy();
            Some(TaskVerdict {
                task: name.trim_end_matches(".json.log").to_string(),
                decision: line.decision,
                message: line.message,
                when: when(line.at_ms),
            })
        })
        .collect()
}
