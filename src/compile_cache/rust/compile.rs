//! One rustc compile through the cache (`RUSTC_WRAPPER=zccache`): classify, look the
//! inputs up (a manifest of the source files and env vars rustc's dep-info listed last time,
//! checked against the files and env now), deliver a hit, or compile and store.
//!
//! The key: rustc's identity (path, size, mtime, `-vV`; behind a rustup proxy, the
//! toolchain's rustc it runs), the working directory, the arguments without output paths,
//! the env cargo sets to describe the crate (`crate_env`), the crate root, the content of
//! every `--extern` crate and bundled static library, for a program or proc-macro (linked)
//! the identity of the linker rustc runs, and then every file and `env!` var the dep-info
//! names.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::args::{RustClassified, RustCompile, classify};
use super::delegated::{Delegated, Waiting};
use super::incremental;
use super::inputs::{Inputs, MANIFEST_KIND, Manifest, OUT_DIR_MARK, artifact_key, mark_out_dir};
use super::pending::PendingStores;
use super::store_job::StoreJob;
use crate::compile_cache::artifact::{Artifact, RustArtifact};
use crate::compile_cache::compiler::Identities;
use crate::compile_cache::headers::header_unchanged;
use crate::compile_cache::inflight::InFlight;
use crate::compile_cache::invoke::run_plain;
use crate::compile_cache::invoke::write_output;
use crate::compile_cache::keying;
use crate::compile_cache::miss_reason::{KeyParts, MissMemory};
use crate::compile_cache::modes;
use crate::compile_cache::profile::{Phase, Profile, timed};
use crate::compile_cache::regular;
use crate::compile_cache::request::{Outcome, Request, Served};
use crate::compile_cache::space::{self, OutOfSpace};
use crate::compile_cache::store::Store;
use crate::fingerprint::{Digest, mtime_ns, now_ns};
use crate::program::{self, Place, resolve_program_on};

/// Env vars cargo sets to describe the crate it compiles (its package, manifest, names,
/// build-script output dir), keyed whether or not the crate reads them: a proc-macro may
/// read them without rustc recording it (`std::env::var`, no `# env-dep:` line). Every
/// other variable is keyed only when the dep-info names it (`env!`, `option_env!`), so
/// what says how cargo runs (`CARGO_TARGET_DIR`, `CARGO_HOME`, `CARGO_INCREMENTAL`,
/// `CARGO_BUILD_*`, `CARGO_MAKEFLAGS`) or which packages the user selected
/// (`CARGO_PRIMARY_PACKAGE`) does not split the cache: cargo turns its settings into
/// rustc's arguments, which are keyed.
const CRATE_ENV: [&str; 7] = [
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];
/// Prefixes of the crate's env: its `Cargo.toml` `[package]` fields, its package's programs.
const CRATE_ENV_PREFIXES: [&str; 2] = ["CARGO_PKG_", "CARGO_BIN_EXE_"];
/// Env vars rustc itself reads that change what it writes.
const RUSTC_ENV: [&str; 2] = ["RUSTC_BOOTSTRAP", "SOURCE_DATE_EPOCH"];
/// Env vars dropped before running rustc in the daemon: jobserver handles of the client.
const CLIENT_ONLY_ENV: [&str; 3] = ["CARGO_MAKEFLAGS", "MAKEFLAGS", "MFLAGS"];
/// Stands for an unset variable among a miss's env (no value of a set one has a NUL).
const UNSET: &str = "\0unset";
/// How old an mtime must be before a remembered hash is trusted with it.
const RACY_NS: i64 = 2_000_000_000;

/// The Rust side of the compile cache.
#[derive(Debug)]
pub struct RustCache {
    store: Store,
    /// Content hashes of `--extern` crates and libraries by (path, size, mtime, inode).
    file_hashes: Mutex<HashMap<PathBuf, (u64, i64, u64, Digest)>>,
    /// Misses the wrappers compile themselves.
    waiting: Waiting,
    /// Stores of those misses still in progress.
    pending: Arc<PendingStores>,
    /// Misses being compiled now (by the daemon or a wrapper), so identical ones wait.
    in_flight: InFlight,
    /// Where a store that found no room says so.
    space: Arc<OutOfSpace>,
    /// The rustc a rustup proxy runs, by everything rustup's choice depends on.
    toolchains: Mutex<HashMap<Digest, PathBuf>>,
}

