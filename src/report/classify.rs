//! What a journal line is, for the report's groups: the output it wrote, its kind (`o`,
//! `so`, `rlib`, `test`, `query`, ...), its tool and its source; and the paths in miss
//! reasons spelled one way, whatever spelling the compile's depfile used.

use std::path::Path;

use super::Line;
use crate::paths::lexically_absolute;

/// The source file column of a compile that read none: a link or an archive.
pub const NO_SOURCE: &str = "(link or archive)";
/// The source file column of a question to a tool (`rustc -vV`, `--print`, `--version`).
pub const QUERY_SOURCE: &str = "(query)";

/// Arguments that make a run a question to the tool rather than a compile.
const QUERIES: [&str; 7] = [
    "-vV",
    "-V",
    "--version",
    "-dumpversion",
    "-dumpfullversion",
    "-dumpmachine",
    "-print-search-dirs",
];

/// Source extensions (C family, assembly that goes through the preprocessor or not, Rust).
const SOURCES: [&str; 15] = [
    ".c", ".cc", ".cpp", ".cxx", ".c++", ".cp", ".C", ".m", ".mm", ".i", ".ii", ".S", ".s", ".sx",
    ".rs",
];

/// Nouns of the reasons that name an input's path (`header changed: inc/a.h`).
const PATH_NOUNS: [&str; 3] = ["header", "input", "file"];
/// What happened to that input.
const PATH_VERBS: [&str; 3] = ["changed", "added", "no longer read"];

/// A question to the tool: `rustc -vV`, `rustc --print cfg`, `gcc --version`,
/// `gcc -print-file-name=...`.
pub fn is_query(line: &Line) -> bool {
    line.args.iter().any(|a| {
        QUERIES.contains(&a.as_str()) || a.starts_with("--print") || a.starts_with("-print-")
    })
}

/// The value after `flag`.
pub fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// What the compile wrote: `-o`'s value, an archive, a crate's name, or `-` when unknown.
pub fn output_of(line: &Line) -> String {
    if let Some(out) = flag_value(&line.args, "-o") {
        return out.to_string();
    }
    if tool_of(line).ends_with("ar")
        && let Some(archive) = line.args.iter().find(|a| a.ends_with(".a"))
    {
        return archive.clone();
    }
    match flag_value(&line.args, "--crate-name") {
        Some(name) => format!("{name} ({})", crate_kind(line)),
        None => "-".to_string(),
    }
}

fn crate_kind(line: &Line) -> &str {
    match line.args.iter().any(|a| a == "--test") {
        true => "test",
        false => flag_value(&line.args, "--crate-type").unwrap_or("lib"),
    }
}

/// The kind of output: its extension (a versioned shared library `libz.so.1.2` is `so`),
/// `program` for an executable, a crate's `rlib`/`rmeta`/`so`/`program`, `test` for a test
/// harness, `query` for a question to the tool.
pub fn kind_of(line: &Line, output: &str) -> String {
    if is_query(line) {
        return "query".to_string();
    }
    if flag_value(&line.args, "--crate-name").is_some() {
        let emit = line
            .args
            .iter()
            .find_map(|a| a.strip_prefix("--emit="))
            .or_else(|| flag_value(&line.args, "--emit"))
            .unwrap_or("link");
        let check = !emit.split(',').any(|kind| kind == "link");
        return match crate_kind(line) {
            "test" => "test".to_string(),
            "bin" => "program".to_string(),
            _ if check => "rmeta".to_string(),
            "proc-macro" => "so".to_string(),
            _ => "rlib".to_string(),
        };
    }
    let name = output.rsplit('/').next().unwrap_or(output);
    if let Some((_, version)) = name.split_once(".so.")
        && version
            .split('.')
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return "so".to_string();
    }
    match name.rsplit_once('.') {
        Some((_, ext)) if !ext.is_empty() => ext.to_string(),
        _ if !line.args.iter().any(|a| a == "-c") => "program".to_string(),
        _ => "(none)".to_string(),
    }
}

/// The tool's file name.
pub fn tool_of(line: &Line) -> String {
    line.compiler
        .rsplit('/')
        .next()
        .unwrap_or(&line.compiler)
        .to_string()
}

/// The source a compile read: a C-family, assembly or Rust source on its command line (not
/// the output `-o` names); `(query)` for a question to the tool.
pub fn source_of(line: &Line) -> String {
    if is_query(line) {
        return QUERY_SOURCE.to_string();
    }
    let mut after_o = false;
    for arg in &line.args {
        let output = std::mem::replace(&mut after_o, arg == "-o");
        if !output && !arg.starts_with('-') && SOURCES.iter().any(|ext| arg.ends_with(ext)) {
            return arg.clone();
        }
    }
    NO_SOURCE.to_string()
}

