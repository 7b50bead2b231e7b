//! One step of the book, in phases: what the cluster looks like (settle, restraint,
//! resume), what the peers advertise (epochs, marks taken while a source was down for
//! everyone), rule 3 on this node's captures, placement, then each stream's decision
//! (rules 1, 2 and fencing) and its row of the ownership table. Each phase reads what
//! the ones before it left; the module header of `book` states the rules.

use std::borrow::Cow;

use super::adverts::{OwnByPosition, PeerAdverts, StreamPositions};
use super::{
    Action, Advertised, BookSettings, CAPTURE_SILENCE_MS, CAPTURE_START_DEADLINE_MS, Capture,
    Configured, Counting, FAILED_HOLD_MS, FAILED_WHILE_DOWN_HOLD_MS, FAILURE_WINDOW_MS,
    FIRST_FRAME_GRACE_MS, HANDOVER_DEADLINE_MS, IngestBook, MAX_CAPTURE_RESTARTS, Member,
    OwnerReason, PeerTops, Row, StepInput, advertised_as, resolve_capture_at,
};
use crate::ingest::placement::{Candidate, IngestStream, Reason, place_each};
use crate::ingest::quiet::Wake;
use crate::mesh::view::IngestRole;

/// What placement decided for every configured stream, with what it read on the way
/// that the decisions after it read again.
struct Placed<'a> {
    /// By configured stream: (owner, why), or `None` when no node may capture it.
    placement: Vec<Option<(&'a str, Reason)>>,
    /// By configured stream: whether its capture here had frames flowing (`None`: no
    /// capture here before placement).
    flowing_here: Vec<Option<bool>>,
    /// By configured stream: its highest captures at peers.
    peer_tops: Vec<PeerTops<'a>>,
}

/// What one stream's decision reads.
struct StreamCase<'a, 'p> {
    index: usize,
    stream: &'a Configured,
    owner: Option<String>,
    /// What the owner, when it is a peer, advertises about the stream.
    owner_advert: Option<Advertised>,
    placed: Option<(&'p str, Reason)>,
    tops: PeerTops<'a>,
    /// This node captures it before the decision.
    held: bool,
}

impl IngestBook {
    /// [`IngestBook::step`], noting in `wake` every moment a time rule compares `now` with.
    pub(super) fn step_noting(
        &mut self,
        input: &StepInput<'_>,
        wake: &mut Wake,
    ) -> (Vec<Action>, Vec<Row>) {
        let settings = self.settings();
        let heard_majority = self.observe_cluster(input, &settings, wake);
        let positions = StreamPositions::of(input);
        self.take_in_epochs(input);
        let adverts = PeerAdverts::gather(input, &positions);
        self.end_marks_taken_while_down(&adverts, &positions);
        let mut actions = self.judge_captures(input, &adverts, &positions, wake);
        let own = OwnByPosition::of(self, input);
        let mut members: Vec<&Member> = input.peers.iter().collect();
        members.push(&**input.me);
        let candidates = self.candidates(&members, input.now_ms, &settings, wake);
        let placed_streams = placement_streams(input, &settings, &members, &adverts, &own);
        let placed = Placed {
            placement: place_each(
                &placed_streams.streams,
                &candidates,
                input.now_ms,
                settings.failback_hold_ms,
            ),
            flowing_here: placed_streams.flowing_here,
            peer_tops: placed_streams.peer_tops,
        };
        let mut rows = Vec::with_capacity(input.streams.len());
        for (index, stream) in input.streams.iter().enumerate() {
            let case = self.case_of(input, &adverts, &own, &placed, index, stream);
            rows.push(self.decide(
                input,
                &settings,
                &members,
                heard_majority,
                &own,
                &placed,
                case,
                &mut actions,
                wake,
            ));
        }
        self.owners
            .retain(|stream, _| positions.get(stream).is_some());
        self.stop_unconfigured(&positions, &mut actions);
        (actions, rows)
    }

