//! A stream's timeline as another node follows it, and the packager of a followed stream.
//!
//! Every node that serves a stream serves the same HLS: the same segment names, media
//! sequence numbers, durations and discontinuities, so that a viewer whose playlist came
//! from one node can take the next segment from another (a load balancer without sticky
//! sessions). The node that packages a stream from its input publishes, beside its
//! frames, where each segment ended ([`Cut`]): the segment's name, sequence number,
//! duration and program date, and the muxer's state at the start of the next one. A
//! [`Replica`] on a relaying node muxes the same frames from the same state, so its
//! segments are the origin's byte for byte, and it names and numbers them as the
//! origin did. What it missed (the window before it subscribed, a stretch it fell
//! behind) comes whole from the origin's window.
//!
//! A replica follows whichever node has the stream: when that changes (a failover) the
//! new origin's numbering may be behind, and the replica then continues its own numbers
//! above the ones it served, marking the first segment of the new timeline as a
//! discontinuity, so its viewers' playlists never go back.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::cmaf::{CmafPackager, PartSpan, TrackInit, TrackSegment};
use super::frame::Frame;
use super::live::LiveStream;
use super::program::{MAX_TRACKS, Track, Tracks};
use super::segmenter::MAX_SEGMENT_BYTES;
use super::ts::mux::{BadMuxState, MuxState, Muxer};
use super::window::{Rendition, Segment};

/// Where one segment ended, as the packager that cut it saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub segment: SegmentInfo,
    /// The muxer's state at the first frame of the next segment.
    pub next: MuxState,
    /// The decode time of the next segment's first frame: where this one's last CMAF
    /// samples end.
    pub next_dts: u64,
    pub rendition: Rendition,
}

/// A segment without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub sequence: u64,
    pub name: String,
    pub duration_ms: u64,
    pub program_date_time_ms: u64,
    pub discontinuity: bool,
}

impl SegmentInfo {
    pub fn of(segment: &Segment) -> SegmentInfo {
        SegmentInfo {
            sequence: segment.sequence,
            name: segment.name.clone(),
            duration_ms: segment.duration_ms,
            program_date_time_ms: segment.program_date_time_ms,
            discontinuity: segment.discontinuity,
        }
    }

    fn with_data(self, data: Bytes, cmaf: Vec<TrackSegment>) -> Segment {
        Segment {
            sequence: self.sequence,
            name: self.name,
            duration_ms: self.duration_ms,
            program_date_time_ms: self.program_date_time_ms,
            discontinuity: self.discontinuity,
            data,
            cmaf,
        }
    }
}

/// What a follower of a stream receives, in the order the packager produced it.
#[derive(Debug, Clone)]
pub enum FollowEvent {
    /// A frame as muxed; `in_segment`: its bytes went into the open segment.
    Frame { frame: Frame, in_segment: bool },
    /// A segment ended before the next frame.
    Cut(Arc<Cut>),
}

/// The origin's stream as a subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub segment_count: usize,
    pub discontinuity_sequence: u64,
    pub part_duration_ms: u64,
    /// Unix ms of the origin's time zero (see `LiveStream::timeline_origin_ms`).
    pub timeline_origin_ms: u64,
}

/// One track's CMAF fragments of a whole segment, as they start arriving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragmentsHead {
    pub sequence: u64,
    pub track: u8,
    /// Decode time of the first sample and the duration, in the track's timescale.
    pub start: u64,
    pub duration: u64,
    /// (bytes, duration, independent) of each part, in order.
    pub parts: Vec<(u32, u64, bool)>,
}

/// CMAF fragments of whole segments: they arrive before the segment's TS bytes and go
/// into the window with them.
#[derive(Debug, Default)]
struct WholeFragments {
    /// The last init received per track.
    inits: [Option<Arc<TrackInit>>; MAX_TRACKS],
    /// The segment whose fragments are gathered, and those complete so far.
    sequence: Option<u64>,
    tracks: Vec<TrackSegment>,
    /// A track's fragments arriving in parts.
    open: Option<(FragmentsHead, BytesMut)>,
}

