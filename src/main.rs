//! The `zccache` binary: parse, dispatch, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use zccache::cli::{Cli, Command};
use zccache::{commands, runner, ui};

/// Exit status for errors zccache itself reports.
const ERROR_EXIT: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Run(args) => runner::execute(args),
        Command::Why(args) => commands::why::execute(args),
        Command::Fp(args) => commands::fp::execute(args),
        Command::Start => commands::daemon::start(),
        Command::Stop => commands::daemon::stop(),
        Command::Status(args) => commands::daemon::status(args),
        Command::Clear => commands::daemon::clear(),
        Command::DaemonServe => commands::daemon::serve(),
    };
    outcome.unwrap_or_else(|err| {
        ui::error(&err);
        ExitCode::from(ERROR_EXIT)
    })
}
