//! Work the build does not wait on — the store of a Rust miss its wrapper compiled — run on
//! one thread at a lower CPU priority (nice +10), so on a machine whose cores are all busy
//! with rustc the store takes only what the compilers leave, and a cold build is not slowed
//! by its own cache. An idle machine runs it at full speed all the same.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, PoisonError};

/// How much lower than the daemon's own the background thread's priority is.
const NICE: libc::c_int = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The background thread's queue (started on first use).
#[derive(Default)]
pub struct Background {
    queue: Mutex<Option<Sender<Job>>>,
}

impl Background {
    /// Runs `job` on the background thread, after the jobs queued before it; on the caller's
    /// thread when the background thread cannot be started.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.is_none() {
            *queue = start();
        }
        let job: Job = Box::new(job);
        let refused = match queue.as_ref() {
            Some(sender) => sender.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = refused {
            *queue = None;
            drop(queue);
            job();
        }
    }
}

/// The thread, at nice +`NICE` (Linux sets a thread's own priority by its tid).
fn start() -> Option<Sender<Job>> {
    let (sender, receiver) = channel::<Job>();
    std::thread::Builder::new()
        .name("zccache-background".to_string())
        .spawn(move || {
            // SAFETY: gettid and setpriority have no preconditions; a failure leaves the
            // thread at the daemon's priority, which is only slower for the build.
            unsafe {
                let tid = libc::gettid() as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, NICE);
            }
            for job in receiver {
                job();
            }
        })
        .ok()
        .map(|_| sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_order_at_a_lower_priority() {
        let background = Background::default();
        let (tx, rx) = channel();
        for n in 0..3 {
            let tx = tx.clone();
            background.run(move || {
                // SAFETY: as above.
                let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as _) };
                tx.send((n, nice)).unwrap();
            });
        }
        let got: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(got.iter().all(|g| g.1 >= NICE), "{got:?}");
    }
}
