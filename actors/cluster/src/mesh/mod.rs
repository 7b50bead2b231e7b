//! The cluster mesh: one peer link per other node, and the cluster view they maintain.

pub mod history;
mod peer_link;
pub mod view;

pub use peer_link::{ExchangeFailure, Exchanged, MeshOff, NoMesh, PeerIo, PeerLink, PeerLinkMsg};
