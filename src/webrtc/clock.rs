//! RTP media time onto one 90 kHz clock for a WHIP publisher's tracks.
//!
//! Each RTP stream starts at a random timestamp on its own clock (90 kHz video, 48 kHz
//! Opus), so two tracks' RTP times say nothing about each other. Each track is anchored
//! where its first frame arrived (time since the peer connection's first frame, in 90 kHz
//! ticks) and advances by its RTP times from there: frame spacing is exactly the
//! sender's, and audio and video line up to within the network jitter of their first
//! packets. A jump of the RTP time larger than [`MAX_RTP_JUMP_TICKS`] (a sender that
//! restarted its encoder) anchors the track again at the arrival time.
//!
//! The stream's input then passes these times through its `Timeline` like every source's.

use crate::media::frame::CLOCK_HZ;

/// An RTP time step (either way) larger than this, 10 s, is a restart, not a gap.
pub const MAX_RTP_JUMP_TICKS: u64 = 10 * CLOCK_HZ;

/// One track's mapping.
#[derive(Debug, Clone, Default)]
pub struct TrackClock {
    /// The last frame: its RTP time in 90 kHz ticks and where it landed.
    last: Option<(u64, u64)>,
}

impl TrackClock {
    /// The 90 kHz time of a frame at RTP media time `rtp` (`numer` over `rate` Hz) that
    /// arrived `arrival_ticks` after the connection's first frame.
    pub fn ticks(&mut self, numer: u64, rate: u32, arrival_ticks: u64) -> u64 {
        let rtp = rescale(numer, rate);
        let at = match self.last {
            Some((last_rtp, last_at)) if rtp.abs_diff(last_rtp) <= MAX_RTP_JUMP_TICKS => {
                if rtp >= last_rtp {
                    last_at + (rtp - last_rtp)
                } else {
                    last_at.saturating_sub(last_rtp - rtp)
                }
            }
            _ => arrival_ticks,
        };
        self.last = Some((rtp, at));
        at
    }
}

/// `numer` ticks of a `rate` Hz clock in 90 kHz ticks (a zero rate reads as 90 kHz).
pub fn rescale(numer: u64, rate: u32) -> u64 {
    if rate == 0 {
        return numer;
    }
    (u128::from(numer) * u128::from(CLOCK_HZ) / u128::from(rate)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tracks_start_where_they_arrive_and_keep_the_senders_spacing() {
        let mut video = TrackClock::default();
        let mut audio = TrackClock::default();
        // Random RTP starts; audio arrives 20 ms after video.
        assert_eq!(video.ticks(3_000_000_000, 90_000, 0), 0);
        assert_eq!(audio.ticks(1_000_000, 48_000, 1_800), 1_800);
        // 33 ms of video later (jittered arrival ignored), 20 ms of Opus later.
        assert_eq!(video.ticks(3_000_003_000, 90_000, 3_500), 3_000);
        assert_eq!(audio.ticks(1_000_960, 48_000, 9_000), 3_600);
    }

    #[test]
    fn a_restarted_sender_is_anchored_again_at_its_arrival() {
        let mut video = TrackClock::default();
        video.ticks(1_000, 90_000, 0);
        assert_eq!(video.ticks(4_000, 90_000, 3_000), 3_000);
        let jumped = video.ticks(4_000 + 20 * 90_000, 90_000, 6_000);
        assert_eq!(jumped, 6_000);
        assert_eq!(
            video.ticks(4_000 + 20 * 90_000 + 3_000, 90_000, 9_500),
            9_000
        );
    }

    proptest! {
        #[test]
        fn times_never_run_away_from_arrivals(steps in proptest::collection::vec((0u64..200_000, 0u64..20_000), 1..100)) {
            let mut clock = TrackClock::default();
            let (mut rtp, mut arrival) = (u64::from(u32::MAX), 0u64);
            for (rtp_step, arrival_step) in steps {
                rtp += rtp_step;
                arrival += arrival_step;
                let at = clock.ticks(rtp, 90_000, arrival);
                // Within the jump bound of where RTP time says it should be.
                prop_assert!(at <= arrival + MAX_RTP_JUMP_TICKS * 100);
            }
        }
    }
}
