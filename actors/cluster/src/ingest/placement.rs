//! Where each cluster_ingest stream is captured: a pure function of the streams, the
//! nodes that may capture them, and `now`. Every node computes it from its own view;
//! with the same view they all agree.
//!
//! Rules (Flussonic's cluster_ingest, as docs/runtime-semantics.md states them):
//! 1. Only eligible nodes capture: alive, and under their `channel_limit` and `cpu_limit`.
//! 2. `capture_at` wins while that node is eligible — and, when the stream is captured
//!    elsewhere now, once it has been healthy for the hold time, so a returning or
//!    flapping node does not drag its streams back at once.
//! 3. A stream captured now stays with its capturer while that node is eligible and
//!    within its quota (`floor(streams / nodes)`, one more for `streams mod nodes` of
//!    them): a node leaving moves only its own streams, and a node joining takes only
//!    what the others hold above their quota.
//! 4. Other streams go by rendezvous hashing with bounded loads over the nodes healthy
//!    for the hold time: each stream ranks them by a hash of (stream, node) and takes the
//!    first one within its quota. A returning node takes streams only after the hold, so a
//!    flapping node does not pull streams back and forth — but a stream nobody captures
//!    whose only allowed nodes are on hold goes to one of them at once (there is nothing
//!    to pull back, and waiting leaves it dark). A node still carrying a stream
//!    it hands over to that stream's `capture_at` node counts it here. When every node
//!    allowed is full, the stream stays where its frames flow (a move between full nodes
//!    gains nothing), else first in the ranking.
//! 5. Streams are placed in name order, `capture_at` streams first, so the result does
//!    not depend on the order of the inputs. Every input is part of the cluster view
//!    (current captures included), so nodes with the same view agree.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// A node that may capture streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its name (the same on every node's view).
    pub name: String,
    /// Unix ms since which it has been alive without interruption.
    pub healthy_since_ms: u64,
    /// `channel_limit`: most streams it may capture.
    pub channel_limit: Option<u32>,
    /// It is over its `cpu_limit`: it keeps what it has but takes nothing new.
    pub over_cpu_limit: bool,
}

/// A stream to place. Its names borrow from the caller's view where they can (the book
/// places every configured stream at every step: copying each name was a fifth of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestStream<'a> {
    /// The stream's name.
    pub name: Cow<'a, str>,
    /// `capture_at=HOST`, already resolved to a candidate name.
    pub capture_at: Option<Cow<'a, str>>,
    /// Candidates that may not capture this stream (its source failed there, or the
    /// stream is not configured there).
    pub excluded: Vec<Cow<'a, str>>,
    /// The node capturing the stream now, if any. A move to the `capture_at` node from
    /// another capturer interrupts something, so that node must first have been healthy
    /// for the hold time; a stream nobody captures (cluster start, its capturer died)
    /// goes to it at once, and one it captures already stays.
    pub captured_by: Option<Cow<'a, str>>,
    /// The node whose capture has frames flowing now (the current capture), if any.
    /// A stream placed on its `capture_at` node while its frames still flow elsewhere
    /// counts against nobody's share until the hand-over is done: a node re-probing a
    /// camera it may not reach (a failed mark expired) then pushes none of its other
    /// streams away, and nothing moves back when the probe fails; a node returning
    /// after a crash takes its share once, not its share and then one more.
    pub flowing_at: Option<Cow<'a, str>>,
}

/// What placement has put on one node so far.
#[derive(Debug, Clone, Copy, Default)]
struct Load {
    /// Streams placed on it.
    placed: u32,
    /// Of those, the ones counted against its share of the even spread.
    share: u32,
    /// Streams whose frames still flow here while they are handed over to their
    /// `capture_at` node: counted against its share of the spread. This node still
    /// carries them, so it takes no new stream for them until the hand-over is done.
    outgoing: u32,
}

/// Why a stream is where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Its `capture_at` node.
    Preferred,
    /// Its current capturer keeps it (stickiness: nothing moves without a reason).
    Kept,
    /// Rendezvous hashing (its preferred node, if any, is down or still on hold).
    Hashed,
}

