//! Wrapper mode: `zccache gcc ARGS` (as `CC="zccache gcc"`), `zccache ar|ld ARGS`,
//! `RUSTC_WRAPPER=zccache`. The compile or link is served by the daemon in one round trip;
//! the client only writes back the tool's output and status.
//! If the daemon cannot be reached the real compiler runs directly — a cache that is down
//! never fails a build — with one warning per minute at most.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, SystemTime};

use super::early::SESSION_ENV;
use crate::child::Group;
use crate::compile_cache::args::{
    Classified, classify, expand_response_files, is_c_driver, names_stdin,
};
use crate::compile_cache::link_args::{is_archiver, is_linker};
use crate::compile_cache::request::{TERMINAL_ENV, UMASK_ENV};
use crate::compile_cache::rust::{is_clippy_driver, is_rustc};
use crate::console::Console;
use crate::daemon::client::{self, ClientError};
use crate::daemon::lifecycle::{DaemonPaths, daemon_disabled};
use crate::daemon::protocol::{NormalizedPath, Request, Response};
use crate::program::resolve_program_except;
use crate::trace_times;

/// How often the "running uncached" warning may repeat.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Exit status when the compiler cannot be found or started.
const NOT_FOUND: u8 = 127;

/// `argv` as a wrapper call: `zccache gcc ARGS` as is, or `gcc ARGS` through a symlink named
/// like a compiler (`gcc -> zccache`), turned into `zccache gcc ARGS`.
pub fn wrapper_argv(argv: &[OsString]) -> Option<Vec<OsString>> {
    let name = argv
        .first()
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str());
    // A symlink named like a compiler driver pointing at zccache masquerades.
    if let Some(name) = name.filter(|n| zccache_early::rules::masquerades(n.as_bytes())) {
        let mut call = vec![OsString::from("zccache"), OsString::from(name)];
        call.extend(argv[1..].iter().cloned());
        return Some(call);
    }
    if argv.get(1).is_some_and(|a| a == "--") && argv.len() > 2 {
        let mut call = vec![argv[0].clone()];
        call.extend(argv[2..].iter().cloned());
        return Some(call);
    }
    is_wrapper_call(argv).then(|| argv.to_vec())
}

/// True for `ar` and `ld` (sent as `LinkEphemeral`).
fn is_link_tool(tool: &Path) -> bool {
    let name = tool.file_name().and_then(|n| n.to_str()).unwrap_or("");
    is_archiver(name) || is_linker(name)
}

/// True for what the daemon serves: C drivers, rustc, clippy-driver, `ar`, `ld`, and a
/// compiler of another name (`zccache /opt/x/bin/cc1 -c a.c`) whose arguments are a C
/// compile. Anything else (`zccache sh -c cat`) is no compiler and runs directly.
fn is_served(tool: &Path, args: &[String], cwd: &Path) -> bool {
    let named = is_c_driver(tool) || is_rustc(tool) || is_clippy_driver(tool);
    named
        || is_link_tool(tool)
        || matches!(
            classify(&expand_response_files(args, cwd)),
            Classified::Cacheable(_) | Classified::Several(_)
        )
}

/// True when an argument names stdin as something the tool reads (not as an output).
fn reads_stdin(args: &[String]) -> bool {
    args.iter().enumerate().any(|(i, arg)| {
        let output = i > 0 && zccache_early::rules::is_output_flag(args[i - 1].as_bytes());
        names_stdin(arg) && !output
    })
}

/// True when `argv` is `zccache <compiler> ...` rather than a subcommand.
fn is_wrapper_call(argv: &[OsString]) -> bool {
    let Some(first) = argv.get(1) else {
        return false;
    };
    let tool = Path::new(first);
    first.as_encoded_bytes().contains(&b'/')
        || is_c_driver(tool)
        || is_rustc(tool)
        || is_clippy_driver(tool)
        || is_link_tool(tool)
}

