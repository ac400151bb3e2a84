//! Why a compile missed (issue K.1): each reason produced by a real gcc compile, on the
//! journal line and in `zccache why OUTPUT`.

use std::os::unix::fs::PermissionsExt;

use crate::support::Sandbox;

/// A compiler `cc-x` that reports `version` to `--version` and compiles with gcc.
fn fake_compiler(sb: &Sandbox, version: &str) -> String {
    let path = sb.outside("bin/cc-x");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo '{version}'; exit 0; fi\n\
             exec gcc \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn every_kind_of_change_is_named_newest_first() {
    let sb = Sandbox::new();
    sb.write("second/config.h", "#define N 1\n").write(
        "src/a.c",
        "#include \"config.h\"\nint f(void) { return N; }\n",
    );
    std::fs::create_dir_all(sb.path("first")).unwrap();
    std::fs::create_dir_all(sb.path("build")).unwrap();
    let session = sb
        .cmd(["session-start", "--journal", "j.jsonl"])
        .status(0)
        .json();
    let id = session["session_id"].as_str().unwrap().to_string();
    let mut compiler = fake_compiler(&sb, "fake 1");
    let compile = |compiler: &str, opt: &str, cpath: Option<&str>| {
        let mut cmd = sb
            .cmd([
                compiler,
                "-c",
                opt,
                "-Ifirst",
                "-Isecond",
                "src/a.c",
                "-o",
                "build/a.o",
            ])
            .env("ZCCACHE_SESSION_ID", &id);
        if let Some(dir) = cpath {
            cmd = cmd.env("CPATH", dir);
        }
        cmd.status(0);
    };
    compile(&compiler, "-O2", None);
    sb.write("second/config.h", "#define N 2\n");
    compile(&compiler, "-O2", None);
    sb.write("first/config.h", "#define N 3\n");
    compile(&compiler, "-O2", None);
    compile(&compiler, "-O3", None);
    compile(&compiler, "-O3", Some("/nonexistent"));
    sb.write(
        "src/a.c",
        "#include \"config.h\"\nint f(void) { return N + 1; }\n",
    );
    compile(&compiler, "-O3", Some("/nonexistent"));
    compiler = fake_compiler(&sb, "fake 2");
    compile(&compiler, "-O3", Some("/nonexistent"));
    // Unchanged: a hit, which records nothing.
    compile(&compiler, "-O3", Some("/nonexistent"));

    let expected = [
        "first compile of this output".to_string(),
        "header changed: second/config.h".to_string(),
        "new header shadows second/config.h: first/config.h".to_string(),
        "argument changed: -O2 -> -O3".to_string(),
        "env CPATH changed".to_string(),
        "source changed".to_string(),
        format!("compiler changed: {compiler} (fake 2)"),
    ];
    let why = sb.cmd(["why", "build/a.o", "--json"]).status(0);
    let newest_first: Vec<String> = why
        .stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["reasons"][0].as_str().unwrap().to_string()
        })
        .collect();
    let mut oldest_first = newest_first.clone();
    oldest_first.reverse();
    assert_eq!(oldest_first, expected, "{}", why.stdout);
    let text = sb.cmd(["why", "build/a.o"]).status(0).stdout;
    assert!(
        text.starts_with("build/a.o: 7 recent misses, newest first"),
        "{text}"
    );
    assert!(text.contains("compiler changed"), "{text}");

    sb.cmd(["session-end", &id]).status(0);
    let journal: Vec<serde_json::Value> = sb
        .read("j.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reasons: Vec<&str> = journal
        .iter()
        .filter(|l| l["outcome"] == "miss")
        .map(|l| l["miss_reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let hit = journal.last().unwrap();
    assert_eq!(hit["outcome"], "hit");
    assert!(
        hit.get("miss_reason").is_none() && hit.get("changed").is_none(),
        "{hit}"
    );

    let none = sb.cmd(["why", "build/other.o"]).status(1);
    assert!(
        none.stdout.contains("no miss or passthrough recorded"),
        "{}",
        none.stdout
    );
}

#[test]
fn a_link_miss_names_the_input_that_changed() {
    let sb = Sandbox::new();
    sb.write("util.c", "int twice(int x) { return 2 * x; }\n")
        .write(
            "main.c",
            "int twice(int);\nint main(void) { return twice(0); }\n",
        );
    let gcc = |args: &[&str]| sb.cmd(["gcc"]).args(args).status(0);
    gcc(&["-c", "util.c", "-o", "util.o"]);
    gcc(&["-c", "main.c", "-o", "main.o"]);
    gcc(&["main.o", "util.o", "-o", "app"]);
    sb.write("util.c", "int twice(int x) { return 3 * x + 1; }\n");
    gcc(&["-c", "util.c", "-o", "util.o"]);
    gcc(&["main.o", "util.o", "-o", "app"]);
    gcc(&["main.o", "util.o", "-o", "app", "-O2"]);
    let out = sb.cmd(["why", "app"]).status(0).stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "app: 3 recent misses, newest first", "{out}");
    assert!(lines[1].ends_with("argument changed: added -O2"), "{out}");
    assert!(lines[2].ends_with("input changed: util.o"), "{out}");
    assert!(lines[3].ends_with("first compile of this output"), "{out}");
    let object = sb.cmd(["why", "util.o"]).status(0).stdout;
    assert!(object.contains("source changed"), "{object}");
}
