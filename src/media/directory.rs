//! The node's running streams by name: how a viewer's request finds its stream's shared
//! state without asking any actor.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;

use super::frame::Frame;
use super::live::{LiveStream, Packaging};

/// Frames a publisher may queue ahead of its stream's ingest task (~10 s of video and
/// audio); a publisher that outruns its stream by more loses frames, not the node memory.
pub const PUBLISH_QUEUE_FRAMES: usize = 1024;

/// What a publisher sends to its stream's ingest.
#[derive(Debug)]
pub enum Published {
    Frame(Frame),
    /// The tracks the publisher declares (its metadata and sequence headers), sent when
    /// they change: the stream's first segment waits for each of them.
    Tracks(super::program::Tracks),
    /// The publisher left.
    End(String),
}

/// Where a stream with a `publish://` input waits for its publisher.
#[derive(Debug, Clone)]
struct PublishPoint {
    sender: mpsc::Sender<Published>,
    busy: Arc<AtomicBool>,
}

/// A publisher's hold on a publish point; frees it when dropped.
#[derive(Debug)]
pub struct Publisher {
    pub sender: mpsc::Sender<Published>,
    busy: Arc<AtomicBool>,
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.busy.store(false, Ordering::Release);
    }
}

/// Why a publisher could not attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachError {
    /// No stream with a `publish://` input is waiting under that name.
    NoSuchStream,
    /// Another publisher holds it.
    Busy,
}

/// Streams stopped recently, whose windows a new state of the same name goes on from
/// (see [`Directory::get_or_create_following`]): at most this many...
pub const MAX_RETIRED: usize = 64;
/// ...for at most this long.
pub const RETIRED_KEEP_MS: u64 = 30_000;

/// Recently stopped streams, oldest first, with when they stopped (Unix ms).
type Retired = std::collections::VecDeque<(u64, Arc<LiveStream>)>;

/// Name → live stream. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// Streams stopped recently (see [`MAX_RETIRED`]).
    retired: Arc<std::sync::Mutex<Retired>>,
    streams: Arc<RwLock<BTreeMap<String, Arc<LiveStream>>>>,
    /// Bumped, under the write lock, by every change to which streams there are (a
    /// stream added, removed or given a fresh state): a reader that walked them at one
    /// version knows the set stands while the version does (see [`Directory::with_all`]).
    version: Arc<AtomicU64>,
    publish_points: Arc<RwLock<BTreeMap<String, PublishPoint>>>,
}

impl Directory {
    /// The stream called `name`, created with `packaging` if absent. A restarted stream
    /// actor gets its previous state back, so viewers keep their window across restarts.
    pub fn get_or_create(&self, name: &str, packaging: Packaging) -> Arc<LiveStream> {
        self.get_or_create_as(name, packaging, false)
    }

    /// The state of `name`, created (or replaced, when made for other packaging or
    /// another origin, by one that goes on from its window) as a relay of a peer's stream
    /// when `relay`.
    pub fn get_or_create_as(
        &self,
        name: &str,
        packaging: Packaging,
        relay: bool,
    ) -> Arc<LiveStream> {
        self.state_for(name, packaging, relay, None)
    }

    /// The state of `name` for a stream (re)starting at `now_ms`: the running one when it
    /// fits; otherwise a new one that goes on from the window of the one it replaces
    /// (another origin: a capture taking over from a relayed copy) or of the stream that
    /// stopped under this name within [`RETIRED_KEEP_MS`] (a relay taking over from a
    /// capture that moved away), so its viewers' playlists never go back.
    pub fn get_or_create_following(
        &self,
        name: &str,
        packaging: Packaging,
        relay: bool,
        now_ms: u64,
    ) -> Arc<LiveStream> {
        self.state_for(name, packaging, relay, Some(now_ms))
    }

    /// The state of `name` that fits `packaging` and `relay`; a new one goes on from the
    /// window it replaces, or (given `now_ms`) from a retired one's.
    fn state_for(
        &self,
        name: &str,
        packaging: Packaging,
        relay: bool,
        now_ms: Option<u64>,
    ) -> Arc<LiveStream> {
        let fits = |live: &LiveStream| live.packaging == packaging && live.relay == relay;
        if let Some(live) = self.get(name)
            && fits(&live)
        {
            return live;
        }
        let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = streams.get(name)
            && fits(live)
        {
            return live.clone();
        }
        let previous = streams
            .get(name)
            .cloned()
            .or_else(|| now_ms.and_then(|now_ms| self.take_retired(name, now_ms)));
        let live = match previous {
            Some(previous) if previous.newest_segment().is_some() => {
                LiveStream::succeeding(&previous, packaging, relay)
            }
            _ => LiveStream::with_origin(name, packaging, relay),
        };
        self.version.fetch_add(1, Ordering::Release);
        streams.insert(name.to_string(), live.clone());
        live
    }

