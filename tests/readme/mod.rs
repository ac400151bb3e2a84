//! Issue Q.16: README.md and zccache.toml.example held to what the built binary does. Every
//! fenced block of the README is checked, by its kind (`kind`), so a new block is checked
//! without a change here:
//! - a transcript (lines starting `$ `) runs step by step in one shell, in an empty directory
//!   of a machine of its own; every line shown must be printed and every `zccache:` line
//!   printed must be shown, where only times, durations and an explicit `...` may differ
//!   (`markdown::compare`);
//! - a synopsis block's runnable forms (`zccache run lint test`) run the same way, after the
//!   block's scenario in `SCENARIOS`, and print the `# zccache: ...` lines shown beside them;
//!   every form, and every inline `zccache SUB ...`, names only subcommands, flags and values
//!   that the binary's `--help` has (`names`);
//! - an `sh` block runs under `set -e` in a scratch project (a cargo crate with a C program
//!   and its Makefile), minus the lines of `SKIP`, each with its reason;
//! - a `toml` block loads: `[remote]` as the user's own config file, others as a project's
//!   zccache.toml; the `json` block has the keys `fp check --json` prints; the `gitignore`
//!   block leaves nothing zccache writes untracked; a yaml hook's command is a form as above.
//!
//! Prose checked here: the hook's path and command, and every `ZCCACHE_*` variable named.
//! zccache.toml.example must name every key the binary accepts and load with every
//! commented-out key switched on (`example`).

mod example;
mod markdown;
mod names;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::support::{Cmd, Sandbox, Tool, ZCCACHE, available};
use markdown::Block;

/// Lines of `sh` blocks that are not run, by their start, with the reason. Everything else
/// in an `sh` block runs.
const SKIP: &[(&str, &str)] = &[
    (
        "cargo run --release -- run",
        "a release build of this repository (minutes); .ci/run runs it twice on a fresh \
         clone and requires the second run to skip",
    ),
    ("cargo test", "the test suite this checker is part of"),
    (
        "zccache watch",
        "runs until Ctrl-C; tests/watch.rs drives it with real edits and waits for its lines",
    ),
    (
        "cargo install --path .",
        "a release build installed into ~/.cargo/bin (minutes); the tests run the same binary",
    ),
    (
        "export ZCCACHE_PREFIX",
        "names a build farm this machine does not have; tests/prefix.rs compiles through a \
         real distccd on loopback",
    ),
    (
        "export ZCCACHE_REMOTE",
        "names a Redis server or S3 bucket this machine does not have; tests/remote.rs runs \
         the tier against a local redis-server and moto, and the user-config form of the same \
         settings (the README's `[remote]` block) is loaded below",
    ),
];

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    fs::read_to_string(path).expect("read README.md")
}

/// How a block is checked.
#[derive(Debug, PartialEq)]
enum Kind {
    Transcript,
    Shell,
    Toml,
    Json,
    Gitignore,
    /// Command forms (`zccache run [--cache FILE] ...`): names and flags checked.
    Synopsis,
    /// A hook framework's config: its `zccache` command checked as a synopsis.
    Yaml,
}

fn kind(block: &Block) -> Result<Kind, String> {
    let synopsis = block
        .lines
        .iter()
        .all(|l| l.starts_with("zccache ") || l.starts_with(' ') || l.is_empty());
    match block.lang.as_str() {
        "" if markdown::is_transcript(block) => Ok(Kind::Transcript),
        "" if synopsis => Ok(Kind::Synopsis),
        "sh" => Ok(Kind::Shell),
        "toml" => Ok(Kind::Toml),
        "json" => Ok(Kind::Json),
        "gitignore" => Ok(Kind::Gitignore),
        "yaml" => Ok(Kind::Yaml),
        _ => Err(format!(
            "README line {}: a block tests/readme/mod.rs cannot check (give it a kind there)",
            block.line
        )),
    }
}

