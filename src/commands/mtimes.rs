//! `zccache mtimes save | restore`: the command around `crate::mtimes`, with its one line of
//! summary (or its counts as JSON).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use crate::cli::MtimesCommand;
use crate::fingerprint::{plural_files, thousands};
use crate::mtimes::Restored;
use crate::quote;
use crate::ui::Ui;

/// Runs `zccache mtimes ...`.
pub fn execute(command: &MtimesCommand) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let base = std::env::current_dir()?;
    let ui = Ui::default();
    match command {
        MtimesCommand::Save { file, roots, json } => {
            let roots = match roots.is_empty() {
                true => vec![PathBuf::from(".")],
                false => roots.clone(),
            };
            let saved = crate::mtimes::save(&base, file, &roots)?;
            if *json {
                println!("{}", serde_json::json!({ "saved": saved }));
            }
            ui.say(format_args!(
                "mtimes: saved {} to {} ({} ms)",
                plural_files(saved),
                quote::path(&file.to_string_lossy()),
                started.elapsed().as_millis()
            ));
        }
        MtimesCommand::Restore { file, json } => {
            let restored = crate::mtimes::restore(&base, file)?;
            if *json {
                println!("{}", counts_json(restored.unwrap_or_default()));
            }
            let Some(r) = restored else {
                ui.say(format_args!(
                    "mtimes: no snapshot at {}: nothing set back",
                    quote::path(&file.to_string_lossy())
                ));
                return Ok(ExitCode::SUCCESS);
            };
            ui.say(format_args!(
                "mtimes: {} saved: {} set back, {} already right, {} differ, {} missing ({} ms)",
                plural_files(r.total()),
                thousands(r.set_back),
                thousands(r.already),
                thousands(r.differ),
                thousands(r.missing),
                started.elapsed().as_millis()
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn counts_json(r: Restored) -> serde_json::Value {
    serde_json::json!({
        "total": r.total(),
        "set_back": r.set_back,
        "already": r.already,
        "differ": r.differ,
        "missing": r.missing,
    })
}