/// Why a replica refused what its origin sent: the origin is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Mux(#[from] BadMuxState),
    #[error("segment {0} arrived out of order or grew past {MAX_SEGMENT_BYTES} bytes")]
    SegmentParts(u64),
    #[error(
        "the CMAF fragments of segment {0} arrived without their init, out of order or not as long as their parts"
    )]
    Fragments(u64),
}

/// The packager of a stream this node relays: it rebuilds the origin's segments from the
/// origin's frames and cuts, and serves the frames to its own live viewers.
#[derive(Debug)]
pub struct Replica {
    live: Arc<LiveStream>,
    muxer: Muxer,
    /// The segment being rebuilt since the last `resume` or cut (`None` until the first
    /// resume of a subscription: frames before it belong to a segment that comes whole).
    open: Option<BytesMut>,
    /// A whole segment arriving in parts: its info and the bytes so far.
    parts: Option<(SegmentInfo, BytesMut)>,
    /// Added to the origin's sequence numbers (see the module header).
    sequence_offset: u64,
    /// The current subscription has not placed a segment yet: its first one decides
    /// whether it continues what the window holds.
    fresh_subscription: bool,
    /// Cuts the same CMAF parts as the origin's from the same frames and cuts.
    cmaf: CmafPackager,
    /// The origin's part duration.
    part_duration_ms: u64,
    whole: WholeFragments,
}

impl Replica {
    pub fn new(live: Arc<LiveStream>) -> Replica {
        Replica {
            muxer: Muxer::new(Tracks::SIMPLE_H264_AAC),
            open: None,
            parts: None,
            sequence_offset: 0,
            fresh_subscription: true,
            cmaf: CmafPackager::new(live.packaging.part_duration_ms),
            part_duration_ms: live.packaging.part_duration_ms,
            whole: WholeFragments::default(),
            live,
        }
    }

    pub fn live(&self) -> &Arc<LiveStream> {
        &self.live
    }

    /// A subscription starts: the origin's window shape, CMAF part duration, time zero
    /// and rendition. Frames until the next `resume` are not part of any segment here.
    pub fn start(&mut self, shape: Shape, rendition: Rendition) {
        let Shape {
            segment_count,
            discontinuity_sequence,
            part_duration_ms,
            timeline_origin_ms,
        } = shape;
        self.open = None;
        self.parts = None;
        self.fresh_subscription = true;
        self.whole = WholeFragments::default();
        self.cmaf = CmafPackager::new(part_duration_ms);
        self.part_duration_ms = part_duration_ms;
        self.live.set_part_target(part_duration_ms);
        self.live.set_timeline_origin(timeline_origin_ms);
        self.live
            .adopt_window(segment_count, discontinuity_sequence);
        self.live.set_rendition(rendition);
    }

    /// One part of a whole segment from the origin's window.
    pub fn segment_part(
        &mut self,
        info: SegmentInfo,
        offset: u64,
        last: bool,
        bytes: &[u8],
    ) -> Result<(), ReplicaError> {
        let sequence = info.sequence;
        let (held, mut data) = match self.parts.take() {
            Some((held, data)) if held == info && data.len() as u64 == offset => (held, data),
            None if offset == 0 => (info, BytesMut::new()),
            _ => return Err(ReplicaError::SegmentParts(sequence)),
        };
        if data.len() + bytes.len() > MAX_SEGMENT_BYTES {
            return Err(ReplicaError::SegmentParts(sequence));
        }
        data.extend_from_slice(bytes);
        if last {
            let fragments = match self.whole.sequence.take() {
                Some(of) if of == held.sequence => std::mem::take(&mut self.whole.tracks),
                _ => Vec::new(),
            };
            self.whole.tracks.clear();
            self.place(held, data.freeze(), fragments);
        } else {
            self.parts = Some((held, data));
        }
        Ok(())
    }