fn blocks_of(wanted: Kind) -> Vec<Block> {
    let blocks = markdown::blocks(&readme());
    assert!(!blocks.is_empty(), "README has no blocks");
    blocks
        .into_iter()
        .filter(|b| kind(b).is_ok_and(|k| k == wanted))
        .collect()
}

/// A sandbox set up as a user's machine: `zccache` on `PATH` (a symlink to the built binary;
/// named so, not as a compiler, which would masquerade), a `HOME` of its own, and the Rust
/// toolchain of the machine that runs the tests.
struct Machine {
    sb: Sandbox,
    path: OsString,
    home: PathBuf,
}

impl Machine {
    fn new() -> Self {
        let sb = Sandbox::new();
        let bin = sb.outside("bin/zccache");
        std::os::unix::fs::symlink(ZCCACHE, &bin).unwrap();
        let home = sb.outside("home");
        fs::create_dir_all(&home).unwrap();
        let inherited = std::env::var_os("PATH").unwrap_or_default();
        let dirs = std::iter::once(bin.parent().unwrap().to_path_buf())
            .chain(std::env::split_paths(&inherited));
        let path = std::env::join_paths(dirs).unwrap();
        Machine { sb, path, home }
    }

    /// `bash -c SCRIPT` in the project directory, as the machine's user.
    fn bash(&self, script: &str) -> Cmd {
        // A temporary HOME would hide the toolchain that rustup and cargo keep in the real one.
        let real = |var: &str, dir: &str| {
            std::env::var_os(var).unwrap_or_else(|| {
                let home = std::env::var_os("HOME").unwrap_or_default();
                PathBuf::from(home).join(dir).into_os_string()
            })
        };
        let mut cmd = self
            .sb
            .program("bash")
            .args(["-c", script])
            .env("PATH", &self.path)
            .env("HOME", &self.home)
            .env("CARGO_HOME", real("CARGO_HOME", ".cargo"))
            .env("RUSTUP_HOME", real("RUSTUP_HOME", ".rustup"))
            .env("CARGO_NET_OFFLINE", "true");
        for var in [
            "CARGO_TARGET_DIR",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            cmd = cmd.env_remove(var);
        }
        for var in ["GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"] {
            cmd = cmd.env(var, "readme");
        }
        for var in ["GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"] {
            cmd = cmd.env(var, "readme@example.invalid");
        }
        cmd
    }
}

/// Marks the start of a transcript step's output, and a step's failure.
const STEP: &str = "@@readme-step";

/// Runs steps in one shell, so `cd` and variables carry from step to step; each must exit 0
/// and print what it shows.
fn run_steps(machine: &Machine, steps: &[markdown::Step]) -> Result<(), String> {
    let mut script = String::from("exec 2>&1\n");
    for (n, step) in steps.iter().enumerate() {
        script += &format!(
            "printf '\\n{STEP} {n}\\n'\n{}\nstatus=$?\n\
             if [ $status != 0 ]; then printf '\\n{STEP} exit %s\\n' $status; exit 0; fi\n",
            step.command
        );
    }
    let ran = machine.bash(&script).status(0);
    let mut outputs: Vec<String> = Vec::new();
    for line in ran.stdout.lines() {
        if let Some(mark) = line.strip_prefix(STEP) {
            if let Some(status) = mark.strip_prefix(" exit ") {
                let step = &steps[outputs.len() - 1];
                let (line, output) = (step.line, outputs.last().unwrap());
                return Err(format!(
                    "README line {line}: `{}` exited {status}\n--- its output\n{output}",
                    step.command
                ));
            }
            outputs.push(String::new());
        } else if let Some(output) = outputs.last_mut() {
            output.push_str(line);
            output.push('\n');
        }
    }
    for (step, output) in steps.iter().zip(&outputs).filter(|(s, _)| s.compared) {
        markdown::compare(&step.shown, output).map_err(|e| {
            let line = step.line;
            format!(
                "README line {line}: $ {}\n  {e}\n--- output\n{output}",
                step.command
            )
        })?;
    }
    Ok(())
}

