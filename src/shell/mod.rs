//! `flotilla shell`: Erlang's observer and remote shell for a flotilla cluster.
//!
//! The operator's client dials a node's mesh endpoint with the shell ALPN and the
//! cluster key's certificate (the key itself never crosses the wire); the node answers
//! each command through its own HTTP API in-process, so the shell and the API show the
//! same thing. `@NODE COMMAND` runs a command on a peer through the node.

pub mod client;
pub mod commands;
pub mod render;
pub mod server;
pub mod wire;
