//! The daemon's wire types. `Request`'s variants are the contract of DESIGN.md, in that order:
//! bincode encodes the variant index, so variants are only ever appended, never reordered.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::compile_cache::artifact::{Artifact, RustArtifact};
use crate::compile_cache::miss_reason::Miss;
use crate::fingerprint::Decision;
use crate::paths::lexically_absolute;

/// An absolute, lexically normalized path (no `.`, no `..`), serialized as a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NormalizedPath(String);

impl NormalizedPath {
    /// Makes `path` absolute against `cwd` and removes `.` and `..` lexically.
    pub fn new(cwd: &Path, path: &Path) -> Self {
        let path = lexically_absolute(cwd, path);
        NormalizedPath(path.to_string_lossy().into_owned())
    }

    /// As a path.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }
}

/// A request from a client. Each variant's reply is named in its doc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Health check → `Pong`.
    Ping,
    /// Finish in-flight requests, then exit → `ShuttingDown`.
    Shutdown,
    /// → `Status`.
    Status,
    /// Look up an artifact in the store → `LookupResult`.
    Lookup {
        /// Hex cache key.
        cache_key: String,
    },
    /// Store an artifact → `Stored`.
    Store {
        /// Hex cache key.
        cache_key: String,
        /// The artifact.
        artifact: Artifact,
    },
    /// Open a compile session → `SessionStarted`.
    SessionStart {
        /// The process whose exit ends the session; 0: none (it lasts until `SessionEnd`
        /// or the session idle timeout).
        client_pid: u32,
        /// The client's working directory.
        working_dir: NormalizedPath,
        /// Where to log the session.
        log_file: Option<NormalizedPath>,
        /// Keep hit/miss counts.
        track_stats: bool,
        /// JSONL journal, must end in `.jsonl`.
        journal_path: Option<NormalizedPath>,
        /// Extended journal fields.
        profile: bool,
    },
    /// Compile inside a session → `CompileResult`.
    Compile {
        /// From `SessionStarted`.
        session_id: String,
        /// Compiler arguments.
        args: Vec<String>,
        /// Working directory of the compile.
        cwd: NormalizedPath,
        /// The compiler.
        compiler: NormalizedPath,
        /// `None`: inherit the daemon's environment; `Some(v)`: exactly `v`.
        env: Option<Vec<(String, String)>>,
        /// Bytes for the compiler's stdin.
        stdin: Vec<u8>,
    },
    /// Close a session → `SessionEnded`.
    SessionEnd {
        /// From `SessionStarted`.
        session_id: String,
    },
    /// Drop every cache the daemon holds → `Cleared`.
    Clear,
    /// One compile outside a session → `CompileResult`.
    CompileEphemeral {
        /// The client's pid.
        client_pid: u32,
        /// The client's working directory.
        working_dir: NormalizedPath,
        /// The compiler.
        compiler: NormalizedPath,
        /// Compiler arguments.
        args: Vec<String>,
        /// Working directory of the compile.
        cwd: NormalizedPath,
        /// `None`: inherit the daemon's environment; `Some(v)`: exactly `v`.
        env: Option<Vec<(String, String)>>,
        /// Bytes for the compiler's stdin.
        stdin: Vec<u8>,
    },
    /// One link or archive (`zccache ar|ld ...`) → `CompileResult`.
    LinkEphemeral {
        /// The client's pid.
        client_pid: u32,
        /// The linker or archiver.
        tool: NormalizedPath,
        /// Its arguments.
        args: Vec<String>,
        /// Working directory.
        cwd: NormalizedPath,
        /// `None`: inherit the daemon's environment; `Some(v)`: exactly `v`.
        env: Option<Vec<(String, String)>>,
    },
    /// Session counters → `SessionStats`.
    SessionStats {
        /// From `SessionStarted`.
        session_id: String,
    },
    /// `fp check`, leaving `F.pending` → `FingerprintChecked`.
    FingerprintCheck {
        /// The state file.
        cache_file: NormalizedPath,
        /// `two-layer` or `hash`.
        cache_type: String,
        /// The root to fingerprint.
        root: NormalizedPath,
        /// `--ext` values.
        extensions: Vec<String>,
        /// `--include` globs.
        include_globs: Vec<String>,
        /// `--exclude` patterns.
        exclude: Vec<String>,
    },
    /// `fp mark-success` → `Ack`.
    FingerprintMarkSuccess {
        /// The state file.
        cache_file: NormalizedPath,
    },
    /// `fp mark-failure` → `Ack`.
    FingerprintMarkFailure {
        /// The state file.
        cache_file: NormalizedPath,
    },
    /// `fp invalidate` → `Ack`.
    FingerprintInvalidate {
        /// The state file.
        cache_file: NormalizedPath,
    },
    /// Every cached Rust artifact → `RustArtifacts`.
    ListRustArtifacts,
    /// `zccache run`'s check: like `FingerprintCheck` plus key parts, the pending record kept
    /// in the daemon under an id → `RunChecked`.
    RunCheck(RunCheckSpec),
    /// `zccache run`'s outcome for a `RunChecked` id → `Ack`.
    RunRecord {
        /// The state file.
        cache_file: NormalizedPath,
        /// From `RunChecked`: unique across daemons, so a restarted daemon never takes an
        /// outcome for one of its own checks.
        pending_id: String,
        /// The decision's key (hex) from `RunChecked`; must match the pending record's.
        key: String,
        /// Whether the command succeeded.
        success: bool,
    },
    /// Several `RunCheck`s in one round trip (`zccache run` of a task graph) →
    /// `RunCheckedBatch`, one answer per spec in order; at most `MAX_BATCH` specs.
    RunCheckBatch(Vec<RunCheckSpec>),
    /// The wrapper compiled a miss it was told to (`CompileHere`) → `Ack`: the daemon
    /// stores what the compiler wrote and journals it.
    CompileDone {
        /// From `CompileHere`.
        token: u64,
        /// The compiler's exit status.
        exit_code: i32,
        /// Its stdout.
        stdout: Vec<u8>,
        /// Its stderr.
        stderr: Vec<u8>,
        /// The session the compile belongs to, if any.
        session_id: Option<String>,
    },
    /// The recent misses of a compile output, and why → `OutputMisses`.
    WhyOutput {
        /// The output file.
        output: NormalizedPath,
    },
    /// Subscribes the connection to changes of input sets (`zccache watch`) → `Watching`,
    /// then a `SetsChanged` whenever the content of some sets changed, until either side
    /// closes the connection or the daemon stops. At most `MAX_WATCH_SETS` sets.
    Watch {
        /// The watching process (for `status`).
        client_pid: u32,
        /// The sets; `SetChange::set` indexes them.
        sets: Vec<WatchSet>,
        /// How long a burst of events must be quiet before it is pushed (ms).
        settle_ms: u32,
    },
    /// A per-file task's check (`zccache run --files`) → `PerFileChecked`: the task's check
    /// (its shared inputs) and its per-file set's, as a `RunCheckBatch` of the two, and the
    /// per-file set's table unless every file of it passed.
    PerFileCheck {
        /// The task's check.
        task: RunCheckSpec,
        /// The per-file set's check (a dry run).
        set: RunCheckSpec,
        /// The (task key, set key) pairs, hex, under which every per-file file passed: the
        /// table is left out when the two checks' keys are one of them.
        passed: Vec<(String, String)>,
    },
}

