//! From MPEG-TS bytes to frames on a continuous timeline.
//!
//! [`TsFrames`] serves byte-stream inputs (HTTP, UDP): push bytes as they come, pop
//! frames. [`ClipFrames`] serves looping inputs (the built-in test source, `file://`):
//! the clip is demuxed once and replayed forever, each loop continuing the timeline, with
//! no copy of the media (frames share the clip's `Bytes`).

use std::collections::VecDeque;

use bytes::Bytes;

use super::aac;
use super::frame::{CLOCK_HZ, Codec, Frame};
use super::program::{MAX_TRACKS, Tracks};
use super::timeline::{DEFAULT_FRAME_TICKS, Timeline, WRAP_TICKS};
use super::ts::demux::{Demuxer, Pes, Program};
use super::video;

/// Frames buffered between a push and the pops that drain it: a burst of a few seconds
/// of a high-bitrate stream; more means the consumer stopped popping.
pub const MAX_PENDING_FRAMES: usize = 4096;

/// A PES packet as a frame with source timestamps (not yet on the timeline).
fn source_frame(pes: Pes) -> Option<(Frame, u64, u64)> {
    let pts = pes.pts?;
    let dts = pes.dts.unwrap_or(pts);
    let keyframe =
        !pes.codec.is_video() || pes.random_access || video::is_keyframe(pes.codec, &pes.data);
    let frame = Frame {
        codec: pes.codec,
        track: pes.track,
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
        TsFrames::of_program(start_dts, Program::First)
    }

    /// This input, taking only the elementary streams of `pids` (all when empty).
    pub fn with_pids(mut self, pids: Vec<u16>) -> TsFrames {
        self.demuxer = std::mem::take(&mut self.demuxer).with_pids(pids);
        self
    }

    /// Frames of `program` whose timeline starts at `start_dts`.
    pub fn of_program(start_dts: u64, program: Program) -> TsFrames {
        TsFrames {
            demuxer: Demuxer::for_program(program),
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
            self.tracks = self.tracks.union(&Tracks::of_frame(&frame));
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

    /// The source says its next bytes start a new timeline (an HLS discontinuity): they
    /// continue after the highest timestamp so far, the first frame marked.
    pub fn discontinuity(&mut self) {
        self.timeline.restart();
    }

    /// Tracks the source's PMT names (with their languages), and any others seen so far.
    pub fn tracks(&self) -> Tracks {
        self.demuxer.announced_tracks().union(&self.tracks)
    }

    /// The source's elementary streams that are not carried, described for the operator.
    pub fn skipped(&self) -> &[String] {
        self.demuxer.skipped()
    }

    /// Why the input cannot go on, when the program asked for is not in the stream.
    pub fn missing_program(&self) -> Option<String> {
        let (wanted, programs) = self.demuxer.missing_program()?;
        let listed: Vec<String> = programs.iter().map(u16::to_string).collect();
        Some(format!(
            "program {wanted} is not in the stream (its programs: {})",
            listed.join(", ")
        ))
    }

    /// The demuxer's error counters.
    pub fn stats(&self) -> &super::ts::demux::DemuxStats {
        &self.demuxer.stats
    }
}

/// Why a clip cannot be looped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClipError {
    #[error("the file holds no frames of a codec flotilla carries")]
    NoFrames,
}

/// Frames of a clip, looped forever on a continuous timeline.
///
/// Each loop is the first one shifted by the clip's period: the span from its earliest
/// frame to the end of its last-ending one (an AAC frame lasts its samples, a video
/// frame the clip's frame interval). So on every track a loop's first frame starts no
/// earlier than the previous loop's last frame ends: a player decoding the audio never
/// sees its time go back at a seam, and the tracks keep their relative timing.
#[derive(Debug)]
pub struct ClipFrames {
    /// The first loop's frames on the timeline, in file order.
    frames: Vec<Frame>,
    /// How far each loop is shifted from the previous one, ticks.
    period_ticks: u64,
    next: usize,
    loops: u64,
    tracks: Tracks,
}

/// How long `frame` lasts, ticks: an AAC frame its samples (all the ADTS frames a PES
/// packs), any other frame its track's interval (`intervals`, by track number).
fn duration_ticks(frame: &Frame, intervals: &[u64; MAX_TRACKS]) -> u64 {
    if frame.codec == Codec::Aac {
        return aac::frames(&frame.data)
            .map(|(header, _)| {
                aac::SAMPLES_PER_FRAME * CLOCK_HZ / u64::from(header.sample_rate.max(1))
            })
            .sum::<u64>()
            .max(1);
    }
    intervals
        .get(usize::from(frame.track))
        .copied()
        .unwrap_or(DEFAULT_FRAME_TICKS)
}

/// Each track's frame interval: the smallest step between its consecutive frames.
fn track_intervals(frames: &[Frame]) -> [u64; MAX_TRACKS] {
    let mut intervals = [DEFAULT_FRAME_TICKS; MAX_TRACKS];
    for (number, interval) in intervals.iter_mut().enumerate() {
        let dts: Vec<u64> = frames
            .iter()
            .filter(|f| usize::from(f.track) == number)
            .map(|f| f.dts)
            .collect();
        if let Some(step) = dts
            .windows(2)
            .map(|pair| pair[1].saturating_sub(pair[0]))
            .filter(|step| *step > 0)
            .min()
        {
            *interval = step;
        }
    }
    intervals
}

impl ClipFrames {
    /// Demuxes `clip` once. The loop starts at its first video keyframe (or first frame
    /// for audio-only clips).
    pub fn new(clip: &[u8]) -> Result<ClipFrames, ClipError> {
        ClipFrames::of_program(clip, Program::First, Vec::new())
    }

    /// [`ClipFrames::new`] of one program of the clip, only the elementary streams of
    /// `pids` when it names some.
    pub fn of_program(
        clip: &[u8],
        program: Program,
        pids: Vec<u16>,
    ) -> Result<ClipFrames, ClipError> {
        let mut demuxer = Demuxer::for_program(program).with_pids(pids);
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
        let tracks = frames
            .iter()
            .fold(demuxer.announced_tracks(), |tracks, (frame, _, _)| {
                tracks.union(&Tracks::of_frame(frame))
            });
        // The clip's timestamps relative to its first frame (33-bit wrap undone), then
        // shifted so that its earliest frame is at 0: audio interleaved before the first
        // keyframe keeps its place instead of piling up at the start.
        let first_dts = frames[0].2;
        let relative = |dts: u64| -> i64 {
            let ticks = dts.wrapping_sub(first_dts) % WRAP_TICKS;
            if ticks >= WRAP_TICKS / 2 {
                ticks as i64 - WRAP_TICKS as i64
            } else {
                ticks as i64
            }
        };
        let earliest = frames
            .iter()
            .map(|(_, _, dts)| relative(*dts))
            .min()
            .unwrap_or(0);
        let frames: Vec<Frame> = frames
            .into_iter()
            .map(|(mut frame, pts, dts)| {
                frame.dts = (relative(dts) - earliest) as u64;
                frame.pts = Timeline::pts_for(pts, dts, frame.dts);
                frame
            })
            .collect();
        let intervals = track_intervals(&frames);
        let start = frames.iter().map(|f| f.dts).min().unwrap_or(0);
        let end = frames
            .iter()
            .map(|f| f.dts + duration_ticks(f, &intervals))
            .max()
            .unwrap_or(start + DEFAULT_FRAME_TICKS);
        Ok(ClipFrames {
            frames,
            period_ticks: (end - start).max(1),
            next: 0,
            loops: 0,
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
        }
        let mut frame = self.frames[self.next].clone();
        self.next += 1;
        let shift = self.loops.saturating_mul(self.period_ticks);
        frame.dts = frame.dts.saturating_add(shift);
        frame.pts = frame.pts.saturating_add(shift);
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

    /// A frame's successor on its track never starts before the frame ends, at a loop's
    /// seam as within the clip (an AAC frame lasts its 1,024 samples: a player decoding
    /// an overlap sees audio time go back).
    #[test]
    fn every_track_of_a_looping_clip_continues_without_overlap_across_loops() {
        let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        // The last frame of each track: video, audio.
        let mut last: [Option<Frame>; 2] = [None, None];
        let mut seams = 0;
        while clip.loops() < 4 {
            let loops = clip.loops();
            let (frame, _) = clip.next_frame();
            seams += usize::from(clip.loops() != loops);
            let track = &mut last[usize::from(!frame.codec.is_video())];
            if let Some(previous) = track.as_ref() {
                // Video: after the previous frame; audio: once its samples are played.
                let ends = match previous.codec {
                    Codec::Aac => previous.dts + duration_ticks(previous, &[0; MAX_TRACKS]),
                    _ => previous.dts + 1,
                };
                assert!(
                    frame.dts >= ends,
                    "{:?} frame at {} starts before the last one ends at {ends} (loop {})",
                    frame.codec,
                    frame.dts,
                    clip.loops()
                );
            }
            *track = Some(frame);
        }
        assert_eq!(seams, 4, "four seams crossed");
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
            Tracks::simple(Some(Codec::H264), Some(Codec::Aac))
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
