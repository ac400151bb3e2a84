//! One compile through the cache: classify, look the inputs up (direct mode: a manifest of
//! the headers the compiler reported last time, checked against the files now), deliver a
//! hit, or compile, learn the headers from an injected `-MD -MF`, and store.
//!
//! Never a stale object: any doubt (an unreadable header, a header written during the
//! compile, `__DATE__`/`__TIME__` in the source) means compiling for real.

use std::io;

use super::args::{
    Classified, Compile, classify, expand_response_files, is_c_driver, names_a_source, names_stdin,
    uncached_output,
};
use super::colour;
use super::compiler::Identities;
use super::depfile::{Flavor, keep_prerequisites, prerequisites};
use super::headers::{
    Header, Learned, SearchPath, full_key, header_unchanged, learn_headers, uses_the_clock,
};
use super::inflight::InFlight;
use super::invoke::{Scratch, ScratchDir, deliver, private_outputs, run_miss, run_plain};
use super::keying;
use super::link::LinkCache;
use super::link_args::{classify_archive, classify_link, is_archiver, is_linker};
use super::manifest::Manifest;
use super::miss_reason::{KeyParts, MissMemory};
use super::preprocessed::preprocessed_key;
use super::profile::{Phase, Profile, timed};
use super::request::{Outcome, Request, Served};
use super::rust::delegated::Delegated;
use super::rust::store_job::StoreJob;
use super::rust::{self, compile::RustCache};
use super::space::{self, OutOfSpace};
use super::store::Store;
use super::system_dirs::SystemDirs;
use crate::compile_cache::artifact::Artifact;
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
/// The passthrough reason of a several-source compile some part of which was not cached.
const SEVERAL: &str = "part of a several-source compile";
/// Manifests kept in memory at most.
const MANIFESTS_IN_MEMORY: usize = 8192;

/// The header sets seen for one set of source-side inputs.
type Headers = Manifest<Vec<Header>>;
/// Where C/C++ manifests are stored (`manifest/<base>`).
const MANIFEST_KIND: &str = "manifest";

/// The compile cache of one daemon.
#[derive(Debug)]
pub struct CompileCache {
    store: Store,
    identities: Identities,
    system_dirs: SystemDirs,
    rust: RustCache,
    links: LinkCache,
    /// Compiles running now, so identical ones compile once.
    in_flight: InFlight,
    /// Manifests read or written by this daemon, so a hit parses none.
    manifests: std::sync::Mutex<std::collections::HashMap<Digest, Headers>>,
    /// Where misses write their outputs before delivery.
    scratch: ScratchDir,
    /// The key parts of each output's last miss, to say why the next one missed.
    misses: MissMemory,
    /// When compiles went without the cache for want of space.
    space: std::sync::Arc<OutOfSpace>,
}

impl CompileCache {
    /// A cache storing into `store`, its misses writing into `scratch`.
    pub fn new(store: Store, scratch: ScratchDir) -> Self {
        let space = std::sync::Arc::new(OutOfSpace::default());
        CompileCache {
            rust: RustCache::new(store.clone(), std::sync::Arc::clone(&space)),
            links: LinkCache::new(
                store.clone(),
                scratch.clone(),
                std::sync::Arc::clone(&space),
            ),
            scratch,
            store,
            identities: Identities::default(),
            system_dirs: SystemDirs::default(),
            in_flight: InFlight::default(),
            manifests: std::sync::Mutex::default(),
            misses: MissMemory::default(),
            space,
        }
    }

    /// Serves one compile.
    pub fn compile(&self, req: &Request) -> Outcome {
        if rust::is_rustc(&req.compiler) || rust::is_clippy_driver(&req.compiler) {
            return self.rust.compile(req, &self.identities, &self.misses);
        }
        let outcome = self.compile_c(req);
        let outcome = self.rescued(req, outcome);
        self.note_passthrough(req, &outcome);
        outcome
    }

    /// Remembers a passthrough's reason with the misses of what it wrote, for `zccache
    /// why OUTPUT` (a several-source compile's parts are remembered each on its own).
    fn note_passthrough(&self, req: &Request, outcome: &Outcome) {
        let Served::Passthrough(reason) = outcome.served else {
            return;
        };
        let output = match is_archiver(tool_name(&req.compiler)) {
            true => req
                .args
                .iter()
                .skip(1)
                .find(|a| !a.starts_with('-'))
                .cloned(),
            false if reason == SEVERAL => None,
            false => uncached_output(&req.args),
        };
        if let Some(output) = output {
            let output = crate::paths::lexically_absolute(&req.cwd, std::path::Path::new(&output));
            self.misses.record_passthrough(&output, reason);
        }
    }

