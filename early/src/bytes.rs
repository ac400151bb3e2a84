//! Byte helpers that compile to plain loops: this crate is `no_builtins`, so the compiler
//! turns none of them into calls of the C library's `memcpy`, `memcmp` or `strlen`, which
//! are not set up yet when the early client runs (and `core`'s slice comparisons call them).

/// `a == b`, byte by byte.
pub fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Whether `s` starts with `prefix`.
pub fn starts_with(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && eq(&s[..prefix.len()], prefix)
}

/// Whether `s` ends with `suffix`.
pub fn ends_with(s: &[u8], suffix: &[u8]) -> bool {
    s.len() >= suffix.len() && eq(&s[s.len() - suffix.len()..], suffix)
}

/// The index of the first `byte` in `s` at or after `from`.
pub fn find(s: &[u8], byte: u8, from: usize) -> Option<usize> {
    let mut i = from;
    while i < s.len() {
        if s[i] == byte {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// The part of `s` after its last `/` (all of it when there is none).
pub fn file_name(s: &[u8]) -> &[u8] {
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'/' {
            start = i + 1;
        }
        i += 1;
    }
    &s[start..]
}

/// The length of the NUL-terminated string at `p`.
///
/// # Safety
/// `p` must point at a NUL-terminated string.
pub unsafe fn c_len(p: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the string ends with a NUL, which stops the walk.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    n
}

/// Whether `s` is valid UTF-8 (what Rust's `String` holds): no overlong forms, no
/// surrogates, nothing past U+10FFFF.
pub fn is_utf8(s: &[u8]) -> bool {
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        let (len, min) = match b {
            0x00..=0x7f => {
                i += 1;
                continue;
            }
            0xc2..=0xdf => (2, 0x80),
            0xe0..=0xef => (3, 0x800),
            0xf0..=0xf4 => (4, 0x1_0000),
            _ => return false,
        };
        if i + len > s.len() {
            return false;
        }
        let mut code = u32::from(b) & (0x7f >> len);
        let mut j = 1;
        while j < len {
            let c = s[i + j];
            if c & 0xc0 != 0x80 {
                return false;
            }
            code = (code << 6) | u32::from(c & 0x3f);
            j += 1;
        }
        if code < min || code > 0x10_ffff || (0xd800..=0xdfff).contains(&code) {
            return false;
        }
        i += len;
    }
    true
}

/// A number written in decimal (with a `-` when negative), on the stack.
pub struct Decimal {
    digits: [u8; 21],
    start: usize,
}

impl Decimal {
    /// `n` in decimal, with a minus sign when `negative`.
    pub fn new(mut n: u64, negative: bool) -> Self {
        let mut out = Decimal {
            digits: [0; 21],
            start: 21,
        };
        loop {
            out.start -= 1;
            out.digits[out.start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if negative {
            out.start -= 1;
            out.digits[out.start] = b'-';
        }
        out
    }

    /// The digits.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

/// Copies `src` to `dst` with `rep movsb`: an instruction, never a call of `memcpy` (which
/// the compiler may otherwise emit for a loop, even in a `no_builtins` crate once LTO runs).
///
/// # Safety
/// `dst` must be valid for `src.len()` bytes and not overlap `src`.
#[inline(always)]
pub unsafe fn copy(dst: *mut u8, src: &[u8]) {
    // SAFETY: the caller's promise; the direction flag is clear (the ABI's default).
    unsafe {
        core::arch::asm!(
            "rep movsb",
            inout("rcx") src.len() => _,
            inout("rdi") dst => _,
            inout("rsi") src.as_ptr() => _,
            options(nostack, preserves_flags),
        );
    }
}

/// Scratch memory mapped once: the early client's buffers are carved from it, so no large
/// value ever lives on the stack, where moving or initializing it would call `memcpy` or
/// `memset`.
pub struct Arena {
    at: *mut u8,
    cap: usize,
    used: usize,
}

impl Arena {
    /// `cap` bytes, mapped (pages are only touched as they are written).
    pub fn map(cap: usize) -> Option<Arena> {
        let at = crate::sys::map(cap)?;
        Some(Arena { at, cap, used: 0 })
    }

    /// A buffer of `cap` bytes from the arena.
    pub fn buf(&mut self, cap: usize) -> Option<Buf> {
        let end = self.used.checked_add(cap).filter(|end| *end <= self.cap)?;
        // SAFETY: within the mapping; each buffer gets its own range.
        let at = unsafe { self.at.add(self.used) };
        self.used = end;
        Some(Buf { at, cap, len: 0 })
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: the buffers borrow nothing past the arena's life (they are dropped first
        // or never read again: the process exits or hands over to `_start`).
        unsafe { crate::sys::unmap(self.at, self.cap) };
    }
}

/// A path or name in arena memory: at most `cap - 1` bytes, kept NUL-terminated.
pub struct Buf {
    at: *mut u8,
    cap: usize,
    len: usize,
}

impl Buf {
    /// Appends `s`; false (and the buffer unchanged) when it would not fit with its NUL.
    pub fn push(&mut self, s: &[u8]) -> bool {
        if self.len + s.len() >= self.cap {
            return false;
        }
        // SAFETY: within the buffer (checked above); the arena's ranges do not overlap.
        unsafe {
            copy(self.at.add(self.len), s);
            self.len += s.len();
            self.at.add(self.len).write(0);
        }
        true
    }

    /// Drops the bytes after the first `len`.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.len = len;
            // SAFETY: len < cap.
            unsafe { self.at.add(len).write(0) };
        }
    }

    /// The bytes, without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are written.
        unsafe { core::slice::from_raw_parts(self.at, self.len) }
    }

    /// The bytes with their NUL (an empty buffer gives an empty slice: no path).
    pub fn with_nul(&self) -> &[u8] {
        let len = if self.len == 0 { 0 } else { self.len + 1 };
        // SAFETY: the NUL after the bytes is written whenever len > 0.
        unsafe { core::slice::from_raw_parts(self.at, len) }
    }

    /// All of its room, for the kernel to write into (`getcwd`, a frame), then
    /// [`Buf::set_len`].
    pub fn spare(&mut self) -> &mut [u8] {
        // SAFETY: `cap` bytes of arena memory, this buffer's alone.
        unsafe { core::slice::from_raw_parts_mut(self.at, self.cap) }
    }

    /// Takes the first `len` bytes written into [`Buf::spare`].
    pub fn set_len(&mut self, len: usize) {
        if len < self.cap {
            self.len = len;
        }
    }
}

/// `/`-joined, lexically normalized, absolute: `.` and empty parts dropped, `..` taking the
/// part before it away (the daemon's `lexically_absolute`). `path` must start with `/`.
pub fn normalize_into(path: &[u8], out: &mut Buf) -> bool {
    out.truncate(0);
    let mut start = 0;
    while start <= path.len() {
        let end = find(path, b'/', start).unwrap_or(path.len());
        let part = &path[start..end];
        if eq(part, b"..") {
            let cut = out.as_bytes().iter().rposition(|b| *b == b'/').unwrap_or(0);
            out.truncate(cut);
        } else if !part.is_empty() && !eq(part, b".") {
            let fits = out.push(b"/") && out.push(part);
            if !fits {
                return false;
            }
        }
        start = end + 1;
    }
    if out.as_bytes().is_empty() {
        return out.push(b"/");
    }
    true
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::format;

    use super::*;

    #[test]
    fn utf8_is_told_as_core_tells_it() {
        let samples: [&[u8]; 9] = [
            b"plain",
            "h\u{e9}llo \u{1F600}".as_bytes(),
            b"\xc0\xaf",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xe2\x82",
            b"\xff",
            "\u{10FFFF}".as_bytes(),
            b"",
        ];
        for s in samples {
            assert_eq!(is_utf8(s), core::str::from_utf8(s).is_ok(), "{s:?}");
        }
    }

    #[test]
    fn numbers_are_written_as_rust_writes_them() {
        for (n, negative) in [
            (0, false),
            (7, true),
            (2_147_483_648, true),
            (u64::MAX, false),
        ] {
            let want = format!("{}{n}", if negative { "-" } else { "" });
            assert_eq!(Decimal::new(n, negative).as_bytes(), want.as_bytes());
        }
    }

    #[test]
    fn paths_normalize_lexically() {
        let mut arena = Arena::map(1 << 16).unwrap();
        let mut out = arena.buf(64).unwrap();
        for (path, want) in [
            ("/a/b/../c/./d", "/a/c/d"),
            ("/usr//bin/", "/usr/bin"),
            ("/..", "/"),
            ("/", "/"),
            ("/x/y/..", "/x"),
        ] {
            assert!(normalize_into(path.as_bytes(), &mut out), "{path}");
            assert_eq!(out.as_bytes(), want.as_bytes(), "{path}");
        }
        let mut small = arena.buf(4).unwrap();
        assert!(!normalize_into(b"/abcdef", &mut small));
    }
}
