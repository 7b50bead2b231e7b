//! The fault profile of a run, drawn from its seed (swarm testing: each run enables only
//! some kinds of fault, at its own rates, so that rare combinations get explored instead
//! of every run averaging everything out), and the chaos schedule drawn from it.

use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// A node dies (its process and sockets) and is restarted later.
    Crash,
    /// A node's packets are held: its process runs, nothing reaches it or leaves it,
    /// then everything held arrives at once (a long GC or SIGSTOP seen from outside).
    Pause,
    /// A node restarts at once (a new incarnation).
    Restart,
    /// Two groups cannot talk.
    Partition,
    /// One node cannot send to another, which still reaches it.
    OneWay,
    /// One node cut from all others.
    Isolate,
    /// Packet loss on every link.
    Loss,
    /// Large delays on every link.
    Delay,
    /// A camera goes down for every node.
    SourceDown,
    /// Several nodes restart in quick succession.
    RestartStorm,
    /// The preferred (`capture_at`) node of some streams goes down and up repeatedly.
    Flap,
    /// A node's process is suspended (SIGSTOP: nothing of it runs, its state stays),
    /// longer than the stale timeout, then continues (SIGCONT) with its clock jumped.
    Suspend,
}

impl FaultKind {
    const ALL: [FaultKind; 11] = [
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::Restart,
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Isolate,
        FaultKind::Loss,
        FaultKind::Delay,
        FaultKind::SourceDown,
        FaultKind::RestartStorm,
        FaultKind::Flap,
    ];

    fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Pause => "pause",
            FaultKind::Restart => "restart",
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "one-way",
            FaultKind::Isolate => "isolate",
            FaultKind::Loss => "loss",
            FaultKind::Delay => "delay",
            FaultKind::SourceDown => "source-down",
            FaultKind::RestartStorm => "restart-storm",
            FaultKind::Flap => "flap",
            FaultKind::Suspend => "suspend",
        }
    }
}

/// A suspended node stays suspended at least this long: longer than the stale timeout
/// plus a fetch interval, so its peers declare it dead and take its streams over while it
/// does not run, and it resumes with every peer silent for longer than the stale timeout.
pub const SUSPEND_MIN_MS: u64 =
    crate::cluster::STALE_TIMEOUT_MS + crate::cluster::FETCH_TIMEOUT_MS + 1_000;

/// A run's shape: cluster size, streams, faults and their rates.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub nodes: usize,
    pub streams: usize,
    /// Streams with `capture_at`, out of `streams`.
    pub preferred_streams: usize,
    /// Streams whose camera only some nodes reach (for the whole run).
    pub partial_sources: usize,
    /// Kinds of fault this run injects.
    pub kinds: Vec<FaultKind>,
    /// Mean gap between fault starts, ms.
    pub mean_gap_ms: u64,
    /// Longest a fault lasts, ms.
    pub max_fault_ms: u64,
    /// Duplicated datagrams, parts per million (0 for most runs).
    pub duplicate_ppm: u32,
    /// Replayed datagrams, parts per million.
    pub replay_ppm: u32,
    /// Minority restraint is on (I7 checked).
    pub minority_restraint: bool,
    /// Length of the chaos phase, ms.
    pub chaos_ms: u64,
    /// Length of the heal phase, ms.
    pub heal_ms: u64,
    /// Every node on one address, told apart by its port alone, all with one hostname
    /// (`box:8081`, `box:8082`, …: several nodes on one machine); otherwise one host per
    /// node (`n1:80`, `n2:80`, …).
    pub shared_address: bool,
}