/// Runs `zccache <compiler> ARGS`.
pub fn main(argv: &[OsString]) -> ExitCode {
    trace_times::start();
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => return fail(&format!("cannot read the current directory: {e}")),
    };
    let Some(compiler) = resolve_program_except(&argv[1], &cwd, is_ourselves) else {
        return fail(&format!(
            "compiler not found: {}",
            argv[1].to_string_lossy()
        ));
    };
    let rest = &argv[2..];
    let args: Option<Vec<String>> = rest.iter().map(|a| a.to_str().map(String::from)).collect();
    // The daemon takes paths, arguments and the environment as text: anything else
    // compiles here.
    let env_is_text =
        std::env::vars_os().all(|(k, v)| k.to_str().is_some() && v.to_str().is_some());
    let paths_are_text = cwd.to_str().is_some() && compiler.to_str().is_some();
    let text = env_is_text && paths_are_text;
    let (Some(args), false, true) = (args, daemon_disabled(), text) else {
        return exec(&compiler, rest);
    };
    let reads_stdin = reads_stdin(&args);
    if !is_served(&compiler, &args, &cwd)
        || args
            .iter()
            .any(|a| zccache_early::rules::names_process_file(a.as_bytes()))
        || (reads_stdin && is_link_tool(&compiler))
    {
        // What the daemon cannot reproduce runs here, with the caller's own stdio.
        return exec(&compiler, rest);
    }
    // A source on stdin: the daemon's compiler gets exactly these bytes.
    let stdin = if reads_stdin {
        let mut bytes = Vec::new();
        if std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes).is_err() {
            return exec(&compiler, rest);
        }
        bytes
    } else {
        Vec::new()
    };
    let captured_stdin = stdin.clone();
    trace_times::mark("args");
    let request = compile_request(&compiler, &cwd, args, stdin);
    trace_times::mark("request");
    let paths = DaemonPaths::from_env();
    let answer = paths
        .as_ref()
        .map_err(|e| ClientError::Unavailable(e.to_string()))
        .and_then(|p| client::call_keeping(p, &request));
    let uncached = |why: &str| {
        match &paths {
            Ok(paths) => warn_now_and_then(paths, why),
            Err(refused) => eprintln!("zccache: warning: {refused}; compiling uncached"),
        }
        feed_or_exec(&compiler, rest, &captured_stdin)
    };
    match answer {
        Ok((
            Response::CompileResult {
                exit_code,
                stdout,
                stderr,
                ..
            },
            _,
        )) => {
            let _ = std::io::stdout().write_all(&stdout);
            let _ = std::io::stderr().write_all(&stderr);
            trace_times::mark("replay");
            trace_times::report();
            ExitCode::from(u8::try_from(exit_code).unwrap_or(1))
        }
        Ok((Response::CompileHere { token }, daemon)) => {
            compile_here(&compiler, rest, &cwd, (token, daemon))
        }
        Err(ClientError::Daemon(message)) => {
            eprintln!("zccache: warning: {message}; compiling uncached");
            feed_or_exec(&compiler, rest, &captured_stdin)
        }
        Err(ClientError::Unavailable(why)) => uncached(&why),
        Err(other) => uncached(&other.to_string()),
        Ok((other, _)) => uncached(&format!("unexpected reply {other:?}")),
    }
}

/// The request for the daemon: a compile (in the build's session, if it names one) or a
/// link, with this process's environment, umask and whether its stderr is a terminal.
fn compile_request(compiler: &Path, cwd: &Path, args: Vec<String>, stdin: Vec<u8>) -> Request {
    let here = NormalizedPath::new(cwd, Path::new("."));
    let compiler_path = NormalizedPath::new(cwd, compiler);
    let mut env: Vec<(String, String)> = std::env::vars().collect();
    // This process has one thread: reading the mask by setting it back costs two syscalls.
    env.push((
        UMASK_ENV.to_string(),
        format!("{:o}", crate::os::current_umask()),
    ));
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        // The daemon's compiler has none: it colours for us, and strips for a pipe.
        env.push((TERMINAL_ENV.to_string(), "1".to_string()));
    }
    let env = Some(env);
    match std::env::var(SESSION_ENV).ok().filter(|id| !id.is_empty()) {
        Some(session_id) => Request::Compile {
            session_id,
            args,
            cwd: here,
            compiler: compiler_path,
            env,
            stdin,
        },
        None if is_link_tool(compiler) => Request::LinkEphemeral {
            client_pid: std::process::id(),
            tool: compiler_path,
            args,
            cwd: here,
            env,
        },
        None => Request::CompileEphemeral {
            client_pid: std::process::id(),
            working_dir: here.clone(),
            compiler: compiler_path,
            args,
            cwd: here,
            env,
            stdin,
        },
    }
}

