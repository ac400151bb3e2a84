//! `--staged` for a per-file task: the index's bytes are judged, so they are what the tool
//! must read. When a file to run or a shared input differs between the working tree and the
//! index (a partly staged file), the command runs in a copy of the index (`git
//! checkout-index --all` into a private directory under `ZCCACHE_DIR/staged/`, removed after),
//! at the same place relative to the repository's top; otherwise in the working tree.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::daemon::lifecycle::DaemonPaths;
use crate::fingerprint::Filter;
use crate::runner::spec::RunSpec;

/// Where the command runs and its files lie: the working tree, or a copy of the index
/// (removed when dropped).
pub struct Place {
    /// The root the files are named under.
    pub root: PathBuf,
    /// The command's directory.
    pub cwd: PathBuf,
    copy: Option<PathBuf>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(copy) = &self.copy {
            let _ = std::fs::remove_dir_all(copy);
        }
    }
}

/// Where to run `spec` on `files` (paths relative to the root).
pub fn place(spec: &RunSpec, files: &[&str]) -> Result<Place, String> {
    let here = Place {
        root: spec.root.clone(),
        cwd: spec.cwd.clone(),
        copy: None,
    };
    if !spec.staged || !differs(spec, files)? {
        return Ok(here);
    }
    let top = PathBuf::from(git(&spec.root, &["rev-parse", "--show-toplevel"])?.trim());
    let top = std::fs::canonicalize(&top).unwrap_or(top);
    let dir = DaemonPaths::from_env().map_err(|e| e.to_string())?.dir;
    let staged = dir.join("staged");
    crate::private_dir::ensure(&staged).map_err(|e| e.to_string())?;
    let copy = staged.join(format!(
        "{}-{}",
        std::process::id(),
        crate::fingerprint::now_ns()
    ));
    let prefix = format!("--prefix={}/", copy.display());
    let made = Place {
        root: moved(&spec.root, &top, &copy),
        cwd: moved(&spec.cwd, &top, &copy),
        copy: Some(copy),
    };
    git(&top, &["checkout-index", "--all", &prefix])?;
    Ok(made)
}

/// `path` at the same place below `copy` as below `top` (unchanged when outside `top`).
fn moved(path: &Path, top: &Path, copy: &Path) -> PathBuf {
    match path.strip_prefix(top) {
        Ok(rel) => copy.join(rel),
        Err(_) => path.to_path_buf(),
    }
}

/// Whether one of `files` or a shared input differs between the working tree and the index.
fn differs(spec: &RunSpec, files: &[&str]) -> Result<bool, String> {
    let listed = git(&spec.root, &["diff", "--name-only", "--relative", "-z"])?;
    let shared = Filter::compiled(&spec.filter).map_err(|e| e.to_string())?;
    Ok(listed.split('\0').filter(|p| !p.is_empty()).any(|path| {
        let name = path.rsplit('/').next().unwrap_or(path);
        files.contains(&path) || (shared.selects(path) && !shared.excludes(path, name))
    }))
}

fn git(dir: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        return Err(format!("git {}: {}", args.join(" "), why.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
