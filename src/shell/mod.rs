//! `flotilla shell`: Erlang's observer and remote shell for a flotilla cluster.
//!
//! The operator's client dials a node's mesh endpoint with the shell ALPN and the
//! cluster key's certificate, or logs in with edit_auth/view_auth credentials (neither
//! the key nor the password crosses the wire: `login`); the node answers
//! each command through its own HTTP API in-process, so the shell and the API show the
//! same thing. `@NODE COMMAND` runs a command on a peer through the node.

pub mod client;
pub mod commands;
pub mod login;
pub mod render;
pub mod server;
pub mod wire;
