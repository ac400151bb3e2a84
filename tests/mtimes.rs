//! `zccache mtimes save | restore` as a CI job uses it: build, save, a fresh clone (every
//! source newer than the build), the build directory restored, mtimes restored, and a real
//! `cargo build` that finds every crate fresh, or rebuilds only the crate whose source
//! differs. Plus the snapshot as hostile data: symlinks on the way and paths out of the tree.

use std::fs;
use std::path::Path;

use crate::support::{Cmd, Sandbox};

/// A two-crate workspace (`alpha`, a library; `app`, a binary using it) committed in
/// `root/`, the "origin" every clone is made from.
fn origin() -> Sandbox {
    let sb = Sandbox::new();
    let package = |name: &str, deps: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}"
        )
    };
    sb.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"alpha\", \"app\"]\nresolver = \"2\"\n",
    )
    .write(".gitignore", "/target\n")
    .write("alpha/Cargo.toml", package("alpha", ""))
    .write("alpha/src/lib.rs", "pub fn answer() -> u32 {\n    42\n}\n")
    .write(
        "app/Cargo.toml",
        package("app", "alpha = { path = \"../alpha\" }\n"),
    )
    .write(
        "app/src/main.rs",
        "fn main() {\n    println!(\"{}\", alpha::answer());\n}\n",
    );
    sb.git(&["init", "-q", "-b", "main"]).status(0);
    sb.git(&["add", "-A"]).status(0);
    sb.git(&["commit", "-qm", "workspace"]).status(0);
    sb
}

/// A fresh clone of the origin at `work` (removed first): every file gets this moment as
/// its mtime, as a CI checkout does.
fn fresh_clone(sb: &Sandbox, work: &Path) {
    if work.exists() {
        fs::remove_dir_all(work).unwrap();
    }
    sb.git(&["clone", "-q", "."])
        .args([work.to_path_buf()])
        .status(0);
}

/// `cargo build -v` in `work`, offline and without any cache in the way.
fn build(sb: &Sandbox, work: &Path) -> String {
    sb.program("cargo")
        .args(["build", "-v", "--offline"])
        .cwd(work)
        .env_remove("RUSTC_WRAPPER")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env("CARGO_INCREMENTAL", "0")
        .status(0)
        .stderr
}

fn zccache_in(sb: &Sandbox, work: &Path, args: &[&str]) -> Cmd {
    sb.cmd(args).cwd(work)
}

/// Builds in a clone, saves its mtimes, keeps its `target/` aside (mtimes kept, as a CI
/// cache does) and removes the clone: what the next job starts from.
fn first_job(sb: &Sandbox, work: &Path, cached: &Path) {
    fresh_clone(sb, work);
    let compiled = build(sb, work);
    assert!(compiled.contains("Compiling alpha"), "{compiled}");
    zccache_in(sb, work, &["mtimes", "save", "../snapshot.json"])
        .status(0)
        .stderr_has("mtimes: saved 7 files"); // the five committed, .gitignore, Cargo.lock
    sb.program("cp")
        .args(["-a"])
        .args([work.join("target")])
        .args([cached.to_path_buf()])
        .status(0);
    fs::remove_dir_all(work).unwrap();
}

/// The next job: a fresh clone (optionally edited), the cached `target/` put back.
fn next_job(sb: &Sandbox, work: &Path, cached: &Path) {
    fresh_clone(sb, work);
    sb.program("cp")
        .args(["-a"])
        .args([cached.to_path_buf()])
        .args([work.join("target")])
        .status(0);
}

#[test]
fn issue_p_restored_mtimes_keep_a_cached_target_fresh() {
    let sb = origin();
    let (work, cached) = (sb.outside("work"), sb.outside("cached-target"));
    first_job(&sb, &work, &cached);

    // Without the restore, the checkout's times make cargo rebuild the workspace.
    next_job(&sb, &work, &cached);
    let rebuilt = build(&sb, &work);
    assert!(rebuilt.contains("Compiling alpha"), "{rebuilt}");

    next_job(&sb, &work, &cached);
    // Cargo.lock was never committed: missing from the clone.
    zccache_in(&sb, &work, &["mtimes", "restore", "../snapshot.json"])
        .status(0)
        .stderr_has("7 files saved: 6 set back, 0 already right, 0 differ, 1 missing");
    let fresh = build(&sb, &work);
    assert!(!fresh.contains("Compiling"), "{fresh}");
    assert!(
        fresh.contains("Fresh alpha") && fresh.contains("Fresh app"),
        "{fresh}"
    );
}

