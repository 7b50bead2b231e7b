//! flotilla-cluster: the cluster's decisions and the actors that host them.
//!
//! The decisions are sans-IO, pure functions of their inputs and `now`: where each
//! cluster_ingest stream is captured ([`ingest::placement`], and the coordinator's
//! state machine on top of it, [`ingest::book`]), who is alive and what each peer runs
//! ([`mesh::view`], [`mesh::history`]), where a restreamed stream comes from
//! ([`source::book`]), which server a viewer goes to
//! ([`balancer::choose`]). The actors around them are thin shells on `flotilla_otp`:
//! the peer links, the ingest coordinator, the balancers, the stream actors and the
//! node's tree ([`tree`]), built from a [`tree::NodePlan`]. It knows no config syntax
//! and no IO: the node (the `flotilla` crate) translates its config into a plan and
//! implements the seams ([`stream::StreamMedia`], [`ingest::IngestIo`], the mesh's
//! links).
//!
//! It obeys flotilla-otp's two rules (one runtime seam, no process-wide state): the
//! simulator runs many nodes of it in one process.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod balancer;
pub mod ingest;
pub mod mesh;
pub mod source;
pub mod stream;
pub mod tree;
