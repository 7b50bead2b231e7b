//! Runs a list of seeds on several threads and hands back their results in seed order.
//!
//! A run is single-threaded (turmoil steps every host on one thread), and its result is a
//! pure function of its seed: each thread has its own world (turmoil's and the seeded
//! crypto are thread-local), so seeds can run side by side on every core of the machine
//! and still replay exactly; `--check-determinism` compares the two runs of each seed
//! whatever ran beside them. The results come back in the order of the list, so a
//! sweep's output does not depend on the number of threads.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};

/// Most threads a sweep runs (a typo like `--jobs 1000` must not fork a thousand
/// simulations, each holding a cluster in memory).
pub const MAX_JOBS: usize = 64;

/// Results a thread may finish ahead of the one printed next, per thread: a slow seed
/// holds back at most this many finished ones (each holds its whole trace) instead of
/// letting the others run to the end of the list.
const AHEAD_PER_JOB: usize = 2;

/// Stack of each sweep thread. A run polls deep futures (a node's whole tree inside a
/// turmoil host); the main thread's 8 MiB is what it has been measured with.
const STACK_BYTES: usize = 8 * 1024 * 1024;

struct Progress<R> {
    /// Index of the next item a thread takes.
    next_claim: usize,
    /// Index of the next result handed back.
    next_out: usize,
    /// Finished results not handed back yet.
    done: BTreeMap<usize, R>,
}

/// Runs `work` on every item with `jobs` threads (1 runs everything on this thread) and
/// calls `each` with the results in the items' order, on this thread.
pub fn sweep<T, R>(items: &[T], jobs: usize, work: impl Fn(&T) -> R + Sync, mut each: impl FnMut(R))
where
    T: Sync,
    R: Send,
{
    let jobs = jobs.clamp(1, MAX_JOBS).min(items.len().max(1));
    if jobs == 1 {
        for item in items {
            each(work(item));
        }
        return;
    }
    let progress = Mutex::new(Progress {
        next_claim: 0,
        next_out: 0,
        done: BTreeMap::new(),
    });
    let changed = Condvar::new();
    let lock = || progress.lock().unwrap_or_else(|p| p.into_inner());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            std::thread::Builder::new()
                .name("sweep".into())
                .stack_size(STACK_BYTES)
                .spawn_scoped(scope, || {
                    loop {
                        let index = {
                            let mut state = lock();
                            while state.next_claim < items.len()
                                && state.next_claim >= state.next_out + jobs * AHEAD_PER_JOB
                            {
                                state = changed.wait(state).unwrap_or_else(|p| p.into_inner());
                            }
                            if state.next_claim >= items.len() {
                                return;
                            }
                            state.next_claim += 1;
                            state.next_claim - 1
                        };
                        let result = work(&items[index]);
                        lock().done.insert(index, result);
                        changed.notify_all();
                    }
                })
                .expect("the OS starts a sweep thread");
        }
        for index in 0..items.len() {
            let result = {
                let mut state = lock();
                loop {
                    if let Some(result) = state.done.remove(&index) {
                        state.next_out = index + 1;
                        break result;
                    }
                    state = changed.wait(state).unwrap_or_else(|p| p.into_inner());
                }
            };
            changed.notify_all();
            each(result);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_whatever_the_threads() {
        let items: Vec<u64> = (0..40).collect();
        for jobs in [1, 2, 3, 8] {
            let mut out = Vec::new();
            sweep(
                &items,
                jobs,
                |n| {
                    // Uneven work, so that threads finish out of order.
                    let spins = (n % 7) * 20_000;
                    std::hint::black_box((0..spins).fold(*n, |acc, i| acc ^ i));
                    *n
                },
                |n| out.push(n),
            );
            assert_eq!(out, items, "with {jobs} threads");
        }
    }

    #[test]
    fn an_empty_list_runs_nothing() {
        let mut calls = 0;
        sweep(&[] as &[u64], 4, |n| *n, |_| calls += 1);
        assert_eq!(calls, 0);
    }
}