    /// The settle, minority restraint and rule 5 from the cluster's counts; whether this
    /// node hears a majority.
    fn observe_cluster(
        &mut self,
        input: &StepInput<'_>,
        settings: &BookSettings,
        wake: &mut Wake,
    ) -> bool {
        let now_ms = input.now_ms;
        self.failed_until_ms.retain(|_, until| {
            wake.at(*until);
            *until > now_ms
        });
        if !self.settled && input.peers_unheard != 0 {
            wake.at(self.started_ms.saturating_add(settings.settle_ms));
        }
        self.settled = self.settled
            || input.peers_unheard == 0
            || now_ms.saturating_sub(self.started_ms) >= settings.settle_ms;
        // Minority restraint counts only the peers heard recently: cut off from the rest,
        // a node sees its peers go stale one by one, up to a fetch interval apart, and
        // must not take over while it still counts the last ones.
        let heard = input.peers.len().saturating_sub(input.peers_fading) + 1;
        self.restrained = settings.minority_restraint && heard * 2 < input.cluster_size;
        // Rule 5: after a pause, nothing is taken until every peer is heard again or gone.
        self.resuming = input.peers_unconfirmed != 0;
        heard * 2 > input.cluster_size
    }

    /// Epochs only grow: every epoch a peer advertises, for any stream, is taken in.
    fn take_in_epochs(&mut self, input: &StepInput<'_>) {
        for peer in input.peers.iter() {
            for (name, advertised) in peer.streams.iter() {
                match self.epochs.get_mut(name) {
                    Some(known) => *known = (*known).max(advertised.epoch),
                    None => {
                        self.epochs.insert(name.clone(), advertised.epoch);
                    }
                }
            }
        }
    }

    /// A mark taken while the source was down for everyone ends once another node has
    /// frames again: this node is a candidate again (its capture_at preference comes
    /// back). A source really unreachable from here is marked again after one probe,
    /// now with frames elsewhere, for the full hold.
    fn end_marks_taken_while_down(
        &mut self,
        adverts: &PeerAdverts,
        positions: &StreamPositions<'_>,
    ) {
        let back: Vec<String> = self
            .failed_while_down
            .iter()
            .filter(|stream| {
                positions
                    .get(stream)
                    .is_some_and(|at| adverts.flowing_at(at))
            })
            .cloned()
            .collect();
        for stream in back {
            self.failed_until_ms.remove(&stream);
            self.failed_while_down.remove(&stream);
        }
        self.failed_while_down
            .retain(|stream| self.failed_until_ms.contains_key(stream));
    }

    /// Rule 3: captures whose source keeps failing here stop, and the stream is marked
    /// failed here. Returns the stops.
    fn judge_captures(
        &mut self,
        input: &StepInput<'_>,
        adverts: &PeerAdverts,
        positions: &StreamPositions<'_>,
        wake: &mut Wake,
    ) -> Vec<Action> {
        let now_ms = input.now_ms;
        let mut actions = Vec::new();
        for (name, capture) in &mut self.captures {
            let health = input.health.get(name).copied().unwrap_or_default();
            let Some(why) = source_failure(capture, health, now_ms, wake) else {
                continue;
            };
            let flowing_elsewhere = positions.get(name).is_some_and(|at| adverts.flowing_at(at));
            let hold_ms = if flowing_elsewhere {
                self.failed_while_down.remove(name);
                FAILED_HOLD_MS
            } else {
                self.failed_while_down.insert(name.clone());
                FAILED_WHILE_DOWN_HOLD_MS
            };
            self.failed_until_ms.insert(name.clone(), now_ms + hold_ms);
            actions.push(Action::Stop {
                stream: name.clone(),
                reason: why,
            });
        }
        for action in &actions {
            if let Action::Stop { stream, .. } = action {
                self.captures.remove(stream);
            }
        }
        actions
    }

