//! Compiler identity: canonical path, size, mtime and the `--version` answer, the latter
//! asked once per (path, size, mtime) and remembered.

use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::fingerprint::Digest;

/// Remembers identities by (canonical path, size, mtime).
#[derive(Debug, Default)]
pub struct Identities {
    known: Mutex<HashMap<(PathBuf, u64, i64, i64), Digest>>,
}

impl Identities {
    /// The identity digest of the compiler at `path`.
    pub fn of(&self, path: &Path) -> io::Result<Digest> {
        let canonical = std::fs::canonicalize(path)?;
        let meta = std::fs::metadata(&canonical)?;
        let stamp = (
            canonical.clone(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
        );
        if let Some(known) = self.lock().get(&stamp) {
            return Ok(*known);
        }
        let version = Command::new(path).arg("--version").output()?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"compiler\0");
        hasher.update(canonical.as_os_str().as_bytes());
        hasher.update(&meta.size().to_le_bytes());
        hasher.update(&meta.mtime().to_le_bytes());
        hasher.update(&meta.mtime_nsec().to_le_bytes());
        hasher.update(&version.stdout);
        let digest: Digest = hasher.finalize().into();
        self.lock().insert(stamp, digest);
        Ok(digest)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(PathBuf, u64, i64, i64), Digest>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}