/// 64-bit FNV-1a over the bytes, then a SplitMix64 finaliser: stable across nodes,
/// builds and platforms (never `std`'s randomised hasher).
fn stable_hash(stream: &str, node: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in stream
        .bytes()
        .chain(std::iter::once(0xff))
        .chain(node.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// What placement has put on each eligible node, found by the node's address (every
/// node placement handles is one of `nodes`): a name-keyed map cost a string comparison
/// or three per lookup, several lookups per stream.
struct Loads<'n> {
    nodes: Vec<&'n Candidate>,
    load: Vec<Load>,
}

impl Loads<'_> {
    fn index(&self, node: &Candidate) -> usize {
        self.nodes
            .iter()
            .position(|n| std::ptr::eq(*n, node))
            .expect("placement handles eligible nodes only")
    }

    fn of(&self, node: &Candidate) -> &Load {
        &self.load[self.index(node)]
    }

    fn of_mut(&mut self, node: &Candidate) -> &mut Load {
        let index = self.index(node);
        &mut self.load[index]
    }

    /// The load of the eligible node called `name`, if any.
    fn named_mut(&mut self, name: &str) -> Option<&mut Load> {
        let index = self.nodes.iter().position(|n| n.name == name)?;
        Some(&mut self.load[index])
    }
}

