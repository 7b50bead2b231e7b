//! The cluster mesh: QUIC between nodes, authenticated by the cluster key.
//!
//! `wire` encodes, `advert` builds what this node advertises, `catalog` what it tells an
//! edge of another cluster (`source`), `auth` authenticates (rustls
//! and webpki, the cluster identities as trust anchors), `connect` says why dialing a
//! node failed, `state` is the exchange protocol apart from IO (hellos, versioned states,
//! deltas), `exchange` frames it and `service` runs it over one quinn endpoint, `links`
//! is what peer link actors drive, `net` is the socket seam the simulator replaces,
//! `node` wires it into a node.

pub mod advert;
pub mod auth;
pub mod catalog;
pub mod connect;
pub mod exchange;
pub mod links;
pub mod net;
pub mod node;
pub mod service;
pub mod state;
pub mod wire;
