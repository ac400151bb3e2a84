//! The task graph of `zccache run NAME...` / `--all`: which tasks may start, how many run at
//! once, and when to stop starting new ones.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, mpsc};
use std::thread;

use super::outcome::{Ended, Outcome};
use crate::config::{Config, ConfigError};

/// Exit status of a task whose runner thread panicked.
const PANICKED: u8 = 101;

/// Tasks in dependency order (every task after the tasks it depends on), with their edges.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Task names, dependencies first.
    pub names: Vec<String>,
    /// For each task, the indexes of the tasks it depends on.
    pub deps: Vec<Vec<usize>>,
    /// For each task, its serial group (an index): tasks of one group never overlap.
    pub serial: Vec<Option<usize>>,
}

/// How the graph runs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most tasks running at once (at least 1).
    pub jobs: usize,
    /// After a failure, go on with the tasks that do not depend on it.
    pub keep_going: bool,
}

/// What became of every task.
#[derive(Debug)]
pub struct GraphRun {
    /// Each task's end, by index (`NotRun` for those never started).
    pub ends: Vec<Ended>,
    /// The task that failed first, if any.
    pub first_failure: Option<usize>,
}

/// Where a task stands before it starts.
enum Readiness {
    Ready,
    Waiting,
    Blocked,
}

impl Graph {
    /// `wanted` and everything they depend on; a cycle or an unknown name is an error.
    pub fn new(config: &Config, wanted: &[String]) -> Result<Self, ConfigError> {
        let names = config.order(wanted)?;
        let index: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut deps = Vec::with_capacity(names.len());
        let mut groups: Vec<&str> = Vec::new();
        let mut serial = Vec::with_capacity(names.len());
        for name in &names {
            let task = config.task(name)?;
            deps.push(task.depends_on.iter().map(|d| index[d.as_str()]).collect());
            serial.push(task.serial.as_ref().map(|group| {
                let group = group.as_str();
                groups.iter().position(|g| *g == group).unwrap_or_else(|| {
                    groups.push(group);
                    groups.len() - 1
                })
            }));
        }
        Ok(Graph {
            names,
            deps,
            serial,
        })
    }

    /// `marked` and every task that depends on a marked one, directly or not.
    pub fn with_dependents(&self, marked: &[bool]) -> Vec<bool> {
        let mut out = marked.to_vec();
        // Dependencies come first, so one pass in order sees each task's deps settled.
        for i in 0..self.names.len() {
            out[i] = out[i] || self.deps[i].iter().any(|&d| out[d]);
        }
        out
    }

    /// The tasks marked in `keep`, in this graph's order, with the edges among them (a
    /// dependency left out counts as done); also each kept task's index in this graph.
    pub fn restricted(&self, keep: &[bool]) -> (Graph, Vec<usize>) {
        let kept: Vec<usize> = (0..self.names.len()).filter(|&i| keep[i]).collect();
        let new_index = |old: usize| kept.iter().position(|&k| k == old);
        let graph = Graph {
            names: kept.iter().map(|&i| self.names[i].clone()).collect(),
            deps: kept
                .iter()
                .map(|&i| self.deps[i].iter().filter_map(|&d| new_index(d)).collect())
                .collect(),
            serial: kept.iter().map(|&i| self.serial[i]).collect(),
        };
        (graph, kept)
    }

    fn readiness(&self, i: usize, ends: &[Option<Ended>]) -> Readiness {
        let mut ready = Readiness::Ready;
        for &dep in &self.deps[i] {
            match ends[dep] {
                Some(end) if !end.lets_dependents_run() => return Readiness::Blocked,
                Some(_) => {}
                None => ready = Readiness::Waiting,
            }
        }
        ready
    }
}

/// Runs the graph: every task whose dependencies ended well, at most `limits.jobs` at once
/// and one per serial group, in graph order where several are ready. `run(i)` runs task `i`. After the
/// first failure (or a forwarded SIGINT/SIGTERM) no task starts, except with `keep_going`
/// the ones that do not depend on a failed task.
pub fn schedule(graph: &Graph, limits: Limits, run: impl Fn(usize) -> Ended + Sync) -> GraphRun {
    let count = graph.names.len();
    let mut ends: Vec<Option<Ended>> = vec![None; count];
    let mut started = vec![false; count];
    let mut first_failure = None;
    let (done_tx, done_rx) = mpsc::channel();
    let (job_tx, job_rx) = mpsc::channel::<usize>();
    let job_rx = Mutex::new(job_rx);
    let jobs = limits.jobs.max(1);
    // The serial groups with a task running.
    let mut busy = vec![false; graph.serial.iter().flatten().max().map_or(0, |g| g + 1)];
    thread::scope(|scope| {
        // A fixed set of workers takes the tasks as they become ready.
        for _ in 0..jobs.min(count) {
            let (done, job_rx, run) = (done_tx.clone(), &job_rx, &run);
            scope.spawn(move || {
                loop {
                    let job = job_rx
                        .lock()
                        .map_err(drop)
                        .and_then(|rx| rx.recv().map_err(drop));
                    let Ok(i) = job else { break };
                    let end = catch_unwind(AssertUnwindSafe(|| run(i))).unwrap_or(Ended {
                        outcome: Outcome::Failed,
                        status: PANICKED,
                    });
                    if done.send((i, end)).is_err() {
                        break;
                    }
                }
            });
        }
        let mut running = 0;
        loop {
            let stopping = crate::os::interrupted().is_some()
                || (first_failure.is_some() && !limits.keep_going);
            for i in 0..count {
                if stopping || running >= jobs {
                    break;
                }
                if started[i] {
                    continue;
                }
                match graph.readiness(i, &ends) {
                    Readiness::Waiting => {}
                    Readiness::Blocked => {
                        started[i] = true;
                        ends[i] = Some(not_run());
                    }
                    Readiness::Ready if graph.serial[i].is_some_and(|g| busy[g]) => {}
                    Readiness::Ready => {
                        if let Some(g) = graph.serial[i] {
                            busy[g] = true;
                        }
                        started[i] = true;
                        running += 1;
                        // The workers outlive every send: they stop when `job_tx` is dropped.
                        let _ = job_tx.send(i);
                    }
                }
            }
            if running == 0 {
                break;
            }
            let Ok((i, end)) = done_rx.recv() else { break };
            running -= 1;
            if let Some(g) = graph.serial[i] {
                busy[g] = false;
            }
            if end.outcome == Outcome::Failed && first_failure.is_none() {
                first_failure = Some(i);
            }
            ends[i] = Some(end);
        }
        drop(job_tx);
    });
    GraphRun {
        ends: ends
            .into_iter()
            .map(|e| e.unwrap_or_else(not_run))
            .collect(),
        first_failure,
    }
}

