//! Running out of room under `ZCCACHE_DIR`. A compile that failed because its scratch files
//! could not be written (its compiler names a scratch file in its complaint, or the
//! filesystem has next to no room left), or a write of the store that fails with ENOSPC or
//! EDQUOT, is the cache's failure, never the build's: the compile runs again the way it was
//! asked, uncached, or keeps its delivered result unstored. This remembers that it happened,
//! for `zccache status`, and gives the build one warning a minute, not one per compile.

use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::request::Outcome;

/// How often the build is told.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Below this many free bytes the filesystem counts as full: a compile needs more.
pub const LOW_SPACE: u64 = 1 << 20;

/// What ran out of space, and when the build was last told.
#[derive(Debug, Default)]
pub struct OutOfSpace {
    seen: Mutex<Option<Seen>>,
}

#[derive(Debug)]
struct Seen {
    /// Compiles and stores that went without the cache.
    count: u64,
    last: Instant,
    warned: Instant,
    cause: String,
}

impl OutOfSpace {
    /// Records one compile or store done without the cache for want of space; the line to
    /// add to the build's stderr when none was given in the last minute.
    pub fn note(&self, cause: &str) -> Option<String> {
        tracing::warn!("out of space, compiling uncached: {cause}");
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let due = match seen.as_mut() {
            Some(seen) => {
                seen.count += 1;
                seen.last = now;
                seen.cause = cause.to_string();
                let due = now.duration_since(seen.warned) >= WARN_EVERY;
                if due {
                    seen.warned = now;
                }
                due
            }
            None => {
                *seen = Some(Seen {
                    count: 1,
                    last: now,
                    warned: now,
                    cause: cause.to_string(),
                });
                true
            }
        };
        due.then(|| {
            format!("zccache: warning: the cache is out of space ({cause}); compiling uncached\n")
        })
    }

    /// Records one compile or store done without the cache for want of space, adding the
    /// warning to `outcome`'s stderr when it is due.
    pub fn tell(&self, cause: &str, outcome: &mut Outcome) {
        if let Some(warning) = self.note(cause) {
            outcome.stderr.splice(0..0, warning.into_bytes());
        }
    }

    /// For `zccache status`: how many went without the cache, the last how long ago and
    /// why, and the room left now under `dir`; `None` when it never happened.
    pub fn describe(&self, dir: &Path) -> Option<String> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let seen = seen.as_ref()?;
        let free = crate::os::free_space(dir)
            .map(|bytes| format!("; {bytes} bytes free now"))
            .unwrap_or_default();
        let plural = if seen.count == 1 { "" } else { "s" };
        Some(format!(
            "{} compile{plural} without the cache, the last {} s ago ({}){free}",
            seen.count,
            seen.last.elapsed().as_secs(),
            seen.cause
        ))
    }
}

/// Why a compile that failed failed for want of room under `scratch`, if it did: its
/// compiler complains about one of our scratch files, or the filesystem is (nearly) full.
pub fn starved(stderr: &[u8], scratch: &Path) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let named = text.lines().find(|line| {
        line.contains(&*scratch.to_string_lossy()) && line.contains("No space left on device")
    });
    if let Some(line) = named {
        // From the scratch file on: "<path>: No space left on device".
        let at = line.find(&*scratch.to_string_lossy()).unwrap_or(0);
        return Some(line[at..].trim().to_string());
    }
    let free = crate::os::free_space(scratch)?;
    (free < LOW_SPACE).then(|| format!("{}: {free} bytes free", scratch.display()))
}

/// Whether `err` says the filesystem or the user's quota is full.
pub fn is_full(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_is_told_once_a_minute_and_status_counts_every_time() {
        let space = OutOfSpace::default();
        assert!(space.describe(Path::new("/")).is_none());
        let first = space.note("/z/scratch/1/out.d: No space left on device");
        assert!(first.unwrap().contains("out of space (/z/scratch/1/out.d"));
        assert_eq!(space.note("again"), None);
        let status = space.describe(Path::new("/")).unwrap();
        assert!(
            status.starts_with("2 compiles without the cache"),
            "{status}"
        );
        assert!(status.contains("(again)"), "{status}");
    }

    #[test]
    fn a_complaint_about_a_scratch_file_is_ours_not_the_builds() {
        let scratch = Path::new("/state/scratch");
        let ours = b"u.c:1:1: fatal error: closing dependency file /state/scratch/0/out.d: No space left on device\n";
        assert_eq!(
            starved(ours, scratch).unwrap(),
            "/state/scratch/0/out.d: No space left on device"
        );
        let theirs = b"u.c:1:1: error: expected ';' before '}' token\n";
        let roomy = crate::os::free_space(Path::new("/")).is_some_and(|f| f >= LOW_SPACE);
        if roomy {
            assert_eq!(starved(theirs, Path::new("/")), None);
        }
    }
}
