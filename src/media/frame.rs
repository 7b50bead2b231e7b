//! Frames: the unit every input produces and every output consumes.
//!
//! Inputs differ (MPEG-TS PES, RTMP/FLV tags, files), outputs differ (TS segments, a TS
//! byte stream, FLV tags); frames in between are one format: an access unit with its
//! timestamps on the stream's own continuous 90 kHz timeline.

use bytes::Bytes;

/// 90 kHz: MPEG-TS's clock, used for every timestamp in the media plane.
pub const CLOCK_HZ: u64 = 90_000;

/// Converts 90 kHz ticks to milliseconds.
pub fn ticks_to_ms(ticks: u64) -> u64 {
    ticks / (CLOCK_HZ / 1000)
}

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// H.264 video; data is an Annex-B access unit (start codes, SPS/PPS before IDRs).
    H264,
    /// AAC audio; data is one or more ADTS frames.
    Aac,
}

impl Codec {
    pub fn is_video(self) -> bool {
        matches!(self, Codec::H264)
    }
}

/// One access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub codec: Codec,
    /// Decode time, 90 kHz, on the stream's continuous timeline.
    pub dts: u64,
    /// Presentation time, 90 kHz (≥ dts).
    pub pts: u64,
    /// A video frame a decoder can start from (IDR), or any audio frame.
    pub keyframe: bool,
    pub data: Bytes,
}

impl Frame {
    /// Whether a viewer can start at this frame: a video keyframe.
    pub fn starts_gop(&self) -> bool {
        self.codec.is_video() && self.keyframe
    }
}

/// Longest frame accepted from any input: a 4K IDR at high quality is a few MiB; anything
/// larger is a broken or hostile source.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
