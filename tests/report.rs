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
