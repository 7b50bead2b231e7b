//! CMAF / fragmented MP4 (ISO/IEC 14496-12, ISO/IEC 23000-19): the init segment and the
//! fragments that HLS with fMP4 segments, LL-HLS parts and DASH all serve. Pure byte
//! builders: the packager decides what goes in which fragment.
//!
//! H.264 (`avc1`, parameter sets in `avcC`), H.265 (`hvc1`, parameter sets in `hvcC`)
//! and AAC (`mp4a` with its AudioSpecificConfig).

pub mod aac;
pub mod avc;
pub mod boxes;
pub mod fragment;
pub mod hevc;
pub mod init;

pub use fragment::{Sample, TrackRun, fragment};
pub use init::{TrackConfig, TrackKind, init_segment};
