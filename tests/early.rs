//! Issue S: the static binary answers a plain C compile from its entry point, before the C
//! library starts (`zccache-early`), and leaves every other call to the usual start.

use std::fs;
use std::os::unix::ffi::OsStrExt;

use crate::support::{Sandbox, ZCCACHE};

/// The early client's line under `ZCCACHE_TRACE_TIMES=1` (the usual start prints
/// `zccache: times: args ...`).
const EARLY: &str = "zccache: times: early";
const USUAL: &str = "zccache: times: args";

fn project() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("inc/h.h", "#define H 1\n").write(
        "a.c",
        "#include \"h.h\"\nint f(void) { return H; }\n#warning from a.c\n",
    );
    sb
}

const ARGS: [&str; 6] = ["-c", "a.c", "-Iinc", "-O1", "-o", "a.o"];

fn gcc(sb: &Sandbox, args: &[&str]) -> crate::support::Cmd {
    sb.cmd(["gcc"]).args(args).env("ZCCACHE_TRACE_TIMES", "1")
}

fn hits(sb: &Sandbox) -> u64 {
    let status = sb.cmd(["status", "--json"]).status(0).json();
    status["daemon"]["cache_hits"].as_u64().unwrap()
}

#[test]
fn issue_s_a_hit_is_answered_before_the_c_library_starts() {
    let sb = project();
    // No daemon yet: the usual start serves it (and starts one).
    gcc(&sb, &ARGS).status(0).stderr_lacks(EARLY);
    let first = fs::read(sb.path("a.o")).unwrap();
    fs::remove_file(sb.path("a.o")).unwrap();
    // Long and non-ASCII values cross the early client's copies as they are.
    let long = "x".repeat(70_000);
    gcc(&sb, &ARGS)
        .env("LONG_VALUE", &long)
        .env("GRÜSSE", "h\u{e9}llo")
        .status(0)
        .stderr_has(EARLY)
        .stderr_has("warning: #warning from a.c");
    assert_eq!(fs::read(sb.path("a.o")).unwrap(), first);
    assert_eq!(hits(&sb), 1);
    // `ZCCACHE_EARLY=0` starts the usual way, to the same hit.
    gcc(&sb, &ARGS)
        .env("ZCCACHE_EARLY", "0")
        .status(0)
        .stderr_has(USUAL)
        .stderr_lacks(EARLY)
        .stderr_has("warning: #warning from a.c");
    assert_eq!(hits(&sb), 2);
    // A miss that fails is answered there too, with the compiler's status and message.
    sb.write("bad.c", "int f(void) { return nope; }\n");
    gcc(&sb, &["-c", "bad.c", "-o", "bad.o"])
        .status(1)
        .stderr_has(EARLY)
        .stderr_has("undeclared");
    // A session's compile is counted in the session.
    let started = sb.cmd(["session-start", "--stats"]).status(0).json();
    let id = started["session_id"].as_str().unwrap().to_string();
    gcc(&sb, &ARGS)
        .env("ZCCACHE_SESSION_ID", &id)
        .status(0)
        .stderr_has(EARLY);
    let stats = sb.cmd(["session-stats", &id, "--json"]).status(0).json();
    assert_eq!(stats["hits"].as_u64(), Some(1), "{stats}");
}

