//! One compile through the cache: classify, look the inputs up (direct mode: a manifest of
//! the headers the compiler reported last time, checked against the files now), deliver a
//! hit, or compile, learn the headers from an injected `-MD -MF`, and store.
//!
//! Never a stale object: any doubt (an unreadable header, a header written during the
//! compile, `__DATE__`/`__TIME__` in the source) means compiling for real.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::args::{Classified, Compile, classify, expand_response_files};
use super::compiler::Identities;
use super::depfile::prerequisites;
use super::inflight::InFlight;
use super::store::Store;
use crate::daemon::protocol::Artifact;
use crate::fingerprint::{Digest, now_ns, write_file_atomic};
use crate::os::exit_code;

/// Env vars that change what a compile produces (or its diagnostics).
const KEYED_ENV: [&str; 12] = [
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "LIBRARY_PATH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "SOURCE_DATE_EPOCH",
    "LANG",
    "LC_ALL",
    "LC_MESSAGES",
    "LC_CTYPE",
];
/// Env vars that make gcc write files we do not know about.
const REFUSED_ENV: [&str; 2] = ["DEPENDENCIES_OUTPUT", "SUNPRO_DEPENDENCIES"];
/// Numbers this process's scratch outputs, so concurrent compiles never share one.
static SCRATCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
/// Manifests kept in memory at most.
const MANIFESTS_IN_MEMORY: usize = 8192;
/// Header sets remembered per manifest (a `-D` that flips the headers keeps both).
const MANIFEST_ENTRIES: usize = 8;

/// A compile to serve.
#[derive(Debug, Clone)]
pub struct Request {
    /// The compiler (resolved path).
    pub compiler: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where it runs.
    pub cwd: PathBuf,
    /// Its exact environment.
    pub env: Vec<(String, String)>,
    /// Bytes for its stdin (a `-` source).
    pub stdin: Vec<u8>,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// Delivered from the store.
    Hit,
    /// Compiled and stored (or not stored when it failed).
    Miss,
    /// Run uncached; the reason.
    Passthrough(&'static str),
}

/// The result the wrapper replays.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The compiler's exit status.
    pub exit_code: i32,
    /// Its stdout, byte for byte.
    pub stdout: Vec<u8>,
    /// Its stderr, byte for byte.
    pub stderr: Vec<u8>,
    /// How it was served.
    pub served: Served,
    /// Bytes of new blobs it added to the store.
    pub stored_bytes: u64,
}

/// One header as a manifest remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Header {
    path: PathBuf,
    size: u64,
    mtime_ns: i64,
    hash: Digest,
}

/// The header sets seen for one set of source-side inputs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Manifest {
    entries: Vec<Vec<Header>>,
}

/// The compile cache of one daemon.
#[derive(Debug)]
pub struct CompileCache {
    store: Store,
    identities: Identities,
    /// Compiles running now, so identical ones compile once.
    in_flight: InFlight,
    /// Manifests read or written by this daemon, so a hit parses none.
    manifests: std::sync::Mutex<std::collections::HashMap<Digest, Manifest>>,
}

impl CompileCache {
    /// A cache storing into `store`.
    pub fn new(store: Store) -> Self {
        CompileCache {
            store,
            identities: Identities::default(),
            in_flight: InFlight::default(),
            manifests: std::sync::Mutex::default(),
        }
    }

