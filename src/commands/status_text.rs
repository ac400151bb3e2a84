//! `zccache status` as text: the daemon's counters, then its watched tasks grouped by
//! project (the git work tree holding a task's root, else the root itself), sorted, each
//! state file once, with sizes in KiB/MiB/GiB and plurals that agree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::daemon::fingerprints::WATCHED_MODE;
use crate::daemon::protocol::{DaemonStatus, IndexStatus};
use crate::fingerprint::thousands;
use crate::quote;

/// The whole text.
pub fn describe(s: &DaemonStatus) -> String {
    let mut text = format!(
        "zccache daemon {}, pid {}, up {}, {}, {}\n",
        s.version,
        s.pid,
        duration(s.uptime_secs),
        count(s.requests, "request", "requests"),
        s.dir
    );
    text.push_str(&format!("  file watching: {}\n", s.watching));
    if let Some(space) = &s.out_of_space {
        text.push_str(&format!("  out of space: {space}\n"));
    }
    text.push_str(&format!(
        "  compiles: {}, {}, {}, {} passed through\n",
        count(s.cache_hits, "hit", "hits"),
        count(s.cache_misses, "miss", "misses"),
        count(s.cache_errors, "error", "errors"),
        thousands(s.passthroughs as usize)
    ));
    text.push_str(&format!(
        "  artifact store: {}, {} of {} on disk ({})\n",
        count(s.artifact_entries, "entry", "entries"),
        bytes(s.artifact_bytes),
        bytes(s.max_size),
        packing(s)
    ));
    if let Some(why) = &s.remote_off {
        text.push_str(&format!("  remote: off ({})\n", quote::controls(why)));
    }
    if let Some(r) = &s.remote {
        text.push_str(&format!(
            "  remote{}: {}, {}, {} uploaded, {} not uploaded, {} refused, {}\n",
            if r.readonly { " (read-only)" } else { "" },
            count(r.hits, "hit", "hits"),
            count(r.misses, "miss", "misses"),
            thousands(r.uploads as usize),
            thousands(r.dropped as usize),
            thousands(r.refused as usize),
            count(r.errors, "error", "errors"),
        ));
    }
    tasks(&mut text, &s.indexes);
    for w in &s.watches {
        text.push_str(&format!(
            "  zccache watch (pid {}, {}): {}\n",
            w.pid,
            duration(w.age_secs),
            quote::controls(&w.sets.join(", "))
        ));
    }
    text
}

/// The watched tasks, by project.
/// How the store's blobs are packed: `zstd level 1, 4.2 MiB raw, 3.1× smaller`, or `raw`.
fn packing(s: &DaemonStatus) -> String {
    let Some(level) = s.compression else {
        return "stored raw".to_string();
    };
    let mut text = format!("zstd level {level}");
    if s.artifact_bytes > 0 && s.artifact_raw_bytes > 0 {
        let ratio = s.artifact_raw_bytes as f64 / s.artifact_bytes as f64;
        text.push_str(&format!(
            ", {} uncompressed, {ratio:.1}× smaller",
            bytes(s.artifact_raw_bytes)
        ));
    }
    text
}

fn tasks(text: &mut String, indexes: &[IndexStatus]) {
    let mut projects: BTreeMap<PathBuf, BTreeMap<(&str, &str), &IndexStatus>> = BTreeMap::new();
    for index in indexes {
        projects
            .entry(project_of(Path::new(&index.root)))
            .or_default()
            .entry((index.cache_file.as_str(), index.root.as_str()))
            .or_insert(index);
    }
    for (project, tasks) in &projects {
        text.push_str(&format!(
            "  {} ({}):\n",
            quote::path(&project.display().to_string()),
            count(tasks.len() as u64, "watched task", "watched tasks")
        ));
        for index in tasks.values() {
            text.push_str(&format!("    {}\n", task_line(project, index)));
        }
    }
}

/// `STATE (root ROOT): N files, would skip[, mode]`, paths relative to the project.
fn task_line(project: &Path, index: &IndexStatus) -> String {
    let shown = |path: &str| {
        let rel = Path::new(path)
            .strip_prefix(project)
            .unwrap_or(Path::new(path));
        match rel.as_os_str().is_empty() {
            true => ".".to_string(),
            false => quote::path(&rel.display().to_string()).into_owned(),
        }
    };
    let verdict = match (index.would_skip, index.changed_files) {
        (Some(true), _) => "would skip".to_string(),
        (Some(false), Some(n)) => format!("would run ({} changed)", count(n, "file", "files")),
        (Some(false), None) => "would run".to_string(),
        (None, _) => "unknown until the next check".to_string(),
    };
    let root = match Path::new(&index.root) == project {
        true => String::new(),
        false => format!(" (root {})", shown(&index.root)),
    };
    let mode = match index.mode.as_str() {
        WATCHED_MODE => String::new(),
        other => format!(", {}", quote::controls(other)),
    };
    format!(
        "{}{root}: {}, {verdict}{mode}",
        shown(&index.cache_file),
        count(index.files, "file", "files")
    )
}

/// The git work tree holding `root` (the nearest directory above with a `.git`), else
/// `root`.
fn project_of(root: &Path) -> PathBuf {
    root.ancestors()
        .find(|dir| dir.join(".git").exists())
        .unwrap_or(root)
        .to_path_buf()
}

/// `1 file`, `1,204 files`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    match n {
        1 => format!("1 {one}"),
        n => format!("{} {many}", thousands(n as usize)),
    }
}

/// `512 B`, `44.4 KiB`, `10.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `42 s`, `3 min`, `2 h 5 min`.
fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_counts_and_times_read_as_a_person_would_say_them() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(45_498), "44.4 KiB");
        assert_eq!(bytes(10 << 30), "10.0 GiB");
        assert_eq!(count(1, "file", "files"), "1 file");
        assert_eq!(count(1204, "file", "files"), "1,204 files");
        assert_eq!(count(0, "miss", "misses"), "0 misses");
        assert_eq!(duration(42), "42 s");
        assert_eq!(duration(3 * 3600 + 125), "3 h 2 min");
    }

    fn index(cache_file: &str, root: &str, files: u64) -> IndexStatus {
        IndexStatus {
            cache_file: cache_file.to_string(),
            root: root.to_string(),
            mode: "watched".to_string(),
            files,
            changed_files: Some(0),
            would_skip: Some(true),
        }
    }

    #[test]
    fn tasks_are_grouped_sorted_and_listed_once() {
        let mut text = String::new();
        tasks(
            &mut text,
            &[
                index("/b/.zccache/run/z.json", "/b", 1),
                index("/a/.cache/lint.json", "/a", 3),
                index("/b/.zccache/run/y.json", "/b/src", 2),
                index("/a/.cache/lint.json", "/a", 3),
            ],
        );
        assert_eq!(
            text,
            "  /a (1 watched task):\n    .cache/lint.json: 3 files, would skip\n\
             \x20 /b (1 watched task):\n    .zccache/run/z.json: 1 file, would skip\n\
             \x20 /b/src (1 watched task):\n    /b/.zccache/run/y.json: 2 files, would skip\n"
        );
    }
}
