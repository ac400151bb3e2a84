//! The `zccache` binary: parse, dispatch, map the outcome to an exit code.

use std::process::ExitCode;

use clap::CommandFactory;
use clap::Parser;
use zccache::cli::{Cli, Command, HookCommand};
use zccache::{commands, os, runner, ui};

/// Exit status for errors zccache itself reports.
const ERROR_EXIT: u8 = 2;

// The static x86_64 Linux binary starts at `zccache_entry` (build.rs sets the ELF entry):
// the early client serves a plain compile hit before the C library starts, and hands
// anything else to `_start`, with the stack and `rdx` as the kernel left them.
#[cfg(zccache_early_entry)]
std::arch::global_asm!(
    ".globl zccache_entry",
    ".type zccache_entry, @function",
    "zccache_entry:",
    "mov rbx, rsp",
    "mov r12, rdx",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {serve}",
    "mov rsp, rbx",
    "mov rdx, r12",
    "jmp _start",
    serve = sym serve_early,
);

/// The early client's entry (called by `zccache_entry` with the kernel's stack pointer).
#[cfg(zccache_early_entry)]
extern "C" fn serve_early(sp: *const usize) {
    // SAFETY: `sp` is the stack pointer the kernel started the process with, and nothing
    // of the C library has run yet.
    unsafe { zccache_early::serve(sp, &commands::early::SETUP) }
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(call) = commands::wrap::wrapper_argv(&argv) {
        os::die_quietly_on_broken_pipe();
        return commands::wrap::main(&call);
    }
    // Traced from the start (argument parsing included): `zccache run` only, whose
    // per-file tasks report the trace.
    let run = argv.get(1).is_some_and(|a| a == "run");
    if run {
        zccache::trace_times::start();
    }
    let lean = run.then(|| Cli::parse_run(&argv)).flatten();
    let cli = lean.unwrap_or_else(|| Cli::try_parse().unwrap_or_else(|err| usage_error(err)));
    zccache::trace_times::mark("args");
    if !matches!(cli.command, Command::DaemonServe) {
        os::die_quietly_on_broken_pipe();
    }
    let outcome = match &cli.command {
        Command::Run(args) => runner::execute(args),
        Command::Watch(args) => zccache::watch::execute(args),
        Command::Why(args) => commands::why::execute(args),
        Command::Report(args) => commands::report::execute(args),
        Command::Fp(args) => commands::fp::execute(args),
        Command::Start => commands::daemon::start(),
        Command::Stop => commands::daemon::stop(),
        Command::Status(args) => commands::daemon::status(args),
        Command::Clear(args) => commands::daemon::clear(args.yes),
        Command::DaemonServe => commands::daemon::serve(),
        Command::SettleFiles { after } => runner::settle_files(*after),
        Command::Tasks(args) => commands::tasks::execute(args),
        Command::Hook(HookCommand::Install { tasks, force }) => {
            commands::hook::install(tasks, *force)
        }
        Command::Hook(HookCommand::Uninstall) => commands::hook::uninstall(),
        Command::Completions { shell } => completions(*shell),
        Command::Kv(command) => commands::kv::execute(command),
        Command::Mtimes(command) => commands::mtimes::execute(command),
        Command::RustArtifacts { json } => commands::rust_artifacts::execute(*json),
        Command::SessionStart(args) => commands::session::start(args),
        Command::SessionStats(args) => commands::session::stats(args),
        Command::SessionEnd(args) => commands::session::end(args),
    };
    outcome.unwrap_or_else(|err| {
        ui::error(&err);
        ExitCode::from(ERROR_EXIT)
    })
}

/// Prints a usage error (with a hint for an unknown subcommand) and exits 2, or prints help
/// or the version and exits 0.
fn usage_error(err: clap::Error) -> ! {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let _ = err.print();
    if err.kind() == ErrorKind::InvalidSubcommand {
        if let Some(ContextValue::String(word)) = err.get(ContextKind::InvalidSubcommand)
            && err.get(ContextKind::SuggestedSubcommand).is_none()
        {
            let command = Cli::command();
            let names = command.get_subcommands().map(|c| c.get_name());
            if let Some(near) = zccache::suggest::closest(word, names) {
                eprintln!("did you mean '{near}'?");
            }
        }
        eprintln!(
            "(to run a tool through the cache, name a compiler, rustc, ar or ld, give its path, or put it after --)"
        );
    }
    std::process::exit(err.exit_code())
}

fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    clap_complete::generate(
        shell,
        &mut Cli::command(),
        "zccache",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::SUCCESS)
}
