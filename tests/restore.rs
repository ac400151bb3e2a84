//! Issue L, restores: a record — the task's own `F.run` or a result another machine
//! published — is data. Whatever it says, a restore writes only inside its outputs, never
//! through a symlink on disk it did not make, under the user's umask, and whole or not at
//! all; zccache's own temporaries and special files never become outputs. Each case is the
//! forgery or the accident itself, run for real.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};

use crate::remote::Redis;
use crate::support::{Sandbox, Tool, ZCCACHE, available};
use crate::trust::{Machine, entry_with, put_blob};

const TASK: &str = "echo ran >> \"$MARKER\"; mkdir -p out/sub; cp src.txt out/sub/copy.txt";
const ARGS: [&str; 4] = ["--cache", ".cache/t.json", "--output", "out"];

fn project() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("src.txt", "input\n");
    sb
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

fn is_empty_dir(dir: &Path) -> bool {
    fs::read_dir(dir).unwrap().next().is_none()
}

/// The entry of `path` among an output's recorded entries.
fn entry(entries: &[Value], path: &str) -> Value {
    entries
        .iter()
        .find(|e| e["path"] == path)
        .unwrap_or_else(|| panic!("no entry {path}"))
        .clone()
}

/// Edits the entries the task's local record (`.cache/t.json.run`) gives `output` for its
/// last success, as a hand edit would, keeping them sorted.
fn forge_local(sb: &Sandbox, output: &str, forge: impl FnOnce(&mut Vec<Value>)) {
    let path = sb.path(".cache/t.json.run");
    let mut record: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let entries = record["keys"][0]["outputs"][output].as_array_mut().unwrap();
    forge(entries);
    entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
    fs::write(&path, record.to_string()).unwrap();
}

/// The pid of a process that has ended (a maker of temporaries that is gone).
fn dead_pid() -> u32 {
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    pid
}

/// Names under `dir` (recursively) that look like temporaries: zccache's, or any
/// `NAME.tmp.*`.
fn temporaries(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for item in fs::read_dir(dir).unwrap() {
        let item = item.unwrap();
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with(".zccache-tmp.") || name.contains(".tmp.") {
            found.push(item.path().display().to_string());
        } else if item.file_type().unwrap().is_dir() {
            found.extend(temporaries(&item.path()));
        }
    }
    found
}

/// Item 1, local: an entry spelled `sub/./x` or `sub//x` that is a symlink to a directory
/// outside, with a file "below" it, is refused; nothing is written through the link.
#[test]
fn issue_l_spellings_in_a_local_record_never_write_through_a_symlink() {
    let sb = project();
    let victim = sb.outside("victim");
    fs::create_dir_all(&victim).unwrap();
    sb.run_sh(&ARGS, TASK).status(0);
    for spelling in ["sub/./x", "sub//x"] {
        forge_local(&sb, "out", |entries| {
            let copy = entry(entries, "sub/copy.txt");
            let target = victim.to_str().unwrap();
            entries.push(json!({"path": spelling, "kind": {"symlink": target}, "mode": 511}));
            let mut below = copy;
            below["path"] = json!("sub/x/PWNED");
            entries.push(below);
        });
        fs::remove_dir_all(sb.path("out")).unwrap();
        sb.run_sh(&ARGS, TASK)
            .status(0)
            .stderr_has("run (output missing: out; not restored: out: ")
            .stderr_has("is not a plain relative path");
        assert!(is_empty_dir(&victim), "written through the link");
        assert!(!sb.path("out/sub/x").exists());
    }
    assert_eq!(sb.marker_count(), 3);
}