    /// The stream that stopped under `name` within [`RETIRED_KEEP_MS`] of `now_ms`.
    fn take_retired(&self, name: &str, now_ms: u64) -> Option<Arc<LiveStream>> {
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        retired.retain(|(at_ms, _)| now_ms.saturating_sub(*at_ms) < RETIRED_KEEP_MS);
        let position = retired.iter().rposition(|(_, live)| live.name == name)?;
        retired.remove(position).map(|(_, live)| live)
    }

    /// Keeps a stopped stream's state for a successor (see
    /// [`Directory::get_or_create_following`]).
    fn keep_retired(&self, live: Arc<LiveStream>, now_ms: u64) {
        if live.newest_segment().is_none() {
            return;
        }
        let mut retired = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        retired.retain(|(at_ms, kept)| {
            now_ms.saturating_sub(*at_ms) < RETIRED_KEEP_MS && kept.name != live.name
        });
        if retired.len() >= MAX_RETIRED {
            retired.pop_front();
        }
        retired.push_back((now_ms, live));
    }

    /// Removes the stream `name` at `now_ms`, keeping its window for a successor.
    pub fn retire(&self, name: &str, now_ms: u64) {
        let removed = {
            let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
            self.version.fetch_add(1, Ordering::Release);
            streams.remove(name)
        };
        self.publish_points
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(live) = removed {
            self.keep_retired(live, now_ms);
        }
    }

    /// Removes `live` at `now_ms` if it is still the state registered under its name,
    /// keeping its window for a successor.
    pub fn retire_exact(&self, live: &Arc<LiveStream>, now_ms: u64) {
        let removed = {
            let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
            let registered = streams
                .get(&live.name)
                .is_some_and(|registered| Arc::ptr_eq(registered, live));
            if registered {
                self.version.fetch_add(1, Ordering::Release);
                streams.remove(&live.name)
            } else {
                None
            }
        };
        if let Some(live) = removed {
            self.keep_retired(live, now_ms);
        }
    }

    /// Whether `live` is the state registered under its name now.
    pub fn holds(&self, live: &Arc<LiveStream>) -> bool {
        self.get(&live.name)
            .is_some_and(|registered| Arc::ptr_eq(&registered, live))
    }

    /// Replaces the state of `name` with a fresh one (a stopped on-demand stream).
    pub fn reset(&self, name: &str, packaging: Packaging) -> Arc<LiveStream> {
        let fresh = LiveStream::new(name, packaging);
        let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
        self.version.fetch_add(1, Ordering::Release);
        streams.insert(name.to_string(), fresh.clone());
        fresh
    }

    pub fn get(&self, name: &str) -> Option<Arc<LiveStream>> {
        self.streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    pub fn remove(&self, name: &str) {
        let mut streams = self.streams.write().unwrap_or_else(|p| p.into_inner());
        self.version.fetch_add(1, Ordering::Release);
        streams.remove(name);
        drop(streams);
        self.publish_points
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// Opens (or reopens) the publish point of `name`; the ingest reads from the receiver.
    pub fn open_publish_point(&self, name: &str) -> mpsc::Receiver<Published> {
        let (sender, receiver) = mpsc::channel(PUBLISH_QUEUE_FRAMES);
        let point = PublishPoint {
            sender,
            busy: Arc::new(AtomicBool::new(false)),
        };
        self.publish_points
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), point);
        receiver
    }

    /// Whether `name` has an open publish point (a running stream with a `publish://`
    /// input), whether or not a publisher holds it.
    pub fn has_publish_point(&self, name: &str) -> bool {
        self.publish_points
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .is_some_and(|point| !point.sender.is_closed())
    }

    /// Attaches a publisher to the publish point of `name`.
    pub fn attach_publisher(&self, name: &str) -> Result<Publisher, AttachError> {
        let points = self
            .publish_points
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let point = points.get(name).ok_or(AttachError::NoSuchStream)?;
        if point.sender.is_closed() {
            return Err(AttachError::NoSuchStream);
        }
        if point.busy.swap(true, Ordering::AcqRel) {
            return Err(AttachError::Busy);
        }
        Ok(Publisher {
            sender: point.sender.clone(),
            busy: point.busy.clone(),
        })
    }

