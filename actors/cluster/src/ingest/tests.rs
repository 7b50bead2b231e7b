//! Tests of the coordinator's bookkeeping: single steps, and small clusters of books
//! that see each other perfectly (the simulator adds the faults).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;

use super::book::*;
use crate::mesh::view::IngestRole;

const SETTINGS: BookSettings = BookSettings {
    failback_hold_ms: 6_000,
    settle_ms: 3_000,
    minority_restraint: false,
    // Most tests step far apart in time without meaning a pause (see `PAUSED`).
    pause_after_ms: u64::MAX,
    #[cfg(feature = "sabotage")]
    sabotage: None,
};

fn member(name: &str) -> Member {
    Member {
        name: name.into(),
        aliases: vec![format!("{name}.lan")],
        alive_since_ms: 0,
        returns_ms: Vec::new(),
        channel_limit: None,
        over_cpu_limit: false,
        streams: Arc::default(),
    }
}

/// Health of one capture with frames flowing.
fn flowing(stream: &str) -> BTreeMap<String, Health> {
    [(
        stream.to_string(),
        Health {
            alive: true,
            restarts: 0,
            frames_since_start: true,
        },
    )]
    .into()
}

fn configured(count: usize) -> Arc<[Configured]> {
    (0..count)
        .map(|i| Configured {
            name: format!("cam{i}"),
            capture_at: None,
        })
        .collect()
}

/// A node of a perfectly connected test cluster.
struct TestNode {
    me: Member,
    book: IngestBook,
    /// Streams whose frames flow here.
    alive: BTreeMap<String, bool>,
    restarts: BTreeMap<String, u64>,
    up: bool,
    /// Steps every round, or lets unchanged rounds pass.
    stepping: Stepping,
    /// The ownership table as last stepped.
    rows: Vec<Row>,
}

/// How a test node's book is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stepping {
    /// A full step every round.
    Always,
    /// [`IngestBook::step_if_changed`], as the coordinator does.
    IfChanged,
}

impl TestNode {
    fn new(name: &str, now_ms: u64) -> TestNode {
        let mut me = member(name);
        me.alive_since_ms = now_ms;
        TestNode {
            me,
            book: IngestBook::new(SETTINGS, now_ms),
            alive: BTreeMap::new(),
            restarts: BTreeMap::new(),
            up: true,
            stepping: Stepping::Always,
            rows: Vec::new(),
        }
    }

    /// How the others see this node.
    fn as_peer(&self, streams: &[Configured], now_ms: u64) -> Member {
        let mut seen = self.me.clone();
        seen.streams = Arc::new(
            streams
                .iter()
                .map(|s| {
                    let (role, epoch) = self.book.advertised(&s.name, now_ms);
                    let alive = role == IngestRole::Capturing
                        && self.alive.get(&s.name).copied().unwrap_or(false);
                    (s.name.clone(), Advertised { role, alive, epoch })
                })
                .collect(),
        );
        seen
    }
}

/// One round: every up node steps with the others' current advertisement; a started
/// capture gets frames at the next round unless its source is unreachable from there.
fn round(
    nodes: &mut [TestNode],
    streams: &Arc<[Configured]>,
    now_ms: u64,
    unreachable: &dyn Fn(&str, &str) -> bool,
) -> Vec<(String, Action)> {
    let seen: Vec<Option<Member>> = nodes
        .iter()
        .map(|n| n.up.then(|| n.as_peer(streams, now_ms)))
        .collect();
    let size = nodes.len();
    let mut all = Vec::new();
    for (i, node) in nodes.iter_mut().enumerate() {
        if !node.up {
            continue;
        }
        let peers: Vec<Member> = seen
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .filter_map(|(_, m)| m.clone())
            .collect();
        let health: BTreeMap<String, Health> = node
            .book
            .captures()
            .keys()
            .map(|name| {
                let alive = node.alive.get(name).copied().unwrap_or(false);
                let restarts = node.restarts.get(name).copied().unwrap_or(0);
                (
                    name.clone(),
                    Health {
                        alive,
                        restarts,
                        frames_since_start: false,
                    },
                )
            })
            .collect();
        let input = StepInput {
            me: &Arc::new(node.me.clone()),
            peers: &Arc::from(peers.to_vec()),
            cluster_size: size,
            peers_unheard: 0,
            peers_fading: 0,
            peers_unconfirmed: 0,
            streams,
            health: &Arc::new(health.clone()),
            now_ms,
        };
        let actions = match node.stepping {
            Stepping::Always => {
                let (actions, rows) = node.book.step(&input);
                node.rows = rows;
                actions
            }
            Stepping::IfChanged => match node.book.step_if_changed(&input) {
                Some((actions, rows)) => {
                    node.rows = rows;
                    actions
                }
                None => Vec::new(),
            },
        };
        for action in &actions {
            match action {
                Action::Start { stream, .. } => {
                    let reachable = !unreachable(&node.me.name, stream);
                    node.alive.insert(stream.clone(), reachable);
                }
                Action::Stop { stream, .. } => {
                    node.alive.remove(stream);
                }
            }
            all.push((node.me.name.clone(), action.clone()));
        }
        // A capture whose source is unreachable keeps restarting (the supervisor's backoff).
        for name in node.book.captures().keys() {
            if unreachable(&node.me.name, name) {
                *node.restarts.entry(name.clone()).or_default() += 1;
            }
        }
    }
    all
}

fn capturers(nodes: &[TestNode], stream: &str) -> Vec<String> {
    nodes
        .iter()
        .filter(|n| n.up && n.book.captures().contains_key(stream))
        .map(|n| n.me.name.clone())
        .collect()
}

fn never(_: &str, _: &str) -> bool {
    false
}

