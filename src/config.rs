//! `zccache.toml`: named tasks for `zccache run NAME`, found by walking up from the current
//! directory (or named with `--config`). Unknown keys and bad values are errors that name the
//! file, the line and the key.
//!
//! Relative paths in a task (`root`, `cwd`, `outputs`) are relative to the file's directory.
//! A task's name names its state file (`<root>/.zccache/run/<NAME>.json`), so it must be a
//! plain file name (letters, digits, `-_.:`; see `TaskName`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::fingerprint::CacheType;

/// The file name searched for.
pub const FILE_NAME: &str = "zccache.toml";

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid (toml's message names the line and key).
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's description, with line and column.
        message: String,
    },
    /// A project file with `[remote]`, which only the user's own config may set.
    #[error(
        "{}: [remote] is not read from a project's file (it would serve every project the daemon serves): set ZCCACHE_REMOTE or put it in ~/.config/zccache/config.toml",
        .0.display()
    )]
    ProjectRemote(PathBuf),
    /// A project file with `[store]` or `[compile]`, which only the user's own config may
    /// set: (file, table, the variable that sets it instead).
    #[error(
        "{path}: [{1}] is not read from a project's file (one daemon serves every project): set {2} or put it in ~/.config/zccache/config.toml",
        path = .0.display()
    )]
    ProjectUserSetting(PathBuf, &'static str, &'static str),
    /// No configuration file was found.
    #[error("no {FILE_NAME} in {} or any parent directory", .0.display())]
    NotFound(PathBuf),
    /// A task name that the file does not define.
    #[error("{}: no task named {name:?} (tasks: {known})", path.display())]
    UnknownTask {
        /// The file.
        path: PathBuf,
        /// The name asked for.
        name: String,
        /// The names it has.
        known: String,
    },
    /// `depends_on` loops.
    #[error("{}: depends_on cycle: {cycle}", path.display())]
    Cycle {
        /// `a -> b -> a`.
        cycle: String,
        /// The file.
        path: PathBuf,
    },
    /// A task without a command.
    #[error("{}: task {task:?} has no command", path.display())]
    NoCommand {
        /// The task.
        task: String,
        /// The file.
        path: PathBuf,
    },
}

/// A task's command: an argv list, or one string run through `sh -c`; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskCommand {
    /// Run exactly these arguments.
    Argv(Vec<String>),
    /// Run through `sh -c`.
    Shell(String),
}

impl<'de> Deserialize<'de> for TaskCommand {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CommandVisitor)
    }
}

/// Reads a command as toml spells it: a string or a list of strings, not empty (the error
/// then names the line and key, as serde's untagged enums would not).
struct CommandVisitor;

impl<'de> serde::de::Visitor<'de> for CommandVisitor {
    type Value = TaskCommand;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string or a list of strings")
    }

    fn visit_str<E: serde::de::Error>(self, line: &str) -> Result<TaskCommand, E> {
        match line.trim().is_empty() {
            true => Err(E::custom("the command is empty")),
            false => Ok(TaskCommand::Shell(line.to_string())),
        }
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<TaskCommand, A::Error> {
        let mut argv = Vec::new();
        while let Some(arg) = seq.next_element::<String>()? {
            argv.push(arg);
        }
        match argv.first().is_none_or(|program| program.is_empty()) {
            true => Err(serde::de::Error::custom(
                "the command is empty (the list needs a program first)",
            )),
            false => Ok(TaskCommand::Argv(argv)),
        }
    }
}

impl TaskCommand {
    /// The argv to spawn.
    pub fn argv(&self) -> Vec<String> {
        match self {
            TaskCommand::Argv(argv) => argv.clone(),
            TaskCommand::Shell(line) => vec!["sh".into(), "-c".into(), line.clone()],
        }
    }
}

