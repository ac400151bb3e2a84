//! From `zccache run` arguments to a resolved task: absolute paths, the state file, the key
//! parts besides the file set (command, tool, env), and the outputs left out of the inputs.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::output_rules::{glob_matcher, is_glob};
use crate::cli::{InputArgs, RunArgs, TaskArgs};
use crate::fingerprint::{CacheType, Digest, Filter, FilterSpec, KEEP};
use crate::paths::lexically_absolute;

/// Where default state files live under the root.
pub const STATE_DIR: &str = ".zccache/run";

/// A task ready to check and run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RunSpec {
    /// The task's name, for messages and its default state file.
    pub name: Option<String>,
    /// The command line.
    pub argv: Vec<OsString>,
    /// The directory the command runs in.
    pub cwd: PathBuf,
    /// The root of the input set.
    pub root: PathBuf,
    /// The fingerprint state file.
    pub cache_file: PathBuf,
    /// Two-layer or hash.
    pub cache_type: CacheType,
    /// The input filters, outputs excluded.
    pub filter: FilterSpec,
    /// Env names whose values join the key, sorted and deduplicated.
    pub env_names: Vec<String>,
    /// Outputs: (as given, absolute path).
    pub outputs: Vec<(String, PathBuf)>,
    /// Capture and replay the command's output.
    pub replay: bool,
    /// Share results through the remote cache tier.
    pub share: bool,
    /// Fingerprint git's index instead of the working tree.
    pub staged: bool,
    /// The per-file inputs of a per-file task (`--files`, `files = [...]`).
    pub per_file: Option<PerFile>,
}

/// A per-file task's own files, judged one by one; its other inputs are shared by all.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PerFile {
    /// The globs as given, relative to the root.
    pub globs: Vec<String>,
    /// The per-file set: files under the root matching a glob, less the task's excludes.
    pub filter: FilterSpec,
    /// Most files per run of the command.
    pub batch_size: Option<usize>,
}

/// A task as the command line or `zccache.toml` describes it, before resolution.
#[derive(Debug, Clone)]
pub struct TaskSource<'a> {
    /// Its name (`None`: an ad-hoc command): a key of a parsed `zccache.toml`, so a plain
    /// file name (`config::TaskName`), safe to name the default state file.
    pub name: Option<&'a str>,
    /// The input set.
    pub inputs: &'a InputArgs,
    /// State file, env names, outputs.
    pub task: &'a TaskArgs,
    /// Two-layer or hash.
    pub cache_type: CacheType,
    /// The command line.
    pub argv: Vec<OsString>,
    /// Base of relative paths and where the command runs.
    pub cwd: PathBuf,
    /// Capture and replay.
    pub replay: bool,
    /// Share results.
    pub share: bool,
    /// Fingerprint git's index.
    pub staged: bool,
}

impl RunSpec {
    /// Resolves a task's paths against its directory.
    pub fn resolve(source: TaskSource<'_>) -> Self {
        let cwd = source.cwd;
        let root = cwd.join(source.inputs.root_or_cwd());
        let root = std::fs::canonicalize(&root).unwrap_or(root);
        let mut env_names = source.task.env.clone();
        env_names.sort();
        env_names.dedup();
        // A glob output (`dist/**`) is the set of files it matches under the command's
        // directory, which is its base; a plain one is the path itself.
        let outputs: Vec<(String, PathBuf)> = source
            .task
            .outputs
            .iter()
            .map(|p| {
                let shown = p.to_string_lossy().into_owned();
                let base = match is_glob(&shown) {
                    true => cwd.clone(),
                    false => lexically_absolute(&cwd, p),
                };
                (shown, base)
            })
            .collect();
        let mut filter = source.inputs.filter_spec();
        let per_file = per_file(source.task, &filter);
        // The shared inputs are the input set less the per-file files, except a file that
        // `--include` names itself (`eslint.config.js` of `**/*.js`): it is both.
        if let Some(per_file) = &per_file {
            let named = shared_files_named(&filter.include, per_file);
            filter.exclude.extend(per_file.globs.iter().cloned());
            filter
                .exclude
                .extend(named.iter().map(|path| format!("{KEEP}{path}")));
        }
        filter
            .exclude
            .extend(outputs.iter().filter_map(|(shown, base)| {
                let rel = base
                    .strip_prefix(&root)
                    .ok()?
                    .to_string_lossy()
                    .into_owned();
                Some(match is_glob(shown) {
                    true if rel.is_empty() => format!("./{shown}"),
                    true => format!("./{}/{shown}", globset::escape(&rel)),
                    false => format!("./{}", globset::escape(&rel)),
                })
            }));
        let cache_file = match (&source.task.cache, source.name) {
            (Some(file), _) => cwd.join(file),
            (None, Some(name)) => root.join(STATE_DIR).join(format!("{name}.json")),
            (None, None) => default_cache_file(&root, &source.argv, &filter, &env_names),
        };
        RunSpec {
            name: source.name.map(str::to_string),
            argv: source.argv,
            cwd,
            root,
            cache_file,
            cache_type: source.cache_type,
            filter,
            env_names,
            outputs,
            replay: source.replay,
            share: source.share,
            staged: source.staged,
            per_file,
        }
    }

