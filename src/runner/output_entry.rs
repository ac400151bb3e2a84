//! What a record keeps of an output: its files, symlinks and directories, each with its mode
//! and digest. Listed from disk by `outputs`, checked by `output_rules`, written back by
//! `restore`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::fingerprint::Digest;

/// What one entry of an output is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// A regular file (its content is in the artifact store under its digest).
    File,
    /// A symlink, with its target text.
    Symlink(String),
    /// A directory.
    Dir,
}

/// One file, symlink or directory an output held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputEntry {
    /// Its path inside the output (`""`: the output itself).
    pub path: String,
    /// What it is.
    pub kind: OutputKind,
    /// Permission bits.
    pub mode: u32,
    /// The content digest (of a symlink: of its target; of a directory: none).
    pub digest: Option<Digest>,
}

/// Output (as given) → its entries, sorted by path (`None`: it did not exist).
pub type OutputDigests = BTreeMap<String, Option<Vec<OutputEntry>>>;