impl RustCache {
    /// A cache storing into `store`, telling `space` when it is full.
    pub fn new(store: Store, space: Arc<OutOfSpace>) -> Self {
        RustCache {
            store,
            file_hashes: Mutex::default(),
            waiting: Waiting::default(),
            pending: Arc::default(),
            in_flight: InFlight::default(),
            space,
            toolchains: Mutex::default(),
        }
    }

    /// Serves one rustc invocation.
    pub fn compile(&self, req: &Request, identities: &Identities, misses: &MissMemory) -> Outcome {
        let mut req = without_client_env(req);
        if super::is_clippy_driver(&req.compiler) {
            return run_plain(
                &req,
                Served::Passthrough("clippy-driver (lints are not cached)"),
            );
        }
        if let Err(reason) = self.to_toolchain_rustc(&mut req) {
            return run_plain(&req, Served::Passthrough(reason));
        }
        let req = &req;
        let c = match classify(&req.args) {
            RustClassified::Cacheable(c) => c,
            RustClassified::VersionProbe => return version_probe(req, identities),
            RustClassified::Passthrough(reason) => {
                return run_plain(req, Served::Passthrough(reason));
            }
        };
        let mut outcome = match self.cached(req, &c, (identities, misses)) {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!("rust cache error, compiling uncached: {err}");
                run_plain(req, Served::Passthrough("cache error"))
            }
        };
        outcome.profile = profile_of(&c);
        outcome
    }

    /// Makes `req`'s compiler the toolchain's rustc: it is one already, or it is rustup's
    /// proxy and becomes the rustc rustup runs in the client's directory and environment
    /// (a `+toolchain` first argument is taken from the arguments). Else the reason it runs
    /// uncached.
    fn to_toolchain_rustc(&self, req: &mut Request) -> Result<(), &'static str> {
        let canonical = std::fs::canonicalize(&req.compiler).map_err(|_| "rustc not found")?;
        if super::is_rustc(&canonical) {
            return Ok(());
        }
        if !program::is_rustup_proxy(&req.compiler) {
            return Err("not a toolchain's rustc nor rustup's proxy of one");
        }
        let toolchain = req.args.first().and_then(|a| a.strip_prefix('+'));
        let toolchain = toolchain.map(String::from);
        let resolved = self
            .rustup_rustc(req, toolchain.as_deref())
            .map_err(|err| {
                tracing::warn!("{err}");
                "rustup could not say which rustc its proxy runs"
            })?;
        if !super::is_rustc(&resolved) {
            return Err("rustup's proxy runs no toolchain rustc");
        }
        if toolchain.is_some() {
            req.args.remove(0);
        }
        req.compiler = resolved;
        Ok(())
    }

    /// The rustc the proxy `req.compiler` runs for `req`'s client: asked of rustup once per
    /// selection (toolchain variables, `rust-toolchain.toml`, rustup's settings).
    fn rustup_rustc(&self, req: &Request, toolchain: Option<&str>) -> Result<PathBuf, String> {
        let place = Place {
            cwd: &req.cwd,
            env: Some(&req.env),
        };
        let name = req.compiler.file_name().unwrap_or_default();
        let selection = program::rustup_selection(&req.compiler, name, toolchain, place);
        let known = self.toolchains.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(path) = known.get(&selection).filter(|p| p.exists()) {
            return Ok(path.clone());
        }
        drop(known);
        let resolved = program::rustup_which(&req.compiler, name, toolchain, place)?;
        let mut known = self.toolchains.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(selection, resolved.clone());
        Ok(resolved)
    }

    fn cached(
        &self,
        req: &Request,
        c: &RustCompile,
        (identities, misses): (&Identities, &MissMemory),
    ) -> io::Result<Outcome> {
        let rustc = identities.probe(&req.compiler, "-vV")?;
        let linker = match c.uses_linker() {
            true => Some(linker_identity(req, c, identities)?),
            false => None,
        };
        let Some((base, keyed)) = self.base_key(req, c, &rustc.digest, linker)? else {
            return Ok(run_plain(
                req,
                Served::Passthrough("a static library not found"),
            ));
        };
        // An identical compile running now (its wrapper compiling, or its store pending) is
        // waited for, then the store is looked up again.
        let lead = loop {
            self.pending.wait_for(&base);
            if let Some(hit) = self.hit(req, c, &base)? {
                return Ok(hit);
            }
            if let Some(lead) = self.in_flight.lead_or_wait(base) {
                self.pending.wait_for(&base);
                if let Some(hit) = self.hit(req, c, &base)? {
                    return Ok(hit);
                }
                break lead;
            }
        };
        let started = now_ns();
        let parts = KeyParts {
            compiler: rustc.shown(&req.compiler),
            compiler_id: rustc.digest,
            args: c.key_args.clone(),
            env: journal_env(&req.env),
            source: keyed.source,
            source_name: Some(c.source.clone()),
            inputs: Vec::new(),
            input_noun: "file",
            named: keyed.named(c),
        };
        if req.can_compile_here && req.stdin.is_empty() {
            let token = self.waiting.keep(Delegated {
                req: req.clone(),
                compile: c.clone(),
                base,
                parts,
                started_ns: started,
                since: std::time::Instant::now(),
                lead,
            });
            return Ok(Outcome::new(
                Served::Delegated(token),
                (0, Vec::new(), Vec::new()),
            ));
        }
        let outcome = run_plain(req, Served::Miss);
        let miss = MissToStore {
            base: &base,
            parts,
            span: (started, now_ns()),
        };
        let outcome = self.store_miss(req, c, miss, outcome, misses);
        // Stored: identical compiles waiting for this one look the store up now.
        drop(lead);
        Ok(outcome)
    }

    /// The stored compile whose recorded inputs all still match, delivered; `None` on a
    /// miss.
    fn hit(&self, req: &Request, c: &RustCompile, base: &Digest) -> io::Result<Option<Outcome>> {
        let manifest = timed(Phase::Lookup, || {
            Manifest::load(&self.store, MANIFEST_KIND, base)
        });
        for inputs in &manifest.entries {
            let key = artifact_key(c, base, inputs);
            let found = timed(Phase::Lookup, || match self.unchanged(req, inputs) {
                true => self.store.get(&key),
                false => Ok(None),
            })?;
            let Some(artifact) = found else {
                continue;
            };
            // The wrapper gave up on us and compiled by itself: the outputs and its
            // incremental session are its own now.
            let gone = req.peer.hung_up();
            if !gone {
                deliver(req, c, &artifact)?;
            }
            if let Some(dir) = c.incremental.as_ref().filter(|_| !gone) {
                timed(Phase::Deliver, || {
                    let session = incremental::key_of(&key);
                    incremental::restore(&self.store, &session, &req.cwd.join(dir), &c.crate_name)
                });
            }
            return Ok(Some(Outcome::new(
                Served::Hit,
                (
                    0,
                    artifact.stdout,
                    mark_out_dir(&artifact.stderr, OUT_DIR_MARK, &c.out_dir),
                ),
            )));
        }
        Ok(None)
    }

    /// The report of a miss compiled by its wrapper (`token` from `Served::Delegated`),
    /// counted and given its miss reason at once; when it succeeded, the store of what it
    /// wrote, to be run (`StoreJob::run`) once the wrapper is answered — or stored already
    /// when too many stores are in progress. `None` for an unknown token.
    pub fn finish(
        &self,
        token: u64,
        result: (i32, Vec<u8>, Vec<u8>),
        misses: &MissMemory,
    ) -> Option<(Outcome, Delegated, Option<StoreJob>)> {
        let delegated = self.waiting.take(token)?;
        crate::compile_cache::profile::add(Phase::Compile, delegated.since.elapsed());
        let mut outcome = Outcome {
            profile: profile_of(&delegated.compile),
            ..Outcome::new(Served::Miss, result)
        };
        // The wrapper has ended (or is ending) and the build goes on: what is stored must be
        // what rustc wrote by now, not a later rewrite.
        let miss = MissToStore {
            base: &delegated.base,
            parts: delegated.parts.clone(),
            span: (delegated.started_ns, now_ns()),
        };
        let job = self.job_of(
            &delegated.req,
            &delegated.compile,
            miss,
            &mut outcome,
            misses,
        );
        let job = match job.map(|job| (self.pending.begin(delegated.base), job)) {
            Some((Some(pending), job)) => Some(job.deferred(pending)),
            Some((None, job)) => {
                outcome.stored_bytes += self.store(job);
                None
            }
            None => None,
        };
        Some((outcome, delegated, job))
    }

    /// Forgets the miss of `token`: its wrapper hung up without reporting (killed, or its
    /// build interrupted), so identical compiles waiting for it go on.
    pub fn abandon(&self, token: u64) {
        if self.waiting.take(token).is_some() {
            tracing::debug!("a wrapper hung up before reporting its compile");
        }
    }

    /// Stores a miss the daemon ran itself, and says why it missed.
    fn store_miss(
        &self,
        req: &Request,
        c: &RustCompile,
        miss: MissToStore<'_>,
        mut outcome: Outcome,
        misses: &MissMemory,
    ) -> Outcome {
        if let Some(job) = self.job_of(req, c, miss, &mut outcome, misses) {
            outcome.stored_bytes += self.store(job);
        }
        outcome
    }

    /// The store of a miss that succeeded, with its miss reason set in `outcome`; `None`
    /// when it failed or what it wrote cannot be trusted.
    fn job_of(
        &self,
        req: &Request,
        c: &RustCompile,
        miss: MissToStore<'_>,
        outcome: &mut Outcome,
        misses: &MissMemory,
    ) -> Option<StoreJob> {
        if outcome.exit_code != 0 {
            return None;
        }
        let job = StoreJob::open(req, c, *miss.base, miss.span, outcome)?;
        let read = job.inputs();
        // The variables the crate read (`env!`, `option_env!`) are named like keyed ones.
        let mut env = miss.parts.env.clone();
        env.extend(read.env.iter().map(|(name, value)| {
            let shown = value.as_deref().map_or(UNSET.to_string(), String::from);
            (name.clone(), shown)
        }));
        let parts = KeyParts {
            env,
            inputs: read
                .files
                .iter()
                .map(|h| (h.path.display().to_string(), h.hash))
                .collect(),
            ..miss.parts
        };
        let out_dir = req.cwd.join(&c.out_dir);
        for name in c.output_names().iter().filter(|n| **n != c.dep_info_name()) {
            let output = crate::paths::lexically_absolute(&req.cwd, &out_dir.join(name));
            outcome.why = misses.record(&output, parts.clone());
        }
        Some(job)
    }

    /// Runs the store of a miss; the bytes it wrote (a failure is logged: the compile is
    /// simply not stored).
    pub fn store(&self, job: StoreJob) -> u64 {
        job.run(&self.store).unwrap_or_else(|err| {
            match space::is_full(&err) {
                // The wrapper has its outputs; only status can still tell.
                true => drop(self.space.note(&err.to_string())),
                false => tracing::warn!("cannot store a rust compile: {err}"),
            }
            0
        })
    }

    /// Waits until no store is in progress.
    pub fn settle(&self) {
        self.pending.settle();
    }

    /// Everything known before the compile, and the parts of it a miss reason names;
    /// `None` when a bundled static library cannot be found (rustc would search further than
    /// we can key).
    fn base_key(
        &self,
        req: &Request,
        c: &RustCompile,
        rustc: &Digest,
        linker: Option<Digest>,
    ) -> io::Result<Option<(Digest, Keyed)>> {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"zccache rust v1\0");
        hasher.update(&rustc.0);
        if let Some(linker) = linker {
            hasher.update(&linker.0);
        }
        hasher.update(req.cwd.as_os_str().as_encoded_bytes());
        keying::add_args(&mut hasher, &c.key_args);
        hasher.update(b"\0env");
        hasher.update(keying::env_text(&req.env, keyed_env).as_bytes());
        let source = Digest::of(&regular::read(&req.cwd.join(&c.source))?);
        hasher.update(&source.0);
        let mut externs = Vec::with_capacity(c.externs.len());
        for external in &c.externs {
            let digest = self.hash_file(&req.cwd.join(external))?;
            hasher.update(&digest.0);
            externs.push(digest);
        }
        let mut libraries = BTreeSet::new();
        for lib in &c.static_libs {
            let found = c
                .native_dirs
                .iter()
                .map(|d| req.cwd.join(d).join(format!("lib{lib}.a")))
                .find(|p| p.is_file());
            let Some(path) = found else {
                return Ok(None);
            };
            libraries.insert(path);
        }
        if c.links() {
            // The final link also takes libraries that dependencies only named (their
            // build scripts' `rustc-link-lib`): every library in the native search dirs.
            for dir in &c.native_dirs {
                libraries.extend(libraries_in(&req.cwd.join(dir)));
            }
        }
        let mut library_digests = Vec::with_capacity(libraries.len());
        for lib in &libraries {
            let digest = self.hash_file(lib)?;
            hasher.update(lib.as_os_str().as_encoded_bytes());
            hasher.update(&digest.0);
            library_digests.push(digest);
        }
        let keyed = Keyed {
            source,
            linker,
            externs,
            libraries: libraries.into_iter().zip(library_digests).collect(),
        };
        Ok(Some((hasher.finalize().into(), keyed)))
    }

    /// The content hash of `path`, remembered while its size, mtime and inode stay (only
    /// once its mtime is old enough that a same-size rewrite would have moved it).
    fn hash_file(&self, path: &Path) -> io::Result<Digest> {
        let meta = regular::metadata(path)?;
        let stamp = (meta.size(), mtime_ns(&meta), meta.ino());
        let settled = stamp.1 < now_ns() - RACY_NS;
        let mut known = self.file_hashes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((size, mtime, ino, digest)) = known.get(path)
            && (*size, *mtime, *ino) == stamp
        {
            return Ok(*digest);
        }
        drop(known);
        let digest = Digest::of(&regular::read(path)?);
        if settled {
            known = self.file_hashes.lock().unwrap_or_else(|p| p.into_inner());
            known.insert(path.to_path_buf(), (stamp.0, stamp.1, stamp.2, digest));
        }
        Ok(digest)
    }

    fn unchanged(&self, req: &Request, inputs: &Inputs) -> bool {
        inputs.files.iter().all(|h| header_unchanged(h, &req.cwd))
            && inputs
                .env
                .iter()
                .all(|(name, value)| env_value(req, name) == value.as_deref())
    }

    /// Every stored crate compile, most recently used first.
    pub fn list(&self) -> Vec<RustArtifact> {
        let mut listed: Vec<RustArtifact> = self
            .store
            .entries_under("rust/")
            .into_iter()
            .filter_map(|entry| {
                let mut parts = entry.key.splitn(4, '/').skip(1);
                let (crate_name, types) = (parts.next()?, parts.next()?);
                Some(RustArtifact {
                    crate_name: crate_name.to_string(),
                    crate_types: types.split(',').map(String::from).collect(),
                    size: entry.outputs.iter().map(|(_, size)| size).sum(),
                    outputs: entry
                        .outputs
                        .into_iter()
                        .map(|(name, _)| name)
                        .filter(|name| name != modes::MODES)
                        .collect(),
                    last_use_secs: entry
                        .last_use
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                })
            })
            .collect();
        listed.sort_by(|a, b| {
            (b.last_use_secs, &a.crate_name).cmp(&(a.last_use_secs, &b.crate_name))
        });
        listed
    }
}

