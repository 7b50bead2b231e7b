//! The cluster mesh: QUIC between nodes, authenticated by the cluster key.
//!
//! Being built (issue 5): the wire protocol and the key-derived mutual TLS are here; the
//! peer links that use them land next.

pub mod auth;
pub mod exchange;
pub mod service;
pub mod wire;