/// Filters and options shared by every task (`[defaults]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Directory to fingerprint.
    pub root: Option<PathBuf>,
    /// Extensions (no dot).
    pub ext: Vec<String>,
    /// Globs relative to the root.
    pub include: Vec<String>,
    /// Names or globs to leave out.
    pub exclude: Vec<String>,
    /// Env vars whose values join the key.
    pub env: Vec<String>,
    /// `two-layer` or `hash`.
    pub cache_type: Option<CacheType>,
    /// Capture and replay the command's output.
    pub replay: Option<bool>,
    /// Share results through the remote cache tier.
    pub share: Option<bool>,
    /// Most tasks `zccache run` runs at once (1 to 256, as `-j`).
    #[serde(deserialize_with = "jobs")]
    pub jobs: Option<usize>,
}

/// One `[tasks.NAME]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Task {
    /// What to run.
    pub command: Option<TaskCommand>,
    /// Directory to fingerprint (default: the file's directory).
    pub root: Option<PathBuf>,
    /// Extensions (no dot); replaces the defaults' when given.
    pub ext: Option<Vec<String>>,
    /// Globs relative to the root; replaces the defaults' when given.
    pub include: Option<Vec<String>>,
    /// Names or globs to leave out; added to the defaults'.
    pub exclude: Vec<String>,
    /// Env vars whose values join the key; added to the defaults'.
    pub env: Vec<String>,
    /// Files or directories the command produces.
    pub outputs: Vec<PathBuf>,
    /// Per-file task: globs (relative to the root) of the files judged one by one.
    pub files: Vec<String>,
    /// Most files per run of a per-file task's command.
    pub batch_size: Option<u32>,
    /// `two-layer` or `hash`.
    pub cache_type: Option<CacheType>,
    /// Capture and replay the command's output.
    pub replay: Option<bool>,
    /// Share results through the remote cache tier.
    pub share: Option<bool>,
    /// Tasks to run first, in order.
    pub depends_on: Vec<String>,
    /// Where the command runs (default: the file's directory).
    pub cwd: Option<PathBuf>,
    /// A group of tasks that share a resource (`"cargo"`: its build directory lock): tasks
    /// naming the same group never run at the same time.
    pub serial: Option<SerialGroup>,
}

/// The name of a serial group, checked while parsing like a task name (a plain name).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SerialGroup(String);

impl SerialGroup {
    /// The group's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for SerialGroup {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match plain_name_error(&name) {
            None => Ok(SerialGroup(name)),
            Some(why) => Err(serde::de::Error::custom(format!(
                "bad serial group {name:?}: {why}"
            ))),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    tasks: BTreeMap<TaskName, Task>,
    /// Refused: the remote tier is the user's setting (see `user_config`).
    #[serde(default)]
    remote: Option<toml::Table>,
    /// Refused: the store's settings are the user's (see `user_config`).
    #[serde(default)]
    store: Option<toml::Table>,
    /// Refused: how misses compile is the user's setting (see `user_config`).
    #[serde(default)]
    compile: Option<toml::Table>,
}

/// Reads `jobs`: 1 to [`crate::os::MAX_CHILDREN`], as `-j` takes it.
fn jobs<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    let jobs = usize::deserialize(deserializer)?;
    match (1..=crate::os::MAX_CHILDREN).contains(&jobs) {
        true => Ok(Some(jobs)),
        false => Err(serde::de::Error::custom(format!(
            "jobs must be 1 to {}, not {jobs}",
            crate::os::MAX_CHILDREN
        ))),
    }
}

/// Longest task name.
pub const MAX_TASK_NAME: usize = 64;

/// A task name as the file spells it, checked while parsing (so a bad one is an error naming
/// its line): letters, digits and `-_.:`, not starting with `.`, 1 to [`MAX_TASK_NAME`]
/// bytes. It becomes a file name, so `/`, `..` and hidden or empty names are refused.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TaskName(String);

impl<'de> Deserialize<'de> for TaskName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match plain_name_error(&name) {
            None => Ok(TaskName(name)),
            Some(why) => Err(serde::de::Error::custom(format!(
                "bad task name {name:?}: {why}"
            ))),
        }
    }
}

