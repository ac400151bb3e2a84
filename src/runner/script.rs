//! Reading a `sh -c` script for the programs it starts, so that a string command keys its
//! tools as an argv command does (`cargo test --quiet` keys cargo, not only `sh`).
//!
//! This is not a shell: it splits the script into simple commands (at `;`, `&&`, `||`, `|`,
//! `&`, newlines and parentheses), passes leading `VAR=value` assignments, redirections and
//! the keywords that only introduce a command (`if`, `then`, `do`, `!`, `{`, ...), and takes
//! the next word as the program. What it cannot read that way (command substitution, `eval`,
//! a sourced file, a function, `case`, a program named by an expansion) is named in
//! [`Reading::unread`]; the rest is still read. Shell builtins start no program and are left
//! out.

/// The programs a script starts, as far as it can be read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reading {
    /// Each distinct program with its first argument when that selects a rustup toolchain
    /// (`cargo +nightly`), in the order they first appear.
    pub commands: Vec<Vec<String>>,
    /// What could not be read, each once, in the order met.
    pub unread: Vec<&'static str>,
}

/// One lexical piece of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A word: its text with quotes removed, its text as written, and whether it holds an
    /// expansion (`$x`, `$(...)`, backquotes) whose value only the shell knows.
    Word {
        text: String,
        raw: String,
        expands: bool,
    },
    /// Ends a simple command: `;`, `&`, `|`, `&&`, `||`, `;;`, a newline, `(` or `)`.
    Separator(String),
    /// A redirection operator; the next word is its target.
    Redirect,
}

/// Words that introduce the command after them.
const LEADING_KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "exec",
    "command",
];

/// Builtins of `sh` (dash) and bash: the shell runs them itself, never from `PATH`.
const BUILTINS: &[&str] = &[
    ":", "[", "alias", "bg", "break", "cd", "continue", "echo", "exit", "export", "false", "fg",
    "getopts", "hash", "jobs", "kill", "local", "printf", "pwd", "read", "readonly", "return",
    "set", "shift", "test", "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset",
    "wait",
];

/// Reads `script` for the programs it starts.
pub fn read(script: &str) -> Reading {
    let mut state = State::default();
    let tokens = tokenize(script, &mut state.reading.unread);
    let mut segments = tokens.split(|t| matches!(t, Token::Separator(_)));
    while let Some(segment) = segments.next() {
        // `name ( )`: a function definition, its body the commands after.
        if let [Token::Word { text, .. }] = segment
            && next_is_function_body(&tokens, segment)
        {
            state.function(text);
            continue;
        }
        if state.segment(segment) == Some("case") {
            // Its patterns (`a)`) are no commands: pass them up to `esac`.
            skip_case(&mut segments);
        }
    }
    let State {
        mut reading,
        functions,
        ..
    } = state;
    reading.commands.retain(|c| !functions.contains(&c[0]));
    reading
}

/// What reading has found so far.
#[derive(Default)]
struct State {
    reading: Reading,
    /// Functions the script defines (calling one starts no program).
    functions: Vec<String>,
    /// A `cd` was met: a relative program path no longer resolves from the task's directory.
    after_cd: bool,
}

impl State {
    fn function(&mut self, name: &str) {
        self.note("a function definition");
        self.functions.push(name.to_string());
    }

    fn note(&mut self, what: &'static str) {
        note(&mut self.reading.unread, what);
    }

    /// Reads one simple command; returns the keyword it starts with when the caller must
    /// handle what follows (`case`).
    fn segment(&mut self, segment: &[Token]) -> Option<&'static str> {
        let (at, words) = command_words(segment, &mut self.reading.unread);
        let (program, raw, expands) = words.first()?;
        match program.as_str() {
            _ if *expands => self.note(expansion_kind(raw)),
            "eval" => self.note("eval"),
            "." | "source" => self.note("source or ."),
            "function" => {
                if let Some((name, ..)) = words.get(1) {
                    self.function(name);
                }
                // The body may begin in this segment: `function f { gcc x.c; }`.
                let body = segment[at..].iter().skip(2);
                let rest: Vec<Token> = body.cloned().collect();
                self.segment(&rest);
            }
            "case" => {
                self.note("case");
                return Some("case");
            }
            "for" | "select" => {}
            "cd" => self.after_cd = true,
            _ if BUILTINS.contains(&program.as_str()) => {}
            _ if self.after_cd && program.contains('/') && !program.starts_with('/') => {
                self.note("a relative program after cd");
            }
            _ => add_command(&mut self.reading.commands, program, words.get(1)),
        }
        None
    }
}

