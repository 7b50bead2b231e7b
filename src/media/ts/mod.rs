//! MPEG-TS: the muxer (frames → 188-byte packets, through the mpeg2ts crate's packet
//! writer) and the demuxer (bytes → PES packets, our own: see `demux.rs` for why).

pub mod demux;
pub mod mux;

use crate::media::frame::Codec;

/// Size of one transport packet.
pub const PACKET_BYTES: usize = 188;
/// Sync byte that starts every packet.
pub const SYNC_BYTE: u8 = 0x47;

/// PIDs flotilla writes (the values most tools expect): the PMT, and track `n` on
/// `ELEMENTARY_PID_BASE + n` (video on 0x100, the first audio track on 0x101).
pub const PMT_PID: u16 = 0x1000;
pub const ELEMENTARY_PID_BASE: u16 = 0x100;
pub const VIDEO_PID: u16 = ELEMENTARY_PID_BASE;
pub const AUDIO_PID: u16 = ELEMENTARY_PID_BASE + 1;

/// ISO 13818-1 stream types of the two most common codecs.
pub const STREAM_TYPE_H264: u8 = 0x1b;
pub const STREAM_TYPE_ADTS_AAC: u8 = 0x0f;
/// PES private data: what Opus is carried as, named by a registration descriptor.
pub const STREAM_TYPE_PRIVATE_DATA: u8 = 0x06;

/// The stream type flotilla writes for `codec` (ISO 13818-1 Table 2-34; ATSC A/52 for
/// AC-3 and E-AC-3, what ffmpeg and Apple's HLS tools write too).
pub fn stream_type(codec: Codec) -> u8 {
    match codec {
        Codec::H264 => STREAM_TYPE_H264,
        Codec::H265 => 0x24,
        Codec::Mpeg2Video => 0x02,
        Codec::Aac => STREAM_TYPE_ADTS_AAC,
        Codec::MpegAudio => 0x03,
        Codec::Ac3 => 0x81,
        Codec::Eac3 => 0x87,
        // Opus in MPEG-TS (the Opus project's ETSI draft, as ffmpeg writes and reads it):
        // PES private data, named by its registration descriptor.
        Codec::Opus => STREAM_TYPE_PRIVATE_DATA,
    }
}
