//! From MPEG-TS bytes to frames on a continuous timeline.
//!
//! [`TsFrames`] serves byte-stream inputs (HTTP, UDP): push bytes as they come, pop
//! frames. [`ClipFrames`] serves looping inputs (the built-in test source, `file://`):
//! the clip is demuxed once and replayed forever, each loop continuing the timeline, with
//! no copy of the media (frames share the clip's `Bytes`).

use std::collections::VecDeque;

use bytes::Bytes;

use super::frame::{Codec, Frame};
use super::h264;
use super::timeline::Timeline;
use super::ts::demux::{Demuxer, Pes};
use super::ts::mux::Tracks;
use super::ts::{STREAM_TYPE_ADTS_AAC, STREAM_TYPE_H264};

/// Frames buffered between a push and the pops that drain it: a burst of a few seconds
/// of a high-bitrate stream; more means the consumer stopped popping.
pub const MAX_PENDING_FRAMES: usize = 4096;

/// The codec of a PMT stream type, if flotilla carries it.
fn codec_of(stream_type: u8) -> Option<Codec> {
    match stream_type {
        STREAM_TYPE_H264 => Some(Codec::H264),
        STREAM_TYPE_ADTS_AAC => Some(Codec::Aac),
        _ => None,
    }
}

/// A PES packet as a frame with source timestamps (not yet on the timeline).
fn source_frame(pes: Pes) -> Option<(Frame, u64, u64)> {
    let codec = codec_of(pes.stream_type)?;
    let pts = pes.pts?;
    let dts = pes.dts.unwrap_or(pts);
    let keyframe = match codec {
        Codec::H264 => pes.random_access || h264::is_keyframe(&pes.data),
        Codec::Aac => true,
    };
    let frame = Frame {
        codec,
        dts: 0,
        pts: 0,
        keyframe,
        data: pes.data,
    };
    Some((frame, pts, dts))
}

fn place(timeline: &mut Timeline, mut frame: Frame, pts: u64, dts: u64) -> (Frame, bool) {
    let mapped = timeline.map(dts);
    frame.dts = mapped.dts;
    frame.pts = Timeline::pts_for(pts, dts, mapped.dts);
    (frame, mapped.discontinuity)
}

/// Frames from an MPEG-TS byte stream.
#[derive(Debug)]
pub struct TsFrames {
    demuxer: Demuxer,
    timeline: Timeline,
    pending: VecDeque<(Frame, bool)>,
    tracks: Tracks,
    /// Frames dropped because nobody popped them.
    pub overflowed: u64,
}

impl TsFrames {
    /// Frames whose timeline starts at `start_dts` (where the previous input ended).
    pub fn new(start_dts: u64) -> TsFrames {
        TsFrames {
            demuxer: Demuxer::new(),
            timeline: Timeline::starting_at(start_dts),
            pending: VecDeque::new(),
            tracks: Tracks::default(),
            overflowed: 0,
        }
    }

    /// Feeds bytes from the source.
    pub fn push(&mut self, bytes: &[u8]) {
        let mut packets = Vec::new();
        self.demuxer.push(bytes, &mut packets);
        for pes in packets {
            let Some((frame, pts, dts)) = source_frame(pes) else {
                continue;
            };
            self.tracks.video |= frame.codec.is_video();
            self.tracks.audio |= !frame.codec.is_video();
            if self.pending.len() >= MAX_PENDING_FRAMES {
                self.pending.pop_front();
                self.overflowed += 1;
            }
            let placed = place(&mut self.timeline, frame, pts, dts);
            self.pending.push_back(placed);
        }
    }

    /// The next frame and whether it follows a discontinuity.
    pub fn pop(&mut self) -> Option<(Frame, bool)> {
        self.pending.pop_front()
    }

    /// Tracks the source's PMT names, and any others seen so far.
    pub fn tracks(&self) -> Tracks {
        crate::media::tracks::union(self.tracks, self.demuxer.announced_tracks())
    }

