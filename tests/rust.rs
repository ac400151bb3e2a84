//! The Rust compile cache through `RUSTC_WRAPPER=zccache` with real cargo builds of a small
//! workspace: two library crates, a registry dependency (cfg-if, from the local cargo
//! registry, offline), a proc-macro crate and a binary (both linked by cc: cached too,
//! keyed on the linker as well).

use std::collections::BTreeSet;
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;

use crate::support::{Cmd, Sandbox, Tool, ZCCACHE, available};

/// (hits, misses) so far.
fn counts(sb: &Sandbox) -> (u64, u64) {
    let d = sb.cmd(["status", "--json"]).status(0).json()["daemon"].clone();
    let n = |k: &str| d[k].as_u64().unwrap_or_else(|| panic!("{k} in {d}"));
    (n("cache_hits"), n("cache_misses"))
}

/// `cargo ARGS` in the workspace through the cache, offline, with `CARGO_INCREMENTAL=0`
/// (the setting sccache users keep; `cargo_default` has cargo's own).
fn cargo(sb: &Sandbox, args: &[&str]) -> Cmd {
    sb.program("cargo")
        .args(args)
        .args(["--offline", "--quiet"])
        .env("RUSTC_WRAPPER", ZCCACHE)
        .env("CARGO_INCREMENTAL", "0")
        .env("CARGO_TARGET_DIR", sb.path("target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .env_remove("ZC_GREETING")
}

fn workspace() -> Sandbox {
    let sb = Sandbox::new();
    let package = |name: &str, deps: &str| {
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}"
        )
    };
    sb.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"alpha\", \"beta\", \"pm\", \"app\"]\nresolver = \"2\"\n",
    )
    .write("alpha/Cargo.toml", package("alpha", "cfg-if = \"1\"\n"))
    .write(
        "alpha/src/lib.rs",
        "pub fn greeting() -> &'static str {\n    option_env!(\"ZC_GREETING\").unwrap_or(\"hello\")\n}\n\
         pub fn noisy() -> u32 {\n    let unused = 1;\n    2\n}\n\
         cfg_if::cfg_if! {\n    if #[cfg(unix)] { pub fn os() -> &'static str { \"unix\" } }\n    \
         else { pub fn os() -> &'static str { \"other\" } }\n}\n",
    )
    .write(
        "pm/Cargo.toml",
        format!("{}\n[lib]\nproc-macro = true\n", package("pm", "")),
    )
    .write(
        "pm/src/lib.rs",
        "use proc_macro::TokenStream;\n#[proc_macro]\npub fn answer(_: TokenStream) -> TokenStream {\n    \"42\".parse().unwrap()\n}\n",
    )
    .write(
        "beta/Cargo.toml",
        package("beta", "alpha = { path = \"../alpha\" }\npm = { path = \"../pm\" }\n"),
    )
    .write(
        "beta/src/lib.rs",
        "pub const ANSWER: u32 = pm::answer!();\npub fn message() -> String {\n    format!(\"{} from {}\", alpha::greeting(), alpha::os())\n}\n",
    )
    .write("app/Cargo.toml", package("app", "beta = { path = \"../beta\" }\n"))
    .write(
        "app/src/main.rs",
        "fn main() {\n    println!(\"{} {}\", beta::message(), beta::ANSWER);\n}\n",
    );
    sb
}

fn run_app(sb: &Sandbox) -> String {
    let app = sb.path("target/debug/app").display().to_string();
    sb.program(&app).status(0).stdout
}

fn clean(sb: &Sandbox) {
    cargo(sb, &["clean"]).status(0);
}