#[test]
fn issue_s_a_compiler_named_by_a_symlink_or_after_dashes_is_answered_early_too() {
    let sb = project();
    gcc(&sb, &ARGS).status(0);
    let bin = sb.path("bin");
    fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(ZCCACHE, bin.join("gcc")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    sb.program(bin.join("gcc").to_str().unwrap())
        .args(ARGS)
        .env("PATH", &path)
        .env("ZCCACHE_TRACE_TIMES", "1")
        .status(0)
        .stderr_has(EARLY);
    // The symlink found on PATH is passed over (it is this binary), as the wrapper does.
    sb.program("gcc")
        .args(ARGS)
        .env("PATH", &path)
        .env("ZCCACHE_TRACE_TIMES", "1")
        .status(0)
        .stderr_has(EARLY);
    sb.cmd(["--", "gcc"])
        .args(ARGS)
        .env("ZCCACHE_TRACE_TIMES", "1")
        .status(0)
        .stderr_has(EARLY);
    assert_eq!(hits(&sb), 3);
}

#[test]
fn issue_s_what_the_early_client_does_not_take_starts_the_usual_way() {
    let sb = project();
    gcc(&sb, &ARGS).status(0);
    // A source on stdin.
    gcc(&sb, &["-x", "c", "-c", "-", "-o", "s.o"])
        .stdin("int s(void) { return 2; }\n")
        .status(0)
        .stderr_lacks(EARLY);
    assert!(sb.path("s.o").exists());
    // A compiler given by a relative path (PATH entries and names with `/` that are not
    // absolute are left to the usual start).
    gcc(&sb, &ARGS)
        .env(
            "PATH",
            format!("relative:{}", std::env::var("PATH").unwrap()),
        )
        .status(0)
        .stderr_has(USUAL)
        .stderr_lacks(EARLY);
    // The daemon found silent a moment ago (the marker names it).
    let status = sb.cmd(["status", "--json"]).status(0).json();
    let pid = status["daemon"]["pid"].as_u64().unwrap().to_string();
    let silent = sb.state().join("daemon.silent");
    fs::write(&silent, &pid).unwrap();
    gcc(&sb, &ARGS).status(0).stderr_lacks(EARLY);
    // A marker that names another daemon, or one from long ago, keeps nobody away.
    fs::write(&silent, "1").unwrap();
    gcc(&sb, &ARGS).status(0).stderr_has(EARLY);
    fs::write(&silent, &pid).unwrap();
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&silent)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    gcc(&sb, &ARGS).status(0).stderr_has(EARLY);
    fs::remove_file(&silent).unwrap();
    // A tool that is no C compiler driver, and a subcommand.
    sb.cmd(["ar", "rcs", "liba.a", "a.o"]).status(0);
    sb.cmd(["status"]).status(0);
    gcc(&sb, &ARGS).status(0).stderr_has(EARLY);
}

#[test]
fn issue_s_odd_process_names_and_paths_compile_on_either_path() {
    use std::os::unix::process::CommandExt;
    let sb = project();
    gcc(&sb, &ARGS).status(0);
    // An empty argv[0] (no file name): still `zccache gcc ...`.
    for early in ["1", "0"] {
        let mut command = sb
            .cmd(["gcc"])
            .args(ARGS)
            .env("ZCCACHE_EARLY", early)
            .into_command();
        let ran = command.arg0("").output().unwrap();
        assert_eq!(ran.status.code(), Some(0), "{ran:?}");
    }
    // A working directory that is not UTF-8 compiles uncached, with the right object.
    let odd = sb.root().join(std::ffi::OsStr::from_bytes(b"caf\xe9"));
    fs::create_dir(&odd).unwrap();
    fs::copy(sb.path("a.c"), odd.join("a.c")).unwrap();
    for early in ["1", "0"] {
        let _ = fs::remove_file(odd.join("a.o"));
        sb.cmd(["gcc", "-c", "a.c", "-I../inc", "-o", "a.o"])
            .cwd(&odd)
            .env("ZCCACHE_EARLY", early)
            .status(0);
        assert!(odd.join("a.o").exists());
    }
}

/// A hit whose output goes to a pipe nobody reads any more, SIGPIPE ignored by its parent:
/// the wrapper dies of SIGPIPE, as the usual start does, not with the compile's status.
#[test]
fn issue_s_a_broken_pipe_ends_the_hit_as_the_usual_start_ends_it() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let sb = project();
    gcc(&sb, &ARGS).status(0);
    for early in ["1", "0"] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut command = gcc(&sb, &ARGS).env("ZCCACHE_EARLY", early).into_command();
        command
            .stdout(writer.try_clone().unwrap())
            .stderr(writer)
            .stdin(std::process::Stdio::null());
        // SAFETY: signal(2) only, between fork and exec.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                Ok(())
            });
        }
        let status = command.status().unwrap();
        assert_eq!(
            status.signal(),
            Some(libc::SIGPIPE),
            "early={early}: {status:?}"
        );
    }
}

