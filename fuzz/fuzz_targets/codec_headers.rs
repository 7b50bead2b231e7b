//! Fuzzes what a source's frames say about their codec: the H.265 SPS (bit reader,
//! Exp-Golomb codes, profile/tier/level with sub-layers), MPEG-2 start codes, and the
//! AAC, MPEG audio, AC-3 and E-AC-3 headers. Any bytes as a frame of any codec: never a
//! panic, and sizes and rates that a header gives are plausible.
#![no_main]

use flotilla::media::frame::Codec;
use flotilla::media::{audio, video};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for codec in Codec::ALL {
        let _ = video::is_keyframe(codec, data);
        if let Some(info) = video::info(codec, data) {
            assert!(info.width > 0 && info.height > 0);
        }
        if let Some(info) = audio::info(codec, data) {
            assert!(info.sample_rate >= 7_350 && info.sample_rate <= 96_000);
            assert!(info.samples_per_frame > 0);
        }
    }
});