    /// A C/C++ compile, or a C driver's link line.
    fn compile_c(&self, req: &Request) -> Outcome {
        let name = tool_name(&req.compiler);
        if is_archiver(name) || is_linker(name) {
            return self.link_uncaught(req);
        }
        // What response files say counts; a miss runs the expanded arguments.
        let expanded = expand_response_files(&req.args, &req.cwd);
        match classify(&expanded) {
            Classified::Cacheable(c) => self.compile_one(req, &c, &expanded),
            Classified::Several(sources) => self.several(req, &expanded, &sources),
            Classified::Passthrough(reason) => {
                // A C driver's line without -c links, compiling its sources first if it
                // names any: cached as a link (and compiles) when it can be.
                let compiling = expanded.iter().any(|a| a == "-c");
                if compiling || !is_c_driver(&req.compiler) {
                    return run_plain(req, Served::Passthrough(reason));
                }
                match classify_link(&expanded, true) {
                    Ok(link) => self.links.link(req, &link, &self.identities, &self.misses),
                    Err(_) if names_a_source(&expanded) => self.compile_and_link(req, &expanded),
                    Err(_) => run_plain(req, Served::Passthrough(reason)),
                }
            }
        }
    }

    /// One cacheable compile, run with the `expanded` arguments on a miss.
    pub(super) fn compile_one(
        &self,
        req: &Request,
        compile: &Compile,
        expanded: &[String],
    ) -> Outcome {
        if let Some(var) = REFUSED_ENV
            .iter()
            .find(|v| req.env.iter().any(|(k, _)| k == *v))
        {
            tracing::debug!("{var} is set: not cached");
            return run_plain(req, Served::Passthrough("dependency output env var"));
        }
        let outcome = match self.cached(req, compile, expanded) {
            Ok(outcome) => outcome,
            Err(err) if space::is_full(&err) => self.without_space(req, &err.to_string()),
            Err(err) => {
                tracing::warn!("compile cache error, compiling uncached: {err}");
                run_plain(req, Served::Passthrough("cache error"))
            }
        };
        let mut outcome = colour::for_caller(req, expanded, outcome);
        outcome.profile = Profile::of_output(&compile.output);
        outcome
    }

    /// Where misses write their private outputs.
    pub(super) fn scratch_dir(&self) -> &ScratchDir {
        &self.scratch
    }

    /// A driver link through the link cache.
    pub(super) fn link_driver(&self, req: &Request, link: &super::link_args::Link) -> Outcome {
        self.links.link(req, link, &self.identities, &self.misses)
    }

    /// Serves one `ar`, `ld` or compiler-driver link (`LinkEphemeral`); any other tool runs
    /// uncached.
    pub fn link(&self, req: &Request) -> Outcome {
        let outcome = self.link_uncaught(req);
        let outcome = self.rescued(req, outcome);
        self.note_passthrough(req, &outcome);
        outcome
    }

    fn link_uncaught(&self, req: &Request) -> Outcome {
        let name = tool_name(&req.compiler);
        let link = if is_archiver(name) {
            classify_archive(&req.args)
        } else if is_linker(name) {
            classify_link(&req.args, false)
        } else if is_c_driver(&req.compiler) {
            classify_link(&req.args, true)
        } else {
            Err("not an archiver, linker or C compiler driver")
        };
        match link {
            Ok(link) => self.links.link(req, &link, &self.identities, &self.misses),
            Err(reason) => run_plain(req, Served::Passthrough(reason)),
        }
    }

    /// A miss that failed for want of room under `ZCCACHE_DIR` (see `space`) runs again
    /// the way it was asked, in place and uncached; any other outcome stands.
    pub(super) fn rescued(&self, req: &Request, outcome: Outcome) -> Outcome {
        let failed_miss =
            matches!(outcome.served, Served::Miss | Served::LinkMiss) && outcome.exit_code != 0;
        match failed_miss {
            true => match space::starved(&outcome.stderr, self.scratch.path()) {
                Some(cause) => self.without_space(req, &cause),
                None => outcome,
            },
            false => outcome,
        }
    }

    /// Runs `req` as asked, uncached, because the cache is out of space; the build is told
    /// (once a minute).
    fn without_space(&self, req: &Request, cause: &str) -> Outcome {
        let mut outcome = run_plain(req, Served::Passthrough("the cache is out of space"));
        self.space.tell(cause, &mut outcome);
        outcome
    }