#[test]
fn a_clean_rebuild_hits_every_crate_and_runs() {
    let sb = workspace();
    let first = cargo(&sb, &["build"]).status(0);
    assert!(first.stderr.contains("unused variable"), "{}", first.stderr);
    assert_eq!(
        counts(&sb),
        (0, 5),
        "cfg_if, alpha, pm, beta and app stored"
    );
    assert_eq!(run_app(&sb), "hello from unix 42\n");

    clean(&sb);
    let second = cargo(&sb, &["build"]).status(0);
    assert_eq!(counts(&sb), (5, 5), "all five from the cache");
    assert!(
        second.stderr.contains("unused variable"),
        "warnings replayed: {}",
        second.stderr
    );
    assert_eq!(run_app(&sb), "hello from unix 42\n");

    let listed = sb.cmd(["rust-artifacts", "--json"]).status(0).stdout;
    let crates: BTreeSet<String> = listed
        .lines()
        .map(|line| {
            let a: serde_json::Value = serde_json::from_str(line).unwrap();
            let (types, files) = match a["crate_name"].as_str().unwrap() {
                "pm" => (["proc-macro"], 2),
                "app" => (["bin"], 2),
                _ => (["lib"], 3),
            };
            assert_eq!(a["crate_types"], serde_json::json!(types), "{a}");
            assert_eq!(a["outputs"].as_array().unwrap().len(), files, "{a}");
            assert!(a["size"].as_u64().unwrap() > 0);
            a["crate_name"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        crates,
        BTreeSet::from(["alpha", "app", "beta", "cfg_if", "pm"].map(String::from))
    );
}

#[test]
fn an_edit_misses_its_crate_and_dependents_only() {
    let sb = workspace();
    cargo(&sb, &["build"]).status(0);
    clean(&sb);
    sb.write(
        "alpha/src/lib.rs",
        sb.read("alpha/src/lib.rs").replace("\"hello\"", "\"hi\""),
    );
    cargo(&sb, &["build"]).status(0);
    assert_eq!(
        counts(&sb),
        (2, 8),
        "cfg_if and pm hit; alpha, beta and app miss"
    );
    assert_eq!(run_app(&sb), "hi from unix 42\n");
}

#[test]
fn rustflags_and_env_vars_read_by_env_macros_are_keyed() {
    let sb = workspace();
    cargo(&sb, &["build"]).status(0);
    clean(&sb);
    cargo(&sb, &["build"])
        .env("RUSTFLAGS", "-C opt-level=1")
        .status(0);
    assert_eq!(counts(&sb), (0, 10), "other RUSTFLAGS: all miss");

    cargo(&sb, &["build"])
        .env("ZC_GREETING", "bonjour")
        .status(0);
    assert_eq!(
        counts(&sb),
        (2, 13),
        "option_env! var set: cfg_if and pm (without RUSTFLAGS) hit, alpha, beta, app miss"
    );
    assert_eq!(run_app(&sb), "bonjour from unix 42\n");
    cargo(&sb, &["build"]).status(0);
    assert_eq!(
        counts(&sb),
        (5, 13),
        "unset again: the first results come back"
    );
    assert_eq!(run_app(&sb), "hello from unix 42\n");
}

#[test]
fn cargo_check_results_are_cached_too() {
    let sb = workspace();
    cargo(&sb, &["check"]).status(0);
    clean(&sb);
    let again = cargo(&sb, &["check"]).status(0);
    assert_eq!(
        counts(&sb),
        (6, 6),
        "four crates' metadata, pm's and its library"
    );
    assert!(again.stderr.contains("unused variable"), "{}", again.stderr);
}

#[test]
fn another_linker_misses_what_it_links() {
    let sb = workspace();
    cargo(&sb, &["build"]).status(0);
    clean(&sb);
    let bin = sb.outside("other-cc");
    std::fs::create_dir_all(&bin).unwrap();
    let cc = bin.join("cc");
    std::fs::write(
        &cc,
        "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'other cc 9'; exit 0; fi\nexec /usr/bin/cc \"$@\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&cc, Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    cargo(&sb, &["build"]).env("PATH", path).status(0);
    assert_eq!(
        counts(&sb),
        (3, 7),
        "pm and app are linked by another cc: they miss"
    );
    assert_eq!(run_app(&sb), "hello from unix 42\n");
    let app = dep_file(&sb, "app-", None);
    let why = sb.cmd(["why", &app]).status(0).stdout;
    let newest = why.lines().nth(1).unwrap_or_default();
    assert!(newest.ends_with("linker cc changed"), "{why}");
}

#[test]
fn cargo_clippy_runs_its_driver_uncached() {
    let sb = workspace();
    let linted = cargo(&sb, &["clippy"]).status(0);
    assert!(
        linted.stderr.contains("unused variable"),
        "{}",
        linted.stderr
    );
    let journal = std::fs::read_to_string(sb.state().join("logs/compile_journal.jsonl")).unwrap();
    let driver_lines: Vec<serde_json::Value> = journal
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|line: &serde_json::Value| {
            line["compiler"]
                .as_str()
                .unwrap()
                .ends_with("clippy-driver")
        })
        .collect();
    assert!(
        driver_lines.len() >= 4,
        "alpha, pm, beta and app: {journal}"
    );
    for line in driver_lines {
        assert_eq!(line["outcome"], "passthrough", "{line}");
    }
}

#[test]
fn a_native_library_a_dependency_only_names_is_keyed_for_the_final_link() {
    let sb = Sandbox::new();
    sb.write(
        "Cargo.toml",
        "[workspace]\nmembers = [\"native\", \"app\"]\nresolver = \"2\"\n",
    )
    .write(
        "native/Cargo.toml",
        "[package]\nname = \"native\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .write("native/greet.c", "int greet(void) { return 1; }\n")
    .write(
        "native/build.rs",
        "use std::process::Command;\nfn main() {\n    let out = std::env::var(\"OUT_DIR\").unwrap();\n    \
         let obj = format!(\"{out}/greet.o\");\n    \
         assert!(Command::new(\"cc\").args([\"-c\", \"greet.c\", \"-o\", &obj]).status().unwrap().success());\n    \
         let lib = format!(\"{out}/libgreet.a\");\n    let _ = std::fs::remove_file(&lib);\n    \
         assert!(Command::new(\"ar\").args([\"rcs\", &lib, &obj]).status().unwrap().success());\n    \
         println!(\"cargo:rustc-link-search=native={out}\");\n    \
         println!(\"cargo:rustc-link-lib=greet\");\n    println!(\"cargo:rerun-if-changed=greet.c\");\n}\n",
    )
    .write(
        "native/src/lib.rs",
        "extern \"C\" {\n    fn greet() -> i32;\n}\npub fn value() -> i32 {\n    unsafe { greet() }\n}\n",
    )
    .write(
        "app/Cargo.toml",
        "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\nnative = { path = \"../native\" }\n",
    )
    .write(
        "app/src/main.rs",
        "fn main() {\n    println!(\"{}\", native::value());\n}\n",
    );
    cargo(&sb, &["build"]).status(0);
    assert_eq!(run_app(&sb), "1\n");
    sb.write("native/greet.c", "int greet(void) { return 2; }\n");
    cargo(&sb, &["build"]).status(0);
    assert_eq!(
        run_app(&sb),
        "2\n",
        "the new libgreet.a is linked, not a stale program"
    );
}

/// `cargo ARGS` with cargo's default settings: workspace members compile incrementally.
fn cargo_default(sb: &Sandbox, args: &[&str]) -> Cmd {
    cargo(sb, args).env_remove("CARGO_INCREMENTAL")
}

/// Sets alpha's greeting to `word`.
fn greet(sb: &Sandbox, word: &str) {
    let source = sb.read("alpha/src/lib.rs");
    let start = source.find("unwrap_or(\"").unwrap() + "unwrap_or(\"".len();
    let end = start + source[start..].find('"').unwrap();
    sb.write(
        "alpha/src/lib.rs",
        format!("{}{word}{}", &source[..start], &source[end..]),
    );
}

#[test]
fn default_settings_cache_workspace_crates_compiled_incrementally() {
    let sb = workspace();
    let build = || cargo_default(&sb, &["build"]).status(0);
    let hits_and_misses_of = |run: &dyn Fn()| {
        let before = counts(&sb);
        run();
        let after = counts(&sb);
        (after.0 - before.0, after.1 - before.1)
    };
    build();
    assert_eq!(counts(&sb), (0, 5));
    assert!(
        sb.path("target/debug/incremental").is_dir(),
        "cargo did not compile incrementally"
    );
    clean(&sb);
    assert_eq!(
        hits_and_misses_of(&|| drop(build())),
        (5, 0),
        "all five hit"
    );
    assert_eq!(run_app(&sb), "hello from unix 42\n");

    // An edit misses alpha and its dependents; the others hit.
    clean(&sb);
    greet(&sb, "hi");
    assert_eq!(hits_and_misses_of(&|| drop(build())), (2, 3));
    assert_eq!(run_app(&sb), "hi from unix 42\n");
    // Back as it was: cargo rebuilds alpha, beta and app, all from the cache.
    greet(&sb, "hello");
    assert_eq!(hits_and_misses_of(&|| drop(build())), (3, 0));
    assert_eq!(run_app(&sb), "hello from unix 42\n");

    // The incremental state deleted: a real compile starts cold and is right.
    std::fs::remove_dir_all(sb.path("target/debug/incremental")).unwrap();
    greet(&sb, "hey");
    assert_eq!(hits_and_misses_of(&|| drop(build())), (0, 3));
    assert_eq!(run_app(&sb), "hey from unix 42\n");
    // A hit leaves the state of "hey" behind (rustc's own state is never replaced by the
    // one kept with the hit); the next real compile runs on that stale state and is right,
    // and so are the hits after it.
    greet(&sb, "hello");
    let own_state = sessions(&sb);
    assert_eq!(hits_and_misses_of(&|| drop(build())), (3, 0));
    assert_eq!(sessions(&sb), own_state);
    assert_eq!(run_app(&sb), "hello from unix 42\n");
    greet(&sb, "yo");
    assert_eq!(hits_and_misses_of(&|| drop(build())), (0, 3));
    assert_eq!(run_app(&sb), "yo from unix 42\n");
    greet(&sb, "hey");
    assert_eq!(hits_and_misses_of(&|| drop(build())), (3, 0));
    assert_eq!(run_app(&sb), "hey from unix 42\n");
}

#[test]
fn default_settings_test_and_check_rounds_follow_the_source() {
    let sb = workspace();
    sb.write(
        "alpha/tests/greets.rs",
        "#[test]\nfn greets() {\n    assert_eq!(alpha::greeting(), \"hello\");\n}\n",
    );
    cargo_default(&sb, &["test"]).status(0);
    clean(&sb);
    let before = counts(&sb);
    cargo_default(&sb, &["test"]).status(0);
    assert!(
        counts(&sb).0 > before.0,
        "the libraries of the test round hit"
    );
    // alpha's library (a hit: its session written back) and its unit-test harness (compiled
    // for real, passed through) each have a session, though both are crate `alpha` and
    // compiled at the same time in the first round.
    let alphas = sessions(&sb)
        .into_iter()
        .filter(|(dir, found)| dir.starts_with("alpha-") && !found.is_empty())
        .count();
    assert_eq!(alphas, 2, "{:?}", sessions(&sb));
    greet(&sb, "yo");
    cargo_default(&sb, &["test"])
        .status(101)
        .stderr_has("test failed, to rerun pass `-p alpha --test greets`");
    greet(&sb, "hello");
    cargo_default(&sb, &["test"]).status(0);

    clean(&sb);
    cargo_default(&sb, &["check"]).status(0);
    clean(&sb);
    let before = counts(&sb);
    cargo_default(&sb, &["check"]).status(0);
    let after = counts(&sb);
    assert_eq!(after.1, before.1, "a check after clean misses nothing");
    assert!(after.0 >= before.0 + 4, "{before:?} -> {after:?}");
}

/// The toolchain's real rustc (not rustup's proxy).
pub(crate) fn real_rustc() -> String {
    String::from_utf8(
        std::process::Command::new("rustup")
            .args(["which", "rustc"])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .ok()
    .map(|s| s.trim().to_string())
    .filter(|s| !s.is_empty())
    .unwrap_or_else(|| "rustc".to_string())
}

/// Compiles `src/lib.rs` as crate `one` into `out/` through the wrapper, with `rustc`.
fn compile_one(sb: &Sandbox, rustc: &str) -> crate::support::Ran {
    sb.cmd([rustc])
        .args([
            "--crate-name",
            "one",
            "--edition=2021",
            "src/lib.rs",
            "--crate-type",
            "lib",
            "--emit=dep-info,metadata,link",
            "--out-dir",
            "out",
        ])
        .env(
            "CARGO_MAKEFLAGS",
            "-j --jobserver-fds=3,4 --jobserver-auth=3,4",
        )
        .status(0)
}

#[test]
fn an_output_dated_after_rustc_ended_is_not_stored() {
    // A `rustc` whose rlib is touched into the future once the real one has written it:
    // the store, which runs after the wrapper is answered, must not take it for rustc's.
    let sb = Sandbox::new();
    let fake = sb.outside("bin/rustc");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh
{real} \"$@\" || exit $?
             case \"$*\" in *--crate-name*) touch -d '+1 hour' out/libone.rlib;; esac\n",
            real = real_rustc()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, Permissions::from_mode(0o755)).unwrap();
    sb.write("src/lib.rs", "pub fn one() -> u32 {\n    1\n}\n");
    std::fs::create_dir(sb.path("out")).unwrap();
    let rustc = fake.display().to_string();
    compile_one(&sb, &rustc);
    std::fs::remove_dir_all(sb.path("out")).unwrap();
    std::fs::create_dir(sb.path("out")).unwrap();
    compile_one(&sb, &rustc);
    assert_eq!(
        counts(&sb),
        (0, 2),
        "nothing was stored from the first miss"
    );
}

#[test]
fn a_miss_compiles_in_the_wrapper_with_the_builds_jobserver_and_is_stored() {
    // A `rustc` that notes, for each crate compile, its parent's command line and the
    // jobserver variable it was given, then runs the real rustc.
    let sb = Sandbox::new();
    let real = real_rustc();
    let log = sb.outside("rustc.log");
    let fake = sb.outside("bin/rustc");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$*\" in *--crate-name*) \
             printf '%s|%s\\n' \"$(tr '\\0' ' ' < /proc/$PPID/cmdline)\" \"$CARGO_MAKEFLAGS\" >> {log};; esac\n\
             exec {real} \"$@\"\n",
            log = log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, Permissions::from_mode(0o755)).unwrap();
    sb.write("src/lib.rs", "pub fn one() -> u32 {\n    1\n}\n");
    let compile = || compile_one(&sb, &fake.display().to_string());
    std::fs::create_dir(sb.path("out")).unwrap();
    compile();
    assert_eq!(counts(&sb), (0, 1));
    let noted = std::fs::read_to_string(&log).unwrap();
    let (parent, jobserver) = noted.trim().split_once('|').unwrap();
    assert!(
        parent.contains("--crate-name one") && !parent.contains("daemon"),
        "rustc was not started by the wrapper: {parent}"
    );
    assert!(jobserver.contains("--jobserver-auth=3,4"), "{noted}");
    std::fs::remove_dir_all(sb.path("out")).unwrap();
    std::fs::create_dir(sb.path("out")).unwrap();
    compile();
    assert_eq!(counts(&sb), (1, 1), "stored when the wrapper reported back");
    assert!(sb.path("out/libone.rlib").is_file());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        noted,
        "a hit runs no rustc"
    );
}

/// The one file in target/debug/deps starting with `prefix` and having `extension` (`None`:
/// none, a program).
fn dep_file(sb: &Sandbox, prefix: &str, extension: Option<&str>) -> String {
    let deps = sb.path("target/debug/deps");
    let found: Vec<String> = std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            let ext = std::path::Path::new(n).extension().and_then(|e| e.to_str());
            n.starts_with(prefix) && ext == extension
        })
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    format!("target/debug/deps/{}", found[0])
}

