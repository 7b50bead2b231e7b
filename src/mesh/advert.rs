//! What this node advertises about its streams, built for every exchange without copying
//! when nothing changed.
//!
//! A node answers and calls each peer every `fetch_timeout`, so with 20 peers and 1,000
//! streams it would build a 1,000-entry list 40 times a second, to find it equal to the
//! last one nearly every time. [`Advertiser`] walks the directory and the ingest board
//! under their read locks, in name order (both are sorted maps, so no sort), compares
//! each entry with the list it built last time field by field, and copies nothing until
//! the first difference. A changed list gets a new generation, which the mesh compares
//! to know "no change" without comparing lists (see `state::Outbox`).
//!
//! Most streams in that list are cluster_ingest streams this node does not run: their
//! entries follow from the ingest board's parts alone. While the parts are at the
//! generation the last list was built from (the board keeps it while this node's parts
//! stand) and the directory's set of streams is at the same version,
//! only the entries of running streams can have moved (their counters, their liveness
//! with time), so only those are looked at again: a node capturing 20 of 100 streams
//! checks 20 entries per exchange, not 100.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use flotilla_cluster::ingest::board::{BoardState, IngestBoard, LocalPart};
use flotilla_cluster::mesh::view::{IngestRole, RemoteStream};
use flotilla_otp::rt::Runtime;

use super::state::Advertised;
use super::wire::{MAX_STREAMS, StreamEntry};
use crate::live::Live;
use crate::media::directory::Directory;
use crate::media::live::LiveStream;
use crate::stats::ALIVE_WITHIN_MS;

/// Builds this node's advertised stream list.
pub struct Advertiser {
    directory: Directory,
    board: IngestBoard,
    clock: Runtime,
    /// Configured on-demand streams (looked up once per stream per build: a set);
    /// replaced by a reload.
    ondemand: Live<HashSet<String>>,
    /// The list built last, returned again while nothing in it changes.
    last: Mutex<Built>,
}

/// The list built last, with what it was built from.
#[derive(Default)]
struct Built {
    list: Advertised,
    /// The generation of the board's parts it was built from.
    local_generation: Option<u64>,
    /// The directory's version during the walk.
    directory_version: u64,
    /// The running streams' entries: position in `list`, state, board part.
    running: Vec<(usize, Arc<LiveStream>, Option<LocalPart>)>,
}

impl Built {
    /// Whether the list still holds for `board` and `directory_version` at `now_ms`:
    /// the same parts on the board, the same set of streams, and every running stream's
    /// entry as it would be built now.
    fn holds(
        &self,
        advertiser: &Advertiser,
        ondemand: &HashSet<String>,
        board: &Arc<BoardState>,
        directory_version: u64,
        now_ms: u64,
    ) -> bool {
        self.local_generation == Some(board.local_generation)
            && self.directory_version == directory_version
            && self.running.iter().all(|(index, live, part)| {
                let entry = &self.list.streams[*index];
                entry.remote()
                    == advertiser.fields(ondemand, &entry.name, Some(live), part.as_ref(), now_ms)
            })
    }
}

/// The list being built: the last one's prefix while every entry matches it, a new
/// list from the first difference on.
struct Build<'a> {
    last: &'a [StreamEntry],
    matched: usize,
    fresh: Option<Vec<StreamEntry>>,
}

impl Build<'_> {
    fn push(&mut self, name: &str, fields: RemoteStream) {
        if let Some(fresh) = &mut self.fresh {
            fresh.push(StreamEntry::new(name, fields));
            return;
        }
        match self.last.get(self.matched) {
            Some(was) if was.name == name && was.remote() == fields => self.matched += 1,
            _ => {
                let mut fresh = Vec::with_capacity(self.last.len().max(self.matched + 1));
                fresh.extend_from_slice(&self.last[..self.matched]);
                fresh.push(StreamEntry::new(name, fields));
                self.fresh = Some(fresh);
            }
        }
    }

    fn count(&self) -> usize {
        self.fresh.as_ref().map_or(self.matched, Vec::len)
    }

    /// The new list, or `None` when it equals the last one.
    fn finish(self) -> Option<Vec<StreamEntry>> {
        match self.fresh {
            Some(fresh) => Some(fresh),
            None if self.matched == self.last.len() => None,
            None => Some(self.last[..self.matched].to_vec()),
        }
    }
}

impl Advertiser {
    pub fn new(
        directory: Directory,
        board: IngestBoard,
        clock: Runtime,
        ondemand: Live<HashSet<String>>,
    ) -> Advertiser {
        Advertiser {
            directory,
            board,
            clock,
            ondemand,
            last: Mutex::default(),
        }
    }