impl Profile {
    /// The profile of `seed` for a cluster of `nodes` nodes and `streams` streams.
    pub fn draw(seed: u64, nodes: usize, streams: usize, chaos_ms: u64, heal_ms: u64) -> Profile {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_0ffa_0175);
        let mut kinds: Vec<FaultKind> = FaultKind::ALL
            .into_iter()
            .filter(|_| rng.random_bool(0.5))
            .collect();
        if kinds.is_empty() {
            kinds.push(FaultKind::ALL[rng.random_range(0..FaultKind::ALL.len())]);
        }
        let datagram_faults = rng.random_bool(0.3);
        let mut profile = Profile {
            nodes,
            streams,
            preferred_streams: streams / 2,
            partial_sources: if streams >= 4 {
                rng.random_range(0..=streams / 4)
            } else {
                0
            },
            kinds,
            mean_gap_ms: rng.random_range(3_000..15_000),
            max_fault_ms: rng.random_range(5_000..40_000),
            duplicate_ppm: if datagram_faults {
                rng.random_range(0..50_000)
            } else {
                0
            },
            replay_ppm: if datagram_faults {
                rng.random_range(0..20_000)
            } else {
                0
            },
            minority_restraint: rng.random_bool(0.3),
            chaos_ms,
            heal_ms,
            shared_address: false,
        };
        // Drawn after everything else and kept out of `FaultKind::ALL`: a seed without
        // it draws the very profile and schedule it drew before this kind existed.
        if rng.random_bool(0.5) {
            profile.kinds.push(FaultKind::Suspend);
        }
        // The same for the layout: drawn last, so every earlier draw stays as it was.
        profile.shared_address = rng.random_bool(0.25);
        profile
    }

    /// Whether this run injects `kind`.
    pub fn has(&self, kind: FaultKind) -> bool {
        self.kinds.contains(&kind)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
        write!(
            f,
            "nodes={} streams={} preferred={} partial_sources={} faults={} gap_ms={} max_fault_ms={} dup_ppm={} replay_ppm={} restraint={} chaos_s={} heal_s={} layout={}",
            self.nodes,
            self.streams,
            self.preferred_streams,
            self.partial_sources,
            kinds.join(","),
            self.mean_gap_ms,
            self.max_fault_ms,
            self.duplicate_ppm,
            self.replay_ppm,
            self.minority_restraint,
            self.chaos_ms / 1000,
            self.heal_ms / 1000,
            if self.shared_address {
                "shared-address"
            } else {
                "host-per-node"
            }
        )
    }
}

/// One scheduled fault: starts at `at_ms`, undone at `at_ms + lasts_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub at_ms: u64,
    pub lasts_ms: u64,
    pub fault: Fault,
}

/// A fault with its targets (node indexes, stream indexes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Crash(usize),
    Pause(usize),
    Restart(usize),
    Partition(Vec<usize>),
    OneWay(usize, usize),
    Isolate(usize),
    /// Loss in parts per million on every link.
    Loss(u32),
    /// Extra latency on every link, ms.
    Delay(u64),
    SourceDown(usize),
    RestartStorm(Vec<usize>),
    /// The node goes down and up this many times, `period_ms` apart.
    Flap {
        node: usize,
        times: u32,
        period_ms: u64,
    },
    /// The node's process is suspended, then continues.
    Suspend(usize),
}

/// The chaos schedule of `profile`, from `seed`. Faults start after `start_ms` (the
/// cluster forms first) and end before the chaos phase does.
pub fn schedule(seed: u64, profile: &Profile, start_ms: u64) -> Vec<Scheduled> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x0c4a_05ed);
    let mut faults = Vec::new();
    let mut at_ms = start_ms;
    let nodes = profile.nodes;
    loop {
        at_ms += rng.random_range(profile.mean_gap_ms / 2..=profile.mean_gap_ms * 3 / 2);
        let mut lasts_ms = rng.random_range(1_000..=profile.max_fault_ms);
        if at_ms + lasts_ms >= profile.chaos_ms {
            break;
        }
        let kind = profile.kinds[rng.random_range(0..profile.kinds.len())];
        let node = rng.random_range(0..nodes);
        let fault = match kind {
            FaultKind::Crash => Fault::Crash(node),
            FaultKind::Pause => Fault::Pause(node),
            FaultKind::Restart => Fault::Restart(node),
            FaultKind::Partition => {
                let size = rng.random_range(1..=nodes / 2);
                let mut side: Vec<usize> = (0..nodes).collect();
                for i in 0..side.len() {
                    let j = rng.random_range(i..side.len());
                    side.swap(i, j);
                }
                side.truncate(size.max(1));
                side.sort_unstable();
                Fault::Partition(side)
            }
            FaultKind::OneWay => {
                let other = (node + rng.random_range(1..nodes)) % nodes;
                Fault::OneWay(node, other)
            }
            FaultKind::Isolate => Fault::Isolate(node),
            FaultKind::Loss => Fault::Loss(rng.random_range(10_000..300_000)),
            FaultKind::Delay => Fault::Delay(rng.random_range(50..2_000)),
            FaultKind::SourceDown => Fault::SourceDown(rng.random_range(0..profile.streams)),
            FaultKind::RestartStorm => {
                let count = rng.random_range(2..=nodes);
                Fault::RestartStorm((0..count).map(|_| rng.random_range(0..nodes)).collect())
            }
            FaultKind::Flap => Fault::Flap {
                // Preferred nodes are assigned round-robin: any node prefers some streams.
                node,
                times: rng.random_range(2..6),
                period_ms: rng.random_range(2_000..10_000),
            },
            FaultKind::Suspend => {
                lasts_ms = lasts_ms.max(SUSPEND_MIN_MS);
                Fault::Suspend(node)
            }
        };
        if at_ms + lasts_ms >= profile.chaos_ms {
            break;
        }
        faults.push(Scheduled {
            at_ms,
            lasts_ms,
            fault,
        });
    }
    faults
}
