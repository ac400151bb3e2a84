//! Links and archives through the cache (`LinkEphemeral`, and driver link lines): keyed by
//! the tool, its arguments and the content of the inputs it names; for `ld` and drivers
//! also every file the linker opened (libraries found by `-l`, crt files, scripts), learned
//! from `--dependency-file` like a compile's headers. A hit restores the output, its mode
//! and the side files the command line named and the link wrote next to it (map files).

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::compiler::Identities;
use super::depfile::prerequisites;
use super::headers::{Header, Learned, full_key, header_unchanged, learn_headers};
use super::invoke::{Scratch, ScratchDir, run, run_plain, write_output};
use super::keying;
use super::link_args::{Link, LinkTool};
use super::manifest::Manifest;
use super::miss_reason::{KeyParts, MissMemory};
use super::modes;
use super::profile::{Phase, Profile, timed};
use super::request::{Outcome, Request, Served};
use super::space::{self, OutOfSpace};
use super::store::Store;
use crate::compile_cache::artifact::Artifact;
use crate::fingerprint::{Digest, mtime_ns, now_ns};

/// Env vars that change what a link finds or writes.
const KEYED_ENV: [&str; 7] = [
    "LIBRARY_PATH",
    "GCC_EXEC_PREFIX",
    "COMPILER_PATH",
    "LD_RUN_PATH",
    "LD_LIBRARY_PATH",
    "SOURCE_DATE_EPOCH",
    "ZERO_AR_DATE",
];
/// Where link manifests are stored (`link-manifest/<base>`).
const MANIFEST_KIND: &str = "link-manifest";
/// The artifact output that is the link's output file.
const OUTPUT: &str = "output";
/// Prefix of side files' artifact output names.
const SIDE: &str = "side:";

/// The library and object sets seen for one link command line.
type Inputs = Manifest<Vec<Header>>;

/// The link side of the compile cache.
#[derive(Debug)]
pub struct LinkCache {
    store: Store,
    /// Linkers that refused `--dependency-file` (by identity): their links pass through.
    without_dependency_file: Mutex<HashSet<Digest>>,
    /// Where links write their dependency files.
    scratch: ScratchDir,
    /// Where a store that found no room says so.
    space: std::sync::Arc<OutOfSpace>,
}

impl LinkCache {
    /// A cache storing into `store`, writing scratch files into `scratch`.
    pub fn new(store: Store, scratch: ScratchDir, space: std::sync::Arc<OutOfSpace>) -> Self {
        LinkCache {
            store,
            scratch,
            space,
            without_dependency_file: Mutex::default(),
        }
    }

    /// Serves one link or archive.
    pub fn link(
        &self,
        req: &Request,
        link: &Link,
        identities: &Identities,
        misses: &MissMemory,
    ) -> Outcome {
        let mut outcome = match self.cached(req, link, (identities, misses)) {
            Ok(outcome) => outcome,
            Err(err) if space::is_full(&err) => {
                let mut outcome = run_plain(req, Served::Passthrough("the cache is out of space"));
                self.space.tell(&err.to_string(), &mut outcome);
                outcome
            }
            Err(err) => {
                tracing::warn!("link cache error, linking uncached: {err}");
                run_plain(req, Served::Passthrough("cache error"))
            }
        };
        outcome.profile = Profile::of_output(&link.output);
        outcome
    }

