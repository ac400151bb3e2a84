//! `zccache why`: the last decision of a `zccache run` task, after the fact.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::WhyArgs;
use crate::config;
use crate::fingerprint::CacheType;
use crate::runner::ledger::{self, LedgerLine};
use crate::runner::record::RunFiles;
use crate::runner::spec::{RunSpec, STATE_DIR, TaskSource};
use crate::runner::tasks::{plain_run_args, task_spec};
use crate::runner::when;

/// Prints the last ledger line of the selected task.
pub fn execute(args: &WhyArgs) -> anyhow::Result<ExitCode> {
    let ledger_file = ledger_file(args)?;
    let Some(line) = ledger::read(&ledger_file).pop() else {
        bail!("no decision recorded in {}", ledger_file.display());
    };
    if args.json {
        println!("{}", serde_json::to_string(&line)?);
    } else {
        print!("{}", describe(&line));
    }
    Ok(ExitCode::SUCCESS)
}

fn ledger_file(args: &WhyArgs) -> anyhow::Result<PathBuf> {
    let cwd = std::env::current_dir()?;
    if let Some(name) = &args.name {
        let config = config::load(args.config.as_deref(), &cwd)?;
        let spec = task_spec(&config, name, &plain_run_args(false))?;
        return Ok(RunFiles::new(&spec.cache_file).ledger);
    }
    if args.task.cache.is_some() || !args.command.is_empty() {
        let spec = RunSpec::resolve(TaskSource {
            name: None,
            inputs: &args.inputs,
            task: &args.task,
            cache_type: CacheType::default(),
            argv: args.command.clone(),
            cwd,
            replay: false,
            share: false,
            staged: false,
        });
        return Ok(RunFiles::new(&spec.cache_file).ledger);
    }
    let dir = std::env::current_dir()?
        .join(args.inputs.root_or_cwd())
        .join(STATE_DIR);
    let newest = std::fs::read_dir(&dir)
        .with_context(|| format!("no zccache run state in {}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json.log"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    match newest {
        Some(entry) => Ok(entry.path()),
        None => bail!("no decision recorded in {}", dir.display()),
    }
}

fn describe(line: &LedgerLine) -> String {
    let status = match line.exit_status {
        Some(code) => format!(", exit {code}"),
        None => String::new(),
    };
    let mut text = format!(
        "{}: {} ({}){status}, {:.0} ms\n  command: {}\n",
        when(line.at_ms),
        line.decision,
        line.message,
        line.duration_ms,
        line.command.join(" ")
    );
    for part in &line.changed_parts {
        text.push_str(&format!("  changed: {part}\n"));
    }
    for change in &line.changes {
        let kind = serde_json::to_value(change.kind).unwrap_or_default();
        text.push_str(&format!(
            "  {:<8} {}\n",
            kind.as_str().unwrap_or("?"),
            change.path
        ));
    }
    text
}
