//! The runtime seam: the only place that reads clocks, draws randomness or spawns tasks.
//!
//! Production uses the system clock, an OS-seeded generator and tokio. A simulation builds
//! [`Runtime::deterministic`] instead: wall-clock time is derived from tokio's (virtual,
//! paused) clock and a fixed epoch, and the generator is seeded, so a run is a pure function
//! of its seed. Monotonic time is tokio's [`Instant`] in both cases, which follows paused
//! time in tests and turmoil's clock in simulations.
//!
//! A deterministic runtime can also be suspended, as SIGSTOP suspends a process
//! ([`Suspension`]): its clocks stand still and the tasks spawned through it are not
//! polled until it resumes, when its clocks jump to the current time and every task
//! woken meanwhile runs. The production runtime has no suspension (a real process is
//! suspended by the kernel).
//!
//! Every node owns one `Runtime` (cheap to clone); nothing here is global.

#![allow(clippy::disallowed_methods)] // This module is the one place allowed to call them.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

pub use crate::core_workers::CoreWorkers;
pub use tokio::time::Instant;

/// Where wall-clock (Unix) time comes from.
#[derive(Debug)]
enum WallClock {
    /// The operating system's clock.
    System,
    /// `epoch_ms` at `origin`, advancing with tokio's clock unless `suspension` holds it.
    Virtual {
        epoch_ms: u64,
        origin: Instant,
        suspension: Suspension,
    },
}

#[derive(Debug)]
struct Inner {
    wall: WallClock,
    /// The node's random generator. A mutex because clones of the runtime are shared by
    /// actors of one node; it is held only for one draw.
    rng: Mutex<StdRng>,
    /// Seed the generator started from, recorded so a failure can be replayed.
    seed: u64,
    started: Instant,
}

/// A node's source of time, randomness and tasks.
#[derive(Debug, Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl Runtime {
    /// The production runtime: system clock, OS-seeded generator.
    pub fn production() -> Runtime {
        use rand::TryRngCore;
        // Without OS entropy (a broken /dev/urandom) the clock is still a unique-enough seed
        // for tie-breaking; nothing secret is drawn from this generator.
        let seed = rand::rngs::OsRng.try_next_u64().unwrap_or_else(|_| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos() as u64)
        });
        Runtime::build(WallClock::System, seed)
    }

    /// A deterministic runtime: wall time starts at `epoch_ms` and follows tokio's clock,
    /// randomness comes from `seed`.
    pub fn deterministic(seed: u64, epoch_ms: u64) -> Runtime {
        Runtime::build(
            WallClock::Virtual {
                epoch_ms,
                origin: Instant::now(),
                suspension: Suspension::default(),
            },
            seed,
        )
    }

    fn build(wall: WallClock, seed: u64) -> Runtime {
        Runtime {
            inner: Arc::new(Inner {
                wall,
                rng: Mutex::new(StdRng::seed_from_u64(seed)),
                seed,
                started: Instant::now(),
            }),
        }
    }

    /// Monotonic now (virtual under paused time and in simulations; standing still while
    /// a deterministic runtime is suspended).
    pub fn now(&self) -> Instant {
        match &self.inner.wall {
            WallClock::System => Instant::now(),
            WallClock::Virtual { suspension, .. } => suspension.now(),
        }
    }

    /// Unix time in milliseconds.
    pub fn wall_clock_ms(&self) -> u64 {
        match &self.inner.wall {
            WallClock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as u64),
            WallClock::Virtual {
                epoch_ms,
                origin,
                suspension,
            } => epoch_ms + suspension.now().duration_since(*origin).as_millis() as u64,
        }
    }

    /// How long ago this runtime (the node) started.
    pub fn uptime(&self) -> std::time::Duration {
        self.now().duration_since(self.inner.started)
    }

    /// The suspension control of a deterministic runtime (`None` in production).
    pub fn suspension(&self) -> Option<Suspension> {
        match &self.inner.wall {
            WallClock::System => None,
            WallClock::Virtual { suspension, .. } => Some(suspension.clone()),
        }
    }

    /// The seed of the random generator, to replay a run.
    pub fn seed(&self) -> u64 {
        self.inner.seed
    }

    /// A uniformly random `u64`.
    pub fn random_u64(&self) -> u64 {
        self.with_rng(|rng| rng.random())
    }

    /// A uniformly random index below `bound` (which must not be zero).
    pub fn random_index(&self, bound: usize) -> usize {
        assert!(bound > 0, "random_index needs a non-empty range");
        self.with_rng(|rng| rng.random_range(0..bound))
    }

    /// `len` random bytes (keys, tokens, nonces).
    pub fn random_bytes(&self, len: usize) -> Vec<u8> {
        self.with_rng(|rng| (0..len).map(|_| rng.random()).collect())
    }

    fn with_rng<T>(&self, draw: impl FnOnce(&mut StdRng) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-draw; the generator state
        // is still a valid generator state.
        let mut rng = self
            .inner
            .rng
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        draw(&mut rng)
    }

    /// Starts `count` connection workers (threads with single-threaded runtimes) named
    /// `{name}-{index}`: the place client connections are served ([`CoreWorkers`]).
    pub fn core_workers(&self, name: &str, count: usize) -> std::io::Result<CoreWorkers> {
        CoreWorkers::start(name, count)
    }

    /// Spawns a task on the current tokio runtime. `name` is for diagnostics.
    pub fn spawn<F>(&self, name: &'static str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tracing::trace!(task = name, "spawn");
        match &self.inner.wall {
            WallClock::System => tokio::spawn(future),
            WallClock::Virtual { suspension, .. } => tokio::spawn(Gated {
                suspension: suspension.clone(),
                future: Box::pin(future),
            }),
        }
    }
}

