//! The artifact store compressed (issue P item 1): blobs are zstd frames on disk when that
//! pays, hits stay byte-identical, a store written raw reads back, the size bound counts
//! bytes on disk, and the setting comes from `ZCCACHE_COMPRESSION` or the user's config.

use std::fs;
use std::path::PathBuf;

use crate::support::Sandbox;

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Three units, each with 60 KB of mostly-zero data: objects that compress well.
fn project() -> Sandbox {
    let sb = Sandbox::new();
    for (unit, n) in [("a", 1), ("b", 2), ("c", 3)] {
        sb.write(
            &format!("{unit}.c"),
            format!("const char big_{unit}[60000] = {{{n}}};\nint {unit}(void) {{ return big_{unit}[7]; }}\n"),
        );
    }
    sb
}

fn compile(sb: &Sandbox, unit: &str) -> crate::support::Cmd {
    sb.cmd([
        "gcc",
        "-c",
        &format!("{unit}.c"),
        "-O1",
        "-o",
        &format!("{unit}.o"),
    ])
}

fn status(sb: &Sandbox) -> serde_json::Value {
    sb.cmd(["status", "--json"]).status(0).json()["daemon"].clone()
}

fn blobs(sb: &Sandbox) -> Vec<PathBuf> {
    let root = sb.state().join("artifacts/blobs");
    fs::read_dir(&root)
        .unwrap()
        .flat_map(|shard| fs::read_dir(shard.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect()
}

fn hits(sb: &Sandbox) -> u64 {
    status(sb)["cache_hits"].as_u64().unwrap()
}

#[test]
fn issue_p_blobs_are_stored_compressed_and_hits_stay_byte_identical() {
    let sb = project();
    compile(&sb, "a").status(0);
    let first = fs::read(sb.path("a.o")).unwrap();
    assert!(first.len() > 60_000);
    let d = status(&sb);
    let (on_disk, raw) = (
        d["artifact_bytes"].as_u64().unwrap(),
        d["artifact_raw_bytes"].as_u64().unwrap(),
    );
    assert!(
        raw > 60_000 && on_disk * 10 < raw,
        "{on_disk} on disk of {raw}"
    );
    assert_eq!(d["compression"], 1);
    let framed = blobs(&sb)
        .iter()
        .filter(|b| fs::read(b).unwrap().starts_with(&ZSTD_MAGIC))
        .count();
    assert!(framed >= 1, "the object's blob is a zstd frame");
    let text = sb.cmd(["status"]).status(0).stdout;
    assert!(
        text.contains("zstd level 1, ") && text.contains("× smaller"),
        "{text}"
    );

    fs::remove_file(sb.path("a.o")).unwrap();
    compile(&sb, "a").status(0);
    assert_eq!(hits(&sb), 1);
    assert_eq!(fs::read(sb.path("a.o")).unwrap(), first);
}

#[test]
fn issue_p_a_store_written_raw_reads_back_once_compression_is_on() {
    let sb = project();
    compile(&sb, "a")
        .env("ZCCACHE_COMPRESSION", "off")
        .status(0);
    let object = fs::read(sb.path("a.o")).unwrap();
    assert!(
        blobs(&sb).iter().any(|b| fs::read(b).unwrap() == object),
        "stored raw with compression off"
    );
    let text = sb.cmd(["status"]).status(0).stdout;
    assert!(text.contains("stored raw"), "{text}");
    sb.cmd(["stop"]).status(0);

    fs::remove_file(sb.path("a.o")).unwrap();
    compile(&sb, "a").status(0);
    assert_eq!(hits(&sb), 1, "the raw blob serves the hit");
    assert_eq!(fs::read(sb.path("a.o")).unwrap(), object);
}

#[test]
fn issue_p_the_size_bound_counts_bytes_on_disk() {
    // 3 × 60 KB raw against a 100 KB bound: only the compressed store keeps all three.
    for (compression, kept) in [("1", 3), ("off", 0)] {
        let sb = project();
        let run = |unit: &str| {
            compile(&sb, unit)
                .env("ZCCACHE_COMPRESSION", compression)
                .env("ZCCACHE_MAX_SIZE", "100K")
                .status(0)
        };
        for unit in ["a", "b", "c"] {
            run(unit);
        }
        for unit in ["a", "b", "c"] {
            fs::remove_file(sb.path(&format!("{unit}.o"))).unwrap();
            run(unit);
        }
        assert_eq!(hits(&sb), kept, "compression {compression}");
    }
}

#[test]
fn issue_p_compression_comes_from_the_env_or_the_users_config() {
    let sb = project();
    sb.user_config("[store]\ncompression = \"off\"\n");
    compile(&sb, "a").status(0);
    assert_eq!(status(&sb)["compression"], serde_json::Value::Null);
    sb.cmd(["stop"]).status(0);

    sb.user_config("[store]\ncompression = 7\n");
    compile(&sb, "b").status(0);
    assert_eq!(status(&sb)["compression"], 7);
    sb.cmd(["stop"]).status(0);

    // The environment wins; a value that is no level is logged and level 1 is used.
    compile(&sb, "c")
        .env("ZCCACHE_COMPRESSION", "fast")
        .status(0);
    assert_eq!(status(&sb)["compression"], 1);
    let log = fs::read_to_string(sb.state().join("daemon.log")).unwrap();
    assert!(
        log.contains("compression \"fast\" is neither \"off\" nor a zstd level 1..19"),
        "{log}"
    );
}

#[test]
fn issue_p_a_projects_file_never_sets_the_store() {
    let sb = Sandbox::new();
    sb.write(
        "zccache.toml",
        "[store]\ncompression = \"off\"\n\n[tasks.t]\ncommand = \"true\"\n",
    );
    sb.cmd(["run", "t"])
        .status(2)
        .stderr_has("[store] is not read from a project's file");
}