    /// Whether `path` (absolute) is one of the task's declared outputs or lies in one.
    pub fn outputs_hold(&self, path: &Path) -> bool {
        self.outputs.iter().any(|(shown, base)| {
            if !is_glob(shown) {
                return path.starts_with(base);
            }
            let (Ok(matcher), Ok(rel)) = (glob_matcher(shown), path.strip_prefix(base)) else {
                return false;
            };
            rel.ancestors()
                .any(|part| !part.as_os_str().is_empty() && matcher.is_match(part))
        })
    }

    /// The task of the command after `--` in `args`, run from `cwd`, validated (`staged`:
    /// judged on the index).
    pub fn of_command(args: &RunArgs, cwd: PathBuf, staged: bool) -> anyhow::Result<Self> {
        let spec = RunSpec::resolve(TaskSource {
            name: None,
            inputs: &args.inputs,
            task: &args.task,
            cache_type: args.cache_type.unwrap_or_default(),
            argv: args.command.clone(),
            cwd,
            replay: args.replay,
            share: args.share,
            staged,
        });
        spec.validate().map_err(anyhow::Error::msg)?;
        Ok(spec)
    }

    /// The mistakes in how the task was given, which no run can mend (exit 2 before
    /// anything runs): a root that is no directory, a state file that is a directory, a
    /// glob that does not parse.
    pub fn validate(&self) -> Result<(), String> {
        if !self.root.is_dir() {
            let what = match self.root.exists() {
                true => "is not a directory",
                false => "does not exist",
            };
            return Err(format!("the root {} {what}", self.root.display()));
        }
        if self.cache_file.is_dir() {
            return Err(format!(
                "the state file {} is a directory (--cache names a file)",
                self.cache_file.display()
            ));
        }
        self.filter.check_globs().map_err(|e| e.to_string())?;
        if let Some(per_file) = &self.per_file {
            per_file.filter.check_globs().map_err(|e| e.to_string())?;
            if !self.outputs.is_empty() || self.replay {
                return Err(
                    "a per-file task (--files) takes no --output or --replay: its \
                            command is run on a part of its files at a time"
                        .to_string(),
                );
            }
        }
        for (shown, _) in self.outputs.iter().filter(|(shown, _)| is_glob(shown)) {
            glob_matcher(shown)?;
        }
        Ok(())
    }

    /// Key parts besides the file set: `command` and one `env NAME` per `--env`.
    pub fn command_parts(&self) -> BTreeMap<String, Digest> {
        let mut parts = BTreeMap::new();
        parts.insert("command".to_string(), argv_digest(&self.argv));
        for name in &self.env_names {
            let mut hasher = blake3::Hasher::new();
            match std::env::var_os(name) {
                Some(value) => {
                    hasher.update(b"set\0");
                    hasher.update(value.as_bytes());
                }
                None => {
                    hasher.update(b"unset\0");
                }
            }
            parts.insert(format!("env {name}"), hasher.finalize().into());
        }
        parts
    }

    /// The directories and files a restore of this task's outputs writes under: each plain
    /// output, and for a glob its literal leading directories.
    pub fn output_roots(&self) -> Vec<PathBuf> {
        self.outputs
            .iter()
            .map(|(shown, base)| match is_glob(shown) {
                true => shown
                    .split('/')
                    .take_while(|part| !is_glob(part))
                    .fold(base.clone(), |dir, part| dir.join(part)),
                false => base.clone(),
            })
            .collect()
    }

