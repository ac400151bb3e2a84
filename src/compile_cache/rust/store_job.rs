//! A Rust miss on its way to the store. When rustc has ended its outputs are opened (the
//! dep-info read, for the inputs it names); their bytes are read and stored later, off the
//! build's path when the wrapper compiled the miss itself, through those same handles: a
//! `cargo clean` right after the build cannot take them away, and an output rewritten since
//! rustc ended (its mtime after the end, or a change while it is read) is not stored.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::args::RustCompile;
use super::incremental::{self, Session};
use super::inputs::{
    Inputs, MANIFEST_KIND, Manifest, OUT_DIR_MARK, artifact_key, env_deps, mark_out_dir,
};
use super::pending::Pending;
use crate::compile_cache::artifact::Artifact;
use crate::compile_cache::depfile::prerequisites;
use crate::compile_cache::headers::{Learned, learn_headers};
use crate::compile_cache::modes;
use crate::compile_cache::regular;
use crate::compile_cache::request::{Outcome, Request};
use crate::compile_cache::store::Store;
use crate::fingerprint::{Digest, mtime_ns};

/// A successful miss's outputs, opened, with the inputs its dep-info names.
#[derive(Debug)]
pub struct StoreJob {
    compile: RustCompile,
    base: Digest,
    inputs: Inputs,
    outputs: Vec<Opened>,
    stdout: Vec<u8>,
    /// With the out-dir marked.
    stderr: Vec<u8>,
    /// When rustc had ended (ns).
    ended: i64,
    /// The incremental session rustc finished, kept beside the artifact.
    session: Option<Session>,
    /// Counted among the stores in progress until this job is dropped.
    pending: Option<Pending>,
}

/// One output: its name, mode and bytes (read already, or to be read from its handle).
#[derive(Debug)]
struct Opened {
    name: String,
    mode: u32,
    content: Content,
}

/// An output's bytes: read when rustc ended (the dep-info), or its handle and metadata then.
#[derive(Debug)]
enum Content {
    Read(Vec<u8>),
    Open(File, Metadata),
}

impl StoreJob {
    /// The store of a miss run in `span` (start, end; ns) whose outcome succeeded; `None`
    /// when it cannot be trusted (an output missing or written after the end, a source
    /// written during the compile).
    pub(super) fn open(
        req: &Request,
        c: &RustCompile,
        base: Digest,
        (started, ended): (i64, i64),
        outcome: &Outcome,
    ) -> Option<StoreJob> {
        let out_dir = req.cwd.join(&c.out_dir);
        let mut outputs = Vec::new();
        let mut dep_info = String::new();
        let mut rmeta_inode = None;
        for name in c.output_names() {
            let (mut file, meta) = regular::open(&out_dir.join(&name)).ok()?;
            if mtime_ns(&meta) > ended {
                tracing::debug!("{name} was written after rustc ended: not stored");
                return None;
            }
            if name.ends_with(".rmeta") {
                rmeta_inode = Some(meta.ino());
            }
            let mode = meta.permissions().mode() & 0o777;
            let content = match name == c.dep_info_name() {
                true => {
                    let bytes = read_unchanged(&mut file, &meta, ended)?;
                    dep_info = String::from_utf8_lossy(&bytes).into_owned();
                    Content::Read(mark_out_dir(&bytes, &c.out_dir, OUT_DIR_MARK))
                }
                false => Content::Open(file, meta),
            };
            outputs.push(Opened {
                name,
                mode,
                content,
            });
        }
        let source = req.cwd.join(&c.source);
        let files = match learn_headers(&req.cwd, &source, &prerequisites(&dep_info), started) {
            Learned::Headers(files) | Learned::Dated(files) => files,
            Learned::Untrusted => return None,
        };
        Some(StoreJob {
            compile: c.clone(),
            base,
            inputs: Inputs {
                files,
                env: env_deps(&dep_info),
            },
            outputs,
            stdout: outcome.stdout.clone(),
            stderr: mark_out_dir(&outcome.stderr, &c.out_dir, OUT_DIR_MARK),
            ended,
            session: c.incremental.as_ref().and_then(|dir| {
                let dir = req.cwd.join(dir);
                incremental::finished_session(&dir, &c.crate_name, (started, ended), rmeta_inode)
            }),
            pending: None,
        })
    }

    /// The files and env vars the compile read.
    pub(super) fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    /// This job, counted as a store in progress until it has run.
    pub(super) fn deferred(mut self, pending: Pending) -> StoreJob {
        self.pending = Some(pending);
        self
    }

    /// Reads the outputs and stores them with the manifest of their inputs; the bytes
    /// written. An output that changed since rustc ended stores nothing.
    pub fn run(self, store: &Store) -> io::Result<u64> {
        let mut outputs = Vec::with_capacity(self.outputs.len() + 1);
        let mut kept_modes = Vec::with_capacity(self.outputs.len());
        for opened in self.outputs {
            let bytes = match opened.content {
                Content::Read(bytes) => bytes,
                Content::Open(mut file, meta) => match read_unchanged(&mut file, &meta, self.ended)
                {
                    Some(bytes) => bytes,
                    None => {
                        tracing::debug!("{} changed after rustc: not stored", opened.name);
                        return Ok(0);
                    }
                },
            };
            kept_modes.push((opened.name.clone(), opened.mode));
            outputs.push((opened.name, bytes));
        }
        outputs.push(modes::record(
            kept_modes.iter().map(|(n, m)| (n.as_str(), *m)),
        ));
        let artifact = Artifact {
            outputs,
            stdout: self.stdout,
            stderr: self.stderr,
            exit_code: 0,
        };
        let key = artifact_key(&self.compile, &self.base, &self.inputs);
        let mut written = 0;
        // The session first: a hit found by the artifact finds its session too.
        if let Some(session) = self.session.as_ref().and_then(Session::read) {
            written += store.put_here(&incremental::key_of(&key), &session)?;
        }
        written += store.put(&key, &artifact)?;
        let manifest = Manifest::load(store, MANIFEST_KIND, &self.base).with(self.inputs);
        written += manifest.save(store, MANIFEST_KIND, &self.base)?;
        Ok(written)
    }
}

/// The bytes of `file` (opened, unread) if it is still rustc's once they are read: the same
/// inode and size as `before`, and last written no later than `ended` (ns), when rustc had
/// ended. Its mtime may have moved back (cargo dates some outputs back to the compile's
/// start); any write since rustc ended would have moved it past `ended`.
fn read_unchanged(file: &mut File, before: &Metadata, ended: i64) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(usize::try_from(before.size()).unwrap_or(0));
    file.read_to_end(&mut bytes).ok()?;
    let after = file.metadata().ok()?;
    let same = (after.ino(), after.size()) == (before.ino(), before.size());
    (same && mtime_ns(&after) <= ended && bytes.len() as u64 == before.size()).then_some(bytes)
}
