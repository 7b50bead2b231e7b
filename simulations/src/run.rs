//! One simulated run: build the cluster, form it, inject the chaos schedule while
//! checking safety, heal everything, check liveness and rest, and hash the trace.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use flotilla_cluster::ingest::sabotage::Sabotage;
use flotilla_cluster::mesh::view::IngestRole;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cluster::{
    HostSpec, config_text, node_config_text, node_hostname, node_name, preferred_node, run_host,
    stream_name,
};
use crate::invariants::{
    Checker, Detail, Isolation, OBSERVE_PERIOD_MS, Resumed, Violation, at_rest,
};
use crate::links::Links;
use crate::observe::{ObservationMemo, observe};
use crate::profile::{Fault, FaultKind, Profile, Scheduled, schedule};
use crate::udp::DatagramFaults;
use crate::world::World;

/// turmoil's step: every host runs this much simulated time per step. Timers fire at
/// their own instant within a step; datagrams move between hosts at step boundaries, so
/// a round trip takes two to six steps (80–240 ms, a WAN's), still far below the
/// second-scale timeouts and bounds the checks use (`fetch_timeout` 1 s). Each step
/// costs the same whatever happens in it (every host's runtime is entered, every link
/// ticked): at 20 ms, steps were a twelfth of a 5 x 100 run. Seeds 1..3480 found the
/// same number of violations at 20 and 40 ms (three each; docs/simulation.md).
pub const TICK_MS: u64 = 40;

/// Link latency bounds when no delay fault is on: up to two steps, so datagrams sent in
/// one step may arrive in different ones (and out of order).
const MIN_LATENCY_MS: u64 = 1;
const MAX_LATENCY_MS: u64 = 2 * TICK_MS;

/// The cluster forms undisturbed for this long before the first fault.
pub const FORMATION_MS: u64 = 15_000;

/// A crashed or given-up node is brought back (as a process supervisor would) after this.
const RESPAWN_AFTER_MS: u64 = 5_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub nodes: usize,
    pub streams: usize,
    pub chaos_ms: u64,
    pub heal_ms: u64,
    pub sabotage: Option<Sabotage>,
    /// Every node on one address (`Profile::shared_address`) whatever the seed draws.
    pub shared_address: bool,
}

impl Options {
    /// The default run of `seed`: 5 nodes, 20 streams, 90 s of chaos, 100 s of heal.
    pub fn seed(seed: u64) -> Options {
        Options {
            seed,
            nodes: 5,
            streams: 20,
            chaos_ms: 90_000,
            heal_ms: 100_000,
            sabotage: None,
            shared_address: false,
        }
    }
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    /// `SEED=… profile`.
    pub header: String,
    /// One line per event.
    pub trace: Vec<String>,
    /// FNV-1a of the header and every trace line.
    pub hash: u64,
    /// The first violation.
    pub violation: Option<Violation>,
    /// The first violation of each invariant, in order (the run goes on after a
    /// violation, so one broken rule can show under every check it breaks).
    pub violations: Vec<Violation>,
    /// Simulated ms run.
    pub simulated_ms: u64,
}

