//! Compile-and-link in one command (`gcc m.c b.c -o prog`, `cc -O2 x.c -o x`, configure's
//! probes): each source is its own cached compile, keyed as `gcc FLAGS -c m.c` would be
//! (the flags that reach the compiler, in order), into a private object; then the link of
//! those objects is a cached driver link keyed by the objects' content under their sources'
//! names. The private paths reach neither key nor program: gcc's own temporaries
//! (`/tmp/ccXXXX.o`) are not in the program it links either.
//!
//! What cannot be split safely runs as given: `-x` (it would recompile the objects as C),
//! a depfile, `-save-temps`, `-flto`, `-v`, stdin, `.s` sources.

use super::args::{Classified, Compile, WITH_VALUE, classify, is_source, names_stdin};
use super::compile::CompileCache;
use super::invoke::{Scratch, run_plain};
use super::link_args::{Link, LinkTool};
use super::profile::Profile;
use super::request::{Outcome, Request, Served};

/// Link-only flags whose value is the next argument.
const LINK_WITH_VALUE: [&str; 6] = ["-l", "-L", "-Xlinker", "-T", "-u", "-z"];
/// Link-only flags standing alone.
const LINK_ONLY: [&str; 16] = [
    "-static",
    "-shared",
    "-rdynamic",
    "-pie",
    "-no-pie",
    "-static-pie",
    "-static-libgcc",
    "-static-libstdc++",
    "-shared-libgcc",
    "-nostdlib",
    "-nostdlib++",
    "-nodefaultlibs",
    "-nostartfiles",
    "-nolibc",
    "-s",
    "-symbolic",
];
/// Link-only flags with an attached value.
const LINK_PREFIXES: [&str; 4] = ["-l", "-L", "-Wl,", "-fuse-ld="];
/// Flags (by prefix) a compile-and-link is not split with, and why.
const REFUSED_PREFIXES: [(&str, &str); 4] = [
    ("-x", "a language switch (-x) in a compile-and-link"),
    ("-M", "a depfile of a compile-and-link"),
    ("-save-temps", "-save-temps writes extra files"),
    ("-flto", "link-time optimisation in a compile-and-link"),
];

/// One part of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// A flag (and its value) the compiles and the link both get.
    Both(Vec<String>),
    /// A flag (and its value) only the link gets.
    LinkOnly(Vec<String>),
    /// A source: compiled, its object linked in its place.
    Source(String),
    /// Another input (object, archive, library): linked as is.
    Input(String),
    /// `-o PROGRAM`.
    Output(Vec<String>),
}

/// A compile-and-link split into its compiles and its link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileAndLink {
    pieces: Vec<Piece>,
    /// The program, as given (`a.out` by default).
    pub output: String,
}

/// Splits a driver line without `-c` that names sources; why not, when it cannot be.
pub fn split(args: &[String]) -> Result<CompileAndLink, &'static str> {
    let mut pieces = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let (piece, used) = piece(args, i)?;
        pieces.push(piece);
        i += used;
    }
    if !pieces.iter().any(|p| matches!(p, Piece::Source(_))) {
        return Err("no source");
    }
    let output = pieces
        .iter()
        .rev()
        .find_map(|p| match p {
            Piece::Output(words) if words.len() == 2 => Some(words[1].clone()),
            Piece::Output(words) => Some(words[0][2..].to_string()),
            _ => None,
        })
        .unwrap_or_else(|| "a.out".to_string());
    Ok(CompileAndLink { pieces, output })
}

/// The piece at `i` and how many arguments it takes.
fn piece(args: &[String], i: usize) -> Result<(Piece, usize), &'static str> {
    let arg = args[i].as_str();
    let pair = || -> Result<Vec<String>, &'static str> {
        let value = args.get(i + 1).ok_or("a flag without its value")?;
        Ok(vec![arg.to_string(), value.clone()])
    };
    if let Some(reason) = refusal(arg) {
        return Err(reason);
    }
    let alone = || vec![arg.to_string()];
    Ok(match arg {
        "-o" => (Piece::Output(pair()?), 2),
        _ if arg.starts_with("-o") => (Piece::Output(alone()), 1),
        _ if LINK_WITH_VALUE.contains(&arg) => (Piece::LinkOnly(pair()?), 2),
        _ if LINK_ONLY.contains(&arg) || LINK_PREFIXES.iter().any(|p| arg.starts_with(p)) => {
            (Piece::LinkOnly(alone()), 1)
        }
        _ if WITH_VALUE.contains(&arg) || arg == "-arch" => (Piece::Both(pair()?), 2),
        _ if arg.starts_with('-') => (Piece::Both(alone()), 1),
        _ if is_source(arg) => (Piece::Source(arg.to_string()), 1),
        _ => (Piece::Input(arg.to_string()), 1),
    })
}