/// Most sets one `Watch` may name.
pub const MAX_WATCH_SETS: usize = 4096;

/// One input set a `Watch` follows: a task's (root and filters, as `RunCheckSpec`), or a
/// single file (the watch's `zccache.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchSet {
    /// What `status` calls it: a task's name, or its command.
    pub label: String,
    /// The root.
    pub root: NormalizedPath,
    /// `--ext` values.
    pub extensions: Vec<String>,
    /// `--include` globs.
    pub include_globs: Vec<String>,
    /// `--exclude` patterns (outputs included).
    pub exclude: Vec<String>,
    /// The task's state file: neither it nor its companions are inputs.
    pub state_file: Option<NormalizedPath>,
    /// Follow this one file instead of a set (then the filters are not used).
    pub file: Option<NormalizedPath>,
}

/// What changed in one watched set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetChange {
    /// Its index in the `Watch`.
    pub set: u32,
    /// Changed paths relative to the set's root (added, removed or edited), at most
    /// `MAX_CHANGED_PATHS`.
    pub paths: Vec<String>,
    /// How many more paths changed than are listed.
    pub more: u32,
}

/// Most paths one `SetChange` lists.
pub const MAX_CHANGED_PATHS: usize = 20;

/// Most specs one `RunCheckBatch` may carry.
pub const MAX_BATCH: usize = 4096;