/// FNV-1a over lines (with their newlines).
pub fn trace_hash<'a>(lines: impl IntoIterator<Item = &'a str>) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for line in lines {
        for byte in line.bytes().chain(std::iter::once(b'\n')) {
            hash = (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// A primitive step of the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Crash(usize),
    Bounce(usize),
    Hold(usize),
    Release(usize),
    Cut(Vec<usize>),
    Mend(Vec<usize>),
    CutOneWay(usize, usize),
    MendOneWay(usize, usize),
    Loss(u32),
    Delay(u64),
    SourceDown(usize, bool),
    Isolated(usize, bool),
    /// SIGSTOP: the node's process stops running, its state kept (its runtime suspended,
    /// its links held).
    Suspend(usize),
    /// SIGCONT: it runs again, its clock jumped by the suspension (its runtime resumed,
    /// its links released).
    Continue(usize),
}

fn expand(faults: &[Scheduled]) -> Vec<(u64, Step)> {
    let mut steps = Vec::new();
    for Scheduled {
        at_ms,
        lasts_ms,
        fault,
    } in faults
    {
        let end = at_ms + lasts_ms;
        let mut pair = |start: Step, stop: Step| {
            steps.push((*at_ms, start));
            steps.push((end, stop));
        };
        match fault {
            Fault::Crash(n) => pair(Step::Crash(*n), Step::Bounce(*n)),
            Fault::Suspend(n) => pair(Step::Suspend(*n), Step::Continue(*n)),
            Fault::Pause(n) => pair(Step::Hold(*n), Step::Release(*n)),
            Fault::Restart(n) => steps.push((*at_ms, Step::Bounce(*n))),
            Fault::Partition(side) => pair(Step::Cut(side.clone()), Step::Mend(side.clone())),
            Fault::OneWay(a, b) => pair(Step::CutOneWay(*a, *b), Step::MendOneWay(*a, *b)),
            Fault::Isolate(n) => {
                pair(Step::Isolated(*n, true), Step::Isolated(*n, false));
                pair(Step::Cut(vec![*n]), Step::Mend(vec![*n]));
            }
            Fault::Loss(ppm) => pair(Step::Loss(*ppm), Step::Loss(0)),
            Fault::Delay(ms) => pair(Step::Delay(*ms), Step::Delay(0)),
            Fault::SourceDown(s) => pair(Step::SourceDown(*s, true), Step::SourceDown(*s, false)),
            Fault::RestartStorm(nodes) => {
                for (i, n) in nodes.iter().enumerate() {
                    steps.push((at_ms + i as u64 * 500, Step::Bounce(*n)));
                }
            }
            Fault::Flap {
                node,
                times,
                period_ms,
            } => {
                for i in 0..*times as u64 {
                    steps.push((at_ms + i * period_ms, Step::Crash(*node)));
                    steps.push((at_ms + i * period_ms + period_ms / 2, Step::Bounce(*node)));
                }
            }
        }
    }
    // Stable: steps at the same ms keep their schedule order.
    steps.sort_by_key(|(at, _)| *at);
    steps
}

/// Runs `options` and returns what happened.
pub fn run(options: &Options) -> Outcome {
    let _ = rustls::crypto::ring::default_provider().install_default();
    crate::crypto::reseed(options.seed);
    let mut profile = Profile::draw(
        options.seed,
        options.nodes,
        options.streams,
        options.chaos_ms,
        options.heal_ms,
    );
    profile.shared_address |= options.shared_address;
    // A sabotage needs a node to go away to show.
    if matches!(
        options.sabotage,
        Some(Sabotage::NoFailback | Sabotage::IgnoreStale)
    ) && !profile.has(FaultKind::Crash)
    {
        profile.kinds.push(FaultKind::Crash);
    }
    // ... or to be suspended and resume.
    if options.sabotage == Some(Sabotage::BlindResume) && !profile.has(FaultKind::Suspend) {
        profile.kinds.push(FaultKind::Suspend);
    }
    let mut header = format!("SEED={} {profile}", options.seed);
    if let Some(sabotage) = options.sabotage {
        header.push_str(&format!(" sabotage={sabotage}"));
    }
    let world = World::default();
    let mut rng = StdRng::seed_from_u64(options.seed ^ 0x50_75_c3);
    // Cameras only some nodes reach: each cut from a random non-empty strict subset.
    let mut reachers: BTreeMap<String, BTreeSet<String>> = (0..profile.streams)
        .map(|s| {
            let nodes = (0..profile.nodes).map(|n| node_name(&profile, n));
            (stream_name(s), nodes.collect())
        })
        .collect();
    for _ in 0..profile.partial_sources.min(profile.streams) {
        let stream = stream_name(rng.random_range(0..profile.streams));
        let cut = rng.random_range(1..profile.nodes.max(2));
        for _ in 0..cut {
            let node = node_name(&profile, rng.random_range(0..profile.nodes));
            let set = reachers.entry(stream.clone()).or_default();
            if set.len() > 1 && set.remove(&node) {
                world.with(|w| {
                    w.log(0, format!("camera of {stream} unreachable from {node}"));
                    w.sources_cut
                        .entry(node.clone())
                        .or_default()
                        .insert(stream.clone())
                });
            }
        }
    }
    let preferred: Arc<BTreeMap<String, String>> = Arc::new(
        (0..profile.streams)
            .filter_map(|s| {
                preferred_node(&profile, s).map(|n| (stream_name(s), node_name(&profile, n)))
            })
            .collect(),
    );

    let mut sim = turmoil::Builder::new()
        .rng_seed(options.seed)
        .tick_duration(Duration::from_millis(TICK_MS))
        .min_message_latency(Duration::from_millis(MIN_LATENCY_MS))
        .max_message_latency(Duration::from_millis(MAX_LATENCY_MS))
        .simulation_duration(Duration::from_secs(24 * 3600))
        .build();
    let shared_config = config_text(&profile);
    let names: Vec<String> = (0..profile.nodes).map(|n| node_name(&profile, n)).collect();
    for (index, name) in names.iter().enumerate() {
        let spec = HostSpec {
            world: world.clone(),
            name: name.clone(),
            hostname: node_hostname(&profile, index),
            seed: options.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ index as u64,
            config: node_config_text(&profile, &shared_config, index).into(),
            faults: DatagramFaults {
                duplicate_ppm: profile.duplicate_ppm,
                replay_ppm: profile.replay_ppm,
            },
            sabotage: options.sabotage,
        };
        sim.host(name.as_str(), move || run_host(spec.clone()));
    }
    // Looked up once: asking turmoil by name at every step parses and hashes the name.
    let addresses: Vec<IpAddr> = names.iter().map(|name| sim.lookup(name.as_str())).collect();

    let faults = schedule(options.seed, &profile, FORMATION_MS);
    // Network faults make the cluster un-calm: while one lasts, a node cannot tell a dead
    // peer from a slow one, and liveness is not owed. A crashed or restarting node is
    // exactly what the cluster must handle, so node faults leave it calm.
    let windows: Vec<(u64, u64)> = faults
        .iter()
        .filter(|f| {
            matches!(
                f.fault,
                Fault::Pause(_)
                    | Fault::Partition(_)
                    | Fault::OneWay(..)
                    | Fault::Isolate(_)
                    | Fault::Loss(_)
                    | Fault::Delay(_)
            )
        })
        .map(|f| (f.at_ms, f.at_ms + f.lasts_ms))
        .collect();
    for fault in &faults {
        world.with(|w| {
            w.log(
                fault.at_ms,
                format!("fault {:?} for {} ms", fault.fault, fault.lasts_ms),
            )
        });
    }
    let mut steps = expand(&faults).into_iter().peekable();
    let mut checker = Checker::new(profile.nodes, profile.minority_restraint);
    let mut memo = ObservationMemo::default();
    let mut links = Links::default();
    let mut crashed: BTreeMap<usize, u64> = BTreeMap::new();
    let mut isolated: BTreeMap<String, Isolation> = BTreeMap::new();
    let mut suspended = Suspensions::default();
    let mut starts_seen = 0;
    let mut next_observation = OBSERVE_PERIOD_MS;
    let mut healed_at_ms = None;
    let end_ms = profile.chaos_ms + profile.heal_ms;
    let mut violations: Vec<Violation> = Vec::new();
    let note = |found: Violation, violations: &mut Vec<Violation>| {
        if !violations.iter().any(|v| v.invariant == found.invariant) {
            world.with(|w| w.log(found.at_ms, format!("VIOLATION {found}")));
            violations.push(found);
        }
    };
    let mut now_ms = 0;
    while now_ms < end_ms {
        while let Some((at, _)) = steps.peek() {
            if *at > now_ms || healed_at_ms.is_some() {
                break;
            }
            let (_, step) = steps.next().expect("peeked");
            apply(
                &mut sim,
                &mut links,
                &world,
                &names,
                &profile,
                &step,
                now_ms,
                &mut crashed,
                &mut isolated,
                &mut suspended,
            );
        }
        if healed_at_ms.is_none() && now_ms >= profile.chaos_ms {
            heal(
                &mut sim,
                &mut links,
                &world,
                &names,
                now_ms,
                &mut crashed,
                &mut isolated,
                &mut suspended,
            );
            links.clear();
            healed_at_ms = Some(now_ms);
        }
        // A node whose tree gave up is restarted, as systemd would.
        for (index, address) in addresses.iter().enumerate() {
            if !crashed.contains_key(&index) && !sim.is_host_running(*address) {
                crashed.insert(index, now_ms + RESPAWN_AFTER_MS);
            }
        }
        let due: Vec<usize> = crashed
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(i, _)| *i)
            .collect();
        for index in due {
            if healed_at_ms.is_some() || !sim.is_host_running(addresses[index]) {
                crashed.remove(&index);
                if !sim.is_host_running(addresses[index]) {
                    world.with(|w| w.log(now_ms, format!("{} respawned", names[index])));
                    forget_suspension(&mut sim, &mut links, &world, &names, index, &mut suspended);
                    sim.bounce(names[index].as_str());
                }
            }
        }
        if let Err(error) = sim.step() {
            let failed = Violation {
                invariant: "host",
                at_ms: now_ms,
                detail: format!("a host failed: {error}"),
            };
            note(failed, &mut violations);
            break;
        }
        now_ms = sim.elapsed().as_millis() as u64;
        let new_starts: Vec<(String, u64, String, u64)> =
            world.with(|w| w.starts[starts_seen..].to_vec());
        starts_seen += new_starts.len();
        for (node, incarnation_ms, stream, at) in &new_starts {
            if let Err(found) = checker.started(node, *incarnation_ms, stream, *at) {
                note(found, &mut violations);
            }
            // I11: what a node resumed from a suspension starts while its peers run.
            if let Some(resume) = suspended.resumed.get(node) {
                let others: BTreeSet<String> = world.with(|w| {
                    w.running.get(stream).map_or_else(BTreeSet::new, |on| {
                        on.keys()
                            .filter(|other| *other != node && !suspended.now.contains_key(*other))
                            .cloned()
                            .collect()
                    })
                });
                let calm_since_ms = calm_since(&windows, now_ms, healed_at_ms);
                let epoch_now = world.with(|w| captures_held(w, node).get(stream).copied());
                if resume.kept_capture(stream, epoch_now) {
                    continue;
                }
                if let Err(found) =
                    checker.resumed_start(node, stream, *at, resume, calm_since_ms, &others)
                {
                    note(found, &mut violations);
                }
            }
        }
        if now_ms >= next_observation {
            next_observation += OBSERVE_PERIOD_MS;
            let calm_since_ms = calm_since(&windows, now_ms, healed_at_ms);
            let detail = Detail {
                at_rest: at_rest(healed_at_ms, now_ms),
                actors: false,
            };
            let observation = observe(
                &world,
                &reachers,
                &mut memo,
                &preferred,
                now_ms,
                calm_since_ms,
                healed_at_ms,
                &isolated,
                &suspended.now,
                detail,
            );
            for found in checker.observe(&observation) {
                note(found, &mut violations);
            }
        }
    }
    let observation = observe(
        &world,
        &reachers,
        &mut memo,
        &preferred,
        now_ms,
        Some(0),
        healed_at_ms,
        &isolated,
        &suspended.now,
        Detail {
            at_rest: true,
            actors: true,
        },
    );
    if let Err(found) = checker.no_leaks(&observation) {
        note(found, &mut violations);
    }
    let mut trace = world.with(|w| std::mem::take(&mut w.trace));
    // Events of one simulated instant are concurrent; their order (for example the
    // order in which a crashed host's tasks are dropped, which follows tokio's global
    // task ids) means nothing, so the trace lists them sorted. Lines start with the
    // fixed-width time, so sorting the lines sorts by time first.
    trace.sort();
    drop(sim);
    // With the simulation gone, nothing may still hold a node: an incarnation whose
    // registry outlives the run was kept alive by a reference cycle that its teardown
    // did not end (see `NodeTeardown`).
    let outlived: Vec<String> = world.with(|w| {
        w.nodes.clear();
        w.incarnations
            .iter()
            .filter(|(_, _, release)| !release.released())
            .map(|(node, started_ms, _)| format!("{node}@{started_ms}"))
            .collect()
    });
    if !outlived.is_empty() {
        let found = Violation {
            invariant: "leak",
            at_ms: now_ms,
            detail: format!(
                "the actor trees of {} outlived the run (a reference cycle holds them)",
                outlived.join(", ")
            ),
        };
        trace.push(format!("VIOLATION {found}"));
        violations.push(found);
    }
    let hash = trace_hash(std::iter::once(header.as_str()).chain(trace.iter().map(String::as_str)));
    Outcome {
        seed: options.seed,
        header,
        trace,
        hash,
        violation: violations.first().cloned(),
        violations,
        simulated_ms: now_ms,
    }
}

/// Since when no fault window is open (`None` while one is).
fn calm_since(windows: &[(u64, u64)], now_ms: u64, healed_at_ms: Option<u64>) -> Option<u64> {
    if let Some(healed) = healed_at_ms {
        return Some(healed);
    }
    if windows
        .iter()
        .any(|(start, end)| *start <= now_ms && now_ms < *end)
    {
        return None;
    }
    Some(
        windows
            .iter()
            .filter(|(_, end)| *end <= now_ms)
            .map(|(_, end)| *end)
            .max()
            .unwrap_or(0),
    )
}

/// Nodes suspended now, and those that resumed, for the checks.
#[derive(Debug, Default)]
struct Suspensions {
    /// Node → when its suspension began, simulated ms.
    now: BTreeMap<String, u64>,
    /// Node → the captures its board held when it was suspended (stream → epoch).
    held: BTreeMap<String, BTreeMap<String, u64>>,
    /// Node → its last suspension that ended in a resume (not a crash or restart).
    resumed: BTreeMap<String, Resumed>,
}

/// The captures `node`'s board holds (stream → epoch).
fn captures_held(world: &crate::world::WorldState, node: &str) -> BTreeMap<String, u64> {
    world.nodes.get(node).map_or_else(BTreeMap::new, |handle| {
        handle
            .board
            .local_parts()
            .into_iter()
            .filter(|(_, part)| part.role == IngestRole::Capturing)
            .map(|(stream, part)| (stream, part.epoch))
            .collect()
    })
}

/// Node `n` runs again without resuming (it crashed or restarted): a new incarnation,
/// never suspended; the links its suspension held are released.
fn forget_suspension(
    sim: &mut turmoil::Sim<'_>,
    links: &mut Links,
    world: &World,
    names: &[String],
    n: usize,
    suspended: &mut Suspensions,
) {
    let node = &names[n];
    world.with(|w| w.suspensions.remove(node));
    if suspended.now.remove(node).is_some() {
        suspended.held.remove(node);
        for other in (0..names.len()).filter(|other| *other != n) {
            links.release(sim, names, n, other);
        }
    }
    suspended.resumed.remove(node);
}

#[allow(clippy::too_many_arguments)]
fn apply(
    sim: &mut turmoil::Sim<'_>,
    links: &mut Links,
    world: &World,
    names: &[String],
    profile: &Profile,
    step: &Step,
    now_ms: u64,
    crashed: &mut BTreeMap<usize, u64>,
    isolated: &mut BTreeMap<String, Isolation>,
    suspended: &mut Suspensions,
) {
    world.with(|w| w.log(now_ms, format!("apply {step:?}")));
    let others =
        |side: &[usize]| -> Vec<usize> { (0..names.len()).filter(|n| !side.contains(n)).collect() };
    match step {
        Step::Crash(n) => {
            if sim.is_host_running(names[*n].as_str()) {
                sim.crash(names[*n].as_str());
            }
            world.with(|w| w.nodes.remove(&names[*n]));
            crashed.insert(*n, u64::MAX);
            forget_suspension(sim, links, world, names, *n, suspended);
        }
        Step::Bounce(n) => {
            world.with(|w| w.nodes.remove(&names[*n]));
            crashed.remove(n);
            forget_suspension(sim, links, world, names, *n, suspended);
            sim.bounce(names[*n].as_str());
        }
        Step::Suspend(n) => {
            // Only a running node can be suspended (a crashed one has nothing to stop, a
            // restarted one whose software has not run yet has no runtime to stop).
            let node = world.with(|w| w.suspensions.get(&names[*n]).cloned());
            if let Some(node) = node.filter(|_| {
                sim.is_host_running(names[*n].as_str()) && !suspended.now.contains_key(&names[*n])
            }) {
                // Its clocks stop and its tasks are no longer polled; what it sends and
                // what is sent to it waits in the network, as in a socket's buffer.
                node.suspend();
                for other in others(&[*n]) {
                    links.hold(sim, names, *n, other);
                }
                let held = world.with(|w| captures_held(w, &names[*n]));
                suspended.now.insert(names[*n].clone(), now_ms);
                suspended.held.insert(names[*n].clone(), held);
                suspended.resumed.remove(&names[*n]);
                // Its captures stop having frames: the checks no longer count them.
                world.with(|w| w.running_version += 1);
            }
        }
        Step::Continue(n) => resume(sim, links, world, names, *n, now_ms, suspended),
        Step::Hold(n) => {
            for other in others(&[*n]) {
                links.hold(sim, names, *n, other);
            }
        }
        Step::Release(n) => {
            for other in others(&[*n]) {
                links.release(sim, names, *n, other);
            }
        }
        Step::Cut(side) => {
            for a in side {
                for b in others(side) {
                    links.cut(sim, names, *a, b);
                }
            }
        }
        Step::Mend(side) => {
            for a in side {
                for b in others(side) {
                    links.mend(sim, names, *a, b);
                }
            }
        }
        Step::CutOneWay(a, b) => links.cut_one_way(sim, names, *a, *b),
        Step::MendOneWay(a, b) => links.mend_one_way(sim, names, *a, *b),
        Step::Loss(ppm) => sim.set_fail_rate(*ppm as f64 / 1_000_000.0),
        Step::Delay(ms) => {
            links.delay_ms = *ms;
            sim.set_max_message_latency(Duration::from_millis(MAX_LATENCY_MS + ms))
        }
        Step::SourceDown(s, down) => {
            let stream = stream_name(*s % profile.streams.max(1));
            world.with(|w| {
                if *down {
                    w.sources_down.insert(stream);
                } else if w.sources_down.remove(&stream) {
                    w.sources_back_ms.insert(stream, now_ms);
                }
            });
        }
        Step::Isolated(n, on) => {
            let name = names[*n].clone();
            if *on && profile.minority_restraint {
                let had: BTreeSet<String> =
                    world.with(|w| captures_held(w, &name).into_keys().collect());
                isolated.insert(
                    name,
                    Isolation {
                        since_ms: now_ms,
                        latency_ms: MAX_LATENCY_MS + links.delay_ms,
                        had,
                    },
                );
            } else {
                isolated.remove(&name);
            }
        }
    }
}

/// Suspended node `n` continues (SIGCONT): its clocks jump to now, its tasks run, what
/// waited in the network is delivered.
fn resume(
    sim: &mut turmoil::Sim<'_>,
    links: &mut Links,
    world: &World,
    names: &[String],
    n: usize,
    now_ms: u64,
    suspended: &mut Suspensions,
) {
    let node = names[n].as_str();
    let Some(since_ms) = suspended.now.remove(node) else {
        return;
    };
    let kept = suspended.held.remove(node).unwrap_or_default();
    if let Some(suspension) = world.with(|w| w.suspensions.get(node).cloned()) {
        suspension.resume();
    }
    for other in (0..names.len()).filter(|other| *other != n) {
        links.release(sim, names, n, other);
    }
    suspended.resumed.insert(
        node.to_string(),
        Resumed {
            suspended_ms: since_ms,
            resumed_ms: now_ms,
            kept,
        },
    );
    world.with(|w| w.running_version += 1);
}

/// Ends every fault: links mended and released, loss and delay off, cameras back, dead
/// nodes started, suspended nodes continued.
#[allow(clippy::too_many_arguments)]
fn heal(
    sim: &mut turmoil::Sim<'_>,
    links: &mut Links,
    world: &World,
    names: &[String],
    now_ms: u64,
    crashed: &mut BTreeMap<usize, u64>,
    isolated: &mut BTreeMap<String, Isolation>,
    suspended: &mut Suspensions,
) {
    for node in suspended.now.keys().cloned().collect::<Vec<_>>() {
        world.with(|w| w.log(now_ms, format!("{node} continued by the heal")));
        if let Some(n) = names.iter().position(|name| *name == node) {
            resume(sim, links, world, names, n, now_ms, suspended);
        }
    }
    world.with(|w| {
        w.log(now_ms, "heal");
        for stream in std::mem::take(&mut w.sources_down) {
            w.sources_back_ms.insert(stream, now_ms);
        }
    });
    for a in names {
        for b in names {
            if a < b {
                sim.repair(a.as_str(), b.as_str());
                sim.release(a.as_str(), b.as_str());
            }
        }
    }
    sim.set_fail_rate(0.0);
    sim.set_max_message_latency(Duration::from_millis(MAX_LATENCY_MS));
    isolated.clear();
    for (index, name) in names.iter().enumerate() {
        if !sim.is_host_running(name.as_str()) {
            world.with(|w| {
                w.nodes.remove(name);
                w.suspensions.remove(name);
            });
            sim.bounce(name.as_str());
        }
        crashed.remove(&index);
    }
}