#[test]
fn a_lone_node_captures_everything_at_once() {
    let mut book = IngestBook::new(SETTINGS, 0);
    let me = member("a");
    let streams = configured(3);
    let input = StepInput {
        me: &Arc::new(me.clone()),
        peers: &Arc::from([]),
        cluster_size: 1,
        peers_unheard: 0,
        peers_fading: 0,
        peers_unconfirmed: 0,
        streams: &streams,
        health: &Arc::default(),
        now_ms: 10,
    };
    let (actions, rows) = book.step(&input);
    assert_eq!(actions.len(), 3);
    assert!(
        actions
            .iter()
            .all(|a| matches!(a, Action::Start { epoch: 1, .. }))
    );
    assert!(rows.iter().all(|r| r.owner.as_deref() == Some("a")));
}

#[test]
fn a_booting_node_waits_for_unheard_peers_until_the_settle_time() {
    let mut book = IngestBook::new(SETTINGS, 0);
    let me = member("a");
    let streams = configured(2);
    let step = |book: &mut IngestBook, now_ms| {
        book.step(&StepInput {
            me: &Arc::new(me.clone()),
            peers: &Arc::from([]),
            cluster_size: 3,
            peers_unheard: 2,
            peers_fading: 0,
            peers_unconfirmed: 0,
            streams: &streams,
            health: &Arc::default(),
            now_ms,
        })
        .0
    };
    assert!(step(&mut book, 2_999).is_empty(), "still settling");
    assert_eq!(step(&mut book, 3_000).len(), 2, "settled: takes everything");
}

#[test]
fn unchanged_ticks_pass_until_the_settle_time_and_any_change_steps() {
    let mut book = IngestBook::new(SETTINGS, 0);
    let me = member("a");
    let streams = configured(2);
    let tick_since = |book: &mut IngestBook, unheard: usize, since_ms: u64, now_ms| {
        let me = Member {
            alive_since_ms: since_ms,
            ..me.clone()
        };
        book.step_if_changed(&StepInput {
            me: &Arc::new(me),
            peers: &Arc::from([]),
            cluster_size: 3,
            peers_unheard: unheard,
            peers_fading: 0,
            peers_unconfirmed: 0,
            streams: &streams,
            health: &Arc::default(),
            now_ms,
        })
        .map(|(actions, _)| actions.len())
    };
    let tick = |book: &mut IngestBook, unheard: usize, now_ms| tick_since(book, unheard, 0, now_ms);
    assert_eq!(tick(&mut book, 2, 0), Some(0), "a first input steps");
    assert_eq!(
        tick(&mut book, 2, 250),
        None,
        "that step changed only the table's owners: the same input passes"
    );
    assert_eq!(tick(&mut book, 2, 500), None);
    assert_eq!(tick(&mut book, 2, 2_999), None);
    assert_eq!(
        tick(&mut book, 2, 3_000),
        Some(2),
        "the settle time steps: takes over"
    );
    assert_eq!(
        tick(&mut book, 2, 3_250),
        Some(0),
        "a step that acted is stepped again"
    );
    assert_eq!(tick(&mut book, 2, 3_500), None);
    assert_eq!(
        tick(&mut book, 1, 3_750),
        None,
        "settled, without minority restraint: the counts of nodes are not read"
    );
    assert_eq!(
        tick_since(&mut book, 1, 100, 3_800),
        Some(0),
        "a changed input steps"
    );
    assert_eq!(
        tick_since(&mut book, 1, 100, 3_900),
        None,
        "that step left the book as it found it: the same input passes at once"
    );
    book.start_failed("cam0", 4_000);
    assert_eq!(
        tick_since(&mut book, 1, 100, 4_000),
        Some(0),
        "so does a change from outside"
    );
}

#[test]
fn with_minority_restraint_a_fading_peer_steps_a_settled_book() {
    let settings = BookSettings {
        minority_restraint: true,
        ..SETTINGS
    };
    let streams = configured(1);
    let me = Arc::new(member("a"));
    let peers: Arc<[Member]> = Arc::from([member("b"), member("c")]);
    let tick = |book: &mut IngestBook, fading: usize, now_ms| {
        book.step_if_changed(&StepInput {
            me: &me,
            peers: &peers,
            cluster_size: 3,
            peers_unheard: 0,
            peers_fading: fading,
            peers_unconfirmed: 0,
            streams: &streams,
            health: &Arc::default(),
            now_ms,
        })
        .map(|_| book.restrained())
    };
    let mut restrained = IngestBook::new(settings, 0);
    let mut free = IngestBook::new(SETTINGS, 0);
    for book in [&mut restrained, &mut free] {
        assert!(tick(book, 0, 10).is_some());
        while tick(book, 0, 20).is_some() {}
    }
    assert_eq!(
        tick(&mut restrained, 2, 30),
        Some(true),
        "both peers fading: a minority, restrained"
    );
    assert_eq!(
        tick(&mut free, 2, 30),
        None,
        "without restraint the counts decide nothing"
    );
}

#[test]
fn a_new_capture_takes_an_epoch_above_every_one_seen() {
    let mut book = IngestBook::new(SETTINGS, 0);
    let me = member("a");
    let mut peer = member("b");
    Arc::make_mut(&mut peer.streams).insert(
        "cam0".into(),
        Advertised {
            role: IngestRole::Failed,
            alive: false,
            epoch: 41,
        },
    );
    let streams = configured(1);
    let (actions, _) = book.step(&StepInput {
        me: &Arc::new(me.clone()),
        peers: &Arc::from([peer.clone()]),
        cluster_size: 2,
        peers_unheard: 0,
        peers_fading: 0,
        peers_unconfirmed: 0,
        streams: &streams,
        health: &Arc::default(),
        now_ms: 5,
    });
    assert_eq!(
        actions,
        vec![Action::Start {
            stream: "cam0".into(),
            epoch: 42
        }]
    );
}

