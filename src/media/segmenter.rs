//! Cutting a live stream into HLS segments.
//!
//! Pure logic: the packager feeds it each frame's muxed MPEG-TS bytes with the frame's
//! timing, and it returns sealed segments. Rules:
//! 1. A segment starts on a random-access chunk: PAT/PMT then a video keyframe (or, for
//!    audio-only programs, the muxer's periodic tables). Frames before the first one are
//!    dropped.
//! 2. A segment is sealed at the first keyframe at or after `target` duration, so real
//!    durations are `target` rounded up to the GOP size.
//! 3. A discontinuity (source switch, timestamp jump) seals the segment at the next
//!    keyframe, whatever its duration, and marks the next segment.
//! 4. Bounds: a segment longer than [`MAX_SEGMENT_TICKS`] or bigger than
//!    [`MAX_SEGMENT_BYTES`] is sealed at the next frame even without a keyframe, so a
//!    source that never sends one cannot grow memory without limit.

use bytes::{Bytes, BytesMut};

use super::frame::CLOCK_HZ;

/// Longest segment kept open (a source without keyframes).
pub const MAX_SEGMENT_TICKS: u64 = 60 * CLOCK_HZ;

/// Largest segment kept open: 64 MiB is a minute at 8 Mbit/s.
pub const MAX_SEGMENT_BYTES: usize = 64 * 1024 * 1024;

/// One frame, already muxed, as the segmenter sees it.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub dts: u64,
    /// The bytes start with PAT/PMT and a decodable frame (see `Muxed::random_access`).
    pub starts_gop: bool,
    pub discontinuity: bool,
    pub bytes: Bytes,
}

/// A finished segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub start_dts: u64,
    pub duration_ticks: u64,
    pub discontinuity: bool,
    pub bytes: Bytes,
}

/// What one chunk did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The segment it sealed (it opens the next one then).
    pub sealed: Option<Sealed>,
    /// The chunk went into a segment (the open one, or the one it opened).
    pub kept: bool,
}

#[derive(Debug)]
struct Open {
    start_dts: u64,
    last_dts: u64,
    discontinuity: bool,
    bytes: BytesMut,
}

/// The segmenter state of one stream.
#[derive(Debug)]
pub struct Segmenter {
    target_ticks: u64,
    open: Option<Open>,
    /// A discontinuity was signalled and the segment must be cut at the next keyframe.
    cut_pending: bool,
}

impl Segmenter {
    pub fn new(target_ms: u64) -> Segmenter {
        assert!(target_ms >= 1, "segment duration must be positive");
        Segmenter {
            target_ticks: target_ms * (CLOCK_HZ / 1000),
            open: None,
            cut_pending: false,
        }
    }

    /// Adds one chunk; returns the segment it sealed, if any.
    pub fn push(&mut self, chunk: Chunk) -> Option<Sealed> {
        self.push_kept(chunk).sealed
    }

    /// Adds one chunk; says which segment it sealed, if any, and whether the chunk went
    /// into a segment (a relaying node repeats exactly that, see `crate::relay`).
    pub fn push_kept(&mut self, chunk: Chunk) -> Pushed {
        self.cut_pending |= chunk.discontinuity;
        let can_start = chunk.starts_gop;
        let Some(open) = &mut self.open else {
            if can_start {
                self.open_with(&chunk);
            }
            return Pushed {
                sealed: None,
                kept: can_start,
            };
        };
        let elapsed = chunk.dts.saturating_sub(open.start_dts);
        let due = (elapsed >= self.target_ticks || self.cut_pending) && can_start;
        let overgrown = elapsed >= MAX_SEGMENT_TICKS
            || open.bytes.len() + chunk.bytes.len() > MAX_SEGMENT_BYTES;
        if due || overgrown {
            let sealed = self.seal(chunk.dts);
            // `due` needs a chunk that can start one: the chunk always opens the next.
            self.open_with(&chunk);
            return Pushed { sealed, kept: true };
        }
        if chunk.discontinuity && !can_start {
            // Frames of a new source before its first keyframe cannot be decoded.
            return Pushed {
                sealed: None,
                kept: false,
            };
        }
        open.last_dts = chunk.dts;
        open.bytes.extend_from_slice(&chunk.bytes);
        Pushed {
            sealed: None,
            kept: true,
        }
    }

