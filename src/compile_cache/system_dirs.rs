//! The compiler's system include directories, as `-E -v` prints them, asked once per
//! compiler, language, the flags that move them and the include env vars, and remembered.
//!
//! They name system headers exactly: what `-MMD` leaves out of a depfile, and under which
//! name a system header was found (for the shadow check).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use super::args::Compile;
use super::request::Request;
use crate::fingerprint::Digest;
use crate::paths::lexically_absolute;

/// Flags (with their value as the next argument) that change the system include path.
const MOVING_WITH_VALUE: [&str; 6] = [
    "-isystem",
    "-idirafter",
    "-isysroot",
    "--sysroot",
    "-target",
    "-x",
];
/// Prefixes of single-argument flags that change the system include path.
const MOVING_PREFIXES: [&str; 11] = [
    "-isystem",
    "-idirafter",
    "-nostdinc",
    "-isysroot",
    "--sysroot",
    "--target",
    "-m",
    "-stdlib",
    "--gcc-toolchain",
    "-B",
    "-x",
];

/// Remembered system include directories.
#[derive(Debug, Default)]
pub struct SystemDirs {
    known: Mutex<HashMap<Digest, Arc<Vec<PathBuf>>>>,
}

impl SystemDirs {
    /// The system include directories of this compile (normalized, in search order).
    /// `compiler` is the compiler's identity digest; `keyed_env` the env vars it reads.
    pub fn of(
        &self,
        compiler: &Digest,
        req: &Request,
        c: &Compile,
        keyed_env: &str,
    ) -> io::Result<Arc<Vec<PathBuf>>> {
        let flags = moving_flags(c);
        let mut hasher = blake3::Hasher::new();
        hasher.update(&compiler.0);
        for flag in &flags {
            hasher.update(flag.as_bytes());
            hasher.update(&[0]);
        }
        hasher.update(keyed_env.as_bytes());
        let key: Digest = hasher.finalize().into();
        if let Some(dirs) = self.lock().get(&key) {
            return Ok(dirs.clone());
        }
        let output = Command::new(&req.compiler)
            .args(&flags)
            .args(["-E", "-v", "/dev/null"])
            .current_dir(&req.cwd)
            .env_clear()
            .envs(req.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .output()?;
        let text = String::from_utf8_lossy(&output.stderr);
        let dirs = parse_search_list(&text, &req.cwd)
            .ok_or_else(|| io::Error::other("the compiler did not print its include path"))?;
        let dirs = Arc::new(dirs);
        self.lock().insert(key, dirs.clone());
        Ok(dirs)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Arc<Vec<PathBuf>>>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The flags of `c` that move the system include path, with `-x LANG` from the source's
/// extension when the command line names no language.
fn moving_flags(c: &Compile) -> Vec<String> {
    let mut out = Vec::new();
    let mut args = c.key_args.iter();
    while let Some(arg) = args.next() {
        if MOVING_WITH_VALUE.contains(&arg.as_str()) {
            out.push(arg.clone());
            out.extend(args.next().cloned());
        } else if MOVING_PREFIXES.iter().any(|p| arg.starts_with(p)) {
            out.push(arg.clone());
        }
    }
    if !out.iter().any(|a| a.starts_with("-x")) {
        out.extend(["-x".to_string(), language_of(&c.source).to_string()]);
    }
    out
}

/// gcc's language for a source extension.
fn language_of(source: &str) -> &'static str {
    match source.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "cc" | "cpp" | "cxx" | "c++" | "C" | "cp" | "CPP" | "ii" => "c++",
        "m" => "objective-c",
        "mm" => "objective-c++",
        _ => "c",
    }
}

/// The directories between `#include <...> search starts here:` and `End of search list.`
/// (`None` when the marker is missing).
fn parse_search_list(text: &str, cwd: &Path) -> Option<Vec<PathBuf>> {
    let start = text.find("#include <...> search starts here:")?;
    let dirs = text[start..]
        .lines()
        .skip(1)
        .take_while(|line| line.starts_with(' '))
        .map(|line| line.trim().trim_end_matches(" (framework directory)"))
        .map(|dir| lexically_absolute(cwd, Path::new(dir)))
        .collect();
    Some(dirs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_angle_bracket_list() {
        let text = "ignoring nonexistent directory \"/x\"\n#include \"...\" search starts here:\n \
                    q\n#include <...> search starts here:\n /usr/lib/gcc/x86_64-linux-gnu/12/../../../../include/c++/12\n \
                    /usr/include\n /System/Library/Frameworks (framework directory)\nEnd of search list.\n";
        let dirs = parse_search_list(text, Path::new("/w")).unwrap();
        assert_eq!(
            dirs,
            [
                PathBuf::from("/usr/include/c++/12"),
                PathBuf::from("/usr/include"),
                PathBuf::from("/System/Library/Frameworks"),
            ]
        );
        assert!(parse_search_list("no list", Path::new("/")).is_none());
    }

    #[test]
    fn language_comes_from_the_extension_unless_given() {
        let compile = |source: &str, key_args: &[&str]| Compile {
            source: source.to_string(),
            output: "a.o".into(),
            depfile: None,
            key_args: key_args.iter().map(|a| a.to_string()).collect(),
            include_dirs: Vec::new(),
            user_headers_only: false,
            records_cwd: false,
            prefix_maps: Vec::new(),
            targets: Vec::new(),
            remembered_as: None,
        };
        assert_eq!(
            moving_flags(&compile("a.cpp", &["-O2", "-m32", "-Iinc", "-DX"])),
            ["-m32", "-x", "c++"]
        );
        assert_eq!(
            moving_flags(&compile("-", &["-x", "c", "-isystem", "sys", "-"])),
            ["-x", "c", "-isystem", "sys"]
        );
    }
}
