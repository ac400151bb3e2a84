//! The marker a client leaves when the daemon stayed silent (`daemon.silent`, holding that
//! daemon's pid): for a while no client asks that daemon again. Read and written by the
//! rules of the wrapper's client (`daemon::client`): recent, and naming the daemon that
//! `daemon.pid` names.

use crate::bytes::{Buf, Decimal};
use crate::sys;

/// Whether the daemon of state directory `dir` stayed silent for some client within the
/// last `memory_secs` (or that cannot be told: then the usual start decides). `path` is
/// scratch room.
pub fn known(dir: &[u8], memory_secs: i64, path: &mut Buf) -> bool {
    if !at(path, dir, b"daemon.silent") {
        return true;
    }
    let marked = match sys::stat(path.with_nul(), sys::NOFOLLOW) {
        Err(sys::ENOENT) => return false,
        Err(_) => return true,
        Ok(status) => status.mtime,
    };
    let age = sys::epoch_secs() - marked;
    // Whole seconds, where the wrapper counts nanoseconds: near the end of the memory this
    // client stays away a moment longer.
    if !(0..=memory_secs).contains(&age) {
        return false;
    }
    let named = read_pid(path);
    !at(path, dir, b"daemon.pid") || named == read_pid(path)
}

/// Leaves the marker for the daemon of `dir` (when `daemon.pid` names one), as the wrapper
/// does when a daemon stays silent past its timeout.
pub fn note(dir: &[u8], path: &mut Buf) {
    if !at(path, dir, b"daemon.pid") {
        return;
    }
    let Some(pid) = read_pid(path) else {
        return;
    };
    if !at(path, dir, b"daemon.silent") {
        return;
    }
    if let Ok(fd) = sys::open(path.with_nul(), true) {
        let text = Decimal::new(u64::from(pid.unsigned_abs()), pid < 0);
        sys::write(fd, text.as_bytes());
        sys::close(fd);
    }
}

/// `dir/name` into `path`.
fn at(path: &mut Buf, dir: &[u8], name: &[u8]) -> bool {
    path.truncate(0);
    path.push(dir) && (dir.last() == Some(&b'/') || path.push(b"/")) && path.push(name)
}

/// The pid a file holds, as the wrapper reads it (`trim`, then an `i32`).
fn read_pid(path: &Buf) -> Option<i32> {
    let fd = sys::open(path.with_nul(), false).ok()?;
    let mut bytes = [0u8; 64];
    let len = sys::read(fd, &mut bytes);
    sys::close(fd);
    let text = bytes.get(..usize::try_from(len).ok()?)?;
    parse_i32(text.trim_ascii())
}

/// A decimal `i32` with an optional sign, as `str::parse` takes it.
fn parse_i32(s: &[u8]) -> Option<i32> {
    let (negative, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(d - b'0');
        if n > i64::from(i32::MAX) + 1 {
            return None;
        }
    }
    i32::try_from(if negative { -n } else { n }).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_i32;

    #[test]
    fn pids_parse_as_rust_parses_them() {
        for s in [
            "123",
            "-5",
            "+7",
            "",
            "-",
            "12a",
            "2147483647",
            "2147483648",
            "-2147483648",
        ] {
            assert_eq!(parse_i32(s.as_bytes()), s.parse::<i32>().ok(), "{s}");
        }
    }
}