    /// Placement's candidates: this node and the alive peers, each with its fail-back
    /// hold (longer for a flapping node) folded into when it counts as healthy from.
    fn candidates(
        &self,
        members: &[&Member],
        now_ms: u64,
        settings: &BookSettings,
        wake: &mut Wake,
    ) -> Vec<Candidate> {
        members
            .iter()
            .map(|member| {
                let hold = self.hold_for(member, now_ms, wake);
                // Shifting the start by the extra hold makes a flapping node wait longer.
                let healthy_since_ms = member
                    .alive_since_ms
                    .saturating_add(hold - settings.failback_hold_ms);
                // Placement's one time rule: healthy for the hold.
                wake.at(healthy_since_ms.saturating_add(settings.failback_hold_ms));
                Candidate {
                    name: member.name.clone(),
                    healthy_since_ms,
                    channel_limit: member.channel_limit,
                    over_cpu_limit: member.over_cpu_limit,
                }
            })
            .collect()
    }

    /// What one configured stream's decision reads, once placement has run; the owner
    /// and since when are remembered for the table.
    fn case_of<'a, 'p>(
        &mut self,
        input: &StepInput<'a>,
        adverts: &PeerAdverts,
        own: &OwnByPosition,
        placed: &Placed<'p>,
        index: usize,
        stream: &'a Configured,
    ) -> StreamCase<'a, 'p>
    where
        'p: 'a,
    {
        let owner = placed.placement[index].map(|(node, _)| node.to_string());
        let owner_advert = owner.as_deref().and_then(|owner| {
            input
                .peers
                .iter()
                .zip(adverts.of(index))
                .find(|(peer, _)| peer.name == owner)
                .and_then(|(_, advertised)| *advertised)
        });
        StreamCase {
            index,
            stream,
            owner,
            owner_advert,
            placed: placed.placement[index],
            tops: placed.peer_tops[index],
            held: own.capture[index].is_some(),
        }
    }

    /// Since when `stream`'s owner has been `owner` (as this node saw it).
    fn owner_since(&mut self, stream: &str, owner: &Option<String>, now_ms: u64) -> u64 {
        match self.owners.get_mut(stream) {
            Some((previous, since)) if previous == owner => *since,
            Some(slot) => {
                *slot = (owner.clone(), now_ms);
                now_ms
            }
            None => {
                self.owners
                    .insert(stream.to_string(), (owner.clone(), now_ms));
                now_ms
            }
        }
    }

    /// One stream: whether this node takes it (rule 1), keeps it (and fences a capture
    /// above it), or hands it over (rule 2); then its row of the table.
    #[allow(clippy::too_many_arguments)]
    #[cfg_attr(not(feature = "sabotage"), allow(unused_variables))]
    fn decide(
        &mut self,
        input: &StepInput<'_>,
        settings: &BookSettings,
        members: &[&Member],
        heard_majority: bool,
        own: &OwnByPosition,
        placed: &Placed<'_>,
        case: StreamCase<'_, '_>,
        actions: &mut Vec<Action>,
        wake: &mut Wake,
    ) -> Row {
        let (index, name) = (case.index, &case.stream.name);
        let since = self.owner_since(name, &case.owner, input.now_ms);
        let me = input.me.name.as_str();
        let second_choice = || {
            members
                .iter()
                .map(|member| member.name.as_str())
                .filter(|name| Some(*name) != case.owner.as_deref())
                .min()
        };
        let owner_is_me = case.owner.as_deref() == Some(me)
            || (crate::ingest::sabotaged!(settings.sabotage, DoubleCapture)
                && case.owner.is_some()
                && second_choice() == Some(me));
        // A node still settling after a start may already take a stream that prefers
        // it and that no peer it hears captures, once it hears a majority: its peers
        // place such a stream on it at once, so waiting would leave it uncaptured (and
        // a node restarting faster than the settle time would hold it hostage).
        let unclaimed_preference =
            matches!(case.placed, Some((_, Reason::Preferred))) && case.tops.any.is_none();
        let may_take = (self.settled || (heard_majority && unclaimed_preference)) && !self.resuming;
        let capture_epoch = match (case.held, owner_is_me) {
            (false, true) if may_take && !self.restrained => {
                Some(self.start_capture(name, own.epoch[index], input, actions))
            }
            (false, _) => None,
            (true, true) => self.keep_owned(name, &case.tops, me),
            (true, false) if case.owner.is_none() => self.keep_unowned(name),
            (true, false) => self.hand_over(&case, me, input.now_ms, actions, wake),
        };
        self.row(input, own, placed, &case, capture_epoch, since)
    }

