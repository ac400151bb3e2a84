//! `zccache report` (issue K.2): the roll-up of a real build's journal as JSON, text and one
//! HTML page that parses and carries the journal's numbers; a 50,000-line journal.

use crate::support::Sandbox;

/// Elements that are never closed.
const VOID: [&str; 2] = ["meta", "br"];

/// Checks that every tag of `html` is closed in order (self-closing `<x/>` and void elements
/// aside); returns the tag names seen.
fn parse_tags(html: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("an unclosed tag") + start;
        let tag = &rest[start + 1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack
                .pop()
                .unwrap_or_else(|| panic!("</{name}> closes nothing"));
            assert_eq!(open, name, "</{name}> closes <{open}>");
            continue;
        }
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        seen.push(name.clone());
        if !tag.ends_with('/') && !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    seen
}

#[test]
fn a_real_builds_journal_rolls_up_to_its_own_numbers() {
    let sb = Sandbox::new();
    sb.write("inc/h.h", "#define H 1\n");
    for name in ["a", "b", "c"] {
        sb.write(
            &format!("{name}.c"),
            format!("#include \"h.h\"\nint {name}(void) {{ return H; }}\n"),
        );
    }
    let id = sb
        .cmd(["session-start", "--journal", "j.jsonl"])
        .status(0)
        .json()["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let gcc = |file: &str| {
        sb.cmd([
            "gcc",
            "-c",
            "-Iinc",
            &format!("{file}.c"),
            "-o",
            &format!("{file}.o"),
        ])
        .env("ZCCACHE_SESSION_ID", &id)
        .status(0);
    };
    for file in ["a", "b", "c", "a", "b"] {
        gcc(file);
    }
    sb.write("inc/h.h", "#define H 2\n");
    gcc("a");
    sb.cmd(["gcc", "-E", "-Iinc", "a.c"])
        .env("ZCCACHE_SESSION_ID", &id)
        .status(0);
    sb.cmd(["session-end", &id]).status(0);

    // Count the journal ourselves.
    let journal = sb.read("j.jsonl");
    let lines: Vec<serde_json::Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let count = |o: &str| lines.iter().filter(|l| l["outcome"] == o).count() as u64;
    assert_eq!(
        (count("hit"), count("miss"), count("passthrough")),
        (2, 4, 1)
    );

    let json = sb
        .cmd(["report", "--journal", "j.jsonl", "--format", "json"])
        .status(0)
        .json();
    assert_eq!(json["lines"], lines.len() as u64);
    for outcome in ["hit", "miss", "passthrough"] {
        assert_eq!(json["outcomes"][outcome], count(outcome), "{json}");
    }
    assert_eq!(
        json["miss_reasons"],
        serde_json::json!([
            ["first compile of this output", 3],
            ["header changed: inc/h.h", 1]
        ])
    );
    let o = json["by_extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "o")
        .unwrap();
    assert_eq!(
        (o["hits"].as_u64(), o["misses"].as_u64()),
        (Some(2), Some(4))
    );
    assert!(json["saved_ms"].as_f64().unwrap() > 0.0);

    let lines_with = |flag: &str, value: &str| {
        let args = [
            "report",
            "--journal",
            "j.jsonl",
            "--format",
            "json",
            flag,
            value,
        ];
        sb.cmd(args).status(0).json()["lines"].clone()
    };
    assert_eq!(lines_with("--outcome", "miss"), 4);
    // A session no compile belongs to is a mistake, said as one (issue Q.6).
    sb.cmd(["report", "--journal", "j.jsonl", "--session", "nope"])
        .status(2)
        .stderr_has("matches --session nope");

    let text = sb.cmd(["report", "--journal", "j.jsonl"]).status(0).stdout;
    assert!(text.starts_with("7 compiles over "), "{text}");
    assert!(text.contains("2 hits, 4 misses"), "{text}");
    assert!(text.contains("header changed: inc/h.h"), "{text}");

    sb.cmd(["report", "--journal", "j.jsonl", "-o", "report.html"])
        .status(0);
    let html = sb.read("report.html");
    let tags = parse_tags(&html);
    assert!(tags.contains(&"svg".to_string()) && tags.contains(&"table".to_string()));
    assert!(
        !html.contains("<script") && !html.contains("http"),
        "self-contained"
    );
    assert!(html.contains("id=\"hits\">hits<b>2</b>"), "{html}");
    assert!(html.contains("id=\"misses\">misses<b>4</b>"), "{html}");
    assert_eq!(html.matches("<rect ").count(), lines.len());
}

#[test]
fn a_journal_of_fifty_thousand_lines() {
    let sb = Sandbox::new();
    let mut journal = String::new();
    for i in 0..50_000u64 {
        let outcome = ["hit", "hit", "hit", "miss", "passthrough"][(i % 5) as usize];
        let reason = match outcome {
            "miss" => format!(",\"miss_reason\":\"header changed: inc/h{}.h\"", i % 7),
            _ => String::new(),
        };
        journal.push_str(&format!(
            "{{\"ts\":{},\"outcome\":\"{outcome}\",\"compiler\":\"/usr/bin/gcc\",\
             \"args\":[\"-c\",\"src/f{}.c\",\"-o\",\"build/f{}.o\"],\"cwd\":\"/p\",\"env\":[],\
             \"exit_code\":0,\"session_id\":null,\"latency_ns\":{}{reason}}}\n",
            1_700_000_000.0 + i as f64 * 0.01,
            i % 1000,
            i % 1000,
            1_000_000 + i * 37 % 90_000_000,
        ));
    }
    journal.push_str("not a journal line\n");
    sb.write("big.jsonl", journal);
    let json = sb
        .cmd(["report", "--journal", "big.jsonl", "--format", "json"])
        .status(0)
        .json();
    assert_eq!(json["lines"], 50_000);
    assert_eq!(json["unreadable"], 1);
    assert_eq!(json["outcomes"]["hit"], 30_000);
    assert_eq!(json["outcomes"]["miss"], 10_000);
    assert_eq!(json["miss_reasons"].as_array().unwrap().len(), 7);
    sb.cmd(["report", "--journal", "big.jsonl", "-o", "big.html"])
        .status(0);
    let html = sb.read("big.html");
    parse_tags(&html);
    assert!(html.contains("id=\"compiles\">compiles<b>50000</b>"));
}

#[test]
fn a_missing_journal_is_one_clear_error() {
    let sb = Sandbox::new();
    sb.cmd(["report", "--journal", "nope.jsonl"])
        .status(2)
        .stderr_has("cannot read the journal");
}

/// Issue Q.15: for a task-runner user the page opens with the tasks of the current
/// directory (skips, runs, time saved, last verdicts), and a daemon that has compiled
/// nothing yet is no error.
#[test]
fn issue_q_the_page_opens_with_this_directorys_tasks() {
    let sb = Sandbox::new();
    sb.write("zccache.toml", "[tasks.lint]\ncommand = \"sleep 0.3\"\n");
    sb.cmd(["run", "lint"]).status(0);
    for _ in 0..2 {
        sb.cmd(["run", "lint"]).status(0).stderr_has("skip lint");
    }
    sb.cmd(["report", "-o", "r.html"]).status(0);
    let page = sb.read("r.html");
    parse_tags(&page);
    let tasks = page
        .find("<h2>Tasks of zccache run</h2>")
        .expect("a task section");
    let compiles = page.find("<h2>Compiles</h2>").expect("a compile section");
    assert!(tasks < compiles, "tasks come first");
    assert!(page.contains("id=\"task-skips\">skips<b>2</b>"), "{page}");
    assert!(page.contains("id=\"task-runs\">runs<b>1</b>"), "{page}");
    let saved = page
        .split("id=\"task-saved\">time saved<b>~")
        .nth(1)
        .unwrap();
    let seconds: f64 = saved.split(' ').next().unwrap().parse().unwrap();
    assert!(
        seconds >= 0.5,
        "two skips of a 0.3 s task saved {seconds} s"
    );
    assert!(page.contains("<td>lint</td><td>skip</td>"), "{page}");
}

/// Issue Q.6: a report filter that names nothing is an error, never an empty report: an
/// unknown outcome (exit 2, the possible values listed) or a session no compile belongs to.
#[test]
fn issue_q_a_report_filter_that_names_nothing_says_so() {
    let sb = Sandbox::new();
    sb.write("a.c", "int a(void) { return 1; }\n");
    sb.cmd(["gcc", "-c", "a.c", "-o", "a.o"]).status(0);
    sb.cmd(["report", "--outcome", "hti"])
        .status(2)
        .stderr_has("invalid value 'hti'")
        .stderr_has("possible values: hit, miss");
    sb.cmd(["report", "--session", "nosuch"])
        .status(2)
        .stderr_has("no compile in ")
        .stderr_has("matches --session nosuch");
    let all = sb.cmd(["report", "--format", "json"]).status(0).json();
    assert_eq!(all["lines"], 1);
}

/// Issue O.4e: a passthrough says why it was not cached, in the journal line, in `why
/// OUTPUT` and in the report (text and HTML), with real gcc.
#[test]
fn issue_o_passthroughs_say_why_everywhere() {
    let sb = Sandbox::new();
    sb.write("a.c", "int f(void) { return 1; }\n")
        .write("m.c", "int main(void) { return 0; }\n");
    let id = sb
        .cmd(["session-start", "--journal", "j.jsonl"])
        .status(0)
        .json()["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    let gcc = |args: &[&str]| {
        sb.cmd(["gcc"])
            .args(args)
            .env("ZCCACHE_SESSION_ID", &id)
            .status(0);
    };
    gcc(&["-E", "a.c"]);
    gcc(&["-S", "a.c"]);
    gcc(&["-x", "c", "m.c", "-o", "prog"]);
    gcc(&["-c", "a.c", "-Xassembler", "--noexecstack", "-o", "w.o"]);
    gcc(&["-c", "-H", "a.c", "-o", "w.o"]);
    sb.cmd(["session-end", &id]).status(0);

    let reasons: Vec<String> = sb
        .read("j.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|l| {
            l["passthrough_reason"]
                .as_str()
                .unwrap_or("none")
                .to_string()
        })
        .collect();
    let (object, compile, unknown) = (
        "not a compile to an object",
        "a language switch (-x) in a compile-and-link",
        "an unknown flag",
    );
    assert_eq!(reasons, [object, object, compile, unknown, unknown]);

    let why = sb.cmd(["why", "prog"]).status(0).stdout;
    assert_eq!(
        why.lines().next(),
        Some("prog: 1 recent passthrough, newest first"),
        "{why}"
    );
    assert!(why.contains(&format!("passed through: {compile}")), "{why}");
    let why = sb.cmd(["why", "a.s"]).status(0).stdout;
    assert!(why.contains(&format!("passed through: {object}")), "{why}");
    let why = sb.cmd(["why", "w.o"]).status(0).stdout;
    assert!(why.starts_with("w.o: 2 recent passthroughs"), "{why}");

    let text = sb.cmd(["report", "--journal", "j.jsonl"]).status(0).stdout;
    let section = text.split("passthroughs by reason:\n").nth(1).unwrap_or("");
    let rows: Vec<&str> = section.lines().take(3).map(str::trim).collect();
    assert_eq!(
        rows,
        [
            format!("2  {unknown}"),
            format!("2  {object}"),
            format!("1  {compile}")
        ],
        "{text}"
    );
    sb.cmd(["report", "--journal", "j.jsonl", "-o", "r.html"])
        .status(0);
    let html = sb.read("r.html");
    parse_tags(&html);
    let table = html.split("Passthroughs by reason").nth(1).unwrap_or("");
    assert!(
        table.contains(&format!("<td class=\"n\">2</td><td>{unknown}</td>")),
        "{html}"
    );
}

