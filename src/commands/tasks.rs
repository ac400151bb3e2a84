//! `zccache tasks [--json]`: every task of zccache.toml, whether it would skip now (decided
//! without running or writing anything), and its last recorded decision.

use std::process::ExitCode;

use crate::cli::TasksArgs;
use crate::config;
use crate::quote;
use crate::runner::ledger;
use crate::runner::record::RunFiles;
use crate::runner::tasks::{plain_run_args, task_spec};
use crate::runner::{when, would_skip};

/// Lists the tasks.
pub fn execute(args: &TasksArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir()?;
    let config = config::load(args.config.as_deref(), &cwd)?;
    let run_args = plain_run_args(args.no_daemon);
    for (name, task) in &config.tasks {
        let spec = task_spec(&config, name, &run_args)?;
        // A task given wrongly (a missing root, a bad glob) says why instead of "unknown".
        let invalid = spec.validate().err();
        let skip = match invalid {
            Some(_) => None,
            None => would_skip(&spec, &run_args),
        };
        let mut history = ledger::read(&RunFiles::new(&spec.cache_file).ledger);
        let last_success_ms = history
            .iter()
            .rev()
            .find(|l| l.exit_status.is_none_or(|c| c == 0))
            .map(|l| l.at_ms);
        let last = history.pop();
        let command: Vec<String> = task.command.as_ref().map(|c| c.argv()).unwrap_or_default();
        if args.json {
            let json = serde_json::json!({
                "task": name,
                "command": command,
                "depends_on": task.depends_on,
                "cache": spec.cache_file,
                "would_skip": skip,
                "invalid": invalid,
                "last_success_ms": last_success_ms,
                "last": last,
            });
            println!("{json}");
            continue;
        }
        let verdict = match (skip, &invalid) {
            (_, Some(why)) => {
                println!("{name:<12} invalid     {}", quote::controls(why));
                continue;
            }
            (Some(true), _) => "would skip",
            (Some(false), _) => "would run",
            (None, _) => "unknown",
        };
        let last = last.map_or("never run".to_string(), |l| {
            let exit = l
                .exit_status
                .map(|c| format!(", exit {c}"))
                .unwrap_or_default();
            format!("last: {} at {}{exit}", l.decision, when(l.at_ms))
        });
        // The command comes from the repository's file: nothing in it may drive the terminal.
        println!(
            "{name:<12} {verdict:<10}  {last:<28}  {}",
            quote::controls(&command.join(" "))
        );
    }
    Ok(ExitCode::SUCCESS)
}