/// A shared result: machine one runs `task` with `--share`; the project is then made a
/// fresh checkout (no outputs, no local state) and the published record edited by
/// `forge` (it gets the record's `outputs` object). Returns the redis server.
fn publish_and_forge(
    sb: &Sandbox,
    args: &[&str],
    task: &str,
    outputs: &[&str],
    forge: impl FnOnce(&mut Value),
) -> Redis {
    let redis = Redis::start().expect("checked by the caller");
    // Blobs stored raw, so the record can be read and forged with redis-cli.
    let one = Machine::new(
        sb,
        "one",
        vec![
            ("ZCCACHE_REMOTE", redis.url()),
            ("ZCCACHE_COMPRESSION", "off".to_string()),
        ],
    );
    shared_run(&one, sb, args, task).status(0);
    one.cmd(["stop"]).status(0);
    for output in outputs {
        fs::remove_dir_all(sb.path(output)).unwrap();
    }
    fs::remove_dir_all(sb.path(".zccache")).unwrap();
    let (key, mut published) = entry_with(&redis, "record-v2");
    let at = published["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .position(|o| o["name"] == "record-v2")
        .unwrap();
    let hex = published["outputs"][at]["blob"]
        .as_str()
        .unwrap()
        .to_string();
    let text = redis.cli(&["GET", &format!("zccache:blob:{hex}")]);
    let mut record: Value = serde_json::from_str(text.trim()).unwrap();
    forge(&mut record["outputs"]);
    for entries in record["outputs"].as_object_mut().unwrap().values_mut() {
        if let Some(entries) = entries.as_array_mut() {
            entries.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        }
    }
    published["outputs"][at] = put_blob(&redis, "record-v2", &record.to_string());
    redis.cli(&["SET", &key, &published.to_string()]);
    redis
}

fn shared_run(machine: &Machine, sb: &Sandbox, args: &[&str], task: &str) -> crate::support::Cmd {
    machine
        .cmd(["run", "--share"])
        .args(args)
        .args(["--", "sh", "-c", task])
        .env("MARKER", sb.marker())
}

/// Item 1, remote: the same trick in a published record.
#[test]
fn issue_l_spellings_in_a_shared_record_never_write_through_a_symlink() {
    if !available(Tool::Redis) {
        return;
    }
    let sb = project();
    let victim = sb.outside("victim");
    fs::create_dir_all(&victim).unwrap();
    let args = ["--output", "out"];
    let redis = publish_and_forge(&sb, &args, TASK, &["out"], |outputs| {
        let entries = outputs["out"].as_array_mut().unwrap();
        let copy = entry(entries, "sub/copy.txt");
        let target = victim.to_str().unwrap();
        entries.push(json!({"path": "sub/./x", "kind": {"symlink": target}, "mode": 511}));
        let mut below = copy;
        below["path"] = json!("sub/x/PWNED");
        entries.push(below);
    });
    let two = Machine::new(&sb, "two", vec![("ZCCACHE_REMOTE", redis.url())]);
    shared_run(&two, &sb, &args, TASK)
        .status(0)
        .stderr_has("zccache: run (");
    assert!(is_empty_dir(&victim), "written through the link");
    assert_eq!(sb.read("out/sub/copy.txt"), "input\n", "the task ran");
    assert_eq!(sb.marker_count(), 2);
}

/// Item 2: a glob output's record names only files its glob matches: a forged
/// `.git/hooks/pre-commit` (0755) and an input (`src.txt`) are refused, the task runs.
#[test]
fn issue_l_a_glob_outputs_record_names_only_what_its_glob_matches() {
    if !available(Tool::Redis) {
        return;
    }
    let sb = project();
    sb.git(&["init", "-q"]).status(0);
    let task = "echo ran >> \"$MARKER\"; mkdir -p gen; echo generated > gen/a.txt";
    let args = ["--output", "gen/*.txt"];
    let redis = publish_and_forge(&sb, &args, task, &["gen"], |outputs| {
        let entries = outputs["gen/*.txt"].as_array_mut().unwrap();
        let made = entry(entries, "gen/a.txt");
        for (path, mode) in [(".git/hooks/pre-commit", 0o755), ("src.txt", 0o644)] {
            let mut forged = made.clone();
            forged["path"] = json!(path);
            forged["mode"] = json!(mode);
            entries.push(forged);
        }
    });
    let two = Machine::new(&sb, "two", vec![("ZCCACHE_REMOTE", redis.url())]);
    shared_run(&two, &sb, &args, task)
        .status(0)
        .stderr_has("zccache: run (");
    assert!(!sb.path(".git/hooks/pre-commit").exists());
    assert_eq!(sb.read("src.txt"), "input\n");
    assert_eq!(sb.read("gen/a.txt"), "generated\n");
    assert_eq!(sb.marker_count(), 2);
}

/// Item 3: a record whose output itself is a symlink to a directory elsewhere is refused;
/// the output never becomes that link, so the task's own run cannot write through it.
#[test]
fn issue_l_a_recorded_output_is_never_a_symlink_out_of_it() {
    let sb = project();
    let victim = sb.outside("somewhere");
    fs::create_dir_all(&victim).unwrap();
    sb.run_sh(&ARGS, TASK).status(0);
    forge_local(&sb, "out", |entries| {
        let target = victim.to_str().unwrap();
        *entries = vec![json!({"path": "", "kind": {"symlink": target}, "mode": 511})];
    });
    fs::remove_dir_all(sb.path("out")).unwrap();
    sb.run_sh(&ARGS, TASK)
        .status(0)
        .stderr_has("run (output missing: out; not restored: ");
    assert!(!sb.path("out").is_symlink());
    assert!(is_empty_dir(&victim));
    assert_eq!(sb.marker_count(), 2);
}

/// Item 4: a restore that cannot be whole leaves nothing: a forged directory (with a file
/// in it) is staged, then a file whose place holds a directory stops the restore, and the
/// staged directory is gone before the task runs.
#[test]
fn issue_l_a_failed_restore_leaves_nothing_behind() {
    let sb = project();
    sb.run_sh(&ARGS, TASK).status(0);
    fs::create_dir(sb.path("out/sub/zzz")).unwrap();
    forge_local(&sb, "out", |entries| {
        let copy = entry(entries, "sub/copy.txt");
        entries.push(json!({"path": "sub/aaa", "kind": "dir", "mode": 493}));
        for path in ["sub/aaa/f", "sub/zzz"] {
            let mut file = copy.clone();
            file["path"] = json!(path);
            entries.push(file);
        }
    });
    sb.run_sh(&ARGS, TASK)
        .status(0)
        .stderr_has("run (output changed: out; not restored: out/sub/zzz is in the way");
    assert!(!sb.path("out/sub/aaa").exists(), "half a restore was left");
    assert!(temporaries(&sb.root()).is_empty());
    assert!(
        sb.path("out/sub/zzz").is_dir(),
        "the user's directory is kept"
    );
    assert_eq!(sb.marker_count(), 2);
}

/// Item 4, without an attacker: an output with read-only directories (like Go's module
/// cache), restored as a normal user, whole or in part; modes are applied last and put
/// back.
#[test]
fn issue_l_read_only_output_directories_are_restored_as_a_normal_user() {
    if !available(Tool::SecondUser) {
        return;
    }
    let sb = Sandbox::new();
    let (work, state) = sb.dirs_of_nobody();
    let as_nobody = |script: &str| {
        sb.as_nobody(&format!("cd {} && {script}", work.display()))
            .env("ZCCACHE_DIR", &state)
            .env("ZCCACHE_NO_DAEMON", "1")
    };
    let task = "mkdir -p out/ro/deep; echo x > out/ro/deep/f; echo y > out/ro/g; \
                chmod 555 out/ro/deep out/ro";
    let run = format!("{ZCCACHE} run --cache .cache/t.json --output out -- sh -c '{task}'");
    as_nobody(&run)
        .status(0)
        .stderr_has("run (no previous success)");
    as_nobody("chmod -R u+w out && rm -rf out").status(0);
    as_nobody(&run)
        .status(0)
        .stderr_has("skip (restored 1 output: out");
    assert_eq!(mode(&work.join("out/ro")), 0o555);
    assert_eq!(mode(&work.join("out/ro/deep")), 0o555);
    assert_eq!(
        fs::read_to_string(work.join("out/ro/deep/f")).unwrap(),
        "x\n"
    );
    as_nobody("chmod u+w out/ro && rm out/ro/g && chmod 555 out/ro").status(0);
    as_nobody(&run)
        .status(0)
        .stderr_has("skip (restored 1 output: out");
    assert_eq!(fs::read_to_string(work.join("out/ro/g")).unwrap(), "y\n");
    assert_eq!(mode(&work.join("out/ro")), 0o555, "the mode is put back");
}

/// Item 5: one rule for the user's own symlinks in an output's path — a restore never
/// writes through one; it says so and the task runs (here the task leaves a symlinked
/// path alone, so anything written there would be the restore's).
#[test]
fn issue_l_a_users_symlink_in_an_outputs_path_is_never_written_through() {
    let cases = [
        ("dist/*.js", "dist", "dist"),
        ("build/dist", "build", "build/dist"),
        ("dist", "dist", "dist"),
    ];
    for (output, linked, made) in cases {
        let sb = project();
        let task = format!(
            "echo ran >> \"$MARKER\"; [ -L {linked} ] || {{ mkdir -p {made}; echo built > {made}/a.js; }}"
        );
        let args = [
            "--cache",
            ".cache/t.json",
            "--output",
            output,
            "--exclude",
            linked,
        ];
        sb.run_sh(&args, &task).status(0);
        let victim = sb.outside("victim");
        fs::create_dir_all(&victim).unwrap();
        fs::write(victim.join("a.js"), "the victim's\n").unwrap();
        fs::remove_dir_all(sb.path(linked)).unwrap();
        std::os::unix::fs::symlink(&victim, sb.path(linked)).unwrap();
        sb.run_sh(&args, &task)
            .status(0)
            .stderr_has("zccache: run (output ")
            .stderr_has("is a symlink the record did not make");
        assert_eq!(fs::read_dir(&victim).unwrap().count(), 1, "{output}");
        assert_eq!(
            fs::read_to_string(victim.join("a.js")).unwrap(),
            "the victim's\n"
        );
        assert!(sb.path(linked).is_symlink(), "{output}: the link is kept");
        assert_eq!(sb.marker_count(), 2, "{output}");
    }
}

/// Item 6: modes from a record are permission bits under the user's umask: 0777 in a
/// record gives 0755 under umask 022, for files and directories.
#[test]
fn issue_l_modes_from_a_record_follow_the_umask() {
    let sb = project();
    sb.run_sh(&ARGS, TASK).status(0);
    forge_local(&sb, "out", |entries| {
        for e in entries.iter_mut() {
            e["mode"] = json!(0o777);
        }
    });
    fs::remove_dir_all(sb.path("out")).unwrap();
    let script = format!(
        "umask 022; exec {ZCCACHE} run {} -- sh -c '{TASK}'",
        ARGS.join(" ")
    );
    sb.program("sh")
        .args(["-c", &script])
        .status(0)
        .stderr_has("skip (restored 1 output: out");
    for path in ["out", "out/sub", "out/sub/copy.txt"] {
        assert_eq!(mode(&sb.path(path)), 0o755, "{path}");
    }
}

/// Item 7: temporaries of a restore that was killed are removed by the next listing (those
/// of a live process are left alone) and never recorded as outputs.
#[test]
fn issue_l_temporaries_of_a_dead_restore_are_swept_and_never_outputs() {
    let sb = project();
    sb.run_sh(&ARGS, TASK).status(0);
    let dead = dead_pid();
    let stale_file = sb.path(&format!("out/sub/.zccache-tmp.{dead}.00aa"));
    fs::write(&stale_file, "half").unwrap();
    let stale_tree = sb.path(&format!("out/.zccache-tmp.{dead}.00bb"));
    fs::create_dir_all(stale_tree.join("ro")).unwrap();
    fs::set_permissions(stale_tree.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
    let live = sb.path(&format!("out/.zccache-tmp.{}.00cc", std::process::id()));
    fs::write(&live, "in flight").unwrap();
    sb.remove("out/sub/copy.txt");
    sb.run_sh(&ARGS, TASK)
        .status(0)
        .stderr_has("skip (restored 1 output: out");
    assert!(!stale_file.exists() && !stale_tree.exists());
    assert!(live.exists(), "a live process's temporary is left alone");
    let forced = [&ARGS[..], &["--force"]].concat();
    sb.run_sh(&forced, TASK).status(0);
    assert!(!sb.read(".cache/t.json.run").contains("zccache-tmp"));
}

/// Item 7 for real: `kill -9` in the middle of restoring a 200 MB output; the next run
/// restores it whole and leaves no temporary behind.
#[test]
fn issue_l_a_restore_killed_midway_is_mended_by_the_next_run() {
    let sb = project();
    let task = "echo ran >> \"$MARKER\"; mkdir -p out; head -c 200000000 /dev/zero > out/big.bin";
    let args = ["--no-daemon", "--cache", ".cache/t.json", "--output", "out"];
    sb.run_sh(&args, task).status(0);
    fs::remove_dir_all(sb.path("out")).unwrap();
    let mut restoring = sb.run_sh(&args, task).spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while temporaries(&sb.root()).is_empty() && std::time::Instant::now() < deadline {
        if restoring.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    restoring.kill().unwrap();
    restoring.wait().unwrap();
    sb.run_sh(&args, task).status(0).stderr_has("skip (");
    assert_eq!(
        fs::metadata(sb.path("out/big.bin")).unwrap().len(),
        200_000_000
    );
    let mut left = temporaries(&sb.path("out"));
    left.extend(
        fs::read_dir(sb.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(".zccache-tmp.")),
    );
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(sb.marker_count(), 1);
}

/// Item 8: a FIFO the user adds to an output directory neither runs the task nor fails the
/// check; a FIFO the task makes is named once as not cached, and the task then skips.
#[test]
fn issue_l_special_files_in_outputs_are_left_out() {
    let sb = project();
    sb.run_sh(&ARGS, TASK).status(0);
    sb.program("mkfifo").args(["out/sub/user.fifo"]).status(0);
    sb.run_sh(&ARGS, TASK)
        .status(0)
        .stderr_has("skip (")
        .stderr_lacks("cannot fingerprint");
    let task =
        "echo ran >> \"$MARKER\"; mkdir -p made; rm -f made/p; mkfifo made/p; echo x > made/f";
    let args = ["--cache", ".cache/f.json", "--output", "made"];
    sb.run_sh(&args, task)
        .status(0)
        .stderr_has("note: not cached: made/p")
        .stderr_lacks("cannot record");
    sb.run_sh(&args, task).status(0).stderr_has("skip (");
    assert_eq!(sb.marker_count(), 2);
}

/// Review: a glob output's symlink leads only to a path its glob matches. A forged
/// `gen/a.txt -> main.rs` (an input beside it, inside the glob's literal directory) or,
/// under `**/*.txt`, `-> ../main.rs` is refused; were it restored, the task's own next run
/// (`echo ... > gen/a.txt`) would write through it into the input.
#[test]
fn issue_l_review_a_glob_outputs_symlink_leads_only_to_what_its_glob_matches() {
    for (glob, target) in [("gen/*.txt", "main.rs"), ("**/*.txt", "../main.rs")] {
        let sb = project();
        sb.write("gen/main.rs", "fn main() {}\n");
        sb.write("main.rs", "fn main() {}\n");
        let task = "echo ran >> \"$MARKER\"; echo generated > gen/a.txt";
        let args = ["--cache", ".cache/t.json", "--output", glob];
        sb.run_sh(&args, task).status(0);
        forge_local(&sb, glob, |entries| {
            let made = entries
                .iter_mut()
                .find(|e| e["path"] == "gen/a.txt")
                .unwrap();
            made["kind"] = json!({ "symlink": target });
        });
        sb.remove("gen/a.txt");
        sb.run_sh(&args, task)
            .status(0)
            .stderr_has("is a symlink leading out of the output");
        for input in ["gen/main.rs", "main.rs"] {
            assert_eq!(sb.read(input), "fn main() {}\n", "{glob}: {input}");
        }
        assert!(!sb.path("gen/a.txt").is_symlink(), "{glob}");
        assert_eq!(sb.marker_count(), 2, "{glob}");
    }
}

/// Review: missing sibling directories where one name begins the other (`a` and `a-b`,
/// whose entries sort `a`, `a-b`, `a-b/y`, `a/x`) are both restored; the second used to
/// hide the first, whose file was then looked for on disk ("a: No such file").
#[test]
fn issue_l_review_missing_directories_sharing_a_prefix_are_restored() {
    let sb = project();
    let task = "echo ran >> \"$MARKER\"; mkdir -p out/a out/a-b; echo 1 > out/a/x; \
                echo 2 > out/a-b/y";
    sb.run_sh(&ARGS, task).status(0);
    for dir in ["out/a", "out/a-b"] {
        fs::remove_dir_all(sb.path(dir)).unwrap();
    }
    sb.run_sh(&ARGS, task)
        .status(0)
        .stderr_has("skip (restored 1 output: out");
    assert_eq!(sb.read("out/a/x"), "1\n");
    assert_eq!(sb.read("out/a-b/y"), "2\n");
    assert_eq!(sb.marker_count(), 1);
}

/// Review: outputs that overlap (`dist` with `dist/sub`, or with `dist/*.map`) are
/// restored together, whole: each used to make its own `dist` (or `dist/sub`), and the
/// second rename met the first ("File exists"), so they never restored.
#[test]
fn issue_l_review_overlapping_outputs_are_restored_together() {
    let task = "echo ran >> \"$MARKER\"; mkdir -p dist/sub; echo 1 > dist/a.map; \
                echo 2 > dist/sub/b.js";
    for inner in ["dist/sub", "dist/*.map"] {
        let sb = project();
        let args = [
            "--cache",
            ".cache/t.json",
            "--output",
            "dist",
            "--output",
            inner,
        ];
        sb.run_sh(&args, task).status(0);
        // All gone, then the inner part of each: both outputs are restored each time.
        let gone: [&[&str]; 2] = [&["dist"], &["dist/sub", "dist/a.map"]];
        for paths in gone {
            for path in paths {
                match sb.path(path).is_dir() {
                    true => fs::remove_dir_all(sb.path(path)).unwrap(),
                    false => sb.remove(path),
                }
            }
            sb.run_sh(&args, task)
                .status(0)
                .stderr_has("skip (restored 2 outputs: ");
            assert_eq!(sb.read("dist/a.map"), "1\n", "{inner}, {paths:?}");
            assert_eq!(sb.read("dist/sub/b.js"), "2\n", "{inner}, {paths:?}");
        }
        assert_eq!(sb.marker_count(), 1, "{inner}");
    }
}

/// Review: a restore keeps a directory's setgid bit (a group-shared tree, `chmod 2775`): a
/// directory it makes there has it as the task's `mkdir` gave it, and one whose mode it
/// puts back keeps it. Only the permission bits come from the record.
#[test]
fn issue_l_review_a_restore_keeps_setgid_directories_setgid() {
    let sb = project();
    fs::create_dir(sb.path("out")).unwrap();
    fs::set_permissions(sb.path("out"), fs::Permissions::from_mode(0o2775)).unwrap();
    sb.run_sh(&ARGS, TASK).status(0);
    let made = mode(&sb.path("out/sub"));
    assert_eq!(made & 0o2000, 0o2000, "mkdir in a setgid directory");
    fs::remove_dir_all(sb.path("out/sub")).unwrap();
    sb.run_sh(&ARGS, TASK)
        .status(0)
        .stderr_has("skip (restored 1 output: out");
    assert_eq!(
        mode(&sb.path("out/sub")),
        made,
        "a directory the restore makes"
    );
    fs::set_permissions(sb.path("out/sub"), fs::Permissions::from_mode(0o2700)).unwrap();
    sb.run_sh(&ARGS, TASK)
        .status(0)
        .stderr_has("skip (restored 1 output: out");
    assert_eq!(
        mode(&sb.path("out/sub")),
        made,
        "a mode the restore puts back"
    );
    assert_eq!(sb.marker_count(), 1);
}

/// Review: a tree a killed restore staged beside a missing output is removed by the next
/// run even when that run restores nothing (`--force`, or the output made another way
/// meanwhile); only a restore of the missing output looked for it, so it stayed for good.
#[test]
fn issue_l_review_a_killed_restores_staged_tree_goes_with_the_next_run() {
    let sb = project();
    sb.run_sh(&ARGS, TASK).status(0);
    let dead = dead_pid();
    let staged = sb.path(&format!(".zccache-tmp.{dead}.00dd"));
    fs::create_dir_all(staged.join("sub")).unwrap();
    fs::write(staged.join("sub/copy.txt"), "half").unwrap();
    let forced = [&ARGS[..], &["--force"]].concat();
    sb.run_sh(&forced, TASK).status(0);
    assert!(!staged.exists(), "the staged tree was left");
    assert_eq!(sb.marker_count(), 2);
}
