//! A per-file task's command lines: the files go where the command says (`{files}` as an
//! argument, or inside a `sh -c` script, where it becomes `"$@"` and the files its
//! arguments) or at the end, in batches that fit the OS's argument limit (with the
//! environment counted), an optional batch size, and, with `-j N`, at least N batches.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::runner::tool::shell_script;

/// The placeholder for the files.
pub const PLACEHOLDER: &str = "{files}";
/// What the placeholder becomes in a shell script: its arguments, each one word.
const SCRIPT_ARGS: &str = "\"$@\"";
/// `$0` of a script given the files as arguments.
const SCRIPT_NAME: &str = "zccache-files";
/// Room left under the limit (what `execve` counts beyond strings and pointers varies).
const SLACK: usize = 4096;
/// The limit when the OS does not say (POSIX's least `ARG_MAX`).
const LEAST_ARG_MAX: usize = 4096 * 32;

/// The command line running `argv` on `files`.
pub fn command_for(argv: &[OsString], files: &[OsString]) -> Vec<OsString> {
    if let Some(at) = argv.iter().position(|a| a == PLACEHOLDER) {
        let mut line = argv[..at].to_vec();
        line.extend(files.iter().cloned());
        line.extend(argv[at + 1..].iter().cloned());
        return line;
    }
    if let Some(script) = shell_script(argv).filter(|s| s.contains(PLACEHOLDER))
        && argv.len() == 3
    {
        let mut line = argv[..2].to_vec();
        line.push(script.replace(PLACEHOLDER, SCRIPT_ARGS).into());
        line.push(SCRIPT_NAME.into());
        line.extend(files.iter().cloned());
        return line;
    }
    let mut line = argv.to_vec();
    line.extend(files.iter().cloned());
    line
}

/// What one argument costs in `execve`'s budget: its bytes, its NUL and its pointer.
fn cost(arg: &OsStr) -> usize {
    arg.len() + 1 + std::mem::size_of::<usize>()
}

/// The bytes left for file arguments after the environment and `argv` itself.
pub fn room(argv: &[OsString]) -> usize {
    // SAFETY: sysconf reads a constant of the system; no memory is touched.
    let arg_max = unsafe { libc::sysconf(libc::_SC_ARG_MAX) };
    let arg_max = usize::try_from(arg_max).unwrap_or(LEAST_ARG_MAX);
    let env: usize = std::env::vars_os()
        .map(|(k, v)| k.len() + v.len() + 2 + std::mem::size_of::<usize>())
        .sum();
    let base: usize = command_for(argv, &[]).iter().map(|a| cost(a)).sum();
    arg_max.saturating_sub(env + base + SLACK)
}

/// Splits `files` into batches of at most `batch_size` files and `room` bytes of arguments,
/// evened out into at least `at_least` batches when there are that many files.
pub fn split(
    files: Vec<OsString>,
    room: usize,
    batch_size: Option<usize>,
    at_least: usize,
) -> Vec<Vec<OsString>> {
    let even = files.len().div_ceil(at_least.max(1));
    let most = batch_size.unwrap_or(usize::MAX).min(even).max(1);
    let mut batches: Vec<Vec<OsString>> = Vec::new();
    let mut used = 0;
    for file in files {
        let size = cost(&file);
        let full = batches
            .last()
            .is_none_or(|b| b.len() >= most || (used + size > room && !b.is_empty()));
        if full {
            batches.push(Vec::new());
            used = 0;
        }
        used += size;
        if let Some(batch) = batches.last_mut() {
            batch.push(file);
        }
    }
    batches
}

/// How a file is named to the command: relative to the command's directory when the root
/// lies below it, else by its absolute path.
pub fn argument(root: &std::path::Path, cwd: &std::path::Path, rel: &str) -> OsString {
    let path = crate::relpath::join(root, rel);
    match path.strip_prefix(cwd) {
        Ok(below) if !below.as_os_str().is_empty() => {
            // A name starting with `-` would read as an option.
            let named = below.as_os_str();
            match named.as_bytes().first() {
                Some(b'-') => std::path::Path::new(".").join(below).into_os_string(),
                _ => named.to_os_string(),
            }
        }
        _ => path.into_os_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn files_go_at_the_placeholder_or_at_the_end() {
        let files = os(&["a.py", "b.py"]);
        assert_eq!(
            command_for(&os(&["ruff", "check", "{files}", "-q"]), &files),
            os(&["ruff", "check", "a.py", "b.py", "-q"])
        );
        assert_eq!(
            command_for(&os(&["ruff", "check"]), &files),
            os(&["ruff", "check", "a.py", "b.py"])
        );
        assert_eq!(
            command_for(&os(&["sh", "-c", "ruff {files} && echo ok"]), &files),
            os(&[
                "sh",
                "-c",
                "ruff \"$@\" && echo ok",
                "zccache-files",
                "a.py",
                "b.py"
            ])
        );
    }

    #[test]
    fn batches_fit_the_room_and_the_size() {
        let files: Vec<OsString> = (0..10).map(|i| format!("f{i}").into()).collect();
        let each = cost(OsStr::new("f0"));
        let by_room = split(files.clone(), each * 3, None, 1);
        assert_eq!(
            by_room.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        let by_size = split(files.clone(), usize::MAX, Some(4), 1);
        assert_eq!(by_size.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let by_jobs = split(files.clone(), usize::MAX, None, 3);
        assert_eq!(by_jobs.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(
            split(files, 1, None, 1).len(),
            10,
            "one file a batch at least"
        );
    }

    #[test]
    fn a_dash_name_is_not_an_option() {
        let root = std::path::Path::new("/p");
        assert_eq!(argument(root, root, "-x.py"), OsString::from("./-x.py"));
        assert_eq!(argument(root, root, "src/a.py"), OsString::from("src/a.py"));
        let elsewhere = std::path::Path::new("/q");
        assert_eq!(argument(root, elsewhere, "a.py"), OsString::from("/p/a.py"));
    }
}
