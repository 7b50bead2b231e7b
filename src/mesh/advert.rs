//! What this node advertises about its streams, built for every exchange without copying
//! when nothing changed.
//!
//! A node answers and calls each peer every `fetch_timeout`, so with 20 peers and 1,000
//! streams it would build a 1,000-entry list 40 times a second, to find it equal to the
//! last one nearly every time. [`Advertiser`] walks the directory and the ingest board
//! under their read locks, in name order (both are sorted maps, so no sort), compares
//! each entry with the list it built last time field by field, and copies nothing until
//! the first difference. An unchanged list is the same allocation as before, which the
//! service takes as "no change" without comparing (see `service::current_state`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use flotilla_actors::ingest::board::{IngestBoard, LocalPart};
use flotilla_actors::mesh::view::{IngestRole, RemoteStream};
use flotilla_actors::rt::Runtime;

use super::wire::{MAX_STREAMS, StreamEntry};
use crate::media::directory::Directory;
use crate::media::live::LiveStream;
use crate::stats::ALIVE_WITHIN_MS;

/// Builds this node's advertised stream list.
pub struct Advertiser {
    directory: Directory,
    board: IngestBoard,
    clock: Runtime,
    /// Configured on-demand streams (looked up once per stream per build: a set).
    ondemand: HashSet<String>,
    /// The list built last, returned again while nothing in it changes.
    last: Mutex<Arc<Vec<StreamEntry>>>,
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
        ondemand: HashSet<String>,
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
    /// [`MAX_STREAMS`]: the same allocation as last time when no entry changed.
    pub fn streams(&self) -> Arc<Vec<StreamEntry>> {
        let now_ms = self.clock.wall_clock_ms();
        let board = self.board.snapshot();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let mut build = Build {
            last: &last,
            matched: 0,
            fresh: None,
        };
        self.directory.with_all(|running| {
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
                build.push(name, self.fields(name, live, part, now_ms));
            }
        });
        if let Some(fresh) = build.finish() {
            *last = Arc::new(fresh);
        }
        last.clone()
    }

    fn fields(
        &self,
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
            };
        };
        // A cluster_ingest stream this node no longer captures is never offered.
        let offered = matches!(ingest, IngestRole::None | IngestRole::Capturing);
        RemoteStream {
            alive: offered && live.is_alive(now_ms, ALIVE_WITHIN_MS),
            ondemand: offered && self.ondemand.contains(name),
            clients: live.counters.clients.load(Ordering::Relaxed),
            bitrate_kbit: live.counters.input_bitrate.load(Ordering::Relaxed) / 1000,
            epoch,
            ingest,
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
        let ondemand = HashSet::from(["od".to_string()]);
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
        let list = advertiser.streams();
        assert_eq!(names(&list), ["a", "b", "c", "od"]);
        assert_eq!(
            (list[0].ingest, list[0].epoch, list[0].alive),
            (IngestRole::Standby, 4, false)
        );
        assert_eq!((list[1].ingest, list[1].epoch), (IngestRole::Capturing, 7));
        assert!(list[3].ondemand && list[3].ingest == IngestRole::None);
    }

    #[test]
    fn an_unchanged_list_is_the_same_allocation_and_any_change_is_a_new_one() {
        let (advertiser, directory, board) = advertiser();
        let live = directory.get_or_create("tv", Packaging::default());
        directory.get_or_create("radio", Packaging::default());
        let first = advertiser.streams();
        assert!(Arc::ptr_eq(&first, &advertiser.streams()));
        // A counter moves: a new list, equal up to that entry.
        live.counters.clients.store(3, Ordering::Relaxed);
        let second = advertiser.streams();
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second[1].clients, 3);
        assert!(Arc::ptr_eq(&second, &advertiser.streams()));
        // A stream goes: the list shrinks (a matching prefix, then nothing).
        directory.remove("tv");
        assert_eq!(names(&advertiser.streams()), ["radio"]);
        // A cluster_ingest part changes role.
        board.set_local(
            "radio",
            LocalPart {
                role: IngestRole::Standby,
                epoch: 1,
            },
        );
        let third = advertiser.streams();
        assert_eq!(
            (third[0].ingest, third[0].alive),
            (IngestRole::Standby, false)
        );
    }
}
