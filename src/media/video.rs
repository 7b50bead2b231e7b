//! What a video frame says, for every video codec flotilla carries: whether a decoder
//! can start at it, and its picture size and codec string (from the parameter sets a
//! keyframe carries).

use super::frame::Codec;
use super::h264::{self, VideoInfo};
use super::{h265, mpeg2};

/// Whether a video access unit of `codec` is one a decoder can start from; audio frames
/// always are.
pub fn is_keyframe(codec: Codec, data: &[u8]) -> bool {
    match codec {
        Codec::H264 => h264::is_keyframe(data),
        Codec::H265 => h265::is_keyframe(data),
        Codec::Mpeg2Video => mpeg2::is_keyframe(data),
        Codec::Aac | Codec::MpegAudio | Codec::Ac3 | Codec::Eac3 | Codec::Opus => true,
    }
}

/// Picture size and codec string from a keyframe's parameter sets.
pub fn info(codec: Codec, data: &[u8]) -> Option<VideoInfo> {
    match codec {
        Codec::H264 => h264::video_info(data),
        Codec::H265 => h265::video_info(data),
        Codec::Mpeg2Video => mpeg2::video_info(data),
        Codec::Aac | Codec::MpegAudio | Codec::Ac3 | Codec::Eac3 | Codec::Opus => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn codec_headers_of_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            for codec in Codec::ALL {
                let _ = is_keyframe(codec, &bytes);
                if let Some(info) = info(codec, &bytes) {
                    prop_assert!(info.width > 0 && info.height > 0);
                }
                if let Some(info) = crate::media::audio::info(codec, &bytes) {
                    prop_assert!((7_350..=96_000).contains(&info.sample_rate));
                }
            }
        }

        /// An H.265 SPS with random bytes after a valid NAL header: the parser reads
        /// only what is there.
        #[test]
        fn random_hevc_spss_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let mut access_unit = vec![0, 0, 0, 1, 0x42, 0x01];
            access_unit.extend_from_slice(&bytes);
            let _ = info(Codec::H265, &access_unit);
        }
    }
}
