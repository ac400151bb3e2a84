//! Directories only this user can write: the state directory (`ZCCACHE_DIR`, found here)
//! and the daemon's scratch space in it. zccache acts for one user, and a directory another user can
//! write (or own, or swap for a symlink) lets them plant files the daemon would follow. So
//! an existing directory is checked without following a symlink — a directory, owned by
//! this user, not writable by group or others — and refused otherwise; zccache never changes
//! the mode of a directory it did not create. A missing one is created with mode 0700.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The environment variable that names the state directory.
pub const DIR_ENV: &str = "ZCCACHE_DIR";

/// zccache's state directory: `ZCCACHE_DIR`, else `$XDG_CACHE_HOME/zccache`, else
/// `~/.cache/zccache`, made absolute. An existing one another user owns or can write is
/// refused before anything in it is used (it could hold their socket or their symlinks).
pub fn state_dir() -> io::Result<PathBuf> {
    let dir = match std::env::var_os(DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => match std::env::var_os("XDG_CACHE_HOME") {
            Some(cache) if !cache.is_empty() => PathBuf::from(cache).join("zccache"),
            _ => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/zccache"))
                .ok_or_else(|| io::Error::other("neither ZCCACHE_DIR nor HOME is set"))?,
        },
    };
    let dir = std::env::current_dir()?.join(dir);
    match check(&dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(dir),
        Err(e) => Err(io::Error::new(e.kind(), format!("{DIR_ENV}: {e}"))),
        Ok(()) => Ok(dir),
    }
}

/// Creates `dir` (mode 0700; missing parents as usual) or checks the one that is there.
pub fn ensure(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    check(dir)
}

/// Checks that `dir` (not followed if a symlink) is a directory of this user that nobody
/// else can write.
pub fn check(dir: &Path) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} {why}: refusing to use it", dir.display()),
        ))
    };
    if meta.file_type().is_symlink() {
        return refuse("is a symlink".to_string());
    }
    if !meta.is_dir() {
        return refuse("is not a directory".to_string());
    }
    if meta.uid() != me {
        return refuse(format!(
            "is owned by uid {}, not by you (uid {me})",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "is writable by others (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn creates_private_and_refuses_shared_or_linked() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/state");
        ensure(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        ensure(&dir).unwrap();

        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let err = ensure(&shared).unwrap_err().to_string();
        assert!(err.contains("writable by others"), "{err}");
        let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "never chmodded");

        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(ensure(&link).unwrap_err().to_string().contains("symlink"));
    }
}