/// A miss the daemon left to us: the compiler runs here with our stdio (its messages reach
/// the build as it writes them: cargo starts the dependents on the `.rmeta` notice) and a
/// copy of both streams; then we report back on the same connection (identical compiles
/// wait for this one until it reports or hangs up), and the daemon stores what it wrote.
/// The compiler's status is ours whatever the daemon says.
fn compile_here(
    compiler: &Path,
    args: &[OsString],
    cwd: &Path,
    (token, mut daemon): (u64, client::Client),
) -> ExitCode {
    let mut argv = vec![compiler.as_os_str().to_os_string()];
    argv.extend(args.iter().cloned());
    // The compiler stays in the build's process group, where a signal to the build reaches it.
    let started = crate::child::run(&argv, cwd, true, &Console::Direct, Group::Shared);
    let Some(finished) = started else {
        let signal = crate::os::interrupted().unwrap_or(libc::SIGINT);
        return ExitCode::from(u8::try_from(128 + signal).unwrap_or(1));
    };
    if let Some(why) = &finished.spawn_error {
        eprintln!("zccache: error: {why}");
    }
    if let (Some((stdout, stderr)), None) = (finished.captured, finished.forwarded_signal) {
        let done = Request::CompileDone {
            token,
            exit_code: finished.code,
            stdout,
            stderr,
            session_id: std::env::var(SESSION_ENV).ok().filter(|id| !id.is_empty()),
        };
        if let Err(e) = daemon.request(&done) {
            eprintln!("zccache: warning: the compile was not stored: {e}");
        }
    }
    // A compile that ended well while the build was being interrupted still reports it.
    let code = match crate::os::interrupted() {
        Some(signal) if finished.code == 0 => 128 + signal,
        _ => finished.code,
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// Runs the real compiler directly: exec'd, or, when stdin was already read for a `-`
/// source, as a child fed those bytes.
fn feed_or_exec(compiler: &Path, args: &[OsString], stdin: &[u8]) -> ExitCode {
    if stdin.is_empty() {
        return exec(compiler, args);
    }
    let child = Command::new(compiler)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => return fail(&format!("cannot run {}: {e}", compiler.display())),
    };
    if let Some(mut pipe) = child.stdin.take() {
        let _ = pipe.write_all(stdin);
    }
    match child.wait() {
        Ok(status) => ExitCode::from(u8::try_from(crate::os::exit_code(status)).unwrap_or(1)),
        Err(e) => fail(&format!("cannot wait for {}: {e}", compiler.display())),
    }
}

/// Replaces this process with the real compiler.
fn exec(compiler: &Path, args: &[OsString]) -> ExitCode {
    let err = Command::new(compiler).args(args).exec();
    fail(&format!("cannot run {}: {err}", compiler.display()))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("zccache: error: {message}");
    ExitCode::from(NOT_FOUND)
}

/// A masquerading symlink (or hard link) must not find itself as "the compiler": the same
/// file as this binary, by device and inode (a readlink and two stats, not a readlink per path component).
fn is_ourselves(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |m: std::fs::Metadata| (m.dev(), m.ino());
    let me = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(id)
        .ok();
    me.is_some() && std::fs::metadata(path).map(id).ok() == me
}

/// One warning per minute that compiles run uncached (not one per file), saying `why`.
fn warn_now_and_then(paths: &DaemonPaths, why: &str) {
    let stamp = paths.dir.join("uncached-warning");
    let recent = std::fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < WARN_EVERY);
    if recent {
        return;
    }
    let _ = std::fs::write(&stamp, b"");
    let free = crate::os::free_space(&paths.dir);
    match free.filter(|bytes| *bytes < crate::compile_cache::space::LOW_SPACE) {
        Some(bytes) => eprintln!(
            "zccache: warning: the cache is out of space ({}: {bytes} bytes free); compiling uncached",
            paths.dir.display()
        ),
        None => eprintln!(
            "zccache: warning: the cache daemon is unavailable ({why}); compiling uncached"
        ),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use std::ffi::OsString;

    use super::wrapper_argv;
    use crate::cli::Cli;

    #[test]
    fn the_first_word_is_a_subcommand_unless_it_names_a_tool() {
        let call = |words: &[&str]| {
            let argv: Vec<OsString> = std::iter::once("zccache")
                .chain(words.iter().copied())
                .map(OsString::from)
                .collect();
            wrapper_argv(&argv).map(|c| c[1..].to_vec())
        };
        for name in Cli::command().get_subcommands().map(|c| c.get_name()) {
            assert_eq!(call(&[name]), None, "{name}");
        }
        for unknown in ["rn", "stat", "sh", "--help", "-V"] {
            assert_eq!(call(&[unknown, "x"]), None, "{unknown}");
        }
        for tool in [
            "gcc",
            "g++-12",
            "x86_64-linux-gnu-gcc",
            "clang++",
            "cc",
            "rustc",
            "clippy-driver",
            "ar",
            "ld.lld",
            "./mytool",
            "/usr/bin/stat",
        ] {
            assert_eq!(call(&[tool, "x"]), Some(vec![tool.into(), "x".into()]));
        }
        assert_eq!(
            call(&["--", "sh", "-c", "x"]),
            Some(vec!["sh".into(), "-c".into(), "x".into()])
        );
    }
}
