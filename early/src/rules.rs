//! Rules about a compiler call that the early client and the main crate's wrapper both
//! apply (the wrapper calls these, so the two paths cannot disagree).

use crate::bytes::{ends_with, eq, find, starts_with};

/// Compiler drivers, by the name their file has after version suffixes are trimmed.
const DRIVERS: [&[u8]; 6] = [b"gcc", b"g++", b"cc", b"c++", b"clang", b"clang++"];

/// Whether a tool's file name is a C/C++ compiler driver: `gcc`, `g++-12`,
/// `x86_64-linux-gnu-gcc`, `clang++-16` and the like.
pub fn is_c_driver(name: &[u8]) -> bool {
    let mut end = name.len();
    while end > 0 && matches!(name[end - 1], b'0'..=b'9' | b'.' | b'-') {
        end -= 1;
    }
    let base = &name[..end];
    DRIVERS.iter().any(|d| named(base, d))
}

/// Whether `name` is `tool` or ends in `-tool` (a cross-compiler's prefix).
fn named(name: &[u8], tool: &[u8]) -> bool {
    eq(name, tool)
        || (ends_with(name, tool)
            && name.len() > tool.len()
            && name[name.len() - tool.len() - 1] == b'-')
}

/// Whether the file name zccache was started under is a compiler's (a `gcc -> zccache`
/// symlink), so that the call is a compile under that name.
pub fn masquerades(name: &[u8]) -> bool {
    DRIVERS.iter().any(|d| named(name, d))
}

/// Whether `arg` names stdin as a file.
pub fn names_stdin(arg: &[u8]) -> bool {
    [&b"-"[..], b"/dev/stdin", b"/dev/fd/0", b"/proc/self/fd/0"]
        .iter()
        .any(|s| eq(arg, s))
}

/// Flags whose value is an output or a name, never read.
pub fn is_output_flag(arg: &[u8]) -> bool {
    [&b"-o"[..], b"-MF", b"-MT", b"-MQ"]
        .iter()
        .any(|f| eq(arg, f))
}

/// True when an argument reaches a file of this process other than a plain stdin source
/// (`/dev/fd/3`, `-include/dev/stdin`, `@/proc/self/fd/4`, `/dev/tty`): the daemon, another
/// process, would open its own. The path starts at the first `/` of the argument itself or
/// of a flag's attached value (`-include/...`, `-Wl,...,/...`, `@/...`).
pub fn names_process_file(arg: &[u8]) -> bool {
    const PROCESS_FILES: [&[u8]; 5] = [
        b"/dev/fd/",
        b"/dev/std",
        b"/dev/tty",
        b"/proc/self/",
        b"/proc/thread-self/",
    ];
    let Some(at) = find(arg, b'/', 0) else {
        return false;
    };
    let (before, path) = arg.split_at(at);
    let absolute = before.is_empty() || before[0] == b'-' || before[0] == b'@';
    !names_stdin(arg) && absolute && PROCESS_FILES.iter().any(|p| starts_with(path, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_files_are_told_from_paths_that_only_contain_their_names() {
        for arg in [
            "/dev/fd/3",
            "-include/dev/stdin",
            "@/proc/self/fd/4",
            "-Wl,-T,/dev/tty",
        ] {
            assert!(names_process_file(arg.as_bytes()), "{arg}");
        }
        for arg in [
            "-",
            "/dev/stdin",
            "-I/home/me/dev/stdlib",
            "a.c",
            "-O2",
            "src/dev/fd/x.c",
        ] {
            assert!(!names_process_file(arg.as_bytes()), "{arg}");
        }
    }

    #[test]
    fn drivers_and_masquerading_names() {
        for name in [
            "gcc",
            "g++-12",
            "x86_64-linux-gnu-gcc",
            "clang++-16",
            "cc",
            "c++",
        ] {
            assert!(is_c_driver(name.as_bytes()), "{name}");
        }
        for name in ["rustc", "ar", "xgcc", "gcc-ar", "ld", ""] {
            assert!(!is_c_driver(name.as_bytes()), "{name}");
        }
        assert!(masquerades(b"x86_64-linux-gnu-gcc") && masquerades(b"clang"));
        assert!(!masquerades(b"gcc-12") && !masquerades(b"zccache"));
    }
}