/// Runs each block's steps on a machine of its own, all at once; the failures.
fn run_blocks(runs: Vec<(Machine, Vec<markdown::Step>)>) -> Vec<String> {
    std::thread::scope(|scope| {
        let runs: Vec<_> = runs
            .iter()
            .map(|(machine, steps)| scope.spawn(|| run_steps(machine, steps)))
            .collect();
        runs.into_iter()
            .filter_map(|run| run.join().unwrap().err())
            .collect()
    })
}

#[test]
fn issue_q_readme_transcripts_print_what_they_show() {
    let transcripts = blocks_of(Kind::Transcript);
    assert!(transcripts.len() >= 2, "the README's transcripts are found");
    let runs = transcripts
        .iter()
        .map(|block| (Machine::new(), markdown::steps(block)))
        .collect();
    let failures = run_blocks(runs);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// What a synopsis block's runnable forms need first, by the block's first such form. The
/// README says what the shown output assumes; a block not named here runs in an empty
/// directory.
const SCENARIOS: &[(&str, Setup)] = &[("zccache run lint test", tasks_scenario)];

/// Prepares a machine for a block's forms.
type Setup = fn(&Machine);

/// "In a fresh crate with the file above, after one run, with a new `tests/data/input.txt`
/// (an input of `test` only)".
fn tasks_scenario(machine: &Machine) {
    let file = blocks_of(Kind::Toml)
        .into_iter()
        .find(|b| b.lines.iter().any(|l| l.starts_with("[tasks.")))
        .expect("the README's zccache.toml block");
    machine
        .sb
        .write("zccache.toml", file.lines.join("\n") + "\n");
    let script = "set -e; cargo init -q --name app; zccache run lint test; \
                  mkdir -p tests/data; echo 1 > tests/data/input.txt";
    machine.bash(script).status(0);
}

#[test]
fn issue_q_readme_synopsis_forms_run_and_print_what_they_show() {
    let mut runs = Vec::new();
    for block in blocks_of(Kind::Synopsis) {
        let steps = markdown::synopsis_steps(&block);
        let Some(first) = steps.first() else { continue };
        let machine = Machine::new();
        if let Some((_, setup)) = SCENARIOS.iter().find(|(f, _)| *f == first.command) {
            setup(&machine);
        }
        runs.push((machine, steps));
    }
    assert!(runs.len() >= 2, "the README's runnable forms are found");
    let failures = run_blocks(runs);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The scratch project `sh` blocks run in: a cargo crate (a git repository) with a C
/// program built from a Makefile that honours `CC` and `AR`.
const SCRATCH: &str = r#"
set -e
cargo init -q --name app
printf 'int f(void) { return 1; }\n' > util.c
printf 'int f(void);\nint main(void) { return f() - 1; }\n' > main.c
printf 'app: main.o libutil.a\n\t$(CC) main.o libutil.a -o app\nlibutil.a: util.o\n\t$(AR) rcs $@ util.o\n%.o: %.c\n\t$(CC) -c $< -o $@\n' > Makefile
"#;

/// The block as a script: `set -e`, each skipped line a no-op that keeps the numbering, and
/// a trace naming README lines.
fn shell_script(block: &Block) -> String {
    let first = block.line;
    let mut script = format!(
        "PS4='+ README line $((LINENO + {})): '; set -ex\n",
        first - 2
    );
    for line in &block.lines {
        let skipped = SKIP
            .iter()
            .any(|(start, _)| line.trim_start().starts_with(start));
        script += if skipped { ":" } else { line };
        script.push('\n');
    }
    script
}

#[test]
fn issue_q_readme_shell_blocks_run() {
    if !available(Tool::Jq) {
        return;
    }
    let blocks = blocks_of(Kind::Shell);
    assert!(blocks.len() >= 4, "the README's sh blocks are found");
    for block in &blocks {
        let machine = Machine::new();
        machine.bash(SCRATCH).status(0);
        let ran = machine.bash(&shell_script(block)).output();
        assert!(
            ran.status.success(),
            "README line {}: the sh block fails\n--- stdout\n{}\n--- stderr\n{}",
            block.line,
            String::from_utf8_lossy(&ran.stdout),
            String::from_utf8_lossy(&ran.stderr)
        );
    }
    for (start, _) in SKIP {
        let used = blocks
            .iter()
            .any(|b| b.lines.iter().any(|l| l.trim_start().starts_with(start)));
        assert!(used, "SKIP names `{start}`, which no sh block has any more");
    }
}

#[test]
fn issue_q_every_readme_block_has_a_check() {
    let unknown: Vec<String> = markdown::blocks(&readme())
        .iter()
        .filter_map(|b| kind(b).err())
        .collect();
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));
}