#[test]
fn three_nodes_capture_every_stream_exactly_once_then_stay_put() {
    let streams = configured(9);
    let mut nodes: Vec<TestNode> = ["a", "b", "c"]
        .iter()
        .map(|n| TestNode::new(n, 0))
        .collect();
    for t in 1..10 {
        round(&mut nodes, &streams, t * 1_000, &never);
    }
    for stream in streams.iter() {
        assert_eq!(capturers(&nodes, &stream.name).len(), 1, "{}", stream.name);
    }
    let per_node: Vec<usize> = nodes.iter().map(|n| n.book.captures().len()).collect();
    assert!(per_node.iter().all(|c| (2..=4).contains(c)), "{per_node:?}");
    for t in 10..30 {
        assert!(
            round(&mut nodes, &streams, t * 1_000, &never).is_empty(),
            "no churn while stable"
        );
    }
}

#[test]
fn a_stream_moves_only_once_its_new_owner_captures_it() {
    let streams = configured(1);
    let mut old = IngestBook::new(SETTINGS, 0);
    let a = member("a");
    old.step(&StepInput {
        me: &Arc::new(a.clone()),
        peers: &Arc::from([]),
        cluster_size: 1,
        peers_unheard: 0,
        peers_fading: 0,
        peers_unconfirmed: 0,
        streams: &streams,
        health: &Arc::default(),
        now_ms: 0,
    });
    // A node that hashes above `a` for cam0 joins.
    let owner_name = ["b", "c", "d", "e", "f"]
        .into_iter()
        .find(|n| {
            let placed = super::placement::place(
                &[super::placement::IngestStream {
                    name: "cam0".into(),
                    capture_at: None,
                    excluded: vec![],
                    captured_by: None,
                    flowing_at: None,
                }],
                &[
                    super::placement::Candidate {
                        name: "a".into(),
                        healthy_since_ms: 0,
                        channel_limit: None,
                        over_cpu_limit: false,
                    },
                    super::placement::Candidate {
                        name: (*n).into(),
                        healthy_since_ms: 0,
                        channel_limit: None,
                        over_cpu_limit: false,
                    },
                ],
                0,
                0,
            );
            placed["cam0"].0 == *n
        })
        .unwrap();
    let mut newcomer = member(owner_name);
    let health = flowing("cam0");
    let step = |book: &mut IngestBook, peer: &Member, now_ms| {
        book.step(&StepInput {
            me: &Arc::new(a.clone()),
            peers: &Arc::from([peer.clone()]),
            cluster_size: 2,
            peers_unheard: 0,
            peers_fading: 0,
            peers_unconfirmed: 0,
            streams: &streams,
            health: &Arc::new(health.clone()),
            now_ms,
        })
        .0
    };
    Arc::make_mut(&mut newcomer.streams).insert(
        "cam0".into(),
        Advertised {
            role: IngestRole::Capturing,
            alive: false,
            epoch: 2,
        },
    );
    assert!(
        step(&mut old, &newcomer, 1_000).is_empty(),
        "not alive there yet"
    );
    Arc::make_mut(&mut newcomer.streams)
        .get_mut("cam0")
        .unwrap()
        .alive = true;
    let actions = step(&mut old, &newcomer, 2_000);
    assert!(
        matches!(&actions[..], [Action::Stop { reason, .. }] if reason.contains("handed over")),
        "{actions:?}"
    );
}

#[test]
fn a_handover_that_never_completes_ends_at_the_deadline() {
    let streams: Arc<[Configured]> = Arc::new([Configured {
        name: "cam0".into(),
        capture_at: Some("b.lan".into()),
    }]);
    let a = member("a");
    let b = member("b");
    let mut book = IngestBook::new(SETTINGS, 0);
    book.adopt("cam0", 3, 0);
    let step = |book: &mut IngestBook, now_ms| {
        book.step(&StepInput {
            me: &Arc::new(a.clone()),
            peers: &Arc::from([b.clone()]),
            cluster_size: 2,
            peers_unheard: 0,
            peers_fading: 0,
            peers_unconfirmed: 0,
            streams: &streams,
            health: &Arc::default(),
            now_ms,
        })
        .0
    };
    // b is preferred (healthy since 0, hold 6 s) but never advertises the stream.
    // It is excluded as a candidate (it does not advertise the stream), so a keeps it.
    assert!(step(&mut book, 10_000).is_empty());
    assert!(book.captures().contains_key("cam0"));
}

#[test]
fn a_stream_failing_on_one_node_moves_to_a_node_that_reaches_its_source() {
    let streams = configured(6);
    let mut nodes: Vec<TestNode> = ["a", "b", "c"]
        .iter()
        .map(|n| TestNode::new(n, 0))
        .collect();
    // cam0..cam5's sources are unreachable from `a`.
    let unreachable = |node: &str, _stream: &str| node == "a";
    let mut t = 1;
    while t < 120 {
        round(&mut nodes, &streams, t * 1_000, &unreachable);
        t += 1;
    }
    for stream in streams.iter() {
        let who = capturers(&nodes, &stream.name);
        assert_eq!(who.len(), 1, "{}: {who:?}", stream.name);
        assert_ne!(
            who[0], "a",
            "{} stays off the node that cannot reach it",
            stream.name
        );
    }
    assert!(nodes[0].book.failed_here("cam0", t * 1_000) || nodes[0].book.captures().is_empty());
}

/// One step of `book` for a node alone in its cluster, with `health` for stream `cam0`.
fn step_alone(
    book: &mut IngestBook,
    me: &Member,
    streams: &Arc<[Configured]>,
    health: Health,
    now_ms: u64,
) -> Vec<Action> {
    book.step(&StepInput {
        me: &Arc::new(me.clone()),
        peers: &Arc::from([]),
        cluster_size: 1,
        peers_unheard: 0,
        peers_fading: 0,
        peers_unconfirmed: 0,
        streams,
        health: &Arc::new([("cam0".to_string(), health)].into()),
        now_ms,
    })
    .0
}

