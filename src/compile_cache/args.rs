//! Which gcc/clang command lines can be cached, and what in them makes up the key.
//!
//! Refusing is not an error: anything this table does not understand is `Passthrough`
//! with a reason, and runs uncached exactly as given.

/// A cacheable single-source `-c` compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compile {
    /// The source as given.
    pub source: String,
    /// The object path as given (`-o`), or the driver's default `<stem>.o`.
    pub output: String,
    /// The depfile the build asked for (`-MD`/`-MMD`), as a path.
    pub depfile: Option<String>,
    /// Every argument that affects the output, in order (no `-o`/`-MF` paths).
    pub key_args: Vec<String>,
    /// `-I`, `-iquote`, `-isystem`, `-idirafter` directories, in order.
    pub include_dirs: Vec<String>,
    /// The depfile lists user headers only (`-MMD`): the cache compiles with `-MD` to see
    /// every header and writes the build's depfile without the system ones.
    pub user_headers_only: bool,
    /// The object records the working directory (`-g`, `-flto`, coverage mapping) unless a
    /// prefix map maps it away.
    pub records_cwd: bool,
    /// The OLD sides of `-fdebug-prefix-map=OLD=NEW` / `-ffile-prefix-map=OLD=NEW`.
    pub prefix_maps: Vec<String>,
    /// The depfile's targets named by `-MT`/`-MQ`, in command order (not in the key: a hit
    /// writes its depfile with its own targets).
    pub targets: Vec<DepTarget>,
    /// The name its misses are remembered under when its output is a private file (a
    /// compile-and-link's object: `prog(m.c)`); `None`: the output.
    pub remembered_as: Option<String>,
}

/// A depfile target the command names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepTarget {
    /// The name as given.
    pub name: String,
    /// `-MQ` (quoted for make) rather than `-MT` (written as is).
    pub quoted: bool,
}

/// The verdict on a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// Cache it.
    Cacheable(Compile),
    /// Several sources compiled to their default objects: each is its own compile.
    Several(Vec<String>),
    /// Run it as is; the reason goes to logs and stats.
    Passthrough(&'static str),
}

/// Flags whose value is the next argument (or attached), kept in the key.
pub(super) const WITH_VALUE: [&str; 16] = [
    "-I",
    "-isystem",
    "-iquote",
    "-idirafter",
    "-include",
    "-imacros",
    "-iprefix",
    "-iwithprefix",
    "-isysroot",
    "-D",
    "-U",
    "-x",
    "--param",
    "-Xpreprocessor",
    "-target",
    "--sysroot",
];
/// Include directory flags.
const INCLUDE_DIRS: [&str; 4] = ["-I", "-iquote", "-isystem", "-idirafter"];
/// Flags that make the compile write files we cannot key or restore.
const REFUSED_PREFIXES: [(&str, &str); 8] = [
    (
        "-gsplit-dwarf",
        "split DWARF writes a .dwo named after the output",
    ),
    ("-save-temps", "-save-temps writes extra files"),
    ("-fprofile-", "profile instrumentation"),
    ("-fauto-profile", "profile instrumentation"),
    ("--coverage", "coverage instrumentation"),
    ("-ftest-coverage", "coverage instrumentation"),
    ("-fdump-", "compiler dumps"),
    ("-fsyntax-only", "no object is produced"),
];
/// Prefixes of flags that only change the output (kept in the key). `-gsplit-dwarf` is
/// refused above, before `-g` accepts it.
const KEYED_PREFIXES: [&str; 19] = [
    "-O",
    "-g",
    "-f",
    "-m",
    "-W",
    "-std=",
    "-pedantic",
    "-ansi",
    "-w",
    "-pipe",
    "-pthread",
    "-nostdinc",
    "-v",
    "-Q",
    "-MD",
    "-MMD",
    "-MP",
    "-march",
    "--param=",
];
/// Source extensions gcc compiles with `-c`.
const SOURCE_EXTENSIONS: [&str; 13] = [
    "c", "cc", "cpp", "cxx", "c++", "C", "cp", "CPP", "m", "mm", "i", "ii", "S",
];

