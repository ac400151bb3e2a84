//! Directory handles that create, replace and remove names below them without following a
//! symlink (the `openat` family). A walk opens one component at a time with `O_NOFOLLOW`, so
//! what is written lands in the directory that was walked to, whatever was planted on the
//! way: a symlink met on the walk is an error, never a path taken. Linux calls (`renameat2`,
//! `O_PATH`, `/proc/self/fd`), like the rest of zccache's platform layer.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What a name below a directory is, as `lstat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// Nothing by that name.
    Missing,
    /// A real directory (not a symlink to one).
    Dir,
    /// A regular file.
    File,
    /// A symlink (never followed).
    Symlink,
    /// A FIFO, socket or device.
    Special,
}

/// An open directory.
#[derive(Debug)]
pub struct DirFd {
    fd: OwnedFd,
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::other("a name holds a NUL byte"))
}

/// The result of a libc call returning -1 on error.
fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    match result {
        -1 => Err(io::Error::last_os_error()),
        n => Ok(n),
    }
}

impl DirFd {
    /// Opens `path` as a directory, following symlinks: the start of a walk, a directory the
    /// user named (the task's own directory).
    pub fn open(path: &Path) -> io::Result<DirFd> {
        let name = c_name(path.as_os_str())?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
        // SAFETY: a valid C string; the returned fd is owned below.
        let fd = check(unsafe { libc::open(name.as_ptr(), flags) })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(DirFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens the directory `name` below this one; a symlink there is an error (ELOOP or
    /// ENOTDIR), as is anything but a directory (ENOTDIR).
    pub fn open_child(&self, name: &OsStr) -> io::Result<DirFd> {
        let name = c_name(name)?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid directory fd and C string; the returned fd is owned below.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), name.as_ptr(), flags) })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(DirFd {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// What `name` is, and its permission bits (not following a symlink).
    pub fn found(&self, name: &OsStr) -> io::Result<(Found, u32)> {
        let name = c_name(name)?;
        // SAFETY: an all-zero stat is a valid out-parameter.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        let flags = libc::AT_SYMLINK_NOFOLLOW;
        // SAFETY: a valid directory fd, C string and out-parameter.
        let result = unsafe { libc::fstatat(self.fd.as_raw_fd(), name.as_ptr(), &mut stat, flags) };
        if let Err(e) = check(result) {
            return match e.kind() {
                io::ErrorKind::NotFound => Ok((Found::Missing, 0)),
                _ => Err(e),
            };
        }
        let found = match stat.st_mode & libc::S_IFMT {
            libc::S_IFDIR => Found::Dir,
            libc::S_IFREG => Found::File,
            libc::S_IFLNK => Found::Symlink,
            _ => Found::Special,
        };
        // mode_t is u32 on Linux and u16 on macOS.
        #[allow(clippy::useless_conversion)]
        Ok((found, u32::from(stat.st_mode) & 0o7777))
    }

    /// Creates the directory `name` with `mode` (under the umask); never replaces anything.
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let name = c_name(name)?;
        // SAFETY: a valid directory fd and C string.
        check(unsafe { libc::mkdirat(self.fd.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) })
            .map(drop)
    }

    /// Creates the file `name` exclusively (never through a symlink, never over anything),
    /// readable and writable by its owner only until its mode is set.
    pub fn create_file(&self, name: &OsStr) -> io::Result<File> {
        let name = c_name(name)?;
        let flags =
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let mode: libc::c_uint = 0o600;
        // SAFETY: a valid directory fd and C string; the returned fd is owned below.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), name.as_ptr(), flags, mode) })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Opens the file at `rel` (a relative path of normal components) below this directory
    /// for reading, without following a symlink anywhere on the way or at the end and
    /// without blocking on a FIFO: `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`,
    /// or one `O_NOFOLLOW` component at a time on a kernel without it.
    pub fn open_file_beneath(&self, rel: &Path) -> io::Result<File> {
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
        let name = c_name(rel.as_os_str())?;
        // SAFETY: `open_how` is plain integers, for which all zeroes is valid.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = flags as u64;
        how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
        // SAFETY: a valid directory fd, C string and `open_how` of the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                self.fd.as_raw_fd(),
                name.as_ptr(),
                &raw const how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: `fd` was just opened and is owned by nobody else.
            return Ok(unsafe { File::from_raw_fd(fd as libc::c_int) });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ENOSYS) {
            return Err(err);
        }
        self.open_file_walking(rel, flags)
    }

    /// `open_file_beneath` for kernels before 5.6: each directory opened with `O_NOFOLLOW`.
    fn open_file_walking(&self, rel: &Path, flags: libc::c_int) -> io::Result<File> {
        let mut parts: Vec<&OsStr> = Vec::new();
        for part in rel.components() {
            match part {
                std::path::Component::Normal(name) => parts.push(name),
                _ => return Err(io::Error::other("not a plain relative path")),
            }
        }
        let Some((file, dirs)) = parts.split_last() else {
            return Err(io::Error::other("an empty path"));
        };
        let mut held: Option<DirFd> = None;
        for dir in dirs {
            let next = held.as_ref().unwrap_or(self).open_child(dir)?;
            held = Some(next);
        }
        let at = held.as_ref().unwrap_or(self);
        let name = c_name(file)?;
        // SAFETY: a valid directory fd and C string; the returned fd is owned below.
        let fd = check(unsafe { libc::openat(at.fd.as_raw_fd(), name.as_ptr(), flags) })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Makes `name` a symlink to `target` (never replacing anything).
    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        let (target, name) = (c_name(target)?, c_name(name)?);
        // SAFETY: valid C strings and directory fd.
        check(unsafe { libc::symlinkat(target.as_ptr(), self.fd.as_raw_fd(), name.as_ptr()) })
            .map(drop)
    }

    /// Renames `from` to `to`, both in this directory, replacing a file or symlink at `to`.
    pub fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (from, to) = (c_name(from)?, c_name(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid C strings and directory fd.
        check(unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) }).map(drop)
    }