fn not_run() -> Ended {
    Ended {
        outcome: Outcome::NotRun,
        status: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(deps: Vec<Vec<usize>>) -> Graph {
        Graph {
            names: (0..deps.len()).map(|i| format!("t{i}")).collect(),
            serial: vec![None; deps.len()],
            deps,
        }
    }

    fn ended(outcome: Outcome, status: u8) -> Ended {
        Ended { outcome, status }
    }

    #[test]
    fn a_failure_blocks_its_dependents_and_stops_the_rest() {
        // t0 fails; t1 depends on it; t2 is independent but later in order.
        let g = graph(vec![vec![], vec![0], vec![]]);
        let limits = Limits {
            jobs: 1,
            keep_going: false,
        };
        let run = schedule(&g, limits, |i| match i {
            0 => ended(Outcome::Failed, 3),
            _ => ended(Outcome::Ran, 0),
        });
        assert_eq!(run.first_failure, Some(0));
        let outcomes: Vec<Outcome> = run.ends.iter().map(|e| e.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Failed, Outcome::NotRun, Outcome::NotRun]
        );
    }

    #[test]
    fn keep_going_runs_what_does_not_depend_on_the_failure() {
        let g = graph(vec![vec![], vec![0], vec![1], vec![]]);
        let limits = Limits {
            jobs: 1,
            keep_going: true,
        };
        let run = schedule(&g, limits, |i| match i {
            0 => ended(Outcome::Failed, 3),
            _ => ended(Outcome::Ran, 0),
        });
        let outcomes: Vec<Outcome> = run.ends.iter().map(|e| e.outcome).collect();
        assert_eq!(
            outcomes,
            [
                Outcome::Failed,
                Outcome::NotRun,
                Outcome::NotRun,
                Outcome::Ran
            ]
        );
    }

    #[test]
    fn a_task_starts_after_its_dependencies_and_sees_their_ends() {
        let g = graph(vec![vec![], vec![], vec![0, 1]]);
        let order = Mutex::new(Vec::new());
        let limits = Limits {
            jobs: 4,
            keep_going: false,
        };
        let run = schedule(&g, limits, |i| {
            order.lock().unwrap().push(("start", i));
            std::thread::sleep(std::time::Duration::from_millis(10));
            order.lock().unwrap().push(("end", i));
            ended(Outcome::Skipped, 0)
        });
        let order = order.into_inner().unwrap();
        let at = |event| order.iter().position(|e| *e == event).unwrap();
        assert!(at(("start", 2)) > at(("end", 0)) && at(("start", 2)) > at(("end", 1)));
        assert!(run.ends.iter().all(|e| e.outcome == Outcome::Skipped));
    }

    #[test]
    fn tasks_of_one_serial_group_take_turns() {
        // t0 and t2 share a group, t1 has none: with room for all, t2 waits for t0 only.
        let mut g = graph(vec![vec![], vec![], vec![]]);
        g.serial = vec![Some(0), None, Some(0)];
        let running = Mutex::new((0, Vec::new()));
        let limits = Limits {
            jobs: 3,
            keep_going: false,
        };
        let run = schedule(&g, limits, |i| {
            let mut state = running.lock().unwrap();
            let overlapped = state.0 & 0b101 != 0 && i != 1;
            state.1.push((i, overlapped));
            state.0 |= 1 << i;
            drop(state);
            std::thread::sleep(std::time::Duration::from_millis(20));
            running.lock().unwrap().0 &= !(1 << i);
            ended(Outcome::Ran, 0)
        });
        let (_, starts) = running.into_inner().unwrap();
        assert!(
            starts.iter().all(|(_, overlapped)| !overlapped),
            "{starts:?}"
        );
        assert!(run.ends.iter().all(|e| e.outcome == Outcome::Ran));
    }

    #[test]
    fn dependents_follow_and_a_restricted_graph_keeps_its_inner_edges() {
        // t0 <- t1 <- t2, t3 alone.
        let g = graph(vec![vec![], vec![0], vec![1], vec![]]);
        let marked = g.with_dependents(&[false, true, false, false]);
        assert_eq!(marked, [false, true, true, false]);
        let (sub, kept) = g.restricted(&marked);
        assert_eq!(kept, [1, 2]);
        assert_eq!(sub.names, ["t1", "t2"]);
        assert_eq!(sub.deps, [vec![], vec![0]]);
    }

    #[test]
    fn a_panicking_task_is_a_failure() {
        let g = graph(vec![vec![]]);
        let limits = Limits {
            jobs: 2,
            keep_going: false,
        };
        let run = schedule(&g, limits, |_| panic!("boom"));
        assert_eq!(run.ends[0], ended(Outcome::Failed, PANICKED));
    }
}
