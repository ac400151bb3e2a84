//! Which rustc command lines (as cargo writes them) can be cached, what in them makes up the
//! key, and which files the compile writes.
//!
//! Refusing is not an error: anything this table does not understand is `Passthrough` with
//! a reason, and runs uncached exactly as given.

use std::path::PathBuf;

/// A cacheable rustc compile of one crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustCompile {
    /// `--crate-name`.
    pub crate_name: String,
    /// `--crate-type` values (`lib`, `rlib`, `staticlib`, `proc-macro`, `bin`).
    pub crate_types: Vec<String>,
    /// `--emit` kinds (`dep-info`, `metadata`, `link`).
    pub emit: Vec<String>,
    /// The crate root as given.
    pub source: String,
    /// `--out-dir` as given.
    pub out_dir: String,
    /// `-C extra-filename`.
    pub extra_filename: String,
    /// Every argument that affects the output, in order: output paths left out, `--extern`
    /// paths and `-L dependency=` directories left out (their content is keyed instead).
    pub key_args: Vec<String>,
    /// `--extern` files (their content is part of the key).
    pub externs: Vec<PathBuf>,
    /// `-l static=NAME` libraries (bundled into an rlib: their content is part of the key).
    pub static_libs: Vec<String>,
    /// `-L` directories other than `dependency=` ones, where static libraries are found.
    pub native_dirs: Vec<PathBuf>,
    /// `-C incremental=DIR`: where rustc keeps its incremental state (not keyed).
    pub incremental: Option<PathBuf>,
}

impl RustCompile {
    /// True when the output is a final link (a program, a proc-macro's shared object, a
    /// static library bundling its dependencies' native libraries).
    pub fn links(&self) -> bool {
        self.crate_types
            .iter()
            .any(|t| t == "proc-macro" || t == "bin" || t == "staticlib")
    }

    /// True when the system linker writes the output (its identity joins the key).
    pub fn uses_linker(&self) -> bool {
        self.crate_types
            .iter()
            .any(|t| t == "proc-macro" || t == "bin")
    }

    /// The linker rustc runs: `-C linker=...`, else `cc`.
    pub fn linker(&self) -> &str {
        self.key_args
            .iter()
            .find_map(|a| a.strip_prefix("linker="))
            .unwrap_or("cc")
    }

    /// The files the compile writes into `out_dir`, by name.
    pub fn output_names(&self) -> Vec<String> {
        let stem = format!("{}{}", self.crate_name, self.extra_filename);
        let mut names = Vec::new();
        for kind in &self.emit {
            match kind.as_str() {
                "dep-info" => names.push(format!("{stem}.d")),
                "metadata" => names.push(format!("lib{stem}.rmeta")),
                _ => {
                    for crate_type in &self.crate_types {
                        names.push(match crate_type.as_str() {
                            "bin" => stem.clone(),
                            "staticlib" => format!("lib{stem}.a"),
                            "proc-macro" => format!("lib{stem}.so"),
                            _ => format!("lib{stem}.rlib"),
                        });
                    }
                }
            }
        }
        names.dedup();
        names
    }

    /// The dep-info file's name.
    pub fn dep_info_name(&self) -> String {
        format!("{}{}.d", self.crate_name, self.extra_filename)
    }
}

/// The verdict on a rustc command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RustClassified {
    /// Cache it.
    Cacheable(Box<RustCompile>),
    /// `rustc -vV`: answered from the remembered identity.
    VersionProbe,
    /// Run it as is; the reason goes to logs and stats.
    Passthrough(&'static str),
}

/// Flags whose value may be the next argument (or attached with `=`).
const WITH_VALUE: [&str; 31] = [
    "--crate-name",
    "--edition",
    "--crate-type",
    "--emit",
    "-C",
    "--codegen",
    "--check-cfg",
    "--cfg",
    "--out-dir",
    "-o",
    "-L",
    "--extern",
    "-l",
    "--cap-lints",
    "-A",
    "-W",
    "-D",
    "-F",
    "--force-warn",
    "--warn",
    "--allow",
    "--deny",
    "--forbid",
    "--target",
    "--sysroot",
    "-Z",
    "--remap-path-prefix",
    "--error-format",
    "--json",
    "--color",
    "--diagnostic-width",
];
/// Crate types whose output the cache can restore: libraries, and the programs and
/// proc-macro shared objects the system linker writes (its identity joins the key).
const CACHED_CRATE_TYPES: [&str; 5] = ["lib", "rlib", "staticlib", "proc-macro", "bin"];
/// `--emit` kinds the cache restores.
const CACHED_EMITS: [&str; 3] = ["dep-info", "metadata", "link"];
/// Flags without a value that do not change what is written (beyond the key).
const PLAIN_FLAGS: [&str; 4] = ["-g", "-O", "--verbose", "-v"];

