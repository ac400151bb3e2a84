//! Path arithmetic zccache does without touching the filesystem: lexical normalization, the
//! names of a file's companions (`F.zccache-lock`, `F.log`, `pre-commit.zccache-backup`, ...) and of
//! zccache's temporaries.

use std::path::{Component, Path, PathBuf};

/// The start of every name zccache gives a temporary it makes in the user's tree (a file
/// being written into an output, a tree being staged beside one): never an input, never an
/// output entry, removed once its maker is gone.
pub const TEMP_PREFIX: &str = ".zccache-tmp.";

/// True when `name` is one of zccache's temporaries.
pub fn is_temp(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().starts_with(TEMP_PREFIX.as_bytes())
}

/// `path` made absolute against `cwd`, with `.` and `..` removed lexically (the path may
/// not exist yet, so nothing is resolved on disk).
pub fn lexically_absolute(cwd: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in cwd.join(path).components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => out.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// `path` with `suffix` appended to its file name: `a/x.json` + `.lock` = `a/x.json.lock`.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        let abs = |cwd: &str, p: &str| lexically_absolute(Path::new(cwd), Path::new(p));
        assert_eq!(abs("/a/b", "../c/./d"), Path::new("/a/c/d"));
        assert_eq!(abs("/a", "/x/../y"), Path::new("/y"));
        assert_eq!(abs("/", "../.."), Path::new("/"));
    }

    #[test]
    fn suffixes_the_file_name() {
        assert_eq!(
            with_suffix(Path::new("a/x.json"), ".lock"),
            Path::new("a/x.json.lock")
        );
    }
}