    /// Renames `from` to `to`, both in this directory, failing if `to` exists.
    pub fn rename_new(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (from_c, to_c) = (c_name(from)?, c_name(to)?);
        rename_noreplace(self.fd.as_raw_fd(), &from_c, &to_c)
    }

    /// Removes the file or symlink `name`.
    pub fn remove_file(&self, name: &OsStr) -> io::Result<()> {
        let name = c_name(name)?;
        // SAFETY: a valid directory fd and C string.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
    }

    /// Removes the empty directory `name`.
    pub fn remove_dir(&self, name: &OsStr) -> io::Result<()> {
        let name = c_name(name)?;
        let flags = libc::AT_REMOVEDIR;
        // SAFETY: a valid directory fd and C string.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), name.as_ptr(), flags) }).map(drop)
    }

    /// Removes `name` and, when it is a directory, everything below it (made writable first
    /// where a mode forbids it; symlinks are removed, never followed).
    pub fn remove_tree(&self, name: &OsStr) -> io::Result<()> {
        match self.found(name)? {
            (Found::Missing, _) => Ok(()),
            (Found::Dir, mode) => {
                if mode & 0o700 != 0o700 {
                    self.set_child_dir_mode(name, 0o700)?;
                }
                let dir = self.open_child(name)?;
                for child in dir.names()? {
                    dir.remove_tree(&child)?;
                }
                self.remove_dir(name)
            }
            _ => self.remove_file(name),
        }
    }

    /// The names in this directory.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        // The fd's own /proc entry names this very directory, not a path that could change.
        let here = format!("/proc/self/fd/{}", self.fd.as_raw_fd());
        std::fs::read_dir(here)?
            .map(|item| Ok(item?.file_name()))
            .collect()
    }

    /// Sets the permission bits of the directory `name` below this one, which need not be
    /// readable: it is opened as a mere reference (`O_PATH`, never through a symlink) and
    /// changed through its `/proc` entry.
    fn set_child_dir_mode(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let c = c_name(name)?;
        let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: a valid directory fd and C string; the returned fd is owned below.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags) })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = c_name(OsStr::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())))?;
        // SAFETY: a valid C string.
        check(unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    /// This directory's permission bits.
    pub fn mode(&self) -> io::Result<u32> {
        let stat = self.stat()?;
        // mode_t is u32 on Linux and u16 on macOS.
        #[allow(clippy::useless_conversion)]
        Ok(u32::from(stat.st_mode) & 0o7777)
    }

    /// This directory's device and inode: the same for every handle open on it.
    pub fn id(&self) -> io::Result<(u64, u64)> {
        let stat = self.stat()?;
        // dev_t and ino_t are u64 on Linux, narrower elsewhere.
        #[allow(clippy::useless_conversion)]
        Ok((u64::from(stat.st_dev), u64::from(stat.st_ino)))
    }

    fn stat(&self) -> io::Result<libc::stat> {
        // SAFETY: an all-zero stat is a valid out-parameter.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid fd and out-parameter.
        check(unsafe { libc::fstat(self.fd.as_raw_fd(), &mut stat) })?;
        Ok(stat)
    }

    /// Sets this directory's permission bits.
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        // SAFETY: a valid fd.
        check(unsafe { libc::fchmod(self.fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
    }
}

fn rename_noreplace(fd: libc::c_int, from: &CString, to: &CString) -> io::Result<()> {
    let flags = libc::RENAME_NOREPLACE;
    // SAFETY: valid C strings and directory fd.
    check(unsafe { libc::renameat2(fd, from.as_ptr(), fd, to.as_ptr(), flags) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_walk_never_follows_a_symlink_and_creations_never_replace() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("link")).unwrap();
        let top = DirFd::open(dir.path()).unwrap();
        let err = top.open_child(OsStr::new("link")).unwrap_err();
        assert!(matches!(
            err.raw_os_error(),
            Some(libc::ELOOP | libc::ENOTDIR)
        ));
        assert_eq!(top.found(OsStr::new("link")).unwrap().0, Found::Symlink);
        assert_eq!(top.found(OsStr::new("victim")).unwrap().0, Found::Dir);
        assert_eq!(top.found(OsStr::new("none")).unwrap().0, Found::Missing);
        // A planted symlink is never created through.
        std::os::unix::fs::symlink(victim.join("x"), dir.path().join("x")).unwrap();
        assert!(top.create_file(OsStr::new("x")).is_err());
        assert!(!victim.join("x").exists());
        let mut file = top.create_file(OsStr::new("new")).unwrap();
        file.write_all(b"a").unwrap();
        top.mkdir(OsStr::new("d"), 0o700).unwrap();
        assert!(top.rename_new(OsStr::new("new"), OsStr::new("x")).is_err());
        top.rename_new(OsStr::new("new"), OsStr::new("y")).unwrap();
        assert_eq!(std::fs::read(dir.path().join("y")).unwrap(), b"a");
    }

    #[test]
    fn remove_tree_takes_read_only_directories_and_leaves_link_targets() {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("t/sub");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(tree.join("f"), "x").unwrap();
        std::fs::write(dir.path().join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("keep"), tree.join("l")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o555)).unwrap();
        DirFd::open(dir.path())
            .unwrap()
            .remove_tree(OsStr::new("t"))
            .unwrap();
        assert!(!dir.path().join("t").exists());
        assert!(dir.path().join("keep").exists());
    }
}
