//! A live stream's shared state (the data plane), and the packager that fills it.
//!
//! One input task per stream pushes frames into its [`Packager`], which muxes each frame
//! to MPEG-TS once and publishes the bytes three ways: into the HLS [`Window`], into the
//! current-GOP cache (where a joining HTTP-MPEG-TS viewer starts), and onto a broadcast
//! channel that live viewers follow. Viewers share the same `Bytes`; nothing is copied
//! per viewer, and no request waits on an actor's mailbox.
//!
//! A viewer that falls [`VIEWER_QUEUE_CHUNKS`] behind is dropped (it sees `Lagged`),
//! so a slow viewer never slows the stream or the other viewers. The broadcast ring
//! (one slot per queued item, tens of KiB per protocol) is allocated by the first viewer,
//! not by the stream: a node capturing hundreds of streams that nobody watches here
//! (the usual case for a cluster_ingest capturer) holds no viewer rings at all.

use crate::rtmp::shared::{PlayedFrame, SharedFrame};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::cmaf::CmafPackager;
use super::follow::{Cut, FollowEvent, SegmentInfo};
use super::frame::{CLOCK_HZ, Frame, ticks_to_ms};
use super::program::{MAX_TRACKS, Track, Tracks};
use super::segmenter::{Chunk, Segmenter};
use super::track_facts::TrackTable;
use super::tracks::{Gated, TrackGate};
use super::ts::mux::{Muxed, Muxer};
use super::window::{Rendition, Segment, Window};

/// Chunks (one per frame) a live viewer may fall behind before it is dropped: ~20 s of a
/// 25 fps stream with audio. Memory is shared, so the bound is about latency, not bytes.
pub const VIEWER_QUEUE_CHUNKS: usize = 1024;

/// Largest current-GOP cache: a stream with absurdly long GOPs stops caching (joining
/// viewers then wait for the next keyframe) instead of growing without limit.
pub const MAX_GOP_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Window over which the input bitrate is measured.
const BITRATE_WINDOW_MS: u64 = 2_000;

/// How a stream is packaged (from its config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packaging {
    pub segment_duration_ms: u64,
    pub segment_count: usize,
    /// The longest CMAF part (LL-HLS).
    pub part_duration_ms: u64,
}

impl Default for Packaging {
    /// Flussonic's defaults: 5 s segments, 4 in the window; 1 s parts.
    fn default() -> Packaging {
        Packaging {
            segment_duration_ms: crate::defaults::SEGMENT_DURATION_MS,
            segment_count: crate::defaults::SEGMENT_COUNT,
            part_duration_ms: crate::defaults::PART_DURATION_MS,
        }
    }
}

/// Counters read by the API and the stats exchange.
#[derive(Debug, Default)]
pub struct LiveCounters {
    pub frames_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Unix ms of the last frame; 0 before the first.
    pub last_frame_ms: AtomicU64,
    /// Bytes sent to viewers (all protocols).
    pub bytes_out: AtomicU64,
    /// Viewers connected now (sessions).
    pub clients: AtomicU64,
    /// Input bitrate over the last window, bit/s.
    pub input_bitrate: AtomicU64,
    /// The last frame's dts: where a restarted ingest continues the timeline.
    pub last_dts: AtomicU64,
    /// Unix ms of the last viewer request (on-demand streams stop when it gets old).
    pub last_access_ms: AtomicU64,
    /// Nodes relaying this stream from here now (subscriptions served).
    pub relay_subscribers: AtomicU64,
    /// Bytes of relay frames sent to relaying nodes (framing included, QUIC not).
    pub relay_bytes_out: AtomicU64,
    /// Of `bytes_in`, each track's, by track number.
    pub track_bytes_in: [AtomicU64; MAX_TRACKS],
}

/// The shared state of one running stream.
#[derive(Debug)]
pub struct LiveStream {
    pub name: String,
    pub packaging: Packaging,
    /// A copy of a peer's stream for this node's RTMP players (never advertised).
    pub relay: bool,
    pub(super) window: RwLock<Window>,
    gop: RwLock<Vec<Bytes>>,
    rendition: RwLock<Rendition>,
    chunks: Followers<Bytes>,
    /// The frames of the current GOP and the live frames, for RTMP players.
    gop_frames: RwLock<Vec<SharedFrame>>,
    frames: Followers<SharedFrame>,
    /// The latest frame of each audio track, for the AAC sequence header of joining
    /// RTMP players.
    last_audio: RwLock<[Option<Frame>; MAX_TRACKS]>,
    /// The program the stream's frames are muxed into now.
    program: RwLock<Tracks>,
    /// What the frames told about each track.
    facts: RwLock<TrackTable>,
    /// Nodes relaying this stream: its frames and where its segments end, in order
    /// (see `media::follow`).
    follow: Followers<FollowEvent>,
    /// Segments published so far: viewers of a starting stream wait on it.
    published: tokio::sync::watch::Sender<u64>,
    /// CMAF parts and segments published so far: blocked LL-HLS requests wait on it.
    parts: tokio::sync::watch::Sender<u64>,
    /// Texts rendered from the window (LL-HLS playlists, the DASH manifest), each with
    /// the `parts` count it was rendered at: rendered once per change and shared by every
    /// request until the next part, as the media bytes are.
    rendered: RwLock<Vec<Rendered>>,
    /// The Unix ms of the stream's time zero (dts 0 on its timeline): the DASH
    /// manifest's availability start. 0 until the first frame; a relayed copy takes
    /// the origin's.
    timeline_origin_ms: AtomicU64,
    /// The longest CMAF part: this node's `chunk_duration`, or a relayed copy's origin's
    /// (its parts are the origin's).
    part_target_ms: AtomicU64,
    /// GOPs started so far: RTMP players of a starting stream wait on it.
    gops: tokio::sync::watch::Sender<u64>,
    /// Asks an idle on-demand stream to start.
    demand: tokio::sync::Notify,
    /// The URL of the input feeding the stream now.
    active_input: RwLock<Option<String>>,
    pub counters: LiveCounters,
}