/// Classifies rustc's arguments (without rustc itself).
pub fn classify(args: &[String]) -> RustClassified {
    if args == ["-vV"] || args == ["-V", "-v"] || args == ["--version", "--verbose"] {
        return RustClassified::VersionProbe;
    }
    let mut walk = Walk::default();
    let mut i = 0;
    while i < args.len() {
        match walk.step(args, i) {
            Ok(used) => i += used,
            Err(reason) => return RustClassified::Passthrough(reason),
        }
    }
    walk.finish()
}

#[derive(Default)]
struct Walk {
    crate_name: Option<String>,
    crate_types: Vec<String>,
    emit: Vec<String>,
    sources: Vec<String>,
    out_dir: Option<String>,
    extra_filename: String,
    key_args: Vec<String>,
    externs: Vec<PathBuf>,
    static_libs: Vec<String>,
    native_dirs: Vec<PathBuf>,
    incremental: Option<PathBuf>,
}

impl Walk {
    /// Consumes the argument at `i` (and its value); returns how many were used.
    fn step(&mut self, args: &[String], i: usize) -> Result<usize, &'static str> {
        let arg = args[i].as_str();
        if arg.starts_with('@') {
            return Err("an argument file");
        }
        if let Some((flag, value, used)) = split_valued(arg, args.get(i + 1)) {
            let value = value.ok_or("a flag without its value")?;
            self.valued(flag, value)?;
            return Ok(used);
        }
        match arg {
            "-" => return Err("a source from stdin"),
            "--test" => return Err("a test harness (a binary)"),
            _ if arg.starts_with("--print") => return Err("--print writes no crate"),
            _ if PLAIN_FLAGS.contains(&arg) => self.key_args.push(arg.to_string()),
            _ if arg.starts_with('-') => return Err("an unknown flag"),
            _ => {
                self.sources.push(arg.to_string());
                self.key_args.push(arg.to_string());
            }
        }
        Ok(1)
    }

    fn valued(&mut self, flag: &str, value: &str) -> Result<(), &'static str> {
        let keep = |walk: &mut Walk| walk.key_args.extend([flag.to_string(), value.to_string()]);
        match flag {
            "--crate-name" => {
                self.crate_name = Some(value.to_string());
                keep(self);
            }
            "--crate-type" => {
                for t in value.split(',') {
                    if !CACHED_CRATE_TYPES.contains(&t) {
                        return Err("a dylib or cdylib (linked against other shared objects)");
                    }
                    self.crate_types.push(t.to_string());
                }
                keep(self);
            }
            "--emit" => {
                for kind in value.split(',') {
                    if !CACHED_EMITS.contains(&kind) {
                        return Err("an --emit kind or path the cache does not restore");
                    }
                    self.emit.push(kind.to_string());
                }
                keep(self);
            }
            "--out-dir" => self.out_dir = Some(value.to_string()),
            "-o" => return Err("-o names the output"),
            "-C" | "--codegen" => self.codegen(value, flag)?,
            "--extern" => self.external(value),
            "-L" => self.search_dir(value),
            "-l" => {
                let (kind, name) = value.split_once('=').unwrap_or(("", value));
                if kind.split(':').next() == Some("static") {
                    let name = name.split(':').next().unwrap_or(name);
                    self.static_libs.push(name.to_string());
                }
                keep(self);
            }
            "-Z" if value.starts_with("self-profile") => {
                return Err("-Z self-profile writes files");
            }
            _ => keep(self),
        }
        Ok(())
    }

    fn codegen(&mut self, value: &str, flag: &str) -> Result<(), &'static str> {
        let (name, setting) = value.split_once('=').unwrap_or((value, ""));
        match name {
            // Where rustc keeps its incremental state is not an input: rustc checks that
            // state against the real inputs and falls back to a full compile, so a stale or
            // missing directory after a hit costs time, never correctness. That the compile
            // is incremental is keyed: it partitions code differently, so its objects differ
            // from a non-incremental compile's.
            "incremental" => {
                self.incremental = Some(PathBuf::from(setting));
                self.key_args
                    .extend([flag.to_string(), "incremental".to_string()]);
                return Ok(());
            }
            "save-temps" => return Err("-C save-temps writes extra files"),
            "split-debuginfo" if setting != "off" => {
                return Err("split debuginfo writes extra files");
            }
            "extra-filename" => self.extra_filename = setting.to_string(),
            _ => {}
        }
        self.key_args.extend([flag.to_string(), value.to_string()]);
        Ok(())
    }

    /// `--extern [opts:]name[=path]`: the name (and options) keyed, the file by content.
    fn external(&mut self, value: &str) {
        let (name, path) = value.split_once('=').unwrap_or((value, ""));
        self.key_args
            .extend(["--extern".to_string(), name.to_string()]);
        if !path.is_empty() {
            self.externs.push(PathBuf::from(path));
        }
    }

    /// `-L [kind=]dir`: `dependency=` directories only resolve crates the `--extern` files
    /// already pin down, so their path is not keyed; others are kept and searched for
    /// static libraries.
    fn search_dir(&mut self, value: &str) {
        let (kind, dir) = match value.split_once('=') {
            Some((kind, dir)) => (kind, dir),
            None => ("all", value),
        };
        if kind == "dependency" || kind == "crate" {
            self.key_args.extend(["-L".to_string(), format!("{kind}=")]);
            return;
        }
        self.native_dirs.push(PathBuf::from(dir));
        self.key_args.extend(["-L".to_string(), value.to_string()]);
    }

    fn finish(self) -> RustClassified {
        let [source] = self.sources.as_slice() else {
            return RustClassified::Passthrough("not one crate root");
        };
        let (Some(crate_name), Some(out_dir)) = (self.crate_name, self.out_dir) else {
            return RustClassified::Passthrough("no --crate-name or --out-dir");
        };
        if self.crate_types.is_empty() {
            return RustClassified::Passthrough("no --crate-type");
        }
        if !self.emit.iter().any(|e| e == "dep-info") {
            return RustClassified::Passthrough("no dep-info to learn the sources from");
        }
        RustClassified::Cacheable(Box::new(RustCompile {
            crate_name,
            crate_types: self.crate_types,
            emit: self.emit,
            source: source.clone(),
            out_dir,
            extra_filename: self.extra_filename,
            key_args: self.key_args,
            externs: self.externs,
            static_libs: self.static_libs,
            native_dirs: self.native_dirs,
            incremental: self.incremental,
        }))
    }
}

