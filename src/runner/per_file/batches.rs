//! A per-file task's command lines: the files go where the command says (`{files}` as an
//! argument, or inside a `sh -c` script, where it becomes `"$@"` and the files its
//! arguments) or at the end, in batches that fit the OS's argument limit (with the
//! environment counted), an optional batch size, and, with `-j N`, at least N batches.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::relpath;

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

/// The command line running `argv` on `files` (moved in: a first run's thousands of
/// names are not copied again).
pub fn command_for(argv: &[OsString], files: Vec<OsString>) -> Vec<OsString> {
    if let Some(at) = argv.iter().position(|a| a == PLACEHOLDER) {
        let mut line = Vec::with_capacity(argv.len() + files.len());
        line.extend_from_slice(&argv[..at]);
        line.extend(files);
        line.extend_from_slice(&argv[at + 1..]);
        return line;
    }
    if let Some(script) = shell_script(argv).filter(|s| s.contains(PLACEHOLDER))
        && argv.len() == 3
    {
        let mut line = argv[..2].to_vec();
        line.push(script.replace(PLACEHOLDER, SCRIPT_ARGS).into());
        line.push(SCRIPT_NAME.into());
        line.extend(files);
        return line;
    }
    let mut line = Vec::with_capacity(argv.len() + files.len());
    line.extend_from_slice(argv);
    line.extend(files);
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
    let base: usize = command_for(argv, Vec::new()).iter().map(|a| cost(a)).sum();
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

/// How the files of a set are named to the command: relative to the command's directory
/// when they lie below it, else by their absolute paths; a relative name starting with `-`
/// gets `./` in front (it would read as an option). (Where the root lies from the command's
/// directory is worked out once for the set: cutting each file's path apart again cost more
/// than the rest of a cold run's bookkeeping.)
pub struct Naming<'a> {
    root: &'a Path,
    place: Place,
}

/// Where the root lies from the command's directory.
enum Place {
    /// At or below it: this far (empty when they are one).
    Below(PathBuf),
    /// Above it: the command's directory is this far below the root (as the set's `/`-
    /// separated relative paths spell it), and only files under it are named relatively.
    Above(String),
    /// Elsewhere.
    Apart,
}

impl<'a> Naming<'a> {
    /// The naming of files under `root` for a command run in `cwd`.
    pub fn new(root: &'a Path, cwd: &Path) -> Self {
        let place = match (root.strip_prefix(cwd), cwd.strip_prefix(root)) {
            (Ok(below), _) => Place::Below(below.to_path_buf()),
            (_, Ok(above)) => match above.to_str() {
                Some(above) => Place::Above(format!("{above}/")),
                None => Place::Apart,
            },
            _ => Place::Apart,
        };
        Naming { root, place }
    }

    /// The argument that names `rel` (relative to the root, as the set holds it).
    pub fn argument(&self, rel: &str) -> OsString {
        let below_cwd = match &self.place {
            Place::Below(below) if below.as_os_str().is_empty() => Some(rel),
            Place::Below(below) => return dotted(relpath::join(below, rel).into_os_string()),
            Place::Above(above) => rel.strip_prefix(above.as_str()),
            Place::Apart => None,
        };
        match below_cwd {
            Some(rest) => dotted(OsString::from_vec(relpath::decode(rest).into_owned())),
            None => relpath::join(self.root, rel).into_os_string(),
        }
    }
}

/// `name`, with `./` in front when it starts with `-`.
fn dotted(name: OsString) -> OsString {
    if !name.as_bytes().starts_with(b"-") {
        return name;
    }
    let mut dotted = OsString::from("./");
    dotted.push(name);
    dotted
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
            command_for(&os(&["ruff", "check", "{files}", "-q"]), files.clone()),
            os(&["ruff", "check", "a.py", "b.py", "-q"])
        );
        assert_eq!(
            command_for(&os(&["ruff", "check"]), files.clone()),
            os(&["ruff", "check", "a.py", "b.py"])
        );
        assert_eq!(
            command_for(&os(&["sh", "-c", "ruff {files} && echo ok"]), files),
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

    /// Each file as it was named before `Naming`: its path cut by `Path::strip_prefix`.
    fn named_by_strip_prefix(root: &Path, cwd: &Path, rel: &str) -> OsString {
        let path = crate::relpath::join(root, rel);
        match path.strip_prefix(cwd) {
            Ok(below) if !below.as_os_str().is_empty() => {
                let named = below.as_os_str();
                match named.as_bytes().first() {
                    Some(b'-') => Path::new(".").join(below).into_os_string(),
                    _ => named.to_os_string(),
                }
            }
            _ => path.into_os_string(),
        }
    }

    #[test]
    fn files_are_named_from_the_commands_directory_and_never_as_options() {
        let roots = ["/", "/p", "/p/r", "/p/-r", "/p/r/"];
        let cwds = ["/", "/p", "/p/r", "/p/-r", "/p/r/src", "/q", "/p/r/-d"];
        let rels = [
            "a.py",
            "-x.py",
            "src/a.py",
            "-d/a.py",
            "src/-b.py",
            "bad\u{0}FF.py",
        ];
        for root in roots.map(Path::new) {
            for cwd in cwds.map(Path::new) {
                let naming = Naming::new(root, cwd);
                for rel in rels {
                    let want = named_by_strip_prefix(root, cwd, rel);
                    assert_eq!(naming.argument(rel), want, "{root:?} {cwd:?} {rel}");
                }
            }
        }
        let here = Naming::new(Path::new("/p"), Path::new("/p"));
        assert_eq!(here.argument("-x.py"), OsString::from("./-x.py"));
        let bytes = here.argument(&crate::relpath::encode(b"bad\xff.py"));
        assert_eq!(bytes.as_bytes(), b"bad\xff.py");
    }
}
