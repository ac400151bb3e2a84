//! `zccache why`: the last decision of a `zccache run` task, or the recent misses of a
//! compile output and what changed, after the fact.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;

use crate::cli::WhyArgs;
use crate::compile_cache::miss_reason::{Miss, PASSED_THROUGH};
use crate::config;
use crate::daemon::client;
use crate::daemon::lifecycle::DaemonPaths;
use crate::daemon::protocol::{NormalizedPath, Request, Response};
use crate::fingerprint::CacheType;
use crate::quote;
use crate::runner::ledger::{self, LedgerLine};
use crate::runner::record::RunFiles;
use crate::runner::spec::{RunSpec, STATE_DIR, TaskSource};
use crate::runner::tasks::{plain_run_args, task_spec};
use crate::runner::when;

/// Prints the last ledger line of the selected task, or the misses of the named outputs.
pub fn execute(args: &WhyArgs) -> anyhow::Result<ExitCode> {
    let cwd = std::env::current_dir()?;
    if names_outputs(args, &cwd)? {
        return outputs(args, &cwd);
    }
    let ledger_file = ledger_file(args)?;
    let Some(line) = ledger::read(&ledger_file).pop() else {
        bail!(
            "no decision recorded in {} (the task has not run with these settings)",
            ledger_file.display()
        );
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
    if let Some(name) = args.names.first() {
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
    let root = crate::paths::lexically_absolute(&cwd, &args.inputs.root_or_cwd());
    let dir = root.join(STATE_DIR);
    let newest = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json.log"))
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok());
    match newest {
        Some(entry) => Ok(entry.path()),
        None => bail!(
            "no task's decision in {} (where tasks without --cache keep them); for a task run \
             with --cache FILE say `zccache why --cache FILE`, or name it: `zccache why TASK` \
             or `zccache why -- CMD ARGS`",
            dir.display()
        ),
    }
}

/// Several names, or one that is no task of zccache.toml but looks like a file (it has a
/// `/` or a `.`, or exists): compile outputs. A bare word that is no task is an error
/// saying where tasks were looked for.
fn names_outputs(args: &WhyArgs, cwd: &Path) -> anyhow::Result<bool> {
    let [name] = args.names.as_slice() else {
        return Ok(args.names.len() > 1);
    };
    let config = config::load(args.config.as_deref(), cwd);
    if config.as_ref().is_ok_and(|c| c.tasks.contains_key(name)) {
        return Ok(false);
    }
    if name.contains(['/', '.']) || cwd.join(name).exists() {
        return Ok(true);
    }
    match config {
        Ok(config) => Err(config.task(name).map(drop).unwrap_err().into()),
        Err(e) => {
            bail!("{name:?} is no task ({e}) and no file here; name a compile output by its path")
        }
    }
}

/// Each output's recent misses (newest first) as the daemon remembers them; exit 1 when
/// none of them has one.
fn outputs(args: &WhyArgs, cwd: &Path) -> anyhow::Result<ExitCode> {
    let paths = DaemonPaths::from_env()?;
    let mut found = false;
    for name in &args.names {
        let request = Request::WhyOutput {
            output: NormalizedPath::new(cwd, Path::new(name)),
        };
        let misses = match client::call_running(&paths, &request)? {
            Some(Response::OutputMisses { misses }) => misses,
            Some(other) => bail!("unexpected reply: {other:?}"),
            None => bail!("no daemon running: compile misses are kept by the daemon"),
        };
        found |= !misses.is_empty();
        if args.json {
            for miss in &misses {
                let line = serde_json::json!({
                    "output": name, "at_ms": miss.at_ms, "reasons": miss.reasons,
                });
                println!("{line}");
            }
            continue;
        }
        // A shell glob names outputs from the tree, and reasons name headers and inputs.
        let shown = quote::path(name);
        if misses.is_empty() {
            println!(
                "{shown}: no miss or passthrough recorded since the daemon started (hits \
                 record nothing)"
            );
            continue;
        }
        println!("{shown}: {}, newest first", counted(&misses));
        for miss in &misses {
            print!("{}", reasons_text(&when(miss.at_ms), &miss.reasons));
        }
    }
    Ok(if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Reasons that fit in this many characters are printed on one line.
const ONE_LINE: usize = 100;
/// Reasons listed one per line at most; the rest are counted.
const LISTED: usize = 10;

/// One miss's reasons after `when`: on one line (`; ` between) while they fit, else one
/// per line under each other, at most `LISTED` and `... and N more` (a link with 25
/// changed inputs).
fn reasons_text(when: &str, reasons: &[String]) -> String {
    let joined = reasons.join("; ");
    if reasons.len() <= 1 || joined.chars().count() <= ONE_LINE {
        return format!("  {when}  {}\n", quote::controls(&joined));
    }
    let pad = " ".repeat(when.chars().count());
    let mut text = String::new();
    for (i, reason) in reasons.iter().take(LISTED).enumerate() {
        let at = if i == 0 { when } else { pad.as_str() };
        text.push_str(&format!("  {at}  {}\n", quote::controls(reason)));
    }
    if reasons.len() > LISTED {
        text.push_str(&format!(
            "  {pad}  ... and {} more\n",
            reasons.len() - LISTED
        ));
    }
    text
}

/// `2 recent misses`, `1 recent passthrough`, `1 recent miss, 2 passthroughs`.
fn counted(misses: &[Miss]) -> String {
    let passed = misses
        .iter()
        .filter(|m| m.reasons.iter().any(|r| r.starts_with(PASSED_THROUGH)))
        .count();
    let parts: Vec<String> = [
        (misses.len() - passed, "miss", "misses"),
        (passed, "passthrough", "passthroughs"),
    ]
    .into_iter()
    .filter(|(count, _, _)| *count > 0)
    .enumerate()
    .map(|(i, (count, one, many))| {
        let recent = if i == 0 { "recent " } else { "" };
        let noun = if count == 1 { one } else { many };
        format!("{count} {recent}{noun}")
    })
    .collect();
    parts.join(", ")
}

/// The ledger line for a terminal: paths quoted, and no control character from the file
/// (written by any version, or by hand) printed raw.
fn describe(line: &LedgerLine) -> String {
    let status = match line.exit_status {
        Some(code) => format!(", exit {code}"),
        None => String::new(),
    };
    let mut text = format!(
        "{}: {} ({}){status}, {:.0} ms\n  command: {}\n",
        when(line.at_ms),
        quote::controls(&line.decision),
        quote::controls(&line.message),
        line.duration_ms,
        quote::controls(&line.command.join(" "))
    );
    for part in &line.changed_parts {
        text.push_str(&format!("  changed: {}\n", quote::controls(part)));
    }
    for change in &line.changes {
        let kind = serde_json::to_value(change.kind).unwrap_or_default();
        text.push_str(&format!(
            "  {:<8} {}\n",
            kind.as_str().unwrap_or("?"),
            quote::path(&change.path)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_reasons_are_listed_one_per_line_and_capped() {
        let few = [
            "argument changed: -O2 -> -O3".to_string(),
            "source changed".to_string(),
        ];
        assert_eq!(
            reasons_text("10:02", &few),
            "  10:02  argument changed: -O2 -> -O3; source changed\n"
        );
        let many: Vec<String> = (1..=25)
            .map(|i| format!("input changed: obj/part{i:02}.o"))
            .collect();
        let text = reasons_text("10:02", &many);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), LISTED + 1, "{text}");
        assert_eq!(lines[0], "  10:02  input changed: obj/part01.o");
        assert_eq!(lines[1], "         input changed: obj/part02.o");
        assert_eq!(lines[LISTED], "         ... and 15 more");
    }
}