/// `--flag value`, `--flag=value` or `-Xvalue` for a flag in `WITH_VALUE`:
/// (flag, value, arguments used).
fn split_valued<'a>(
    arg: &'a str,
    next: Option<&'a String>,
) -> Option<(&'a str, Option<&'a str>, usize)> {
    if WITH_VALUE.contains(&arg) {
        return Some((arg, next.map(String::as_str), 2));
    }
    if let Some((flag, value)) = arg.split_once('=')
        && flag.starts_with("--")
        && WITH_VALUE.contains(&flag)
    {
        return Some((flag, Some(value), 1));
    }
    let short = WITH_VALUE
        .iter()
        .find(|f| f.len() == 2 && arg.len() > 2 && arg.starts_with(*f))?;
    Some((short, Some(&arg[2..]), 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    const CARGO_LIB: &str = "--crate-name wtest --edition=2024 src/lib.rs --error-format=json \
        --json=diagnostic-rendered-ansi,artifacts,future-incompat --crate-type lib \
        --emit=dep-info,metadata,link -C embed-bitcode=no -C debuginfo=2 \
        -C metadata=1c6ecd01d003c60f -C extra-filename=-0bc1e8fe21fe864f \
        --warn=unexpected_cfgs --allow=clippy::lint_groups_priority --cap-lints allow \
        --out-dir /t/debug/deps -L dependency=/t/debug/deps \
        --extern serde=/t/debug/deps/libserde-1.rmeta -l static=zstd -L native=/t/out";

    fn compile(line: &str) -> RustCompile {
        match classify(&args(line)) {
            RustClassified::Cacheable(c) => *c,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn a_cargo_library_compile() {
        let c = compile(CARGO_LIB);
        assert_eq!(c.crate_name, "wtest");
        assert_eq!(c.out_dir, "/t/debug/deps");
        assert_eq!(c.externs, [PathBuf::from("/t/debug/deps/libserde-1.rmeta")]);
        assert_eq!(c.static_libs, ["zstd"]);
        assert_eq!(c.native_dirs, [PathBuf::from("/t/out")]);
        assert_eq!(
            c.output_names(),
            [
                "wtest-0bc1e8fe21fe864f.d",
                "libwtest-0bc1e8fe21fe864f.rmeta",
                "libwtest-0bc1e8fe21fe864f.rlib"
            ]
        );
        let key = c.key_args.join(" ");
        assert!(!key.contains("/t/debug/deps"), "{key}");
        assert!(key.contains("--extern serde") && key.contains("-L dependency="));
    }

    #[test]
    fn check_builds_and_static_libraries() {
        let check = CARGO_LIB.replace("dep-info,metadata,link", "dep-info,metadata");
        assert_eq!(compile(&check).output_names().len(), 2);
        let staticlib = CARGO_LIB.replace("--crate-type lib", "--crate-type staticlib");
        assert!(compile(&staticlib).output_names()[2].ends_with(".a"));
    }

    #[test]
    fn what_passes_through() {
        for (change, why) in [
            ("--crate-type lib", "--crate-type dylib"),
            ("--crate-type lib", "--crate-type cdylib"),
            ("--emit=dep-info,metadata,link", "--emit=link"),
            ("--emit=dep-info,metadata,link", "--emit=dep-info,asm"),
            ("src/lib.rs", "src/lib.rs --test"),
            ("src/lib.rs", "-"),
            ("src/lib.rs", "src/lib.rs --frobnicate"),
            ("--out-dir /t/debug/deps", "-o x.rlib"),
        ] {
            let line = CARGO_LIB.replace(change, why);
            assert!(
                matches!(classify(&args(&line)), RustClassified::Passthrough(_)),
                "{why}"
            );
        }
        assert_eq!(classify(&args("-vV")), RustClassified::VersionProbe);
        assert!(matches!(
            classify(&args(
                "- --crate-name ___ --print=file-names --crate-type bin"
            )),
            RustClassified::Passthrough(_)
        ));
    }

    #[test]
    fn incremental_compiles_are_keyed_as_incremental_wherever_their_state_lives() {
        let plain = compile(CARGO_LIB);
        let inc = |dir: &str| {
            compile(&CARGO_LIB.replace(
                "-C debuginfo=2",
                &format!("-C debuginfo=2 -C incremental={dir}"),
            ))
        };
        let (a, b) = (inc("/t/debug/incremental/a"), inc("/elsewhere/inc"));
        assert_eq!(a.key_args, b.key_args);
        assert_ne!(a.key_args, plain.key_args);
        assert!(!a.key_args.join(" ").contains("/t/debug/incremental"));
        assert_eq!(a.output_names(), plain.output_names());
    }

    #[test]
    fn proc_macros_are_shared_objects_linked_by_cc() {
        let pm = compile(&CARGO_LIB.replace("--crate-type lib", "--crate-type proc-macro"));
        assert!(pm.links());
        assert_eq!(pm.linker(), "cc");
        assert!(pm.output_names()[2].ends_with(".so"));
        let own = compile(&CARGO_LIB.replace("-C debuginfo=2", "-C linker=clang"));
        assert_eq!(own.linker(), "clang");
    }

    #[test]
    fn programs_are_named_after_the_crate() {
        let bin = compile(&CARGO_LIB.replace("--crate-type lib", "--crate-type bin"));
        assert!(bin.links());
        assert_eq!(bin.output_names()[2], "wtest-0bc1e8fe21fe864f");
    }

    #[test]
    fn attached_and_separate_values_agree() {
        let a = compile(&CARGO_LIB.replace(
            "-C metadata=1c6ecd01d003c60f",
            "-Cmetadata=1c6ecd01d003c60f",
        ));
        assert!(
            a.key_args
                .contains(&"metadata=1c6ecd01d003c60f".to_string())
        );
        let b = compile(&CARGO_LIB.replace("--crate-type lib", "--crate-type=lib"));
        assert_eq!(b.crate_types, ["lib"]);
    }
}