    /// Every stream this node knows, in name order (names unique), at most
    /// [`MAX_STREAMS`]: the same generation (and allocation) as last time when no entry
    /// changed.
    pub fn streams(&self) -> Advertised {
        let now_ms = self.clock.wall_clock_ms();
        let board = self.board.snapshot();
        let ondemand = self.ondemand.get();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.holds(self, &ondemand, &board, self.directory.version(), now_ms) {
            return last.list.clone();
        }
        let mut build = Build {
            last: &last.list.streams,
            matched: 0,
            fresh: None,
        };
        let mut running_at = Vec::new();
        let directory_version = self.directory.with_all(|running, version| {
            let mut running = running.iter().peekable();
            let mut parts = board.local.iter().peekable();
            while build.count() < MAX_STREAMS {
                // Merge the two name-ordered maps: a stream running here, a
                // cluster_ingest stream configured here, or both.
                let (name, live, part) = match (running.peek(), parts.peek()) {
                    (None, None) => break,
                    (Some((name, _)), Some((part_name, _))) if name == part_name => {
                        let (name, live) = running.next().expect("peeked");
                        let (_, part) = parts.next().expect("peeked");
                        (name, Some(live), Some(part))
                    }
                    (Some((name, _)), Some((part_name, _))) if part_name < name => {
                        let (name, part) = parts.next().expect("peeked");
                        (name, None, Some(part))
                    }
                    (Some(_), _) => {
                        let (name, live) = running.next().expect("peeked");
                        (name, Some(live), None)
                    }
                    (None, Some(_)) => {
                        let (name, part) = parts.next().expect("peeked");
                        (name, None, Some(part))
                    }
                };
                if let Some(live) = live {
                    running_at.push((build.count(), live.clone(), part.copied()));
                }
                build.push(name, self.fields(&ondemand, name, live, part, now_ms));
            }
            version
        });
        let list = match build.finish() {
            Some(fresh) => Advertised {
                generation: last.list.generation + 1,
                streams: Arc::new(fresh),
            },
            None => last.list.clone(),
        };
        *last = Built {
            list: list.clone(),
            local_generation: Some(board.local_generation),
            directory_version,
            running: running_at,
        };
        list
    }