/// True when `compiler` is named like a gcc or clang driver (`gcc`, `x86_64-linux-gnu-gcc-12`,
/// `cc`, `c++`, `clang++-14`): the tools whose link lines the link cache understands.
pub fn is_c_driver(compiler: &std::path::Path) -> bool {
    let name = compiler.file_name().and_then(|n| n.to_str()).unwrap_or("");
    zccache_early::rules::is_c_driver(name.as_bytes())
}

/// Classifies the arguments of a compiler invocation (without the compiler itself).
pub fn classify(args: &[String]) -> Classified {
    let mut state = Walk::default();
    let mut i = 0;
    while i < args.len() {
        match state.step(args, i) {
            Ok(used) => i += used,
            Err(reason) => return Classified::Passthrough(reason),
        }
    }
    state.finish()
}

#[derive(Default)]
struct Walk {
    compile_only: bool,
    sources: Vec<String>,
    output: Option<String>,
    dep_wanted: bool,
    dep_file: Option<String>,
    key_args: Vec<String>,
    include_dirs: Vec<String>,
    user_headers_only: bool,
    arch_count: usize,
    targets: Vec<DepTarget>,
}

impl Walk {
    /// Consumes the argument at `i` (and its value); returns how many were used.
    fn step(&mut self, args: &[String], i: usize) -> Result<usize, &'static str> {
        let arg = args[i].as_str();
        let next = args.get(i + 1);
        match arg {
            "-c" => self.compile_only = true,
            "-E" | "-S" | "-M" | "-MM" => return Err("not a compile to an object"),
            _ if names_stdin(arg) => {
                self.sources.push(arg.to_string());
                self.key_args.push(arg.to_string());
            }
            "-o" => {
                self.output = Some(next.ok_or("-o without a value")?.clone());
                return Ok(2);
            }
            "-MF" => {
                self.dep_file = Some(next.ok_or("-MF without a value")?.clone());
                return Ok(2);
            }
            "-MT" | "-MQ" => {
                let name = next.ok_or("a flag without its value")?.clone();
                self.target(arg, name);
                return Ok(2);
            }
            _ if arg.starts_with("-MT") || arg.starts_with("-MQ") => {
                self.target(arg, arg[3..].to_string());
            }
            "-MD" | "-MMD" => {
                self.dep_wanted = true;
                self.user_headers_only = arg == "-MMD";
                self.key_args.push(arg.to_string());
            }
            "-arch" => {
                self.arch_count += 1;
                if self.arch_count > 1 {
                    return Err("multiple -arch (one object per architecture)");
                }
                let value = next.ok_or("-arch without a value")?;
                self.keep_valued(arg, value);
                return Ok(2);
            }
            _ if arg.starts_with('@') => return Err("a response file that cannot be read"),
            _ if arg.starts_with("-o") => self.output = Some(arg[2..].to_string()),
            _ if arg.starts_with("-MF") => self.dep_file = Some(arg[3..].to_string()),
            _ if WITH_VALUE.contains(&arg) => {
                let value = next.ok_or("a flag without its value")?;
                self.keep_valued(arg, value);
                return Ok(2);
            }
            _ if arg.starts_with('-') => self.keep_flag(arg)?,
            _ if is_source(arg) => {
                self.sources.push(arg.to_string());
                self.key_args.push(arg.to_string());
            }
            _ => return Err("an input that is not a source"),
        }
        Ok(1)
    }

    fn target(&mut self, flag: &str, name: String) {
        let quoted = flag.starts_with("-MQ");
        self.targets.push(DepTarget { name, quoted });
    }

    fn keep_valued(&mut self, flag: &str, value: &str) {
        if INCLUDE_DIRS.contains(&flag) {
            self.include_dirs.push(value.to_string());
        }
        self.key_args.push(flag.to_string());
        self.key_args.push(value.to_string());
    }

    fn keep_flag(&mut self, arg: &str) -> Result<(), &'static str> {
        if let Some((_, reason)) = REFUSED_PREFIXES.iter().find(|(p, _)| arg.starts_with(p)) {
            return Err(reason);
        }
        if let Some(dir) = INCLUDE_DIRS
            .iter()
            .find_map(|flag| arg.strip_prefix(flag).filter(|v| !v.is_empty()))
        {
            self.include_dirs.push(dir.to_string());
            self.key_args.push(arg.to_string());
            return Ok(());
        }
        let attached = WITH_VALUE.iter().any(|flag| arg.starts_with(flag));
        if attached || KEYED_PREFIXES.iter().any(|p| arg.starts_with(p)) {
            self.key_args.push(arg.to_string());
            return Ok(());
        }
        Err("an unknown flag")
    }

    fn finish(self) -> Classified {
        let language_given = self.key_args.iter().any(|a| a.starts_with("-x"));
        if self.sources.iter().any(|s| names_stdin(s)) && !language_given {
            return Classified::Passthrough("stdin source without -x (gcc refuses it)");
        }
        if !self.compile_only {
            return Classified::Passthrough("not a compile (-c missing)");
        }
        let [source] = self.sources.as_slice() else {
            return self.several();
        };
        let output = self.output.unwrap_or_else(|| default_object(source));
        let depfile = self.dep_wanted.then(|| {
            self.dep_file
                .unwrap_or_else(|| with_extension(&output, "d"))
        });
        let records_cwd = self.key_args.iter().any(|a| {
            (a.starts_with("-g") && a != "-g0")
                || a.starts_with("-flto")
                || a == "-fcoverage-mapping"
        });
        let prefix_maps = self
            .key_args
            .iter()
            .filter_map(|a| {
                a.strip_prefix("-fdebug-prefix-map=")
                    .or_else(|| a.strip_prefix("-ffile-prefix-map="))
            })
            .filter_map(|map| map.split_once('=').map(|(old, _)| old.to_string()))
            .collect();
        Classified::Cacheable(Compile {
            source: source.clone(),
            output,
            depfile,
            key_args: self.key_args,
            include_dirs: self.include_dirs,
            user_headers_only: self.dep_wanted && self.user_headers_only,
            records_cwd,
            prefix_maps,
            targets: self.targets,
            remembered_as: None,
        })
    }
}

