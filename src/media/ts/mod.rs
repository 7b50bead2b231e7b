//! MPEG-TS: the muxer (frames → 188-byte packets, through the mpeg2ts crate's packet
//! writer) and the demuxer (bytes → PES packets, our own: see `demux.rs` for why).

pub mod demux;
pub mod mux;

/// Size of one transport packet.
pub const PACKET_BYTES: usize = 188;
/// Sync byte that starts every packet.
pub const SYNC_BYTE: u8 = 0x47;

/// PIDs and stream ids flotilla writes (the values most tools expect).
pub const PMT_PID: u16 = 0x1000;
pub const VIDEO_PID: u16 = 0x100;
pub const AUDIO_PID: u16 = 0x101;

/// ISO 13818-1 stream types.
pub const STREAM_TYPE_H264: u8 = 0x1b;
pub const STREAM_TYPE_ADTS_AAC: u8 = 0x0f;