#[test]
fn a_crate_miss_says_which_source_or_extern_changed() {
    let sb = workspace();
    cargo(&sb, &["build"]).status(0);
    let why = |file: &str| {
        let out = sb.cmd(["why", file, "--json"]).status(0).stdout;
        let newest: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        newest["reasons"].clone()
    };
    let alpha = dep_file(&sb, "libalpha-", Some("rlib"));
    assert_eq!(
        why(&alpha),
        serde_json::json!(["first compile of this output"])
    );
    greet(&sb, "hi");
    cargo(&sb, &["build"]).status(0);
    assert_eq!(
        why(&alpha),
        serde_json::json!(["source changed: alpha/src/lib.rs"])
    );
    let beta = dep_file(&sb, "libbeta-", Some("rlib"));
    assert_eq!(why(&beta), serde_json::json!(["--extern alpha changed"]));
    sb.write("alpha/src/extra.rs", "pub fn more() -> u32 {\n    7\n}\n");
    sb.write(
        "alpha/src/lib.rs",
        format!("pub mod extra;\n{}", sb.read("alpha/src/lib.rs")),
    );
    cargo(&sb, &["build"]).status(0);
    let reasons = why(&alpha);
    assert!(
        reasons
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "file added: alpha/src/extra.rs"),
        "{reasons}"
    );
}

