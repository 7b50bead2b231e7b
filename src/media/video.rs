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
        Codec::Aac | Codec::MpegAudio | Codec::Ac3 | Codec::Eac3 => true,
    }
}

/// Picture size and codec string from a keyframe's parameter sets.
pub fn info(codec: Codec, data: &[u8]) -> Option<VideoInfo> {
    match codec {
        Codec::H264 => h264::video_info(data),
        Codec::H265 => h265::video_info(data),
        Codec::Mpeg2Video => mpeg2::video_info(data),
        Codec::Aac | Codec::MpegAudio | Codec::Ac3 | Codec::Eac3 => None,
    }
}