    fn fields(
        &self,
        ondemand: &HashSet<String>,
        name: &str,
        live: Option<&Arc<LiveStream>>,
        part: Option<&LocalPart>,
        now_ms: u64,
    ) -> RemoteStream {
        let (ingest, epoch) = part.map_or((IngestRole::None, 0), |p| (p.role, p.epoch));
        let Some(live) = live else {
            // A cluster_ingest stream not running here: standby (able to take it) or
            // failed.
            return RemoteStream {
                alive: false,
                ondemand: false,
                clients: 0,
                bitrate_kbit: 0,
                epoch,
                ingest,
                relayed: false,
            };
        };
        // A cluster_ingest stream this node no longer captures is never offered, and
        // neither is a relay: viewers and relays go to a stream's owner, never to a copy
        // that ends with its last player here.
        let offered = !live.relay && matches!(ingest, IngestRole::None | IngestRole::Capturing);
        RemoteStream {
            alive: offered && live.is_alive(now_ms, ALIVE_WITHIN_MS),
            ondemand: offered && ondemand.contains(name),
            clients: live.counters.clients.load(Ordering::Relaxed),
            bitrate_kbit: live.counters.input_bitrate.load(Ordering::Relaxed) / 1000,
            epoch,
            ingest,
            relayed: live.relay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::live::Packaging;

    fn advertiser() -> (Advertiser, Directory, IngestBoard) {
        let directory = Directory::default();
        let board = IngestBoard::default();
        let ondemand = Live::new(HashSet::from(["od".to_string()]));
        let advertiser = Advertiser::new(
            directory.clone(),
            board.clone(),
            Runtime::production(),
            ondemand,
        );
        (advertiser, directory, board)
    }

    fn names(list: &[StreamEntry]) -> Vec<&str> {
        list.iter().map(|entry| entry.name.as_str()).collect()
    }

    #[test]
    fn a_relay_copy_is_never_offered() {
        let (advertiser, directory, _board) = advertiser();
        let live = directory.get_or_create_as("copy", Packaging::default(), true);
        live.counters
            .last_frame_ms
            .store(advertiser.clock.wall_clock_ms(), Ordering::Relaxed);
        let list = advertiser.streams().streams;
        let entry = list.iter().find(|e| e.name == "copy").expect("listed");
        assert!(!entry.remote().alive && !entry.remote().ondemand);
        assert!(entry.remote().relayed, "listed as a relayed copy");
    }

    #[test]
    fn merges_running_and_configured_ingest_streams_in_name_order() {
        let (advertiser, directory, board) = advertiser();
        directory.get_or_create("b", Packaging::default());
        directory.get_or_create("od", Packaging::default());
        let standby = LocalPart {
            role: IngestRole::Standby,
            epoch: 4,
        };
        let capturing = LocalPart {
            role: IngestRole::Capturing,
            epoch: 7,
        };
        board.set_local("a", standby);
        board.set_local("b", capturing);
        board.set_local("c", standby);
        let list = advertiser.streams().streams;
        assert_eq!(names(&list), ["a", "b", "c", "od"]);
        assert_eq!(
            (list[0].ingest, list[0].epoch, list[0].alive),
            (IngestRole::Standby, 4, false)
        );
        assert_eq!((list[1].ingest, list[1].epoch), (IngestRole::Capturing, 7));
        assert!(list[3].ondemand && list[3].ingest == IngestRole::None);
    }

    /// While the board and the set of streams stand, only running streams' entries are
    /// looked at again: their liveness still moves with time, their counters still move,
    /// and a new board or a new stream still rebuilds the list.
    #[tokio::test(start_paused = true)]
    async fn with_board_and_streams_unchanged_running_entries_still_move() {
        let directory = Directory::default();
        let board = IngestBoard::default();
        let clock = Runtime::deterministic(1, 1_700_000_000_000);
        let advertiser = Advertiser::new(
            directory.clone(),
            board.clone(),
            clock.clone(),
            Live::new(HashSet::new()),
        );
        for name in ["a", "c", "d"] {
            board.set_local(
                name,
                LocalPart {
                    role: IngestRole::Standby,
                    epoch: 1,
                },
            );
        }
        board.set_local(
            "b",
            LocalPart {
                role: IngestRole::Capturing,
                epoch: 2,
            },
        );
        let live = directory.get_or_create("b", Packaging::default());
        live.counters
            .last_frame_ms
            .store(clock.wall_clock_ms(), Ordering::Relaxed);
        let first = advertiser.streams();
        assert!(first.streams[1].alive && first.streams[1].ingest == IngestRole::Capturing);
        assert_eq!(first.generation, advertiser.streams().generation);
        // No frame for longer than the liveness window: the entry is no longer alive.
        tokio::time::advance(std::time::Duration::from_millis(ALIVE_WITHIN_MS + 1)).await;
        let silent = advertiser.streams();
        assert!(!silent.streams[1].alive, "liveness follows time");
        assert!(silent.generation > first.generation);
        assert_eq!(silent.generation, advertiser.streams().generation);
        // A counter of the running stream.
        live.counters.clients.store(5, Ordering::Relaxed);
        assert_eq!(advertiser.streams().streams[1].clients, 5);
        // A new stream in the directory (the board unchanged).
        directory.get_or_create("e", Packaging::default());
        assert_eq!(
            names(&advertiser.streams().streams),
            ["a", "b", "c", "d", "e"]
        );
        // A new board (a standby entry changes role).
        board.set_local(
            "d",
            LocalPart {
                role: IngestRole::Failed,
                epoch: 1,
            },
        );
        assert_eq!(advertiser.streams().streams[3].ingest, IngestRole::Failed);
    }

    #[test]
    fn an_unchanged_list_keeps_its_generation_and_any_change_raises_it() {
        let (advertiser, directory, board) = advertiser();
        let live = directory.get_or_create("tv", Packaging::default());
        directory.get_or_create("radio", Packaging::default());
        let first = advertiser.streams();
        assert_eq!(first.generation, advertiser.streams().generation);
        // A counter moves: a new list, equal up to that entry.
        live.counters.clients.store(3, Ordering::Relaxed);
        let second = advertiser.streams();
        assert!(second.generation > first.generation);
        assert_eq!(second.streams[1].clients, 3);
        assert_eq!(second.generation, advertiser.streams().generation);
        // A stream goes: the list shrinks (a matching prefix, then nothing).
        directory.remove("tv");
        assert_eq!(names(&advertiser.streams().streams), ["radio"]);
        // A cluster_ingest part changes role.
        board.set_local(
            "radio",
            LocalPart {
                role: IngestRole::Standby,
                epoch: 1,
            },
        );
        let third = advertiser.streams().streams;
        assert_eq!(
            (third[0].ingest, third[0].alive),
            (IngestRole::Standby, false)
        );
    }
}
