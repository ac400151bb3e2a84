//! Rust misses the wrapper compiles itself: the daemon answers "compile it here" with a
//! token, the wrapper runs rustc with cargo's own stdio and jobserver (so cargo sees the
//! `.rmeta` notice the moment rustc writes it and starts the dependents: pipelining) and
//! reports back; then the daemon stores what rustc wrote. This keeps what the daemon needs
//! to store it, a bounded number of them, each under an unguessable token. A miss whose
//! wrapper hung up without reporting is forgotten (`take` by the connection's end).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::args::RustCompile;
use crate::compile_cache::inflight::Lead;
use crate::compile_cache::miss_reason::KeyParts;
use crate::compile_cache::request::Request;
use crate::fingerprint::Digest;

/// Most misses awaiting their report (the oldest is forgotten past it: that compile is
/// simply not stored).
const MAX_WAITING: usize = 1024;

/// A miss handed to the wrapper.
#[derive(Debug)]
pub struct Delegated {
    /// The compile as asked.
    pub req: Request,
    /// Its classification.
    pub compile: RustCompile,
    /// Its key before the sources.
    pub base: Digest,
    /// Its key parts before the files rustc reads (for saying why it missed).
    pub parts: KeyParts,
    /// When it was handed out (ns): a source written after this is not trusted.
    pub started_ns: i64,
    /// When it was handed out, for the journal's latency.
    pub since: Instant,
    /// Its leadership among identical compiles: they wait until this miss is reported (and
    /// its store begun) or forgotten.
    pub lead: Lead,
}

/// The misses awaiting their wrapper's report.
#[derive(Debug, Default)]
pub struct Waiting {
    by_token: Mutex<HashMap<u64, Delegated>>,
}

impl Waiting {
    /// Keeps `delegated`; returns its token.
    pub fn keep(&self, delegated: Delegated) -> u64 {
        let token = random_token();
        let mut waiting = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        if waiting.len() >= MAX_WAITING
            && let Some(oldest) = waiting.iter().min_by_key(|(_, d)| d.since).map(|(t, _)| *t)
        {
            waiting.remove(&oldest);
        }
        waiting.insert(token, delegated);
        token
    }

    /// The miss of `token`, taken out (`None`: unknown or forgotten).
    pub fn take(&self, token: u64) -> Option<Delegated> {
        let mut waiting = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        waiting.remove(&token)
    }
}

/// 64 bits no other client can guess from earlier tokens.
fn random_token() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}