    /// Rule 1: a new capture of `name` here, above every epoch seen (`seen_epoch`).
    fn start_capture(
        &mut self,
        name: &str,
        seen_epoch: u64,
        input: &StepInput<'_>,
        actions: &mut Vec<Action>,
    ) -> u64 {
        let epoch = seen_epoch.saturating_add(1);
        self.epochs.insert(name.to_string(), epoch);
        self.captures.insert(
            name.to_string(),
            Capture {
                epoch,
                started_ms: input.now_ms,
                ever_alive: false,
                last_alive_ms: 0,
                restarts_seen: input.health.get(name).map(|h| h.restarts),
                restart_times_ms: Vec::new(),
                handover: None,
            },
        );
        actions.push(Action::Start {
            stream: name.to_string(),
            epoch,
        });
        epoch
    }

    /// This node owns `name` and captures it. Fencing: a capture elsewhere above ours (a
    /// partition healed) must not stay the current one while we own the stream: we take
    /// a new epoch. Not while resuming (rule 5): a capture above ours may be the one
    /// that took the stream over while this node was paused.
    fn keep_owned(&mut self, name: &str, tops: &PeerTops<'_>, me: &str) -> Option<u64> {
        let capture = self.captures.get_mut(name)?;
        capture.handover = None;
        let ours = (capture.epoch, me);
        let above = tops.flowing.filter(|theirs| *theirs > ours);
        if let Some(higher) = above.filter(|_| !self.resuming) {
            capture.epoch = higher.0.saturating_add(1);
            self.epochs.insert(name.to_string(), capture.epoch);
        }
        Some(capture.epoch)
    }

    /// Nobody else may take `name`: this node keeps its capture.
    fn keep_unowned(&mut self, name: &str) -> Option<u64> {
        let capture = self.captures.get_mut(name)?;
        capture.handover = None;
        Some(capture.epoch)
    }

    /// Rule 2: make before break. Captures are ordered by (epoch, node): ours ends once
    /// a capture above it has frames flowing, whoever holds it (views may disagree on the
    /// owner for a while; waiting for "our" owner could keep two captures running until
    /// they agree). The highest flowing capture never ends here, so the stream is never
    /// left without one. Past the hand-over deadline from the owner's start, ours ends
    /// too.
    fn hand_over(
        &mut self,
        case: &StreamCase<'_, '_>,
        me: &str,
        now_ms: u64,
        actions: &mut Vec<Action>,
        wake: &mut Wake,
    ) -> Option<u64> {
        let name = &case.stream.name;
        let capture = self.captures.get_mut(name)?;
        let owner = case.owner.as_deref().unwrap_or_default();
        let ours = (capture.epoch, me);
        let above = case.tops.flowing.filter(|theirs| *theirs > ours);
        let owner_started = case
            .owner_advert
            .is_some_and(|advertised| advertised.role == IngestRole::Capturing);
        let since = match &capture.handover {
            Some((to, since)) if owner_started && to == owner => Some(*since),
            _ if owner_started => {
                capture.handover = Some((owner.to_string(), now_ms));
                Some(now_ms)
            }
            _ => {
                capture.handover = None;
                None
            }
        };
        if let Some(since) = since {
            wake.at(since.saturating_add(HANDOVER_DEADLINE_MS));
        }
        let reason = match above {
            Some((_, by)) if by == owner => format!("handed over to {owner}"),
            Some((_, by)) => format!("superseded by {by}'s capture"),
            None if since
                .is_some_and(|since| now_ms.saturating_sub(since) >= HANDOVER_DEADLINE_MS) =>
            {
                format!(
                    "hand-over deadline: {owner} started it but had no frames within {} s",
                    HANDOVER_DEADLINE_MS / 1000
                )
            }
            None => return Some(capture.epoch),
        };
        self.captures.remove(name);
        actions.push(Action::Stop {
            stream: name.clone(),
            reason,
        });
        None
    }