/// The parts of a crate's base key a miss reason names (kept as digests; labelled only on a
/// miss).
struct Keyed {
    source: Digest,
    linker: Option<Digest>,
    /// In the order of `RustCompile::externs`.
    externs: Vec<Digest>,
    libraries: Vec<(PathBuf, Digest)>,
}

impl Keyed {
    /// The linker, `--extern` crates and libraries by label.
    fn named(self, c: &RustCompile) -> Vec<(String, Digest)> {
        let linker = self.linker.map(|d| (format!("linker {}", c.linker()), d));
        let externs = c.externs.iter().zip(self.externs);
        linker
            .into_iter()
            .chain(externs.map(|(path, d)| (format!("--extern {}", crate_of(path)), d)))
            .chain(
                self.libraries
                    .into_iter()
                    .map(|(lib, d)| (format!("library {}", lib.display()), d)),
            )
            .collect()
    }
}

/// A miss on its way to the store: its key before the sources, its key parts before the
/// files rustc read, and when it ran (start, end; ns).
struct MissToStore<'a> {
    base: &'a Digest,
    parts: KeyParts,
    span: (i64, i64),
}

/// The crate an `--extern` file holds: `libserde-1a2b.rmeta` → `serde`.
fn crate_of(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = stem.strip_prefix("lib").unwrap_or(&stem);
    stem.rsplit_once('-')
        .map_or(stem, |(name, _)| name)
        .to_string()
}