    /// Runs `visit` over the streams by name and their [`Directory::version`], under the
    /// read lock: for a reader that walks every stream often (the mesh advertisement) and
    /// would otherwise copy the list. `visit` must not touch the directory.
    pub fn with_all<R>(
        &self,
        visit: impl FnOnce(&BTreeMap<String, Arc<LiveStream>>, u64) -> R,
    ) -> R {
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        visit(&streams, self.version.load(Ordering::Acquire))
    }

    /// The version of the set of streams: the same as a walk's ([`Directory::with_all`])
    /// while no stream was added, removed or given a fresh state since.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Every stream, in name order.
    pub fn all(&self) -> Vec<Arc<LiveStream>> {
        self.streams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The longest configured name that is a prefix of `path` at a `/` boundary, with
    /// the rest of the path: how `/live/news/index.m3u8` finds stream `live/news`.
    pub fn resolve<'p>(&self, path: &'p str) -> Option<(Arc<LiveStream>, &'p str)> {
        let streams = self.streams.read().unwrap_or_else(|p| p.into_inner());
        let mut end = path.len();
        loop {
            let candidate = &path[..end];
            if let Some(live) = streams.get(candidate) {
                let rest = path[end..].trim_start_matches('/');
                return Some((live.clone(), rest));
            }
            end = candidate.rfind('/')?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::window::Segment;

    const NOW_MS: u64 = 1_800_000_000_000;

    /// `live` with `count` segments of one second, numbered from `first`.
    fn with_segments(live: &LiveStream, first: u64, count: u64) {
        for sequence in first..first + count {
            live.place_segment(Segment {
                sequence,
                name: format!("2027/01/15/08/00/{:02}-01000.ts", sequence % 60),
                duration_ms: 1_000,
                program_date_time_ms: NOW_MS + sequence * 1_000,
                discontinuity: false,
                data: bytes::Bytes::from_static(&[0x47]),
                cmaf: Vec::new(),
            });
        }
    }

    /// A capture starting where a relayed copy runs goes on from the copy's window, and
    /// the copy is no longer the registered state (it stops: `MediaService::replaced`).
    #[test]
    fn a_capture_takes_over_a_relayed_copy_and_its_window() {
        let directory = Directory::default();
        let copy = directory.get_or_create_following("cam", Packaging::default(), true, NOW_MS);
        with_segments(&copy, 40, 3);
        let capture = directory.get_or_create_following("cam", Packaging::default(), false, NOW_MS);
        assert!(!capture.relay && !directory.holds(&copy) && directory.holds(&capture));
        assert_eq!(capture.newest_segment().unwrap().sequence, 42);
        let mut window = capture.window.write().unwrap();
        let next = window.push(
            NOW_MS + 50_000,
            1_000,
            false,
            bytes::Bytes::new(),
            Vec::new(),
        );
        assert_eq!(next.sequence, 43, "numbers go on");
        assert!(next.discontinuity, "another timeline");
    }

    /// A stream that stopped leaves its window for a successor of the same name for
    /// `RETIRED_KEEP_MS`, not longer.
    #[test]
    fn a_retired_window_is_taken_over_within_its_keep_time_only() {
        let directory = Directory::default();
        let capture = directory.get_or_create_following("cam", Packaging::default(), false, NOW_MS);
        with_segments(&capture, 7, 2);
        directory.retire("cam", NOW_MS);
        assert!(directory.get("cam").is_none());
        let copy =
            directory.get_or_create_following("cam", Packaging::default(), true, NOW_MS + 1_000);
        assert_eq!(copy.newest_segment().unwrap().sequence, 8);
        directory.retire_exact(&copy, NOW_MS + 2_000);
        let late = directory.get_or_create_following(
            "cam",
            Packaging::default(),
            true,
            NOW_MS + 2_000 + RETIRED_KEEP_MS,
        );
        assert!(late.newest_segment().is_none(), "kept too long");
    }

    #[test]
    fn resolves_names_with_slashes_to_the_longest_match() {
        let directory = Directory::default();
        directory.get_or_create("live", Packaging::default());
        directory.get_or_create("live/news", Packaging::default());
        let (live, rest) = directory.resolve("live/news/index.m3u8").unwrap();
        assert_eq!((live.name.as_str(), rest), ("live/news", "index.m3u8"));
        let (live, rest) = directory.resolve("live/other/mpegts").unwrap();
        assert_eq!((live.name.as_str(), rest), ("live", "other/mpegts"));
        assert!(directory.resolve("nothing/index.m3u8").is_none());
    }
}
