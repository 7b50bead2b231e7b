//! The media plane: frames in, segments and byte streams out.
//!
//! Control plane in actors, data plane on shared buffers: the stream actor decides what
//! runs; the bytes flow from an input task through the packager into a stream's shared
//! state, which HTTP and RTMP handlers read directly (never through a mailbox).

pub mod aac;
pub mod audio;
pub mod bits;
pub mod cmaf;
pub mod dash;
pub mod directory;
pub mod fmp4;
pub mod follow;
pub mod frame;
pub mod h264;
pub mod h265;
pub mod hls_pull;
pub mod input;
pub mod live;
pub mod llhls;
pub mod mpeg2;
pub mod name;
pub mod program;
pub mod rtsp_pull;
pub mod sealed;
pub mod segmenter;
pub mod service;
pub mod source;
pub mod timeline;
pub mod track_facts;
pub mod tracks;
pub mod ts;
pub mod video;
pub mod window;

/// The built-in test clip (see assets/README.md): 4 s of H.264 + AAC in MPEG-TS.
pub const TEST_CLIP_TS: &[u8] = include_bytes!("../../assets/testsrc.ts");