/// A session with its own journal `j.jsonl`; its id.
fn session(sb: &Sandbox) -> String {
    sb.cmd(["session-start", "--journal", "j.jsonl"])
        .status(0)
        .json()["session_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The journal `file`'s lines.
fn journal(sb: &Sandbox, file: &str) -> Vec<serde_json::Value> {
    sb.read(file)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Issue O.6: a compile that fails is an error, never a miss: in `status` (text and JSON),
/// the session's counters, the report's text, JSON and HTML cards, with real gcc.
#[test]
fn issue_o_a_failing_compile_is_an_error_everywhere() {
    let sb = Sandbox::new();
    sb.write("a.c", "int a(void) { return 1; }\n")
        .write("bad.c", "int b(void) { return nope; }\n");
    let id = session(&sb);
    let gcc = |args: &[&str], code: i32| {
        sb.cmd(["gcc"])
            .args(args)
            .env("ZCCACHE_SESSION_ID", &id)
            .status(code);
    };
    gcc(&["-c", "a.c", "-o", "a.o"], 0);
    gcc(&["-c", "a.c", "-o", "a.o"], 0);
    gcc(&["-c", "bad.c", "-o", "bad.o"], 1);

    let daemon = sb.cmd(["status", "--json"]).status(0).json()["daemon"].clone();
    let n = |k: &str| daemon[k].as_u64().unwrap_or(99);
    assert_eq!(
        (n("cache_hits"), n("cache_misses"), n("cache_errors")),
        (1, 1, 1),
        "{daemon}"
    );
    let status = sb.cmd(["status"]).status(0).stdout;
    assert!(
        status.contains("compiles: 1 hit, 1 miss, 1 error, 0 passed through"),
        "{status}"
    );
    let stats = sb.cmd(["session-end", &id, "--json"]).status(0).json();
    assert_eq!((&stats["misses"], &stats["errors"]), (&1.into(), &1.into()));

    let json = sb
        .cmd(["report", "--journal", "j.jsonl", "--format", "json"])
        .status(0)
        .json();
    assert_eq!(
        (&json["outcomes"]["miss"], &json["outcomes"]["error"]),
        (&1.into(), &1.into()),
        "{json}"
    );
    let o = &json["by_extension"][0];
    assert_eq!(
        (&o["name"], &o["misses"], &o["errors"]),
        (&"o".into(), &1.into(), &1.into())
    );
    assert_eq!(
        json["miss_reasons"],
        serde_json::json!([["first compile of this output", 1]])
    );
    let text = sb.cmd(["report", "--journal", "j.jsonl"]).status(0).stdout;
    assert!(text.contains("1 hits, 1 misses, 1 errors"), "{text}");
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("o "))
        .unwrap_or("");
    assert!(
        row.contains(" 1 misses ") && row.contains(" 1 errors "),
        "{text}"
    );
    sb.cmd(["report", "--journal", "j.jsonl", "-o", "r.html"])
        .status(0);
    let html = sb.read("r.html");
    assert!(html.contains("id=\"misses\">misses<b>1</b>"), "{html}");
    assert!(html.contains("id=\"errors\">errors<b>1</b>"), "{html}");
    assert!(
        html.contains("id=\"hit-rate\">hit rate<b>50.0%</b>"),
        "{html}"
    );
}

/// The bars of the page's timeline: (x, width) of each `<rect>` in the `<svg>`.
fn bars(html: &str) -> Vec<(f64, f64)> {
    let svg = html
        .split("<svg")
        .nth(1)
        .unwrap()
        .split("</svg>")
        .next()
        .unwrap();
    let attr = |rect: &str, name: &str| -> f64 {
        let at = rect.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        rect[at..].split('"').next().unwrap().parse().unwrap()
    };
    svg.split("<rect")
        .skip(1)
        .map(|rect| (attr(rect, "x"), attr(rect, "width")))
        .collect()
}

/// Checks each bar of `file`'s page against its journal line: it spans the compile, from
/// `ts - latency` (the journal's `ts` is when it ended) to `ts`, inside the 1000-wide chart.
fn assert_bars_span_their_compiles(sb: &Sandbox, file: &str) {
    let lines = journal(sb, file);
    let span = |l: &serde_json::Value| {
        let end = l["ts"].as_f64().unwrap();
        (end - l["latency_ns"].as_f64().unwrap() / 1e9, end)
    };
    let first = lines
        .iter()
        .map(|l| span(l).0)
        .fold(f64::INFINITY, f64::min);
    let last = lines.iter().map(|l| span(l).1).fold(0.0, f64::max);
    let scale = |t: f64| (t - first) / (last - first) * 1000.0;
    sb.cmd(["report", "--journal", file, "-o", "t.html"])
        .status(0);
    let bars = bars(&sb.read("t.html"));
    assert_eq!(bars.len(), lines.len());
    for (line, (x, w)) in lines.iter().zip(bars) {
        let (start, end) = span(line);
        assert!(x >= 0.0 && x + w <= 1000.1, "bar {x}+{w} outside the chart");
        assert!(
            (x - scale(start)).abs() < 0.15,
            "bar at {x}, compile from {}",
            scale(start)
        );
        if w > 0.6 {
            assert!(
                (x + w - scale(end)).abs() < 0.2,
                "bar to {}, compile to {}",
                x + w,
                scale(end)
            );
        }
    }
}

/// Issue O.7: the timeline draws each compile from its start (the journal's `ts` is its
/// end) to its end; a two-line journal draws inside the chart. Real gcc compiles.
#[test]
fn issue_o_the_timeline_draws_each_compile_where_it_ran() {
    let sb = Sandbox::new();
    let id = session(&sb);
    for name in ["a", "b", "c", "d"] {
        let body = format!("#include <stdio.h>\nint {name}(void) {{ return puts(\"x\"); }}\n");
        sb.write(&format!("{name}.c"), body);
        sb.cmd([
            "gcc",
            "-O2",
            "-c",
            &format!("{name}.c"),
            "-o",
            &format!("{name}.o"),
        ])
        .env("ZCCACHE_SESSION_ID", &id)
        .status(0);
    }
    sb.cmd(["session-end", &id]).status(0);
    assert_bars_span_their_compiles(&sb, "j.jsonl");
    let text = sb.read("j.jsonl");
    let two: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    sb.write("two.jsonl", two);
    assert_bars_span_their_compiles(&sb, "two.jsonl");
}

/// Issue O.7: one header edit is one row of misses by reason, however each compile's
/// depfile spells the header (`lib//compress/../common/mem.h` from the top,
/// `../lib/common/mem.h` from `programs/`), with real gcc.
#[test]
fn issue_o_misses_by_reason_name_one_header_once() {
    let sb = Sandbox::new();
    sb.write("lib/common/mem.h", "#define MEM 1\n")
        .write(
            "lib/compress/c.c",
            "#include \"compress/../common/mem.h\"\nint c(void) { return MEM; }\n",
        )
        .write(
            "programs/p.c",
            "#include \"common/mem.h\"\nint p(void) { return MEM; }\n",
        );
    let id = session(&sb);
    let build = || {
        sb.cmd(["gcc", "-Ilib/", "-c", "lib/compress/c.c", "-o", "c.o"])
            .env("ZCCACHE_SESSION_ID", &id)
            .status(0);
        sb.cmd(["gcc", "-I../lib", "-c", "p.c", "-o", "p.o"])
            .cwd(sb.path("programs"))
            .env("ZCCACHE_SESSION_ID", &id)
            .status(0);
    };
    build();
    sb.write("lib/common/mem.h", "#define MEM 2\n");
    build();
    sb.cmd(["session-end", &id]).status(0);
    let spelled: Vec<String> = journal(&sb, "j.jsonl")
        .iter()
        .filter_map(|l| l["miss_reason"].as_str())
        .filter(|r| r.starts_with("header"))
        .map(String::from)
        .collect();
    assert_eq!(spelled.len(), 2, "{spelled:?}");
    assert_ne!(spelled[0], spelled[1], "the depfiles spell it two ways");
    let json = sb
        .cmd(["report", "--journal", "j.jsonl", "--format", "json"])
        .status(0)
        .json();
    assert_eq!(
        json["miss_reasons"],
        serde_json::json!([
            ["first compile of this output", 2],
            ["header changed: lib/common/mem.h", 2]
        ])
    );
}

/// Issue O.7: each compile is grouped as what it is, with real gcc and cargo: an assembly
/// source under its name, a versioned shared library as `so`, `rustc -vV` and `--print`
/// as queries (kind `query`, source `(query)`), a `--test` harness as `test`.
#[test]
fn issue_o_report_groups_name_what_each_compile_is() {
    let sb = Sandbox::new();
    sb.write(
        "asm/start.S",
        "#define ANSWER 42\n.globl answer\nanswer:\n.long ANSWER\n",
    )
    .write("z.c", "int z(void) { return 1; }\n")
    .write(
        "Cargo.toml",
        "[package]\nname = \"tiny\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .write(
        "src/lib.rs",
        "pub fn one() -> u32 { 1 }\n#[test]\nfn works() { assert_eq!(one(), 1); }\n",
    );
    sb.cmd(["gcc", "-c", "asm/start.S", "-o", "start.o"])
        .status(0);
    sb.cmd(["gcc", "-fPIC", "-c", "z.c", "-o", "z.o"]).status(0);
    sb.cmd(["gcc", "-shared", "z.o", "-o", "libz.so.1.5.6"])
        .status(0);
    sb.program("cargo")
        .args(["test", "--no-run", "--offline", "--quiet"])
        .env("RUSTC_WRAPPER", crate::support::ZCCACHE)
        .env("CARGO_TARGET_DIR", sb.path("target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_RUSTFLAGS")
        .status(0);
    let json = sb.cmd(["report", "--format", "json"]).status(0).json();
    let group = |table: &str, name: &str| {
        let rows = json[table].as_array().unwrap();
        rows.iter().find(|g| g["name"] == name).cloned()
    };
    let total = |g: &serde_json::Value| {
        ["hits", "misses", "errors", "passthroughs"]
            .iter()
            .map(|k| g[k].as_u64().unwrap())
            .sum::<u64>()
    };
    assert!(group("by_source", "asm/start.S").is_some(), "{json}");
    let so = group("by_extension", "so").expect("a so kind");
    assert_eq!(total(&so), 1, "{json}");
    assert!(group("by_extension", "6").is_none(), "{json}");
    let query = group("by_extension", "query").expect("a query kind");
    let asked = group("by_source", "(query)").expect("a (query) source");
    assert!(
        total(&query) >= 2 && total(&query) == total(&asked),
        "{json}"
    );
    assert!(group("by_extension", "test").is_some(), "{json}");
    // Left: the link of the shared library, and no query among them.
    let linked = group("by_source", "(link or archive)").expect("the link");
    assert_eq!(total(&linked), 1, "{json}");
}

/// Issue O.7: a table longer than 20 rows says how many it left off; an empty one says
/// `none`; long names keep the text's columns aligned. Real gcc compiles.
#[test]
fn issue_o_report_tables_say_what_they_leave_off() {
    let sb = Sandbox::new();
    let long = "src/a/rather/deep/directory/of/the/project/with/a/long/name/x.c";
    let mut sources: Vec<String> = (0..22).map(|i| format!("s{i:02}.c")).collect();
    sources.push(long.to_string());
    let id = session(&sb);
    for (i, source) in sources.iter().enumerate() {
        sb.write(source, format!("int f{i}(void) {{ return {i}; }}\n"));
        sb.cmd(["gcc", "-c", source, "-o", &format!("o{i}.o")])
            .env("ZCCACHE_SESSION_ID", &id)
            .status(0);
    }
    sb.cmd(["session-end", &id]).status(0);
    let json = sb
        .cmd(["report", "--journal", "j.jsonl", "--format", "json"])
        .status(0)
        .json();
    assert_eq!(json["by_source"].as_array().unwrap().len(), 20);
    assert_eq!(json["left_off"], serde_json::json!({"by_source": 3}));

    let text = sb.cmd(["report", "--journal", "j.jsonl"]).status(0).stdout;
    let section = |title: &str| -> Vec<String> {
        let rest = text.split(&format!("\n{title}:\n")).nth(1).unwrap_or("");
        rest.split("\n\n")
            .next()
            .unwrap()
            .lines()
            .map(String::from)
            .collect()
    };
    let by_source = section("by source file");
    assert_eq!(by_source.len(), 21, "{text}");
    assert_eq!(by_source[20], "  ... and 3 more", "{text}");
    assert_eq!(section("passthroughs by reason"), ["  none"], "{text}");
    for title in ["by output kind", "by source file"] {
        let rows = section(title);
        let columns: Vec<usize> = rows.iter().filter_map(|r| r.find(" hits ")).collect();
        assert!(columns.windows(2).all(|w| w[0] == w[1]), "{text}");
    }

    sb.cmd(["report", "--journal", "j.jsonl", "-o", "r.html"])
        .status(0);
    let html = sb.read("r.html");
    parse_tags(&html);
    let table = html.split("<h2>By source file</h2>").nth(1).unwrap_or("");
    assert!(table.contains(">... and 3 more</td>"), "{html}");
    let passed = html
        .split("<h2>Passthroughs by reason</h2>")
        .nth(1)
        .unwrap_or("");
    let passed = passed.split("</table>").next().unwrap();
    assert!(passed.contains(">none</td>"), "{html}");
}

/// Issue O.7: the page's task table lists every task of the directory, wherever its state
/// file lies: a zccache.toml task with its own root, a `--cache FILE` run, one in
/// `.zccache/run/`; where tasks exist but none has decided yet, the table says `none`.
#[test]
fn issue_o_the_task_table_lists_tasks_wherever_their_state_lies() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.path("sub")).unwrap();
    sb.write(
        "zccache.toml",
        "[tasks.lint]\ncommand = \"true\"\nroot = \"sub\"\n\n[tasks.test]\ncommand = \"true\"\n",
    );
    sb.cmd(["report", "-o", "r.html"]).status(0);
    let page = sb.read("r.html");
    parse_tags(&page);
    let tasks = page
        .split("<h2>Tasks of zccache run</h2>")
        .nth(1)
        .expect("a task section");
    assert!(
        tasks
            .split("</table>")
            .next()
            .unwrap()
            .contains(">none</td>"),
        "{page}"
    );

    sb.cmd(["run", "lint"]).status(0);
    sb.cmd(["run", "test"]).status(0);
    sb.cmd(["run", "--cache", ".cache/adhoc.json", "--", "true"])
        .status(0);
    assert!(sb.path("sub/.zccache/run/lint.json").exists());
    sb.cmd(["report", "-o", "r.html"]).status(0);
    let page = sb.read("r.html");
    parse_tags(&page);
    assert!(page.contains("id=\"task-count\">tasks<b>3</b>"), "{page}");
    for task in ["lint", "test", ".cache/adhoc.json"] {
        assert!(
            page.contains(&format!("<td>{task}</td><td>run</td>")),
            "{task}: {page}"
        );
    }
}

/// Issue O.7: `why` on a link with 25 changed inputs lists them one per line, ten at
/// most, and counts the rest; real gcc objects, linked through the cache.
#[test]
fn issue_o_why_lists_many_changed_inputs_one_per_line() {
    let sb = Sandbox::new();
    let objects: Vec<String> = (0..25).map(|i| format!("part{i:02}.o")).collect();
    let compile = |value: u32| {
        for (i, object) in objects.iter().enumerate() {
            let main = if i == 0 {
                "int main(void) { return 0; }\n"
            } else {
                ""
            };
            sb.write(
                &format!("part{i:02}.c"),
                format!("int p{i}(void) {{ return {value}; }}\n{main}"),
            );
            sb.program("gcc")
                .args(["-c", &format!("part{i:02}.c"), "-o", object])
                .status(0);
        }
    };
    let link = || sb.cmd(["gcc"]).args(&objects).args(["-o", "app"]).status(0);
    compile(1);
    link();
    compile(2);
    link();
    let out = sb.cmd(["why", "app"]).status(0).stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "app: 2 recent misses, newest first", "{out}");
    assert!(lines[1].ends_with("  input changed: part00.o"), "{out}");
    let indent = lines[1].len() - "input changed: part00.o".len();
    for (i, line) in lines[2..11].iter().enumerate() {
        let want = format!("{}input changed: part{:02}.o", " ".repeat(indent), i + 1);
        assert_eq!(*line, want, "{out}");
    }
    assert_eq!(
        lines[11],
        format!("{}... and 15 more", " ".repeat(indent)),
        "{out}"
    );
    assert!(lines[12].ends_with("first compile of this output"), "{out}");
    assert!(lines.iter().all(|l| l.len() < 100), "{out}");
}
