//! Manifests: for one key of what is known before a compile or link (its base key), the
//! input sets seen after it (headers, sources, env vars, libraries), most recent first. A
//! lookup tries each; a flag that flips which headers are read keeps both sets.

use std::io;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::store::Store;
use crate::compile_cache::artifact::Artifact;
use crate::fingerprint::Digest;

/// Input sets remembered per manifest.
const ENTRIES: usize = 8;

/// The input sets of one base key.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub(super) struct Manifest<T> {
    pub(super) entries: Vec<T>,
    /// Direct mode failed for this base (a header changed while it was read): the
    /// preprocessor decides its compiles (C/C++ only).
    #[serde(default)]
    pub(super) direct_off: bool,
}

impl<T> Default for Manifest<T> {
    fn default() -> Self {
        Manifest {
            entries: Vec::new(),
            direct_off: false,
        }
    }
}

impl<T: Serialize + DeserializeOwned + PartialEq> Manifest<T> {
    /// The manifest stored as `kind/<base>` (empty when there is none or it is unreadable).
    pub(super) fn load(store: &Store, kind: &str, base: &Digest) -> Self {
        store
            .get(&key(kind, base))
            .ok()
            .flatten()
            .and_then(|a| a.outputs.into_iter().next())
            .and_then(|(_, bytes)| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// `entry` first, a copy of it further down dropped, at most `ENTRIES` kept.
    pub(super) fn with(mut self, entry: T) -> Self {
        self.entries.retain(|known| *known != entry);
        self.entries.insert(0, entry);
        self.entries.truncate(ENTRIES);
        self
    }

    /// Stores it as `kind/<base>`; returns the bytes of new blobs written.
    pub(super) fn save(&self, store: &Store, kind: &str, base: &Digest) -> io::Result<u64> {
        let bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
        let artifact = Artifact {
            outputs: vec![("manifest".to_string(), bytes)],
            ..Artifact::default()
        };
        store.put(&key(kind, base), &artifact)
    }
}

fn key(kind: &str, base: &Digest) -> String {
    format!("{kind}/{}", base.to_hex())
}
