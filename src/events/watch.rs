//! Events read off the node's shared state: every [`WATCH_INTERVAL`] the watcher takes
//! what it needs of the directory (streams, whether frames flow, from which input), the
//! mesh view (peers alive or not) and the cluster_ingest board (who captures what), and
//! emits what changed since the last look ([`changes`], a pure function).
//!
//! Reading state instead of hooking each place keeps media and actors free of event
//! code, and costs one walk of the streams per interval. A change that comes and goes
//! within one interval is not seen; an event is emitted at most one interval after the
//! fact.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use flotilla_cluster::ingest::board::IngestBoard;
use flotilla_cluster::mesh::view::{ClusterView, PeerState};
use flotilla_otp::rt::Runtime;

use super::{Event, EventBus};
use crate::config::model::EventLevel;
use crate::media::directory::Directory;
use crate::stats::ALIVE_WITHIN_MS;

/// How often the watcher looks.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(250);

/// What the watcher saw at one look.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// Streams running here (relayed copies left out): frames flowing, and from which
    /// input.
    pub streams: BTreeMap<String, StreamSeen>,
    /// Peers by key: alive or not.
    pub peers: BTreeMap<String, bool>,
    /// cluster_ingest streams: the current capturer, its epoch and why it is there.
    pub captures: BTreeMap<String, Capture>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSeen {
    pub alive: bool,
    /// The input frames come from (`publish://` for a publisher), redacted.
    pub input: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capture {
    pub capturer: Option<String>,
    /// The last capturer seen, while there is none (the old one died, the new one has
    /// not started): where a move comes from.
    pub last_capturer: Option<String>,
    pub epoch: u64,
    pub reason: String,
}

/// `after` with each stream's last capturer carried over from `before` while it has
/// none.
pub fn remember_capturers(before: &Seen, mut after: Seen) -> Seen {
    for (name, capture) in &mut after.captures {
        if capture.capturer.is_none() {
            capture.last_capturer = before
                .captures
                .get(name)
                .and_then(|was| was.capturer.clone().or_else(|| was.last_capturer.clone()));
        }
    }
    after
}

/// The events between two looks; `me` is this node's identity (only the node that now
/// captures a stream reports that it moved, so a move is reported once in the cluster).
pub fn changes(before: &Seen, after: &Seen, me: &str) -> Vec<Event> {
    let mut events = Vec::new();
    for (name, now) in &after.streams {
        let was = before.streams.get(name);
        if was.is_none() {
            events.push(Event::new("stream_opened", EventLevel::Info).media(name));
        }
        let was_alive = was.is_some_and(|w| w.alive);
        if now.alive != was_alive {
            events.push(source_event(name, now, was, now.alive));
        }
    }
    for (name, was) in &before.streams {
        if !after.streams.contains_key(name) {
            if was.alive {
                events.push(source_event(name, was, Some(was), false));
            }
            events.push(Event::new("stream_closed", EventLevel::Info).media(name));
        }
    }
    for (peer, &alive) in &after.peers {
        let was = before.peers.get(peer).copied().unwrap_or(false);
        if alive != was {
            let (name, level) = match alive {
                true => ("peer_up", EventLevel::Notice),
                false => ("peer_down", EventLevel::Error),
            };
            events.push(Event::new(name, level).with("peer", peer.as_str()));
        }
    }
    for (name, now) in &after.captures {
        let was = before.captures.get(name);
        let moved = was.is_none_or(|was| was.capturer != now.capturer || was.epoch != now.epoch);
        if moved && now.capturer.as_deref() == Some(me) {
            let from = was
                .and_then(|was| was.capturer.clone().or_else(|| was.last_capturer.clone()))
                .filter(|from| from != me);
            events.push(
                Event::new("ingest_moved", EventLevel::Notice)
                    .media(name)
                    .with("from", from)
                    .with("to", me)
                    .with("epoch", now.epoch)
                    .with("reason", now.reason.as_str()),
            );
        }
    }
    events
}

/// `source_started`/`source_lost`, or `publish_started`/`publish_stopped` for a
/// publisher's stream.
fn source_event(name: &str, now: &StreamSeen, was: Option<&StreamSeen>, alive: bool) -> Event {
    let input = now
        .input
        .clone()
        .or_else(|| was.and_then(|w| w.input.clone()));
    let published = input
        .as_deref()
        .is_some_and(|url| url.starts_with("publish://"));
    let (event, level) = match (published, alive) {
        (true, true) => ("publish_started", EventLevel::Info),
        (true, false) => ("publish_stopped", EventLevel::Info),
        (false, true) => ("source_started", EventLevel::Info),
        (false, false) => ("source_lost", EventLevel::Warning),
    };
    Event::new(event, level).media(name).with("url", input)
}

/// The node state the watcher reads.
pub struct Watcher {
    pub bus: EventBus,
    pub directory: Directory,
    pub view: Option<Arc<RwLock<ClusterView>>>,
    pub board: IngestBoard,
    pub me: String,
    pub runtime: Runtime,
}

impl Watcher {
    /// Looks every [`WATCH_INTERVAL`] and emits what changed, until the runtime ends.
    pub async fn run(self) {
        let mut before = self.look();
        // What runs at start is news to the sinks too.
        for event in changes(&Seen::default(), &before, &self.me) {
            self.bus.emit(event);
        }
        loop {
            tokio::time::sleep(WATCH_INTERVAL).await;
            let after = remember_capturers(&before, self.look());
            if after != before {
                for event in changes(&before, &after, &self.me) {
                    self.bus.emit(event);
                }
                before = after;
            }
        }
    }

    fn look(&self) -> Seen {
        let now_ms = self.runtime.wall_clock_ms();
        let streams = self.directory.with_all(|streams, _| {
            streams
                .values()
                .filter(|live| !live.relay)
                .map(|live| {
                    let seen = StreamSeen {
                        alive: live.is_alive(now_ms, ALIVE_WITHIN_MS),
                        input: live
                            .active_input()
                            .map(|url| crate::media::input::redacted(&url).to_string()),
                    };
                    (live.name.clone(), seen)
                })
                .collect()
        });
        let peers = self.view.as_ref().map_or_else(BTreeMap::new, |view| {
            let view = view.read().unwrap_or_else(|p| p.into_inner());
            view.peers(now_ms)
                .map(|(peer, state)| (peer.name.clone(), state == PeerState::Alive))
                .collect()
        });
        let board = self.board.snapshot();
        let captures = board
            .rows
            .iter()
            .map(|row| {
                let capture = Capture {
                    capturer: row.capturer.clone(),
                    last_capturer: None,
                    epoch: row.epoch,
                    reason: row.reason.name().to_string(),
                };
                (row.stream.clone(), capture)
            })
            .collect();
        Seen {
            streams,
            peers,
            captures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|e| e.name).collect()
    }

    fn stream(alive: bool, input: &str) -> StreamSeen {
        StreamSeen {
            alive,
            input: Some(input.into()),
        }
    }

    #[test]
    fn role_and_reason_names_are_the_apis() {
        use flotilla_cluster::ingest::book::OwnerReason;
        use flotilla_cluster::mesh::view::IngestRole;
        for reason in [
            OwnerReason::Preferred,
            OwnerReason::Kept,
            OwnerReason::Hashed,
            OwnerReason::NoCandidate,
        ] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.name());
        }
        for role in [
            IngestRole::None,
            IngestRole::Standby,
            IngestRole::Capturing,
            IngestRole::Failed,
        ] {
            assert_eq!(serde_json::to_value(role).unwrap(), role.name());
        }
    }

    #[test]
    fn streams_open_start_lose_their_source_and_close() {
        let empty = Seen::default();
        let mut opened = Seen::default();
        opened
            .streams
            .insert("cam".into(), stream(false, "rtsp://cam/"));
        assert_eq!(names(&changes(&empty, &opened, "a")), ["stream_opened"]);
        let mut running = opened.clone();
        running
            .streams
            .insert("cam".into(), stream(true, "rtsp://cam/"));
        assert_eq!(names(&changes(&opened, &running, "a")), ["source_started"]);
        assert_eq!(names(&changes(&running, &opened, "a")), ["source_lost"]);
        assert_eq!(
            names(&changes(&running, &empty, "a")),
            ["source_lost", "stream_closed"]
        );
        let mut published = Seen::default();
        published
            .streams
            .insert("live/x".into(), stream(true, "publish://"));
        assert_eq!(
            names(&changes(&empty, &published, "a")),
            ["stream_opened", "publish_started"]
        );
        assert_eq!(
            names(&changes(&published, &empty, "a")),
            ["publish_stopped", "stream_closed"]
        );
    }

    #[test]
    fn peers_go_up_and_down_and_only_the_new_capturer_reports_a_move() {
        let mut before = Seen::default();
        before.peers.insert("b:80".into(), true);
        before.captures.insert(
            "cam".into(),
            Capture {
                capturer: Some("b:80".into()),
                epoch: 3,
                reason: "hashed".into(),
                ..Capture::default()
            },
        );
        let mut after = before.clone();
        after.peers.insert("b:80".into(), false);
        after.captures.insert(
            "cam".into(),
            Capture {
                capturer: Some("a:80".into()),
                epoch: 4,
                reason: "hashed".into(),
                ..Capture::default()
            },
        );
        let events = changes(&before, &after, "a:80");
        assert_eq!(names(&events), ["peer_down", "ingest_moved"]);
        let moved = &events[1].fields;
        assert_eq!(moved["from"], "b:80");
        assert_eq!(moved["to"], "a:80");
        assert_eq!(moved["epoch"], 4);
        // The node that lost it, or a bystander, says nothing about the move.
        assert_eq!(names(&changes(&before, &after, "c:80")), ["peer_down"]);
        // A moment without a capturer between the two: the move still comes from b.
        let mut gap = before.clone();
        gap.captures.get_mut("cam").unwrap().capturer = None;
        let gap = remember_capturers(&before, gap);
        let events = changes(&gap, &after, "a:80");
        assert_eq!(events.last().unwrap().fields["from"], "b:80");
    }
}