impl LiveStream {
    pub fn new(name: &str, packaging: Packaging) -> Arc<LiveStream> {
        LiveStream::with_origin(name, packaging, false)
    }

    /// A stream's state; `relay` when it copies a peer's stream.
    pub fn with_origin(name: &str, packaging: Packaging, relay: bool) -> Arc<LiveStream> {
        Arc::new(LiveStream {
            name: name.to_string(),
            packaging,
            relay,
            window: RwLock::new(Window::new(packaging.segment_count)),
            gop: RwLock::new(Vec::new()),
            rendition: RwLock::new(Rendition::default()),
            chunks: Followers::default(),
            gop_frames: RwLock::new(Vec::new()),
            frames: Followers::default(),
            last_audio: RwLock::new(Default::default()),
            program: RwLock::new(Tracks::EMPTY),
            facts: RwLock::new(TrackTable::default()),
            follow: Followers::default(),
            published: tokio::sync::watch::channel(0).0,
            parts: tokio::sync::watch::channel(0).0,
            rendered: RwLock::new(Vec::new()),
            timeline_origin_ms: AtomicU64::new(0),
            part_target_ms: AtomicU64::new(packaging.part_duration_ms),
            gops: tokio::sync::watch::channel(0).0,
            demand: tokio::sync::Notify::new(),
            active_input: RwLock::new(None),
            counters: LiveCounters::default(),
        })
    }

    /// A new state for `previous`'s stream that goes on from its window: the same
    /// segments, numbers continuing, the next segment marked as a discontinuity. Viewers
    /// of the stream keep a playlist that never goes back when its source changes (a
    /// capture taking over from a relayed copy, a relay from a stopped capture).
    pub fn succeeding(previous: &LiveStream, packaging: Packaging, relay: bool) -> Arc<LiveStream> {
        let live = LiveStream::with_origin(&previous.name, packaging, relay);
        let mut window = previous
            .window
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        window.continue_with_new_timeline();
        let segments = window.held().count() as u64;
        *live.window.write().unwrap_or_else(|p| p.into_inner()) = window;
        live.set_rendition(previous.rendition());
        live.published.send_replace(segments);
        live.set_timeline_origin(previous.timeline_origin_ms());
        live
    }

    /// The Unix ms of the stream's time zero; 0 before its first frame.
    pub fn timeline_origin_ms(&self) -> u64 {
        self.timeline_origin_ms.load(Ordering::Relaxed)
    }

    pub(super) fn set_timeline_origin(&self, unix_ms: u64) {
        self.timeline_origin_ms.store(unix_ms, Ordering::Relaxed);
    }

    /// The longest CMAF part (LL-HLS's PART-TARGET).
    pub fn part_target_ms(&self) -> u64 {
        self.part_target_ms.load(Ordering::Relaxed)
    }

    pub(super) fn set_part_target(&self, part_ms: u64) {
        self.part_target_ms.store(part_ms, Ordering::Relaxed);
    }