    /// Serves one compile.
    pub fn compile(&self, req: &Request) -> Outcome {
        // What response files say counts; a miss runs the expanded arguments.
        let expanded = expand_response_files(&req.args, &req.cwd);
        let compile = match classify(&expanded) {
            Classified::Cacheable(c) => c,
            Classified::Several(sources) => return self.several(req, &expanded, &sources),
            Classified::Passthrough(reason) => return run_plain(req, Served::Passthrough(reason)),
        };
        if let Some(var) = REFUSED_ENV
            .iter()
            .find(|v| req.env.iter().any(|(k, _)| k == *v))
        {
            tracing::debug!("{var} is set: not cached");
            return run_plain(req, Served::Passthrough("dependency output env var"));
        }
        match self.cached(req, &compile, &expanded) {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!("compile cache error, compiling uncached: {err}");
                run_plain(req, Served::Passthrough("cache error"))
            }
        }
    }

    /// `-c a.c b.c`: one compile per source, in parallel (hits at once, misses compiled),
    /// their output concatenated in source order, the first failing status returned.
    fn several(&self, req: &Request, expanded: &[String], sources: &[String]) -> Outcome {
        let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
            let handles: Vec<_> = sources
                .iter()
                .map(|source| {
                    let args = expanded
                        .iter()
                        .filter(|a| *a == source || !sources.contains(a))
                        .cloned()
                        .collect();
                    let one = Request {
                        args,
                        ..req.clone()
                    };
                    scope.spawn(move || self.compile(&one))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| run_plain(req, Served::Passthrough("panic")))
                })
                .collect()
        });
        let served = if outcomes.iter().all(|o| o.served == Served::Hit) {
            Served::Hit
        } else if outcomes
            .iter()
            .any(|o| matches!(o.served, Served::Passthrough(_)))
        {
            Served::Passthrough("part of a several-source compile")
        } else {
            Served::Miss
        };
        Outcome {
            exit_code: outcomes
                .iter()
                .map(|o| o.exit_code)
                .find(|c| *c != 0)
                .unwrap_or(0),
            stdout: outcomes.iter().flat_map(|o| o.stdout.clone()).collect(),
            stderr: outcomes.iter().flat_map(|o| o.stderr.clone()).collect(),
            served,
            stored_bytes: outcomes.iter().map(|o| o.stored_bytes).sum(),
        }
    }

    fn cached(&self, req: &Request, c: &Compile, expanded: &[String]) -> io::Result<Outcome> {
        let source = if c.source == "-" {
            req.stdin.clone()
        } else {
            std::fs::read(req.cwd.join(&c.source))?
        };
        if contains(&source, b"__DATE__") || contains(&source, b"__TIME__") {
            return Ok(run_plain(
                req,
                Served::Passthrough("__DATE__/__TIME__ in the source"),
            ));
        }
        let base = self.base_key(req, c, &source)?;
        if let Some(hit) = self.hit(req, c, &base)? {
            return Ok(hit);
        }
        // An identical compile running now is waited for; whoever leads looks once more, so
        // a compile that finished in between is a hit too.
        let _lead = self.in_flight.lead_or_wait((base, c.output.clone()));
        if let Some(hit) = self.hit(req, c, &base)? {
            return Ok(hit);
        }
        self.compile_and_store(req, c, expanded, &base)
    }

    /// Delivers a stored result, if the inputs match one.
    fn hit(&self, req: &Request, c: &Compile, base: &Digest) -> io::Result<Option<Outcome>> {
        let Some(artifact) = self.lookup(base, &search_dirs(req, c))? else {
            return Ok(None);
        };
        deliver(req, c, &artifact)?;
        Ok(Some(Outcome {
            exit_code: artifact.exit_code,
            stdout: artifact.stdout,
            stderr: artifact.stderr,
            served: Served::Hit,
            stored_bytes: 0,
        }))
    }

    /// The key of everything known before the compile: compiler, arguments in order,
    /// keyed env, cwd and the source's content.
    fn base_key(&self, req: &Request, c: &Compile, source: &[u8]) -> io::Result<Digest> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"zccache compile v1\0");
        hasher.update(&self.identities.of(&req.compiler)?.0);
        hasher.update(req.cwd.as_os_str().as_encoded_bytes());
        for arg in &c.key_args {
            hasher.update(&[0]);
            hasher.update(arg.as_bytes());
        }
        let env: BTreeMap<&str, &str> = req
            .env
            .iter()
            .filter(|(k, _)| KEYED_ENV.contains(&k.as_str()))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        hasher.update(format!("\0env{env:?}").as_bytes());
        hasher.update(Digest::of(source).0.as_slice());
        Ok(hasher.finalize().into())
    }

    /// The stored artifact whose recorded headers all still match, if any.
    fn lookup(&self, base: &Digest, search: &[PathBuf]) -> io::Result<Option<Artifact>> {
        for headers in self.manifest(base)?.entries {
            let valid = |h: &Header| header_unchanged(h) && !shadowed(h, search);
            if headers.iter().all(valid)
                && let Some(artifact) = self.store.get(&full_key(base, &headers))?
            {
                return Ok(Some(artifact));
            }
        }
        Ok(None)
    }

    /// Compiles into private scratch files (never reading an output path another process
    /// may be writing), delivers them atomically, and stores them when the headers can be
    /// trusted.
    fn compile_and_store(
        &self,
        req: &Request,
        c: &Compile,
        expanded: &[String],
        base: &Digest,
    ) -> io::Result<Outcome> {
        let scratch = Scratch::new();
        let args = private_outputs(expanded, c, &scratch);
        let started = now_ns();
        let (exit_code, stdout, stderr) = run(req, &args)?;
        let mut outcome = Outcome {
            exit_code,
            stdout,
            stderr,
            served: Served::Miss,
            stored_bytes: 0,
        };
        if exit_code != 0 {
            return Ok(outcome);
        }
        let mut outputs = vec![("object".to_string(), std::fs::read(&scratch.object)?)];
        let dep_text = std::fs::read_to_string(&scratch.depfile).ok();
        if c.depfile.is_some() {
            let bytes = dep_text.clone().unwrap_or_default().into_bytes();
            outputs.push(("depfile".to_string(), bytes));
        }
        let artifact = Artifact {
            outputs,
            stdout: outcome.stdout.clone(),
            stderr: outcome.stderr.clone(),
            exit_code: 0,
        };
        deliver(req, c, &artifact)?;
        let Some(headers) = dep_text.and_then(|t| learn_headers(req, c, &t, started)) else {
            return Ok(outcome);
        };
        outcome.stored_bytes = self.store.put(&full_key(base, &headers), &artifact)?;
        outcome.stored_bytes += self.remember(base, headers)?;
        Ok(outcome)
    }

    fn manifest(&self, base: &Digest) -> io::Result<Manifest> {
        if let Some(known) = self.known_manifests().get(base) {
            return Ok(known.clone());
        }
        let stored = self.store.get(&manifest_key(base))?;
        let manifest: Manifest = stored
            .and_then(|a| a.outputs.into_iter().next())
            .and_then(|(_, bytes)| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        if !manifest.entries.is_empty() {
            self.keep_manifest(*base, manifest.clone());
        }
        Ok(manifest)
    }

    /// Remembers a manifest in memory (a bounded number: past it, the memory starts afresh).
    fn keep_manifest(&self, base: Digest, manifest: Manifest) {
        let mut known = self.known_manifests();
        if known.len() >= MANIFESTS_IN_MEMORY {
            known.clear();
        }
        known.insert(base, manifest);
    }

    /// Forgets the manifests held in memory (the store was emptied).
    pub fn forget(&self) {
        self.known_manifests().clear();
    }

    fn known_manifests(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<Digest, Manifest>> {
        self.manifests.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, base: &Digest, headers: Vec<Header>) -> io::Result<u64> {
        let mut manifest = self.manifest(base)?;
        manifest.entries.retain(|h| *h != headers);
        manifest.entries.insert(0, headers);
        manifest.entries.truncate(MANIFEST_ENTRIES);
        let bytes = serde_json::to_vec(&manifest).map_err(io::Error::other)?;
        self.keep_manifest(*base, manifest);
        let artifact = Artifact {
            outputs: vec![("manifest".to_string(), bytes)],
            stdout: Vec::new(),
            stderr: Vec::new(),
            exit_code: 0,
        };
        self.store.put(&manifest_key(base), &artifact)
    }
}

/// A miss's private object and depfile paths, removed when dropped.
struct Scratch {
    object: PathBuf,
    depfile: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let n = SCRATCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stem = std::env::temp_dir().join(format!("zccache-{}-{n}", std::process::id()));
        Scratch {
            object: stem.with_extension("o"),
            depfile: stem.with_extension("d"),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.object);
        let _ = std::fs::remove_file(&self.depfile);
    }
}