#[test]
fn issue_s_an_environment_that_is_not_utf8_compiles_uncached_without_a_panic() {
    let sb = project();
    let value = std::ffi::OsStr::from_bytes(b"caf\xe9");
    for early in ["1", "0"] {
        sb.cmd(["gcc"])
            .args(ARGS)
            .env("NOT_UTF8", value)
            .env("ZCCACHE_EARLY", early)
            .status(0)
            .stderr_lacks("panicked");
        assert!(sb.path("a.o").exists());
        fs::remove_file(sb.path("a.o")).unwrap();
    }
}

/// What the early client's code calls: each direct call's target, and each function whose
/// address it loads from a GOT slot (or the empty slot itself), by name.
fn early_calls(binary: &str) -> Vec<(String, String)> {
    let dump = std::process::Command::new("objdump")
        .args(["-d", "-C", "--no-show-raw-insn", binary])
        .output()
        .expect("objdump (binutils) runs");
    let symbols = crate::support::elf::symbols(binary);
    let slots = crate::support::elf::got_ranges(binary);
    let image = fs::read(binary).unwrap();
    let mut calls = Vec::new();
    let mut function: Option<String> = None;
    for line in String::from_utf8_lossy(&dump.stdout).lines() {
        if let Some((_, name)) = line.strip_suffix(">:").and_then(|l| l.split_once(" <")) {
            function = Some(name.to_string()).filter(|n| is_early(n));
            continue;
        }
        let Some(caller) = &function else { continue };
        let Some((kind, operand)) = line
            .split('\t')
            .nth(1)
            .and_then(|insn| insn.split_once(char::is_whitespace))
        else {
            continue;
        };
        let slot = operand
            .contains("(%rip)")
            .then(|| operand.rsplit("# ").next()?.split(' ').next())
            .flatten()
            .and_then(|a| u64::from_str_radix(a, 16).ok())
            .filter(|a| slots.iter().any(|r| r.contains(a)));
        let target = match slot {
            // A slot holds a function's address, some data's, or nothing yet (a C library
            // function chosen at start-up, by the code this client runs before).
            Some(slot) => match crate::support::elf::word_at(&image, slot) {
                Some(0) => "an empty GOT slot".to_string(),
                Some(value) => match symbols.get(&value) {
                    Some(name) => name.clone(),
                    None => continue,
                },
                None => continue,
            },
            None if kind == "call" || kind == "jmp" => match operand.split_once('<') {
                Some((_, name)) => name.trim_end_matches('>').to_string(),
                None => continue,
            },
            None => continue,
        };
        if kind == "jmp" && is_early(&target) && target.contains("+0x") {
            continue;
        }
        calls.push((caller.clone(), target));
    }
    calls
}

fn is_early(name: &str) -> bool {
    name.contains("zccache_early") || name.contains("serve_early") || name == "zccache_entry"
}

#[test]
fn issue_s_the_early_client_calls_nothing_the_c_library_has_to_set_up() {
    // `.ci/run` also names the release binary here: LTO optimizes its code differently.
    let binary = std::env::var("ZCCACHE_CHECK_BINARY").unwrap_or_else(|_| ZCCACHE.to_string());
    let calls = early_calls(&binary);
    if calls.is_empty() {
        eprintln!("skipped: this build has no early client (not a static x86_64 Linux binary)");
        return;
    }
    // Its own code, `_start` (handing over), and Rust's own pure code (iterators, closures,
    // and the panic and unwind paths that only a bug reaches); never libc's functions,
    // whose `memcpy`-like slots are empty until the C library fills them.
    let outside: Vec<_> = calls
        .iter()
        .filter(|(_, target)| {
            !(is_early(target)
                || target == "_start"
                || target.starts_with("core::")
                || target.starts_with("<core::")
                || target == "_Unwind_Resume")
        })
        .collect();
    assert!(
        outside.is_empty(),
        "calls out of the early client: {outside:#?}"
    );
}