    /// A track's CMAF init: the next whole fragments of that track are in it.
    pub fn cmaf_init(&mut self, init: TrackInit) {
        if let Some(slot) = self.whole.inits.get_mut(usize::from(init.track)) {
            *slot = Some(Arc::new(init));
        }
    }

    /// One part of a track's CMAF fragments of a whole segment (before its TS bytes).
    pub fn fragments_part(
        &mut self,
        head: FragmentsHead,
        offset: u64,
        last: bool,
        bytes: &[u8],
    ) -> Result<(), ReplicaError> {
        let sequence = head.sequence;
        let refused = ReplicaError::Fragments(sequence);
        let whole = &mut self.whole;
        if whole.sequence != Some(sequence) {
            whole.sequence = Some(sequence);
            whole.tracks.clear();
            whole.open = None;
        }
        let (held, mut data) = match whole.open.take() {
            Some((held, data)) if held == head && data.len() as u64 == offset => (held, data),
            None if offset == 0 => (head, BytesMut::new()),
            _ => return Err(refused),
        };
        let total: u64 = held.parts.iter().map(|(len, _, _)| u64::from(*len)).sum();
        if data.len() as u64 + bytes.len() as u64 > total {
            return Err(refused);
        }
        data.extend_from_slice(bytes);
        if !last {
            whole.open = Some((held, data));
            return Ok(());
        }
        let init = whole
            .inits
            .get(usize::from(held.track))
            .cloned()
            .flatten()
            .ok_or(refused.clone())?;
        if data.len() as u64 != total {
            return Err(refused);
        }
        let mut offset = 0;
        let parts = held
            .parts
            .iter()
            .map(|&(len, duration, independent)| {
                let span = PartSpan {
                    offset,
                    len: len as usize,
                    duration,
                    independent,
                };
                offset += len as usize;
                span
            })
            .collect();
        whole.tracks.push(TrackSegment {
            init,
            start: held.start,
            duration: held.duration,
            data: data.freeze(),
            parts,
        });
        Ok(())
    }

    /// Live frames follow; the next segment starts with the next frame, muxed from `mux`.
    pub fn resume(&mut self, mux: MuxState) -> Result<(), ReplicaError> {
        self.muxer.restore(mux)?;
        self.open = Some(BytesMut::new());
        // Parts of a segment the subscription lost are dropped with it.
        self.cmaf = CmafPackager::new(self.part_duration_ms);
        Ok(())
    }

    /// One frame from the origin, arrived at `now_ms` (Unix).
    pub fn frame(&mut self, frame: &Frame, in_segment: bool, now_ms: u64) {
        let program = self.muxer.tracks();
        if !program.carries(frame) && !in_segment {
            // Before the first resume (or the origin's program grew and its next cut
            // brings the new state): live viewers get the track now; segments follow
            // the origin's state.
            let mut grown = program;
            grown.set(frame.track, Track::of(frame.codec));
            self.muxer.set_tracks(grown);
        }
        let muxed = self.muxer.mux(frame);
        if muxed.bytes.is_empty() {
            return;
        }
        self.live.set_program(self.muxer.tracks());
        self.live.count_frame(frame, now_ms);
        if let Some(open) = &mut self.open
            && in_segment
        {
            if open.len() + muxed.bytes.len() > MAX_SEGMENT_BYTES {
                // The origin bounds its segments the same way; a stream that does not is
                // not followed byte for byte, and the segment comes whole instead.
                self.open = None;
            } else {
                open.extend_from_slice(&muxed.bytes);
                for part in self.cmaf.frame(frame, in_segment) {
                    self.live.add_part(part);
                }
            }
        }
        self.live.deliver(frame, &muxed);
    }