#[test]
fn issue_p_a_source_that_differs_keeps_its_new_mtime_and_only_its_crate_compiles() {
    let sb = origin();
    let (work, cached) = (sb.outside("work"), sb.outside("cached-target"));
    first_job(&sb, &work, &cached);

    next_job(&sb, &work, &cached);
    // Same size, other bytes: only the content tells them apart.
    let edited = "fn main() {\n   println!(\"{:}\", alpha::answer());\n}\n";
    assert_eq!(edited.len(), sb.read("app/src/main.rs").len());
    fs::write(work.join("app/src/main.rs"), edited).unwrap();
    zccache_in(&sb, &work, &["mtimes", "restore", "../snapshot.json"])
        .status(0)
        .stderr_has("7 files saved: 5 set back, 0 already right, 1 differ, 1 missing");
    let built = build(&sb, &work);
    assert!(built.contains("Fresh alpha"), "{built}");
    assert!(built.contains("Compiling app"), "{built}");
    assert!(!built.contains("Compiling alpha"), "{built}");
}

#[test]
fn issue_p_a_snapshot_never_reaches_through_a_symlink_or_out_of_the_tree() {
    let sb = Sandbox::new();
    sb.write("dir/file.txt", "same\n");
    fs::write(sb.outside("elsewhere.txt"), "same\n").unwrap();
    sb.cmd(["mtimes", "save", "snap.json"])
        .status(0)
        .stderr_has("saved 1 file to");
    let before = mtime(&sb.outside("elsewhere.txt"));

    // `dir` becomes a symlink to a directory outside holding a file with the saved bytes.
    fs::remove_dir_all(sb.path("dir")).unwrap();
    let outside_dir = sb.outside("outside-dir");
    fs::create_dir(&outside_dir).unwrap();
    fs::write(outside_dir.join("file.txt"), "same\n").unwrap();
    std::os::unix::fs::symlink(&outside_dir, sb.path("dir")).unwrap();
    let outside_before = mtime(&outside_dir.join("file.txt"));
    sb.cmd(["mtimes", "restore", "snap.json"])
        .status(0)
        .stderr_has("1 file saved: 0 set back, 0 already right, 0 differ, 1 missing");
    assert_eq!(mtime(&outside_dir.join("file.txt")), outside_before);

    // A forged snapshot naming a path out of the tree is refused whole.
    let forged = sb
        .read("snap.json")
        .replace("dir/file.txt", "../elsewhere.txt");
    sb.write("forged.json", forged);
    sb.cmd(["mtimes", "restore", "forged.json"])
        .status(2)
        .stderr_has("not a plain relative path");
    assert_eq!(mtime(&sb.outside("elsewhere.txt")), before);

    // The snapshot itself is read only as a regular file.
    std::os::unix::fs::symlink(sb.path("snap.json"), sb.path("link.json")).unwrap();
    sb.cmd(["mtimes", "restore", "link.json"])
        .status(2)
        .stderr_has("symlink");
    let none = sb
        .cmd(["mtimes", "restore", "none.json", "--json"])
        .status(0)
        .stderr_has("mtimes: no snapshot at none.json: nothing set back")
        .json();
    assert_eq!(none["total"], 0, "{none}");
    // A snapshot larger than any zccache writes is refused before it is read (sparse: no
    // disk or memory spent on it).
    fs::File::create(sb.path("huge.json"))
        .unwrap()
        .set_len(600 << 20)
        .unwrap();
    sb.cmd(["mtimes", "restore", "huge.json"])
        .status(2)
        .stderr_has("larger than 536870912 bytes");
    sb.write("garbage.json", "{ not json");
    sb.cmd(["mtimes", "restore", "garbage.json"])
        .status(2)
        .stderr_has("not a zccache mtimes snapshot");
}

fn mtime(path: &Path) -> std::time::SystemTime {
    fs::symlink_metadata(path).unwrap().modified().unwrap()
}