/// Why `name` cannot be a task name or a serial group (`None`: it can).
fn plain_name_error(name: &str) -> Option<&'static str> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if name.is_empty() {
        Some("it is empty")
    } else if !name.chars().all(allowed) {
        Some("a name has only letters, digits and '-', '_', '.', ':'")
    } else if name.starts_with('.') {
        Some("it starts with '.'")
    } else if name.len() > MAX_TASK_NAME {
        Some("it is longer than 64 characters")
    } else {
        None
    }
}

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file.
    pub path: PathBuf,
    /// Its directory: the base of relative paths.
    pub dir: PathBuf,
    /// `[defaults]`.
    pub defaults: Defaults,
    /// The tasks by name.
    pub tasks: BTreeMap<String, Task>,
}

/// The nearest `zccache.toml` at or above `start`.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|file| file.is_file())
}

/// Loads `explicit`, else the nearest file above `cwd`.
pub fn load(explicit: Option<&Path>, cwd: &Path) -> Result<Config, ConfigError> {
    let path = match explicit {
        Some(path) => cwd.join(path),
        None => find(cwd).ok_or_else(|| ConfigError::NotFound(cwd.to_path_buf()))?,
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    parse(&path, &text)
}

/// Parses `text` as the content of `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    // toml's message is a block (line, the line's text, a caret): kept as it is.
    let file: File = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let config = Config {
        path: path.to_path_buf(),
        dir: path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        defaults: file.defaults,
        tasks: file.tasks.into_iter().map(|(n, t)| (n.0, t)).collect(),
    };
    if file.remote.is_some() {
        return Err(ConfigError::ProjectRemote(config.path));
    }
    if file.store.is_some() {
        let (table, env) = ("store", "ZCCACHE_COMPRESSION");
        return Err(ConfigError::ProjectUserSetting(config.path, table, env));
    }
    if file.compile.is_some() {
        let (table, env) = ("compile", "ZCCACHE_PREFIX");
        return Err(ConfigError::ProjectUserSetting(config.path, table, env));
    }
    for (name, task) in &config.tasks {
        if task.command.is_none() {
            return Err(ConfigError::NoCommand {
                task: name.clone(),
                path: config.path.clone(),
            });
        }
        for dep in &task.depends_on {
            config.task(dep)?;
        }
    }
    // A cycle is refused by every command, not only by the ones that order tasks.
    config.order(&config.tasks.keys().cloned().collect::<Vec<_>>())?;
    Ok(config)
}