/// Why the argument `arg` keeps the command from being split, if it does.
fn refusal(arg: &str) -> Option<&'static str> {
    match arg {
        "-E" | "-S" | "-fsyntax-only" => Some("not a compile to an object"),
        "-v" | "-###" | "--verbose" => Some("verbose output names the driver's temporary files"),
        _ if names_stdin(arg) => Some("a source on stdin in a compile-and-link"),
        _ if arg.starts_with('@') => Some("a response file that cannot be read"),
        _ if !arg.starts_with('-') && arg.ends_with(".s") => {
            Some("an assembly source (.s) in a compile-and-link")
        }
        _ => REFUSED_PREFIXES
            .iter()
            .find(|(prefix, _)| arg.starts_with(prefix))
            .map(|(_, reason)| *reason),
    }
}

impl CompileAndLink {
    /// The sources, in command order.
    pub fn sources(&self) -> Vec<&str> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Source(s) => Some(s.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The arguments compiling the `n`th source to `object`: every flag the compiler gets,
    /// in order, with that source in its place.
    pub fn compile_args(&self, n: usize, object: &str) -> Vec<String> {
        let mut seen = 0;
        let mut args = Vec::new();
        for piece in &self.pieces {
            match piece {
                Piece::Both(words) => args.extend(words.iter().cloned()),
                Piece::Source(source) => {
                    if seen == n {
                        args.push(source.clone());
                    }
                    seen += 1;
                }
                _ => {}
            }
        }
        args.extend(["-c", "-o", object].map(String::from));
        args
    }

    /// The link of `objects` (one per source, in order): what runs, and what is keyed
    /// (each object by its source's name; the program's path is not keyed).
    pub fn link(&self, objects: &[String]) -> (Vec<String>, Link) {
        let mut run = Vec::new();
        let mut key_args = Vec::new();
        let mut inputs = Vec::new();
        let mut shown_as = Vec::new();
        let mut objects = objects.iter();
        for piece in &self.pieces {
            match piece {
                Piece::Both(words) | Piece::LinkOnly(words) => {
                    if words[0] == "-T" {
                        inputs.push(words[1].clone());
                    }
                    run.extend(words.iter().cloned());
                    key_args.extend(words.iter().cloned());
                }
                Piece::Source(source) => {
                    let object = objects.next().cloned().unwrap_or_default();
                    shown_as.push((object.clone(), format!("{source} (compiled)")));
                    inputs.push(object.clone());
                    run.push(object);
                    key_args.push(source.clone());
                }
                Piece::Input(input) => {
                    inputs.push(input.clone());
                    run.push(input.clone());
                    key_args.push(input.clone());
                }
                Piece::Output(words) => run.extend(words.iter().cloned()),
            }
        }
        let link = Link {
            tool: LinkTool::Driver,
            output: self.output.clone(),
            inputs,
            key_args,
            shown_as,
        };
        (run, link)
    }
}

impl CompileCache {
    /// Serves a compile-and-link: the sources' compiles in parallel (hits at once), then,
    /// when all succeeded, the link of their objects; their output in command order.
    pub(super) fn compile_and_link(&self, req: &Request, expanded: &[String]) -> Outcome {
        let split = match split(expanded) {
            Ok(split) => split,
            Err(reason) => return run_plain(req, Served::Passthrough(reason)),
        };
        let Ok(scratches) = split
            .sources()
            .iter()
            .map(|_| Scratch::new(self.scratch_dir()))
            .collect::<std::io::Result<Vec<_>>>()
        else {
            return run_plain(req, Served::Passthrough("cache error"));
        };
        let objects: Vec<String> = scratches
            .iter()
            .map(|s| s.object.display().to_string())
            .collect();
        let mut parts = Vec::new();
        for (n, (source, object)) in split.sources().iter().zip(&objects).enumerate() {
            let args = split.compile_args(n, object);
            match classify(&args) {
                Classified::Cacheable(mut compile) => {
                    compile.remembered_as = Some(format!("{}({source})", split.output));
                    parts.push((
                        Request {
                            args,
                            ..req.clone()
                        },
                        compile,
                    ));
                }
                Classified::Several(_) => {
                    return run_plain(req, Served::Passthrough("several sources in one part"));
                }
                Classified::Passthrough(reason) => {
                    return run_plain(req, Served::Passthrough(reason));
                }
            }
        }
        let compiled = self.compile_parts(&parts);
        if compiled.iter().any(|o| o.exit_code != 0) {
            return combined(&split, compiled, None);
        }
        let (args, link) = split.link(&objects);
        let linked = self.link_driver(
            &Request {
                args,
                ..req.clone()
            },
            &link,
        );
        combined(&split, compiled, Some(linked))
    }