#[test]
fn a_capture_without_frames_fails_at_its_start_deadline() {
    let mut book = IngestBook::new(SETTINGS, 0);
    let me = member("a");
    let streams = configured(1);
    let step =
        |book: &mut IngestBook, now_ms| step_alone(book, &me, &streams, Health::default(), now_ms);
    assert_eq!(step(&mut book, 0).len(), 1, "started");
    assert!(step(&mut book, CAPTURE_START_DEADLINE_MS - 1).is_empty());
    let actions = step(&mut book, CAPTURE_START_DEADLINE_MS);
    assert!(
        matches!(&actions[..], [Action::Stop { reason, .. }] if reason.contains("no frames")),
        "{actions:?}"
    );
    assert_eq!(
        book.advertised("cam0", CAPTURE_START_DEADLINE_MS).0,
        IngestRole::Failed
    );
    // Alone, nobody else had frames either (the camera may be down for everyone): it is
    // probed again after the shorter hold, not the full one.
    assert!(step(&mut book, CAPTURE_START_DEADLINE_MS + 1_000).is_empty());
    assert!(
        step(
            &mut book,
            CAPTURE_START_DEADLINE_MS + FAILED_WHILE_DOWN_HOLD_MS - 1
        )
        .is_empty()
    );
    assert_eq!(
        step(
            &mut book,
            CAPTURE_START_DEADLINE_MS + FAILED_WHILE_DOWN_HOLD_MS
        )
        .len(),
        1
    );
}

/// The restart bound counts against the source only while the current incarnation has
/// no frames: a restart that reached the camera (back after an outage) is a recovery.
#[test]
fn a_restart_that_reaches_the_source_is_not_a_failure() {
    let me = member("a");
    let streams = configured(1);
    let step = |book: &mut IngestBook, now_ms, health: Health| {
        step_alone(book, &me, &streams, health, now_ms)
    };
    let restarted = |restarts, frames_since_start| Health {
        alive: frames_since_start,
        restarts,
        frames_since_start,
    };
    for recovered in [true, false] {
        let mut book = IngestBook::new(SETTINGS, 0);
        assert_eq!(step(&mut book, 0, restarted(0, false)).len(), 1, "started");
        for restart in 1..MAX_CAPTURE_RESTARTS as u64 {
            assert!(step(&mut book, restart * 1_000, restarted(restart, false)).is_empty());
        }
        let bound = MAX_CAPTURE_RESTARTS as u64;
        let actions = step(&mut book, bound * 1_000, restarted(bound, recovered));
        if recovered {
            assert!(actions.is_empty(), "{actions:?}");
            assert!(book.captures().contains_key("cam0"));
            // It fails again: now the restarts count.
            let actions = step(&mut book, 10_000, restarted(bound + 1, false));
            assert!(
                matches!(&actions[..], [Action::Stop { reason, .. }] if reason.contains("restarts")),
                "{actions:?}"
            );
        } else {
            // The restart just seen has its grace to reach the source first.
            assert!(actions.is_empty(), "{actions:?}");
            let grace_ends_ms = bound * 1_000 + FIRST_FRAME_GRACE_MS;
            assert!(step(&mut book, grace_ends_ms - 1, restarted(bound, false)).is_empty());
            let actions = step(&mut book, grace_ends_ms, restarted(bound, false));
            assert!(
                matches!(&actions[..], [Action::Stop { reason, .. }] if reason.contains("restarts")),
                "{actions:?}"
            );
        }
    }
}

#[test]
fn minority_restraint_keeps_what_it_has_and_takes_nothing_new() {
    let settings = BookSettings {
        minority_restraint: true,
        ..SETTINGS
    };
    let mut book = IngestBook::new(settings, 0);
    book.adopt("cam0", 1, 59_000);
    let me = member("a");
    let streams = configured(4);
    let flowing = flowing("cam0");
    let (actions, _) = book.step(&StepInput {
        me: &Arc::new(me.clone()),
        peers: &Arc::from([]),
        cluster_size: 5,
        peers_unheard: 0,
        peers_fading: 0,
        peers_unconfirmed: 0,
        streams: &streams,
        health: &Arc::new(flowing.clone()),
        now_ms: 60_000,
    });
    assert!(actions.is_empty(), "{actions:?}");
    assert!(book.restrained());
    assert_eq!(book.captures().len(), 1);
    // The same node without the switch takes everything over.
    let mut bold = IngestBook::new(SETTINGS, 0);
    let (actions, _) = bold.step(&StepInput {
        me: &Arc::new(me.clone()),
        peers: &Arc::from([]),
        cluster_size: 5,
        peers_unheard: 0,
        peers_fading: 0,
        peers_unconfirmed: 0,
        streams: &streams,
        health: &Arc::default(),
        now_ms: 60_000,
    });
    assert_eq!(actions.len(), 4);
}

#[test]
fn capture_at_returns_after_the_hold_and_a_flapping_node_waits_longer() {
    let streams: Arc<[Configured]> = Arc::new([Configured {
        name: "cam0".into(),
        capture_at: Some("b.lan".into()),
    }]);
    let run = |returns: Vec<u64>| {
        let mut b = member("b");
        b.alive_since_ms = 100_000;
        b.returns_ms = returns;
        Arc::make_mut(&mut b.streams).insert(
            "cam0".into(),
            Advertised {
                role: IngestRole::Standby,
                alive: false,
                epoch: 1,
            },
        );
        let a = member("a");
        // a captures the stream meanwhile (b was away).
        let mut book = IngestBook::new(SETTINGS, 0);
        book.adopt("cam0", 1, 0);
        let flowing = flowing("cam0");
        (0..60)
            .map(|s| 100_000 + s * 1_000)
            .find(|now_ms| {
                let (_, rows) = book.step(&StepInput {
                    me: &Arc::new(a.clone()),
                    peers: &Arc::from([b.clone()]),
                    cluster_size: 2,
                    peers_unheard: 0,
                    peers_fading: 0,
                    peers_unconfirmed: 0,
                    streams: &streams,
                    health: &Arc::new(flowing.clone()),
                    now_ms: *now_ms,
                });
                rows[0].owner.as_deref() == Some("b")
            })
            .map(|now_ms| now_ms - 100_000)
    };
    assert_eq!(run(vec![100_000]), Some(SETTINGS.failback_hold_ms));
    assert_eq!(
        run(vec![20_000, 60_000, 100_000]),
        Some(SETTINGS.failback_hold_ms * FLAP_HOLD_FACTOR)
    );
}

