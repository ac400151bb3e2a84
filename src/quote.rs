//! Text from outside made harmless on a terminal. File names come from trees anyone may have
//! written (a cloned repository), a shared replay from a remote anyone with write access
//! fills: printed raw, an escape sequence in them could retitle the terminal, clear the
//! screen or hide a line. zccache's human messages therefore quote names as git does
//! (`core.quotePath` style, non-ASCII text left readable), and a replay that came from the
//! remote keeps its text and colours but shows every other control byte (`^[`). JSON output
//! and replays of a task's own local run stay exact.

use std::borrow::Cow;

use crate::relpath;

/// `name` as git prints a path: unchanged when it is plain, else in double quotes with C
/// escapes (`\t`, `\n`, `\"`, `\\`, other control bytes in octal: ESC is `\033`). A byte
/// that is not UTF-8, which an input-set path keeps as NUL + two hex digits
/// (`relpath`), is shown in octal as git shows it (`"bad\377.txt"`).
pub fn path(name: &str) -> Cow<'_, str> {
    if !name.chars().any(needs_escape) {
        return Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len() + 8);
    out.push('"');
    let mut chars = name.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => match relpath::escaped_byte(&name[at + 1..]) {
                Some(b) => {
                    out.push_str(&format!("\\{b:03o}"));
                    chars.nth(1);
                }
                None => escape(c, &mut out),
            },
            c if needs_escape(c) => escape(c, &mut out),
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

/// `text` (a message that may hold names, already quoted or not) with every control
/// character written as an escape, no quotes added: nothing in it can drive a terminal.
pub fn controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match is_control(c) {
            true => escape(c, &mut out),
            false => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `bytes` (a replay from the remote) safe for a terminal: text, `\n`, `\r`, `\t` and SGR
/// colour sequences (`ESC [ digits ; m`) kept; any other ESC or control byte shown in caret
/// notation (`^[`, `^G`), a C1 control (raw, or UTF-8 encoded) as `M-^[` (as `cat -v` does).
pub fn terminal_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        terminal_text(chunk.valid(), &mut out);
        for &b in chunk.invalid() {
            match b {
                0x80..0xa0 => {
                    out.extend_from_slice(b"M-");
                    caret(b - 0x80, &mut out);
                }
                _ => out.push(b),
            }
        }
    }
    out
}

/// [`terminal_bytes`] for valid UTF-8.
fn terminal_text(text: &str, out: &mut Vec<u8>) {
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        // An SGR sequence is ASCII: its end is a character boundary.
        let sgr = sgr_len(rest.as_bytes());
        if sgr > 0 {
            out.extend_from_slice(&rest.as_bytes()[..sgr]);
            rest = &rest[sgr..];
            continue;
        }
        let len = c.len_utf8();
        match u32::from(c) {
            0x09 | 0x0a | 0x0d => out.push(c as u8),
            n @ (0..0x20 | 0x7f) => caret(n as u8, out),
            n @ 0x80..0xa0 => {
                out.extend_from_slice(b"M-");
                caret((n - 0x80) as u8, out);
            }
            _ => out.extend_from_slice(&rest.as_bytes()[..len]),
        }
        rest = &rest[len..];
    }
}

/// The length of the SGR sequence (`ESC [ 0-9; m`) at the start of `bytes`, 0 if none.
fn sgr_len(bytes: &[u8]) -> usize {
    let [0x1b, b'[', params @ ..] = bytes else {
        return 0;
    };
    let digits = params
        .iter()
        .take_while(|b| b.is_ascii_digit() || **b == b';')
        .count();
    match params.get(digits) {
        Some(b'm') => digits + 3,
        _ => 0,
    }
}

/// `^@`..`^_` for 0..0x1f, `^?` for DEL.
fn caret(b: u8, out: &mut Vec<u8>) {
    out.push(b'^');
    out.push(if b == 0x7f { b'?' } else { b + 0x40 });
}

/// A character a path is quoted for: a control, or one that reorders or hides text.
fn needs_escape(c: char) -> bool {
    matches!(c, '"' | '\\') || is_control(c)
}

/// C0, DEL, C1, and the bidirectional and zero-width marks that make a name read as
/// another.
fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `c` as a C escape: a letter for the common ones, else octal per UTF-8 byte.
fn escape(c: char, out: &mut String) {
    let letter = match c {
        '\u{7}' => "\\a",
        '\u{8}' => "\\b",
        '\t' => "\\t",
        '\n' => "\\n",
        '\u{b}' => "\\v",
        '\u{c}' => "\\f",
        '\r' => "\\r",
        _ => "",
    };
    if !letter.is_empty() {
        out.push_str(letter);
        return;
    }
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        out.push_str(&format!("\\{b:03o}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_quoted_as_git_does() {
        let cases = [
            ("src/a.rs", "src/a.rs"),
            ("with space.txt", "with space.txt"),
            ("café.txt", "café.txt"),
            ("\u{1b}]0;pwned\u{7}.txt", "\"\\033]0;pwned\\a.txt\""),
            ("a\nb", "\"a\\nb\""),
            ("tab\there", "\"tab\\there\""),
            ("q\"uote", "\"q\\\"uote\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("\u{9b}2J", "\"\\302\\2332J\""),
            ("evil\u{202e}txt.exe", "\"evil\\342\\200\\256txt.exe\""),
            ("del\u{7f}", "\"del\\177\""),
            ("bad\u{0}FF\u{0}FE.txt", "\"bad\\377\\376.txt\""),
            ("dir\u{0}C3(/x.txt", "\"dir\\303(/x.txt\""),
            ("nul\u{0}zz", "\"nul\\000zz\""),
        ];
        for (name, shown) in cases {
            assert_eq!(path(name), shown, "{name:?}");
        }
    }

    #[test]
    fn controls_are_escaped_without_quotes() {
        assert_eq!(controls("2 files changed: a, b"), "2 files changed: a, b");
        assert_eq!(
            controls("x \"\\033\" y"),
            "x \"\\033\" y",
            "quoted text stays"
        );
        assert_eq!(controls("a\u{1b}[2Jb\n"), "a\\033[2Jb\\n");
    }

    #[test]
    fn terminal_bytes_keep_text_and_colours_only() {
        let cases: [(&[u8], &[u8]); 9] = [
            (b"plain\n\tline\r\n", b"plain\n\tline\r\n"),
            (b"\x1b[31merror\x1b[0m: x", b"\x1b[31merror\x1b[0m: x"),
            (b"\x1b[1;31mbold\x1b[m", b"\x1b[1;31mbold\x1b[m"),
            (b"\x1b]0;title\x07", b"^[]0;title^G"),
            (b"\x1b[2J\x1b[H", b"^[[2J^[[H"),
            (b"\x1b[", b"^[["),
            (b"bell\x07 del\x7f", b"bell^G del^?"),
            ("é € ok \u{9b}2J".as_bytes(), "é € ok M-^[2J".as_bytes()),
            (b"raw \x9b2J \xff", b"raw M-^[2J \xff"),
        ];
        for (raw, shown) in cases {
            assert_eq!(
                terminal_bytes(raw),
                shown,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }
}
