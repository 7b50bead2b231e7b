//! The media plane: frames in, segments and byte streams out.
//!
//! Control plane in actors, data plane on shared buffers: the stream actor decides what
//! runs; the bytes flow from an input task through the packager into a stream's shared
//! state, which HTTP and RTMP handlers read directly (never through a mailbox).

pub mod frame;
pub mod segmenter;
pub mod timeline;
pub mod window;
