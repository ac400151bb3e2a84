//! Coloured diagnostics for a caller on a terminal: the daemon's compiler has no terminal,
//! so a cacheable C compile whose caller's stderr is one (and whose command and environment
//! leave colour to the terminal) runs with colour forced; what is stored keeps the colours,
//! and a caller that shows none gets them stripped. The key never sees the terminal: an
//! entry made under one serves a pipe and the other way round (an entry stored from a pipe
//! has no colours to give; as ccache does).

use super::depfile::Flavor;
use super::request::{Outcome, Request};

/// Flags by which a command decides colour itself (then nothing is forced or stripped).
const COLOUR_FLAGS: [&str; 4] = [
    "-fdiagnostics-color",
    "-fno-diagnostics-color",
    "-fcolor-diagnostics",
    "-fno-color-diagnostics",
];

/// True when the command names its own colour choice.
pub fn chosen_by_command(args: &[String]) -> bool {
    args.iter()
        .any(|a| COLOUR_FLAGS.iter().any(|flag| a.starts_with(flag)))
}

/// True when the caller shows colours as gcc would on its own: stderr a terminal, `TERM`
/// set and not `dumb`, `NO_COLOR` unset or empty, `GCC_COLORS` not set to nothing.
pub fn caller_shows(req: &Request) -> bool {
    let var = |name: &str| {
        req.env
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    req.stderr_is_terminal
        && var("TERM").is_some_and(|t| !t.is_empty() && t != "dumb")
        && var("NO_COLOR").is_none_or(str::is_empty)
        && var("GCC_COLORS") != Some("")
}

/// The flag that forces colour on a compiler of `flavor`.
pub fn forcing_flag(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Gcc => "-fdiagnostics-color=always",
        Flavor::Clang => "-fcolor-diagnostics",
    }
}

/// `outcome` as the caller of a cacheable compile (run with `args`) sees it: colour
/// sequences stripped from its stderr unless the caller shows them or the command asked for
/// colour itself.
pub fn for_caller(req: &Request, args: &[String], mut outcome: Outcome) -> Outcome {
    if !chosen_by_command(args) && !caller_shows(req) {
        outcome.stderr = strip(&outcome.stderr);
    }
    outcome
}

/// `bytes` without ANSI CSI sequences (`ESC [` parameters, intermediates, a final byte):
/// the colour and erase-line codes compilers write.
pub fn strip(bytes: &[u8]) -> Vec<u8> {
    if !bytes.contains(&0x1b) {
        return bytes.to_vec();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == 0x1b && bytes.get(i + 1) == Some(&b'[') {
            let mut j = i + 2;
            while bytes.get(j).is_some_and(|b| (0x30..=0x3f).contains(b)) {
                j += 1;
            }
            while bytes.get(j).is_some_and(|b| (0x20..=0x2f).contains(b)) {
                j += 1;
            }
            if bytes.get(j).is_some_and(|b| (0x40..=0x7e).contains(b)) {
                i = j + 1;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_sequences_are_stripped() {
        let gcc = b"\x1b[01m\x1b[Kw.c:1:18:\x1b[m\x1b[K \x1b[01;35m\x1b[Kwarning: \x1b[m\x1b[Kx";
        assert_eq!(strip(gcc), b"w.c:1:18: warning: x");
        let clang = b"\x1b[1mw.c: \x1b[0m\x1b[0;1;35mwarning: \x1b[0m";
        assert_eq!(strip(clang), b"w.c: warning: ");
        assert_eq!(strip(b"plain \x1b text \x1b["), b"plain \x1b text \x1b[");
    }

    #[test]
    fn the_command_can_choose() {
        let args = |line: &str| line.split(' ').map(String::from).collect::<Vec<_>>();
        assert!(chosen_by_command(&args("-c a.c -fdiagnostics-color=never")));
        assert!(chosen_by_command(&args("-c a.c -fno-color-diagnostics")));
        assert!(!chosen_by_command(&args("-c a.c -Wall")));
    }

    fn request(tty: bool, env: &[(&str, &str)]) -> Request {
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut req = Request::new("gcc".into(), Vec::new(), "/".into(), env, Vec::new());
        req.stderr_is_terminal = tty;
        req
    }

    #[test]
    fn the_caller_shows_colour_as_gcc_would_decide() {
        assert!(caller_shows(&request(true, &[("TERM", "xterm")])));
        assert!(!caller_shows(&request(false, &[("TERM", "xterm")])));
        assert!(!caller_shows(&request(true, &[])));
        assert!(!caller_shows(&request(true, &[("TERM", "dumb")])));
        assert!(!caller_shows(&request(
            true,
            &[("TERM", "xterm"), ("NO_COLOR", "1")]
        )));
        assert!(!caller_shows(&request(
            true,
            &[("TERM", "xterm"), ("GCC_COLORS", "")]
        )));
        assert!(caller_shows(&request(
            true,
            &[("TERM", "xterm"), ("GCC_COLORS", "error=01;31")]
        )));
    }
}
