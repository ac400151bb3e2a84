//! The C compile cache through wrapper mode (`zccache gcc ...`) with real gcc.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::{Sandbox, Tool, available};

/// (hits, misses, passthroughs) so far.
fn counts(sb: &Sandbox) -> (u64, u64, u64) {
    let d = sb.cmd(["status", "--json"]).status(0).json()["daemon"].clone();
    let n = |k: &str| d[k].as_u64().unwrap_or_else(|| panic!("{k} in {d}"));
    (n("cache_hits"), n("cache_misses"), n("passthroughs"))
}

fn gcc(sb: &Sandbox, args: &[&str]) -> crate::support::Cmd {
    sb.cmd(["gcc"]).args(args)
}

fn project() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("inc/h.h", "#define H 1\n").write(
        "a.c",
        "#include \"h.h\"\n#include <stdio.h>\nint f(void) { return H; }\n",
    );
    sb
}

const ARGS: [&str; 6] = ["-c", "a.c", "-Iinc", "-O1", "-o", "a.o"];

fn object(sb: &Sandbox) -> Vec<u8> {
    fs::read(sb.path("a.o")).unwrap()
}

#[test]
fn hit_after_clean_is_byte_identical() {
    let sb = project();
    gcc(&sb, &ARGS).status(0);
    let first = object(&sb);
    fs::remove_file(sb.path("a.o")).unwrap();
    gcc(&sb, &ARGS).status(0);
    assert_eq!(counts(&sb), (1, 1, 0));
    assert_eq!(object(&sb), first);
}

#[test]
fn every_input_kind_changes_the_key() {
    let sb = project();
    gcc(&sb, &ARGS).status(0);
    let mut expected_misses = 1;
    let mut miss = |sb: &Sandbox, args: &[&str], what: &str| {
        gcc(sb, args).status(0);
        expected_misses += 1;
        assert_eq!(counts(sb).1, expected_misses, "{what} must miss");
    };
    sb.write("a.c", "#include \"h.h\"\nint f(void) { return H + 1; }\n");
    miss(&sb, &ARGS, "source edit");
    sb.write("inc/h.h", "#define H 2\n");
    miss(&sb, &ARGS, "header edit");
    miss(
        &sb,
        &["-c", "a.c", "-Iinc", "-O1", "-DX=1", "-o", "a.o"],
        "-D",
    );
    miss(&sb, &["-c", "a.c", "-Iinc", "-O2", "-o", "a.o"], "-O");
    miss(
        &sb,
        &["-c", "a.c", "-Iinc", "-O2", "-O0", "-o", "a.o"],
        "-O order",
    );
    miss(
        &sb,
        &["-c", "a.c", "-Iinc", "-O0", "-O2", "-o", "a.o"],
        "-O order swapped",
    );
    gcc(&sb, &ARGS).env("CPATH", "/nonexistent").status(0);
    assert_eq!(counts(&sb).1, expected_misses + 1, "CPATH must miss");
}

#[test]
fn a_forced_include_is_an_input() {
    let sb = project();
    sb.write("force.h", "#define EXTRA 1\n");
    let args = ["-c", "a.c", "-Iinc", "-include", "force.h", "-o", "a.o"];
    gcc(&sb, &args).status(0);
    sb.write("force.h", "#define EXTRA 2\n");
    gcc(&sb, &args).status(0);
    assert_eq!(counts(&sb), (0, 2, 0));
}

/// Issue 27 (S): a header edited between two hits with its size and mtime put back (as `cp
/// -p` or `touch -d` leave it) still misses: its ctime moved.
#[test]
fn issue_s_a_header_edited_with_its_size_and_mtime_kept_misses() {
    let sb = project();
    gcc(&sb, &ARGS).status(0);
    fs::remove_file(sb.path("a.o")).unwrap();
    gcc(&sb, &ARGS).status(0);
    assert_eq!(counts(&sb), (1, 1, 0));
    let old = object(&sb);
    let header = sb.path("inc/h.h");
    let mtime = fs::metadata(&header).unwrap().modified().unwrap();
    fs::write(&header, "#define H 7\n").unwrap();
    fs::File::options()
        .write(true)
        .open(&header)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(fs::metadata(&header).unwrap().modified().unwrap(), mtime);
    gcc(&sb, &ARGS).status(0);
    assert_eq!(counts(&sb), (1, 2, 0), "the edited header must miss");
    assert_ne!(object(&sb), old, "the new header was compiled in");
    gcc(&sb, &ARGS).status(0);
    assert_eq!(counts(&sb), (2, 2, 0));
}

/// Issue 27 (S): `ZCCACHE_TRACE_TIMES=1` makes a wrapper tell where its time went, a hit's
/// included; the compile's own output is untouched.
#[test]
fn issue_s_trace_times_tells_the_wrappers_phases() {
    let sb = project();
    gcc(&sb, &ARGS).status(0);
    // The hit is answered by the early client (see tests/early.rs); the usual start,
    // asked for with ZCCACHE_EARLY=0, tells its own phases.
    gcc(&sb, &ARGS)
        .env("ZCCACHE_TRACE_TIMES", "1")
        .status(0)
        .stderr_has("zccache: times: early, plan ")
        .stderr_has(", wait ");
    gcc(&sb, &ARGS)
        .env("ZCCACHE_TRACE_TIMES", "1")
        .env("ZCCACHE_EARLY", "0")
        .status(0)
        .stderr_has("zccache: times: args ")
        .stderr_has(", wait ");
    assert_eq!(counts(&sb), (2, 1, 0));
    gcc(&sb, &ARGS).status(0).stderr_lacks("zccache: times");
}

#[test]
fn a_new_header_earlier_on_the_path_misses() {
    let sb = project();
    let args = ["-c", "a.c", "-Ifirst", "-Iinc", "-o", "a.o"];
    fs::create_dir(sb.path("first")).unwrap();
    gcc(&sb, &args).status(0);
    let old = object(&sb);
    sb.write("first/h.h", "#define H 42\n");
    gcc(&sb, &args).status(0);
    assert_eq!(counts(&sb), (0, 2, 0));
    assert_ne!(object(&sb), old, "the new header was compiled in");
    gcc(&sb, &args).status(0);
    assert_eq!(counts(&sb), (1, 2, 0));
}

#[test]
fn another_compiler_misses() {
    let sb = project();
    for (name, version) in [("cc-a", "A 1.0"), ("cc-b", "B 2.0")] {
        let script = format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo '{version}'; else exec gcc \"$@\"; fi\n"
        );
        let path = sb.outside(name);
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    sb.cmd([sb.outside("cc-a")]).args(ARGS).status(0);
    sb.cmd([sb.outside("cc-b")]).args(ARGS).status(0);
    sb.cmd([sb.outside("cc-a")]).args(ARGS).status(0);
    assert_eq!(counts(&sb), (1, 2, 0));
}

