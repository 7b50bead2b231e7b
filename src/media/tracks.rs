//! Which tracks a stream's program carries, settled before its first segment.
//!
//! MSE players (hls.js, dash.js, Safari's MSE path) build their source buffers from the
//! first segment's PMT: a track that shows up later has no buffer to go to, which hls.js
//! treats as fatal. An RTMP publisher sends its first video keyframe before its first
//! audio frame, so a packager that wrote the PMT from the tracks seen so far would start
//! the stream video-only and break every early viewer.
//!
//! So a starting stream holds its first frames in a [`TrackGate`] until it knows every
//! track it will carry: each track its source declared (the source's PMT, the publisher's
//! metadata or sequence headers) has delivered a frame, or, when it declared nothing, both
//! video and audio have, or
//! [`TRACK_DISCOVERY_MS`] passed (by wall clock or by stream time, whichever is first),
//! or [`TRACK_DISCOVERY_MAX_FRAMES`] are held. Then the tracks are settled and the held
//! frames go out in order, from the last video keyframe before the first audio frame, so
//! that the first segment carries samples of every track (a player configures a track
//! from its samples, not from the PMT alone). A track that still appears later changes the program: the
//! packager gives it a new PMT version and cuts a segment with EXT-X-DISCONTINUITY there
//! (see `live::Packager`).

use std::collections::VecDeque;

use super::frame::{CLOCK_HZ, Frame};
use super::program::Tracks;

/// Longest a starting stream waits for a declared track to deliver its first frame (or
/// for audio, when nothing was declared) before it settles on the tracks it has seen.
/// Publishers send audio within a frame or two of video; 2 s also covers a source whose
/// PMT names a track that never carries anything.
pub const TRACK_DISCOVERY_MS: u64 = 2_000;

/// Most frames held while tracks are discovered: a source that sends a burst faster than
/// real time settles at this count rather than growing the buffer (~10 s at 50 frames/s).
pub const TRACK_DISCOVERY_MAX_FRAMES: usize = 512;

/// What the gate did with an offered frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Gated {
    /// Held while tracks are discovered.
    Held,
    /// The tracks were settled before: package the frame now.
    Pass,
    /// The tracks are settled now ([`TrackGate::settled`]): package these frames (the
    /// offered one last) with their discontinuity flags, in order.
    Release(Vec<(Frame, bool)>),
}

#[derive(Debug)]
enum State {
    Discovering {
        held: VecDeque<(Frame, bool)>,
        /// Wall clock (Unix ms) and dts of the first held frame.
        first: Option<(u64, u64)>,
        seen: Tracks,
    },
    Settled(Tracks),
}

/// Holds a starting stream's frames until its tracks are known. Pure: time comes in.
#[derive(Debug)]
pub struct TrackGate {
    state: State,
}

impl Default for TrackGate {
    fn default() -> TrackGate {
        TrackGate {
            state: State::Discovering {
                held: VecDeque::new(),
                first: None,
                seen: Tracks::default(),
            },
        }
    }
}

impl TrackGate {
    /// The settled tracks; `None` while discovering.
    pub fn settled(&self) -> Option<Tracks> {
        match self.state {
            State::Settled(tracks) => Some(tracks),
            State::Discovering { .. } => None,
        }
    }

    /// Offers a frame that arrived at `now_ms` (Unix); `declared` is what the source says
    /// it carries now (empty when it says nothing).
    pub fn offer(
        &mut self,
        frame: &Frame,
        discontinuity: bool,
        declared: Tracks,
        now_ms: u64,
    ) -> Gated {
        let State::Discovering { held, first, seen } = &mut self.state else {
            return Gated::Pass;
        };
        let (first_ms, first_dts) = *first.get_or_insert((now_ms, frame.dts));
        *seen = seen.union(&Tracks::of_frame(frame));
        held.push_back((frame.clone(), discontinuity));
        let declared_all_seen = !declared.is_empty() && seen.covers(&declared);
        let both_seen = declared.is_empty() && seen.has_video() && seen.has_audio();
        let waited_ms = now_ms
            .saturating_sub(first_ms)
            .max(frame.dts.saturating_sub(first_dts) * 1000 / CLOCK_HZ);
        let out_of_time =
            waited_ms >= TRACK_DISCOVERY_MS || held.len() >= TRACK_DISCOVERY_MAX_FRAMES;
        if !(declared_all_seen || both_seen || out_of_time) {
            return Gated::Held;
        }
        let tracks = seen.described_by(&declared);
        let mut frames: Vec<(Frame, bool)> = std::mem::take(held).into();
        frames.drain(..first_with_every_track(&frames));
        self.state = State::Settled(tracks);
        Gated::Release(frames)
    }

    /// Settles `tracks` from now on (an input switch to a source that declares them).
    pub fn resettle(&mut self, tracks: Tracks) {
        if let State::Settled(settled) = &mut self.state {
            *settled = tracks;
        }
    }
}