/// The identity of the linker rustc runs for a program or proc-macro, found on the
/// client's `PATH`.
fn linker_identity(req: &Request, c: &RustCompile, identities: &Identities) -> io::Result<Digest> {
    let path_var = env_value(req, "PATH").unwrap_or_default();
    let linker = resolve_program_on(c.linker().as_ref(), &req.cwd, path_var.as_ref(), |_| false)
        .ok_or_else(|| io::Error::other(format!("linker {} not found", c.linker())))?;
    identities.of(&linker)
}

/// The libraries (`lib*.a`, `lib*.so*`) in `dir`, sorted; none when it cannot be read.
fn libraries_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut libs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("lib") && (name.ends_with(".a") || name.contains(".so")) && p.is_file()
        })
        .collect();
    libs.sort();
    libs
}

/// True for env vars in a Rust compile's base key (others only through the dep-info).
fn keyed_env(name: &str) -> bool {
    CRATE_ENV.contains(&name)
        || CRATE_ENV_PREFIXES.iter().any(|p| name.starts_with(p))
        || RUSTC_ENV.contains(&name)
}

/// The env vars of a Rust compile's key (for the journal).
pub fn journal_env(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter().filter(|(k, _)| keyed_env(k)).cloned().collect()
}

fn env_value<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.env
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The profile fields of a crate compile: its name, types, and the main output's
/// extension (`rlib`, `a`, `so`; `rmeta` for metadata only; none for a program).
fn profile_of(c: &RustCompile) -> Profile {
    let names = c.output_names();
    let has = |ext: &str| names.iter().any(|n| n.ends_with(&format!(".{ext}")));
    let program = c.crate_types.iter().any(|t| t == "bin");
    let output_ext = ["rlib", "a", "so"]
        .into_iter()
        .find(|ext| has(ext))
        .or((!program && has("rmeta")).then_some("rmeta"))
        .map(String::from);
    Profile {
        output_ext,
        crate_name: Some(c.crate_name.clone()),
        crate_type: Some(c.crate_types.join(",")),
        ..Profile::default()
    }
}