    fn open_with(&mut self, chunk: &Chunk) {
        let mut bytes = BytesMut::with_capacity(chunk.bytes.len() * 64);
        bytes.extend_from_slice(&chunk.bytes);
        self.open = Some(Open {
            start_dts: chunk.dts,
            last_dts: chunk.dts,
            discontinuity: std::mem::take(&mut self.cut_pending) || chunk.discontinuity,
            bytes,
        });
    }

    fn seal(&mut self, end_dts: u64) -> Option<Sealed> {
        let open = self.open.take()?;
        let duration_ticks = end_dts.saturating_sub(open.start_dts).max(1);
        debug_assert!(open.last_dts >= open.start_dts);
        Some(Sealed {
            start_dts: open.start_dts,
            duration_ticks,
            discontinuity: open.discontinuity,
            bytes: open.bytes.freeze(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: u64 = CLOCK_HZ / 25;

    fn video(index: u64, keyframe: bool) -> Chunk {
        Chunk {
            dts: index * FRAME,
            starts_gop: keyframe,
            discontinuity: false,
            bytes: Bytes::from(vec![index as u8; 10]),
        }
    }

    /// 25 fps with a keyframe every `gop` frames.
    fn feed(segmenter: &mut Segmenter, frames: std::ops::Range<u64>, gop: u64) -> Vec<Sealed> {
        frames
            .filter_map(|i| segmenter.push(video(i, i % gop == 0)))
            .collect()
    }

    #[test]
    fn cuts_on_the_first_keyframe_after_the_target() {
        let mut segmenter = Segmenter::new(2_000);
        // Keyframe every 30 frames (1.2 s): 2 s target rounds up to 2.4 s.
        let sealed = feed(&mut segmenter, 0..200, 30);
        assert!(sealed.len() >= 2);
        for segment in &sealed {
            assert_eq!(segment.duration_ticks, 60 * FRAME);
            assert_eq!(segment.bytes.len(), 60 * 10);
        }
        assert_eq!(sealed[1].start_dts, 60 * FRAME);
    }

    #[test]
    fn drops_frames_before_the_first_keyframe() {
        let mut segmenter = Segmenter::new(1_000);
        for i in 1..10 {
            assert!(segmenter.push(video(i, false)).is_none());
        }
        let sealed = feed(&mut segmenter, 10..100, 10);
        assert_eq!(sealed[0].start_dts, 10 * FRAME);
    }

    #[test]
    fn a_discontinuity_cuts_at_the_next_keyframe_and_marks_the_segment() {
        let mut segmenter = Segmenter::new(10_000);
        feed(&mut segmenter, 0..30, 25);
        let mut switched = video(30, false);
        switched.discontinuity = true;
        assert!(
            segmenter.push(switched).is_none(),
            "not a keyframe: dropped"
        );
        let sealed = segmenter
            .push(video(31, true))
            .expect("cut at the new source's keyframe");
        assert!(!sealed.discontinuity);
        let next = feed(&mut segmenter, 32..800, 25);
        assert!(
            next[0].discontinuity,
            "the segment after the switch is marked"
        );
        assert!(!next[1].discontinuity);
    }

    #[test]
    fn a_source_without_keyframes_is_bounded() {
        let mut segmenter = Segmenter::new(1_000);
        segmenter.push(video(0, true));
        let sealed: Vec<Sealed> = (1..(MAX_SEGMENT_TICKS / FRAME + 10))
            .filter_map(|i| segmenter.push(video(i, false)))
            .collect();
        assert_eq!(sealed.len(), 1);
        assert!(sealed[0].duration_ticks <= MAX_SEGMENT_TICKS);
    }
}