    /// Each part compiled on its own thread; their outcomes in order.
    fn compile_parts(&self, parts: &[(Request, Compile)]) -> Vec<Outcome> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = parts
                .iter()
                .map(|(req, compile)| {
                    scope.spawn(move || {
                        let outcome = self.compile_one(req, compile, &req.args);
                        self.rescued(req, outcome)
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(parts)
                .map(|(h, (req, _))| {
                    h.join()
                        .unwrap_or_else(|_| run_plain(req, Served::Passthrough("panic")))
                })
                .collect()
        })
    }
}

/// One outcome of the parts and the link (`None`: a compile failed, nothing was linked):
/// a link hit when every part hit, a passthrough when any part was one.
fn combined(split: &CompileAndLink, parts: Vec<Outcome>, link: Option<Outcome>) -> Outcome {
    let passthrough = parts.iter().chain(&link).find_map(|o| match o.served {
        Served::Passthrough(reason) => Some(reason),
        _ => None,
    });
    let all_hit = parts.iter().all(|o| o.served == Served::Hit);
    let served = match (&link, passthrough) {
        (_, Some(reason)) => Served::Passthrough(reason),
        (None, None) => Served::Miss,
        (Some(l), None) if all_hit && l.served == Served::LinkHit => Served::LinkHit,
        (Some(_), None) => Served::LinkMiss,
    };
    let mut why: Vec<String> = split
        .sources()
        .iter()
        .zip(&parts)
        .flat_map(|(source, o)| o.why.iter().map(move |w| format!("{source}: {w}")))
        .collect();
    let outcomes: Vec<&Outcome> = parts.iter().chain(&link).collect();
    why.extend(link.iter().flat_map(|l| l.why.iter().cloned()));
    Outcome::joined(&outcomes, served, why, Profile::of_output(&split.output))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile_cache::args::names_a_source;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn each_source_compiles_with_the_flags_the_compiler_gets() {
        let split = split(&args("-O2 m.c -Iinc -lm b.c util.o -o prog -Wl,-O1 -DX")).unwrap();
        assert_eq!(split.output, "prog");
        assert_eq!(split.sources(), ["m.c", "b.c"]);
        assert_eq!(
            split.compile_args(1, "/s/1.o"),
            args("-O2 -Iinc b.c -DX -c -o /s/1.o")
        );
        let (run, link) = split.link(&["/s/0.o".into(), "/s/1.o".into()]);
        assert_eq!(
            run,
            args("-O2 /s/0.o -Iinc -lm /s/1.o util.o -o prog -Wl,-O1 -DX")
        );
        assert_eq!(
            link.key_args,
            args("-O2 m.c -Iinc -lm b.c util.o -Wl,-O1 -DX")
        );
        assert_eq!(link.inputs, ["/s/0.o", "/s/1.o", "util.o"]);
        assert_eq!(link.shown_as[0], ("/s/0.o".into(), "m.c (compiled)".into()));
        assert_eq!(link.shown_as[1].1, "b.c (compiled)");
    }

    #[test]
    fn the_program_defaults_to_a_out() {
        assert_eq!(split(&args("x.c")).unwrap().output, "a.out");
        assert_eq!(split(&args("x.c -oprog")).unwrap().output, "prog");
    }

    #[test]
    fn what_cannot_be_split_is_refused() {
        for line in [
            "-x c m.o -o prog",
            "m.c -MD -o prog",
            "m.c -save-temps",
            "m.c -flto -o prog",
            "-v m.c",
            "- -o prog",
            "m.c start.s -o prog",
            "-S m.c",
            "m.o -o prog",
        ] {
            assert!(split(&args(line)).is_err(), "{line}");
        }
    }

    #[test]
    fn sources_are_told_from_other_inputs() {
        assert!(names_a_source(&args("m.c -o prog")));
        assert!(names_a_source(&args("start.s m.o")));
        assert!(!names_a_source(&args("m.o -lm -o prog")));
    }
}