/// How deeply response files may include each other.
const MAX_NESTING: usize = 8;

/// The arguments with every readable `@file` replaced by its content (nested, quoted the way
/// gcc reads them). An unreadable `@file` is left as is, so it classifies as passthrough.
pub fn expand_response_files(args: &[String], cwd: &std::path::Path) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        expand_into(arg, cwd, 0, &mut out);
    }
    out
}

fn expand_into(arg: &str, cwd: &std::path::Path, depth: usize, out: &mut Vec<String>) {
    let content = arg
        .strip_prefix('@')
        .filter(|_| depth < MAX_NESTING)
        .and_then(|file| super::regular::read(&cwd.join(file)).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match content {
        Some(text) => {
            for inner in split_response_file(&text) {
                expand_into(&inner, cwd, depth + 1, out);
            }
        }
        None => out.push(arg.to_string()),
    }
}

/// Splits a response file: whitespace separates, '…' and "…" quote, \ escapes.
fn split_response_file(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut in_arg = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => {
                current.extend(chars.next());
                in_arg = true;
            }
            (q, None) if q == '\'' || q == '"' => {
                quote = Some(q);
                in_arg = true;
            }
            (q, Some(open)) if q == open => quote = None,
            (c, None) if c.is_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut current));
                    in_arg = false;
                }
            }
            (c, _) => {
                current.push(c);
                in_arg = true;
            }
        }
    }
    if in_arg {
        args.push(current);
    }
    args
}

impl Walk {
    /// `gcc -c a.c b.c`: each source to its own default object, so each can be its own
    /// compile; with a named output, depfile or target they cannot be split.
    fn several(self) -> Classified {
        if self.sources.is_empty() {
            return Classified::Passthrough("no source");
        }
        let named = self.output.is_some() || self.dep_file.is_some() || !self.targets.is_empty();
        if named || self.sources.iter().any(|s| names_stdin(s)) {
            return Classified::Passthrough("several sources with one named output");
        }
        Classified::Several(self.sources)
    }
}