proptest! {
    /// Whatever membership changes happen, once the cluster is stable again every stream
    /// has exactly one capturer, the capturers' epochs only grew, and nothing moves.
    #[test]
    fn a_stable_cluster_converges_to_one_capturer_per_stream(
        count in 1usize..25,
        events in proptest::collection::vec((0usize..4, any::<bool>()), 0..6),
    ) {
        let streams = configured(count);
        let mut nodes: Vec<TestNode> =
            ["a", "b", "c", "d"].iter().map(|n| TestNode::new(n, 0)).collect();
        let mut t = 1u64;
        let mut epochs: BTreeMap<String, u64> = BTreeMap::new();
        for (node, up) in events {
            if !up && nodes.iter().filter(|n| n.up).count() > 1 {
                nodes[node].up = false;
                nodes[node].alive.clear();
            } else if up && !nodes[node].up {
                let fresh = TestNode::new(&nodes[node].me.name.clone(), t * 1_000);
                nodes[node] = fresh;
            }
            for _ in 0..5 {
                for (_, action) in round(&mut nodes, &streams, t * 1_000, &never) {
                    if let Action::Start { stream, epoch } = action {
                        let last = epochs.insert(stream.clone(), epoch).unwrap_or(0);
                        prop_assert!(epoch > last, "{stream}: epoch {epoch} after {last}");
                    }
                }
                t += 1;
            }
        }
        for _ in 0..60 {
            round(&mut nodes, &streams, t * 1_000, &never);
            t += 1;
        }
        for stream in streams.iter() {
            prop_assert_eq!(capturers(&nodes, &stream.name).len(), 1);
        }
        for _ in 0..10 {
            prop_assert!(round(&mut nodes, &streams, t * 1_000, &never).is_empty());
            t += 1;
        }
    }
}

proptest! {
    /// Letting unchanged ticks pass is exact: a cluster whose books skip them makes the
    /// very same starts and stops in the same rounds, with the same tables and adverts,
    /// as one whose books step every tick — across crashes, returns (flapping
    /// `capture_at` nodes), sources unreachable from some nodes, and time steps short
    /// and long against every hold and deadline.
    #[test]
    fn letting_unchanged_ticks_pass_changes_no_decision(
        count in 1usize..10,
        events in proptest::collection::vec((0usize..5, 0usize..4, 0usize..10, 0usize..7), 1..30),
    ) {
        const NAMES: [&str; 4] = ["a", "b", "c", "d"];
        // From a coordinator tick to beyond every hold and deadline.
        const STEPS_MS: [u64; 7] = [100, 250, 1_000, 3_000, 7_000, 21_000, 61_000];
        let streams: Arc<[Configured]> = (0..count)
            .map(|i| Configured {
                name: format!("cam{i}"),
                capture_at: (i % 3 == 0).then(|| format!("{}.lan", NAMES[i % 4])),
            })
            .collect();
        let cluster = |stepping| -> Vec<TestNode> {
            NAMES
                .iter()
                .map(|name| TestNode { stepping, ..TestNode::new(name, 0) })
                .collect()
        };
        let mut always = cluster(Stepping::Always);
        let mut skipping = cluster(Stepping::IfChanged);
        let mut unreachable: BTreeSet<(String, String)> = BTreeSet::new();
        let mut now_ms = 1_000;
        for (kind, node, stream, step) in events {
            let stream = streams[stream % count].name.clone();
            let pair = (NAMES[node].to_string(), stream.clone());
            if kind == 2 && !unreachable.remove(&pair) {
                unreachable.insert(pair.clone());
            }
            for nodes in [&mut always, &mut skipping] {
                match kind {
                    0 if nodes.iter().filter(|n| n.up).count() > 1 => {
                        nodes[node].up = false;
                        nodes[node].alive.clear();
                    }
                    1 if !nodes[node].up => {
                        let mut returns = nodes[node].me.returns_ms.clone();
                        returns.push(now_ms);
                        let stepping = nodes[node].stepping;
                        nodes[node] = TestNode { stepping, ..TestNode::new(NAMES[node], now_ms) };
                        nodes[node].me.returns_ms = returns;
                    }
                    // The source comes and goes for a capture running there.
                    2 if nodes[node].alive.contains_key(&stream) => {
                        nodes[node].alive.insert(stream.clone(), !unreachable.contains(&pair));
                    }
                    // Frames stop or resume without the capture failing.
                    3 => {
                        if let Some(alive) = nodes[node].alive.get_mut(&stream) {
                            *alive = !*alive;
                        }
                    }
                    _ => {}
                }
            }
            for _ in 0..4 {
                let cut = |node: &str, stream: &str| {
                    unreachable.contains(&(node.to_string(), stream.to_string()))
                };
                let stepped = round(&mut always, &streams, now_ms, &cut);
                let skipped = round(&mut skipping, &streams, now_ms, &cut);
                prop_assert_eq!(&stepped, &skipped, "actions at {} ms", now_ms);
                for (a, b) in always.iter().zip(&skipping) {
                    prop_assert_eq!(&a.rows, &b.rows, "{}'s table at {} ms", a.me.name, now_ms);
                    for stream in streams.iter() {
                        prop_assert_eq!(
                            a.book.advertised(&stream.name, now_ms),
                            b.book.advertised(&stream.name, now_ms)
                        );
                    }
                }
                now_ms += STEPS_MS[step];
            }
        }
    }
}