    /// The stream's row of the ownership table once its decision is made.
    fn row(
        &self,
        input: &StepInput<'_>,
        own: &OwnByPosition,
        placed: &Placed<'_>,
        case: &StreamCase<'_, '_>,
        capture_epoch: Option<u64>,
        since_ms: u64,
    ) -> Row {
        let index = case.index;
        let name = &case.stream.name;
        let (local, local_epoch) =
            advertised_as(capture_epoch, own.failed[index], own.epoch[index]);
        // Frames of a capture placement saw were looked up then; a capture started just
        // now is looked up here.
        let mine = capture_epoch.map(|epoch| {
            let flowing = placed.flowing_here[index]
                .unwrap_or_else(|| input.health.get(name).is_some_and(|health| health.alive));
            (epoch, flowing)
        });
        let current = case.tops.with_here(input, mine, Counting::Flowing);
        Row {
            stream: name.clone(),
            owner: case.owner.clone(),
            capture_at: case.stream.capture_at.clone(),
            reason: match case.placed {
                Some((_, Reason::Preferred)) => OwnerReason::Preferred,
                Some((_, Reason::Kept)) => OwnerReason::Kept,
                Some((_, Reason::Hashed)) => OwnerReason::Hashed,
                None => OwnerReason::NoCandidate,
            },
            since_ms,
            capturer: current.map(|(_, node)| node.to_string()),
            epoch: current.map_or(0, |(epoch, _)| epoch),
            local,
            local_epoch,
        }
    }

    /// Streams no longer configured here stop.
    fn stop_unconfigured(&mut self, positions: &StreamPositions<'_>, actions: &mut Vec<Action>) {
        let unconfigured: Vec<String> = self
            .captures
            .keys()
            .filter(|name| positions.get(name).is_none())
            .cloned()
            .collect();
        for name in unconfigured {
            self.captures.remove(&name);
            actions.push(Action::Stop {
                stream: name,
                reason: "no longer configured here".into(),
            });
        }
    }
}

/// Placement's view of every configured stream, with what the decisions read again.
struct PlacementStreams<'a> {
    streams: Vec<IngestStream<'a>>,
    flowing_here: Vec<Option<bool>>,
    peer_tops: Vec<PeerTops<'a>>,
}

