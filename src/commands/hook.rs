//! `zccache hook install | uninstall`: a git pre-commit hook running `zccache run --staged`.
//! A hook zccache did not write is never replaced without `--force`, and then kept as a
//! backup that `uninstall` restores.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};

use crate::paths::with_suffix;
use crate::ui::Ui;

/// The line that marks a hook as zccache's.
const MARKER: &str = "# zccache-hook";
const BACKUP_SUFFIX: &str = ".zccache-backup";

/// Writes the pre-commit hook, for `tasks` (names trimmed) that zccache.toml must define.
pub fn install(tasks: &[String], force: bool) -> anyhow::Result<ExitCode> {
    let tasks = checked_tasks(tasks)?;
    let hook = hook_path()?;
    let ui = Ui::default();
    if hook.exists() && !is_ours(&hook) {
        if !force {
            bail!(
                "{} exists and was not written by zccache (use --force to replace it; a backup is kept)",
                hook.display()
            );
        }
        let backup = backup_of(&hook);
        std::fs::rename(&hook, &backup).with_context(|| format!("back up {}", hook.display()))?;
        ui.say(format_args!("kept the old hook as {}", backup.display()));
    }
    if let Some(dir) = hook.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&hook, script(&zccache_path()?, &tasks))
        .with_context(|| format!("write {}", hook.display()))?;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    ui.say(format_args!("installed {}", hook.display()));
    Ok(ExitCode::SUCCESS)
}

/// The task names given, trimmed, each one a task of the zccache.toml found from here (a
/// hook naming a task that does not exist would fail every commit).
fn checked_tasks(tasks: &[String]) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = tasks
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if names.is_empty() {
        return Ok(names);
    }
    let config = crate::config::load(None, &std::env::current_dir()?)?;
    for name in &names {
        config.task(name)?;
    }
    Ok(names)
}

/// Removes zccache's hook and restores a backup.
pub fn uninstall() -> anyhow::Result<ExitCode> {
    let hook = hook_path()?;
    let ui = Ui::default();
    if !hook.exists() {
        ui.say("no pre-commit hook installed");
        return Ok(ExitCode::SUCCESS);
    }
    if !is_ours(&hook) {
        bail!("{} was not written by zccache; leaving it", hook.display());
    }
    std::fs::remove_file(&hook)?;
    let backup = backup_of(&hook);
    if backup.exists() {
        std::fs::rename(&backup, &hook)?;
        ui.say(format_args!(
            "restored the previous hook {}",
            hook.display()
        ));
    } else {
        ui.say(format_args!("removed {}", hook.display()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The hook script: run the tasks on the staged content; a failure blocks the commit.
fn script(zccache: &Path, tasks: &[String]) -> String {
    let which = if tasks.is_empty() {
        "--all".to_string()
    } else {
        tasks
            .iter()
            .map(|t| shell_quote(t))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "#!/bin/sh\n{MARKER}: installed by `zccache hook install`, removed by `zccache hook uninstall`.\n\
         exec {} run --staged {which}\n",
        shell_quote(&zccache.to_string_lossy())
    )
}

/// `.git/hooks/pre-commit` as git resolves it (worktrees and core.hooksPath included).
fn hook_path() -> anyhow::Result<PathBuf> {
    let output = Command::new("git")
        .args(["rev-parse", "--git-path", "hooks"])
        .output()
        .context("run git")?;
    if !output.status.success() {
        bail!("not inside a git repository");
    }
    let hooks = String::from_utf8_lossy(&output.stdout).trim().to_string();
    Ok(std::env::current_dir()?.join(hooks).join("pre-commit"))
}

fn is_ours(hook: &Path) -> bool {
    std::fs::read_to_string(hook).is_ok_and(|text| text.contains(MARKER))
}

fn backup_of(hook: &Path) -> PathBuf {
    with_suffix(hook, BACKUP_SUFFIX)
}

/// This zccache binary, so the hook runs the same version.
fn zccache_path() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("find the zccache binary")?;
    Ok(std::fs::canonicalize(&exe).unwrap_or(exe))
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_quotes_and_marks() {
        let text = script(
            Path::new("/opt/my tools/zccache"),
            &["lint".into(), "it's".into()],
        );
        assert!(text.starts_with("#!/bin/sh\n"));
        assert!(text.contains(MARKER));
        assert!(text.contains("exec '/opt/my tools/zccache' run --staged 'lint' 'it'\\''s'"));
        assert!(script(Path::new("/z"), &[]).contains("run --staged --all"));
    }
}