#[test]
fn warnings_are_replayed_on_a_hit() {
    let sb = Sandbox::new();
    sb.write("w.c", "int f(int x) { int unused; return x; }\n");
    let args = ["-c", "w.c", "-Wall", "-o", "w.o"];
    let first = gcc(&sb, &args).status(0);
    assert!(first.stderr.contains("unused"), "{}", first.stderr);
    let second = gcc(&sb, &args).status(0);
    assert_eq!(counts(&sb), (1, 1, 0));
    assert_eq!(second.stderr_bytes, first.stderr_bytes);
}

#[test]
fn a_failing_compile_is_not_cached() {
    let sb = Sandbox::new();
    sb.write("bad.c", "int f(void) { return undeclared; }\n");
    let args = ["-c", "bad.c", "-o", "bad.o"];
    let first = gcc(&sb, &args).status(1);
    let second = gcc(&sb, &args).status(1);
    assert_eq!(second.stderr, first.stderr);
    // Failed compiles are errors, not misses (issue O.6).
    assert_eq!(counts(&sb), (0, 0, 0));
    let status = sb.cmd(["status", "--json"]).status(0).json();
    assert_eq!(status["daemon"]["cache_errors"], 2, "{status}");
    assert!(!sb.path("bad.o").exists());
}

#[test]
fn the_depfile_is_restored() {
    let sb = project();
    let args = ["-c", "a.c", "-Iinc", "-MD", "-MF", "a.d", "-o", "a.o"];
    gcc(&sb, &args).status(0);
    let depfile = sb.read("a.d");
    assert!(depfile.contains("inc/h.h"), "{depfile}");
    fs::remove_file(sb.path("a.o")).unwrap();
    fs::remove_file(sb.path("a.d")).unwrap();
    gcc(&sb, &args).status(0);
    assert_eq!(counts(&sb), (1, 1, 0));
    assert_eq!(sb.read("a.d"), depfile);
    assert!(sb.path("a.o").exists());
}

#[test]
fn passthrough_keeps_output_and_status() {
    let sb = Sandbox::new();
    sb.write(
        "main.c",
        "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 3; }\n",
    );
    gcc(&sb, &["-x", "c", "main.c", "-o", "app"]).status(0);
    let ran = sb.program(&sb.path("app").display().to_string()).status(3);
    assert_eq!(ran.stdout, "hi\n");
    gcc(&sb, &["-E", "main.c"]).status(0);
    gcc(&sb, &["nope.c", "-o", "x"]).status(1);
    assert_eq!(counts(&sb), (0, 0, 3));
}

#[test]
fn a_corrupted_artifact_is_a_miss_not_a_bad_object() {
    // A new daemon: the one that stored the object keeps it in memory (issue S, below).
    assert_eq!(compile_over_corrupted_blobs(true), (0, 1, 0));
}

/// Issue S: a hit on an object the daemon stored is delivered from its memory (checked when
/// stored), so blobs corrupted on disk under it still give the real object.
#[test]
fn issue_s_blobs_corrupted_under_the_daemon_still_give_the_real_object() {
    assert_eq!(compile_over_corrupted_blobs(false), (1, 1, 0));
}

/// Compiles, corrupts every blob (after stopping the daemon when `restart`), removes the
/// object and compiles again; checks the object is the first one and returns the counts.
fn compile_over_corrupted_blobs(restart: bool) -> (u64, u64, u64) {
    let sb = project();
    gcc(&sb, &ARGS).status(0);
    let good = object(&sb);
    if restart {
        sb.cmd(["stop"]).status(0);
    }
    corrupt_every_blob(&sb);
    fs::remove_file(sb.path("a.o")).unwrap();
    gcc(&sb, &ARGS).status(0);
    assert_eq!(object(&sb), good);
    counts(&sb)
}

/// Flips a byte in the middle of every blob of the store (raw or a zstd frame) over 64 bytes.
fn corrupt_every_blob(sb: &Sandbox) {
    for shard in fs::read_dir(sb.state().join("artifacts/blobs")).unwrap() {
        for blob in fs::read_dir(shard.unwrap().path()).unwrap() {
            // Every blob, raw or a zstd frame, gets one byte flipped.
            let blob = blob.unwrap().path();
            let mut bad = fs::read(&blob).unwrap();
            if bad.len() > 64 {
                let middle = bad.len() / 2;
                bad[middle] ^= 0xff;
                fs::write(&blob, bad).unwrap();
            }
        }
    }
}

#[test]
fn without_a_daemon_the_compiler_runs_directly_warning_once() {
    let sb = project();
    // A socket path longer than Unix allows: the state dir exists, no daemon can serve it.
    let dir = sb.outside(&"d".repeat(120));
    fs::create_dir_all(&dir).unwrap();
    let first = gcc(&sb, &ARGS).env("ZCCACHE_DIR", &dir).status(0);
    assert!(
        first.stderr.contains("compiling uncached"),
        "{}",
        first.stderr
    );
    assert!(sb.path("a.o").exists());
    fs::remove_file(sb.path("a.o")).unwrap();
    let second = gcc(&sb, &ARGS).env("ZCCACHE_DIR", &dir).status(0);
    assert!(
        second.stderr.is_empty(),
        "one warning per build: {}",
        second.stderr
    );
    assert!(sb.path("a.o").exists());
    gcc(&sb, &ARGS).env("ZCCACHE_NO_DAEMON", "1").status(0);
    gcc(&sb, &["-c", "missing.c"])
        .env("ZCCACHE_NO_DAEMON", "1")
        .status(1);
    assert_eq!(
        sb.cmd(["status", "--json"]).status(0).json()["running"],
        false
    );
}

#[test]
fn make_j2_twice_is_all_hits_and_runs() {
    let sb = Sandbox::new();
    for i in 0..4 {
        sb.write(
            &format!("u{i}.c"),
            format!("int u{i}(void) {{ return {i}; }}\n"),
        );
    }
    sb.write(
        "main.c",
        "int u0(void); int u1(void); int u2(void); int u3(void);\n\
         int main(void) { return u0() + u1() + u2() + u3(); }\n",
    );
    sb.write(
        "Makefile",
        "OBJ = main.o u0.o u1.o u2.o u3.o\napp: $(OBJ)\n\t$(CC) $(OBJ) -o app\n\
         %.o: %.c\n\t$(CC) -O2 -c $< -o $@\nclean:\n\trm -f $(OBJ) app\n",
    );
    let cc = format!("CC={} gcc", crate::support::ZCCACHE);
    sb.program("make").args(["-s", "-j2", &cc]).status(0);
    sb.program("make").args(["-s", "clean"]).status(0);
    sb.program("make").args(["-s", "-j2", &cc]).status(0);
    assert_eq!(counts(&sb), (6, 6, 0), "five objects and the link, twice");
    sb.program(&sb.path("app").display().to_string()).status(6);
}