impl Config {
    /// The task called `name`.
    pub fn task(&self, name: &str) -> Result<&Task, ConfigError> {
        self.tasks
            .get(name)
            .ok_or_else(|| ConfigError::UnknownTask {
                path: self.path.clone(),
                name: name.to_string(),
                known: self.tasks.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }

    /// `names` with their dependencies first, each task once; a cycle is an error naming it.
    pub fn order(&self, names: &[String]) -> Result<Vec<String>, ConfigError> {
        let mut ordered = Vec::new();
        let mut done = BTreeSet::new();
        for name in names {
            self.visit(name, &mut Vec::new(), &mut done, &mut ordered)?;
        }
        Ok(ordered)
    }

    fn visit(
        &self,
        name: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        ordered: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        if done.contains(name) {
            return Ok(());
        }
        if let Some(start) = stack.iter().position(|n| n == name) {
            let mut cycle = stack[start..].to_vec();
            cycle.push(name.to_string());
            return Err(ConfigError::Cycle {
                cycle: cycle.join(" -> "),
                path: self.path.clone(),
            });
        }
        stack.push(name.to_string());
        for dep in &self.task(name)?.depends_on {
            self.visit(dep, stack, done, ordered)?;
        }
        stack.pop();
        done.insert(name.to_string());
        ordered.push(name.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/p/zccache.toml"), text)
    }

    #[test]
    fn the_example_file_parses() {
        let text = include_str!("../zccache.toml.example");
        let config = config(text).unwrap();
        assert!(config.tasks.contains_key("lint"));
        let order = config.order(&config.tasks.keys().cloned().collect::<Vec<_>>());
        assert!(order.is_ok(), "{order:?}");
    }

    #[test]
    fn unknown_keys_name_line_and_key() {
        let err = config("[tasks.lint]\ncommand = \"x\"\nbogus = 1\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/p/zccache.toml"), "{text}");
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("bogus"), "{text}");
    }

    #[test]
    fn bad_values_are_errors() {
        let err = config("[tasks.a]\ncommand = \"x\"\ncache_type = \"zip\"\n").unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        let err = config("[tasks.a]\ncommand = 5\n").unwrap_err();
        assert!(err.to_string().contains("command"), "{err}");
    }

    #[test]
    fn dependencies_come_first_once() {
        let c = config(
            "[tasks.a]\ncommand=\"a\"\ndepends_on=[\"b\",\"c\"]\n\
             [tasks.b]\ncommand=\"b\"\ndepends_on=[\"c\"]\n[tasks.c]\ncommand=\"c\"\n",
        )
        .unwrap();
        assert_eq!(c.order(&["a".into(), "c".into()]).unwrap(), ["c", "b", "a"]);
    }

    #[test]
    fn cycles_are_named_when_the_file_is_read() {
        let err = config(
            "[tasks.a]\ncommand=\"a\"\ndepends_on=[\"b\"]\n\
             [tasks.b]\ncommand=\"b\"\ndepends_on=[\"a\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("a -> b -> a"), "{err}");
    }

    #[test]
    fn empty_or_mistyped_commands_name_line_and_key() {
        for (text, said) in [
            ("command = []", "the command is empty"),
            ("command = [\"\"]", "the command is empty"),
            ("command = \"\"", "the command is empty"),
            ("command = \"  \"", "the command is empty"),
            ("command = 5", "expected a string or a list of strings"),
        ] {
            let err = config(&format!("[tasks.a]\n{text}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("line 2") && err.contains(said),
                "{text}: {err}"
            );
            assert!(!err.contains("untagged"), "{err}");
        }
    }

    #[test]
    fn jobs_in_the_file_are_checked_like_dash_j() {
        let err = config("[defaults]\njobs = 0\n").unwrap_err().to_string();
        assert!(
            err.contains("line 2") && err.contains("jobs must be 1 to 256"),
            "{err}"
        );
        assert_eq!(
            config("[defaults]\njobs = 3\n").unwrap().defaults.jobs,
            Some(3)
        );
    }

    #[test]
    fn parse_errors_keep_the_parsers_layout() {
        let err = config("[tasks.a]\ncomand = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("\n2 | comand"), "{err}");
    }

    #[test]
    fn unknown_dependency_is_named() {
        let err = config("[tasks.a]\ncommand=\"a\"\ndepends_on=[\"zz\"]\n").unwrap_err();
        assert!(err.to_string().contains("\"zz\""), "{err}");
    }

    #[test]
    fn task_names_are_plain_file_names() {
        for good in [
            "lint",
            "build:web",
            "a.b-c_d",
            "T2",
            &"x".repeat(MAX_TASK_NAME),
        ] {
            assert_eq!(plain_name_error(good), None, "{good}");
        }
        let long = "x".repeat(MAX_TASK_NAME + 1);
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "../x",
            "sub/dir",
            "a b",
            "\u{1b}]0;t",
            "é",
            &long,
        ] {
            assert!(plain_name_error(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_task_name_names_file_line_and_key() {
        let err =
            config("[tasks.a]\ncommand = \"x\"\n\n[tasks.\"../../out/x\"]\ncommand = \"y\"\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("/p/zccache.toml"), "{err}");
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("bad task name \"../../out/x\""), "{err}");
    }

    #[test]
    fn serial_groups_are_plain_names() {
        let c = config("[tasks.a]\ncommand = \"x\"\nserial = \"cargo\"\n").unwrap();
        assert_eq!(
            c.tasks["a"].serial.as_ref().map(SerialGroup::as_str),
            Some("cargo")
        );
        for bad in ["\"\"", "\"a b\"", "\"../x\"", "3"] {
            let err = config(&format!("[tasks.a]\ncommand = \"x\"\nserial = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("line 3") && err.contains("serial"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn shell_and_argv_commands() {
        assert_eq!(TaskCommand::Shell("a b".into()).argv(), ["sh", "-c", "a b"]);
        assert_eq!(TaskCommand::Argv(vec!["a".into()]).argv(), ["a"]);
    }
}
