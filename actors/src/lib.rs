//! flotilla-actors: the supervision layer, every actor of a node, and the sans-IO cluster
//! logic they host.
//!
//! This crate is the part of flotilla that the deterministic simulator runs many times in
//! one process, so it obeys two rules that the rest of the code base can take for granted:
//!
//! - **One nondeterminism seam.** Clock reads, randomness and task spawning go through
//!   [`rt::Runtime`]; clippy's `disallowed-methods` (see `clippy.toml`) rejects the direct
//!   calls everywhere else.
//! - **No process-wide state.** Nothing node-scoped lives in a static or in ractor's global
//!   registry or process groups: several nodes share one process in simulations. Each node
//!   has a [`node::NodeContext`] with its own [`registry::Registry`].

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod balancer;
pub mod core_workers;
pub mod ingest;
pub mod mesh;
pub mod node;
pub mod registry;
pub mod rt;
pub mod stream;
pub mod supervisor;
pub mod tree;
pub mod worker;