/// The request without the client's jobserver handles, which mean nothing in the daemon
/// (rustc would warn that it cannot open them).
fn without_client_env(req: &Request) -> Request {
    let mut req = req.clone();
    req.env
        .retain(|(k, _)| !CLIENT_ONLY_ENV.contains(&k.as_str()));
    req
}

/// `rustc -vV` answered from the remembered identity (cargo asks it on every build).
fn version_probe(req: &Request, identities: &Identities) -> Outcome {
    match identities.probe(&req.compiler, "-vV") {
        Ok(identity) => Outcome::new(
            Served::Passthrough("rustc -vV answered from memory"),
            (0, identity.probe_output.to_vec(), Vec::new()),
        ),
        Err(_) => run_plain(req, Served::Passthrough("rustc -vV")),
    }
}

/// Writes a hit's outputs into the output directory, dep-info naming it.
fn deliver(req: &Request, c: &RustCompile, artifact: &Artifact) -> io::Result<()> {
    let out_dir = req.cwd.join(&c.out_dir);
    // Only the files this command line makes are written (an entry's names are data).
    let expected = c.output_names();
    if let Some((name, _)) = artifact
        .outputs
        .iter()
        .find(|(name, _)| name != modes::MODES && !expected.contains(name))
    {
        return Err(io::Error::other(format!(
            "entry names an unexpected output {name:?}"
        )));
    }
    std::fs::create_dir_all(&out_dir)?;
    let modes = modes::recorded(artifact);
    for (name, bytes) in &artifact.outputs {
        if name == modes::MODES {
            continue;
        }
        let bytes = match *name == c.dep_info_name() {
            true => mark_out_dir(bytes, OUT_DIR_MARK, &c.out_dir),
            false => bytes.clone(),
        };
        let path = out_dir.join(name);
        write_output(&path, &bytes, req.umask)?;
        modes::apply(&modes, name, &path, req.umask)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crates_env_is_keyed_but_not_how_cargo_runs_or_what_was_selected() {
        for keyed in [
            "CARGO_PKG_VERSION",
            "CARGO_PKG_NAME",
            "CARGO_MANIFEST_DIR",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_EXE_rg",
            "OUT_DIR",
            "RUSTC_BOOTSTRAP",
        ] {
            assert!(keyed_env(keyed), "{keyed}");
        }
        for unkeyed in [
            "CARGO_MAKEFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_PRIMARY_PACKAGE",
            "CARGO_HOME",
            "CARGO_INCREMENTAL",
            "CARGO_BUILD_JOBS",
            "CARGO_REGISTRIES_X_TOKEN",
            "HOME",
        ] {
            assert!(!keyed_env(unkeyed), "{unkeyed}");
        }
    }
}