/// A finalized incremental session: its name and the inode of each of its files by name.
type Session = (String, Vec<(String, u64)>);
/// Each crate directory's finalized sessions.
type Sessions = std::collections::BTreeMap<String, Vec<Session>>;

/// Each finalized incremental session under target/debug/incremental, by crate directory.
fn sessions(sb: &Sandbox) -> Sessions {
    use std::os::unix::fs::MetadataExt;
    let names = |dir: &std::path::Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let root = sb.path("target/debug/incremental");
    names(&root)
        .into_iter()
        .map(|crate_dir| {
            let dir = root.join(&crate_dir);
            let finalized = names(&dir)
                .into_iter()
                .filter(|n| {
                    n.starts_with("s-") && !n.ends_with(".lock") && !n.ends_with("-working")
                })
                .map(|session| {
                    let files = names(&dir.join(&session))
                        .into_iter()
                        .map(|f| {
                            let ino = std::fs::metadata(dir.join(&session).join(&f))
                                .unwrap()
                                .ino();
                            (f, ino)
                        })
                        .collect();
                    (session, files)
                })
                .collect();
            (crate_dir, finalized)
        })
        .collect()
}

#[test]
fn a_hit_after_clean_gives_rustc_the_incremental_state_of_its_compile() {
    let sb = workspace();
    // alpha in two modules, so an edit of one leaves the other's object as it was.
    sb.write("alpha/src/more.rs", "pub fn more() -> u32 {\n    1\n}\n");
    let lib = sb.read("alpha/src/lib.rs");
    sb.write("alpha/src/lib.rs", format!("pub mod more;\n{lib}"));
    let build = || cargo_default(&sb, &["build"]).status(0);
    build();
    let compiled = sessions(&sb);
    // alpha's newest session (rustc may keep the one it started from a while).
    let alpha = |s: &Sessions| {
        let (_, found) = s
            .iter()
            .find(|(name, _)| name.starts_with("alpha-"))
            .unwrap();
        found.last().unwrap().clone()
    };
    assert_eq!(counts(&sb), (0, 5));

    clean(&sb);
    build();
    assert_eq!(counts(&sb), (5, 5));
    let restored = sessions(&sb);
    // Every workspace crate (alpha, beta, pm, app) has the session its miss finished, file for
    // file, with its lock file (rustc copies only from a locked-able session).
    assert_eq!(restored.len(), 4, "{restored:?}");
    for (crate_dir, found) in &restored {
        assert_eq!(found.len(), 1, "{crate_dir}: {found:?}");
        let names = |s: &[Session]| -> Vec<(String, Vec<String>)> {
            s.iter()
                .map(|(n, files)| (n.clone(), files.iter().map(|(f, _)| f.clone()).collect()))
                .collect()
        };
        assert_eq!(names(found), names(&compiled[crate_dir]), "{crate_dir}");
        let (stem, _) = found[0].0.rsplit_once('-').unwrap();
        assert!(
            sb.path(&format!("target/debug/incremental/{crate_dir}/{stem}.lock"))
                .is_file(),
            "{crate_dir}: no lock file"
        );
    }
    assert_eq!(run_app(&sb), "hello from unix 42\n");

    // The next edit compiles from that session: rustc links the objects of what did not
    // change into its new session (same inodes) instead of compiling them again.
    let (_, before) = alpha(&restored);
    sb.write("alpha/src/more.rs", "pub fn more() -> u32 {\n    2\n}\n");
    build();
    assert_eq!(counts(&sb), (5, 8), "alpha, beta and app miss");
    let (_, after) = alpha(&sessions(&sb));
    let kept: Vec<&String> = after
        .iter()
        .filter(|file| before.contains(file) && file.0.ends_with(".o"))
        .map(|(name, _)| name)
        .collect();
    assert!(
        !kept.is_empty(),
        "no object came from the restored session: {before:?} -> {after:?}"
    );
    assert_eq!(run_app(&sb), "hello from unix 42\n");
}

