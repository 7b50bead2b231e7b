//! From source timestamps to the stream's continuous timeline.
//!
//! MPEG-TS timestamps are 33-bit and wrap every 26.5 hours; sources restart from zero,
//! loop (files), or jump (a camera reboot). Viewers need one monotonic timeline that
//! never goes back, so each input passes its timestamps through a `Timeline`:
//! wraps are unwrapped, and a jump larger than [`MAX_JUMP_TICKS`] forwards or
//! [`MAX_BACKWARD_TICKS`] backwards is treated as a discontinuity: the timeline continues
//! one frame after the last output. Small backward steps are normal — audio and video are
//! interleaved with some skew and share one timeline, so their relative timing survives
//! re-anchoring. A source that knows it restarted (a looping file) says so with
//! [`Timeline::restart`].

use super::frame::CLOCK_HZ;

/// 2³³: the MPEG-TS timestamp period.
pub const WRAP_TICKS: u64 = 1 << 33;

/// A forward jump larger than this (10 s) is a discontinuity, not a gap.
pub const MAX_JUMP_TICKS: u64 = 10 * CLOCK_HZ;

/// A backward step larger than this (2 s) is a discontinuity; smaller ones are the skew
/// between interleaved audio and video.
pub const MAX_BACKWARD_TICKS: u64 = 2 * CLOCK_HZ;

/// Assumed frame spacing when a discontinuity leaves nothing better: 40 ms (25 fps).
pub const DEFAULT_FRAME_TICKS: u64 = CLOCK_HZ / 25;

/// Maps one input's timestamps onto the stream timeline.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// Added to the unwrapped source time.
    offset: i128,
    /// Last unwrapped source dts, to detect wraps and jumps.
    last_source: Option<u64>,
    /// Last timeline dts produced.
    last_output: Option<u64>,
    /// Highest timeline dts produced (interleaved tracks make the last one not the highest).
    highest_output: Option<u64>,
}

/// The result of mapping one timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapped {
    pub dts: u64,
    /// True when the source jumped and the timeline was re-anchored here.
    pub discontinuity: bool,
}

impl Timeline {
    /// A timeline whose first frame lands at `start` (the previous input's end, or 0).
    pub fn starting_at(start: u64) -> Timeline {
        Timeline {
            offset: 0,
            last_source: None,
            last_output: if start == 0 {
                None
            } else {
                Some(start.saturating_sub(DEFAULT_FRAME_TICKS))
            },
            highest_output: None,
        }
    }

    /// Maps a 33-bit source dts.
    pub fn map(&mut self, source_dts: u64) -> Mapped {
        let source_dts = source_dts % WRAP_TICKS;
        let unwrapped = match self.last_source {
            None => source_dts,
            Some(last) => {
                let last_low = last % WRAP_TICKS;
                let base = last - last_low;
                // Choose the candidate nearest to the last value: handles the wrap.
                let candidates = [
                    base + source_dts,
                    (base + source_dts).wrapping_add(WRAP_TICKS),
                    (base + source_dts).wrapping_sub(WRAP_TICKS),
                ];
                *candidates
                    .iter()
                    .filter(|c| **c < u64::MAX / 2)
                    .min_by_key(|c| c.abs_diff(last))
                    .unwrap_or(&(base + source_dts))
            }
        };
        let mut discontinuity = false;
        match (self.last_source, self.last_output) {
            (None, None) => self.offset = -(unwrapped as i128),
            (None, Some(last_out)) => {
                let last_out = self.highest_output.unwrap_or(last_out).max(last_out);
                self.offset = (last_out + DEFAULT_FRAME_TICKS) as i128 - unwrapped as i128;
                discontinuity = true;
            }
            (Some(last), Some(last_out)) => {
                let jumped = if unwrapped < last {
                    last - unwrapped > MAX_BACKWARD_TICKS
                } else {
                    unwrapped - last > MAX_JUMP_TICKS
                };
                if jumped {
                    let last_out = self.highest_output.unwrap_or(last_out).max(last_out);
                    self.offset = (last_out + DEFAULT_FRAME_TICKS) as i128 - unwrapped as i128;
                    discontinuity = true;
                }
            }
            (Some(_), None) => unreachable!("output is recorded with every source value"),
        }
        self.last_source = Some(unwrapped);
        let dts = (unwrapped as i128 + self.offset).max(0) as u64;
        self.last_output = Some(dts);
        self.highest_output = self.highest_output.max(Some(dts));
        Mapped { dts, discontinuity }
    }

    /// Shifts a pts by the same offset as its dts (pts − dts is kept, bounded to 10 s).
    pub fn pts_for(source_pts: u64, source_dts: u64, mapped_dts: u64) -> u64 {
        let delta = (source_pts % WRAP_TICKS).wrapping_sub(source_dts % WRAP_TICKS) % WRAP_TICKS;
        let delta = if delta > MAX_JUMP_TICKS { 0 } else { delta };
        mapped_dts + delta
    }

    /// The source restarted (a file loops): its next timestamp continues the timeline
    /// one frame after the highest output so far.
    pub fn restart(&mut self) {
        self.last_source = None;
        self.last_output = self.last_output.max(self.highest_output);
    }

    /// The last timeline dts produced.
    pub fn last(&self) -> Option<u64> {
        self.last_output
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_at_zero_and_follows_the_source() {
        let mut timeline = Timeline::starting_at(0);
        assert_eq!(timeline.map(127_920).dts, 0);
        assert_eq!(timeline.map(131_520).dts, 3_600);
    }

    #[test]
    fn unwraps_the_33_bit_wrap() {
        let mut timeline = Timeline::starting_at(0);
        timeline.map(WRAP_TICKS - 3_600);
        let after = timeline.map(0);
        assert_eq!(after.dts, 3_600);
        assert!(!after.discontinuity);
    }

    #[test]
    fn a_loop_or_jump_continues_one_frame_later() {
        let mut timeline = Timeline::starting_at(0);
        timeline.map(900_000);
        timeline.map(903_600);
        assert!(
            !timeline.map(890_000).discontinuity,
            "small backward steps are track skew"
        );
        timeline.restart();
        let looped = timeline.map(900_000);
        assert!(looped.discontinuity);
        assert_eq!(looped.dts, 3_600 + DEFAULT_FRAME_TICKS);
        assert!(
            timeline.map(900_000 - 3 * CLOCK_HZ).discontinuity,
            "a big step back re-anchors"
        );
        let jumped = timeline.map(900_000 + 3_600 + 20 * CLOCK_HZ);
        assert!(jumped.discontinuity);
    }

    #[test]
    fn a_new_input_continues_after_the_previous_one() {
        let mut timeline = Timeline::starting_at(500_000);
        let first = timeline.map(7);
        assert_eq!(first.dts, 500_000);
        assert!(first.discontinuity);
    }

    proptest! {
        #[test]
        fn the_timeline_never_goes_back_more_than_the_skew(steps in proptest::collection::vec(0u64..WRAP_TICKS, 1..200)) {
            let mut timeline = Timeline::starting_at(0);
            let mut highest = 0;
            for source in steps {
                let mapped = timeline.map(source);
                prop_assert!(mapped.dts + MAX_BACKWARD_TICKS >= highest, "{} far below {}", mapped.dts, highest);
                highest = highest.max(mapped.dts);
            }
        }
    }
}
