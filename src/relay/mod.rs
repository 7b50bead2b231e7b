//! Media between nodes: a node serves a stream it does not have by relaying it from the
//! node that has it, over the cluster's QUIC mesh.
//!
//! What travels is frames, with the origin's segment boundaries between them
//! (`media::follow`): frames because every output a node serves (HLS, HTTP-MPEG-TS,
//! RTMP, and the packagings to come) is made from them, and because they cost the mesh
//! the stream's own bitrate plus a few bytes per frame (MPEG-TS would add its 3–10 %);
//! the boundaries because a relaying node must cut, name and number its segments as the
//! origin does, so that every node serves the same playlists. The relaying node muxes
//! the frames itself from the origin's muxer state, so its segments are the origin's
//! byte for byte.
//!
//! One subscription is one QUIC bidirectional stream on the connection the nodes already
//! have: the relaying node sends `Subscribe`, the origin answers with relay frames
//! (`mesh::wire::relay`) until either side ends it:
//!
//! 1. `Start`: the stream's window shape and rendition, then the whole segments of its
//!    window (`Segment` parts), so the relaying node's playlist is the origin's at once;
//! 2. at the next segment boundary, the segments sealed meanwhile, whole, then `Resume`
//!    with the muxer state; from there every `Frame` and every `Cut` as they happen.
//!
//! The origin never waits for a relaying node: a subscription reads the stream's follow
//! ring, and one that falls [`crate::media::live::VIEWER_QUEUE_CHUNKS`] events behind
//! (QUIC flow control holding its writes) loses the live frames until the next boundary,
//! where it gets the missed segments whole and resumes; its HLS viewers miss nothing,
//! its live viewers a stretch. Memory per subscription is the ring's share plus one
//! frame being written.
//!
//! [`origin`] serves subscriptions; [`edge`] runs a relayed stream on the relaying node
//! (one upstream per stream however many viewers it has there; it follows the stream's
//! owner when that changes and ends `clients_timeout` after its last viewer);
//! [`upstream`] finds the owner and opens subscriptions over the mesh; [`start`] starts
//! relayed streams for HTTP and RTMP viewers.

pub mod edge;
pub mod error;
pub mod origin;
pub mod server;
pub mod start;
pub mod transport;
pub mod upstream;

#[cfg(test)]
mod tests;

pub use error::RelayError;
pub use upstream::{Feed, Upstream};

/// The input URL of a relayed stream (its plan's only input): the stream is taken from
/// whichever node has it.
pub const RELAY_INPUT: &str = "relay://cluster";
