//! Whether the early client takes a call, and what it sends: the checks the wrapper makes
//! (a C compiler driver, arguments it can send, the compiler as `execvp` finds it, the
//! state directory this user's own) made the same way, and anything unusual declined.

use crate::Setup;
use crate::bytes::{Arena, Buf, eq, file_name, find, is_utf8, normalize_into};
use crate::process::{Process, split_entry};
use crate::rules;
use crate::silent;
use crate::sys;

/// Room for one path.
const PATH_MAX: usize = 4096;
/// A path in arena memory.
pub type PathBuf = Buf;

/// A call the early client serves.
pub struct Plan {
    /// The working directory, normalized.
    pub cwd: PathBuf,
    /// The compiler as found, normalized.
    pub compiler: PathBuf,
    /// The state directory.
    pub dir: PathBuf,
    /// The daemon's socket.
    pub socket: PathBuf,
    /// `ZCCACHE_SESSION_ID`, when the call belongs to a session.
    pub session: Option<&'static [u8]>,
    /// Where the compiler's arguments start in `argv`.
    pub args_from: usize,
    /// The client's umask and terminal, sent with the environment.
    pub client: Client,
}

/// What the request says of this process besides its environment.
#[derive(Clone, Copy)]
pub struct Client {
    /// The umask.
    pub umask: u32,
    /// Whether stderr is a terminal.
    pub terminal: bool,
}

impl Client {
    /// This process's, read once (the umask by setting it and setting it back).
    pub fn now() -> Self {
        Client {
            umask: sys::umask() & 0o7777,
            terminal: sys::is_terminal(2),
        }
    }
}

impl Plan {
    /// An empty plan whose paths live in `arena`.
    pub fn new(arena: &mut Arena) -> Option<Self> {
        Some(Plan {
            cwd: arena.buf(PATH_MAX)?,
            compiler: arena.buf(PATH_MAX)?,
            dir: arena.buf(PATH_MAX)?,
            socket: arena.buf(PATH_MAX)?,
            session: None,
            args_from: 2,
            client: Client {
                umask: 0o022,
                terminal: false,
            },
        })
    }
}

/// How the compiler and its arguments stand in `argv`, as the wrapper reads them.
#[derive(Clone, Copy)]
pub struct Shape {
    /// The compiler as named: `gcc`, `/usr/bin/gcc`.
    pub tool: &'static [u8],
    /// Where its arguments start in `argv`.
    pub args_from: usize,
}

/// The call's shape: `gcc ARGS` through a symlink named like a compiler (`gcc -> zccache`),
/// `zccache -- gcc ARGS`, or `zccache gcc ARGS`.
pub fn shape(p: &Process) -> Option<Shape> {
    // `argv[0]` as `Path::file_name` reads it: a last component that is a plain name.
    let me = p.arg(0)?;
    let name = file_name(me);
    if !is_utf8(me) || name.is_empty() || eq(name, b".") || eq(name, b"..") {
        return None;
    }
    if rules::masquerades(name) {
        return Some(Shape {
            tool: name,
            args_from: 1,
        });
    }
    match p.arg(1)? {
        b"--" => Some(Shape {
            tool: p.arg(2)?,
            args_from: 3,
        }),
        tool => Some(Shape { tool, args_from: 2 }),
    }
}

/// The shape of this process's call if it is one the early client may take, by its
/// arguments and environment alone (no system call but `fcntl` on the standard
/// descriptors): a C compiler driver, with arguments and an environment it can send.
pub fn wanted(p: &Process, setup: &Setup) -> Option<Shape> {
    let n = &setup.names;
    let off = p.var(n.early.as_bytes()).is_some_and(|v| eq(v, b"0"));
    if off || p.flag(n.no_daemon.as_bytes()) {
        return None;
    }
    let shape = shape(p)?;
    let sendable = is_utf8(shape.tool)
        && rules::is_c_driver(file_name(shape.tool))
        && arguments_sendable(p, shape.args_from)
        && environment_sendable(p)
        && (0..3).all(sys::is_open);
    sendable.then_some(shape)
}

/// The plan for a [`wanted`] call of `shape`, its paths in `arena`; `None` when the usual
/// start should serve it.
pub fn plan(p: &Process, setup: &Setup, shape: Shape, arena: &mut Arena) -> Option<Plan> {
    let mut out = Plan::new(arena)?;
    out.args_from = shape.args_from;
    let mut cwd = arena.buf(PATH_MAX)?;
    let len = sys::getcwd(cwd.spare())?;
    cwd.set_len(len);
    is_utf8(cwd.as_bytes()).then_some(())?;
    normalize_into(cwd.as_bytes(), &mut out.cwd).then_some(())?;
    let mut scratch = arena.buf(PATH_MAX)?;
    let tool = shape.tool;
    resolve(p, tool, cwd.as_bytes(), &mut scratch, &mut out.compiler)?;
    is_utf8(out.compiler.as_bytes()).then_some(())?;
    state_dir(p, setup, cwd.as_bytes(), &mut out.dir)?;
    let silent_secs = i64::from(setup.silent_secs);
    if silent::known(out.dir.as_bytes(), silent_secs, &mut scratch) {
        return None;
    }
    joined(&mut out.socket, out.dir.as_bytes(), b"daemon.sock")?;
    out.session = p
        .var(setup.names.session.as_bytes())
        .filter(|s| !s.is_empty());
    out.client = Client::now();
    Some(out)
}