#[test]
fn a_capture_whose_frames_stop_fails_after_the_silence_deadline() {
    let mut book = IngestBook::new(SETTINGS, 0);
    let me = member("a");
    let streams = configured(1);
    let step = |book: &mut IngestBook, alive: bool, now_ms| {
        let health: BTreeMap<String, Health> = [(
            "cam0".to_string(),
            Health {
                alive,
                restarts: 0,
                frames_since_start: alive,
            },
        )]
        .into();
        book.step(&StepInput {
            me: &Arc::new(me.clone()),
            peers: &Arc::from([]),
            cluster_size: 1,
            peers_unheard: 0,
            peers_fading: 0,
            peers_unconfirmed: 0,
            streams: &streams,
            health: &Arc::new(health.clone()),
            now_ms,
        })
        .0
    };
    assert_eq!(step(&mut book, false, 0).len(), 1, "started");
    assert!(step(&mut book, true, 1_000).is_empty(), "frames flow");
    assert!(step(&mut book, false, CAPTURE_SILENCE_MS).is_empty());
    let actions = step(&mut book, false, 1_000 + CAPTURE_SILENCE_MS);
    assert!(
        matches!(&actions[..], [Action::Stop { reason, .. }] if reason.contains("no frames for")),
        "{actions:?}"
    );
}

#[test]
fn an_owner_fences_a_higher_capture_left_over_from_a_partition() {
    let mut book = IngestBook::new(SETTINGS, 0);
    book.adopt("cam0", 5, 0);
    let me = member("a");
    // b captured cam0 at epoch 6 while cut off; a is its owner (capture_at).
    let mut b = member("b");
    Arc::make_mut(&mut b.streams).insert(
        "cam0".into(),
        Advertised {
            role: IngestRole::Capturing,
            alive: true,
            epoch: 6,
        },
    );
    let streams: Arc<[Configured]> = Arc::new([Configured {
        name: "cam0".into(),
        capture_at: Some("A".into()),
    }]);
    let flowing = flowing("cam0");
    let (_, rows) = book.step(&StepInput {
        me: &Arc::new(me.clone()),
        peers: &Arc::from([b.clone()]),
        cluster_size: 2,
        peers_unheard: 0,
        peers_fading: 0,
        peers_unconfirmed: 0,
        streams: &streams,
        health: &Arc::new(flowing.clone()),
        now_ms: 100_000,
    });
    assert_eq!(
        rows[0].owner.as_deref(),
        Some("a"),
        "capture_at is case-blind"
    );
    assert_eq!(book.advertised("cam0", 100_000), (IngestRole::Capturing, 7));
    assert_eq!(rows[0].capturer.as_deref(), Some("a"));
}

fn advertised(role: IngestRole, alive: bool, epoch: u64) -> Advertised {
    Advertised { role, alive, epoch }
}

fn preferring(stream: &str, node: &str) -> Arc<[Configured]> {
    Arc::new([Configured {
        name: stream.into(),
        capture_at: Some(node.into()),
    }])
}

#[test]
fn a_capture_placed_elsewhere_ends_under_a_higher_flowing_capture_whoever_holds_it() {
    let streams = preferring("cam0", "c");
    let a = member("a");
    let mut book = IngestBook::new(SETTINGS, 0);
    book.adopt("cam0", 1, 0);
    // c owns cam0 in a's view but has not started; b, whose view differs, captures it
    // above a's epoch with frames flowing.
    let mut b = member("b");
    Arc::make_mut(&mut b.streams).insert("cam0".into(), advertised(IngestRole::Capturing, true, 5));
    let mut c = member("c");
    Arc::make_mut(&mut c.streams).insert("cam0".into(), advertised(IngestRole::Standby, false, 1));
    let (actions, rows) = book.step(&StepInput {
        me: &Arc::new(a.clone()),
        peers: &Arc::from([b.clone(), c.clone()]),
        cluster_size: 3,
        peers_unheard: 0,
        peers_fading: 0,
        peers_unconfirmed: 0,
        streams: &streams,
        health: &Arc::new(flowing("cam0")),
        now_ms: 60_000,
    });
    assert_eq!(rows[0].owner.as_deref(), Some("c"));
    assert!(
        matches!(&actions[..], [Action::Stop { stream, reason }] if stream == "cam0" && reason.contains("superseded by b")),
        "{actions:?}"
    );
}

#[test]
fn a_failed_mark_taken_while_the_source_was_down_everywhere_ends_once_a_peer_has_frames() {
    let streams = preferring("cam0", "a");
    let a = member("a");
    let idle = |name: &str| {
        let mut peer = member(name);
        Arc::make_mut(&mut peer.streams)
            .insert("cam0".into(), advertised(IngestRole::Standby, false, 0));
        peer
    };
    let mut book = IngestBook::new(SETTINGS, 0);
    let step = |book: &mut IngestBook, peer: &Member, now_ms: u64| {
        book.step(&StepInput {
            me: &Arc::new(a.clone()),
            peers: &Arc::from([peer.clone()]),
            cluster_size: 2,
            peers_unheard: 0,
            peers_fading: 0,
            peers_unconfirmed: 0,
            streams: &streams,
            health: &Arc::default(),
            now_ms,
        })
        .0
    };
    let b = idle("b");
    assert!(matches!(
        &step(&mut book, &b, 1_000)[..],
        [Action::Start { .. }]
    ));
    // No frame within the start deadline, and nobody else has any: marked failed here.
    let deadline = 1_000 + CAPTURE_START_DEADLINE_MS;
    assert!(matches!(
        &step(&mut book, &b, deadline)[..],
        [Action::Stop { .. }]
    ));
    assert!(book.failed_here("cam0", deadline + 1));
    // The camera comes back and b captures it: a is a candidate again at once.
    let mut b_captures = idle("b");
    Arc::make_mut(&mut b_captures.streams)
        .insert("cam0".into(), advertised(IngestRole::Capturing, true, 2));
    step(&mut book, &b_captures, deadline + 1_000);
    assert!(!book.failed_here("cam0", deadline + 1_000));

    // A mark taken while another node had frames is a local failure: it holds.
    let mut local = IngestBook::new(SETTINGS, 0);
    step(&mut local, &b, 1_000);
    step(&mut local, &b_captures, deadline);
    step(&mut local, &b_captures, deadline + 1_000);
    assert!(local.failed_here("cam0", deadline + 1_000));
}

