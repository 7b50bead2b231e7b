//! CMAF packaging of a live stream: the fMP4 fragments that HLS with fMP4 segments,
//! Low-Latency HLS (parts) and MPEG-DASH all serve, muxed once per stream beside its
//! MPEG-TS segments and shared by every viewer.
//!
//! - `track_init`: a track's init segment from its frames, named by a digest.
//! - `packager`: frames and segment ends → parts and per-track segments (pure).
//! - `playlist`: the LL-HLS media and master playlists and the DASH manifest of a
//!   stream's window, and the names of its CMAF resources.
//!
//! Each segment of the stream's window ([`crate::media::window::Segment`]) carries its
//! CMAF fragments beside its TS bytes: the same media sequence number, duration,
//! program date and discontinuity, so that the TS and CMAF outputs and every node
//! serving the stream agree. The parts of the segment being written live in the window
//! too ([`crate::media::window::OpenParts`]).

pub mod packager;
pub mod playlist;
pub mod track_init;

pub use packager::{ClosedPart, CmafPackager, Part, PartSpan, TrackSegment};
pub use track_init::{TrackInit, track_name, track_of_name};