/// Each configured stream as placement takes it: who may not capture it, who holds it,
/// whose frames flow, its resolved `capture_at`.
#[cfg_attr(not(feature = "sabotage"), allow(unused_variables))]
fn placement_streams<'a>(
    input: &StepInput<'a>,
    settings: &BookSettings,
    members: &[&'a Member],
    adverts: &PeerAdverts,
    own: &OwnByPosition,
) -> PlacementStreams<'a> {
    // Every name `capture_at` may use for a member: its identity and its aliases.
    let member_names: Vec<(&str, Vec<&str>)> = members
        .iter()
        .map(|member| {
            let names = std::iter::once(&member.name)
                .chain(&member.aliases)
                .map(String::as_str)
                .collect();
            (member.name.as_str(), names)
        })
        .collect();
    // Resolved once per distinct `capture_at` (a few nodes' names, written on many
    // streams), not once per stream.
    let mut resolved: Vec<(&str, Option<&str>)> = Vec::new();
    let mut placed = PlacementStreams {
        streams: Vec::with_capacity(input.streams.len()),
        flowing_here: Vec::with_capacity(input.streams.len()),
        peer_tops: Vec::with_capacity(input.streams.len()),
    };
    for (index, stream) in input.streams.iter().enumerate() {
        let mut excluded: Vec<Cow<'_, str>> = input
            .peers
            .iter()
            .zip(adverts.of(index))
            .filter(|(_, advertised)| {
                advertised.is_none_or(|advertised| {
                    matches!(advertised.role, IngestRole::None | IngestRole::Failed)
                })
            })
            .map(|(peer, _)| Cow::Borrowed(peer.name.as_str()))
            .collect();
        if own.failed[index] {
            excluded.push(Cow::Borrowed(input.me.name.as_str()));
        }
        let mine = own.capture[index];
        let tops = PeerTops::of(input, adverts.of(index));
        // Who holds the stream, for placement's stickiness; whose capture has frames
        // now, for placement's shares.
        let captured_by = tops.with_here(input, mine, Counting::Any);
        let flowing_at = tops.with_here(input, mine, Counting::Flowing);
        let no_failback =
            crate::ingest::sabotaged!(settings.sabotage, NoFailback) && captured_by.is_some();
        placed.flowing_here.push(mine.map(|(_, flowing)| flowing));
        placed.peer_tops.push(tops);
        placed.streams.push(IngestStream {
            name: Cow::Borrowed(stream.name.as_str()),
            // An unresolvable capture_at (that node is down) is simply no preference.
            capture_at: stream
                .capture_at
                .as_deref()
                .and_then(|at| resolve_capture_at(&mut resolved, &member_names, at))
                .map(Cow::Borrowed)
                .filter(|_| !no_failback),
            excluded,
            captured_by: captured_by.map(|(_, node)| Cow::Borrowed(node)),
            flowing_at: flowing_at.map(|(_, node)| Cow::Borrowed(node)),
        });
    }
    placed
}

/// Rule 3 for one capture: why its source has failed here, if it has (restarts within
/// the failure window while its current incarnation has no frames, or silence).
fn source_failure(
    capture: &mut Capture,
    health: super::Health,
    now_ms: u64,
    wake: &mut Wake,
) -> Option<String> {
    capture.ever_alive |= health.alive;
    if health.alive {
        capture.last_alive_ms = now_ms;
    }
    match capture.restarts_seen {
        Some(seen) if health.restarts > seen => capture.restart_times_ms.push(now_ms),
        _ => {}
    }
    capture.restarts_seen = Some(health.restarts);
    capture.restart_times_ms.retain(|at| {
        wake.at(at.saturating_add(FAILURE_WINDOW_MS));
        now_ms.saturating_sub(*at) < FAILURE_WINDOW_MS
    });
    // Restarts count against the source only while the current incarnation has no
    // frames: a restart that reached the source (a camera back after an outage, just as
    // the restart bound was reached) is a recovery, and a mark taken then would keep
    // the stream from the one node that reaches it. The newest restart started the
    // current incarnation: it counts once that incarnation had its grace to get a frame.
    let mut judged_restarts = capture.restart_times_ms.len();
    if let Some(newest) = capture.restart_times_ms.last() {
        let judged_from_ms = newest.saturating_add(FIRST_FRAME_GRACE_MS);
        if now_ms < judged_from_ms {
            wake.at(judged_from_ms);
            judged_restarts -= 1;
        }
    }
    let restarting = judged_restarts >= MAX_CAPTURE_RESTARTS && !health.frames_since_start;
    let silent_from_ms = if capture.ever_alive {
        capture.last_alive_ms.saturating_add(CAPTURE_SILENCE_MS)
    } else {
        capture.started_ms.saturating_add(CAPTURE_START_DEADLINE_MS)
    };
    wake.at(silent_from_ms);
    if restarting {
        Some(format!(
            "source failed here: {} restarts within {} s",
            capture.restart_times_ms.len(),
            FAILURE_WINDOW_MS / 1000
        ))
    } else if now_ms < silent_from_ms {
        None
    } else if capture.ever_alive {
        Some(format!(
            "source failed here: no frames for {} s",
            CAPTURE_SILENCE_MS / 1000
        ))
    } else {
        Some(format!(
            "source failed here: no frames within {} s",
            CAPTURE_START_DEADLINE_MS / 1000
        ))
    }
}
