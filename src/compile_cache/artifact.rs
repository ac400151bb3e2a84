//! What a cached compile delivers, shared by the compile cache that makes it and the daemon's
//! protocol that carries it to the client.

use serde::{Deserialize, Serialize};

/// A compile artifact: output files, replayed streams, exit status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// (output name, bytes).
    pub outputs: Vec<(String, Vec<u8>)>,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// Exit status.
    pub exit_code: i32,
}

/// One cached rustc compile, for `ListRustArtifacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RustArtifact {
    /// `--crate-name`.
    pub crate_name: String,
    /// `--crate-type` values.
    pub crate_types: Vec<String>,
    /// The files a hit restores.
    pub outputs: Vec<String>,
    /// Their total size in bytes.
    pub size: u64,
    /// Last stored or delivered, seconds since the epoch.
    pub last_use_secs: u64,
}
