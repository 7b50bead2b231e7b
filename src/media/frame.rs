//! Frames: the unit every input produces and every output consumes.
//!
//! Inputs differ (MPEG-TS PES, RTMP/FLV tags, RTP, files), outputs differ (TS segments, a
//! TS byte stream, FLV tags); frames in between are one format: an access unit of one
//! track with its timestamps on the stream's own continuous 90 kHz timeline.

use bytes::Bytes;

/// 90 kHz: MPEG-TS's clock, used for every timestamp in the media plane.
pub const CLOCK_HZ: u64 = 90_000;

/// Converts 90 kHz ticks to milliseconds.
pub fn ticks_to_ms(ticks: u64) -> u64 {
    ticks / (CLOCK_HZ / 1000)
}

/// What a frame carries: the codecs flotilla passes from input to output. Each is carried
/// in the framing MPEG-TS gives it, which every input is turned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Codec {
    /// H.264/AVC; data is an Annex-B access unit (start codes, SPS/PPS before IDRs).
    H264,
    /// H.265/HEVC; data is an Annex-B access unit (VPS/SPS/PPS before IRAP pictures).
    H265,
    /// MPEG-2 video (and MPEG-1, its subset); data is one picture with the sequence
    /// header before I-pictures that start a GOP.
    Mpeg2Video,
    /// AAC; data is one or more ADTS frames.
    Aac,
    /// MPEG-1/2 audio layer I, II (MP2) or III (MP3); data is one or more frames.
    MpegAudio,
    /// Dolby Digital (AC-3); data is one or more sync frames.
    Ac3,
    /// Dolby Digital Plus (E-AC-3); data is one or more sync frames.
    Eac3,
    /// Opus (WebRTC's audio); data is one Opus packet as RTP carries it (TOC byte first,
    /// no framing), always at 48 kHz.
    Opus,
}

impl Codec {
    /// Every codec carried.
    pub const ALL: [Codec; 8] = [
        Codec::H264,
        Codec::H265,
        Codec::Mpeg2Video,
        Codec::Aac,
        Codec::MpegAudio,
        Codec::Ac3,
        Codec::Eac3,
        Codec::Opus,
    ];

    pub fn is_video(self) -> bool {
        matches!(self, Codec::H264 | Codec::H265 | Codec::Mpeg2Video)
    }

    /// The codec's name in messages to operators and viewers.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "H.264",
            Codec::H265 => "H.265",
            Codec::Mpeg2Video => "MPEG-2 video",
            Codec::Aac => "AAC",
            Codec::MpegAudio => "MPEG audio (MP2/MP3)",
            Codec::Ac3 => "AC-3",
            Codec::Eac3 => "E-AC-3",
            Codec::Opus => "Opus",
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The track a stream's video is on: a program carries at most one video track.
pub const VIDEO_TRACK: u8 = 0;
/// The first audio track; the others follow in the source's order.
pub const FIRST_AUDIO_TRACK: u8 = 1;

/// One access unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub codec: Codec,
    /// The track it belongs to in the stream's program (see `media::program`):
    /// [`VIDEO_TRACK`] for video, [`FIRST_AUDIO_TRACK`] and up for audio.
    pub track: u8,
    /// Decode time, 90 kHz, on the stream's continuous timeline.
    pub dts: u64,
    /// Presentation time, 90 kHz (≥ dts).
    pub pts: u64,
    /// A video frame a decoder can start from (IDR, IRAP, I-picture), or any audio frame.
    pub keyframe: bool,
    pub data: Bytes,
}

impl Frame {
    /// Whether a viewer can start at this frame: a video keyframe.
    pub fn starts_gop(&self) -> bool {
        self.codec.is_video() && self.keyframe
    }

    /// The track a frame of `codec` goes to when its source has one track per kind (RTMP,
    /// a camera): video on [`VIDEO_TRACK`], audio on [`FIRST_AUDIO_TRACK`].
    pub fn default_track(codec: Codec) -> u8 {
        if codec.is_video() {
            VIDEO_TRACK
        } else {
            FIRST_AUDIO_TRACK
        }
    }
}

/// Longest frame accepted from any input: a 4K IDR at high quality is a few MiB; anything
/// larger is a broken or hostile source.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;