/// Places every stream it can, by name; a stream missing from the result has no eligible
/// node. (The map form of [`place_each`].)
pub fn place(
    streams: &[IngestStream<'_>],
    nodes: &[Candidate],
    now_ms: u64,
    hold_ms: u64,
) -> BTreeMap<String, (String, Reason)> {
    streams
        .iter()
        .zip(place_each(streams, nodes, now_ms, hold_ms))
        .filter_map(|(stream, placed)| {
            placed.map(|(node, reason)| (stream.name.to_string(), (node.to_string(), reason)))
        })
        .collect()
}

/// Places every stream it can: the node (a candidate's name) and why, in the order of
/// `streams`; `None` for a stream no node may take (and for a repeated name after its
/// first).
pub fn place_each<'n>(
    streams: &[IngestStream<'_>],
    nodes: &'n [Candidate],
    now_ms: u64,
    hold_ms: u64,
) -> Vec<Option<(&'n str, Reason)>> {
    // Every candidate may keep what it captures; one over its CPU limit takes nothing new.
    let mut eligible: Vec<&Candidate> = nodes.iter().collect();
    eligible.sort_by(|a, b| a.name.cmp(&b.name));
    eligible.dedup_by(|a, b| a.name == b.name);
    let healthy = |node: &Candidate| now_ms.saturating_sub(node.healthy_since_ms) >= hold_ms;
    // Nodes that take streams from others: those healthy for the hold time (a returning
    // node waits — fail-back with hysteresis). When none is yet (a young cluster), the
    // earliest ones, within a quarter of the hold: nodes started together share at once,
    // and one restarted a little later still waits its turn.
    let fit: Vec<&Candidate> = eligible
        .iter()
        .copied()
        .filter(|n| !n.over_cpu_limit)
        .collect();
    let mut takers: Vec<&Candidate> = fit.iter().copied().filter(|n| healthy(n)).collect();
    if takers.is_empty() {
        let earliest = fit.iter().map(|n| n.healthy_since_ms).min().unwrap_or(0);
        takers = fit
            .iter()
            .copied()
            .filter(|n| n.healthy_since_ms <= earliest.saturating_add(hold_ms / 4))
            .collect();
    }
    // Per node: the streams placed on it (for `channel_limit`), and those counted
    // against its share of the spread (all but hand-overs in progress, see `flowing_at`).
    let mut load = Loads {
        nodes: eligible.clone(),
        load: vec![Load::default(); eligible.len()],
    };
    let has_room = |node: &Candidate, load: &Loads| {
        node.channel_limit
            .is_none_or(|limit| load.of(node).placed < limit)
    };
    // Streams given in strict name order (the coordinator's are) need no sort: the
    // `capture_at` ones first, each part in the order given.
    let mut ordered: Vec<(usize, &IngestStream)> = Vec::with_capacity(streams.len());
    if streams.is_sorted_by(|a, b| a.name < b.name) {
        let preferring = |(_, stream): &(usize, &IngestStream)| stream.capture_at.is_some();
        ordered.extend(streams.iter().enumerate().filter(preferring));
        ordered.extend(streams.iter().enumerate().filter(|s| !preferring(s)));
    } else {
        ordered.extend(streams.iter().enumerate());
        ordered.sort_by(|(_, a), (_, b)| {
            (a.capture_at.is_none(), &a.name).cmp(&(b.capture_at.is_none(), &b.name))
        });
        ordered.dedup_by(|(_, a), (_, b)| a.name == b.name);
    }
    // An even spread: every node holds `floor(streams / takers)`, and `streams mod
    // takers` of them one more (nine streams on three nodes are three each). Stickiness
    // (step 2) is what keeps movement minimal, not slack in the quota.
    let floor = ordered.len().checked_div(takers.len()).unwrap_or(0) as u32;
    let mut extra = ordered.len().checked_rem(takers.len()).unwrap_or(0);
    let under_quota = |node: &Candidate, load: &Loads, extra: usize| {
        let held = load.of(node).share;
        held < floor || (held == floor && extra > 0)
    };
    // Taking a homeless stream counts what a node still carries for others: a node
    // whose preferred stream is being probed elsewhere (the probe may fail) would
    // otherwise take a stream from a full node, then give it back when the probe fails.
    let has_room_for_new = |node: &Candidate, load: &Loads, extra: usize| {
        let entry = *load.of(node);
        let held = entry.share + entry.outgoing;
        held < floor || (held == floor && extra > 0)
    };
    let mut placement = vec![None; streams.len()];
    // `charged`: whether the stream counts against the node's share (see `flowing_at`).
    let mut assign = |index: usize,
                      node: &'n Candidate,
                      charged: bool,
                      reason: Reason,
                      load: &mut Loads,
                      extra: &mut usize| {
        let held = load.of_mut(node);
        held.placed += 1;
        if charged {
            if held.share >= floor {
                *extra = extra.saturating_sub(1);
            }
            held.share += 1;
        }
        placement[index] = Some((node.name.as_str(), reason));
    };
    let allowed = |stream: &IngestStream, node: &Candidate| {
        !stream
            .excluded
            .iter()
            .any(|excluded| *excluded == node.name)
    };
    let mut rest = Vec::new();
    // 1. capture_at: its node wins (after the hold when that takes it from another).
    for (index, stream) in ordered {
        let preferred = stream.capture_at.as_deref().and_then(|name| {
            fit.iter().find(|n| {
                n.name == name
                    && allowed(stream, n)
                    && (stream.captured_by.as_deref().is_none_or(|by| by == n.name) || healthy(n))
                    && has_room(n, &load)
            })
        });
        match preferred {
            Some(node) => {
                let handing_over = stream
                    .flowing_at
                    .as_deref()
                    .is_some_and(|by| by != node.name);
                if let Some(carrier) = stream
                    .flowing_at
                    .as_deref()
                    .filter(|_| handing_over)
                    .and_then(|by| load.named_mut(by))
                {
                    carrier.outgoing += 1;
                }
                assign(
                    index,
                    node,
                    !handing_over,
                    Reason::Preferred,
                    &mut load,
                    &mut extra,
                )
            }
            None => rest.push((index, stream)),
        }
    }
    // 2. A stream stays with its current capturer while that node may keep it and is
    //    under the cap: a membership change moves only what it must.
    let mut homeless = Vec::new();
    for (index, stream) in rest {
        let keeper = stream.captured_by.as_deref().and_then(|by| {
            eligible.iter().find(|n| {
                n.name == by
                    && allowed(stream, n)
                    && has_room(n, &load)
                    && under_quota(n, &load, extra)
            })
        });
        match keeper {
            Some(node) => assign(index, node, true, Reason::Kept, &mut load, &mut extra),
            None => homeless.push((index, stream)),
        }
    }
    // 3. The others by rendezvous hashing over the takers, under the cap when possible.
    for (index, stream) in homeless {
        let mut ranked: Vec<&Candidate> = takers
            .iter()
            .copied()
            .filter(|n| allowed(stream, n) && has_room(n, &load))
            .collect();
        // A stream nobody captures whose only allowed nodes are still on hold goes to
        // one of them at once: the hold keeps a returning node from pulling streams
        // back, and here there is nothing to pull (as for `capture_at`, step 1).
        if ranked.is_empty() && stream.captured_by.is_none() {
            ranked = fit
                .iter()
                .copied()
                .filter(|n| allowed(stream, n) && has_room(n, &load))
                .collect();
        }
        ranked.sort_by_key(|n| std::cmp::Reverse(stable_hash(&stream.name, &n.name)));
        // Every node allowed is full: moving the stream between full nodes gains
        // nothing, so it stays where its frames flow, else with its capturer.
        let stays = |at: Option<&str>| ranked.iter().find(|n| Some(n.name.as_str()) == at);
        let Some(node) = ranked
            .iter()
            .find(|n| has_room_for_new(n, &load, extra))
            .or_else(|| stays(stream.flowing_at.as_deref()))
            .or_else(|| stays(stream.captured_by.as_deref()))
            .or_else(|| ranked.first())
        else {
            continue;
        };
        assign(index, node, true, Reason::Hashed, &mut load, &mut extra);
    }
    placement
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node(name: &str) -> Candidate {
        Candidate {
            name: name.into(),
            healthy_since_ms: 0,
            channel_limit: None,
            over_cpu_limit: false,
        }
    }

    fn streams(count: usize) -> Vec<IngestStream<'static>> {
        (0..count)
            .map(|i| IngestStream {
                name: format!("cam{i:03}").into(),
                capture_at: None,
                excluded: Vec::new(),
                captured_by: Some("a".into()),
                flowing_at: None,
            })
            .collect()
    }

    /// The streams as captured according to `placement`.
    fn captured(
        count: usize,
        placement: &BTreeMap<String, (String, Reason)>,
    ) -> Vec<IngestStream<'static>> {
        streams(count)
            .into_iter()
            .map(|s| IngestStream {
                captured_by: placement
                    .get(s.name.as_ref())
                    .map(|(n, _)| n.clone().into()),
                ..s
            })
            .collect()
    }

    fn loads(placement: &BTreeMap<String, (String, Reason)>) -> BTreeMap<String, usize> {
        let mut loads = BTreeMap::new();
        for (node, _) in placement.values() {
            *loads.entry(node.clone()).or_default() += 1;
        }
        loads
    }

    #[test]
    fn a_stream_only_a_returning_node_may_take_goes_there_at_once() {
        let mut returning = node("b");
        returning.healthy_since_ms = 9_000;
        let nodes = vec![node("a"), returning];
        let orphan = IngestStream {
            name: "cam".into(),
            capture_at: None,
            // Its camera failed on a.
            excluded: vec!["a".into()],
            captured_by: None,
            flowing_at: None,
        };
        let placement = place(std::slice::from_ref(&orphan), &nodes, 10_000, 5_000);
        assert_eq!(placement["cam"], ("b".to_string(), Reason::Hashed));
        // Captured elsewhere, it is not pulled to the returning node before its hold.
        let captured = IngestStream {
            excluded: Vec::new(),
            captured_by: Some("a".into()),
            ..orphan
        };
        let placement = place(&[captured], &nodes, 10_000, 5_000);
        assert_eq!(placement["cam"], ("a".to_string(), Reason::Kept));
    }

    #[test]
    fn streams_spread_evenly() {
        let nodes: Vec<Candidate> = ["a", "b", "c", "d"].iter().map(|n| node(n)).collect();
        let placement = place(&streams(100), &nodes, 10_000, 5_000);
        assert_eq!(placement.len(), 100);
        for (node, count) in loads(&placement) {
            assert_eq!(count, 25, "{node} has {count}");
        }
    }

    #[test]
    fn a_few_streams_spread_exactly() {
        let nodes: Vec<Candidate> = ["a", "b", "c"].iter().map(|n| node(n)).collect();
        let placement = place(&streams(9), &nodes, 0, 0);
        assert!(loads(&placement).values().all(|count| *count == 3));
    }

    #[test]
    fn capture_at_wins_once_its_node_has_been_healthy_for_the_hold_time() {
        let mut nodes: Vec<Candidate> = ["a", "b", "c"].iter().map(|n| node(n)).collect();
        let stream = vec![IngestStream {
            name: "cam".into(),
            capture_at: Some("c".into()),
            excluded: Vec::new(),
            captured_by: Some("a".into()),
            flowing_at: None,
        }];
        assert_eq!(
            place(&stream, &nodes, 10_000, 5_000)["cam"],
            ("c".to_string(), Reason::Preferred)
        );
        // c just came back: the stream stays hashed until c has been healthy for 5 s.
        nodes[2].healthy_since_ms = 8_000;
        assert_ne!(
            place(&stream, &nodes, 10_000, 5_000)["cam"].1,
            Reason::Preferred
        );
        assert_eq!(
            place(&stream, &nodes, 13_000, 5_000)["cam"],
            ("c".to_string(), Reason::Preferred)
        );
        // Nobody captures it (cluster start, its capturer died): no reason to wait.
        let uncaptured = vec![IngestStream {
            captured_by: None,
            ..stream[0].clone()
        }];
        assert_eq!(
            place(&uncaptured, &nodes, 10_000, 5_000)["cam"],
            ("c".to_string(), Reason::Preferred)
        );
    }

    #[test]
    fn an_excluded_node_never_gets_the_stream_even_when_preferred() {
        let nodes: Vec<Candidate> = ["a", "b", "c"].iter().map(|n| node(n)).collect();
        let stream = vec![IngestStream {
            name: "cam".into(),
            capture_at: Some("c".into()),
            excluded: vec!["c".into(), "a".into()],
            captured_by: Some("a".into()),
            flowing_at: None,
        }];
        assert_eq!(
            place(&stream, &nodes, 10_000, 0)["cam"],
            ("b".to_string(), Reason::Hashed)
        );
    }

    #[test]
    fn a_preferred_node_without_frames_yet_moves_none_of_its_other_streams() {
        let nodes: Vec<Candidate> = ["a", "b", "c"].iter().map(|n| node(n)).collect();
        // Six streams on three nodes: two each. `p` prefers c, which probes it (a failed
        // mark expired) while a still has the frames.
        let mut list = vec![
            held("x1", "c"),
            held("x2", "c"),
            held("y1", "a"),
            held("z1", "b"),
            held("z2", "b"),
        ];
        list.push(IngestStream {
            capture_at: Some("c".into()),
            ..held("p", "a")
        });
        let probing = place(&list, &nodes, 10_000, 0);
        assert_eq!(probing["p"], ("c".to_string(), Reason::Preferred));
        for kept in ["x1", "x2"] {
            assert_eq!(probing[kept], ("c".to_string(), Reason::Kept), "{kept}");
        }
        // Once c has the frames, the stream counts against c, and c's share is full: one
        // of its other streams makes room.
        let last = list.len() - 1;
        list[last].captured_by = Some("c".into());
        list[last].flowing_at = Some("c".into());
        let handed_over = place(&list, &nodes, 10_000, 0);
        assert_eq!(handed_over["p"].0, "c");
        let on_c = handed_over.values().filter(|(n, _)| n == "c").count();
        assert_eq!(on_c, 2);
        // A node returning empty-handed takes its share once: the preferred stream it
        // will get does not make it take one more hashed stream in the meantime.
        let returning: Vec<IngestStream> = vec![
            held("x1", "a"),
            held("x2", "a"),
            held("y1", "a"),
            held("z1", "b"),
            held("z2", "b"),
            IngestStream {
                capture_at: Some("c".into()),
                ..held("p", "b")
            },
        ];
        let back = place(&returning, &nodes, 10_000, 0);
        let to_c = back.values().filter(|(n, _)| n == "c").count();
        assert_eq!(to_c, 2, "p and one hashed stream: {back:?}");
    }

    /// A stream name for which `first` outranks `second` in rendezvous hashing.
    fn name_ranking(first: &str, second: &str) -> String {
        (0..)
            .map(|i| format!("x{i}"))
            .find(|name| stable_hash(name, first) > stable_hash(name, second))
            .expect("some name ranks them so")
    }

    fn held(name: &str, by: &str) -> IngestStream<'static> {
        IngestStream {
            name: name.to_string().into(),
            capture_at: None,
            excluded: Vec::new(),
            captured_by: Some(by.to_string().into()),
            flowing_at: Some(by.to_string().into()),
        }
    }

    #[test]
    fn with_every_node_full_a_stream_stays_where_its_frames_flow() {
        // (Simulator seed 103.) Six streams on three nodes, two each; `x` is excluded on b,
        // and on a while a's failed mark lasts, so c carries it over its share. When a's
        // mark expires, a is allowed again but as full as c: moving `x` there gains
        // nothing, and a probe from a would push one of its own streams away.
        let nodes: Vec<Candidate> = ["a", "b", "c"].iter().map(|n| node(n)).collect();
        let x = name_ranking("a", "c");
        let mut list = vec![
            held("a1", "a"),
            held("a2", "a"),
            held("b1", "b"),
            held("c1", "c"),
            held("c2", "c"),
            IngestStream {
                excluded: vec!["a".into(), "b".into()],
                ..held(&x, "c")
            },
        ];
        assert_eq!(place(&list, &nodes, 10_000, 0)[&x].0, "c");
        list[5].excluded = vec!["b".into()];
        let after = place(&list, &nodes, 10_000, 0);
        assert_eq!(after[&x].0, "c", "{after:?}");
        for (stream, by) in [
            ("a1", "a"),
            ("a2", "a"),
            ("b1", "b"),
            ("c1", "c"),
            ("c2", "c"),
        ] {
            assert_eq!(after[stream].0, by, "{stream}");
        }
    }

    #[test]
    fn a_node_handing_a_stream_over_takes_no_new_one_until_it_is_done() {
        // (Simulator seed 114.) `p` prefers a, which was failed for it, so c captures it;
        // `h` is excluded on a and sits on b over its share (everyone allowed was full).
        // When a's mark expires, a probes `p`: until a has the frames, c still carries
        // `p`, so c has no room for `h` (taking it would move `h`, then move it back when
        // the probe fails).
        let nodes: Vec<Candidate> = ["a", "b", "c"].iter().map(|n| node(n)).collect();
        let h = name_ranking("b", "c");
        let preferred = |excluded: Vec<String>| IngestStream {
            capture_at: Some("a".into()),
            excluded: excluded.into_iter().map(Cow::Owned).collect(),
            ..held("p", "c")
        };
        let mut list = vec![
            held("a1", "a"),
            held("b1", "b"),
            held("b2", "b"),
            held("c1", "c"),
            preferred(vec!["a".into()]),
            IngestStream {
                excluded: vec!["a".into()],
                ..held(&h, "b")
            },
        ];
        let at_rest = place(&list, &nodes, 10_000, 0);
        assert_eq!(at_rest[&h].0, "b");
        assert_eq!(at_rest["p"].0, "c");
        list[4] = preferred(Vec::new());
        let probing = place(&list, &nodes, 10_000, 0);
        assert_eq!(probing["p"], ("a".to_string(), Reason::Preferred));
        assert_eq!(probing[&h].0, "b", "{probing:?}");
        assert_eq!(probing["c1"].0, "c");
    }

    #[test]
    fn limits_are_honoured() {
        let mut nodes: Vec<Candidate> = ["a", "b"].iter().map(|n| node(n)).collect();
        nodes[0].channel_limit = Some(3);
        nodes[1].over_cpu_limit = true;
        let placement = place(&streams(5), &nodes, 0, 0);
        assert_eq!(placement.len(), 3, "a takes 3, b is over its CPU limit");
        assert!(placement.values().all(|(n, _)| n == "a"));
    }

    #[test]
    fn a_node_over_its_cpu_limit_keeps_what_it_has_and_takes_nothing_new() {
        let mut nodes: Vec<Candidate> = ["a", "b"].iter().map(|n| node(n)).collect();
        nodes[1].over_cpu_limit = true;
        let mut list = streams(4);
        list[0].captured_by = Some("b".into());
        let placement = place(&list, &nodes, 0, 0);
        assert_eq!(
            placement[list[0].name.as_ref()],
            ("b".to_string(), Reason::Kept)
        );
        assert!(
            list[1..]
                .iter()
                .all(|s| placement[s.name.as_ref()].0 == "a")
        );
    }

    proptest! {
        #[test]
        fn placement_ignores_input_order(seed in any::<u64>(), count in 1usize..60) {
            let nodes: Vec<Candidate> = ["a", "b", "c", "d", "e"].iter().map(|n| node(n)).collect();
            let list = streams(count);
            let mut shuffled_nodes = nodes.clone();
            let mut shuffled = list.clone();
            shuffled_nodes.rotate_left((seed % 5) as usize);
            shuffled.rotate_left((seed as usize) % count);
            shuffled.reverse();
            prop_assert_eq!(place(&list, &nodes, 0, 0), place(&shuffled, &shuffled_nodes, 0, 0));
        }

        #[test]
        fn a_node_leaving_moves_only_its_own_streams(count in 1usize..200, gone in 0usize..5) {
            let names = ["a", "b", "c", "d", "e"];
            let nodes: Vec<Candidate> = names.iter().map(|n| node(n)).collect();
            let before = place(&streams(count), &nodes, 0, 0);
            let remaining: Vec<Candidate> = nodes.iter().filter(|n| n.name != names[gone]).cloned().collect();
            let after = place(&captured(count, &before), &remaining, 0, 0);
            prop_assert_eq!(after.len(), count, "every stream finds a node");
            let moved_others = before
                .iter()
                .filter(|(stream, (node, _))| node != names[gone] && after[*stream].0 != *node)
                .count();
            prop_assert_eq!(moved_others, 0);
        }

        #[test]
        fn a_node_joining_takes_only_its_share(count in 1usize..200, newcomer in 0usize..5) {
            let names = ["a", "b", "c", "d", "e"];
            let all: Vec<Candidate> = names.iter().map(|n| node(n)).collect();
            let without: Vec<Candidate> = all.iter().filter(|n| n.name != names[newcomer]).cloned().collect();
            let before = place(&streams(count), &without, 0, 0);
            let after = place(&captured(count, &before), &all, 0, 0);
            let moved = before.iter().filter(|(s, (n, _))| after[*s].0 != *n).count();
            // Every move goes to the newcomer, and the spread is even again.
            let after_loads = loads(&after);
            let taken = after_loads.get(names[newcomer]).copied().unwrap_or(0);
            prop_assert_eq!(moved, taken);
            let (least, most) = (
                after_loads.values().min().copied().unwrap_or(0),
                after_loads.values().max().copied().unwrap_or(0),
            );
            let least = if after_loads.len() < 5 { 0 } else { least };
            prop_assert!(most - least <= 1, "{:?}", after_loads);
        }

        #[test]
        fn no_node_goes_far_above_the_average(count in 1usize..300, nodes_count in 1usize..8) {
            let nodes: Vec<Candidate> = (0..nodes_count).map(|i| node(&format!("n{i}"))).collect();
            let placement = place(&streams(count), &nodes, 0, 0);
            let bound = count.div_ceil(nodes_count);
            for (_, load) in loads(&placement) {
                prop_assert!(load <= bound.max(1), "{load} > {bound}");
            }
        }
    }
}