/// Loads a project's `zccache.toml` block: every task it names is listed.
fn load_project_file(block: &Block) {
    let text = block.lines.join("\n");
    let machine = Machine::new();
    machine.sb.write("zccache.toml", &text);
    let listed = machine.bash("zccache tasks").status(0).stdout;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("[tasks.") {
            let name = name.trim_end_matches(']');
            assert!(
                listed.lines().any(|l| l.starts_with(name)),
                "README line {}: task {name} not listed:\n{listed}",
                block.line
            );
        }
    }
}

/// Loads the README's `[remote]` block as the user's own config file (with the key file it
/// names): the daemon turns the remote tier on. The server does not exist: a lookup error
/// turns the tier off for 30 s, which `status` still shows as a remote. In a project's
/// zccache.toml the same block is refused.
fn load_user_file(block: &Block) {
    let machine = Machine::new();
    machine.sb.write("zccache.toml", block.lines.join("\n"));
    machine
        .bash("zccache tasks")
        .status(2)
        .stderr_has("[remote] is not read from a project's file");
    machine.sb.remove("zccache.toml");
    machine.sb.user_config(&block.lines.join("\n"));
    let key_dir = machine.home.join(".config/zccache");
    fs::create_dir_all(&key_dir).unwrap();
    fs::write(key_dir.join("remote.key"), "k".repeat(44)).unwrap();
    let status = machine.bash("zccache start && zccache status").status(0);
    let remote = |l: &str| l.trim_start().starts_with("remote") && l.contains("hits");
    assert!(
        status.stdout.lines().any(remote),
        "README line {}: the [remote] block did not turn the remote on:\n{}{}",
        block.line,
        status.stdout,
        status.stderr
    );
}

#[test]
fn issue_q_readme_toml_blocks_load() {
    let blocks = blocks_of(Kind::Toml);
    assert!(blocks.len() >= 2, "the README's toml blocks are found");
    for block in &blocks {
        match block.lines.iter().any(|l| l == "[remote]") {
            true => load_user_file(block),
            false => load_project_file(block),
        }
    }
}