/// `reason` with the input path it names spelled one way: made absolute against the
/// compile's `cwd` with `.`, `..` and `//` removed, then relative to `root` when under it.
/// Two compiles that read `lib//compress/../common/mem.h` and `../lib/common/mem.h` (from
/// `programs/`) name one header. A reason naming no path, or a line without a cwd (written
/// before cwds were recorded), is left as it is.
pub fn normalise_reason(reason: &str, cwd: &str, root: &Path) -> String {
    if cwd.is_empty() {
        return reason.to_string();
    }
    let shown = |path: &str| {
        let abs = lexically_absolute(Path::new(cwd), Path::new(path));
        match abs.strip_prefix(root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_string(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => abs.display().to_string(),
        }
    };
    if let Some(rest) = reason.strip_prefix("new ")
        && let Some((noun, rest)) = rest.split_once(" shadows ")
        && PATH_NOUNS.contains(&noun)
        && let Some((shadowed, path)) = rest.split_once(": ")
    {
        return format!("new {noun} shadows {}: {}", shown(shadowed), shown(path));
    }
    for noun in PATH_NOUNS {
        for verb in PATH_VERBS {
            if let Some(path) = reason
                .strip_prefix(noun)
                .and_then(|r| r.strip_prefix(' '))
                .and_then(|r| r.strip_prefix(verb))
                .and_then(|r| r.strip_prefix(": "))
            {
                return format!("{noun} {verb}: {}", shown(path));
            }
        }
    }
    reason.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(compiler: &str, args: &[&str]) -> Line {
        Line {
            ts: 0.0,
            outcome: "miss".into(),
            compiler: compiler.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            cwd: String::new(),
            session_id: None,
            latency_ns: 0,
            miss_reason: None,
            passthrough_reason: None,
        }
    }

    fn kind(compiler: &str, args: &[&str]) -> String {
        let l = line(compiler, args);
        kind_of(&l, &output_of(&l))
    }

    #[test]
    fn kinds_of_outputs() {
        let cargo = |emit: &str| kind("rustc", &["--crate-name", "u", "--crate-type", "lib", emit]);
        assert_eq!(cargo("--emit=dep-info,metadata,link"), "rlib");
        assert_eq!(cargo("--emit=dep-info,metadata"), "rmeta");
        let test = ["--crate-name", "u", "--emit=dep-info,link", "--test"];
        assert_eq!(kind("rustc", &test), "test");
        assert_eq!(kind("rustc", &["-vV"]), "query");
        let print = ["-", "--crate-name", "___", "--print=file-names"];
        assert_eq!(kind("rustc", &print), "query");
        assert_eq!(kind("gcc", &["--version"]), "query");
        let shared = ["-shared", "a.o", "-o", "lib/libzstd.so.1.5.6"];
        assert_eq!(kind("gcc", &shared), "so");
        assert_eq!(kind("gcc", &["a.o", "-o", "app.1.x"]), "x");
        assert_eq!(kind("gcc", &["a.o", "-o", "app"]), "program");
        assert_eq!(kind("gcc", &["-c", "a.S", "-o", "a.o"]), "o");
    }

    #[test]
    fn sources_of_compiles() {
        let source = |compiler: &str, args: &[&str]| source_of(&line(compiler, args));
        assert_eq!(source("gcc", &["-c", "x/a.S", "-o", "a.o"]), "x/a.S");
        assert_eq!(source("gcc", &["-S", "-o", "a.s", "a.c"]), "a.c");
        assert_eq!(source("rustc", &["-vV"]), QUERY_SOURCE);
        assert_eq!(source("gcc", &["a.o", "b.o", "-o", "app"]), NO_SOURCE);
    }

    #[test]
    fn reason_paths_are_spelled_one_way() {
        let root = Path::new("/p");
        let norm = |reason: &str, cwd: &str| normalise_reason(reason, cwd, root);
        let want = "header changed: lib/common/mem.h";
        assert_eq!(
            norm("header changed: lib//compress/../common/mem.h", "/p"),
            want
        );
        assert_eq!(
            norm("header changed: ../lib/common/mem.h", "/p/programs"),
            want
        );
        assert_eq!(norm("header changed: /p/lib/./common/mem.h", "/x"), want);
        assert_eq!(
            norm("header added: ../../usr/include/a.h", "/p/b"),
            "header added: /usr/include/a.h"
        );
        assert_eq!(
            norm("new header shadows ../second/c.h: first/c.h", "/p/src"),
            "new header shadows second/c.h: src/first/c.h"
        );
        assert_eq!(
            norm("file no longer read: ./src/x.rs", "/p"),
            "file no longer read: src/x.rs"
        );
        assert_eq!(
            norm("argument changed: -O2 -> -O3", "/p"),
            "argument changed: -O2 -> -O3"
        );
        assert_eq!(
            norm("header changed: a/../b.h", ""),
            "header changed: a/../b.h"
        );
    }
}