/// A word as [`Token::Word`] holds it: (text, raw text, expands).
type Word = (String, String, bool);

/// The words of one simple command from its program on (assignments, redirections,
/// leading keywords and the options of `exec`/`command` passed), and the index in
/// `segment` of the program's token.
fn command_words(segment: &[Token], unread: &mut Vec<&'static str>) -> (usize, Vec<Word>) {
    let mut words = Vec::new();
    let mut at = segment.len();
    let mut redirect_target = false;
    let mut after_wrapper = false;
    for (i, token) in segment.iter().enumerate() {
        let Token::Word { text, raw, expands } = token else {
            redirect_target = true;
            continue;
        };
        if std::mem::take(&mut redirect_target) {
            continue;
        }
        if words.is_empty() {
            if let Some(name) = assigned_name(raw) {
                if name == "PATH" {
                    note(unread, "a PATH assignment");
                }
                continue;
            }
            let keyword = !expands && text == raw && LEADING_KEYWORDS.contains(&text.as_str());
            if keyword || (after_wrapper && text.starts_with('-')) {
                after_wrapper |= text == "exec" || text == "command";
                continue;
            }
            at = i;
        }
        words.push((text.clone(), raw.clone(), *expands));
    }
    (at, words)
}

/// The variable `raw` assigns (`NAME=...`, the name unquoted), if it is an assignment.
fn assigned_name(raw: &str) -> Option<&str> {
    let (name, _) = raw.split_once('=')?;
    let mut chars = name.chars();
    let first = chars.next()?;
    let valid = (first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid.then_some(name)
}

/// Whether the tokens right after `segment` are `(` `)`: a function definition.
fn next_is_function_body(tokens: &[Token], segment: &[Token]) -> bool {
    let Some(last) = segment.last() else {
        return false;
    };
    let Some(at) = tokens.iter().position(|t| std::ptr::eq(t, last)) else {
        return false;
    };
    let open = Token::Separator("(".into());
    let close = Token::Separator(")".into());
    tokens.get(at + 1) == Some(&open) && tokens.get(at + 2) == Some(&close)
}

/// What kind of expansion names a program.
fn expansion_kind(raw: &str) -> &'static str {
    if raw.contains("$(") || raw.contains('`') {
        "command substitution"
    } else {
        "a program named by a variable"
    }
}

/// Passes the segments of a `case` up to its `esac` (its patterns are no commands).
fn skip_case<'a>(segments: &mut impl Iterator<Item = &'a [Token]>) {
    for segment in segments {
        let esac = segment
            .iter()
            .any(|t| matches!(t, Token::Word { raw, .. } if raw == "esac"));
        if esac {
            return;
        }
    }
}

fn add_command(commands: &mut Vec<Vec<String>>, program: &str, next: Option<&Word>) {
    let mut command = vec![program.to_string()];
    if let Some((arg, _, false)) = next.filter(|(arg, ..)| arg.starts_with('+')) {
        command.push(arg.clone());
    }
    if !commands.contains(&command) {
        commands.push(command);
    }
}

fn note(unread: &mut Vec<&'static str>, what: &'static str) {
    if !unread.contains(&what) {
        unread.push(what);
    }
}

/// Splits `script` into words, separators and redirections, skipping comments and the
/// bodies of here-documents.
fn tokenize(script: &str, unread: &mut Vec<&'static str>) -> Vec<Token> {
    let mut lexer = Lexer {
        chars: script.chars().collect(),
        at: 0,
        tokens: Vec::new(),
        heredocs: Vec::new(),
    };
    lexer.run(unread);
    lexer.tokens
}

struct Lexer {
    chars: Vec<char>,
    at: usize,
    tokens: Vec<Token>,
    /// Delimiters of here-documents whose bodies start at the next newline (and whether
    /// leading tabs are stripped, `<<-`).
    heredocs: Vec<(String, bool)>,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn run(&mut self, unread: &mut Vec<&'static str>) {
        while let Some(c) = self.peek(0) {
            match c {
                ' ' | '\t' => self.at += 1,
                '\\' if self.peek(1) == Some('\n') => self.at += 2,
                '\n' => {
                    self.at += 1;
                    self.separator("\n");
                    self.skip_heredoc_bodies();
                }
                '#' => self.skip_line(),
                ';' | '&' | '|' | '(' | ')' => self.operator(c),
                '<' | '>' => self.redirect(),
                _ => self.word(unread),
            }
        }
    }