#[test]
fn minority_restraint_does_not_count_peers_that_may_be_cut_off_already() {
    let settings = BookSettings {
        minority_restraint: true,
        ..SETTINGS
    };
    let streams = configured(1);
    let a = member("a");
    let peers = [member("b"), member("c")];
    let restrained = |fading: usize| {
        let mut book = IngestBook::new(settings, 0);
        book.step(&StepInput {
            me: &Arc::new(a.clone()),
            peers: &Arc::from(peers.to_vec()),
            cluster_size: 5,
            peers_unheard: 0,
            peers_fading: fading,
            peers_unconfirmed: 0,
            streams: &streams,
            health: &Arc::default(),
            now_ms: 10_000,
        });
        book.restrained()
    };
    assert!(!restrained(0), "3 of 5 heard: a majority");
    assert!(restrained(1), "one of them fading: 2 of 5");
}

#[test]
fn a_settling_node_takes_a_stream_that_prefers_it_and_nobody_captures() {
    let streams = preferring("cam0", "a");
    let a = member("a");
    let mut book = IngestBook::new(SETTINGS, 0);
    let b = member("b");
    let c = member("c");
    // Two of four peers heard (a majority with a), two still unheard: before the settle
    // time, only the unclaimed preferred stream starts.
    let (actions, _) = book.step(&StepInput {
        me: &Arc::new(a.clone()),
        peers: &Arc::from([b.clone(), c.clone()]),
        cluster_size: 5,
        peers_unheard: 2,
        peers_fading: 0,
        peers_unconfirmed: 0,
        streams: &streams,
        health: &Arc::default(),
        now_ms: 500,
    });
    assert!(matches!(&actions[..], [Action::Start { stream, .. }] if stream == "cam0"));
}

#[test]
fn the_local_parts_generation_moves_only_when_a_part_does() {
    use super::board::{BoardState, IngestBoard};
    let mut book = IngestBook::new(SETTINGS, 0);
    let me = member("a");
    let streams = configured(2);
    let (actions, rows) = book.step(&StepInput {
        me: &Arc::new(me.clone()),
        peers: &Arc::from([]),
        cluster_size: 1,
        peers_unheard: 0,
        peers_fading: 0,
        peers_unconfirmed: 0,
        streams: &streams,
        health: &Arc::default(),
        now_ms: 10,
    });
    assert_eq!(actions.len(), 2);
    let board = IngestBoard::default();
    let publish = |local| {
        board.publish(BoardState {
            local,
            local_generation: 0,
            rows: rows.clone(),
            restrained: false,
            settled: true,
        });
        board.snapshot().local_generation
    };
    let started = ["cam0".to_string(), "cam1".to_string()];
    let first = super::local_parts(&book, &rows, &started, 10);
    assert_eq!(first["cam0"].role, IngestRole::Capturing);
    let generation = publish(first.clone());
    assert_eq!(generation, 1, "parts appeared");
    let again = super::local_parts(&book, &rows, &[], 20);
    assert_eq!(again, first, "every part as it was");
    assert_eq!(publish(again), generation);
    // A start that failed after the step: the book, not the table, has the part.
    book.start_failed("cam1", 20);
    let failed = super::local_parts(&book, &rows, &started[1..], 20);
    assert_eq!(failed["cam1"].role, IngestRole::Failed);
    assert_eq!(failed["cam0"], first["cam0"]);
    assert_eq!(publish(failed), generation + 1);
    // An in-place update moves it when it changes a part, and only then.
    let part = board.local("cam1").expect("configured");
    board.set_local("cam1", part);
    assert_eq!(board.snapshot().local_generation, generation + 1);
    board.set_local("cam1", first["cam1"]);
    assert_eq!(board.snapshot().local_generation, generation + 2);
}

/// Settings that see a pause: the mesh's threshold with fetch 1 s and stale 3 s.
const PAUSED: BookSettings = BookSettings {
    pause_after_ms: 2_000,
    ..SETTINGS
};