    fn cached(
        &self,
        req: &Request,
        link: &Link,
        (identities, misses): (&Identities, &MissMemory),
    ) -> io::Result<Outcome> {
        let output = req.cwd.join(&link.output);
        if link.tool == LinkTool::Archiver && output.exists() {
            return Ok(run_plain(
                req,
                Served::Passthrough("an update of an existing archive"),
            ));
        }
        let identity = identities.probe(&req.compiler, "--version")?;
        let tool = identity.digest;
        if self.refuses_dependency_file(link, &tool) {
            return Ok(run_plain(
                req,
                Served::Passthrough("a linker without --dependency-file"),
            ));
        }
        let Some(inputs) = timed(Phase::Lookup, || named_inputs(req, link)) else {
            return Ok(run_plain(
                req,
                Served::Passthrough("an input that cannot be read"),
            ));
        };
        let base = base_key(req, link, &tool, &inputs);
        // An archive's inputs are all on its command line: no manifest to consult.
        let manifest = match link.tool {
            LinkTool::Archiver => Inputs {
                entries: vec![Vec::new()],
                ..Inputs::default()
            },
            _ => Inputs::load(&self.store, MANIFEST_KIND, &base),
        };
        for files in &manifest.entries {
            let found = timed(Phase::Lookup, || {
                match files.iter().all(|h| header_unchanged(h, &req.cwd)) {
                    true => self.store.get(&full_key("link", &base, files)),
                    false => Ok(None),
                }
            })?;
            if let Some(artifact) = found {
                if !req.peer.hung_up() {
                    deliver(&output, &artifact, req.umask)?;
                }
                return Ok(Outcome::new(
                    Served::LinkHit,
                    (0, artifact.stdout, artifact.stderr),
                ));
            }
        }
        let parts = KeyParts {
            compiler: identity.shown(&req.compiler),
            compiler_id: tool,
            args: link.key_args.clone(),
            env: keyed_env(&req.env),
            source: Digest::of(b""),
            source_name: None,
            inputs,
            input_noun: "input",
            named: Vec::new(),
        };
        let mut outcome = self.link_and_store(req, link, (&tool, &base), manifest)?;
        if outcome.exit_code == 0 {
            outcome.why =
                misses.record(&crate::paths::lexically_absolute(&req.cwd, &output), parts);
        }
        Ok(outcome)
    }

    fn link_and_store(
        &self,
        req: &Request,
        link: &Link,
        (tool, base): (&Digest, &Digest),
        manifest: Inputs,
    ) -> io::Result<Outcome> {
        let output = req.cwd.join(&link.output);
        let before = side_files(&output, &req.args);
        let scratch = Scratch::new(&self.scratch)?;
        let mut args = req.args.clone();
        match link.tool {
            LinkTool::Archiver => {}
            LinkTool::Linker => {
                args.push(format!("--dependency-file={}", scratch.depfile.display()))
            }
            LinkTool::Driver => {
                args.push(format!(
                    "-Wl,--dependency-file={}",
                    scratch.depfile.display()
                ));
            }
        }
        let started = now_ns();
        let (exit_code, stdout, stderr) = run(req, &args)?;
        if exit_code != 0 && link.tool != LinkTool::Archiver && mentions_dependency_file(&stderr) {
            self.lock_refusals().insert(*tool);
            return Ok(run_plain(
                req,
                Served::Passthrough("a linker without --dependency-file"),
            ));
        }
        let mut outcome = Outcome::new(Served::LinkMiss, (exit_code, stdout, stderr));
        if exit_code != 0 {
            return Ok(outcome);
        }
        let files = match link.tool {
            LinkTool::Archiver => Vec::new(),
            _ => {
                let deps = std::fs::read_to_string(&scratch.depfile).unwrap_or_default();
                // A private input (a compile-and-link's object) is keyed by its content
                // already, and its path is gone by the next link.
                let mut opened = prerequisites(&deps);
                opened.retain(|file| !Path::new(file).starts_with(self.scratch.path()));
                match learn_headers(&req.cwd, &output, &opened, started) {
                    Learned::Headers(files) | Learned::Dated(files) if !files.is_empty() => files,
                    _ => return Ok(outcome),
                }
            }
        };
        let Some(artifact) = collect(&output, &req.args, &before, &outcome)? else {
            return Ok(outcome);
        };
        outcome.stored_bytes += self.store.put(&full_key("link", base, &files), &artifact)?;
        if link.tool != LinkTool::Archiver {
            let manifest = manifest.with(files);
            outcome.stored_bytes += manifest.save(&self.store, MANIFEST_KIND, base)?;
        }
        Ok(outcome)
    }

    fn refuses_dependency_file(&self, link: &Link, tool: &Digest) -> bool {
        link.tool != LinkTool::Archiver && self.lock_refusals().contains(tool)
    }