/// Every argument from `from` on is UTF-8, reaches no file of this process, and no source
/// is read from stdin.
fn arguments_sendable(p: &Process, from: usize) -> bool {
    let mut i = from;
    while let Some(arg) = p.arg(i) {
        let after_output = i > from && p.arg(i - 1).is_some_and(rules::is_output_flag);
        if !is_utf8(arg)
            || rules::names_process_file(arg)
            || (rules::names_stdin(arg) && !after_output)
        {
            return false;
        }
        i += 1;
    }
    true
}

/// Every environment entry is UTF-8 (the wrapper sends them as strings).
fn environment_sendable(p: &Process) -> bool {
    p.environment().all(is_utf8)
}

/// The compiler as the wrapper finds it: a name with a `/` against the working directory,
/// else the first executable of that name on `PATH` that is not this binary; normalized
/// into `compiler` (`candidate` is scratch room).
fn resolve(
    p: &Process,
    tool: &[u8],
    cwd: &[u8],
    candidate: &mut PathBuf,
    compiler: &mut PathBuf,
) -> Option<()> {
    let me = sys::stat(b"/proc/self/exe\0", 0)
        .ok()
        .map(|s| (s.dev, s.ino))?;
    let found = if find(tool, b'/', 0).is_some() {
        joined(candidate, cwd, tool)?;
        sys::stat(candidate.with_nul(), 0)
            .is_ok_and(|s| s.mode & sys::S_IFMT == sys::S_IFREG && (s.dev, s.ino) != me)
    } else {
        on_path(p.var(b"PATH")?, tool, me, candidate)?
    };
    (found && normalize_into(candidate.as_bytes(), compiler)).then_some(())
}

/// Looks `tool` up on `path`'s absolute entries, in order; `None` at an entry this client
/// does not follow (empty or relative: the wrapper resolves those).
fn on_path(path: &[u8], tool: &[u8], me: (u64, u64), candidate: &mut PathBuf) -> Option<bool> {
    let mut start = 0;
    while start <= path.len() {
        let end = find(path, b':', start).unwrap_or(path.len());
        let dir = &path[start..end];
        if dir.first() != Some(&b'/') {
            return None;
        }
        joined(candidate, dir, tool)?;
        let runnable = sys::stat(candidate.with_nul(), 0).is_ok_and(|s| {
            s.mode & sys::S_IFMT == sys::S_IFREG && s.mode & 0o111 != 0 && (s.dev, s.ino) != me
        });
        if runnable {
            return Some(true);
        }
        start = end + 1;
    }
    Some(false)
}

/// `base` joined with `rest` as `Path::join` joins them (an absolute `rest` replaces it).
fn joined(out: &mut PathBuf, base: &[u8], rest: &[u8]) -> Option<()> {
    out.truncate(0);
    if rest.first() == Some(&b'/') {
        return out.push(rest).then_some(());
    }
    out.push(base).then_some(())?;
    append(out, rest)
}

/// `rest` appended to `out` as `Path::push` appends a relative path.
fn append(out: &mut PathBuf, rest: &[u8]) -> Option<()> {
    let slash = out.as_bytes().last() == Some(&b'/');
    ((slash || out.push(b"/")) && out.push(rest)).then_some(())
}

/// This user's state directory (`ZCCACHE_DIR`, else `$XDG_CACHE_HOME/zccache`, else
/// `~/.cache/zccache`) into `dir`, if it is one the wrapper would use: a directory of this
/// user that nobody else can write.
fn state_dir(p: &Process, setup: &Setup, cwd: &[u8], dir: &mut PathBuf) -> Option<()> {
    let nonempty = |name: &[u8]| p.var(name).filter(|v| !v.is_empty());
    match (
        nonempty(setup.names.dir.as_bytes()),
        nonempty(b"XDG_CACHE_HOME"),
    ) {
        (Some(d), _) => joined(dir, cwd, d)?,
        (None, Some(cache)) => {
            joined(dir, cwd, cache)?;
            append(dir, b"zccache")?;
        }
        // An empty HOME makes the directory relative to the working directory, as there.
        (None, None) => match p.var(b"HOME")? {
            b"" => joined(dir, cwd, b".cache/zccache")?,
            home => {
                joined(dir, cwd, home)?;
                append(dir, b".cache/zccache")?;
            }
        },
    }
    let owned = sys::stat(dir.with_nul(), sys::NOFOLLOW).is_ok_and(|s| {
        s.mode & sys::S_IFMT == sys::S_IFDIR && s.uid == sys::geteuid() && s.mode & 0o022 == 0
    });
    owned.then_some(())
}

/// The environment the wrapper sends: each entry split as `std::env::vars` splits it, then
/// the client's umask and, for a terminal on stderr, the terminal flag.
pub fn each_env_pair(p: &Process, plan: &Plan, setup: &Setup, mut each: impl FnMut(&[u8], &[u8])) {
    for (key, value) in p.environment().filter_map(split_entry) {
        each(key, value);
    }
    let mut octal = [0u8; 4];
    let mut digits = 0;
    let mask = plan.client.umask;
    let mut shift = 9;
    while shift > 0 && (mask >> shift) & 7 == 0 {
        shift -= 3;
    }
    loop {
        octal[digits] = b'0' + ((mask >> shift) & 7) as u8;
        digits += 1;
        if shift == 0 {
            break;
        }
        shift -= 3;
    }
    each(setup.names.umask.as_bytes(), &octal[..digits]);
    if plan.client.terminal {
        each(setup.names.terminal.as_bytes(), b"1");
    }
}
