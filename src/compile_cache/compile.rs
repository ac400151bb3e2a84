//! One compile through the cache: classify, look the inputs up (direct mode: a manifest of
//! the headers the compiler reported last time, checked against the files now), deliver a
//! hit, or compile, learn the headers from an injected `-MD -MF`, and store.
//!
//! Never a stale object: any doubt (an unreadable header, a header written during the
//! compile, `__DATE__`/`__TIME__` in the source) means compiling for real.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::args::{Classified, Compile, classify, expand_response_files};
use super::compiler::Identities;
use super::headers::{Header, full_key, header_unchanged, learn_headers, search_dirs, shadowed};
use super::inflight::InFlight;
use super::invoke::{Scratch, deliver, private_outputs, run};
use super::store::Store;
use crate::daemon::protocol::Artifact;
use crate::fingerprint::{Digest, now_ns};

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

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}
