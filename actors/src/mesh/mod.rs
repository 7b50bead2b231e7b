//! The cluster mesh: one peer link per other node.

mod peer_link;

pub use peer_link::PeerLink;