    /// For `zccache status`: compiles that went without the cache for want of space.
    pub fn out_of_space(&self) -> Option<String> {
        self.space.describe(self.scratch.path())
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
            Served::Passthrough(SEVERAL)
        } else {
            Served::Miss
        };
        let why = outcomes.iter().flat_map(|o| o.why.clone()).collect();
        let profile = outcomes
            .first()
            .map(|o| o.profile.clone())
            .unwrap_or_default();
        Outcome::joined(&outcomes.iter().collect::<Vec<_>>(), served, why, profile)
    }

    fn cached(&self, req: &Request, c: &Compile, expanded: &[String]) -> io::Result<Outcome> {
        let source = if names_stdin(&c.source) {
            req.stdin.clone()
        } else {
            super::regular::read(&req.cwd.join(&c.source))?
        };
        let dated_source = uses_the_clock(&source);
        let identity = self.identities.probe(&req.compiler, "--version")?;
        let compiler = identity.digest;
        let flavor = Flavor::of(&identity.probe_output);
        let env = keyed_env_text(&req.env);
        let system = self.system_dirs.of(&compiler, req, c, &env)?;
        let search = SearchPath::new(req, c, system);
        let source_digest = Digest::of(&source);
        let base = base_key(req, c, &compiler, &env, &source_digest);
        // Direct mode: the manifest's header sets (none for a dated source), and what it says.
        let direct = |cache: &Self| -> io::Result<(Option<Artifact>, bool)> {
            if dated_source {
                return Ok((None, true));
            }
            let manifest = timed(Phase::Lookup, || cache.manifest(&base));
            let found = timed(Phase::Lookup, || {
                cache.lookup(&base, &manifest, &req.cwd, &search)
            })?;
            Ok((found, manifest.direct_off))
        };
        // An identical compile running now (whatever output it names) is waited for, then
        // the store is looked up again; whoever leads looks once more, so a compile that
        // finished in between is a hit too.
        let (_lead, direct_off) = loop {
            if let (Some(artifact), _) = direct(self)? {
                return hit(req, c, artifact, flavor);
            }
            if let Some(lead) = self.in_flight.lead_or_wait(base) {
                match direct(self)? {
                    (Some(artifact), _) => return hit(req, c, artifact, flavor),
                    (None, direct_off) => break (lead, direct_off),
                }
            }
        };
        let started = now_ns();
        let preprocessed = if direct_off {
            preprocessed_key(req, expanded, &base)?
        } else {
            None
        };
        if let Some(key) = &preprocessed
            && let Some(artifact) = self.store.get(key)?
        {
            return hit(req, c, artifact, flavor);
        }
        let parts = KeyParts {
            compiler: identity.shown(&req.compiler),
            compiler_id: compiler,
            args: c.key_args.clone(),
            env: keyed_env(&req.compiler, &req.env),
            source: source_digest,
            source_name: None,
            inputs: Vec::new(),
            input_noun: "header",
            named: Vec::new(),
        };
        let plan = Plan {
            started,
            dated_source,
            preprocessed,
            parts,
            flavor,
        };
        self.compile_and_store(req, c, expanded, &base, &search, plan)
    }

    /// The stored artifact whose recorded headers all still match, if any.
    fn lookup(
        &self,
        base: &Digest,
        manifest: &Headers,
        cwd: &std::path::Path,
        search: &SearchPath,
    ) -> io::Result<Option<Artifact>> {
        for headers in &manifest.entries {
            let valid = |h: &Header| header_unchanged(h, cwd) && !search.shadowed(h);
            if headers.iter().all(valid)
                && let Some(artifact) = self.store.get(&full_key("compile", base, headers))?
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
        search: &SearchPath,
        plan: Plan,
    ) -> io::Result<Outcome> {
        let scratch = Scratch::new(&self.scratch)?;
        let mut args = private_outputs(expanded, c, &scratch);
        if colour::caller_shows(req)
            && !colour::chosen_by_command(expanded)
            && is_c_driver(&req.compiler)
        {
            // Stored with colours, whoever hits it next: a pipe gets them stripped.
            args.push(colour::forcing_flag(plan.flavor).to_string());
        }
        let (exit_code, stdout, stderr) = run_miss(req, &args)?;
        let mut outcome = Outcome::new(Served::Miss, (exit_code, stdout, stderr));
        if exit_code != 0 {
            return Ok(outcome);
        }
        let mut outputs = vec![("object".to_string(), std::fs::read(&scratch.object)?)];
        let dep_text = std::fs::read_to_string(&scratch.depfile).ok();
        if c.depfile.is_some() {
            let full = dep_text.clone().unwrap_or_default();
            let text = if c.user_headers_only {
                let phony = c.key_args.iter().any(|a| a == "-MP");
                keep_prerequisites(&full, phony, plan.flavor, |dep| !search.is_system(dep))
            } else {
                full
            };
            outputs.push(("depfile".to_string(), text.into_bytes()));
        }
        let artifact = Artifact {
            outputs,
            stdout: outcome.stdout.clone(),
            stderr: outcome.stderr.clone(),
            exit_code: 0,
        };
        deliver(req, c, &artifact, plan.flavor)?;
        let learned = match dep_text {
            Some(text) => {
                let source = req.cwd.join(&c.source);
                learn_headers(&req.cwd, &source, &prerequisites(&text), plan.started)
            }
            None => Learned::Untrusted,
        };
        let read = match &learned {
            Learned::Headers(headers) | Learned::Dated(headers) => headers
                .iter()
                .map(|h| (h.path.display().to_string(), h.hash))
                .collect(),
            Learned::Untrusted => Vec::new(),
        };
        let parts = KeyParts {
            inputs: read,
            ..plan.parts
        };
        let remembered = c.remembered_as.as_ref().unwrap_or(&c.output);
        let output = crate::paths::lexically_absolute(&req.cwd, std::path::Path::new(remembered));
        outcome.why = self.misses.record(&output, parts);
        let stored = self.store_learned(
            req,
            expanded,
            base,
            (plan.dated_source, plan.preprocessed),
            learned,
            &artifact,
        );
        match stored {
            Ok(bytes) => outcome.stored_bytes += bytes,
            // Delivered already: the build has its object, only the cache goes without.
            Err(err) if space::is_full(&err) => {
                self.space.tell(&err.to_string(), &mut outcome);
            }
            Err(err) => tracing::warn!("cannot store a compile: {err}"),
        }
        Ok(outcome)
    }

    /// Stores a delivered miss under what it learned: its header set (direct mode), else its
    /// preprocessed text; the bytes written.
    fn store_learned(
        &self,
        req: &Request,
        expanded: &[String],
        base: &Digest,
        (dated_source, preprocessed): (bool, Option<String>),
        learned: Learned,
        artifact: &Artifact,
    ) -> io::Result<u64> {
        let mut stored = 0;
        if let Learned::Headers(headers) = &learned
            && !dated_source
        {
            stored += self
                .store
                .put(&full_key("compile", base, headers), artifact)?;
            stored += self.remember(base, headers.clone())?;
            if let Some(key) = preprocessed {
                stored += self.store.put(&key, artifact)?;
            }
            return Ok(stored);
        }
        if !dated_source {
            // Direct mode failed for these inputs: the next compile asks the preprocessor.
            let mut manifest = self.manifest(base);
            manifest.direct_off = true;
            self.keep_manifest(*base, manifest.clone());
            stored += manifest.save(&self.store, MANIFEST_KIND, base)?;
        }
        let (Learned::Headers(headers) | Learned::Dated(headers)) = learned else {
            return Ok(stored);
        };
        // Direct mode is off for this compile: its preprocessed text decides, taken after the
        // compile when it was not before, and then trusted only if no header changed since.
        let preprocessed = match preprocessed {
            Some(key) => Some(key),
            None => preprocessed_key(req, expanded, base)?
                .filter(|_| headers.iter().all(|h| header_unchanged(h, &req.cwd))),
        };
        if let Some(key) = preprocessed {
            stored += self.store.put(&key, artifact)?;
        }
        Ok(stored)
    }

    fn manifest(&self, base: &Digest) -> Headers {
        if let Some(known) = self.known_manifests().get(base) {
            return known.clone();
        }
        let manifest = Headers::load(&self.store, MANIFEST_KIND, base);
        if !manifest.entries.is_empty() || manifest.direct_off {
            self.keep_manifest(*base, manifest.clone());
        }
        manifest
    }

    /// Remembers a manifest in memory (a bounded number: past it, the memory starts afresh).
    fn keep_manifest(&self, base: Digest, manifest: Headers) {
        let mut known = self.known_manifests();
        if known.len() >= MANIFESTS_IN_MEMORY {
            known.clear();
        }
        known.insert(base, manifest);
    }

    /// A Rust miss its wrapper compiled (`Served::Delegated`): the outcome, the compile,
    /// and the store of its outputs to run once the wrapper is answered (`store_rust`);
    /// `None` for an unknown token.
    pub fn finish_rust(
        &self,
        token: u64,
        result: (i32, Vec<u8>, Vec<u8>),
    ) -> Option<(Outcome, Delegated, Option<StoreJob>)> {
        self.rust.finish(token, result, &self.misses)
    }

    /// Forgets the Rust miss of `token`, whose wrapper hung up without reporting.
    pub fn abandon_rust(&self, token: u64) {
        self.rust.abandon(token);
    }

    /// Runs the store of a Rust miss; the bytes it wrote.
    pub fn store_rust(&self, job: StoreJob) -> u64 {
        self.rust.store(job)
    }

    /// Waits until no store of a miss is in progress (for whoever reads the store whole).
    pub fn settle(&self) {
        self.rust.settle();
    }

    /// The recent misses of the compile output at `output` (absolute), newest first.
    pub fn misses_of(&self, output: &std::path::Path) -> Vec<super::miss_reason::Miss> {
        self.misses.of(output)
    }

    /// Every cached Rust crate compile.
    pub fn rust_artifacts(&self) -> Vec<crate::compile_cache::artifact::RustArtifact> {
        self.rust.list()
    }

    /// Forgets the manifests held in memory (the store was emptied).
    pub fn forget(&self) {
        self.known_manifests().clear();
    }

    fn known_manifests(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<Digest, Headers>> {
        self.manifests.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, base: &Digest, headers: Vec<Header>) -> io::Result<u64> {
        let manifest = self.manifest(base).with(headers);
        self.keep_manifest(*base, manifest.clone());
        manifest.save(&self.store, MANIFEST_KIND, base)
    }
}

/// The key of everything known before the compile: compiler, arguments in order, keyed
/// env, the source's content, and the working directory when the object records it (`-g`
/// and the like; past a prefix map, the part the map leaves). Not the depfile's path or
/// targets: a hit writes its depfile for its own targets.
fn base_key(req: &Request, c: &Compile, compiler: &Digest, env: &str, source: &Digest) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"zccache compile v2\0");
    hasher.update(&compiler.0);
    if c.records_cwd {
        // A prefix map rewrites the start of the directory; what follows it still counts
        // (the maps themselves are in the arguments).
        let mapped: Vec<_> = c
            .prefix_maps
            .iter()
            .filter_map(|old| req.cwd.strip_prefix(old).ok())
            .collect();
        let recorded = if mapped.is_empty() {
            vec![req.cwd.as_path()]
        } else {
            mapped
        };
        for dir in recorded {
            hasher.update(b"cwd\0");
            hasher.update(dir.as_os_str().as_encoded_bytes());
        }
    }
    keying::add_args(&mut hasher, &c.key_args);
    hasher.update(b"\0env");
    hasher.update(env.as_bytes());
    hasher.update(source.0.as_slice());
    hasher.finalize().into()
}