/// One answer of `RunCheckedBatch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RunCheckAnswer {
    /// As `RunChecked`.
    Checked {
        /// The decision.
        decision: Decision,
        /// How the input set was built.
        mode: String,
        /// Pass back in `RunRecord`.
        pending_id: String,
    },
    /// This spec could not be checked (the others were).
    Failed {
        /// Why.
        message: String,
    },
}

/// What `RunCheck` checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCheckSpec {
    /// The state file.
    pub cache_file: NormalizedPath,
    /// `two-layer` or `hash`.
    pub cache_type: String,
    /// The root to fingerprint.
    pub root: NormalizedPath,
    /// `--ext` values.
    pub extensions: Vec<String>,
    /// `--include` globs.
    pub include_globs: Vec<String>,
    /// `--exclude` patterns (outputs included).
    pub exclude: Vec<String>,
    /// Key parts besides the file set: name → hex digest.
    pub extra_parts: Vec<(String, String)>,
    /// Decide only, write nothing.
    pub dry_run: bool,
}

/// A reply from the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// To `Ping`.
    Pong,
    /// To `Shutdown`.
    ShuttingDown,
    /// To `Status`.
    Status(DaemonStatus),
    /// The request failed; the connection closes.
    Error {
        /// One line saying why.
        message: String,
    },
    /// To `Clear`.
    Cleared {
        /// Fingerprint indexes dropped from memory.
        fingerprint_indexes: u64,
        /// Artifact entries removed from the store.
        artifact_entries: u64,
        /// Bytes of artifact blobs removed.
        artifact_bytes: u64,
    },
    /// To `FingerprintCheck`.
    FingerprintChecked {
        /// The decision.
        decision: Decision,
        /// How the input set was built: `watched` or `full stat pass (why)`.
        mode: String,
    },
    /// To the fingerprint marks and `RunRecord`.
    Ack,
    /// To `RunCheck`.
    RunChecked {
        /// The decision.
        decision: Decision,
        /// How the input set was built.
        mode: String,
        /// Pass back in `RunRecord`.
        pending_id: String,
    },
    /// To `Lookup`: the artifact, or `None` on a miss.
    LookupResult {
        /// The stored artifact, verified.
        artifact: Option<Artifact>,
    },
    /// To `Store`.
    Stored {
        /// Bytes of new blobs written (shared blobs are stored once).
        bytes_written: u64,
    },
    /// To `CompileEphemeral`: what to replay, and whether it came from the cache.
    CompileResult {
        /// The compiler's exit status.
        exit_code: i32,
        /// Its stdout.
        stdout: Vec<u8>,
        /// Its stderr.
        stderr: Vec<u8>,
        /// Served from the store.
        cached: bool,
    },
    /// To `SessionStart`.
    SessionStarted {
        /// Pass as `ZCCACHE_SESSION_ID` to the build.
        session_id: String,
        /// The session's journal, if one was asked for.
        journal_path: Option<String>,
    },
    /// To `SessionStats`.
    SessionStats(SessionCounts),
    /// To `SessionEnd`.
    SessionEnded {
        /// The final counters.
        stats: SessionCounts,
    },

    /// To `ListRustArtifacts`.
    RustArtifacts {
        /// One per cached crate compile.
        artifacts: Vec<RustArtifact>,
    },
    /// To `RunCheckBatch`: one answer per spec, in order.
    RunCheckedBatch(Vec<RunCheckAnswer>),
    /// To a Rust compile that missed: run it yourself, with your own stdio, then send
    /// `CompileDone` with this token.
    CompileHere {
        /// For `CompileDone`.
        token: u64,
    },
    /// To `WhyOutput`: newest first (empty: none recorded since the daemon started).
    OutputMisses {
        /// Each miss with its reasons.
        misses: Vec<Miss>,
    },
    /// Sent every second while a request is still being worked on, before its answer: the
    /// client waits for progress, not for the whole answer, and tells a hung daemon from a
    /// long compile.
    Working,
    /// To `Watch`: the sets are followed from now on.
    Watching {
        /// How changes are learnt (`inotify`, or why they cannot be).
        mode: String,
    },
    /// Pushed on a `Watch` connection: these sets' contents changed.
    SetsChanged(Vec<SetChange>),
    /// To `PerFileCheck`.
    PerFileChecked {
        /// The task's check.
        task: RunCheckAnswer,
        /// The per-file set's check.
        set: RunCheckAnswer,
        /// The per-file set as the daemon holds it, in `fingerprint::encode_table`'s bytes
        /// (entries sorted by path, their digests and the metadata they were read with; its
        /// time is the oldest verification of any), unless its pair with the task's key
        /// passed or a check failed.
        table: Option<Blob>,
    },
}

