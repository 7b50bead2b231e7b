//! Fuzzes what an `hls://` input does with a playlist a source serves: parsing never
//! panics, and a follower fed what parsed takes only segments the playlist holds, each
//! at most the queue bound at once, whatever the numbers say.
#![no_main]

use flotilla::media::hls_pull::{Follower, MAX_QUEUED_SEGMENTS, Parsed, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Parsed::Media(view)) = parse(data) {
        let mut follower = Follower::default();
        for now_ms in [0, 1_000] {
            let (taken, _) = follower.take(&view, now_ms);
            assert!(taken.len() <= MAX_QUEUED_SEGMENTS);
            for segment in taken {
                let index = segment.sequence - view.media_sequence;
                assert!((index as usize) < view.segments.len());
            }
            let _ = follower.stalled(now_ms);
        }
    }
});