/// The keyed env vars of `env`, sorted, as one text.
fn keyed_env_text(env: &[(String, String)]) -> String {
    keying::env_text(env, |k| KEYED_ENV.contains(&k))
}

/// The env vars of `env` that are part of a compile's key (for the journal).
pub fn keyed_env(compiler: &std::path::Path, env: &[(String, String)]) -> Vec<(String, String)> {
    if rust::is_rustc(compiler) {
        return rust::compile::journal_env(env);
    }
    env.iter()
        .filter(|(k, _)| KEYED_ENV.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// The file name of a tool's path (empty when it has none).
fn tool_name(tool: &std::path::Path) -> &str {
    tool.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// A result from the store, delivered.
fn hit(req: &Request, c: &Compile, artifact: Artifact, flavor: Flavor) -> io::Result<Outcome> {
    deliver(req, c, &artifact, flavor)?;
    Ok(Outcome::new(
        Served::Hit,
        (artifact.exit_code, artifact.stdout, artifact.stderr),
    ))
}

/// How a miss is stored: when its inputs were taken, whether direct mode is off for its
/// source, and its preprocessor-mode key if it has one.
struct Plan {
    started: i64,
    dated_source: bool,
    preprocessed: Option<String>,
    /// The key's parts known before the compile (its headers come after).
    parts: KeyParts,
    /// How the compiler writes depfiles.
    flavor: Flavor,
}