/// Three nodes at rest, then `a` paused for 10 s (SIGSTOP): `b` and `c` take its
/// streams. On resuming, `a` still sees its peers as they were before the pause (the
/// view keeps them alive, unconfirmed) and starts nothing, whatever placement says of
/// that old picture; once it hears them again it yields its old captures by make before
/// break (the captures above its own have frames) and still starts nothing.
#[test]
fn a_resumed_node_takes_nothing_until_its_peers_are_heard_and_then_yields() {
    let streams = configured(6);
    let mut nodes: Vec<TestNode> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let mut node = TestNode::new(n, 0);
            node.book = IngestBook::new(PAUSED, 0);
            node
        })
        .collect();
    for t in 1..10 {
        round(&mut nodes, &streams, t * 1_000, &never);
    }
    let had: Vec<String> = nodes[0].book.captures().keys().cloned().collect();
    assert_eq!(had.len(), 2, "a's share of six streams");
    // What a last heard of its peers, before the pause.
    let before: Vec<Member> = nodes[1..]
        .iter()
        .map(|n| n.as_peer(&streams, 9_000))
        .collect();
    nodes[0].up = false;
    for t in 10..20 {
        round(&mut nodes, &streams, t * 1_000, &never);
    }
    for stream in &had {
        assert_eq!(
            capturers(&nodes[1..], stream).len(),
            1,
            "{stream} taken over"
        );
    }

    // a resumes at 20 s: its clock jumped 11 s since its last tick.
    let a = &mut nodes[0];
    a.me.alive_since_ms = 20_000;
    let health: BTreeMap<String, Health> = had
        .iter()
        .map(|stream| (stream.clone(), flowing(stream)[stream]))
        .collect();
    let resumed_at = |book: &mut IngestBook, now_ms, unconfirmed| {
        book.step(&StepInput {
            me: &Arc::new(a.me.clone()),
            peers: &Arc::from(before.clone()),
            cluster_size: 3,
            peers_unheard: 0,
            peers_fading: unconfirmed,
            peers_unconfirmed: unconfirmed,
            streams: &streams,
            health: &Arc::new(health.clone()),
            now_ms,
        })
    };
    let (actions, _) = resumed_at(&mut a.book, 20_000, 2);
    assert!(actions.is_empty(), "nothing taken blind: {actions:?}");
    assert!(a.book.resuming());
    assert_eq!(
        a.book.captures().keys().cloned().collect::<Vec<_>>(),
        had,
        "it keeps what it has"
    );
    // The same old picture confirmed is what the view gave before this rule: every peer
    // dead at once. A book told so grabs the streams that run fine elsewhere.
    let mut blind = a.book.clone();
    let grabbed = blind
        .step(&StepInput {
            me: &Arc::new(a.me.clone()),
            peers: &Arc::from([]),
            cluster_size: 3,
            peers_unheard: 0,
            peers_fading: 0,
            peers_unconfirmed: 0,
            streams: &streams,
            health: &Arc::new(health.clone()),
            now_ms: 20_250,
        })
        .0
        .iter()
        .filter(|action| matches!(action, Action::Start { .. }))
        .count();
    assert_eq!(grabbed, 4, "the bug this rule prevents");

    // Its peers are heard again: a yields what was taken over and starts nothing during
    // its fail-back hold.
    nodes[0].up = true;
    let mut started = Vec::new();
    let mut stopped = Vec::new();
    for t in 21..26 {
        for (node, action) in round(&mut nodes, &streams, t * 1_000, &never) {
            match action {
                Action::Start { stream, .. } => started.push((node, stream)),
                Action::Stop { stream, reason } if node == "a" => {
                    assert!(
                        reason.contains("handed over") || reason.contains("superseded"),
                        "{reason}"
                    );
                    stopped.push(stream);
                }
                Action::Stop { .. } => {}
            }
        }
    }
    assert!(
        started.is_empty(),
        "no capture starts anywhere: {started:?}"
    );
    stopped.sort();
    assert_eq!(stopped, had, "a yields by make before break");
    assert!(!nodes[0].book.resuming());
    for stream in streams.iter() {
        assert_eq!(capturers(&nodes, &stream.name).len(), 1, "{}", stream.name);
    }
}

/// A pause stops the clocks of this node's captures: their frames could not arrive while
/// it did not run, so a pause longer than the silence deadline marks no source failed.
#[test]
fn a_pause_longer_than_the_silence_deadline_marks_no_source_failed() {
    let me = member("a");
    let streams = configured(1);
    let alive = |alive| Health {
        alive,
        restarts: 0,
        frames_since_start: true,
    };
    for (settings, fails) in [(PAUSED, false), (SETTINGS, true)] {
        let mut book = IngestBook::new(settings, 0);
        assert_eq!(
            step_alone(&mut book, &me, &streams, alive(true), 0).len(),
            1
        );
        step_alone(&mut book, &me, &streams, alive(true), 1_000);
        // Paused for 40 s; the first tick after it comes before the first frame.
        let actions = step_alone(&mut book, &me, &streams, alive(false), 41_000);
        assert_eq!(!actions.is_empty(), fails, "{actions:?}");
        if !fails {
            // The deadline runs again from the resume (ticks a second apart: no pause).
            let silent = 41_000 + CAPTURE_SILENCE_MS;
            for now_ms in (42_000..silent).step_by(1_000) {
                assert!(step_alone(&mut book, &me, &streams, alive(false), now_ms).is_empty());
            }
            let actions = step_alone(&mut book, &me, &streams, alive(false), silent);
            assert!(
                matches!(&actions[..], [Action::Stop { reason, .. }] if reason.contains("no frames")),
                "{actions:?}"
            );
        }
    }
}

/// The coordinator lets unchanged ticks pass; the first tick after a pause is never one
/// of them (it moves the captures' deadlines), and unconfirmed peers are part of the
/// input it compares.
#[test]
fn the_first_tick_after_a_pause_steps_and_unconfirmed_peers_are_compared() {
    let me = Arc::new(member("a"));
    let streams = configured(1);
    let health = Arc::new(flowing("cam0"));
    let peers: Arc<[Member]> = Arc::from([member("b")]);
    let mut book = IngestBook::new(PAUSED, 0);
    let mut tick = |now_ms, unconfirmed| {
        book.step_if_changed(&StepInput {
            me: &me,
            peers: &peers,
            cluster_size: 2,
            peers_unheard: 0,
            peers_fading: 0,
            peers_unconfirmed: unconfirmed,
            streams: &streams,
            health: &health,
            now_ms,
        })
        .is_some()
    };
    assert!(tick(0, 0));
    let mut t = 0;
    while tick(t, 0) {
        t += 250;
        assert!(t < 5_000, "the book never settles");
    }
    assert!(!tick(t + 250, 0), "unchanged: passes");
    assert!(tick(t + 250 + 10_000, 0), "after a pause: steps");
    assert!(tick(t + 10_500, 1), "a peer unconfirmed: steps");
}