    /// Whether a file written under any of `dirs` may be one of this task's inputs: a dir
    /// overlaps the root and is not left out by an exclude (the filters are compiled once,
    /// and only when a dir lies inside the root).
    pub fn may_read_under<'a>(&self, dirs: impl IntoIterator<Item = &'a Path>) -> bool {
        let mut filter = None;
        dirs.into_iter().any(|dir| {
            if self.root.starts_with(dir) {
                return true;
            }
            let Ok(rel) = dir.strip_prefix(&self.root) else {
                return false;
            };
            match filter.get_or_insert_with(|| Filter::compiled(&self.filter)) {
                Ok(filter) => !excluded(filter, rel),
                Err(_) => true,
            }
        })
    }

    /// The task's name after a space (` lint`), or nothing for a command-line task: what
    /// follows the verdict in `zccache: run lint (...)`.
    pub fn shown_name(&self) -> String {
        self.name
            .as_ref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default()
    }

    /// The command line for messages and the ledger.
    pub fn argv_text(&self) -> Vec<String> {
        self.argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

/// The per-file part of a task given `--files` (`None` without): the globs select, the
/// task's excludes (`filter`'s, before the outputs are added) still leave out.
fn per_file(task: &TaskArgs, filter: &FilterSpec) -> Option<PerFile> {
    if task.files.is_empty() {
        return None;
    }
    Some(PerFile {
        globs: task.files.clone(),
        filter: FilterSpec {
            extensions: Vec::new(),
            include: task.files.clone(),
            exclude: filter.exclude.clone(),
        },
        batch_size: task.batch_size.and_then(|n| usize::try_from(n).ok()),
    })
}

/// The paths of `include` that name one file (no glob) which `per_file`'s globs match.
fn shared_files_named<'a>(include: &'a [String], per_file: &PerFile) -> Vec<&'a str> {
    let Ok(globs) = Filter::compiled(&per_file.filter) else {
        return Vec::new();
    };
    include
        .iter()
        .map(|path| path.trim_start_matches("./"))
        .filter(|path| !is_glob(path) && globs.selects(path))
        .collect()
}

/// True when the filter leaves out `rel` or a directory above it.
fn excluded(filter: &Filter, rel: &Path) -> bool {
    let mut prefix = String::new();
    rel.iter().any(|part| {
        let name = part.to_string_lossy();
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(&name);
        filter.excludes(&prefix, &name)
    })
}

fn argv_digest(argv: &[OsString]) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"argv\0");
    for arg in argv {
        hasher.update(&(arg.len() as u64).to_le_bytes());
        hasher.update(arg.as_bytes());
    }
    hasher.finalize().into()
}

/// `<root>/.zccache/run/<16 hex>.json`, the hex naming the command, root, filters and env names.
fn default_cache_file(
    root: &Path,
    argv: &[OsString],
    filter: &FilterSpec,
    env_names: &[String],
) -> PathBuf {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&argv_digest(argv).0);
    hasher.update(root.as_os_str().as_bytes());
    for list in [
        &filter.extensions,
        &filter.include,
        &filter.exclude,
        &env_names.to_vec(),
    ] {
        hasher.update(b"\0list");
        for item in list {
            hasher.update(b"\0");
            hasher.update(item.as_bytes());
        }
    }
    let hex = hasher.finalize().to_hex();
    root.join(STATE_DIR).join(format!("{}.json", &hex[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(outputs: &[&str], exclude: &[&str]) -> RunSpec {
        let inputs = InputArgs {
            root: Some(PathBuf::from("/nonexistent/p")),
            extensions: vec![],
            include: vec![],
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        };
        let task = TaskArgs {
            cache: None,
            env: vec![],
            outputs: outputs.iter().map(PathBuf::from).collect(),
            files: vec![],
            batch_size: None,
        };
        RunSpec::resolve(TaskSource {
            name: Some("t"),
            inputs: &inputs,
            task: &task,
            cache_type: CacheType::default(),
            argv: vec!["true".into()],
            cwd: PathBuf::from("/nonexistent/p"),
            replay: false,
            share: false,
            staged: false,
        })
    }

    #[test]
    fn outputs_hold_their_paths_and_what_their_globs_match() {
        let spec = spec(&["dist", "gen/*.txt"], &[]);
        let at = |rel: &str| spec.outputs_hold(&Path::new("/nonexistent/p").join(rel));
        assert!(at("dist") && at("dist/a/b.js") && at("gen/x.txt"));
        assert!(!at("gen/sub/x.txt") && !at("gen/x.rs") && !at("src/dist") && !at("distx"));
    }

    #[test]
    fn output_roots_stop_at_the_first_glob() {
        let s = spec(&["dist", "gen/**/*.rs"], &[]);
        assert_eq!(
            s.output_roots(),
            [
                PathBuf::from("/nonexistent/p/dist"),
                PathBuf::from("/nonexistent/p/gen")
            ]
        );
    }

    #[test]
    fn writes_under_an_excluded_or_outside_path_are_not_inputs() {
        let s = spec(&["dist"], &["target"]);
        assert!(!s.may_read_under([Path::new("/nonexistent/p/dist")]));
        assert!(!s.may_read_under([Path::new("/nonexistent/p/a/target/x")]));
        assert!(!s.may_read_under([Path::new("/nonexistent/q/dist")]));
        assert!(!s.may_read_under([Path::new("/nonexistent/p/.zccache/run")]));
        assert!(s.may_read_under([Path::new("/nonexistent/p/src")]));
        assert!(s.may_read_under([Path::new("/nonexistent")]));
    }
}
