//! Which `ar`, `ld` and compiler-driver link command lines can be cached, and what in them
//! makes up the key.

/// The tools a link cache serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTool {
    /// `ar` creating an archive.
    Archiver,
    /// `ld` itself.
    Linker,
    /// `gcc`/`clang` linking objects (no `-c`).
    Driver,
}

/// A cacheable link or archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Which tool.
    pub tool: LinkTool,
    /// The file it writes (`-o`, or the archive), as given.
    pub output: String,
    /// The input files named on the command line, as given (their content is keyed).
    pub inputs: Vec<String>,
    /// Every argument but the output path, in order.
    pub key_args: Vec<String>,
    /// Inputs shown under another name in miss reasons (a compile-and-link's private
    /// objects, by their sources): (input as given, name).
    pub shown_as: Vec<(String, String)>,
}

/// `ar` operations and modifiers the cache accepts: replace or quick-append (`r`, `q`),
/// create (`c`), index (`s`, `S`), deterministic or not (`D`, `U`), update (`u`), verbose.
const AR_LETTERS: &str = "rqcsSDUuv";
/// Source extensions: a driver line with sources compiles too (its headers are unknown).
const SOURCE_EXTENSIONS: [&str; 10] = ["c", "cc", "cpp", "cxx", "c++", "C", "m", "mm", "S", "s"];
/// Driver and linker flags whose value is the next argument.
const WITH_VALUE: [&str; 9] = [
    "-L",
    "-l",
    "-T",
    "-Xlinker",
    "-z",
    "-m",
    "--sysroot",
    "-target",
    "-e",
];
/// Flags that make a driver do something other than link.
const NOT_A_LINK: [&str; 6] = ["-c", "-E", "-S", "-M", "-MM", "-fsyntax-only"];

/// Classifies `ar ARGS`: fresh archives made with `r`/`q` are cacheable (the archive must
/// not exist yet: checked when served).
pub fn classify_archive(args: &[String]) -> Result<Link, &'static str> {
    let [operation, archive, members @ ..] = args else {
        return Err("ar without an archive");
    };
    let letters = operation.trim_start_matches('-');
    if !letters.contains(['r', 'q']) || !letters.chars().all(|c| AR_LETTERS.contains(c)) {
        return Err("an ar operation other than creating an archive");
    }
    if members.is_empty()
        || members
            .iter()
            .any(|m| m.starts_with('-') || m.starts_with('@'))
    {
        return Err("ar with options or no members");
    }
    Ok(Link {
        tool: LinkTool::Archiver,
        output: archive.clone(),
        inputs: members.to_vec(),
        key_args: std::iter::once(operation.clone())
            .chain(members.iter().cloned())
            .collect(),
        shown_as: Vec::new(),
    })
}

/// Classifies a link by `ld` (`driver: false`) or by a compiler driver.
pub fn classify_link(args: &[String], driver: bool) -> Result<Link, &'static str> {
    let mut output = None;
    let mut inputs = Vec::new();
    let mut key_args = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let next = args.get(i + 1);
        i += 1;
        match arg {
            "-o" => {
                output = Some(next.ok_or("-o without a value")?.clone());
                i += 1;
            }
            _ if arg.starts_with("-o") && driver => output = Some(arg[2..].to_string()),
            _ if arg.starts_with('@') => return Err("a response file"),
            _ if driver && NOT_A_LINK.contains(&arg) => return Err("not a link"),
            _ if WITH_VALUE.contains(&arg) => {
                let value = next.ok_or("a flag without its value")?;
                if arg == "-T" {
                    inputs.push(value.clone());
                }
                key_args.extend([arg.to_string(), value.clone()]);
                i += 1;
            }
            "-" => return Err("input from stdin"),
            _ if arg.starts_with('-') => key_args.push(arg.to_string()),
            _ => {
                let ext = arg.rsplit_once('.').map_or("", |(_, e)| e);
                if driver && SOURCE_EXTENSIONS.contains(&ext) {
                    return Err("a driver line that compiles sources too");
                }
                inputs.push(arg.to_string());
                key_args.push(arg.to_string());
            }
        }
    }
    if inputs.is_empty() {
        return Err("no input files");
    }
    let output = output.unwrap_or_else(|| "a.out".to_string());
    Ok(Link {
        tool: if driver {
            LinkTool::Driver
        } else {
            LinkTool::Linker
        },
        output,
        inputs,
        key_args,
        shown_as: Vec::new(),
    })
}

/// True when `tool` is named like an archiver (`ar`, `x86_64-linux-gnu-ar`, `gcc-ar`).
pub fn is_archiver(tool: &str) -> bool {
    tool == "ar" || tool.ends_with("-ar")
}

/// True when `tool` is named like a linker (`ld`, `ld.bfd`, `ld.lld`, `x86_64-linux-gnu-ld`).
pub fn is_linker(tool: &str) -> bool {
    tool == "ld" || tool.starts_with("ld.") || tool.ends_with("-ld")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn archives() {
        let link = classify_archive(&args("rcs libx.a a.o b.o")).unwrap();
        assert_eq!(link.output, "libx.a");
        assert_eq!(link.inputs, ["a.o", "b.o"]);
        assert_eq!(link.key_args, ["rcs", "a.o", "b.o"]);
        assert!(classify_archive(&args("-rcsD libx.a a.o")).is_ok());
        for refused in [
            "t libx.a",
            "x libx.a a.o",
            "rcT libx.a a.o",
            "rcs libx.a",
            "d libx.a a.o",
        ] {
            assert!(classify_archive(&args(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn driver_links() {
        let link = classify_link(&args("main.o util.o -L. -lm -o app -Wl,-O1"), true).unwrap();
        assert_eq!(link.output, "app");
        assert_eq!(link.inputs, ["main.o", "util.o"]);
        assert_eq!(link.key_args, args("main.o util.o -L. -lm -Wl,-O1"));
        assert_eq!(classify_link(&args("a.o"), true).unwrap().output, "a.out");
        for refused in ["-c a.c", "main.c -o app", "-o app", "@rsp", "-E a.o"] {
            assert!(classify_link(&args(refused), true).is_err(), "{refused}");
        }
    }

    #[test]
    fn linker_scripts_are_inputs() {
        let link = classify_link(&args("-T app.ld a.o -o app"), false).unwrap();
        assert_eq!(link.inputs, ["app.ld", "a.o"]);
    }

    #[test]
    fn tool_names() {
        assert!(is_archiver("ar") && is_archiver("x86_64-linux-gnu-ar") && is_archiver("gcc-ar"));
        assert!(is_linker("ld") && is_linker("ld.bfd") && is_linker("x86_64-linux-gnu-ld"));
        assert!(!is_linker("gold") && !is_archiver("rar-tool"));
    }
}