/// Where the released frames start: at the last video keyframe at or before the first
/// audio frame, so that the first segment holds samples of every track. A player cannot
/// configure a track from a PMT entry alone: hls.js makes its audio buffer from the first
/// segment's ADTS headers, and a first segment without audio frames leaves it video-only
/// however the PMT reads. Video before that keyframe is dropped (at most one GOP).
fn first_with_every_track(frames: &[(Frame, bool)]) -> usize {
    let Some(first_audio) = frames.iter().position(|(f, _)| !f.codec.is_video()) else {
        return 0;
    };
    frames[..=first_audio]
        .iter()
        .rposition(|(f, _)| f.starts_gop())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::Codec;
    use bytes::Bytes;

    const START_MS: u64 = 1_700_000_000_000;

    fn frame(codec: Codec, index: u64) -> Frame {
        Frame {
            codec,
            track: Frame::default_track(codec),
            dts: index * CLOCK_HZ / 25,
            pts: index * CLOCK_HZ / 25,
            keyframe: codec.is_video() && index == 0,
            data: Bytes::from_static(b"x"),
        }
    }

    const BOTH: Tracks = Tracks::SIMPLE_H264_AAC;
    const VIDEO: Tracks = Tracks::SIMPLE_H264;
    const NOTHING: Tracks = Tracks::EMPTY;

    #[test]
    fn video_first_waits_for_the_declared_audio() {
        let mut gate = TrackGate::default();
        for index in 0..5 {
            let offered = gate.offer(&frame(Codec::H264, index), false, BOTH, START_MS);
            assert_eq!(offered, Gated::Held);
        }
        match gate.offer(&frame(Codec::Aac, 5), false, BOTH, START_MS + 200) {
            Gated::Release(frames) => {
                assert_eq!(frames.len(), 6);
                assert!(frames[0].0.keyframe, "order kept");
                assert_eq!(frames[5].0.codec, Codec::Aac);
            }
            other => panic!("expected a release, got {other:?}"),
        }
        assert_eq!(gate.settled(), Some(BOTH));
        let offered = gate.offer(&frame(Codec::H264, 6), false, BOTH, START_MS + 240);
        assert_eq!(offered, Gated::Pass);
    }

    #[test]
    fn release_starts_at_the_last_keyframe_before_the_first_audio_frame() {
        let mut gate = TrackGate::default();
        let keyframe = |index| Frame {
            keyframe: true,
            ..frame(Codec::H264, index)
        };
        for index in 0..37 {
            let video = if index % 25 == 0 {
                keyframe(index)
            } else {
                frame(Codec::H264, index)
            };
            assert_eq!(gate.offer(&video, false, BOTH, START_MS), Gated::Held);
        }
        match gate.offer(&frame(Codec::Aac, 37), false, BOTH, START_MS) {
            Gated::Release(frames) => {
                assert_eq!(frames[0].0.dts, keyframe(25).dts);
                assert!(frames[0].0.starts_gop());
                assert_eq!(frames.len(), 37 - 25 + 1);
            }
            other => panic!("expected a release, got {other:?}"),
        }
    }

    #[test]
    fn a_declared_video_only_source_settles_at_its_first_frame() {
        let mut gate = TrackGate::default();
        let offered = gate.offer(&frame(Codec::H264, 0), false, VIDEO, START_MS);
        assert!(matches!(offered, Gated::Release(frames) if frames.len() == 1));
        assert_eq!(gate.settled(), Some(VIDEO));
    }

    #[test]
    fn an_undeclared_video_only_source_settles_at_the_deadline() {
        let mut gate = TrackGate::default();
        let mut index = 0;
        loop {
            let now = START_MS + index * 40;
            match gate.offer(&frame(Codec::H264, index), false, NOTHING, now) {
                Gated::Held => index += 1,
                Gated::Release(frames) => {
                    assert_eq!(frames.len() as u64, index + 1);
                    assert_eq!(index * 40, TRACK_DISCOVERY_MS);
                    break;
                }
                Gated::Pass => panic!("nothing passes before settling"),
            }
        }
        assert_eq!(gate.settled(), Some(VIDEO));
    }

    #[test]
    fn a_burst_faster_than_real_time_settles_by_stream_time() {
        let mut gate = TrackGate::default();
        let mut released = false;
        for index in 0..=(TRACK_DISCOVERY_MS / 40) {
            // All at the same wall-clock instant.
            if let Gated::Release(_) = gate.offer(&frame(Codec::H264, index), false, BOTH, START_MS)
            {
                released = true;
                assert_eq!(index * 40, TRACK_DISCOVERY_MS);
            }
        }
        assert!(released);
    }

    #[test]
    fn the_held_frames_are_bounded() {
        let mut gate = TrackGate::default();
        // Frames without advancing timestamps or the clock: only the count settles it.
        let still = Frame {
            dts: 0,
            pts: 0,
            ..frame(Codec::H264, 1)
        };
        for _ in 1..TRACK_DISCOVERY_MAX_FRAMES {
            assert_eq!(gate.offer(&still, false, BOTH, START_MS), Gated::Held);
        }
        let offered = gate.offer(&still, false, BOTH, START_MS);
        assert!(
            matches!(offered, Gated::Release(frames) if frames.len() == TRACK_DISCOVERY_MAX_FRAMES)
        );
    }
}
