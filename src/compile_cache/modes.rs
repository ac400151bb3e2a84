//! File modes of stored outputs (a linked program must stay executable): one artifact
//! output named `modes` holding `name octal-mode` lines, applied when delivering. Only the
//! permission bits (0o777) are ever kept or applied: an entry (perhaps from a remote anyone
//! can write) never makes a setuid, setgid or sticky file.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::compile_cache::artifact::Artifact;

/// The artifact output holding the other outputs' modes.
pub(super) const MODES: &str = "modes";

/// The permission bits a delivered file may get.
const PERMISSIONS: u32 = 0o777;

/// The permission bits of `path` (0644 when it cannot be read).
pub(super) fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).map_or(0o644, |m| m.permissions().mode() & PERMISSIONS)
}

/// The `modes` output for these (output name, mode) pairs.
pub(super) fn record<'a>(modes: impl IntoIterator<Item = (&'a str, u32)>) -> (String, Vec<u8>) {
    let text: String = modes
        .into_iter()
        .map(|(name, mode)| format!("{name} {mode:o}\n"))
        .collect();
    (MODES.to_string(), text.into_bytes())
}

/// The modes an artifact recorded, by output name.
pub(super) fn recorded(artifact: &Artifact) -> BTreeMap<&str, u32> {
    artifact
        .outputs
        .iter()
        .find(|(name, _)| name == MODES)
        .and_then(|(_, bytes)| std::str::from_utf8(bytes).ok())
        .unwrap_or("")
        .lines()
        .filter_map(|line| {
            let (name, mode) = line.rsplit_once(' ')?;
            Some((name, u32::from_str_radix(mode, 8).ok()? & PERMISSIONS))
        })
        .collect()
}

/// Gives `path` the recorded mode of output `name`, if one was recorded, under the
/// client's `umask` (as the tool itself would have created it).
pub(super) fn apply(
    modes: &BTreeMap<&str, u32>,
    name: &str,
    path: &Path,
    umask: u32,
) -> io::Result<()> {
    match modes.get(name) {
        Some(mode) => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode & !umask))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip() {
        let (name, bytes) = record([("output", 0o755), ("side:app.map", 0o644)]);
        let artifact = Artifact {
            outputs: vec![(name, bytes)],
            ..Artifact::default()
        };
        let modes = recorded(&artifact);
        assert_eq!(modes.get("output"), Some(&0o755));
        assert_eq!(modes.get("side:app.map"), Some(&0o644));
        let (name, bytes) = record([("output", 0o4755), ("side:x", 0o7777)]);
        let forged = Artifact {
            outputs: vec![(name, bytes)],
            ..Artifact::default()
        };
        let modes = recorded(&forged);
        assert_eq!(modes.get("output"), Some(&0o755), "setuid dropped");
        assert_eq!(modes.get("side:x"), Some(&0o777));
    }
}