    fn lock_refusals(&self) -> std::sync::MutexGuard<'_, HashSet<Digest>> {
        self.without_dependency_file
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

/// Each input the command line names (as shown: a private object by its source), with its
/// content; `None` when one cannot be read (the tool reports that better).
fn named_inputs(req: &Request, link: &Link) -> Option<Vec<(String, Digest)>> {
    link.inputs
        .iter()
        .map(|input| {
            let bytes = super::regular::read(&req.cwd.join(input)).ok()?;
            let shown = link.shown_as.iter().find(|(given, _)| given == input);
            let name = shown.map_or(input, |(_, name)| name);
            Some((name.clone(), Digest::of(&bytes)))
        })
        .collect()
}

/// The env vars of a link's key.
fn keyed_env(env: &[(String, String)]) -> Vec<(String, String)> {
    env.iter()
        .filter(|(k, _)| KEYED_ENV.contains(&k.as_str()))
        .cloned()
        .collect()
}

/// The key of everything the command line names: tool, working directory, arguments but
/// the output, keyed env, and each named input's content (`inputs`).
fn base_key(req: &Request, link: &Link, tool: &Digest, inputs: &[(String, Digest)]) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"zccache link v1\0");
    hasher.update(&tool.0);
    hasher.update(req.cwd.as_os_str().as_encoded_bytes());
    keying::add_args(&mut hasher, &link.key_args);
    hasher.update(b"\0env");
    hasher.update(keying::env_text(&req.env, |k| KEYED_ENV.contains(&k)).as_bytes());
    for (_, digest) in inputs {
        hasher.update(&digest.0);
    }
    hasher.finalize().into()
}

/// The stored result: the output with its mode, and the side files the link added or
/// changed next to it. `None` when the output is missing.
fn collect(
    output: &Path,
    args: &[String],
    before: &SideFiles,
    outcome: &Outcome,
) -> io::Result<Option<Artifact>> {
    let Ok(bytes) = std::fs::read(output) else {
        return Ok(None);
    };
    let mut outputs = vec![(OUTPUT.to_string(), bytes)];
    let mut kept_modes = vec![(OUTPUT.to_string(), modes::mode_of(output))];
    for (name, stamp) in side_files(output, args) {
        if before.get(&name) == Some(&stamp) {
            continue;
        }
        let path = output.with_file_name(&name);
        kept_modes.push((format!("{SIDE}{name}"), modes::mode_of(&path)));
        outputs.push((format!("{SIDE}{name}"), std::fs::read(&path)?));
    }
    outputs.push(modes::record(
        kept_modes.iter().map(|(n, m)| (n.as_str(), *m)),
    ));
    Ok(Some(Artifact {
        outputs,
        stdout: outcome.stdout.clone(),
        stderr: outcome.stderr.clone(),
        exit_code: 0,
    }))
}

/// Candidate side files with their size and mtime.
type SideFiles = BTreeMap<String, (u64, i64)>;

/// The files beside `output` that the command line names (`app.map` of `-Wl,-Map=app.map`):
/// a file the link did not ask for — a neighbour another job of a parallel build wrote
/// meanwhile — is never taken for one of its outputs.
fn side_files(output: &Path, args: &[String]) -> SideFiles {
    let (Some(dir), Some(name)) = (output.parent(), output.file_name()) else {
        return SideFiles::new();
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return SideFiles::new();
    };
    let named = |file: &str| args.iter().any(|a| a.contains(file));
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let meta = e.metadata().ok()?;
            let side = file.as_str() != name && meta.is_file() && named(&file);
            side.then(|| (file, (meta.size(), mtime_ns(&meta))))
        })
        .collect()
}

/// Writes a hit's output and side files, with their modes.
fn deliver(output: &Path, artifact: &Artifact, umask: u32) -> io::Result<()> {
    let modes = modes::recorded(artifact);
    for (name, bytes) in &artifact.outputs {
        let target: PathBuf = match name.strip_prefix(SIDE) {
            Some(side) => output.with_file_name(side),
            None if name == OUTPUT => output.to_path_buf(),
            None => continue,
        };
        write_output(&target, bytes, umask)?;
        modes::apply(&modes, name, &target, umask)?;
    }
    Ok(())
}

fn mentions_dependency_file(stderr: &[u8]) -> bool {
    memchr::memmem::find(stderr, b"dependency-file").is_some()
}