/// The file a C driver command that is not cached writes, named as gcc names it: `-o`'s
/// value, else `<stem>.s` for `-S`, `<stem>.o` for `-c`, `a.out` for a link; none for
/// `-E` and `-M`/`-MM`, which write to stdout.
pub fn uncached_output(args: &[String]) -> Option<String> {
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.strip_prefix("-o") {
            Some("") => return iter.next().cloned(),
            Some(value) => return Some(value.to_string()),
            None => {}
        }
    }
    let given = |flag: &str| args.iter().any(|a| a == flag);
    if given("-E") || given("-M") || given("-MM") {
        return None;
    }
    let source = args.iter().find(|a| !a.starts_with('-') && is_source(a));
    let stem_with = |ext| source.map(|s| with_extension(s.rsplit('/').next().unwrap_or(s), ext));
    if given("-S") {
        stem_with("s")
    } else if given("-c") {
        stem_with("o")
    } else {
        Some("a.out".to_string())
    }
}

/// True when `arg` names the process's standard input: `-` and the paths that reach fd 0.
/// Such a source is the bytes the client sent (the daemon's own stdin is not the caller's).
pub fn names_stdin(arg: &str) -> bool {
    zccache_early::rules::names_stdin(arg.as_bytes())
}

/// True when `arg` is named like a source gcc compiles.
pub(super) fn is_source(arg: &str) -> bool {
    arg.rsplit_once('.')
        .is_some_and(|(_, ext)| SOURCE_EXTENSIONS.contains(&ext))
}

/// `src/a.c` → `a.o` (gcc writes the object in the current directory).
fn default_object(source: &str) -> String {
    let name = source.rsplit('/').next().unwrap_or(source);
    with_extension(name, "o")
}

fn with_extension(path: &str, ext: &str) -> String {
    let name_at = path.rfind('/').map_or(0, |i| i + 1);
    match path[name_at..].rfind('.') {
        Some(dot) => format!("{}.{ext}", &path[..name_at + dot]),
        None => format!("{path}.{ext}"),
    }
}