/// SIGSTOP and SIGCONT for a deterministic runtime (a simulated node): while suspended,
/// its clocks ([`Runtime::now`], [`Runtime::wall_clock_ms`], [`Runtime::uptime`]) stand
/// still, and no task spawned through [`Runtime::spawn`] is polled (a task woken
/// meanwhile is kept, with its waker). [`Suspension::resume`] lets the clocks jump to the
/// current time at once and wakes every kept task: timers that expired during the
/// suspension fire together, as after SIGCONT.
///
/// The clocks stop at the node's first moment after [`Suspension::suspend`]: the first
/// reading of its clock or poll of one of its tasks, in the node's own time (a simulator
/// suspends a node from outside its runtime, where its clock cannot be read). Nothing of
/// the node happened between the call and that moment, so the node cannot tell.
///
/// What the runtime does not spawn (ractor's actors themselves) runs on: an actor still
/// handles what is already in its mailbox; with the clocks still and the tasks and
/// timers that feed it gated, it has nothing new to act on.
#[derive(Debug, Clone, Default)]
pub struct Suspension {
    state: Arc<Mutex<SuspensionState>>,
}

#[derive(Debug, Default)]
struct SuspensionState {
    suspended: bool,
    /// The instant the clocks stand at (set at the first moment of the suspension).
    frozen_at: Option<Instant>,
    /// Wakers of the tasks polled while suspended, in the order they were polled.
    parked: Vec<Waker>,
}

impl SuspensionState {
    fn frozen_at(&mut self) -> Instant {
        *self.frozen_at.get_or_insert_with(Instant::now)
    }
}

impl Suspension {
    fn lock(&self) -> std::sync::MutexGuard<'_, SuspensionState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Stops the clocks and the tasks (nothing if already suspended).
    pub fn suspend(&self) {
        self.lock().suspended = true;
    }

    /// The clocks jump to now and every task kept while suspended is woken.
    pub fn resume(&self) {
        let parked = {
            let mut state = self.lock();
            state.suspended = false;
            state.frozen_at = None;
            std::mem::take(&mut state.parked)
        };
        for waker in parked {
            waker.wake();
        }
    }

    /// Whether the runtime is suspended now.
    pub fn is_suspended(&self) -> bool {
        self.lock().suspended
    }

    /// The runtime's monotonic now.
    fn now(&self) -> Instant {
        let mut state = self.lock();
        if state.suspended {
            state.frozen_at()
        } else {
            Instant::now()
        }
    }

