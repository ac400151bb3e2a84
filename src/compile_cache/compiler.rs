//! Compiler identity: canonical path, size, mtime and the answer to a version probe
//! (`--version` for C compilers, `-vV` for rustc), asked once per (path, size, mtime) and
//! remembered.

use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::fingerprint::Digest;

/// What a compiler is, for keys.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Digest of path, size, mtime and the probe's answer.
    pub digest: Digest,
    /// The probe's stdout (what `rustc -vV` printed, to answer cargo's probes).
    pub probe_output: Arc<Vec<u8>>,
}

impl Identity {
    /// `path (first line of the probe's answer)`, how a miss reason names the compiler.
    pub fn shown(&self, path: &Path) -> String {
        let answer = String::from_utf8_lossy(&self.probe_output);
        let version = answer.lines().next().unwrap_or("").trim();
        format!("{} ({version})", path.display())
    }
}

type Stamp = (PathBuf, u64, i64, i64, &'static str);

/// Remembers identities by (canonical path, size, mtime, probe).
#[derive(Debug, Default)]
pub struct Identities {
    known: Mutex<HashMap<Stamp, Identity>>,
}

impl Identities {
    /// The identity digest of the C compiler at `path` (probed with `--version`).
    pub fn of(&self, path: &Path) -> io::Result<Digest> {
        Ok(self.probe(path, "--version")?.digest)
    }

    /// The identity of the compiler at `path`, probed with `flag`.
    pub fn probe(&self, path: &Path, flag: &'static str) -> io::Result<Identity> {
        let canonical = std::fs::canonicalize(path)?;
        let meta = std::fs::metadata(&canonical)?;
        let stamp = (
            canonical.clone(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            flag,
        );
        if let Some(known) = self.lock().get(&stamp) {
            return Ok(known.clone());
        }
        let answer = Command::new(path).arg(flag).stdin(Stdio::null()).output()?;
        if !answer.status.success() {
            return Err(io::Error::other(format!(
                "{} {flag} failed",
                path.display()
            )));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"compiler\0");
        hasher.update(canonical.as_os_str().as_bytes());
        hasher.update(&meta.size().to_le_bytes());
        hasher.update(&meta.mtime().to_le_bytes());
        hasher.update(&meta.mtime_nsec().to_le_bytes());
        hasher.update(&answer.stdout);
        let identity = Identity {
            digest: hasher.finalize().into(),
            probe_output: Arc::new(answer.stdout),
        };
        self.lock().insert(stamp, identity.clone());
        Ok(identity)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Stamp, Identity>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }
}