/// Bytes sent as one run (serde gives bincode a `Vec<u8>` byte by byte: 170 KB of a
/// table cost the daemon more than its check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob(pub Vec<u8>);

impl Serialize for Blob {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Bytes;
        impl serde::de::Visitor<'_> for Bytes {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// The daemon's state, for `zccache status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// zccache version of the daemon.
    pub version: String,
    /// Its pid.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_secs: u64,
    /// Requests answered.
    pub requests: u64,
    /// Its state directory.
    pub dir: String,
    /// Watched fingerprint indexes.
    pub indexes: Vec<IndexStatus>,
    /// Entries in the artifact store.
    pub artifact_entries: u64,
    /// Bytes of blobs in the artifact store.
    pub artifact_bytes: u64,
    /// The store's size bound (`ZCCACHE_MAX_SIZE`).
    pub max_size: u64,
    /// Compiles delivered from the store.
    pub cache_hits: u64,
    /// Compiles run and stored.
    pub cache_misses: u64,
    /// Compiles run uncached.
    pub passthroughs: u64,
    /// The remote tier's counters, when one is configured.
    pub remote: Option<RemoteStatus>,
    /// How watched roots learn of changes (`inotify`, or why every check stats the tree).
    pub watching: String,
    /// When compiles ran uncached because the state directory's filesystem was full: how
    /// many, how long ago the last, and why (`None`: never since the daemon started).
    pub out_of_space: Option<String>,
    /// Why the remote tier the user configured is off (a missing key file, a short key, a
    /// bad URL); `None` when it is on or none is configured.
    pub remote_off: Option<String>,
    /// Compiles that failed (non-zero status; nothing stored, so no miss).
    pub cache_errors: u64,
    /// What the store's blobs would take uncompressed (`artifact_bytes` is on disk).
    pub artifact_raw_bytes: u64,
    /// The zstd level new blobs are stored at (`None`: raw).
    pub compression: Option<i32>,
    /// The `zccache watch` processes subscribed to changes.
    pub watches: Vec<WatchStatus>,
}

/// One active `zccache watch`, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchStatus {
    /// The watching process.
    pub pid: u32,
    /// The sets it follows, by label.
    pub sets: Vec<String>,
    /// Seconds since it subscribed.
    pub age_secs: u64,
}

/// What the remote tier did since the daemon started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteStatus {
    /// Pull-only.
    pub readonly: bool,
    /// Entries found remotely and verified.
    pub hits: u64,
    /// Entries asked for and not found.
    pub misses: u64,
    /// Entries uploaded.
    pub uploads: u64,
    /// Entries not uploaded (queue full or remote off).
    pub dropped: u64,
    /// Remote entries refused by verification.
    pub refused: u64,
    /// Errors and timeouts (each turns the remote off for 30 s).
    pub errors: u64,
}

/// One watched task (cache file + root + filters), answered from memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexStatus {
    /// The state file.
    pub cache_file: String,
    /// The root.
    pub root: String,
    /// `watched` or why it needs full stat passes.
    pub mode: String,
    /// Files indexed.
    pub files: u64,
    /// Files changed since the last success (`None`: unknown).
    pub changed_files: Option<u64>,
    /// Whether the next check would skip, as far as memory tells (`None`: unknown).
    pub would_skip: Option<bool>,
}

/// A session's counters, as `session-stats` and `session-end` report them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionCounts {
    /// The session.
    pub session_id: String,
    /// Compiles delivered from the store.
    pub hits: u64,
    /// Compiles run and stored.
    pub misses: u64,
    /// Compiles run uncached.
    pub passthroughs: u64,
    /// Compiles that failed (non-zero status).
    pub errors: u64,
    /// hits / (hits + misses), 0 when there were none.
    pub hit_rate: f64,
    /// Estimated time saved: hits × (mean miss time − mean hit time), ms.
    pub time_saved_ms: f64,
    /// Seconds since the session started.
    pub duration_secs: f64,
}
