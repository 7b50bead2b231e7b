//! Errors classified by who is at fault and whether trying again may help.
//!
//! An operator reading a failure must know whether to fix the config, the machine, a peer
//! or the network; code handling one must know whether a retry can succeed. So every
//! layer has its own error enum (config values, RTMP, the mesh, GeoIP, the shell, …), and
//! each implements [`Classified`]: the answer is read from the variant, never from the
//! message text. Every error that reaches the top of the node says its fault, and the
//! binary's exit code follows from it ([`NodeError::exit_code`]).

use std::fmt;
use std::net::SocketAddr;

use flotilla_otp::supervisor::{StartError, SupervisorError, SupervisorFailure};

use crate::config::ConfigErrors;
use crate::geoip::GeoIpError;
use crate::mesh::service::MeshError;

/// Who is at fault for an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The configuration is wrong: fix the file.
    Config,
    /// This machine refused something (port taken, permission, disk), or this node's own
    /// code did: fix the host, or report a bug.
    Local,
    /// Another party misbehaved: a peer node, a client breaking its protocol, a node
    /// holding another key.
    Peer,
    /// The network between us and the other party failed; retrying may help.
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

/// An error that says who is at fault and whether the same attempt, repeated later, may
/// succeed (pingora's two questions about every error).
pub trait Classified {
    /// Who is at fault.
    fn fault(&self) -> Fault;
    /// Whether repeating the attempt may succeed. By default only transport failures.
    fn retryable(&self) -> bool {
        self.fault() == Fault::Transport
    }
}

/// An error that stops the node (or a command) from running.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The config did not load: its diagnostics.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A listener's address is taken or not ours (local).
    #[error("cannot listen on {address} for {purpose}: {source}")]
    Bind {
        address: SocketAddr,
        purpose: &'static str,
        source: std::io::Error,
    },
    /// An SRT listener could not be set up: libsrt missing, or the port taken (local).
    #[error("cannot listen on {address} for srt: {source}")]
    Srt {
        address: SocketAddr,
        source: crate::srt::ffi::SrtError,
    },
    /// A stream's `on_play`/`on_publish`/`auth` names no usable policy (operator).
    #[error("{0}")]
    Policy(#[from] crate::auth::PolicyError),
    /// The TLS certificate or key of the https/rtmps listeners did not load (operator).
    #[error("cannot serve https/rtmps: {0}")]
    Tls(#[from] crate::tls::TlsFileError),
    /// The host refused something else (threads, signals, a benchmark's needs).
    #[error("{context}: {source}")]
    Local {
        context: String,
        source: std::io::Error,
    },
    /// The root supervisor could not start (local).
    #[error("the actor tree failed: {0}")]
    TreeStart(#[source] StartError),
    /// The root supervisor gave up: restart intensity exceeded at the top (local).
    #[error("the actor tree failed: the root supervisor gave up (restart intensity exceeded)")]
    TreeGaveUp,
    /// The cluster mesh could not start: UDP port taken, identity unusable (local).
    #[error("{0}")]
    Mesh(#[from] MeshError),
    /// The `geoip` database is missing, too large or broken (local).
    #[error("{0}")]
    GeoIp(#[from] GeoIpError),
    /// An `event_sink` destination is unsupported (operator) or its file cannot be
    /// opened (local).
    #[error("{0}")]
    Events(#[from] crate::events::sink::SinkError),
}

impl Classified for NodeError {
    fn fault(&self) -> Fault {
        match self {
            NodeError::Config(_) | NodeError::Tls(_) | NodeError::Policy(_) => Fault::Config,
            NodeError::Bind { .. }
            | NodeError::Srt { .. }
            | NodeError::Local { .. }
            | NodeError::TreeStart(_)
            | NodeError::TreeGaveUp => Fault::Local,
            NodeError::Mesh(error) => error.fault(),
            NodeError::GeoIp(error) => error.fault(),
            NodeError::Events(crate::events::sink::SinkError::Unsupported { .. }) => Fault::Config,
            NodeError::Events(crate::events::sink::SinkError::File { .. }) => Fault::Local,
        }
    }
}

impl NodeError {
    /// Process exit code: 1 for config errors, 3 for local ones, 4 when the actor tree
    /// failed (2 is clap's usage error).
    pub fn exit_code(&self) -> u8 {
        match self {
            NodeError::TreeStart(_) | NodeError::TreeGaveUp => 4,
            other => match other.fault() {
                Fault::Config => 1,
                Fault::Local | Fault::Peer | Fault::Transport => 3,
            },
        }
    }
}

/// The supervision errors of `flotilla-otp`, which knows no faults, in the node's
/// terms: a child that does not start is this node's own failure.
impl Classified for StartError {
    fn fault(&self) -> Fault {
        Fault::Local
    }
}

impl Classified for SupervisorError {
    fn fault(&self) -> Fault {
        Fault::Local
    }
    /// A full supervisor may have room later; a child's start is retried by its policy.
    fn retryable(&self) -> bool {
        matches!(self, SupervisorError::TooManyChildren(_))
    }
}

impl Classified for SupervisorFailure {
    fn fault(&self) -> Fault {
        Fault::Local
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_fault() {
        let local = NodeError::Local {
            context: "test".into(),
            source: std::io::Error::other("refused"),
        };
        assert_eq!((local.fault(), local.exit_code()), (Fault::Local, 3));
        assert_eq!(NodeError::TreeGaveUp.exit_code(), 4);
        let geoip = NodeError::GeoIp(GeoIpError::TooLarge {
            path: "x.mmdb".into(),
            size: u64::MAX,
        });
        assert_eq!((geoip.fault(), geoip.exit_code()), (Fault::Local, 3));
    }
}
