//! `--share` for a per-file task: each file that passes is published as a marker (an empty
//! entry) in the artifact store, here and on the remote tier when one is configured, under
//! a key every machine and checkout computes alike: the task's portable key (command line,
//! env values, the tool's content, the shared inputs' relative paths and content) with the
//! file's path relative to the root and its content. A check with files to run asks for
//! all their keys at once (this machine's store first, where a second checkout finds them;
//! then one batch to the remote tier) and runs only the files no one passed; the others
//! are passed here. A marker is a store entry, verified as any (it names the key it
//! answers, and is signed when the remote signs): garbage, or an entry of another key, under
//! a file's key is never a pass.

use crate::fingerprint::Digest;
use crate::runner::artifacts;
use crate::ui::Ui;

/// The store key of the file at `path` (relative to the root) holding `content`, under the
/// task's portable key `portable`.
pub fn file_key(portable: &str, path: &str, content: Digest) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"zccache shared per-file v1\0");
    hasher.update(portable.as_bytes());
    hasher.update(&[0]);
    hasher.update(path.as_bytes());
    hasher.update(&[0]);
    hasher.update(&content.0);
    format!("shared-file/{}", hasher.finalize().to_hex())
}

/// Which of `files` (path, content) a machine or checkout passed, in order; none when the
/// store cannot be asked (said once).
pub fn passed_elsewhere(ui: &Ui, portable: &str, files: &[(&str, Digest)]) -> Vec<bool> {
    let keys: Vec<String> = files
        .iter()
        .map(|(path, content)| file_key(portable, path, *content))
        .collect();
    artifacts::held_many(&keys).unwrap_or_else(|e| {
        ui.warn(format_args!("cannot look up the shared results: {e}"));
        vec![false; files.len()]
    })
}

/// Publishes that `files` (path, content) passed.
pub fn publish(ui: &Ui, portable: &str, files: &[(&str, Digest)]) {
    if files.is_empty() {
        return;
    }
    let keys: Vec<String> = files
        .iter()
        .map(|(path, content)| file_key(portable, path, *content))
        .collect();
    if let Err(e) = artifacts::mark_many(&keys) {
        ui.warn(format_args!("cannot publish the passed files: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_names_task_path_and_content() {
        let c = Digest([1; 32]);
        let key = file_key("shared-task/a", "src/a.py", c);
        assert!(key.starts_with("shared-file/"));
        assert_ne!(key, file_key("shared-task/b", "src/a.py", c));
        assert_ne!(key, file_key("shared-task/a", "src/b.py", c));
        assert_ne!(key, file_key("shared-task/a", "src/a.py", Digest([2; 32])));
    }
}