/// `args` writing the object and depfile to `scratch` instead: `-o` and `-MF` redirected,
/// `-MD -MF` added when the build asked for no depfile, and the depfile's target kept the
/// build's (`-MQ <output>`) unless it named one.
fn private_outputs(args: &[String], c: &Compile, scratch: &Scratch) -> Vec<String> {
    let object = scratch.object.display().to_string();
    let depfile = scratch.depfile.display().to_string();
    let mut out = Vec::with_capacity(args.len() + 4);
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "-o" | "-MF" => {
                iter.next();
            }
            a if a.starts_with("-o") || a.starts_with("-MF") => {}
            _ => out.push(arg.clone()),
        }
    }
    out.extend(["-o".to_string(), object]);
    if c.depfile.is_none() {
        out.push("-MD".to_string());
    } else if !args
        .iter()
        .any(|a| a.starts_with("-MT") || a.starts_with("-MQ"))
    {
        out.extend(["-MQ".to_string(), c.output.clone()]);
    }
    out.extend(["-MF".to_string(), depfile]);
    out
}

/// The headers a depfile lists (the source itself left out), hashed; `None` when one cannot
/// be trusted (unreadable, or written after the compile started).
fn learn_headers(req: &Request, c: &Compile, depfile: &str, started: i64) -> Option<Vec<Header>> {
    let source = req.cwd.join(&c.source);
    let mut headers: Vec<Header> = Vec::new();
    for dep in prerequisites(depfile) {
        let path = req.cwd.join(&dep);
        if path == source || headers.iter().any(|h| h.path == path) {
            continue;
        }
        let meta = std::fs::metadata(&path).ok()?;
        let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
        if mtime_ns >= started {
            return None;
        }
        let hash = Digest::of(&std::fs::read(&path).ok()?);
        headers.push(Header {
            path,
            size: meta.size(),
            mtime_ns,
            hash,
        });
    }
    headers.sort_by(|a, b| a.path.cmp(&b.path));
    Some(headers)
}

