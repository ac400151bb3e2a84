//! Compile sessions and the compile journal: per-session counters for a build
//! (`session-start` … `session-end`), and one JSON line per compile appended to
//! `ZCCACHE_DIR/logs/compile_journal.jsonl` and to the session's own journal.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::protocol::SessionCounts;
use crate::compile_cache::profile::Profile;

use crate::os::process_alive;

/// How long a session without an owner process lives without a compile
/// (`ZCCACHE_SESSION_IDLE_TIMEOUT`, seconds).
const IDLE_ENV: &str = "ZCCACHE_SESSION_IDLE_TIMEOUT";
const DEFAULT_IDLE: Duration = Duration::from_secs(3600);

#[derive(Debug)]
struct Session {
    /// The process whose exit ends it (0: none).
    owner_pid: u32,
    last_used: Instant,
    journal: Option<PathBuf>,
    log: Option<PathBuf>,
    profile: bool,
    counts: SessionCounts,
    hit_ns: u64,
    miss_ns: u64,
    started: Instant,
}

/// How one compile went, for counters and the journal.
#[derive(Debug, Clone, Serialize)]
pub struct JournalLine {
    /// Seconds since the epoch, with fraction.
    pub ts: f64,
    /// `hit`, `miss`, `passthrough` or `error`.
    pub outcome: &'static str,
    /// The compiler.
    pub compiler: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Where it ran.
    pub cwd: String,
    /// The env vars that are part of the key.
    pub env: Vec<(String, String)>,
    /// Exit status.
    pub exit_code: i32,
    /// The session, if any.
    pub session_id: Option<String>,
    /// Time spent serving it, ns.
    pub latency_ns: u64,
    /// Why a miss missed, the most telling reason (absent where none is known).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub miss_reason: Option<String>,
    /// Every key part that differed from the last compile of the same output.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
    /// Why a passthrough was not cached (the classifier's reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passthrough_reason: Option<&'static str>,
    /// Added to the lines of profiled sessions only.
    #[serde(skip)]
    pub profile: Profile,
}

/// The daemon's sessions and its journal.
#[derive(Debug)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    journal: PathBuf,
    next: AtomicU64,
    idle: Duration,
}

impl Sessions {
    /// Sessions journaling under `dir/logs/`.
    pub fn new(dir: &Path) -> Self {
        Sessions {
            map: Mutex::new(HashMap::new()),
            journal: dir.join("logs").join("compile_journal.jsonl"),
            next: AtomicU64::new(1),
            idle: std::env::var(IDLE_ENV)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .map_or(DEFAULT_IDLE, Duration::from_secs),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session, ended by `owner_pid`'s exit (0: by `end` or idleness only); a
    /// journal path must end in `.jsonl`.
    pub fn start(
        &self,
        owner_pid: u32,
        journal: Option<PathBuf>,
        log: Option<PathBuf>,
        profile: bool,
    ) -> Result<String, String> {
        if let Some(path) = &journal
            && path.extension().is_none_or(|e| e != "jsonl")
        {
            return Err(format!(
                "journal path must end in .jsonl: {}",
                path.display()
            ));
        }
        self.reap();
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let id = format!("{:08x}{:08x}", std::process::id(), n);
        let session = Session {
            owner_pid,
            last_used: Instant::now(),
            journal,
            log,
            profile,
            counts: SessionCounts {
                session_id: id.clone(),
                ..Default::default()
            },
            hit_ns: 0,
            miss_ns: 0,
            started: Instant::now(),
        };
        self.lock().insert(id.clone(), session);
        Ok(id)
    }

    /// Whether `id` is open.
    pub fn exists(&self, id: &str) -> bool {
        self.reap();
        self.lock().contains_key(id)
    }

    /// The counters of `id`.
    pub fn stats(&self, id: &str) -> Option<SessionCounts> {
        self.lock().get(id).map(report)
    }

    /// Closes `id`, returning its final counters.
    pub fn end(&self, id: &str) -> Option<SessionCounts> {
        self.lock().remove(id).as_ref().map(report)
    }

    /// Counts a compile and appends it to the journals.
    pub fn record(&self, line: &JournalLine) {
        let (session_journal, session_log) = line
            .session_id
            .as_ref()
            .and_then(|id| {
                let mut map = self.lock();
                let session = map.get_mut(id)?;
                session.last_used = Instant::now();
                count(session, line);
                let journal = session.journal.clone().map(|path| (path, session.profile));
                Some((journal, session.log.clone()))
            })
            .unwrap_or_default();
        if let Some(log) = session_log {
            let text = format!(
                "{} exit {} {:.1} ms: {} {}",
                line.outcome,
                line.exit_code,
                line.latency_ns as f64 / 1e6,
                line.compiler,
                line.args.join(" ")
            );
            append(&log, &text);
        }
        let text = serde_json::to_string(line).unwrap_or_default();
        append(&self.journal, &text);
        if let Some((path, profile)) = session_journal {
            let text = if profile {
                let mut value = serde_json::to_value(line).unwrap_or_default();
                if let (Some(fields), serde_json::Value::Object(extra)) = (
                    value.as_object_mut(),
                    serde_json::to_value(&line.profile).unwrap_or_default(),
                ) {
                    fields.extend(extra);
                }
                value.to_string()
            } else {
                text
            };
            append(&path, &text);
        }
    }

    /// Drops sessions whose owner process is gone, and ownerless ones left idle.
    fn reap(&self) {
        let idle = self.idle;
        self.lock().retain(|_, s| match s.owner_pid {
            0 => s.last_used.elapsed() < idle,
            pid => process_alive(pid),
        });
    }
}

fn count(session: &mut Session, line: &JournalLine) {
    let c = &mut session.counts;
    match line.outcome {
        "hit" | "link_hit" => {
            c.hits += 1;
            session.hit_ns += line.latency_ns;
        }
        "miss" | "link_miss" => {
            c.misses += 1;
            session.miss_ns += line.latency_ns;
        }
        "error" => c.errors += 1,
        _ => c.passthroughs += 1,
    }
}

fn report(session: &Session) -> SessionCounts {
    let mut counts = session.counts.clone();
    let cached = counts.hits + counts.misses;
    counts.hit_rate = if cached == 0 {
        0.0
    } else {
        counts.hits as f64 / cached as f64
    };
    let mean = |ns: u64, n: u64| if n == 0 { 0.0 } else { ns as f64 / n as f64 };
    let saved_per_hit = mean(session.miss_ns, counts.misses) - mean(session.hit_ns, counts.hits);
    counts.time_saved_ms = (saved_per_hit * counts.hits as f64 / 1e6).max(0.0);
    counts.duration_secs = session.started.elapsed().as_secs_f64();
    counts
}

/// Appends one line (a single write, so concurrent appends do not interleave).
/// The directory is created only when the first open finds it missing (not per compile).
fn append(path: &Path, line: &str) {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
    };
    let file = open().or_else(|e| match path.parent() {
        Some(dir) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).and_then(|()| open())
        }
        _ => Err(e),
    });
    if let Ok(mut file) = file {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}

/// Now, in seconds since the epoch.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