    /// Reads the window (the CMAF outputs render from it under its read lock).
    pub fn with_window<R>(&self, read: impl FnOnce(&Window) -> R) -> R {
        read(&self.window.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits (at most `limit`) until `ready` holds of the window, re-checking whenever a
    /// CMAF part or segment is published; false on timeout. The wait holds no thread
    /// and no lock: a blocked LL-HLS request is a parked future.
    pub async fn wait_for_window(
        &self,
        limit: std::time::Duration,
        ready: impl Fn(&Window) -> bool,
    ) -> bool {
        let mut parts = self.parts.subscribe();
        let wait = async {
            loop {
                if self.with_window(&ready) {
                    return true;
                }
                if parts.changed().await.is_err() {
                    return false;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.unwrap_or(false)
    }

    /// The text `key` names, rendered from the window by `render` at most once per CMAF
    /// part or segment published (at most [`MAX_RENDERED_TEXTS`] kept). A text rendered
    /// a moment after a part came is kept under that part's count: a request then gets
    /// the same or a newer text, never an older one.
    pub fn rendered(
        &self,
        key: RenderedKey,
        render: impl FnOnce(&Window) -> Option<String>,
    ) -> Option<Bytes> {
        let generation = *self.parts.borrow();
        let kept = self.rendered.read().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = kept
            .iter()
            .find(|r| r.key == key && r.generation == generation)
        {
            return Some(found.text.clone());
        }
        drop(kept);
        let text = Bytes::from(self.with_window(render)?);
        let mut kept = self.rendered.write().unwrap_or_else(|p| p.into_inner());
        kept.retain(|r| r.key != key && r.generation == generation);
        if kept.len() < MAX_RENDERED_TEXTS {
            kept.push(Rendered {
                key,
                generation,
                text: text.clone(),
            });
        }
        Some(text)
    }

    /// Adds a CMAF part of the segment being written and wakes blocked requests.
    pub(super) fn add_part(&self, closed: crate::media::cmaf::ClosedPart) {
        self.window
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .add_part(closed);
        self.parts.send_modify(|count| *count += 1);
    }

    /// Notes a viewer's request at `now_ms`, and asks an idle on-demand stream to start.
    pub fn request(&self, now_ms: u64) {
        self.counters
            .last_access_ms
            .fetch_max(now_ms, Ordering::Relaxed);
        self.demand.notify_one();
    }

    /// Records which input feeds the stream.
    pub fn set_active_input(&self, url: Option<&str>) {
        *self.active_input.write().unwrap_or_else(|p| p.into_inner()) = url.map(str::to_string);
    }

    /// The input feeding the stream now.
    pub fn active_input(&self) -> Option<String> {
        self.active_input
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The node a relayed copy follows now (its input is `relay://NODE`, see
    /// `relay::edge`); `None` for a stream from its own input.
    pub fn relayed_from(&self) -> Option<String> {
        let input = self.active_input()?;
        self.relay
            .then(|| input.strip_prefix(RELAYED_FROM_PREFIX).map(str::to_string))
            .flatten()
    }

    /// Resolves when a viewer asks for this stream (for on-demand streams).
    pub async fn demanded(&self) {
        self.demand.notified().await;
    }

    /// Waits (at most `limit`) until the stream has published a segment; false on timeout.
    pub async fn wait_ready(&self, limit: std::time::Duration) -> bool {
        let mut published = self.published.subscribe();
        tokio::time::timeout(limit, published.wait_for(|count| *count > 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits (at most `limit`) until the stream has started a GOP (a frame an RTMP player
    /// can start from); false on timeout.
    pub async fn wait_gop(&self, limit: std::time::Duration) -> bool {
        let mut gops = self.gops.subscribe();
        tokio::time::timeout(limit, gops.wait_for(|count| *count > 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The media playlist (see [`Window::media_playlist`]); `None` before the first segment.
    pub fn media_playlist(&self) -> Option<Bytes> {
        let window = self.window.read().unwrap_or_else(|p| p.into_inner());
        (!window.is_empty()).then(|| window.shared_media_playlist())
    }

    /// Whether the window has a segment yet (a playlist to serve).
    pub fn has_media(&self) -> bool {
        !self
            .window
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// What the master playlist advertises.
    /// Bytes of media held for viewers: the segment window, the current GOP (as
    /// MPEG-TS chunks and as frames) and the last audio frame. The viewers' queues share
    /// these buffers and are not counted again.
    pub fn held_bytes(&self) -> u64 {
        let window = self
            .window
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .held_bytes();
        let chunks: usize = self
            .gop
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(Bytes::len)
            .sum();
        let frames: usize = self
            .gop_frames
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|frame| frame.data.len())
            .sum();
        let audio: usize = self
            .last_audio
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flatten()
            .map(|frame| frame.data.len())
            .sum();
        window + (chunks + frames + audio) as u64
    }

    pub fn rendition(&self) -> Rendition {
        self.rendition
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A segment a relayed copy is about to have: one named after its newest (names
    /// order by start time), which the origin has sealed and published already and whose
    /// cut is on its way here. Waits for it at most `limit`; `None` for any other name
    /// or when it does not come.
    pub async fn segment_soon(
        &self,
        name: &str,
        limit: std::time::Duration,
    ) -> Option<Arc<Segment>> {
        let mut published = self.published.subscribe();
        let wait = async {
            loop {
                if let Some(segment) = self.segment(name) {
                    return Some(segment);
                }
                let newer = self
                    .newest_segment()
                    .is_none_or(|newest| name > newest.name.as_str());
                if !newer || published.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.ok().flatten()
    }

    /// A segment by name.
    pub fn segment(&self, name: &str) -> Option<Arc<Segment>> {
        self.window
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .find(name)
    }

    /// Subscribes a live viewer: the current GOP (starting with PAT/PMT and a keyframe),
    /// then every chunk after it. Atomic with respect to the packager: nothing is missed
    /// or repeated between the two.
    pub fn subscribe(&self) -> (Vec<Bytes>, broadcast::Receiver<Bytes>) {
        let gop = self.gop.read().unwrap_or_else(|p| p.into_inner());
        let receiver = self.chunks.subscribe();
        (gop.clone(), receiver)
    }

    /// Subscribes an RTMP player: the current GOP's frames, the latest frame of each
    /// audio track (for its codec configuration), then every frame after them.
    pub fn subscribe_frames(
        &self,
    ) -> (
        Vec<SharedFrame>,
        Vec<Frame>,
        broadcast::Receiver<SharedFrame>,
    ) {
        let gop = self.gop_frames.read().unwrap_or_else(|p| p.into_inner());
        let receiver = self.frames.subscribe();
        let audio = self
            .last_audio
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .flatten()
            .cloned()
            .collect();
        (gop.clone(), audio, receiver)
    }

    /// The program the stream's frames are muxed into now (empty before its tracks are
    /// settled).
    pub fn program(&self) -> Tracks {
        *self.program.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the program its frames are muxed into (the packager, on every frame: a
    /// read when nothing changed).
    pub(super) fn set_program(&self, program: Tracks) {
        if self.program() == program {
            return;
        }
        *self.program.write().unwrap_or_else(|p| p.into_inner()) = program;
        self.facts
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .keep_only(&program);
    }

    /// What the frames told about each track.
    pub fn track_facts(&self) -> TrackTable {
        self.facts.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Subscribes a relaying node: the window as it is (its shape and segments), then
    /// every frame and cut after the subscription. A cut may be in both (a race with the
    /// packager): the follower skips segments it holds.
    pub fn subscribe_follow(&self) -> (WindowSnapshot, broadcast::Receiver<FollowEvent>) {
        let receiver = self.follow.subscribe();
        let window = self.window.read().unwrap_or_else(|p| p.into_inner());
        let snapshot = WindowSnapshot {
            segment_count: self.packaging.segment_count,
            segment_duration_ms: self.packaging.segment_duration_ms,
            part_duration_ms: self.packaging.part_duration_ms,
            timeline_origin_ms: self.timeline_origin_ms(),
            discontinuity_sequence: window.discontinuity_sequence(),
            segments: window.held().cloned().collect(),
            rendition: self.rendition(),
        };
        (snapshot, receiver)
    }

    /// Segments after `sequence` still held, oldest first.
    pub fn segments_after(&self, sequence: Option<u64>) -> Vec<Arc<Segment>> {
        self.window
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .held()
            .filter(|s| sequence.is_none_or(|after| s.sequence > after))
            .cloned()
            .collect()
    }

    /// The newest segment held.
    pub fn newest_segment(&self) -> Option<Arc<Segment>> {
        let window = self.window.read().unwrap_or_else(|p| p.into_inner());
        window.held().last().cloned()
    }

    /// Takes a followed stream's window shape (see [`Window::adopt`]).
    pub(super) fn adopt_window(&self, segment_count: usize, discontinuity_sequence: u64) {
        self.window
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .adopt(segment_count, discontinuity_sequence);
    }

    pub(super) fn set_rendition(&self, rendition: Rendition) {
        *self.rendition.write().unwrap_or_else(|p| p.into_inner()) = rendition;
    }

    /// Adds a segment made elsewhere (see [`Window::push_made`]) and wakes viewers
    /// waiting for the stream's first one.
    pub(super) fn place_segment(&self, segment: Segment) {
        let (data, cmaf) = super::sealed::seal_segment(segment.data, segment.cmaf);
        let segment = Segment {
            data,
            cmaf,
            ..segment
        };
        let placed = self
            .window
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push_made(segment);
        if placed {
            self.published.send_modify(|count| *count += 1);
            self.parts.send_modify(|count| *count += 1);
        }
    }

    /// Counts an incoming frame (already on the stream's timeline) at `now_ms`.
    pub(super) fn count_frame(&self, frame: &Frame, now_ms: u64) {
        let counters = &self.counters;
        counters.frames_in.fetch_add(1, Ordering::Relaxed);
        let bytes = frame.data.len() as u64;
        counters.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        if let Some(track_bytes) = counters.track_bytes_in.get(usize::from(frame.track)) {
            track_bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        if frame.keyframe {
            self.learn(frame);
        }
        counters.last_frame_ms.store(now_ms, Ordering::Relaxed);
        counters.last_dts.fetch_max(frame.dts, Ordering::Relaxed);
    }

    /// Learns what `frame` tells about its track (under a read lock unless something
    /// changed), and what the master playlist says from it.
    fn learn(&self, frame: &Frame) {
        let program = self.program();
        let learnt = self
            .facts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .learnt_from(frame, &program);
        let Some(facts) = learnt else {
            return;
        };
        let mut table = self.facts.write().unwrap_or_else(|p| p.into_inner());
        table.set(frame.track, facts);
        let (resolution, codecs) = (table.resolution(), table.codec_strings());
        drop(table);
        let mut rendition = self.rendition.write().unwrap_or_else(|p| p.into_inner());
        if let Some((width, height)) = resolution {
            rendition.width = Some(width);
            rendition.height = Some(height);
        }
        rendition.codecs = codecs;
    }

    /// Hands a muxed frame to the live viewers: its TS bytes (HTTP-MPEG-TS), the frame
    /// itself (RTMP), and the latest audio frame (for joining RTMP players).
    pub(super) fn deliver(&self, frame: &Frame, muxed: &Muxed) {
        publish(
            &self.gop,
            &self.chunks,
            muxed.bytes.clone(),
            muxed.random_access,
            Bytes::len,
        );
        publish(
            &self.gop_frames,
            &self.frames,
            PlayedFrame::shared(frame.clone()),
            frame.starts_gop(),
            |f: &SharedFrame| f.data.len(),
        );
        if frame.starts_gop() {
            self.gops.send_modify(|count| *count += 1);
        }
        if !frame.codec.is_video() {
            let mut last = self.last_audio.write().unwrap_or_else(|p| p.into_inner());
            if let Some(slot) = last.get_mut(usize::from(frame.track)) {
                *slot = Some(frame.clone());
            }
        }
    }

    /// Tells relaying nodes about a frame (after the cut it follows, if any).
    pub(super) fn follow_frame(&self, frame: &Frame, in_segment: bool) {
        self.follow.send(FollowEvent::Frame {
            frame: frame.clone(),
            in_segment,
        });
    }

    /// Tells relaying nodes where a segment ended.
    pub(super) fn follow_cut(&self, cut: Arc<Cut>) {
        self.follow.send(FollowEvent::Cut(cut));
    }

    /// Whether a frame arrived within `within_ms` of `now_ms`.
    pub fn is_alive(&self, now_ms: u64, within_ms: u64) -> bool {
        let last = self.counters.last_frame_ms.load(Ordering::Relaxed);
        last != 0 && now_ms.saturating_sub(last) <= within_ms
    }
}

/// Turns frames into the shared state of a [`LiveStream`]. Owned by the input task.
#[derive(Debug)]
pub struct Packager {
    live: Arc<LiveStream>,
    muxer: Muxer,
    segmenter: Segmenter,
    cmaf: CmafPackager,
    /// (Unix ms, dts) of the first frame: maps stream time to wall time for PDT.
    anchor: Option<(u64, u64)>,
    /// Bytes received in the current bitrate window and when it started (dts).
    window_bytes: u64,
    window_start: Option<u64>,
    /// Added to every timestamp since the last switch, so that a new source never starts
    /// behind what viewers already have.
    shift: u64,
    highest_dts: Option<u64>,
    /// What the source declares it carries (its PMT, the publisher's metadata).
    declared: Tracks,
    /// Holds the first frames until the program's tracks are known.
    gate: TrackGate,
    /// A track the program gained after it started: its frames wait for the next video
    /// keyframe, where the new PMT goes out and the segment is cut.
    joining: Option<Tracks>,
}

impl Packager {
    pub fn new(live: Arc<LiveStream>) -> Packager {
        let segment_ms = live.packaging.segment_duration_ms;
        Packager {
            cmaf: CmafPackager::new(live.packaging.part_duration_ms),
            live,
            muxer: Muxer::new(Tracks::SIMPLE_H264_AAC),
            segmenter: Segmenter::new(segment_ms),
            anchor: None,
            window_bytes: 0,
            window_start: None,
            shift: 0,
            highest_dts: None,
            declared: Tracks::EMPTY,
            gate: TrackGate::default(),
            joining: None,
        }
    }

    /// The stream being packaged.
    pub fn live(&self) -> &Arc<LiveStream> {
        &self.live
    }

    /// Records which tracks the source declares (its PMT, the publisher's metadata or
    /// sequence headers): the stream's first segment waits until each has delivered a
    /// frame (see [`super::tracks`]).
    pub fn declare_tracks(&mut self, tracks: Tracks) {
        self.declared = tracks;
    }

    /// Packages one frame that arrived at `now_ms` (Unix). `discontinuity` marks a source
    /// switch or a timestamp jump.
    pub fn push(&mut self, frame: &Frame, discontinuity: bool, now_ms: u64) {
        let switched_tracks = self.gate.settled().filter(|settled| {
            discontinuity && !self.declared.is_empty() && *settled != self.declared
        });
        if switched_tracks.is_some() {
            // A new source with other tracks: its first segment is cut anyway.
            self.gate.resettle(self.declared);
            self.muxer.set_tracks(self.declared);
            self.joining = None;
        }
        match self.gate.offer(frame, discontinuity, self.declared, now_ms) {
            Gated::Held => {}
            Gated::Pass => self.package(frame, discontinuity, now_ms),
            Gated::Release(frames) => {
                if let Some(settled) = self.gate.settled() {
                    self.muxer.set_tracks(settled);
                }
                for (frame, discontinuity) in frames {
                    self.package(&frame, discontinuity, now_ms);
                }
            }
        }
    }

    /// Whether `frame` goes into the program now, and whether the segment must be cut
    /// before it. A frame of a track the program lacks adds the track: the new PMT goes
    /// out with the next video keyframe, which starts a segment marked as a
    /// discontinuity; until then the new track's frames are dropped (no PMT names them).
    fn admit(&mut self, frame: &Frame) -> (bool, bool) {
        let program = self.muxer.tracks();
        if !program.carries(frame) {
            // A new track, or a track whose codec changed without a source switch.
            let mut grown = program;
            grown.set(frame.track, Track::of(frame.codec));
            let grown = grown.described_by(&self.declared);
            tracing::info!(
                stream = %self.live.name,
                tracks = %grown.describe(),
                "the source added or changed a track: the program changes at the next keyframe"
            );
            self.muxer.set_tracks(grown);
            self.gate.resettle(grown);
            self.joining = Some(
                self.joining
                    .unwrap_or_default()
                    .union(&Tracks::of_frame(frame)),
            );
            return (false, false);
        }
        match self.joining {
            Some(_) if frame.starts_gop() => {
                self.joining = None;
                (true, true)
            }
            Some(joining) if joining.carries(frame) => (false, false),
            _ => (true, false),
        }
    }

    fn package(&mut self, frame: &Frame, discontinuity: bool, now_ms: u64) {
        if discontinuity {
            // One frame (40 ms) after the newest timestamp already out, or no shift if the
            // new source is ahead anyway.
            let floor = self
                .highest_dts
                .map_or(0, |highest| highest + CLOCK_HZ / 25);
            self.shift = floor.saturating_sub(frame.dts);
        }
        let (admitted, track_cut) = self.admit(frame);
        if !admitted {
            return;
        }
        let shifted;
        let frame = if self.shift == 0 {
            frame
        } else {
            shifted = Frame {
                dts: frame.dts + self.shift,
                pts: frame.pts + self.shift,
                ..frame.clone()
            };
            &shifted
        };
        self.highest_dts = self.highest_dts.max(Some(frame.dts));
        self.live.set_program(self.muxer.tracks());
        self.live.count_frame(frame, now_ms);
        self.measure_bitrate(frame);
        let (anchor_ms, anchor_dts) = *self.anchor.get_or_insert_with(|| {
            self.live
                .set_timeline_origin(now_ms.saturating_sub(ticks_to_ms(frame.dts)));
            (now_ms, frame.dts)
        });
        let mux_before = self.muxer.state();
        let muxed = self.muxer.mux(frame);
        if muxed.bytes.is_empty() {
            return;
        }
        self.live.deliver(frame, &muxed);
        let pushed = self.segmenter.push_kept(Chunk {
            dts: frame.dts,
            starts_gop: muxed.random_access,
            discontinuity: discontinuity || track_cut,
            bytes: muxed.bytes,
        });
        if let Some(sealed) = pushed.sealed {
            let start_ms = anchor_ms + ticks_to_ms(sealed.start_dts.saturating_sub(anchor_dts));
            let duration_ms = ticks_to_ms(sealed.duration_ticks).max(1);
            let fragments = self.cmaf.cut(frame.dts);
            // Into a sealed file before the window's lock: every viewer is sent its pages.
            let (bytes, fragments) = super::sealed::seal_segment(sealed.bytes, fragments);
            let mut window = self.live.window.write().unwrap_or_else(|p| p.into_inner());
            let segment = window.push(
                start_ms,
                duration_ms,
                sealed.discontinuity,
                bytes,
                fragments,
            );
            drop(window);
            self.live.published.send_modify(|count| *count += 1);
            self.live.parts.send_modify(|count| *count += 1);
            // The frame that sealed it opens the next segment: muxed from `mux_before`.
            self.live.follow_cut(Arc::new(Cut {
                segment: SegmentInfo::of(&segment),
                next: mux_before,
                next_dts: frame.dts,
                rendition: self.live.rendition(),
            }));
        }
        for part in self.cmaf.frame(frame, pushed.kept) {
            self.live.add_part(part);
        }
        self.live.follow_frame(frame, pushed.kept);
    }

    fn measure_bitrate(&mut self, frame: &Frame) {
        let start = *self.window_start.get_or_insert(frame.dts);
        self.window_bytes += frame.data.len() as u64;
        let elapsed_ms = ticks_to_ms(frame.dts.saturating_sub(start));
        if elapsed_ms >= BITRATE_WINDOW_MS {
            let bitrate = self.window_bytes * 8 * 1000 / elapsed_ms;
            self.live
                .counters
                .input_bitrate
                .store(bitrate, Ordering::Relaxed);
            let mut rendition = self
                .live
                .rendition
                .write()
                .unwrap_or_else(|p| p.into_inner());
            // Advertise the peak-ish rate: 20 % above the average covers VBR peaks.
            rendition.bandwidth_bps = bitrate * 6 / 5;
            self.window_start = Some(frame.dts);
            self.window_bytes = 0;
        }
    }
}

/// The live followers of one of a stream's outputs: a broadcast ring of
/// [`VIEWER_QUEUE_CHUNKS`] slots, created when the first viewer subscribes. Both
/// [`Followers::subscribe`] and [`Followers::send`] run under the lock of the GOP cache
/// the viewer joins from, so the ring a subscriber creates is the one the next item goes
/// to.
#[derive(Debug)]
struct Followers<T> {
    ring: OnceLock<broadcast::Sender<T>>,
}

impl<T> Default for Followers<T> {
    fn default() -> Self {
        Followers {
            ring: OnceLock::new(),
        }
    }
}

impl<T: Clone> Followers<T> {
    fn subscribe(&self) -> broadcast::Receiver<T> {
        self.ring
            .get_or_init(|| broadcast::channel(VIEWER_QUEUE_CHUNKS).0)
            .subscribe()
    }

    /// Sends to the viewers following now; without any, the item is only cached.
    fn send(&self, item: T) {
        if let Some(ring) = self.ring.get() {
            let _ = ring.send(item);
        }
    }
}

/// Publishes one item to live followers and to the current-GOP cache they join from: the
/// cache restarts at every random-access item and stops growing past
/// [`MAX_GOP_CACHE_BYTES`]. The send happens under the cache's lock, so that a subscriber
/// (which takes the cache and subscribes under the same lock) sees each item exactly once.
fn publish<T: Clone>(
    cache: &RwLock<Vec<T>>,
    followers: &Followers<T>,
    item: T,
    random_access: bool,
    size: impl Fn(&T) -> usize,
) {
    let mut gop = cache.write().unwrap_or_else(|p| p.into_inner());
    if random_access {
        gop.clear();
    }
    let cached: usize = gop.iter().map(&size).sum();
    if (!gop.is_empty() || random_access) && cached + size(&item) <= MAX_GOP_CACHE_BYTES {
        gop.push(item.clone());
    }
    followers.send(item);
}

/// What a rendered text is: a track's LL-HLS playlist (whole or a delta update), the
/// LL-HLS master, or the DASH manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderedKey {
    Playlist { track: u8, skip: bool },
    Master,
    Manifest,
}

/// Most texts kept per stream: two playlists per track, the master and the manifest.
pub const MAX_RENDERED_TEXTS: usize = 2 * MAX_TRACKS + 2;

#[derive(Debug)]
struct Rendered {
    key: RenderedKey,
    generation: u64,
    text: Bytes,
}

/// A stream's window as a relaying node first receives it.
#[derive(Debug, Clone)]
pub struct WindowSnapshot {
    pub segment_count: usize,
    pub segment_duration_ms: u64,
    pub part_duration_ms: u64,
    pub timeline_origin_ms: u64,
    pub discontinuity_sequence: u64,
    pub segments: Vec<Arc<Segment>>,
    pub rendition: Rendition,
}

/// How a relayed copy's active input names the node it follows: `relay://NODE`.
pub const RELAYED_FROM_PREFIX: &str = "relay://";

/// Ticks per millisecond, for callers converting wall time into stream time.
pub const TICKS_PER_MS: u64 = CLOCK_HZ / 1000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::source::ClipFrames;

    /// Feeds `seconds` of the test clip to `packager` as if it arrived in real time,
    /// skipping the frames `keep` refuses.
    fn feed_clip(packager: &mut Packager, seconds: u64, keep: impl Fn(&Frame) -> bool) {
        let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        let start_ms = 1_700_000_000_000;
        loop {
            let (frame, discontinuity) = clip.next_frame();
            if frame.dts > seconds * CLOCK_HZ {
                break;
            }
            if keep(&frame) {
                packager.push(&frame, discontinuity, start_ms + frame.dts / TICKS_PER_MS);
            }
        }
    }

    /// Packages `seconds` of the test clip as if it arrived in real time.
    fn package(seconds: u64) -> Arc<LiveStream> {
        let live = LiveStream::new(
            "test",
            Packaging {
                segment_duration_ms: 2_000,
                segment_count: 3,
                part_duration_ms: 200,
            },
        );
        feed_clip(&mut Packager::new(live.clone()), seconds, |_| true);
        live
    }

    #[test]
    fn the_test_clip_fills_a_window_of_two_second_segments() {
        let live = package(20);
        let playlist = live.media_playlist().unwrap();
        let parsed = m3u8_rs::parse_media_playlist_res(&playlist).unwrap();
        assert_eq!(parsed.segments.len(), 3);
        for segment in &parsed.segments {
            assert!(
                (segment.duration - 2.0).abs() < 0.05,
                "{}",
                segment.duration
            );
            let data = live.segment(&segment.uri).unwrap().data.clone();
            assert_eq!(data.len() % 188, 0);
            assert_eq!(data[0], 0x47);
        }
        let rendition = live.rendition();
        assert_eq!((rendition.width, rendition.height), (Some(640), Some(360)));
        assert_eq!(rendition.codecs.len(), 2, "{:?}", rendition.codecs);
        assert!(
            rendition.bandwidth_bps > 200_000 && rendition.bandwidth_bps < 800_000,
            "{}",
            rendition.bandwidth_bps
        );
        assert!(live.counters.input_bitrate.load(Ordering::Relaxed) > 0);
    }

    #[test]
    fn a_subscriber_starts_with_the_current_gop() {
        let live = package(3);
        let (gop, _receiver) = live.subscribe();
        assert!(!gop.is_empty());
        // The GOP starts with the PAT (PID 0).
        assert_eq!(gop[0][0], 0x47);
        assert_eq!(
            ((u16::from(gop[0][1]) & 0x1f) << 8) | u16::from(gop[0][2]),
            0
        );
    }

    #[test]
    fn a_viewer_that_stops_reading_is_lagged_out_not_waited_for() {
        let live = LiveStream::new("slow", Packaging::default());
        let mut packager = Packager::new(live.clone());
        let (_, mut slow) = live.subscribe();
        let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        // The packager never blocks on the viewer: it keeps publishing.
        for _ in 0..VIEWER_QUEUE_CHUNKS + 10 {
            let (frame, _) = clip.next_frame();
            packager.push(&frame, false, 1_700_000_000_000 + frame.dts / TICKS_PER_MS);
        }
        match slow.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(missed)) => assert!(missed >= 10),
            other => panic!("the slow viewer should have lagged out, got {other:?}"),
        }
    }

    #[test]
    fn viewer_rings_exist_only_once_someone_watches_and_miss_nothing_after() {
        let live = package(3);
        assert!(live.chunks.ring.get().is_none() && live.frames.ring.get().is_none());
        let (gop, mut chunks) = live.subscribe();
        let (gop_frames, _, mut frames) = live.subscribe_frames();
        assert!(!gop.is_empty() && !gop_frames.is_empty());
        let mut packager = Packager::new(live.clone());
        // A source that declares video only: its first keyframe settles the tracks.
        packager.declare_tracks(Tracks::SIMPLE_H264);
        let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        let (frame, _) = clip.next_frame();
        packager.push(&frame, false, 1_700_000_000_000);
        assert_eq!(frames.try_recv().unwrap().dts, frame.dts);
        assert!(chunks.try_recv().is_ok());
    }

    /// The tracks the PMT at the start of `segment` names.
    fn segment_tracks(segment: &[u8]) -> Tracks {
        let mut demuxer = crate::media::ts::demux::Demuxer::new();
        demuxer.push(&segment[..188 * 2], &mut Vec::new());
        demuxer.announced_tracks()
    }

    /// Packages `seconds` of the test clip with its audio held back until `audio_from`
    /// seconds, as an RTMP publisher that starts with video would send it.
    fn package_with_late_audio(seconds: u64, audio_from: u64, declared: Tracks) -> Arc<LiveStream> {
        let live = LiveStream::new(
            "late-audio",
            Packaging {
                segment_duration_ms: 1_000,
                segment_count: 20,
                part_duration_ms: 200,
            },
        );
        let mut packager = Packager::new(live.clone());
        packager.declare_tracks(declared);
        feed_clip(&mut packager, seconds, |frame| {
            frame.codec.is_video() || frame.dts >= audio_from * CLOCK_HZ
        });
        live
    }

    fn segments_of(live: &LiveStream) -> Vec<(bool, Bytes)> {
        let playlist = live.media_playlist().unwrap();
        let parsed = m3u8_rs::parse_media_playlist_res(&playlist).unwrap();
        parsed
            .segments
            .iter()
            .map(|s| (s.discontinuity, live.segment(&s.uri).unwrap().data.clone()))
            .collect()
    }

    const BOTH: Tracks = Tracks::SIMPLE_H264_AAC;

    #[test]
    fn the_first_segment_names_audio_that_arrives_after_the_first_keyframe() {
        // Audio 1 s late, declared by the publisher's metadata.
        let live = package_with_late_audio(8, 1, BOTH);
        let segments = segments_of(&live);
        assert!(segments.len() >= 5);
        for (discontinuity, bytes) in &segments {
            assert_eq!(segment_tracks(bytes), BOTH);
            assert!(!discontinuity);
        }
        // Undeclared (a source without metadata): the same, within the discovery deadline.
        let live = package_with_late_audio(8, 1, Tracks::EMPTY);
        for (_, bytes) in segments_of(&live) {
            assert_eq!(segment_tracks(&bytes), BOTH);
        }
    }

    #[test]
    fn a_track_that_appears_later_starts_a_discontinuity_with_a_new_pmt() {
        // Declared video only, audio from 5 s on: too late to be waited for.
        let video = Tracks::SIMPLE_H264;
        let live = package_with_late_audio(12, 5, video);
        let segments = segments_of(&live);
        let first_with_audio = segments
            .iter()
            .position(|(_, bytes)| segment_tracks(bytes) == BOTH)
            .expect("audio joins the program");
        assert!(first_with_audio > 0);
        assert!(segments[first_with_audio].0, "marked as a discontinuity");
        for (index, (discontinuity, bytes)) in segments.iter().enumerate() {
            let expected = if index < first_with_audio {
                video
            } else {
                BOTH
            };
            assert_eq!(segment_tracks(bytes), expected, "segment {index}");
            assert_eq!(*discontinuity, index == first_with_audio, "segment {index}");
        }
    }
}
