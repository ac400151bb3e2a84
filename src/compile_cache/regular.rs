//! Reading the files a compile or link names — sources, headers, response files, libraries,
//! manifest entries — as regular files only. A path in a manifest may come from a remote
//! anyone can write, and a header path from a depfile: a FIFO there would hang the daemon,
//! `/dev/zero` would be read without end, `/dev/stdin` is the daemon's own. Such a path is
//! refused ("changed", "untrusted", "cannot cache"), never read. Opening never blocks
//! (`O_NONBLOCK`), and the read goes through the handle that was checked.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Opens `path` (following symlinks) when it is a regular file; its handle and metadata.
pub fn open(path: &Path) -> io::Result<(File, Metadata)> {
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        ));
    }
    Ok((file, meta))
}

/// The content of `path` when it is a regular file, with its metadata.
pub fn read_with_metadata(path: &Path) -> io::Result<(Vec<u8>, Metadata)> {
    let (mut file, meta) = open(path)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok((bytes, meta))
}

/// The content of `path` when it is a regular file.
pub fn read(path: &Path) -> io::Result<Vec<u8>> {
    read_with_metadata(path).map(|(bytes, _)| bytes)
}

/// The metadata of `path` (following symlinks) when it is a regular file; no open, so no
/// side effect even on a device.
pub fn metadata(path: &Path) -> io::Result<Metadata> {
    let meta = std::fs::metadata(path)?;
    match meta.is_file() {
        true => Ok(meta),
        false => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a regular file", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_directories_and_fifos_are_refused() {
        assert!(read(Path::new("/dev/zero")).is_err());
        assert!(read(Path::new("/dev/null")).is_err());
        assert!(metadata(Path::new("/dev/zero")).is_err());
        assert!(read(Path::new("/")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let name = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path in our own temp dir.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(read(&fifo).is_err(), "a FIFO is refused without blocking");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(read(&file).unwrap(), b"x");
    }
}
