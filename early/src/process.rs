//! The process's arguments and environment, read where the kernel put them: on the stack
//! at the entry point (`argc`, the `argv` pointers and a null, the `envp` pointers and a
//! null).

use crate::bytes::{c_len, eq, find, starts_with};

/// The arguments and environment of this process.
pub struct Process {
    argc: usize,
    argv: *const *const u8,
    envp: *const *const u8,
}

impl Process {
    /// Reads them from the entry point's stack pointer.
    ///
    /// # Safety
    /// `sp` must be the stack pointer the kernel started the process with.
    pub unsafe fn from_stack(sp: *const usize) -> Self {
        // SAFETY: the kernel's layout: argc, argc pointers and a null, then envp.
        unsafe {
            let argc = *sp;
            let argv = sp.add(1).cast::<*const u8>();
            Process {
                argc,
                argv,
                envp: argv.add(argc + 1),
            }
        }
    }

    /// The number of arguments.
    pub fn argc(&self) -> usize {
        self.argc
    }

    /// Argument `i`.
    pub fn arg(&self, i: usize) -> Option<&'static [u8]> {
        if i >= self.argc {
            return None;
        }
        // SAFETY: i < argc: a pointer to a NUL-terminated string (or a null).
        unsafe { c_str(*self.argv.add(i)) }
    }

    /// The environment entries (`NAME=value`), in order.
    pub fn environment(&self) -> impl Iterator<Item = &'static [u8]> {
        let envp = self.envp;
        let mut i = 0;
        core::iter::from_fn(move || {
            // SAFETY: the list ends with a null pointer, where the walk stops for good.
            let entry = unsafe { c_str(*envp.add(i)) }?;
            i += 1;
            Some(entry)
        })
    }

    /// The value of the first `name=` entry, as `getenv` finds it.
    pub fn var(&self, name: &[u8]) -> Option<&'static [u8]> {
        self.environment()
            .find(|entry| starts_with(entry, name) && entry.get(name.len()) == Some(&b'='))
            .and_then(|entry| entry.get(name.len() + 1..))
    }

    /// Whether variable `name` is set to something other than empty or `0`.
    pub fn flag(&self, name: &[u8]) -> bool {
        self.var(name)
            .is_some_and(|v| !v.is_empty() && !eq(v, b"0"))
    }
}

/// An environment entry split as Rust's `std::env::vars` splits it: at the first `=` after
/// the first byte; `None` for an entry it skips (empty, or without `=`).
pub fn split_entry(entry: &[u8]) -> Option<(&[u8], &[u8])> {
    if entry.is_empty() {
        return None;
    }
    let at = find(entry, b'=', 1)?;
    Some((&entry[..at], &entry[at + 1..]))
}

/// The NUL-terminated string at `p`.
///
/// # Safety
/// `p` must be null or point at a NUL-terminated string that lives as long as the process.
unsafe fn c_str(p: *const u8) -> Option<&'static [u8]> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the caller's promise.
    Some(unsafe { core::slice::from_raw_parts(p, c_len(p)) })
}