    /// A segment ended at the origin: the frames since the last resume or cut make it.
    /// (A relayed copy is never served on, so nothing follows the replica itself.)
    pub fn cut(&mut self, cut: Cut) -> Result<(), ReplicaError> {
        self.muxer.restore(cut.next)?;
        let fragments = self.cmaf.cut(cut.next_dts);
        if let Some(open) = self.open.replace(BytesMut::new()) {
            self.place(cut.segment, open.freeze(), fragments);
        }
        self.live.set_rendition(cut.rendition);
        Ok(())
    }

    /// Adds a segment to the window under this replica's numbering. The first segment
    /// of a subscription decides how the subscription's segments fit the window (see
    /// [`Fit`]); segments already held are skipped by the window itself.
    fn place(&mut self, info: SegmentInfo, data: Bytes, cmaf: Vec<TrackSegment>) {
        let mut info = info;
        if self.fresh_subscription {
            match self.fit(&info) {
                Fit::Older => return,
                Fit::Held | Fit::Continues => {}
                Fit::Empty => self.sequence_offset = 0,
                Fit::NewTimeline { offset } => {
                    self.sequence_offset = offset;
                    info.discontinuity = true;
                }
            }
            self.fresh_subscription = false;
        }
        info.sequence += self.sequence_offset;
        self.live.place_segment(info.with_data(data, cmaf));
    }

    /// How the first segment of a subscription fits what the window holds.
    fn fit(&self, info: &SegmentInfo) -> Fit {
        let Some(newest) = self.live.newest_segment() else {
            return Fit::Empty;
        };
        let mapped = info.sequence + self.sequence_offset;
        let ends_ms = |s: &SegmentInfo| s.program_date_time_ms + s.duration_ms;
        let newest = SegmentInfo::of(&newest);
        if let Some(held) = self.live.segment(&info.name) {
            if held.sequence == mapped {
                return Fit::Held;
            }
        } else if mapped == newest.sequence + 1
            && info.program_date_time_ms.abs_diff(ends_ms(&newest)) <= CONTINUITY_SLACK_MS
        {
            return Fit::Continues;
        } else if ends_ms(info) <= ends_ms(&newest) {
            return Fit::Older;
        }
        Fit::NewTimeline {
            offset: (newest.sequence + 1).saturating_sub(info.sequence),
        }
    }
}

/// How a subscription's first segment fits a replica's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fit {
    /// The window holds nothing: the origin's numbers as they are.
    Empty,
    /// The window holds it under the same number: the subscription resumes the
    /// timeline the window follows.
    Held,
    /// It is the next segment of that timeline.
    Continues,
    /// It ends before the window's newest and is not held: skipped, and the next segment
    /// decides.
    Older,
    /// Another timeline: its numbers move by `offset` to stay above the window's, and
    /// it starts with a discontinuity.
    NewTimeline { offset: u64 },
}