    fn separator(&mut self, text: &str) {
        self.tokens.push(Token::Separator(text.to_string()));
    }

    fn operator(&mut self, c: char) {
        self.at += 1;
        let doubled = matches!(c, ';' | '&' | '|') && self.peek(0) == Some(c);
        let to_redirect = c == '&' && self.peek(0) == Some('>');
        if to_redirect {
            return self.redirect();
        }
        if doubled || (c == '|' && self.peek(0) == Some('&')) {
            self.at += 1;
        }
        self.separator(&c.to_string());
    }

    /// `<`, `>`, `>>`, `<&`, `>&`, `<>`, `>|`, and `<<WORD` (a here-document).
    fn redirect(&mut self) {
        let heredoc = self.peek(0) == Some('<') && self.peek(1) == Some('<');
        while matches!(self.peek(0), Some('<' | '>' | '&' | '|')) {
            self.at += 1;
        }
        if heredoc {
            let strip = self.peek(0) == Some('-');
            if strip {
                self.at += 1;
            }
            while matches!(self.peek(0), Some(' ' | '\t')) {
                self.at += 1;
            }
            let mut ignored = Vec::new();
            let (delimiter, _, _) = self.read_word(&mut ignored);
            self.heredocs.push((delimiter, strip));
            return;
        }
        self.tokens.push(Token::Redirect);
    }

    fn word(&mut self, unread: &mut Vec<&'static str>) {
        let (text, raw, expands) = self.read_word(unread);
        // `2>out`: the digits are the descriptor of a redirection.
        let descriptor = !raw.is_empty() && raw.chars().all(|c| c.is_ascii_digit());
        if descriptor && matches!(self.peek(0), Some('<' | '>')) {
            return;
        }
        self.tokens.push(Token::Word { text, raw, expands });
    }

