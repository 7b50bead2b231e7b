//! Node-level errors, classified by who is at fault.
//!
//! An operator reading a failure must know whether to fix the config, the machine, a peer
//! or the network. Every error that reaches the top of the node says which.

use std::fmt;
use std::net::SocketAddr;

use crate::config::ConfigErrors;

/// Who is at fault for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The configuration is wrong: fix the file.
    Config,
    /// This machine refused something (port taken, permission, disk): fix the host.
    Local,
    /// Another node misbehaved or holds another key.
    Peer,
    /// The network between nodes failed; retrying may help.
    Transport,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fault::Config => "config",
            Fault::Local => "local",
            Fault::Peer => "peer",
            Fault::Transport => "transport",
        })
    }
}

/// An error that stops the node (or a command) from running.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("cannot listen on {address} for {purpose}: {source}")]
    Bind {
        address: SocketAddr,
        purpose: &'static str,
        source: std::io::Error,
    },
    #[error("{context}: {source}")]
    Local {
        context: String,
        source: std::io::Error,
    },
    /// The root supervisor could not start, or gave up (restart intensity exceeded at the top).
    #[error("the actor tree failed: {0}")]
    Tree(String),
    /// The cluster mesh could not start (UDP port taken, key unusable).
    #[error("{0}")]
    Mesh(String),
    /// The `geoip` database is missing, too large or broken.
    #[error("{0}")]
    GeoIp(String),
}

impl NodeError {
    pub fn fault(&self) -> Fault {
        match self {
            NodeError::Config(_) => Fault::Config,
            NodeError::Bind { .. }
            | NodeError::Local { .. }
            | NodeError::Tree(_)
            | NodeError::Mesh(_)
            | NodeError::GeoIp(_) => Fault::Local,
        }
    }

    /// Process exit code: 1 for config errors, 3 for local ones, 4 when the actor tree
    /// gave up (2 is clap's usage error).
    pub fn exit_code(&self) -> u8 {
        match self {
            NodeError::Tree(_) => 4,
            other => match other.fault() {
                Fault::Config => 1,
                Fault::Local | Fault::Peer | Fault::Transport => 3,
            },
        }
    }
}
