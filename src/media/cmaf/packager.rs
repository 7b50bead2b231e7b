//! Cutting a stream's frames into CMAF parts and segments, one fragment per track.
//!
//! Pure state, fed the same events on every node that serves the stream: each frame
//! with whether the stream's segment holds it, and each segment end with the decode
//! time of the frame that opens the next one. The origin's packager produces these
//! events; a relaying node receives them (`media::follow`). The bytes depend on nothing
//! else, so every node cuts the same parts, byte for byte.
//!
//! Rules, per track:
//! 1. A track's part closes before a frame of that track that would take it past the
//!    part target (the frame's decode time plus the last frame interval), so every
//!    part of a source with regular timing is at most `part_target` long (a frame that
//!    comes late lengthens the sample before it, and so its part, by as much). A
//!    segment end closes every track's part. Audio frames holding several AAC frames
//!    are cut one AAC frame at a time.
//! 2. A video part's last sample lasts until the frame that closed it (or the next
//!    segment's first frame); an AAC sample is 1,024 ticks of the sample rate, an Opus
//!    sample (one packet) what its TOC says at 48 kHz.
//! 3. Within a segment, audio decode times run on from part to part; each segment
//!    starts its audio at its first frame's time (a replica starts at a segment
//!    boundary and must agree with the origin).
//! 4. A track's init is taken at its first frame in the segment (for video, the
//!    keyframe opening it). A frame that does not fit it (a codec or configuration
//!    change inside a segment) is left out until the next segment, which starts with
//!    the new init.
//! 5. A part is marked independent where a player may start: a video part that starts
//!    with a keyframe; an audio part only when it opens its segment, so that a player
//!    joining mid-segment does not start audio before the video it can decode.
//! 6. A track whose codec has no CMAF packaging, or whose first video frame in the
//!    segment is not a keyframe, has no fragments in that segment.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::track_init::{AAC_FRAME_SAMPLES, TrackInit};
use crate::media::fmp4::{Sample, TrackRun, aac, avc, fragment, hevc};
use crate::media::frame::{CLOCK_HZ, Codec, Frame};
use crate::media::program::MAX_TRACKS;

/// Most parts one track's segment holds: a segment is at most 60 s and parts at least
/// 100 ms; past this (a source with runaway timestamps) parts are no longer cut and the
/// rest of the segment is one part.
pub const MAX_PARTS_PER_SEGMENT: usize = 600;

/// The duration of an Opus packet whose TOC does not parse (the ingest checks them; a
/// relayed one is taken as sent): 20 ms at 48 kHz, what WebRTC senders use.
const OPUS_DEFAULT_SAMPLES: u32 = 960;

/// One part: a `moof` + `mdat` of one track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub data: Bytes,
    /// The first sample's decode time, in the track's timescale.
    pub start: u64,
    /// In the track's timescale.
    pub duration: u64,
    /// A player may start at it: video, a part that starts with a keyframe; audio, a
    /// segment's first part (where video can start too).
    pub independent: bool,
}

/// Where a part lies in its sealed segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartSpan {
    pub offset: usize,
    pub len: usize,
    /// In the track's timescale.
    pub duration: u64,
    pub independent: bool,
}

/// One track's fragments of a sealed segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSegment {
    pub init: Arc<TrackInit>,
    /// The first sample's decode time, in the track's timescale.
    pub start: u64,
    /// In the track's timescale.
    pub duration: u64,
    /// The parts, one after the other.
    pub data: Bytes,
    pub parts: Vec<PartSpan>,
}

impl TrackSegment {
    pub fn track(&self) -> u8 {
        self.init.track
    }

    /// Part `index`'s bytes (a slice of the segment's, shared).
    pub fn part(&self, index: usize) -> Option<Bytes> {
        let span = self.parts.get(index)?;
        Some(self.data.slice(span.offset..span.offset + span.len))
    }
}

/// A part that closed: its track and its number in the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedPart {
    pub init: Arc<TrackInit>,
    pub index: usize,
    pub part: Arc<Part>,
}

/// One track's state in the open segment.
#[derive(Debug)]
struct TrackPacker {
    init: Arc<TrackInit>,
    /// The open part's frames.
    frames: Vec<Frame>,
    /// The last frame's decode time and the interval before it (90 kHz).
    last_dts: u64,
    interval: u64,
    /// Audio: the decode time of the next sample, in the track's timescale.
    next_audio_time: Option<u64>,
    /// The segment's closed parts.
    parts: Vec<Arc<Part>>,
}

/// The CMAF packager of one stream (see the module header).
#[derive(Debug)]
pub struct CmafPackager {
    part_target_ticks: u64,
    tracks: [Option<TrackPacker>; MAX_TRACKS],
}

impl CmafPackager {
    /// Parts of at most `part_target_ms`.
    pub fn new(part_target_ms: u64) -> CmafPackager {
        CmafPackager {
            part_target_ticks: part_target_ms.max(1) * (CLOCK_HZ / 1000),
            tracks: Default::default(),
        }
    }