    /// Whether a task may be polled now; if not, its waker is kept for the resume.
    fn admit(&self, waker: &Waker) -> bool {
        let mut state = self.lock();
        if !state.suspended {
            return true;
        }
        state.frozen_at();
        if !state.parked.iter().any(|kept| kept.will_wake(waker)) {
            state.parked.push(waker.clone());
        }
        false
    }
}

/// A task of a deterministic runtime: polled only while its runtime is not suspended.
struct Gated<F> {
    suspension: Suspension,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if !self.suspension.admit(cx.waker()) {
            return Poll::Pending;
        }
        self.future.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn deterministic_runtime_follows_virtual_time_and_seed() {
        let a = Runtime::deterministic(42, 1_700_000_000_000);
        let b = Runtime::deterministic(42, 1_700_000_000_000);
        assert_eq!(a.random_u64(), b.random_u64());
        assert_eq!(a.random_bytes(8), b.random_bytes(8));
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(a.wall_clock_ms(), 1_700_000_090_000);
        assert_eq!(a.uptime(), Duration::from_secs(90));
        assert_ne!(
            Runtime::deterministic(43, 0).random_u64(),
            Runtime::deterministic(42, 0).random_u64()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_suspended_runtime_stands_still_and_jumps_on_resume() {
        use std::sync::atomic::{AtomicU64, Ordering};
        let rt = Runtime::deterministic(7, 1_700_000_000_000);
        let suspension = rt
            .suspension()
            .expect("a deterministic runtime can be suspended");
        let ticks = Arc::new(AtomicU64::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (counted, at) = (ticks.clone(), seen.clone());
        let clock = rt.clone();
        let task = rt.spawn("ticker", async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                counted.fetch_add(1, Ordering::SeqCst);
                at.lock().unwrap().push(clock.wall_clock_ms());
            }
        });
        let settle = || async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        };
        settle().await;
        for _ in 0..2 {
            tokio::time::advance(Duration::from_secs(1)).await;
            settle().await;
        }
        assert_eq!(ticks.load(Ordering::SeqCst), 2);
        tokio::time::advance(Duration::from_millis(500)).await;

        suspension.suspend();
        assert!(suspension.is_suspended());
        let frozen = rt.now();
        assert_eq!(rt.wall_clock_ms(), 1_700_000_002_500);
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(1)).await;
            settle().await;
        }
        // The timer expired long ago, but the task was not polled; the clocks stood.
        assert_eq!(ticks.load(Ordering::SeqCst), 2);
        assert_eq!(rt.now(), frozen);
        assert_eq!(rt.wall_clock_ms(), 1_700_000_002_500);
        assert_eq!(rt.uptime(), Duration::from_millis(2_500));
        // A task spawned while suspended does not start either.
        let started = Arc::new(AtomicU64::new(0));
        let flag = started.clone();
        let late = rt.spawn("late", async move { flag.store(1, Ordering::SeqCst) });
        settle().await;
        assert_eq!(started.load(Ordering::SeqCst), 0);

        suspension.resume();
        assert!(!suspension.is_suspended());
        // The clocks jump by the whole suspension at once.
        assert_eq!(rt.now(), frozen + Duration::from_secs(5));
        assert_eq!(rt.wall_clock_ms(), 1_700_000_007_500);
        settle().await;
        // The expired timer fires at once, seeing the jumped clock; so does the late task.
        assert_eq!(ticks.load(Ordering::SeqCst), 3);
        assert_eq!(seen.lock().unwrap().last(), Some(&1_700_000_007_500));
        assert_eq!(started.load(Ordering::SeqCst), 1);
        late.await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(ticks.load(Ordering::SeqCst), 4);
        task.abort();
    }

    #[tokio::test]
    async fn production_runtime_reads_the_system_clock() {
        let rt = Runtime::production();
        // 2020-01-01 in ms: any real clock is past it.
        assert!(rt.wall_clock_ms() > 1_577_836_800_000);
        assert!(rt.random_index(10) < 10);
        assert_eq!(rt.spawn("answer", async { 42 }).await.unwrap(), 42);
        assert!(rt.suspension().is_none());
    }
}