/// The keys of a JSON object.
fn keys(value: &serde_json::Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

/// "Machine-readable output": the block has the keys `fp check --json` prints; `run --json`
/// prints them without `mode`, with the keys the README lists added.
#[test]
fn issue_q_readme_json_block_has_the_keys_fp_check_prints() {
    let machine = Machine::new();
    machine
        .sb
        .write("zccache.toml", "[tasks.t]\ncommand = \"true\"\n");
    let script = "zccache fp --cache-file .cache/f.json check; echo a > a.rs; \
                  zccache fp --cache-file .cache/f.json mark-success; echo b > a.rs; \
                  zccache run t --json; zccache fp --cache-file .cache/f.json check --json";
    let ran = machine.bash(script).status(0);
    let fp = keys(&serde_json::from_str(ran.stdout.trim()).unwrap());
    let mut run = keys(&ran.stderr_json());
    let added = [
        "outcome",
        "exit_status",
        "total_ms",
        "cache",
        "dry_run",
        "task",
    ];
    run.retain(|k| !added.contains(&k.as_str()));
    run.insert("mode".to_string());
    assert_eq!(
        run, fp,
        "run --json: the keys of fp check --json but mode, and {added:?}"
    );
    for block in blocks_of(Kind::Json) {
        let shown: serde_json::Value = serde_json::from_str(&block.lines.join("\n"))
            .unwrap_or_else(|e| panic!("README line {}: not JSON: {e}", block.line));
        assert_eq!(keys(&shown), fp, "README line {}", block.line);
    }
}

#[test]
fn issue_q_readme_gitignore_block_covers_what_zccache_writes() {
    let blocks = blocks_of(Kind::Gitignore);
    assert_eq!(blocks.len(), 1, "the README's .gitignore lines are found");
    let machine = Machine::new();
    machine
        .sb
        .write(".gitignore", blocks[0].lines.join("\n") + "\n")
        .write(
            "zccache.toml",
            "[tasks.t]\ncommand = \"true\"\noutputs = [\"o\"]\n",
        );
    let script = "set -e; git init -q; touch o; \
                  zccache run --cache .cache/lint.json --replay -- true; \
                  zccache run -- true; zccache run t; \
                  zccache fp --cache-file .cache/fp.json check; \
                  zccache fp --cache-file .cache/fp.json mark-success; \
                  git status --porcelain --untracked-files=all";
    let ran = machine.bash(script).status(0);
    let untracked: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(
        untracked,
        ["?? .gitignore", "?? o", "?? zccache.toml"],
        "README line {}: zccache wrote files the suggested lines leave untracked",
        blocks[0].line
    );
}

/// "Git hooks": the hook goes where git looks for it (`.git/hooks/pre-commit`, or under
/// `core.hooksPath`) and runs this very binary by its absolute path, as the README shows.
#[test]
fn issue_q_readme_hook_lands_where_git_looks_and_runs_this_binary() {
    let shown = markdown::code_spans(&readme())
        .into_iter()
        .find_map(|(_, span)| {
            span.strip_prefix("exec '/abs/path/zccache' ")
                .map(String::from)
        })
        .expect("the README shows the hook's command");
    let machine = Machine::new();
    machine.sb.write(
        "zccache.toml",
        "[tasks.lint]\ncommand = \"true\"\n[tasks.test]\ncommand = \"true\"\n",
    );
    let script = "set -e; git init -q; zccache hook install --tasks lint,test; \
                  tail -1 .git/hooks/pre-commit; zccache hook uninstall; \
                  git config core.hooksPath .githooks; zccache hook install; \
                  tail -1 .githooks/pre-commit";
    let ran = machine.bash(script).status(0);
    let binary = fs::canonicalize(ZCCACHE).unwrap();
    let exec = format!("exec '{}'", binary.display());
    assert_eq!(
        ran.stdout,
        format!("{exec} {shown}\n{exec} run --staged --all\n")
    );
}

/// Every `ZCCACHE_*` variable the README names is one the binary reads (its name is in the
/// binary), except the test suite's own.
#[test]
fn issue_q_readme_names_only_variables_the_binary_reads() {
    const TESTS_ONLY: &[&str] = &["ZCCACHE_TEST_STRICT"];
    let text = readme();
    let names: BTreeSet<String> = text
        .match_indices("ZCCACHE_")
        .map(|(at, _)| {
            let name = &text[at..];
            let len = name.find(|c: char| !(c.is_ascii_uppercase() || c == '_'));
            name[..len.unwrap_or(name.len())].to_string()
        })
        .filter(|name| !TESTS_ONLY.contains(&name.as_str()))
        .collect();
    assert!(names.len() > 10, "the README's variables are found");
    let unknown: Vec<&String> = names
        .iter()
        .filter(|name| {
            let grep = std::process::Command::new("grep")
                .args(["-q", "-a", "-F", "--", name.as_str(), ZCCACHE])
                .status()
                .expect("run grep");
            !grep.success()
        })
        .collect();
    assert!(unknown.is_empty(), "the binary never reads {unknown:?}");
}