    /// Takes one frame; `in_segment`: the stream's open segment holds it. Returns the
    /// parts it closed (usually none; an audio frame holding several AAC frames is
    /// taken one AAC frame at a time, so its parts stay within the target too).
    pub fn frame(&mut self, frame: &Frame, in_segment: bool) -> Vec<ClosedPart> {
        if !in_segment {
            return Vec::new();
        }
        if frame.codec != Codec::Aac {
            return self.take(frame).into_iter().collect();
        }
        let mut closed = Vec::new();
        for (index, (header, bytes)) in crate::media::aac::frames(&frame.data).enumerate() {
            let offset = index as u64 * u64::from(AAC_FRAME_SAMPLES) * CLOCK_HZ
                / u64::from(header.sample_rate.max(1));
            let one = Frame {
                dts: frame.dts + offset,
                pts: frame.dts + offset,
                data: frame.data.slice_ref(bytes),
                ..frame.clone()
            };
            closed.extend(self.take(&one));
        }
        closed
    }

    fn take(&mut self, frame: &Frame) -> Option<ClosedPart> {
        let slot = self.tracks.get_mut(usize::from(frame.track))?;
        let Some(packer) = slot else {
            let init = TrackInit::of(frame)?;
            *slot = Some(TrackPacker {
                init,
                frames: vec![frame.clone()],
                last_dts: frame.dts,
                interval: 0,
                next_audio_time: None,
                parts: Vec::new(),
            });
            return None;
        };
        if !packer.init.fits(frame) {
            // Left out until the next segment, which starts with the new init.
            return None;
        }
        let part_start = packer.frames.first().map_or(frame.dts, |first| first.dts);
        let interval = frame.dts.saturating_sub(packer.last_dts);
        let too_long = frame
            .dts
            .saturating_add(interval)
            .saturating_sub(part_start)
            > self.part_target_ticks;
        let closed = (too_long
            && !packer.frames.is_empty()
            && packer.parts.len() + 1 < MAX_PARTS_PER_SEGMENT)
            .then(|| packer.close_part(frame.dts));
        packer.frames.push(frame.clone());
        packer.interval = interval;
        packer.last_dts = frame.dts;
        closed
    }

    /// The segment ended; `next_dts` is the decode time of the frame that opens the
    /// next one. Returns each track's fragments, by track number.
    pub fn cut(&mut self, next_dts: u64) -> Vec<TrackSegment> {
        let mut sealed = Vec::new();
        for slot in &mut self.tracks {
            let Some(mut packer) = slot.take() else {
                continue;
            };
            if !packer.frames.is_empty() {
                let _ = packer.close_part(next_dts);
            }
            if let Some(segment) = packer.seal() {
                sealed.push(segment);
            }
        }
        sealed
    }
}

impl TrackPacker {
    /// Closes the open part before a frame at `boundary_dts`.
    fn close_part(&mut self, boundary_dts: u64) -> ClosedPart {
        let frames = std::mem::take(&mut self.frames);
        let (run, duration) = match self.init.codec {
            Codec::Aac | Codec::Opus => self.audio_run(&frames),
            _ => video_run(&frames, boundary_dts, self.interval),
        };
        // Fragment numbers grow with time: 10 ms units of the part's first frame.
        let sequence = (frames[0].dts / (CLOCK_HZ / 100)) as u32;
        let part = Arc::new(Part {
            data: fragment(sequence, std::slice::from_ref(&run)),
            start: run.base_decode_time,
            duration,
            // Video: a part that starts with a keyframe. Audio: every frame could start
            // one, but only a segment's first part is marked, so that a player joining
            // mid-segment starts audio where it can start video, without a hole.
            independent: match self.init.codec {
                Codec::Aac | Codec::Opus => self.parts.is_empty(),
                _ => frames[0].keyframe,
            },
        });
        self.parts.push(part.clone());
        ClosedPart {
            init: self.init.clone(),
            index: self.parts.len() - 1,
            part,
        }
    }

    fn audio_run(&mut self, frames: &[Frame]) -> (TrackRun, u64) {
        let rate = u64::from(self.init.timescale);
        let start = *self
            .next_audio_time
            .get_or_insert_with(|| (frames[0].dts * rate + CLOCK_HZ / 2) / CLOCK_HZ);
        let mut data = BytesMut::new();
        let mut samples = Vec::new();
        for frame in frames {
            if self.init.codec == Codec::Opus {
                // One packet per sample, lasting what its TOC says (20 ms from browsers).
                let duration = crate::media::audio::info(Codec::Opus, &frame.data)
                    .map_or(OPUS_DEFAULT_SAMPLES, |info| info.samples_per_frame);
                data.extend_from_slice(&frame.data);
                samples.push(Sample {
                    duration,
                    size: frame.data.len() as u32,
                    sync: true,
                    composition_offset: 0,
                });
                continue;
            }
            for raw in aac::raw_frames(&frame.data) {
                data.extend_from_slice(raw);
                samples.push(Sample {
                    duration: AAC_FRAME_SAMPLES,
                    size: raw.len() as u32,
                    sync: true,
                    composition_offset: 0,
                });
            }
        }
        let duration: u64 = samples
            .iter()
            .map(|sample| u64::from(sample.duration))
            .sum();
        self.next_audio_time = Some(start + duration);
        let run = TrackRun {
            track_id: 1,
            base_decode_time: start,
            samples,
            data: data.freeze(),
        };
        (run, duration)
    }