/// True when `args` name a source (a driver line without `-c` naming one compiles too).
pub fn names_a_source(args: &[String]) -> bool {
    args.iter()
        .any(|a| !a.starts_with('-') && (is_source(a) || a.ends_with(".s")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    fn compile(line: &str) -> Compile {
        match classify(&args(line)) {
            Classified::Cacheable(c) => c,
            other => panic!("{line}: {other:?}"),
        }
    }

    macro_rules! passthrough {
        ($name:ident, $line:expr) => {
            #[test]
            fn $name() {
                assert!(
                    matches!(classify(&args($line)), Classified::Passthrough(_)),
                    $line
                );
            }
        };
    }

    passthrough!(link_line, "a.o b.o -o app");
    passthrough!(preprocess, "-E a.c");
    passthrough!(assembly, "-S a.c");
    passthrough!(deps_only, "-M a.c");
    passthrough!(save_temps, "-c -save-temps a.c");
    passthrough!(profile, "-c -fprofile-generate a.c");
    passthrough!(coverage, "-c --coverage a.c");
    passthrough!(stdin_without_language, "-c -");
    passthrough!(unreadable_response_file, "-c @args.rsp");
    passthrough!(two_sources_one_output, "-c a.c b.c -o x.o");
    passthrough!(unknown_flag, "-c -frobnicate-not -Zweird a.c");
    passthrough!(object_input, "-c a.o");
    passthrough!(two_architectures, "-c a.c -arch x86_64 -arch arm64");

    #[test]
    fn uncached_outputs_are_named_as_gcc_names_them() {
        let output = |line: &str| uncached_output(&args(line));
        assert_eq!(output("m.c b.o -o prog").as_deref(), Some("prog"));
        assert_eq!(output("-c a.c -oout/a.o").as_deref(), Some("out/a.o"));
        assert_eq!(output("-S src/a.c -O2").as_deref(), Some("a.s"));
        assert_eq!(output("-c -Zweird src/a.c").as_deref(), Some("a.o"));
        assert_eq!(output("m.o b.o").as_deref(), Some("a.out"));
        assert_eq!(output("-E a.c"), None);
    }

    #[test]
    fn one_architecture_is_keyed() {
        assert_eq!(
            compile("-c a.c -arch arm64").key_args,
            args("a.c -arch arm64")
        );
    }

    #[test]
    fn debug_info_records_the_working_directory() {
        assert!(!compile("-c a.c -O2").records_cwd);
        assert!(!compile("-c a.c -g0").records_cwd);
        assert!(compile("-c a.c -g").records_cwd);
        assert!(compile("-c a.c -ggdb3").records_cwd);
        assert!(compile("-c a.c -flto").records_cwd);
        let mapped = compile("-c a.c -g -fdebug-prefix-map=/src/tree=. -ffile-prefix-map=/b=/c");
        assert_eq!(mapped.prefix_maps, ["/src/tree", "/b"]);
    }

    #[test]
    fn user_headers_only_follows_the_last_depfile_flag() {
        assert!(compile("-c a.c -MMD").user_headers_only);
        assert!(!compile("-c a.c -MMD -MD").user_headers_only);
        assert!(!compile("-c a.c").user_headers_only);
    }

    #[test]
    fn output_and_depfile_are_not_in_the_key() {
        let c = compile("-c src/a.c -o out/a.o -MD -MF out/a.d -O2 -DX=1");
        assert_eq!(c.source, "src/a.c");
        assert_eq!(c.output, "out/a.o");
        assert_eq!(c.depfile.as_deref(), Some("out/a.d"));
        assert_eq!(c.key_args, args("src/a.c -MD -O2 -DX=1"));
    }

    #[test]
    fn depfile_targets_are_not_in_the_key() {
        let c = compile("-c a.c -MD -MT x -MQ y -MTw -o a.o");
        assert_eq!(c.key_args, args("a.c -MD"));
        let target = |name: &str, quoted| DepTarget {
            name: name.into(),
            quoted,
        };
        assert_eq!(
            c.targets,
            [target("x", false), target("y", true), target("w", false)]
        );
    }

    #[test]
    fn defaults_follow_gcc() {
        let c = compile("-c src/a.c -MMD");
        assert_eq!(c.output, "a.o");
        assert_eq!(c.depfile.as_deref(), Some("a.d"));
        assert_eq!(
            compile("-c a.c -o b/x.o -MD").depfile.as_deref(),
            Some("b/x.d")
        );
    }

    #[test]
    fn response_files_split_like_gcc() {
        assert_eq!(
            split_response_file("-c 'a b.c' \"-DX=\\\"1\\\"\"\n -O2\\ x ''"),
            ["-c", "a b.c", "-DX=\"1\"", "-O2 x", ""]
        );
    }

    #[test]
    fn stdin_source_with_a_language() {
        let c = compile("-x c -c - -O2");
        assert_eq!(c.source, "-");
        assert_eq!(c.output, "-.o");
    }

    #[test]
    fn several_sources_split() {
        assert_eq!(
            classify(&args("-c a.c src/b.c -O2")),
            Classified::Several(vec!["a.c".into(), "src/b.c".into()])
        );
    }

    #[test]
    fn order_is_kept() {
        assert_ne!(
            compile("-c a.c -O0 -O2").key_args,
            compile("-c a.c -O2 -O0").key_args
        );
        assert_ne!(
            compile("-c a.c -DX=1 -DX=2").key_args,
            compile("-c a.c -DX=2 -DX=1").key_args
        );
    }

    #[test]
    fn c_drivers_by_name() {
        for name in [
            "gcc",
            "/usr/bin/x86_64-linux-gnu-gcc-12",
            "cc",
            "c++",
            "clang++-14",
            "g++",
        ] {
            assert!(is_c_driver(std::path::Path::new(name)), "{name}");
        }
        for name in ["clippy-driver", "rustc", "nvcc", "ld", "python3"] {
            assert!(!is_c_driver(std::path::Path::new(name)), "{name}");
        }
    }

    #[test]
    fn include_dirs_attached_and_separate() {
        let c = compile("-c a.c -Iinc -I other -isystem sys -iquote q");
        assert_eq!(c.include_dirs, ["inc", "other", "sys", "q"]);
    }
}
