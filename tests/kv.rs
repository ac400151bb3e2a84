//! The artifact store through `zccache kv`: round trips, misses, corruption, LRU trimming,
//! clear, and the daemon and in-process paths sharing one store.

use std::fs;

use crate::support::Sandbox;

fn blobs(sb: &Sandbox) -> Vec<std::path::PathBuf> {
    let root = sb.state().join("artifacts/blobs");
    fs::read_dir(&root)
        .map(|shards| {
            shards
                .flatten()
                .flat_map(|s| fs::read_dir(s.path()).unwrap().flatten().map(|e| e.path()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn put_and_get_round_trip_binary_values() {
    let sb = Sandbox::new();
    let value: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    fs::write(sb.path("in.bin"), &value).unwrap();
    sb.cmd(["kv", "put", "my key", "in.bin"]).status(0);
    let got = sb.cmd(["kv", "get", "my key"]).status(0);
    assert_eq!(got.stdout_bytes, value);
    sb.cmd(["kv", "get", "my key", "out.bin"]).status(0);
    assert_eq!(fs::read(sb.path("out.bin")).unwrap(), value);
    sb.cmd(["kv", "put", "my key"]).stdin("replaced").status(0);
    assert_eq!(sb.cmd(["kv", "get", "my key"]).status(0).stdout, "replaced");
}

#[test]
fn a_missing_key_exits_1() {
    let sb = Sandbox::new();
    let ran = sb.cmd(["kv", "get", "absent"]).status(1);
    assert!(ran.stdout.is_empty());
    assert!(
        ran.stderr.contains("no value for \"absent\""),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_corrupted_blob_is_a_miss_never_bad_bytes() {
    let sb = Sandbox::new();
    sb.cmd(["kv", "put", "k"]).stdin("the real value").status(0);
    // A new daemon: the one that stored the value keeps it in memory, verified (below).
    sb.cmd(["stop"]).status(0);
    for blob in blobs(&sb) {
        if fs::read(&blob).unwrap() == b"the real value" {
            fs::write(&blob, b"the fake value").unwrap();
        }
    }
    let ran = sb.cmd(["kv", "get", "k"]).status(1);
    assert!(ran.stdout.is_empty());
    sb.cmd(["kv", "put", "k"]).stdin("the real value").status(0);
    assert_eq!(
        sb.cmd(["kv", "get", "k"]).status(0).stdout,
        "the real value"
    );
}

/// Issue S: the daemon delivers a blob it stored from memory, checked when it was stored, so a
/// blob corrupted on disk under it is still delivered as the real bytes, never the fake ones.
#[test]
fn issue_s_a_blob_corrupted_under_the_daemon_is_delivered_as_stored() {
    let sb = Sandbox::new();
    sb.cmd(["start"]).status(0);
    sb.cmd(["kv", "put", "k"]).stdin("the real value").status(0);
    let mut faked = 0;
    for blob in blobs(&sb) {
        if fs::read(&blob).unwrap() == b"the real value" {
            fs::write(&blob, b"the fake value").unwrap();
            faked += 1;
        }
    }
    assert_eq!(faked, 1);
    assert_eq!(
        sb.cmd(["kv", "get", "k"]).status(0).stdout,
        "the real value"
    );
}

#[test]
fn the_store_is_trimmed_least_recently_used_first() {
    let sb = Sandbox::new();
    // Values that do not compress: 1,200 bytes on disk each.
    let put = |key: &str, byte: u8| {
        let mut value = vec![0; 1200];
        blake3::Hasher::new()
            .update(&[byte])
            .finalize_xof()
            .fill(&mut value);
        sb.cmd(["kv", "put", key])
            .env("ZCCACHE_MAX_SIZE", "3K")
            .stdin(value)
            .status(0);
    };
    put("first", b'a');
    put("second", b'b');
    sb.cmd(["kv", "get", "first"]).status(0);
    put("third", b'c');
    sb.cmd(["kv", "get", "second"]).status(1);
    sb.cmd(["kv", "get", "first"]).status(0);
    sb.cmd(["kv", "get", "third"]).status(0);
    let status = sb.cmd(["status", "--json"]).status(0).json();
    assert_eq!(status["daemon"]["max_size"], 3072);
    assert!(status["daemon"]["artifact_bytes"].as_u64().unwrap() <= 3072);
}

#[test]
fn clear_empties_the_store_with_or_without_a_daemon() {
    let sb = Sandbox::new();
    sb.cmd(["kv", "put", "a"]).stdin("1").status(0);
    assert_eq!(
        sb.cmd(["status", "--json"]).status(0).json()["daemon"]["artifact_entries"],
        1
    );
    sb.cmd(["clear"]).status(0).stderr_has("1 artifact (");
    sb.cmd(["kv", "get", "a"]).status(1);
    sb.cmd(["stop"]).status(0);
    sb.cmd(["kv", "put", "b"])
        .env("ZCCACHE_NO_DAEMON", "1")
        .stdin("2")
        .status(0);
    sb.cmd(["clear"])
        .status(0)
        .stderr_has("no daemon running; cleared 1 artifact (");
    assert!(blobs(&sb).is_empty());
}

#[test]
fn daemon_and_in_process_share_the_store() {
    let sb = Sandbox::new();
    sb.cmd(["kv", "put", "k"])
        .env("ZCCACHE_NO_DAEMON", "1")
        .stdin("local")
        .status(0);
    assert_eq!(sb.cmd(["kv", "get", "k"]).status(0).stdout, "local");
    sb.cmd(["kv", "put", "k2"]).stdin("daemon").status(0);
    let got = sb
        .cmd(["kv", "get", "k2"])
        .env("ZCCACHE_NO_DAEMON", "1")
        .status(0);
    assert_eq!(got.stdout, "daemon");
}

#[test]
fn concurrent_puts_of_one_key_leave_one_whole_value() {
    let sb = Sandbox::new();
    let children: Vec<_> = (0..8u8)
        .map(|i| {
            let value = vec![b'a' + i; 5000];
            fs::write(sb.path(&format!("v{i}")), &value).unwrap();
            sb.cmd(["kv", "put", "same", &format!("v{i}")]).spawn()
        })
        .collect();
    for child in children {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    let got = sb.cmd(["kv", "get", "same"]).status(0).stdout_bytes;
    assert_eq!(got.len(), 5000);
    assert!(
        got.iter().all(|&b| b == got[0]),
        "one writer's value, whole"
    );
}