    /// One word up to an unquoted blank or operator: (unquoted text, raw text, expands).
    fn read_word(&mut self, unread: &mut Vec<&'static str>) -> (String, String, bool) {
        let start = self.at;
        let mut text = String::new();
        let mut expands = false;
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek(0) {
            match (quote, c) {
                (None, ' ' | '\t' | '\n' | ';' | '&' | '|' | '(' | ')' | '<' | '>') => break,
                (None | Some('"'), '\\') => {
                    if let Some(next) = self.peek(1).filter(|n| *n != '\n') {
                        text.push(next);
                    }
                    self.at += 2;
                    continue;
                }
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), _) if q == c => quote = None,
                (None | Some('"'), '$' | '`') => {
                    expands = true;
                    self.expansion(unread);
                    continue;
                }
                _ => text.push(c),
            }
            self.at += 1;
        }
        let raw: String = self.chars[start..self.at.min(self.chars.len())]
            .iter()
            .collect();
        (text, raw, expands)
    }

    /// Passes `$name`, `${...}`, `$(...)`, `$((...))` or a backquoted command; a command
    /// substitution is noted as unread.
    fn expansion(&mut self, unread: &mut Vec<&'static str>) {
        let c = self.peek(0);
        self.at += 1;
        match (c, self.peek(0)) {
            (Some('`'), _) => {
                note(unread, "command substitution");
                while let Some(c) = self.peek(0) {
                    self.at += if c == '\\' { 2 } else { 1 };
                    if c == '`' {
                        break;
                    }
                }
            }
            (_, Some('(')) => {
                if self.peek(1) != Some('(') {
                    note(unread, "command substitution");
                }
                self.balanced('(', ')');
            }
            (_, Some('{')) => self.balanced('{', '}'),
            _ => {
                while self
                    .peek(0)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.at += 1;
                }
                if self.peek(0).is_some_and(|c| "@*#?$!-".contains(c)) {
                    self.at += 1;
                }
            }
        }
    }

    /// Passes from an `open` to its matching `close`, skipping quoted text.
    fn balanced(&mut self, open: char, close: char) {
        let mut depth = 0usize;
        let mut quote: Option<char> = None;
        while let Some(c) = self.peek(0) {
            self.at += 1;
            match (quote, c) {
                (_, '\\') => self.at += 1,
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), _) if q == c => quote = None,
                (None, _) if c == open => depth += 1,
                (None, _) if c == close => {
                    depth -= 1;
                    if depth == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    fn skip_line(&mut self) {
        while self.peek(0).is_some_and(|c| c != '\n') {
            self.at += 1;
        }
    }

    /// Passes the bodies of the here-documents begun on the line just ended.
    fn skip_heredoc_bodies(&mut self) {
        for (delimiter, strip) in std::mem::take(&mut self.heredocs) {
            while self.at < self.chars.len() {
                let start = self.at;
                self.skip_line();
                let line: String = self.chars[start..self.at].iter().collect();
                self.at += 1;
                let line = if strip {
                    line.trim_start_matches('\t')
                } else {
                    &line
                };
                if line == delimiter {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(script: &str) -> Vec<String> {
        read(script)
            .commands
            .into_iter()
            .map(|c| c.join(" "))
            .collect()
    }

    #[test]
    fn the_program_of_each_simple_command() {
        let cases: &[(&str, &[&str])] = &[
            ("cargo test --quiet", &["cargo"]),
            ("cargo fmt && cargo clippy -- -D warnings", &["cargo"]),
            ("a; b && c || d | e & f", &["a", "b", "c", "d", "e", "f"]),
            ("a\nb\n\n  c", &["a", "b", "c"]),
            ("RUST_LOG=x FOO='a b' cargo test", &["cargo"]),
            (
                "cargo +nightly fmt; cargo test",
                &["cargo +nightly", "cargo"],
            ),
            ("\"cargo\" test", &["cargo"]),
            ("c\\argo test", &["cargo"]),
            ("./tools/gen.sh > out.txt 2>&1", &["./tools/gen.sh"]),
            (">log 2> err make all", &["make"]),
            ("make <in; cat < x | sort", &["make", "cat", "sort"]),
            (
                "if make; then gcc x.c; else clang x.c; fi",
                &["make", "gcc", "clang"],
            ),
            ("while read l; do grep x; done", &["grep"]),
            ("for f in a b c; do rustfmt $f; done", &["rustfmt"]),
            ("(cd sub && make) || ! ninja", &["make", "ninja"]),
            ("{ cargo build; }", &["cargo"]),
            ("exec sleep 30", &["sleep"]),
            ("command -p cargo test", &["cargo"]),
            ("echo $$ > \"$MARKS/a.pid\"; exec sleep 30", &["sleep"]),
            ("cd x; export A=1; set -e; true", &[]),
            ("cargo test # then | rm -rf x", &["cargo"]),
            ("cat <<EOF\nnot a | command\nEOF\nmake", &["cat", "make"]),
            ("cat <<-'END'\n\tnot here\n\tEND\nmake", &["cat", "make"]),
            ("cargo test \\\n  --quiet", &["cargo"]),
            ("echo \"a;b|c\" 'd && e'", &[]),
            ("x=$(date) cargo test", &["cargo"]),
            ("cmd |& tee log", &["cmd", "tee"]),
            ("cmd &> log", &["cmd"]),
        ];
        for (script, expected) in cases {
            assert_eq!(programs(script), *expected, "{script:?}");
        }
    }

    #[test]
    fn what_cannot_be_read_is_named_and_the_rest_read() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("cargo test", &["cargo"], &[]),
            (
                "$(which cargo) test; make",
                &["make"],
                &["command substitution"],
            ),
            ("`which cargo` test", &[], &["command substitution"]),
            ("echo $(date); make", &["make"], &["command substitution"]),
            ("echo $((1+2)); make", &["make"], &[]),
            ("$CARGO test", &[], &["a program named by a variable"]),
            ("\"${TOOL}\" x", &[], &["a program named by a variable"]),
            ("eval \"$CMD\"; make", &["make"], &["eval"]),
            (". ./env.sh; make", &["make"], &["source or ."]),
            ("f() { gcc x.c; }; f", &["gcc"], &["a function definition"]),
            (
                "function f { gcc x.c; }",
                &["gcc"],
                &["a function definition"],
            ),
            (
                "case $x in a) make;; b) ninja;; esac; cargo",
                &["cargo"],
                &["case"],
            ),
            (
                "PATH=/opt/bin cargo test",
                &["cargo"],
                &["a PATH assignment"],
            ),
            (
                "cd sub && ./run.sh; /bin/ls",
                &["/bin/ls"],
                &["a relative program after cd"],
            ),
        ];
        for (script, expected, unread) in cases {
            let reading = read(script);
            let got: Vec<String> = reading.commands.iter().map(|c| c.join(" ")).collect();
            assert_eq!(got, *expected, "{script:?}");
            assert_eq!(reading.unread, *unread, "{script:?}");
        }
    }
}