#[test]
fn a_clean_right_after_a_build_loses_none_of_its_stores() {
    // Misses are stored after their wrapper is answered; the outputs are held open from
    // then on, so removing them at once (nothing asked of the daemon in between) loses
    // nothing, and the rebuild's lookups wait for stores still in progress.
    let sb = workspace();
    cargo(&sb, &["build"]).status(0);
    clean(&sb);
    cargo(&sb, &["build"]).status(0);
    assert_eq!(counts(&sb), (5, 5));
    assert_eq!(run_app(&sb), "hello from unix 42\n");
}

#[test]
fn issue_r_identical_crate_compiles_at_once_compile_once() {
    // A `rustc` that logs each crate compile it really runs, slowly enough for eight
    // identical ones (into eight output directories) to overlap.
    let sb = Sandbox::new();
    let log = sb.outside("rustc.runs");
    let fake = sb.outside("bin/rustc");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\ncase \"$*\" in *--crate-name*) echo run >> {log}; sleep 1;; esac\n\
             exec {real} \"$@\"\n",
            log = log.display(),
            real = real_rustc()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, Permissions::from_mode(0o755)).unwrap();
    sb.write("src/lib.rs", "pub fn one() -> u32 {\n    1\n}\n");
    sb.cmd(["start"]).status(0);
    let children: Vec<_> = (0..8)
        .map(|i| {
            let out = format!("out{i}");
            std::fs::create_dir(sb.path(&out)).unwrap();
            sb.cmd([fake.display().to_string()])
                .args(["--crate-name", "one", "--edition=2021", "src/lib.rs"])
                .args(["--crate-type", "lib", "--emit=dep-info,metadata,link"])
                .args(["--out-dir", &out])
                .spawn()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let runs = std::fs::read_to_string(&log).unwrap();
    assert_eq!(runs.lines().count(), 1, "rustc ran more than once");
    assert_eq!(counts(&sb), (7, 1));
    let first = std::fs::read(sb.path("out0/libone.rlib")).unwrap();
    for i in 1..8 {
        let rlib = std::fs::read(sb.path(&format!("out{i}/libone.rlib"))).unwrap();
        assert_eq!(rlib, first, "out{i}");
    }
}

/// `zccache why OUTPUT --json`: the newest miss's reasons.
fn newest_reasons(sb: &Sandbox, output: &str) -> serde_json::Value {
    let out = sb.cmd(["why", output, "--json"]).status(0).stdout;
    let newest: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    newest["reasons"].clone()
}

#[test]
fn issue_o_naming_the_same_target_dir_hits_every_crate() {
    let sb = workspace();
    cargo(&sb, &["build"])
        .env_remove("CARGO_TARGET_DIR")
        .status(0);
    cargo(&sb, &["clean"])
        .env_remove("CARGO_TARGET_DIR")
        .status(0);
    cargo(&sb, &["build"]).status(0);
    assert_eq!(
        counts(&sb),
        (5, 5),
        "CARGO_TARGET_DIR=$PWD/target is where cargo wrote before"
    );
    assert_eq!(run_app(&sb), "hello from unix 42\n");
}

#[test]
fn issue_o_the_packages_selected_do_not_split_the_cache() {
    let sb = workspace();
    cargo(&sb, &["build", "-p", "app"]).status(0);
    clean(&sb);
    // Not pm: a proc-macro selected itself is built with the target's debuginfo, not the
    // host's (another command line: cargo's choice, not the cache's).
    cargo(&sb, &["build", "-p", "app", "-p", "alpha", "-p", "beta"]).status(0);
    assert_eq!(
        counts(&sb),
        (5, 5),
        "alpha and beta selected now (CARGO_PRIMARY_PACKAGE) hit too"
    );
}

/// Compiles `src/lib.rs` as crate `one` into a fresh `out/` with the real rustc through the
/// wrapper, with these env vars set (and the test's own `CARGO_*` ones).
fn compile_one_with(sb: &Sandbox, env: &[(&str, &str)]) {
    let _ = std::fs::remove_dir_all(sb.path("out"));
    std::fs::create_dir(sb.path("out")).unwrap();
    let mut cmd = sb.cmd([real_rustc()]).args(ONE_ARGS);
    for name in ["CARGO_ZC_FLAVOR", "CARGO_PRIMARY_PACKAGE"] {
        cmd = cmd.env_remove(name);
    }
    for (name, value) in env {
        cmd = cmd.env(name, value);
    }
    cmd.status(0);
}

/// Crate `one` from `src/lib.rs` into `out/`.
const ONE_ARGS: [&str; 11] = [
    "--crate-name",
    "one",
    "--edition=2021",
    "src/lib.rs",
    "--crate-type",
    "lib",
    "--emit=dep-info,metadata,link",
    "-C",
    "debuginfo=0",
    "--out-dir",
    "out",
];

#[test]
fn issue_o_the_crates_env_and_the_variables_it_reads_stay_keyed() {
    let sb = Sandbox::new();
    sb.write(
        "src/lib.rs",
        "pub fn flavor() -> Option<&'static str> {\n    option_env!(\"CARGO_ZC_FLAVOR\")\n}\n\
         pub fn primary() -> bool {\n    option_env!(\"CARGO_PRIMARY_PACKAGE\").is_some()\n}\n",
    );
    let base = [("CARGO_PKG_VERSION", "1.0.0"), ("CARGO_TARGET_DIR", "/a")];
    compile_one_with(&sb, &base);
    compile_one_with(
        &sb,
        &[("CARGO_PKG_VERSION", "1.0.0"), ("CARGO_TARGET_DIR", "/b")],
    );
    assert_eq!(counts(&sb), (1, 1), "another CARGO_TARGET_DIR hits");
    compile_one_with(
        &sb,
        &[("CARGO_PKG_VERSION", "2.0.0"), ("CARGO_TARGET_DIR", "/a")],
    );
    assert_eq!(counts(&sb), (1, 2), "the package's version is keyed");
    assert_eq!(
        newest_reasons(&sb, "out/libone.rlib"),
        serde_json::json!(["env CARGO_PKG_VERSION changed"])
    );
    compile_one_with(&sb, &[base[0], base[1], ("CARGO_ZC_FLAVOR", "x")]);
    assert_eq!(counts(&sb), (1, 3), "a variable option_env! read");
    assert_eq!(
        newest_reasons(&sb, "out/libone.rlib"),
        serde_json::json!([
            "env CARGO_PKG_VERSION changed",
            "env CARGO_ZC_FLAVOR changed"
        ])
    );
    compile_one_with(&sb, &[base[0], base[1], ("CARGO_PRIMARY_PACKAGE", "1")]);
    assert_eq!(
        counts(&sb),
        (1, 4),
        "CARGO_PRIMARY_PACKAGE, read by the crate"
    );
    compile_one_with(&sb, &base);
    assert_eq!(counts(&sb), (2, 4), "the first entry again");
}

#[test]
fn issue_o_why_ties_cargos_copy_of_a_program_to_its_compile() {
    let sb = workspace();
    cargo(&sb, &["build"]).status(0);
    let out = sb.cmd(["why", "target/debug/app"]).status(0).stdout;
    assert!(out.contains("first compile of this output"), "{out}");
    greet(&sb, "hi");
    cargo(&sb, &["build"]).status(0);
    assert_eq!(
        newest_reasons(&sb, "target/debug/app"),
        serde_json::json!(["--extern beta changed"])
    );
    let lib = sb
        .cmd(["why", "target/debug/libalpha.rlib"])
        .status(0)
        .stdout;
    assert!(lib.contains("source changed: alpha/src/lib.rs"), "{lib}");
}

#[test]
fn issue_o_a_source_edit_is_the_reason_before_selection_and_env() {
    let sb = workspace();
    cargo(&sb, &["build", "-p", "app"])
        .env_remove("SOURCE_DATE_EPOCH")
        .status(0);
    greet(&sb, "hi");
    cargo(&sb, &["build", "-p", "app", "-p", "alpha", "-p", "beta"])
        .env("SOURCE_DATE_EPOCH", "1")
        .status(0);
    let alpha = dep_file(&sb, "libalpha-", Some("rlib"));
    assert_eq!(
        newest_reasons(&sb, &alpha),
        serde_json::json!([
            "source changed: alpha/src/lib.rs",
            "env SOURCE_DATE_EPOCH changed"
        ])
    );
    let beta = dep_file(&sb, "libbeta-", Some("rlib"));
    assert_eq!(
        newest_reasons(&sb, &beta),
        serde_json::json!(["--extern alpha changed", "env SOURCE_DATE_EPOCH changed"])
    );
}

/// The rustup proxy `rustc` beside the `rustup` on `PATH`.
fn rustup_proxy() -> std::path::PathBuf {
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v rustup"])
        .output()
        .unwrap();
    let rustup = String::from_utf8(found.stdout).unwrap();
    std::path::Path::new(rustup.trim()).with_file_name("rustc")
}

/// A rustup home with toolchains `tca` (the default) and `tcb`, whose rustc runs the real
/// one: two binaries, so two compiler identities.
fn two_toolchains(sb: &Sandbox) -> std::path::PathBuf {
    let home = sb.outside("rustup");
    let real = real_rustc();
    for name in ["tca", "tcb"] {
        let bin = home.join("toolchains").join(name).join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let rustc = bin.join("rustc");
        std::fs::write(&rustc, format!("#!/bin/sh\n# {name}\nexec {real} \"$@\"\n")).unwrap();
        std::fs::set_permissions(&rustc, Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(
        home.join("settings.toml"),
        "version = \"12\"\ndefault_toolchain = \"tca\"\nprofile = \"default\"\n",
    )
    .unwrap();
    home
}

#[test]
fn issue_o_rustc_through_rustups_proxy_is_cached_and_keyed_on_its_toolchain() {
    if !available(Tool::Rustup) {
        return;
    }
    let sb = Sandbox::new();
    let home = two_toolchains(&sb);
    let proxy = rustup_proxy();
    let path = format!(
        "{}:{}",
        proxy.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    sb.write("src/lib.rs", "pub fn one() -> u32 {\n    1\n}\n");
    // `zccache rustc [+TOOLCHAIN] ...`, `rustc` found on PATH: rustup's proxy.
    let compile = |toolchain: Option<&str>, plus: &[&str]| {
        let _ = std::fs::remove_dir_all(sb.path("out"));
        std::fs::create_dir(sb.path("out")).unwrap();
        let cmd = sb
            .cmd(["rustc"])
            .args(plus)
            .args(ONE_ARGS)
            .env("PATH", &path)
            .env("RUSTUP_HOME", &home);
        match toolchain {
            Some(name) => cmd.env("RUSTUP_TOOLCHAIN", name),
            None => cmd.env_remove("RUSTUP_TOOLCHAIN"),
        }
        .status(0);
        assert!(sb.path("out/libone.rlib").is_file());
    };
    compile(Some("tca"), &[]);
    compile(Some("tca"), &[]);
    assert_eq!(counts(&sb), (1, 1), "the second compile hits");
    compile(Some("tcb"), &[]);
    assert_eq!(counts(&sb), (1, 2), "another toolchain's rustc misses");
    let reasons = newest_reasons(&sb, "out/libone.rlib");
    let first = reasons[0].as_str().unwrap();
    assert!(
        first.starts_with("compiler changed: ") && first.contains("toolchains/tcb/bin/rustc"),
        "{reasons}"
    );
    sb.write("rust-toolchain.toml", "[toolchain]\nchannel = \"tcb\"\n");
    compile(None, &[]);
    assert_eq!(
        counts(&sb),
        (2, 2),
        "the toolchain file selects tcb: its entry"
    );
    compile(None, &["+tca"]);
    assert_eq!(counts(&sb), (3, 2), "+tca selects tca: its entry");
}

#[test]
fn issue_o_cargo_running_rustups_proxy_hits_after_clean() {
    if !available(Tool::Rustup) {
        return;
    }
    let sb = workspace();
    let proxy = rustup_proxy();
    cargo(&sb, &["build"]).env("RUSTC", &proxy).status(0);
    clean(&sb);
    cargo(&sb, &["build"]).env("RUSTC", &proxy).status(0);
    assert_eq!(counts(&sb), (5, 5), "every crate from the cache");
    assert_eq!(run_app(&sb), "hello from unix 42\n");
}

#[test]
fn issue_o_a_cold_builds_stores_run_below_the_compilers_priority() {
    // Cold: every miss is compiled by its wrapper and stored after the wrapper is answered,
    // on the daemon's background thread, niced so rustc keeps the cores.
    let sb = workspace();
    cargo(&sb, &["build"]).status(0);
    let pid = sb.cmd(["status", "--json"]).status(0).json()["daemon"]["pid"]
        .as_u64()
        .unwrap();
    let mut background = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == "zccache-backgro" {
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
            // Fields after the `(comm)`: state is the 1st; nice is the 17th.
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            background.push(after.split(' ').nth(16).unwrap().to_string());
        }
    }
    assert_eq!(background, ["10"], "one background thread at nice 10");
    assert_eq!(counts(&sb).1, 5);
}
