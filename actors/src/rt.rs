//! The runtime seam: the only place that reads clocks, draws randomness or spawns tasks.
//!
//! Production uses the system clock, an OS-seeded generator and tokio. A simulation builds
//! [`Runtime::deterministic`] instead: wall-clock time is derived from tokio's (virtual,
//! paused) clock and a fixed epoch, and the generator is seeded, so a run is a pure function
//! of its seed. Monotonic time is tokio's [`Instant`] in both cases, which follows paused
//! time in tests and turmoil's clock in simulations.
//!
//! Every node owns one `Runtime` (cheap to clone); nothing here is global.

#![allow(clippy::disallowed_methods)] // This module is the one place allowed to call them.

use std::future::Future;
use std::sync::{Arc, Mutex};

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
    /// `epoch_ms` at `origin`, advancing with tokio's clock.
    Virtual { epoch_ms: u64, origin: Instant },
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

    /// Monotonic now (virtual under paused time and in simulations).
    pub fn now(&self) -> Instant {
        Instant::now()
    }

    /// Unix time in milliseconds.
    pub fn wall_clock_ms(&self) -> u64 {
        match &self.inner.wall {
            WallClock::System => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_millis() as u64),
            WallClock::Virtual { epoch_ms, origin } => {
                epoch_ms + Instant::now().duration_since(*origin).as_millis() as u64
            }
        }
    }

    /// How long ago this runtime (the node) started.
    pub fn uptime(&self) -> std::time::Duration {
        Instant::now().duration_since(self.inner.started)
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
        tokio::spawn(future)
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

    #[tokio::test]
    async fn production_runtime_reads_the_system_clock() {
        let rt = Runtime::production();
        // 2020-01-01 in ms: any real clock is past it.
        assert!(rt.wall_clock_ms() > 1_577_836_800_000);
        assert!(rt.random_index(10) < 10);
        assert_eq!(rt.spawn("answer", async { 42 }).await.unwrap(), 42);
    }
}