    /// The demuxer's error counters.
    pub fn stats(&self) -> &super::ts::demux::DemuxStats {
        &self.demuxer.stats
    }
}

/// Why a clip cannot be looped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClipError {
    #[error("the file holds no H.264 or AAC frames flotilla can play")]
    NoFrames,
}

/// Frames of a clip, looped forever on a continuous timeline.
#[derive(Debug)]
pub struct ClipFrames {
    /// Frames with their source pts and dts, in file order.
    frames: Vec<(Frame, u64, u64)>,
    next: usize,
    loops: u64,
    timeline: Timeline,
    tracks: Tracks,
}

impl ClipFrames {
    /// Demuxes `clip` once. The loop starts at its first video keyframe (or first frame
    /// for audio-only clips).
    pub fn new(clip: &[u8]) -> Result<ClipFrames, ClipError> {
        let mut demuxer = Demuxer::new();
        let mut packets = Vec::new();
        demuxer.push(clip, &mut packets);
        demuxer.flush(&mut packets);
        let mut frames: Vec<(Frame, u64, u64)> =
            packets.into_iter().filter_map(source_frame).collect();
        let has_video = frames.iter().any(|(f, _, _)| f.codec.is_video());
        if has_video {
            let first_key = frames
                .iter()
                .position(|(f, _, _)| f.starts_gop())
                .ok_or(ClipError::NoFrames)?;
            frames.drain(..first_key);
        }
        if frames.is_empty() {
            return Err(ClipError::NoFrames);
        }
        let tracks = Tracks {
            video: has_video,
            audio: frames.iter().any(|(f, _, _)| !f.codec.is_video()),
        };
        Ok(ClipFrames {
            frames,
            next: 0,
            loops: 0,
            timeline: Timeline::starting_at(0),
            tracks,
        })
    }

    /// The clip's tracks.
    pub fn tracks(&self) -> Tracks {
        self.tracks
    }

    /// The next frame (looping). The flag (a discontinuity) is always false: a loop of
    /// the same encoding on a continued timeline is seamless for players.
    pub fn next_frame(&mut self) -> (Frame, bool) {
        if self.next == self.frames.len() {
            self.next = 0;
            self.loops += 1;
            self.timeline.restart();
        }
        let (frame, pts, dts) = self.frames[self.next].clone();
        self.next += 1;
        let (frame, _) = place(&mut self.timeline, frame, pts, dts);
        (frame, false)
    }

    /// Completed loops so far.
    pub fn loops(&self) -> u64 {
        self.loops
    }
}

/// The built-in test source's clip.
pub fn test_clip() -> Bytes {
    Bytes::from_static(super::TEST_CLIP_TS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::CLOCK_HZ;

    #[test]
    fn a_looping_clip_keeps_a_continuous_timeline() {
        let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        let mut last_video_dts = None;
        for _ in 0..1_000 {
            let (frame, discontinuity) = clip.next_frame();
            assert!(!discontinuity, "a loop is seamless");
            if frame.codec.is_video() {
                if let Some(last) = last_video_dts {
                    let step = frame.dts - last;
                    assert!(step > 0 && step <= CLOCK_HZ / 10, "video step {step}");
                }
                last_video_dts = Some(frame.dts);
            }
        }
        assert!(clip.loops() >= 3, "{} loops in 1000 frames", clip.loops());
    }

    #[test]
    fn byte_stream_frames_come_in_any_chunking() {
        let mut frames = TsFrames::new(0);
        for chunk in crate::media::TEST_CLIP_TS.chunks(1316) {
            frames.push(chunk);
        }
        let mut video = 0;
        while let Some((frame, _)) = frames.pop() {
            video += usize::from(frame.codec.is_video());
        }
        assert!(video >= 99, "{video}");
        assert_eq!(
            frames.tracks(),
            Tracks {
                video: true,
                audio: true
            }
        );
    }

    #[test]
    fn garbage_is_not_a_clip() {
        assert_eq!(
            ClipFrames::new(b"not a transport stream").unwrap_err(),
            ClipError::NoFrames
        );
    }
}