/// How far apart the end of one segment and the start of the next may be, by their
/// program dates, for the second to continue the first.
const CONTINUITY_SLACK_MS: u64 = 1_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::CLOCK_HZ;
    use crate::media::live::{Packager, Packaging, TICKS_PER_MS};
    use crate::media::source::ClipFrames;
    use tokio::sync::broadcast::Receiver;

    const START_MS: u64 = 1_700_000_000_000;

    /// What the origin side of a subscription does with the follow events (see
    /// `relay::origin`), applied straight to a replica.
    struct Subscription {
        events: Receiver<FollowEvent>,
        last_sent: Option<u64>,
        synced: bool,
    }

    impl Subscription {
        fn open(origin: &Arc<LiveStream>, replica: &mut Replica) -> Subscription {
            let (snapshot, events) = origin.subscribe_follow();
            replica.start(
                Shape {
                    segment_count: snapshot.segment_count,
                    discontinuity_sequence: snapshot.discontinuity_sequence,
                    part_duration_ms: snapshot.part_duration_ms,
                    timeline_origin_ms: snapshot.timeline_origin_ms,
                },
                snapshot.rendition,
            );
            let mut last_sent = None;
            for segment in &snapshot.segments {
                send_whole(replica, segment);
                last_sent = Some(segment.sequence);
            }
            Subscription {
                events,
                last_sent,
                synced: false,
            }
        }

        fn drain(&mut self, origin: &LiveStream, replica: &mut Replica, now_ms: u64) {
            while let Ok(event) = self.events.try_recv() {
                match event {
                    FollowEvent::Cut(cut) if !self.synced => {
                        for segment in origin.segments_after(self.last_sent) {
                            send_whole(replica, &segment);
                            self.last_sent = Some(segment.sequence);
                        }
                        replica.resume(cut.next).unwrap();
                        self.synced = true;
                    }
                    FollowEvent::Cut(cut) => {
                        self.last_sent = Some(cut.segment.sequence);
                        replica.cut(Cut::clone(&cut)).unwrap();
                    }
                    FollowEvent::Frame { frame, in_segment } if self.synced => {
                        replica.frame(&frame, in_segment, now_ms);
                    }
                    FollowEvent::Frame { .. } => {}
                }
            }
        }
    }

    /// A whole segment as `relay::origin` sends it: each track's init and fragments,
    /// then the TS bytes.
    fn send_whole(replica: &mut Replica, segment: &Segment) {
        for fragments in &segment.cmaf {
            replica.cmaf_init(TrackInit::clone(&fragments.init));
            let head = FragmentsHead {
                sequence: segment.sequence,
                track: fragments.track(),
                start: fragments.start,
                duration: fragments.duration,
                parts: fragments
                    .parts
                    .iter()
                    .map(|p| (p.len as u32, p.duration, p.independent))
                    .collect(),
            };
            let (first, rest) = fragments.data.split_at(fragments.data.len() / 2);
            replica
                .fragments_part(head.clone(), 0, false, first)
                .unwrap();
            replica
                .fragments_part(head, first.len() as u64, true, rest)
                .unwrap();
        }
        replica
            .segment_part(SegmentInfo::of(segment), 0, true, &segment.data)
            .unwrap();
    }

    fn origin() -> (Arc<LiveStream>, Packager) {
        let live = LiveStream::new(
            "tv",
            Packaging {
                segment_duration_ms: 2_000,
                segment_count: 3,
                part_duration_ms: 200,
            },
        );
        let packager = Packager::new(live.clone());
        (live, packager)
    }

    fn copy() -> (Arc<LiveStream>, Replica) {
        let live = LiveStream::with_origin("tv", Packaging::default(), true);
        let replica = Replica::new(live.clone());
        (live, replica)
    }

    /// Plays the clip from `from_s` to `to_s` into the origin, draining the subscription
    /// after every frame.
    fn play(
        clip: &mut ClipFrames,
        packager: &mut Packager,
        mut follower: Option<(&mut Subscription, &mut Replica)>,
        to_s: u64,
    ) {
        loop {
            let (frame, discontinuity) = clip.next_frame();
            let now_ms = START_MS + frame.dts / TICKS_PER_MS;
            packager.push(&frame, discontinuity, now_ms);
            if let Some((subscription, replica)) = follower.as_mut() {
                subscription.drain(packager.live(), replica, now_ms);
            }
            if frame.dts > to_s * CLOCK_HZ {
                return;
            }
        }
    }

    /// A replica that subscribes mid-stream serves the origin's playlist, text for text,
    /// and the origin's segments, byte for byte: those it received whole and those it
    /// muxed itself from the origin's frames.
    #[test]
    fn a_replica_serves_the_origins_playlist_and_segments() {
        let (origin, mut packager) = origin();
        let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        play(&mut clip, &mut packager, None, 5);
        let (copy, mut replica) = copy();
        let mut subscription = Subscription::open(&origin, &mut replica);
        use crate::media::cmaf::playlist;
        let shape = playlist::Shape {
            part_target_ms: 200,
            segment_count: 3,
        };
        let ll_hls = |live: &LiveStream, track| {
            live.with_window(|w| playlist::media_playlist(w, track, shape, false))
        };
        play(
            &mut clip,
            &mut packager,
            Some((&mut subscription, &mut replica)),
            8,
        );
        // Soon after it subscribed (segments it got whole, the open segment's parts cut
        // here): the origin's LL-HLS playlists, text for text.
        for track in [0, 1] {
            assert!(ll_hls(&origin, track).is_some());
            assert_eq!(ll_hls(&copy, track), ll_hls(&origin, track));
        }
        play(
            &mut clip,
            &mut packager,
            Some((&mut subscription, &mut replica)),
            30,
        );
        let playlist = origin.media_playlist().unwrap();
        assert_eq!(copy.media_playlist(), Some(playlist.clone()));
        let parsed = m3u8_rs::parse_media_playlist_res(&playlist).unwrap();
        assert_eq!(parsed.segments.len(), 3);
        for segment in origin.segments_after(None) {
            let held = copy.segment(&segment.name).expect("held by the copy");
            assert_eq!(held.sequence, segment.sequence);
            assert!(held.data == segment.data, "{} differs", segment.name);
            // Cut from the same frames and cuts: the same CMAF fragments.
            assert!(!held.cmaf.is_empty() && held.cmaf == segment.cmaf);
        }
        assert_eq!(copy.rendition(), origin.rendition());
        // And so the same LL-HLS playlists and DASH manifest.
        for track in [0, 1] {
            assert_eq!(ll_hls(&copy, track), ll_hls(&origin, track));
        }
        let manifest = |live: &LiveStream| {
            live.with_window(|w| playlist::manifest(w, live.timeline_origin_ms(), 3))
        };
        assert!(manifest(&origin).is_some());
        assert_eq!(manifest(&copy), manifest(&origin));
    }

    /// A replica that falls behind (its subscription loses events) resumes at the next
    /// boundary with what it missed sent whole: the playlist has no hole.
    #[test]
    fn a_lagging_replica_catches_up_whole_segments() {
        let (origin, mut packager) = origin();
        let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        let (copy, mut replica) = copy();
        let mut subscription = Subscription::open(&origin, &mut replica);
        play(
            &mut clip,
            &mut packager,
            Some((&mut subscription, &mut replica)),
            8,
        );
        // Six seconds of events lost, as a lagging receiver loses them.
        play(&mut clip, &mut packager, None, 14);
        while subscription.events.try_recv().is_ok() {}
        subscription.synced = false;
        play(
            &mut clip,
            &mut packager,
            Some((&mut subscription, &mut replica)),
            24,
        );
        assert_eq!(copy.media_playlist(), origin.media_playlist());
    }

    /// The stream's owner changes (a failover): the new origin numbers from 0 again. The
    /// replica's numbers go on above the ones it served, with a discontinuity.
    #[test]
    fn a_new_origin_does_not_take_the_media_sequence_back() {
        let (first, mut first_packager) = origin();
        let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        let (copy, mut replica) = copy();
        let mut subscription = Subscription::open(&first, &mut replica);
        play(
            &mut clip,
            &mut first_packager,
            Some((&mut subscription, &mut replica)),
            12,
        );
        let before = copy.newest_segment().unwrap().sequence;
        let (second, mut second_packager) = origin();
        let mut subscription = Subscription::open(&second, &mut replica);
        play(
            &mut clip,
            &mut second_packager,
            Some((&mut subscription, &mut replica)),
            24,
        );
        let after: Vec<_> = copy.segments_after(Some(before));
        assert!(!after.is_empty());
        assert_eq!(after[0].sequence, before + 1, "numbers go on");
        assert!(after[0].discontinuity, "the new timeline is marked");
        assert!(after.windows(2).all(|w| w[1].sequence == w[0].sequence + 1));
        // From there on the copy has the new origin's segments under its own numbers.
        let newest = second.newest_segment().unwrap();
        assert!(copy.segment(&newest.name).unwrap().data == newest.data);
    }
}
