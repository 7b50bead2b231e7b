//! flotilla-sim: deterministic simulations of a whole flotilla cluster in one process.
//!
//! Every node is the real node core ([`flotilla::node_core::NodeCore`]: actor tree,
//! mesh over QUIC, cluster_ingest coordinator) on a turmoil host; the network is
//! turmoil's, quinn runs over it ([`udp`]), cameras are fake ([`media`]). A run is a
//! pure function of its seed: the seed draws the fault profile and schedule
//! ([`profile`]), seeds every node's runtime, quinn's endpoints and turmoil's network.
//! [`run`] drives chaos then heal and checks the [`invariants`] as it goes.

pub mod cluster;
pub mod crypto;
pub mod invariants;
pub mod key_schedule;
pub mod links;
pub mod media;
pub mod mix;
pub mod net;
pub mod observe;
pub mod profile;
pub mod run;
pub mod signatures;
pub mod sweep;
pub mod udp;
pub mod world;