    /// The segment's parts as one buffer; `None` for a track without any.
    fn seal(self) -> Option<TrackSegment> {
        let start = self.parts.first()?.start;
        let mut data = BytesMut::with_capacity(self.parts.iter().map(|p| p.data.len()).sum());
        let mut spans = Vec::with_capacity(self.parts.len());
        for part in &self.parts {
            spans.push(PartSpan {
                offset: data.len(),
                len: part.data.len(),
                duration: part.duration,
                independent: part.independent,
            });
            data.extend_from_slice(&part.data);
        }
        Some(TrackSegment {
            init: self.init,
            start,
            duration: spans.iter().map(|s| s.duration).sum(),
            data: data.freeze(),
            parts: spans,
        })
    }
}

/// Video frames as a run on 90 kHz: each sample lasts until the next frame, the last
/// until `boundary_dts` (or the last interval if the boundary is not after it).
fn video_run(frames: &[Frame], boundary_dts: u64, interval: u64) -> (TrackRun, u64) {
    let mut data = BytesMut::new();
    let mut samples = Vec::with_capacity(frames.len());
    for (index, frame) in frames.iter().enumerate() {
        let before = data.len();
        match frame.codec {
            Codec::H264 => avc::length_prefixed(&frame.data, &mut data),
            Codec::H265 => hevc::length_prefixed(&frame.data, &mut data),
            _ => data.extend_from_slice(&frame.data),
        }
        let next = frames.get(index + 1).map_or(boundary_dts, |next| next.dts);
        let duration = match next.checked_sub(frame.dts) {
            Some(d) if d > 0 => d,
            _ => interval.max(1),
        };
        samples.push(Sample {
            duration: u32::try_from(duration).unwrap_or(u32::MAX),
            size: (data.len() - before) as u32,
            sync: frame.keyframe,
            composition_offset: u32::try_from(frame.pts.saturating_sub(frame.dts))
                .unwrap_or(u32::MAX),
        });
    }
    let duration = samples.iter().map(|s| u64::from(s.duration)).sum();
    let run = TrackRun {
        track_id: 1,
        base_decode_time: frames[0].dts,
        samples,
        data: data.freeze(),
    };
    (run, duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::source::ClipFrames;

    /// The clip's first `seconds`, cut into segments at every keyframe `segment_s`
    /// apart as the TS segmenter would.
    fn package(seconds: u64, segment_s: u64, part_ms: u64) -> Vec<Vec<TrackSegment>> {
        let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        let mut packager = CmafPackager::new(part_ms);
        let mut segments = Vec::new();
        let mut open_since: Option<u64> = None;
        loop {
            let (frame, _) = clip.next_frame();
            if frame.dts > seconds * CLOCK_HZ {
                return segments;
            }
            if frame.starts_gop() {
                match open_since {
                    Some(start) if frame.dts - start >= segment_s * CLOCK_HZ => {
                        segments.push(packager.cut(frame.dts));
                        open_since = Some(frame.dts);
                    }
                    None => open_since = Some(frame.dts),
                    _ => {}
                }
            }
            let _ = packager.frame(&frame, open_since.is_some());
        }
    }

    #[test]
    fn parts_stay_within_the_target_and_tile_their_segment() {
        // One pass of the clip (its loop point has an irregular frame interval).
        let segments = package(3, 1, 200);
        assert!(segments.len() >= 2);
        for tracks in &segments {
            assert_eq!(tracks.len(), 2, "video and audio");
            for track in tracks {
                let target = 200 * u64::from(track.init.timescale) / 1000;
                assert!(
                    track.parts.len() >= 4,
                    "{:?}: {}",
                    track.init.codec,
                    track.parts.len()
                );
                for span in &track.parts {
                    assert!(span.duration <= target, "{} > {target}", span.duration);
                }
                assert_eq!(
                    track.parts.iter().map(|s| s.duration).sum::<u64>(),
                    track.duration
                );
                let last = track.parts.last().unwrap();
                assert_eq!(last.offset + last.len, track.data.len());
                assert_eq!(track.parts[0].offset, 0);
                assert!(track.parts[0].independent);
                if !track.init.codec.is_video() {
                    assert!(track.parts[1..].iter().all(|p| !p.independent));
                }
            }
        }
        // Segment N+1's video starts where segment N's ends.
        for pair in segments.windows(2) {
            let (a, b) = (&pair[0][0], &pair[1][0]);
            assert_eq!(a.start + a.duration, b.start);
        }
    }

    #[test]
    fn the_same_frames_make_the_same_bytes() {
        assert_eq!(package(8, 2, 300), package(8, 2, 300));
    }
}
