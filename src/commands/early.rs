//! What the early client (`zccache-early`, which the static binary runs at its entry point,
//! before the C library starts) must agree on with this crate: the frame, the variant
//! indexes of the messages it speaks, and the variables the wrapper reads. The tests hold
//! its bytes against `frame::encode`, so the two encoders cannot drift apart.

use zccache_early::{Names, Setup};

use crate::compile_cache::request::{TERMINAL_ENV, UMASK_ENV};
use crate::daemon::client::{CONNECT_TIMEOUT, SILENCE_TIMEOUT, SILENT_MEMORY};
use crate::daemon::frame::{BINARY_VERSION, MAX_FRAME, PROTOCOL_VERSION};
use crate::daemon::lifecycle::NO_DAEMON_ENV;
use crate::private_dir::DIR_ENV;
use crate::trace_times::TRACE_ENV;

/// `ZCCACHE_EARLY=0` turns the early client off: every call starts the usual way.
pub const EARLY_ENV: &str = "ZCCACHE_EARLY";
/// Names the session a compile belongs to.
pub const SESSION_ENV: &str = "ZCCACHE_SESSION_ID";

/// The early client's setup.
pub static SETUP: Setup = Setup {
    protocol: PROTOCOL_VERSION,
    version: BINARY_VERSION,
    max_frame: MAX_FRAME,
    compile: 6,
    compile_ephemeral: 9,
    working: 18,
    compile_result: 10,
    connect_secs: CONNECT_TIMEOUT.as_secs() as u32,
    silence_secs: SILENCE_TIMEOUT.as_secs() as u32,
    silent_secs: SILENT_MEMORY.as_secs() as u32,
    names: Names {
        dir: DIR_ENV,
        no_daemon: NO_DAEMON_ENV,
        trace: TRACE_ENV,
        session: SESSION_ENV,
        umask: UMASK_ENV,
        terminal: TERMINAL_ENV,
        early: EARLY_ENV,
    },
};

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use zccache_early::wire::{self, ReplyKinds, Said};

    use super::*;
    use crate::daemon::frame;
    use crate::daemon::protocol::{NormalizedPath, Request, Response};

    /// A process stack as the kernel lays it out: argc, argv and a null, envp and a null.
    fn stack(args: &[&str], env: &[&str]) -> (Vec<usize>, Vec<CString>) {
        let strings: Vec<CString> = args
            .iter()
            .chain(env)
            .map(|s| CString::new(*s).unwrap())
            .collect();
        let mut words = vec![args.len()];
        words.extend(strings[..args.len()].iter().map(|s| s.as_ptr() as usize));
        words.push(0);
        words.extend(strings[args.len()..].iter().map(|s| s.as_ptr() as usize));
        words.push(0);
        (words, strings)
    }

    /// The pairs the wrapper sends for `env`: split at the first `=` after the first byte,
    /// then the umask and the terminal flag.
    fn sent_env(env: &[&str]) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = env
            .iter()
            .filter(|e| !e.is_empty())
            .filter_map(|e| e[1..].find('=').map(|at| (&e[..at + 1], &e[at + 2..])))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        pairs.push((
            UMASK_ENV.to_string(),
            format!("{:o}", crate::os::current_umask()),
        ));
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            pairs.push((TERMINAL_ENV.to_string(), "1".to_string()));
        }
        pairs
    }

    fn early_frame(args: &[&str], env: &[&str], session: Option<&'static str>) -> Vec<u8> {
        let (words, _strings) = stack(args, env);
        let mut out = vec![0u8; 1 << 20];
        // SAFETY: `words` is laid out as the kernel lays out a stack; its strings live.
        let len = unsafe {
            zccache_early::request_frame(
                words.as_ptr(),
                (b"/work/dir", b"/usr/bin/gcc", session.map(str::as_bytes)),
                &SETUP,
                &mut out,
            )
        };
        out.truncate(len);
        out
    }

    #[test]
    fn the_early_request_is_the_wrappers_byte_for_byte() {
        let long = format!("LONG={}", "x".repeat(70_000));
        let args = ["zccache", "gcc", "-O2", "-c", "h\u{e9}.c", "-o", "a.o", ""];
        let env = [
            "PATH=/usr/bin",
            "=odd=value",
            "EMPTY=",
            "NOEQUALS",
            "",
            long.as_str(),
        ];
        let path = |p: &str| NormalizedPath::new(std::path::Path::new("/"), p.as_ref());
        let rest: Vec<String> = args[2..].iter().map(|a| a.to_string()).collect();
        let ephemeral = Request::CompileEphemeral {
            client_pid: std::process::id(),
            working_dir: path("/work/dir"),
            compiler: path("/usr/bin/gcc"),
            args: rest.clone(),
            cwd: path("/work/dir"),
            env: Some(sent_env(&env)),
            stdin: Vec::new(),
        };
        assert_eq!(
            early_frame(&args, &env, None),
            frame::encode(&ephemeral).unwrap()
        );
        let in_session = Request::Compile {
            session_id: "s-1".to_string(),
            args: rest,
            cwd: path("/work/dir"),
            compiler: path("/usr/bin/gcc"),
            env: Some(sent_env(&env)),
            stdin: Vec::new(),
        };
        assert_eq!(
            early_frame(&args, &env, Some("s-1")),
            frame::encode(&in_session).unwrap()
        );
        // The same call as `zccache -- gcc ...` and through a `gcc -> zccache` symlink.
        let dashes = [
            "zccache",
            "--",
            "gcc",
            "-O2",
            "-c",
            "h\u{e9}.c",
            "-o",
            "a.o",
            "",
        ];
        assert_eq!(
            early_frame(&dashes, &env, None),
            frame::encode(&ephemeral).unwrap()
        );
        let linked = ["/opt/bin/gcc", "-O2", "-c", "h\u{e9}.c", "-o", "a.o", ""];
        assert_eq!(
            early_frame(&linked, &env, None),
            frame::encode(&ephemeral).unwrap()
        );
    }

    #[test]
    fn the_early_client_reads_the_daemons_answers_and_nothing_else() {
        let kinds = ReplyKinds {
            protocol: SETUP.protocol,
            version: SETUP.version,
            working: SETUP.working,
            result: SETUP.compile_result,
        };
        let body = |r: &Response| frame::encode(r).unwrap()[4..].to_vec();
        let result = Response::CompileResult {
            exit_code: -3,
            stdout: b"out".repeat(100),
            stderr: vec![7u8; 300],
            cached: true,
        };
        let bytes = body(&result);
        match wire::read_reply(&bytes, &kinds) {
            Some(Said::Answer(a)) => {
                assert_eq!(a.exit_code, -3);
                assert_eq!(a.stdout, b"out".repeat(100).as_slice());
                assert_eq!(a.stderr, [7u8; 300].as_slice());
            }
            _ => panic!("a compile result was not read"),
        }
        let working = body(&Response::Working);
        assert!(matches!(
            wire::read_reply(&working, &kinds),
            Some(Said::Working)
        ));
        let error = body(&Response::Error {
            message: "no".to_string(),
        });
        assert!(wire::read_reply(&error, &kinds).is_none());
        assert!(wire::read_reply(&bytes[..bytes.len() - 1], &kinds).is_none());
        let mut other_version = bytes.clone();
        other_version[5] ^= 1;
        assert!(wire::read_reply(&other_version, &kinds).is_none());
    }
}
