//! flotilla-otp: Erlang/OTP's supervision layer on ractor, for one node or many nodes
//! in one process.
//!
//! It knows nothing of media, configs or clusters: supervisors with OTP's strategies,
//! restart types, shutdown and restart intensity ([`supervisor`]); a per-node registry of
//! actors with their paths, kinds, restarts and counters ([`registry`]); leaf actors
//! with counted mailboxes ([`worker`]); a node's context ([`node`]); and thread-per-core
//! connection workers ([`core_workers`]). Two rules hold everywhere, so that a
//! deterministic simulator can run many nodes in one process:
//!
//! - **One nondeterminism seam.** Clock reads, randomness and task spawning go through
//!   [`rt::Runtime`]; clippy's `disallowed-methods` (see the workspace's `clippy.toml`)
//!   rejects the direct calls everywhere else.
//! - **No process-wide state.** Nothing node-scoped lives in a static or in ractor's global
//!   registry or process groups. Each node has a [`node::NodeContext`] with its own
//!   [`registry::Registry`].
//!
//! `examples/supervised_actors.rs` uses it alone: a supervision tree of many workers,
//! its memory and spawn time.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod core_workers;
pub mod node;
pub mod registry;
pub mod rt;
pub mod supervisor;
pub mod worker;