#[test]
fn twenty_identical_compiles_at_once_compile_once() {
    let sb = project();
    let children: Vec<_> = (0..20).map(|_| gcc(&sb, &ARGS).spawn()).collect();
    for child in children {
        assert!(child.wait_with_output().unwrap().status.success());
    }
    // Identical compiles compile once; the others wait and take its result.
    assert_eq!(counts(&sb), (19, 1, 0));
    sb.program("gcc")
        .args(["-c", "a.c", "-Iinc", "-O1", "-o", "ref.o"])
        .status(0);
    let reference = fs::read(sb.path("ref.o")).unwrap();
    assert_eq!(object(&sb), reference, "every writer left a whole object");
    fs::remove_file(sb.path("a.o")).unwrap();
    gcc(&sb, &ARGS).status(0);
    assert_eq!(object(&sb), reference, "the store holds a whole object");
}

/// Issue G.10: the README's idiom, `ID=$(zccache session-start ... | jq -r .session_id)`,
/// records the subshell as the client; the session must outlive it (and a second
/// session-start, which reaps), or later compiles run outside it with no journal line.
/// Issue G.12: link hits and misses count as hits and misses; a compile in an ended session
/// says so instead of "daemon unavailable".
#[test]
fn issue_g_sessions_outlive_the_shell_idiom_and_count_links() {
    let sb = project();
    let script = r#"
        ID=$("$Z" session-start --journal build.jsonl | sed 's/.*"session_id":"\([^"]*\)".*/\1/')
        "$Z" session-start >/dev/null
        export ZCCACHE_SESSION_ID=$ID
        "$Z" gcc -c a.c -Iinc -o a.o && "$Z" gcc a.o -shared -o liba.so
        rm a.o liba.so
        "$Z" gcc -c a.c -Iinc -o a.o && "$Z" gcc a.o -shared -o liba.so
        "$Z" session-end --json "$ID"
    "#;
    let ran = sb
        .program("sh")
        .args(["-c", script])
        .env("Z", crate::support::ZCCACHE)
        .status(0);
    let end: serde_json::Value = serde_json::from_str(ran.stdout.trim()).unwrap();
    assert_eq!(
        (&end["hits"], &end["misses"]),
        (&2.into(), &2.into()),
        "{end}"
    );
    assert_eq!(end["passthroughs"], 0);
    let outcomes: Vec<String> = sb
        .read("build.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["outcome"].to_string())
        .collect();
    assert_eq!(
        outcomes,
        [r#""miss""#, r#""link_miss""#, r#""hit""#, r#""link_hit""#]
    );
    gcc(&sb, &ARGS)
        .env("ZCCACHE_SESSION_ID", end["session_id"].as_str().unwrap())
        .status(0)
        .stderr_has("no session")
        .stderr_lacks("unavailable");

    // With --owner-pid, the session ends with that process.
    let owner = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let id = sb
        .cmd(["session-start", "--owner-pid", &owner.id().to_string()])
        .status(0)
        .json()["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    sb.cmd(["session-stats", &id]).status(0);
    let mut owner = owner;
    owner.kill().unwrap();
    owner.wait().unwrap();
    sb.cmd(["session-start"]).status(0);
    sb.cmd(["session-stats", &id])
        .status(2)
        .stderr_has("no session");
}

/// Issue G.11: a profiled session's journal carries real values: the output's extension
/// (none for a program), the crate's name and type for rustc, and the daemon's phase times;
/// an unprofiled session adds nothing.
#[test]
fn issue_g_profiled_journals_carry_real_values() {
    let sb = project();
    sb.write("src/lib.rs", "pub fn f() -> u32 { 7 }\n");
    fs::create_dir(sb.path("out")).unwrap();
    let sysroot = sb
        .program("rustc")
        .args(["--print", "sysroot"])
        .status(0)
        .stdout;
    let rustc = format!("{}/bin/rustc", sysroot.trim());
    let start = |flags: &[&str]| {
        let json = sb.cmd(["session-start"]).args(flags).status(0).json();
        json["session_id"].as_str().unwrap().to_string()
    };
    let profiled = start(&["--profile", "--journal", "p.jsonl"]);
    let plain = start(&["--journal", "q.jsonl"]);
    let rust = [
        "--crate-name",
        "tiny",
        "--crate-type",
        "lib",
        "--edition",
        "2021",
        "src/lib.rs",
        "--emit=dep-info,metadata,link",
        "-C",
        "extra-filename=-0123",
        "--out-dir",
        "out",
    ];
    for id in [&profiled, &plain] {
        for _ in ["miss", "hit"] {
            let _ = fs::remove_file(sb.path("a.o"));
            gcc(&sb, &ARGS).env("ZCCACHE_SESSION_ID", id).status(0);
            sb.cmd([rustc.as_str()])
                .args(rust)
                .env("ZCCACHE_SESSION_ID", id)
                .status(0);
        }
        gcc(&sb, &["a.o", "-shared", "-o", "liba.so"])
            .env("ZCCACHE_SESSION_ID", id)
            .status(0);
    }
    let lines = |file: &str| -> Vec<serde_json::Value> {
        sb.read(file)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let p = lines("p.jsonl");
    let outcomes: Vec<&str> = p.iter().map(|l| l["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["miss", "miss", "hit", "hit", "link_miss"]);
    let (c_miss, rust_miss, c_hit, rust_hit, link) = (&p[0], &p[1], &p[2], &p[3], &p[4]);
    assert_eq!(c_miss["output_ext"], "o");
    assert!(c_miss["crate_name"].is_null());
    assert_eq!(rust_miss["output_ext"], "rlib");
    assert_eq!(rust_miss["crate_name"], "tiny");
    assert_eq!(rust_miss["crate_type"], "lib");
    assert_eq!(link["output_ext"], "so");
    let ns =
        |line: &serde_json::Value, phase: &str| line["self_profile_ns"][phase].as_u64().unwrap();
    assert!(
        ns(c_miss, "compile") > 0 && ns(c_miss, "store") > 0,
        "{c_miss}"
    );
    // A Rust miss compiled by its wrapper is stored after the wrapper is answered: no store
    // time of the daemon's falls within it.
    assert!(ns(rust_miss, "compile") > 0, "{rust_miss}");
    assert_eq!(ns(rust_miss, "store"), 0, "{rust_miss}");
    for hit in [c_hit, rust_hit] {
        assert!(ns(hit, "lookup") > 0 && ns(hit, "deliver") > 0, "{hit}");
        assert_eq!(ns(hit, "compile"), 0, "{hit}");
    }
    for line in lines("q.jsonl") {
        for field in ["output_ext", "crate_name", "crate_type", "self_profile_ns"] {
            assert!(line.get(field).is_none(), "{field} in {line}");
        }
    }
}

#[test]
fn session_counts_are_exact_and_journals_parse() {
    let sb = project();
    sb.cmd(["session-start", "--journal", "x.log"])
        .status(2)
        .stderr_has(".jsonl");
    let started = sb
        .cmd([
            "session-start",
            "--stats",
            "--journal",
            "build.jsonl",
            "--log",
            "build.log",
        ])
        .status(0)
        .json();
    let id = started["session_id"].as_str().unwrap().to_string();
    let in_session = |args: &[&str], code: i32| {
        gcc(&sb, args).env("ZCCACHE_SESSION_ID", &id).status(code);
    };
    in_session(&ARGS, 0);
    in_session(&ARGS, 0);
    in_session(&["-E", "a.c", "-Iinc"], 0);
    sb.write("bad.c", "int f(void) { return nope; }\n");
    in_session(&["-c", "bad.c", "-o", "bad.o"], 1);
    gcc(&sb, &ARGS).status(0);
    let mid = sb.cmd(["session-stats", &id, "--json"]).status(0).json();
    assert_eq!(
        (
            &mid["hits"],
            &mid["misses"],
            &mid["passthroughs"],
            &mid["errors"]
        ),
        (&1.into(), &1.into(), &1.into(), &1.into()),
        "{mid}"
    );
    let end = sb.cmd(["session-end", &id, "--json"]).status(0).json();
    assert_eq!(end["hits"], 1);
    assert_eq!(end["hit_rate"], 0.5);
    sb.cmd(["session-stats", &id])
        .status(2)
        .stderr_has("no session");
    let journal = sb.read("build.jsonl");
    let lines: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let outcomes: Vec<&str> = lines
        .iter()
        .map(|l| l["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["miss", "hit", "passthrough", "error"]);
    for line in &lines {
        for field in [
            "ts",
            "compiler",
            "args",
            "cwd",
            "env",
            "exit_code",
            "latency_ns",
        ] {
            assert!(!line[field].is_null(), "{field} in {line}");
        }
        assert_eq!(line["session_id"], id.as_str());
        assert!(
            line.get("crate_name").is_none(),
            "no profile fields without --profile"
        );
    }
    let log = sb.read("build.log");
    let kinds: Vec<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(kinds, ["miss", "hit", "passthrough", "error"], "{log}");
    let global = fs::read_to_string(sb.state().join("logs/compile_journal.jsonl")).unwrap();
    assert_eq!(global.lines().count(), 5);
}

#[test]
fn compiles_keep_the_store_within_its_bound() {
    let sb = Sandbox::new();
    for i in 0..6 {
        let body: String = (0..40)
            .map(|j| format!("int f{i}_{j}(void) {{ return {j}; }}\n"))
            .collect();
        sb.write(&format!("u{i}.c"), body);
        gcc(&sb, &["-c", &format!("u{i}.c")])
            .env("ZCCACHE_MAX_SIZE", "8K")
            .status(0);
    }
    let status = sb.cmd(["status", "--json"]).status(0).json();
    let bytes = status["daemon"]["artifact_bytes"].as_u64().unwrap();
    assert!(bytes <= 8192, "{status}");
    assert!(status["daemon"]["artifact_entries"].as_u64().unwrap() > 0);
}

#[test]
fn response_files_are_read_for_the_key() {
    let sb = project();
    sb.write("args.rsp", "-c a.c -Iinc @more.rsp\n");
    sb.write("more.rsp", "'-DGREETING=\"hi there\"' -o a.o\n");
    gcc(&sb, &["@args.rsp"]).status(0);
    fs::remove_file(sb.path("a.o")).unwrap();
    gcc(&sb, &["@args.rsp"]).status(0);
    assert_eq!(counts(&sb), (1, 1, 0));
    sb.write("more.rsp", "'-DGREETING=\"bye\"' -o a.o\n");
    gcc(&sb, &["@args.rsp"]).status(0);
    assert_eq!(
        counts(&sb),
        (1, 2, 0),
        "an edited response file is a new key"
    );
    gcc(&sb, &["@missing.rsp"]).status(1);
    assert_eq!(counts(&sb).2, 1);
}

#[test]
fn a_symlink_named_gcc_masquerades() {
    let sb = project();
    let bin = sb.outside("bin");
    fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(crate::support::ZCCACHE, bin.join("gcc")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let masked = |args: &[&str]| sb.program("gcc").args(args).env("PATH", &path);
    masked(&ARGS).status(0);
    fs::remove_file(sb.path("a.o")).unwrap();
    masked(&ARGS).status(0);
    assert!(sb.path("a.o").exists());
    assert_eq!(counts(&sb), (1, 1, 0));
}

#[test]
fn a_stdin_source_is_keyed_by_its_bytes() {
    let sb = Sandbox::new();
    let args = ["-x", "c", "-c", "-", "-o", "s.o"];
    gcc(&sb, &args)
        .stdin("int f(void) { return 1; }\n")
        .status(0);
    let first = fs::read(sb.path("s.o")).unwrap();
    fs::remove_file(sb.path("s.o")).unwrap();
    gcc(&sb, &args)
        .stdin("int f(void) { return 1; }\n")
        .status(0);
    assert_eq!(fs::read(sb.path("s.o")).unwrap(), first);
    gcc(&sb, &args)
        .stdin("int f(void) { return 2; }\n")
        .status(0);
    assert_eq!(counts(&sb), (1, 2, 0));
    assert_ne!(fs::read(sb.path("s.o")).unwrap(), first);
    gcc(&sb, &["-c", "-"]).stdin("int x;\n").status(1);
    // Without a daemon the bytes still reach the compiler.
    gcc(&sb, &args)
        .env("ZCCACHE_NO_DAEMON", "1")
        .stdin("int f(void) { return 3; }\n")
        .status(0);
}

/// Issue G.2: every path that names stdin is the caller's bytes, keyed by them; before,
/// `/dev/stdin` compiled the daemon's empty stdin into an object without the function.
#[test]
fn issue_g_every_stdin_path_is_the_callers_bytes() {
    let sb = Sandbox::new();
    for (n, path) in ["/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"]
        .iter()
        .enumerate()
    {
        for function in ["zfun", "yfun"] {
            let out = format!("z{n}.o");
            gcc(&sb, &["-x", "c", "-c", path, "-o", &out])
                .stdin(format!("int {function}(void) {{ return 1; }}\n"))
                .status(0);
            let object = fs::read(sb.path(&out)).unwrap();
            assert!(
                object.windows(4).any(|w| w == function.as_bytes()),
                "{path}: the object lacks {function}"
            );
        }
    }
    // Same bytes again: a hit; each path is its own argument, so its own key.
    gcc(&sb, &["-x", "c", "-c", "/dev/stdin", "-o", "z0.o"])
        .stdin("int yfun(void) { return 1; }\n")
        .status(0);
    assert_eq!(counts(&sb), (1, 6, 0));
}

/// Issue G.2: a tool that is no compiler runs with the caller's stdin.
#[test]
fn issue_g_a_tool_that_is_no_compiler_gets_the_callers_stdin() {
    let sb = Sandbox::new();
    let ran = sb
        .cmd(["--", "sh", "-c", "cat; exit 3"])
        .stdin("data\n")
        .status(3);
    assert_eq!(ran.stdout, "data\n");
}

#[test]
fn several_sources_mix_hits_and_misses() {
    let sb = Sandbox::new();
    sb.write("a.c", "int a(void) { return 1; }\n")
        .write("b.c", "int b(void) { return 2; }\n")
        .write("c.c", "int c(void) { return 3; }\n");
    gcc(&sb, &["-c", "a.c", "b.c", "-O2"]).status(0);
    assert!(sb.path("a.o").exists() && sb.path("b.o").exists());
    let reference = fs::read(sb.path("b.o")).unwrap();
    fs::remove_file(sb.path("b.o")).unwrap();
    gcc(&sb, &["-c", "a.c", "b.c", "c.c", "-O2"]).status(0);
    assert_eq!(fs::read(sb.path("b.o")).unwrap(), reference);
    assert!(sb.path("c.o").exists());
    // The second call: a and b hit, c missed (the call counts as one miss).
    gcc(&sb, &["-c", "c.c", "-O2"]).status(0);
    assert_eq!(counts(&sb), (1, 2, 0));
    sb.write("bad.c", "int x = nope;\n");
    let failed = gcc(&sb, &["-c", "a.c", "bad.c", "-O2"]).status(1);
    assert!(failed.stderr.contains("nope"), "{}", failed.stderr);
}

#[test]
fn clang_compiles_are_cached_apart_from_gcc() {
    if !available(Tool::Clang) {
        return;
    }
    let sb = project();
    let clang = |args: &[&str]| sb.cmd(["clang"]).args(args);
    clang(&ARGS).status(0);
    let first = object(&sb);
    fs::remove_file(sb.path("a.o")).unwrap();
    clang(&ARGS).status(0);
    assert_eq!(object(&sb), first);
    gcc(&sb, &ARGS).status(0);
    assert_eq!(counts(&sb), (1, 2, 0), "gcc is another compiler: a miss");
}

/// The project copied to `one/` and `two/` under the sandbox.
fn two_trees() -> Sandbox {
    let sb = Sandbox::new();
    for tree in ["one", "two"] {
        sb.write(&format!("{tree}/inc/h.h"), "#define H 1\n").write(
            &format!("{tree}/a.c"),
            "#include \"h.h\"\nint f(void) { return H + __LINE__; }\n",
        );
    }
    sb
}

#[test]
fn a_moved_tree_hits_unless_the_object_records_the_directory() {
    let sb = two_trees();
    let plain = ["-c", "a.c", "-Iinc", "-O1", "-o", "a.o"];
    gcc(&sb, &plain).cwd(sb.path("one")).status(0);
    gcc(&sb, &plain).cwd(sb.path("two")).status(0);
    assert_eq!(
        counts(&sb),
        (1, 1, 0),
        "without -g the directory is not in the object"
    );
    let bare = ["-c", "a.c", "-Iinc", "-O1", "-o", "bare.o"];
    sb.program("gcc").args(bare).cwd(sb.path("two")).status(0);
    assert_eq!(
        fs::read(sb.path("two/a.o")).unwrap(),
        fs::read(sb.path("two/bare.o")).unwrap()
    );

    sb.write("two/inc/h.h", "#define H 2\n");
    gcc(&sb, &plain).cwd(sb.path("two")).status(0);
    assert_eq!(counts(&sb), (1, 2, 0), "the moved tree's own header counts");

    let debug = ["-c", "a.c", "-Iinc", "-g", "-o", "a.o"];
    gcc(&sb, &debug).cwd(sb.path("one")).status(0);
    sb.write("two/inc/h.h", "#define H 1\n");
    gcc(&sb, &debug).cwd(sb.path("two")).status(0);
    assert_eq!(counts(&sb), (1, 4, 0), "-g records the directory");

    let map = format!("-fdebug-prefix-map={}=/src", sb.root().display());
    let mapped = ["-c", "a.c", "-Iinc", "-g", &map, "-o", "a.o"];
    gcc(&sb, &mapped).cwd(sb.path("one")).status(0);
    gcc(&sb, &mapped).cwd(sb.path("two")).status(0);
    assert_eq!(counts(&sb), (1, 6, 0), "/src/one and /src/two still differ");
    let bare = ["-c", "a.c", "-Iinc", "-g", &map, "-o", "bare.o"];
    sb.program("gcc").args(bare).cwd(sb.path("two")).status(0);
    assert_eq!(
        fs::read(sb.path("two/a.o")).unwrap(),
        fs::read(sb.path("two/bare.o")).unwrap()
    );
}

#[test]
fn mmd_depfiles_match_the_compiler_and_system_headers_still_count() {
    for compiler in ["gcc", "clang"] {
        if compiler == "clang" && !available(Tool::Clang) {
            return;
        }
        let sb = Sandbox::new();
        sb.write("sys/s.h", "#define S 1\n")
            .write("inc/a_header_with_a_rather_long_name_to_make_lines_wrap.h", "#define L 1\n")
            .write("inc/h.h", "#include <stdlib.h>\n#define H 1\n")
            .write(
                "a.c",
                "#include <stdio.h>\n#include \"a_header_with_a_rather_long_name_to_make_lines_wrap.h\"\n\
                 #include <s.h>\n#include \"h.h\"\nint f(void) { return H + S + L; }\n",
            );
        let with = |depfile: &'static str| {
            vec![
                "-c", "a.c", "-Iinc", "-isystem", "sys", "-MMD", "-MP", "-MF", depfile, "-o", "a.o",
            ]
        };
        sb.program(compiler).args(with("bare.d")).status(0);
        let bare = sb.read("bare.d");
        assert!(!bare.contains("s.h") && !bare.contains("stdio"), "{bare}");
        let run = || sb.cmd([compiler]).args(with("a.d"));
        run().status(0);
        assert_eq!(
            sb.read("a.d"),
            bare,
            "{compiler}: a miss writes what the compiler would"
        );
        fs::remove_file(sb.path("a.d")).unwrap();
        run().status(0);
        assert_eq!(sb.read("a.d"), bare, "{compiler}: a hit too");
        assert_eq!(counts(&sb), (1, 1, 0));
        sb.write("sys/s.h", "#define S 2\n");
        run().status(0);
        assert_eq!(
            counts(&sb),
            (1, 2, 0),
            "{compiler}: a system header -MMD omits changed"
        );
    }
}

/// Runs `args` through `compiler` bare and then through zccache in the same tree; asserts
/// the depfile zccache writes is the compiler's, byte for byte.
fn depfile_as_bare(sb: &Sandbox, compiler: &str, args: &[&str], depfile: &str) {
    sb.program(compiler).args(args).status(0);
    let bare = sb.read(depfile);
    sb.remove(depfile);
    sb.cmd([compiler]).args(args).status(0);
    assert_eq!(sb.read(depfile), bare, "{compiler} {args:?}");
}

#[test]
fn issue_o_depfile_names_and_targets_stay_out_of_the_key() {
    for compiler in ["gcc", "clang"] {
        if compiler == "clang" && !available(Tool::Clang) {
            return;
        }
        let sb = project();
        sb.write(
            "out/a_rather_long_directory_name_to_make_the_rule_wrap/.keep",
            "",
        );
        let md = |rest: &[&'static str]| {
            let mut args = vec!["-O2", "-Iinc", "-c", "a.c"];
            args.extend_from_slice(rest);
            args
        };
        depfile_as_bare(
            &sb,
            compiler,
            &md(&["-MD", "-MF", "z.d", "-o", "z.o"]),
            "z.d",
        );
        depfile_as_bare(
            &sb,
            compiler,
            &md(&["-MD", "-MF", "w.d", "-o", "w.o"]),
            "w.d",
        );
        assert_eq!(counts(&sb), (1, 1, 0), "{compiler}: another -o/-MF hits");
        let long = "out/a_rather_long_directory_name_to_make_the_rule_wrap/v.o";
        depfile_as_bare(
            &sb,
            compiler,
            &md(&["-MD", "-o", long]),
            &long.replace(".o", ".d"),
        );
        let named = [
            "-MD", "-MF", "t.d", "-MT", "x y", "-MQ", "q r$#", "-MT", "t2", "-MQ", "q2",
        ];
        depfile_as_bare(&sb, compiler, &md(&named), "t.d");
        depfile_as_bare(
            &sb,
            compiler,
            &md(&["-MD", "-MQ", long, "-MT", long]),
            "a.d",
        );
        assert_eq!(counts(&sb), (4, 1, 0), "{compiler}: targets are not keyed");
        let user = |d: &'static str, o: &'static str| md(&["-MMD", "-MP", "-MF", d, "-o", o]);
        depfile_as_bare(&sb, compiler, &user("m1.d", "m1.o"), "m1.d");
        depfile_as_bare(&sb, compiler, &user("m2.d", long), "m2.d");
        assert_eq!(counts(&sb), (5, 2, 0), "{compiler}: -MMD -MP too");
        sb.write("inc/h.h", "#define H 2\n");
        depfile_as_bare(
            &sb,
            compiler,
            &md(&["-MD", "-MF", "z.d", "-o", "z.o"]),
            "z.d",
        );
        let mut o1 = md(&["-MD", "-MF", "z.d", "-o", "z.o"]);
        o1[0] = "-O1";
        depfile_as_bare(&sb, compiler, &o1, "z.d");
        assert_eq!(
            counts(&sb),
            (5, 4, 0),
            "{compiler}: a header or a flag still misses"
        );
    }
}

#[test]
fn issue_o_the_depfile_is_never_newer_than_its_object() {
    let sb = Sandbox::new();
    // A large object takes a while to write: a depfile written after it would be newer.
    sb.write(
        "big.c",
        "static const char big[16 << 20] = {V};\nconst char *f(void) { return big; }\n",
    );
    let mtime = |rel: &str| fs::metadata(sb.path(rel)).unwrap().modified().unwrap();
    for round in 0..8 {
        let define = format!("-DV={round}");
        let args = ["-c", "big.c", &define, "-MMD", "-MP", "-o", "big.o"];
        for served in ["miss", "hit"] {
            gcc(&sb, &args).status(0);
            assert!(
                mtime("big.d") <= mtime("big.o"),
                "round {round}, a {served}: the depfile is newer than the object"
            );
        }
    }
    assert_eq!(counts(&sb), (8, 8, 0));
}

#[test]
fn several_architectures_pass_through() {
    if !available(Tool::Clang) {
        return;
    }
    let sb = project();
    let args = [
        "-c", "a.c", "-Iinc", "-arch", "x86_64", "-arch", "arm64", "-o", "a.o",
    ];
    let bare = sb.program("clang").args(args).output();
    let ours = sb.cmd(["clang"]).args(args).output();
    assert_eq!(ours.status.code(), bare.status.code());
    assert_eq!(ours.stderr, bare.stderr);
    assert_eq!(counts(&sb), (0, 0, 1));
    // One architecture is an ordinary, cached compile (clang on Linux warns it is unused).
    let one = ["-c", "a.c", "-Iinc", "-arch", "x86_64", "-o", "a.o"];
    let first = sb.cmd(["clang"]).args(one).status(0);
    let again = sb.cmd(["clang"]).args(one).status(0);
    assert_eq!(again.stderr, first.stderr, "the warning is replayed");
    assert_eq!(counts(&sb), (1, 1, 1));
}

#[test]
fn the_clock_in_a_header_or_source_turns_to_preprocessor_mode() {
    let sb = project();
    sb.write("inc/stamp.h", "static const char *stamp = __TIME__;\n")
        .write(
            "b.c",
            "#include \"stamp.h\"\nconst char *f(void) { return stamp; }\n",
        );
    let args = ["-c", "b.c", "-Iinc", "-o", "b.o"];
    gcc(&sb, &args).status(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    gcc(&sb, &args).status(0);
    assert_eq!(
        counts(&sb),
        (0, 2, 0),
        "__TIME__ in a header: a second later, a miss"
    );

    // 1700000000 is 2023-11-14 22:13:20 UTC: with the clock fixed, the text repeats.
    let fixed = || gcc(&sb, &args).env("SOURCE_DATE_EPOCH", "1700000000");
    fixed().status(0);
    fs::remove_file(sb.path("b.o")).unwrap();
    fixed().status(0);
    assert_eq!(counts(&sb), (1, 3, 0), "same preprocessed text: a hit");
    let object = fs::read(sb.path("b.o")).unwrap();
    assert!(object.windows(8).any(|w| w == b"22:13:20"));
    sb.write(
        "inc/stamp.h",
        "static const char *stamp = __TIME__ \"!\";\n",
    );
    fixed().status(0);
    assert_eq!(counts(&sb), (1, 4, 0), "an edited header changes the text");

    sb.write("c.c", "const char *d = __DATE__;\n");
    let dated = ["-c", "c.c", "-o", "c.o"];
    for _ in 0..2 {
        gcc(&sb, &dated)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .status(0);
    }
    assert_eq!(counts(&sb), (2, 5, 0), "__DATE__ in the source");
}

#[test]
fn a_header_written_during_the_compile_is_never_trusted() {
    let sb = project();
    let script = "#!/bin/sh\nif [ \"$1\" = --version ]; then exec gcc --version; fi\n\
                  gcc \"$@\" && touch inc/h.h\n";
    let path = sb.outside("touching-cc");
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    for _ in 0..3 {
        sb.cmd([&path]).args(ARGS).status(0);
    }
    assert_eq!(counts(&sb), (0, 3, 0));
}

#[test]
fn an_output_with_another_name_is_replaced_not_written_through() {
    let sb = project();
    gcc(&sb, &ARGS).status(0);
    let first = object(&sb);
    fs::hard_link(sb.path("a.o"), sb.path("kept.o")).unwrap();
    sb.write("a.c", "int f(void) { return 7; }\nint g[4096] = {1};\n");
    gcc(&sb, &ARGS).status(0);
    assert_eq!(
        fs::read(sb.path("kept.o")).unwrap(),
        first,
        "the other name keeps its bytes"
    );
    // A rebuild over its own output (one name) writes it in place, same bytes as a copy.
    assert!(object(&sb).len() > first.len());
    sb.write(
        "a.c",
        "#include \"h.h\"\n#include <stdio.h>\nint f(void) { return H; }\n",
    );
    gcc(&sb, &ARGS).status(0);
    assert_eq!(
        object(&sb),
        first,
        "a hit over a longer old object leaves no tail"
    );
    assert_eq!(counts(&sb), (1, 2, 0));
}

/// Two objects and a main, compiled with bare gcc (links are what is under test).
fn objects() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("util.c", "int twice(int x) { return 2 * x; }\n")
        .write("more.c", "int thrice(int x) { return 3 * x; }\n")
        .write(
            "main.c",
            "#include <stdio.h>\nint twice(int);\nint thrice(int);\n\
             int main(void) { printf(\"%d\\n\", twice(thrice(7))); return 0; }\n",
        );
    for source in ["util.c", "more.c", "main.c"] {
        sb.program("gcc").args(["-c", source]).status(0);
    }
    sb
}

#[test]
fn archives_are_cached_when_fresh() {
    let sb = objects();
    let ar = |sb: &Sandbox| {
        sb.cmd(["ar", "rcs", "libx.a", "util.o", "more.o"])
            .status(0)
    };
    ar(&sb);
    let first = fs::read(sb.path("libx.a")).unwrap();
    fs::remove_file(sb.path("libx.a")).unwrap();
    ar(&sb);
    assert_eq!(fs::read(sb.path("libx.a")).unwrap(), first);
    assert_eq!(counts(&sb), (1, 1, 0));
    ar(&sb);
    assert_eq!(
        counts(&sb),
        (1, 1, 1),
        "updating an existing archive passes through"
    );

    fs::remove_file(sb.path("libx.a")).unwrap();
    sb.write("more.c", "int thrice(int x) { return 3 * x + 1; }\n");
    sb.program("gcc").args(["-c", "more.c"]).status(0);
    ar(&sb);
    assert_eq!(counts(&sb), (1, 2, 1), "a changed member misses");
    assert_ne!(fs::read(sb.path("libx.a")).unwrap(), first);
}

#[test]
fn driver_links_are_cached_and_the_binary_runs() {
    let sb = objects();
    let link = |sb: &Sandbox| {
        gcc(
            sb,
            &[
                "main.o",
                "util.o",
                "more.o",
                "-o",
                "app",
                "-Wl,-Map=app.map",
            ],
        )
        .status(0)
    };
    link(&sb);
    let first = fs::read(sb.path("app")).unwrap();
    for file in ["app", "app.map"] {
        fs::remove_file(sb.path(file)).unwrap();
    }
    link(&sb);
    assert_eq!(counts(&sb), (1, 1, 0));
    assert_eq!(fs::read(sb.path("app")).unwrap(), first);
    assert!(
        sb.path("app.map").exists(),
        "the map file is a side file of the link"
    );
    let app = sb.path("app").display().to_string();
    assert_eq!(sb.program(&app).status(0).stdout, "42\n");

    sb.write("util.c", "int twice(int x) { return 2 * x + 1; }\n");
    sb.program("gcc").args(["-c", "util.c"]).status(0);
    link(&sb);
    assert_eq!(counts(&sb), (1, 2, 0), "a changed object misses");
    assert_eq!(sb.program(&app).status(0).stdout, "43\n");
}

#[test]
fn ld_itself_is_cached() {
    let sb = objects();
    let ld = |sb: &Sandbox| {
        sb.cmd(["ld", "-r", "util.o", "more.o", "-o", "both.o"])
            .status(0)
    };
    ld(&sb);
    let first = fs::read(sb.path("both.o")).unwrap();
    fs::remove_file(sb.path("both.o")).unwrap();
    ld(&sb);
    assert_eq!(fs::read(sb.path("both.o")).unwrap(), first);
    assert_eq!(counts(&sb), (1, 1, 0));
}

#[test]
fn a_library_found_by_l_is_an_input() {
    let sb = objects();
    sb.program("ar")
        .args(["rcs", "libx.a", "util.o", "more.o"])
        .status(0);
    let link = |sb: &Sandbox| gcc(sb, &["main.o", "-L.", "-lx", "-o", "app"]).status(0);
    link(&sb);
    sb.write("util.c", "int twice(int x) { return 2 * x + 1; }\n");
    sb.program("gcc").args(["-c", "util.c"]).status(0);
    fs::remove_file(sb.path("libx.a")).unwrap();
    sb.program("ar")
        .args(["rcs", "libx.a", "util.o", "more.o"])
        .status(0);
    link(&sb);
    assert_eq!(counts(&sb), (0, 2, 0), "the library changed under -lx");
    let app = sb.path("app").display().to_string();
    assert_eq!(sb.program(&app).status(0).stdout, "43\n");
    link(&sb);
    assert_eq!(counts(&sb), (1, 2, 0));
}

#[test]
fn a_file_the_link_line_does_not_name_is_not_restored() {
    let sb = objects();
    let gcc_path = sb.outside("bin/gcc");
    fs::write(
        &gcc_path,
        "#!/bin/sh\ncase \"$*\" in *-o*) echo stray > app.log ;; esac\nexec /usr/bin/gcc \"$@\"\n",
    )
    .unwrap();
    fs::set_permissions(&gcc_path, fs::Permissions::from_mode(0o755)).unwrap();
    let link = |sb: &Sandbox| {
        sb.cmd([&gcc_path])
            .args(["main.o", "util.o", "more.o", "-o", "app"])
            .status(0)
    };
    link(&sb);
    assert!(sb.path("app.log").exists());
    fs::remove_file(sb.path("app.log")).unwrap();
    fs::remove_file(sb.path("app")).unwrap();
    link(&sb);
    assert_eq!(counts(&sb), (1, 1, 0));
    assert!(sb.path("app").exists());
    assert!(
        !sb.path("app.log").exists(),
        "not named by the link line: not one of its outputs"
    );
}

/// O.4b: on a terminal (a real pseudo-terminal, `script`) gcc's diagnostics keep their
/// colours through the cache on a miss and a hit; a pipe gets the hit of the same entry
/// (the key does not see the terminal) with no colour sequences, as bare gcc writes them.
#[test]
fn issue_o_colours_reach_a_terminal_and_a_pipe_gets_none() {
    let sb = Sandbox::new();
    sb.write("w.c", "int f(int x) { int unused; return x; }\n");
    let args = ["-Wall", "-c", "w.c", "-o", "w.o"];
    let on_a_terminal = |extra_env: &[(&str, &str)]| {
        let command = format!("{} gcc {}", crate::support::ZCCACHE, args.join(" "));
        let mut cmd = sb
            .program("script")
            .args(["-qec", &command, "/dev/null"])
            .env("TERM", "xterm")
            .env_remove("NO_COLOR")
            .env_remove("GCC_COLORS");
        for (name, value) in extra_env {
            cmd = cmd.env(name, value);
        }
        String::from_utf8_lossy(&cmd.output().stdout).into_owned()
    };
    let miss = on_a_terminal(&[]);
    assert!(
        miss.contains("unused") && miss.contains("\x1b["),
        "{miss:?}"
    );
    let hit = on_a_terminal(&[]);
    assert!(hit.contains("\x1b["), "{hit:?}");
    assert_eq!(counts(&sb), (1, 1, 0));
    let piped = gcc(&sb, &args).env_remove("GCC_COLORS").status(0);
    assert_eq!(counts(&sb), (2, 1, 0), "the pipe hits the terminal's entry");
    let bare = sb
        .program("gcc")
        .args(args)
        .env_remove("GCC_COLORS")
        .status(0);
    assert!(!piped.stderr.contains('\x1b'), "{:?}", piped.stderr);
    assert_eq!(piped.stderr, bare.stderr);
    let refused = on_a_terminal(&[("NO_COLOR", "1")]);
    assert!(
        refused.contains("unused") && !refused.contains("\x1b["),
        "{refused:?}"
    );
}

/// The first reason of each remembered miss of `output`, oldest first.
fn misses_of(sb: &Sandbox, output: &str) -> Vec<String> {
    let why = sb.cmd(["why", output, "--json"]).status(0);
    let mut reasons: Vec<String> = why
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["reasons"][0].as_str().unwrap().to_string()
        })
        .collect();
    reasons.reverse();
    reasons
}

/// A two-source program: `m.c` calls `g()` of `b.c`, which reads `inc/h.h`.
fn two_sources() -> Sandbox {
    let sb = Sandbox::new();
    sb.write(
        "m.c",
        "#include <stdio.h>\nint g(void);\nint main(void) { printf(\"%d\\n\", g()); return 0; }\n",
    )
    .write("b.c", "#include \"h.h\"\nint g(void) { return H; }\n")
    .write("inc/h.h", "#define H 42\n");
    sb
}

/// O.4c: `gcc m.c b.c -o prog` is each source's compile (keyed as `gcc FLAGS -c m.c` is)
/// and the link of their objects: the second run hits all three and the program is the one
/// bare gcc links, byte for byte; an edit recompiles its source only; a header or a flag
/// change misses.
#[test]
fn issue_o_a_compile_and_link_is_its_compiles_and_its_link() {
    let sb = two_sources();
    let line = |opt: &str| ["-Iinc", opt, "m.c", "b.c", "-o", "prog"].map(String::from);
    let build = |sb: &Sandbox, opt: &str| {
        gcc(sb, &line(opt).each_ref().map(String::as_str)).status(0);
        let prog = sb.path("prog").display().to_string();
        sb.program(&prog).status(0).stdout
    };
    assert_eq!(build(&sb, "-O2"), "42\n");
    assert_eq!(counts(&sb), (0, 1, 0));
    sb.program("gcc")
        .args(["-Iinc", "-O2", "m.c", "b.c", "-o", "bare"])
        .status(0);
    let bare = fs::read(sb.path("bare")).unwrap();
    assert_eq!(fs::read(sb.path("prog")).unwrap(), bare);
    fs::remove_file(sb.path("prog")).unwrap();
    assert_eq!(build(&sb, "-O2"), "42\n");
    assert_eq!(counts(&sb), (1, 1, 0), "both compiles and the link hit");
    assert_eq!(fs::read(sb.path("prog")).unwrap(), bare);
    assert_eq!(
        fs::metadata(sb.path("prog")).unwrap().permissions().mode() & 0o111,
        0o111
    );

    sb.write(
        "m.c",
        "#include <stdio.h>\nint g(void);\nint main(void) { printf(\"%d!\\n\", g()); return 0; }\n",
    );
    assert_eq!(build(&sb, "-O2"), "42!\n");
    assert_eq!(misses_of(&sb, "prog(m.c)")[1], "source changed");
    assert_eq!(misses_of(&sb, "prog(b.c)").len(), 1, "b.c hit");
    assert_eq!(misses_of(&sb, "prog")[1], "input changed: m.c (compiled)");

    sb.write("inc/h.h", "#define H 7\n");
    assert_eq!(build(&sb, "-O2"), "7!\n");
    assert_eq!(misses_of(&sb, "prog(b.c)")[1], "header changed: inc/h.h");
    assert_eq!(misses_of(&sb, "prog(m.c)").len(), 2, "m.c hit");
    assert_eq!(build(&sb, "-O1"), "7!\n");
    assert_eq!(counts(&sb), (1, 4, 0));

    // The part's entry is the one the compile written out has.
    gcc(&sb, &["-Iinc", "-O2", "-c", "b.c", "-o", "b.o"]).status(0);
    assert_eq!(counts(&sb), (2, 4, 0));
}

/// O.4c: configure-style probes (`cc conftest.c -o conftest`) through the cache: one that
/// builds runs and hits the second time, one that fails to compile or to link fails as
/// bare cc does and leaves no program; `-lm` links the library.
#[test]
fn issue_o_probes_and_libraries_compile_and_link_in_one_command() {
    let sb = Sandbox::new();
    sb.write("conftest.c", "int main(void) { return 0; }\n")
        .write("bad.c", "int main(void) { return undeclared; }\n")
        .write(
            "undef.c",
            "int nowhere(void);\nint main(void) { return nowhere(); }\n",
        )
        .write(
            "mathy.c",
            "#include <math.h>\n#include <stdio.h>\nvolatile double x = 2.0;\n\
             int main(void) { printf(\"%.3f\\n\", sqrt(x)); return 0; }\n",
        );
    let cc = |args: &[&str]| sb.cmd(["cc"]).args(args);
    for _ in 0..2 {
        cc(&["conftest.c", "-o", "conftest"]).status(0);
        sb.program(&sb.path("conftest").display().to_string())
            .status(0);
    }
    assert_eq!(counts(&sb), (1, 1, 0));

    let failed = cc(&["bad.c", "-o", "conftest2"]).status(1);
    let bare = sb
        .program("cc")
        .args(["bad.c", "-o", "conftest2"])
        .status(1);
    assert_eq!(failed.stderr, bare.stderr);
    cc(&["undef.c", "-o", "conftest3"])
        .status(1)
        .stderr_has("undefined reference");
    assert!(!sb.path("conftest2").exists() && !sb.path("conftest3").exists());

    for _ in 0..2 {
        cc(&["-O2", "mathy.c", "-o", "mathy", "-lm"]).status(0);
    }
    assert_eq!(counts(&sb).0, 2, "the -lm program hit");
    let mathy = sb.path("mathy").display().to_string();
    assert_eq!(sb.program(&mathy).status(0).stdout, "1.414\n");
    sb.program("cc")
        .args(["-O2", "mathy.c", "-o", "bare", "-lm"])
        .status(0);
    assert_eq!(
        fs::read(sb.path("mathy")).unwrap(),
        fs::read(sb.path("bare")).unwrap()
    );
}