/// True when the header is as recorded: same size and mtime, else same content.
fn header_unchanged(h: &Header) -> bool {
    let Ok(meta) = std::fs::metadata(&h.path) else {
        return false;
    };
    let mtime_ns = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
    if meta.size() == h.size && mtime_ns == h.mtime_ns {
        return true;
    }
    std::fs::read(&h.path).is_ok_and(|bytes| Digest::of(&bytes) == h.hash)
}

/// The include search path as far as the command line tells: the source's directory (for
/// quoted includes), then the `-I`/`-iquote`/`-isystem`/`-idirafter` directories in order.
fn search_dirs(req: &Request, c: &Compile) -> Vec<PathBuf> {
    let source_dir = req.cwd.join(&c.source).parent().map(Path::to_path_buf);
    source_dir
        .into_iter()
        .chain(c.include_dirs.iter().map(|d| req.cwd.join(d)))
        .collect()
}

/// True when a file that would now be found first stands earlier on the search path than
/// the header the compile used (a header newly created in front of the old one). Every
/// listed directory that contains the header is a way it may have been found; each is checked
/// (doubt means a miss). A header outside them (a system header) has its trailing path
/// components looked for in every listed directory.
fn shadowed(h: &Header, search: &[PathBuf]) -> bool {
    let other_file = |candidate: PathBuf| candidate != h.path && candidate.exists();
    let mut under_a_listed_dir = false;
    for (at, dir) in search.iter().enumerate() {
        let Ok(name) = h.path.strip_prefix(dir) else {
            continue;
        };
        under_a_listed_dir = true;
        if search[..at].iter().any(|d| other_file(d.join(name))) {
            return true;
        }
    }
    if under_a_listed_dir {
        return false;
    }
    let parts: Vec<_> = h.path.components().collect();
    (1..=parts.len().min(3)).any(|n| {
        let name: PathBuf = parts[parts.len() - n..].iter().collect();
        search.iter().any(|d| other_file(d.join(&name)))
    })
}

fn full_key(base: &Digest, headers: &[Header]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&base.0);
    for h in headers {
        hasher.update(h.path.as_os_str().as_encoded_bytes());
        hasher.update(&h.hash.0);
    }
    format!("compile/{}", hasher.finalize().to_hex())
}

fn manifest_key(base: &Digest) -> String {
    format!("manifest/{}", base.to_hex())
}

/// The env vars of `env` that are part of a compile's key (for the journal).
pub fn keyed_env(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| KEYED_ENV.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// Writes the object (and depfile) of a hit; fresh files, so they get a fresh mtime.
fn deliver(req: &Request, c: &Compile, artifact: &Artifact) -> io::Result<()> {
    for (name, bytes) in &artifact.outputs {
        let target = match name.as_str() {
            "object" => req.cwd.join(&c.output),
            "depfile" => match &c.depfile {
                Some(d) => req.cwd.join(d),
                None => continue,
            },
            _ => continue,
        };
        write_file_atomic(&target, bytes, false)?;
    }
    Ok(())
}

fn run_plain(req: &Request, served: Served) -> Outcome {
    match run(req, &req.args) {
        Ok((exit_code, stdout, stderr)) => Outcome {
            exit_code,
            stdout,
            stderr,
            served,
            stored_bytes: 0,
        },
        Err(err) => Outcome {
            exit_code: 127,
            stdout: Vec::new(),
            stderr: format!("zccache: cannot run {}: {err}\n", req.compiler.display()).into_bytes(),
            served,
            stored_bytes: 0,
        },
    }
}

/// Runs the compiler with exactly the request's environment and stdin; (status, stdout,
/// stderr).
fn run(req: &Request, args: &[String]) -> io::Result<(i32, Vec<u8>, Vec<u8>)> {
    let mut child = Command::new(&req.compiler)
        .args(args)
        .current_dir(&req.cwd)
        .env_clear()
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .stdin(if req.stdin.is_empty() {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let feeder = child.stdin.take().map(|mut pipe| {
        let bytes = req.stdin.clone();
        // A separate thread, so a compiler that writes before it reads cannot deadlock us.
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&bytes);
        })
    });
    let output = child.wait_with_output()?;
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    Ok((exit_code(output.status), output.stdout, output.stderr))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}
