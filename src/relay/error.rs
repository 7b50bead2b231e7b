//! Why a relay subscription ended, and who is at fault.

use crate::error::{Classified, Fault};
use crate::media::follow::ReplicaError;
use crate::mesh::wire::WireError;

/// Why a subscription could not start or ended.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// No alive node has the stream (nobody's fault yet: it may appear).
    #[error("no node has the stream")]
    NoOwner,
    /// The owner could not be reached (transport; retry).
    #[error("cannot reach {node}: {reason}")]
    Unreachable { node: String, reason: String },
    /// The owner's frames broke the relay protocol (peer).
    #[error("{node} sent a bad relay frame: {error}")]
    BadFrame { node: String, error: WireError },
    /// The owner's frames do not make a stream (peer).
    #[error("{node} sent media this node cannot follow: {error}")]
    BadMedia { node: String, error: ReplicaError },
    /// The owner sent frames out of the protocol's order (peer).
    #[error("{node} broke the relay protocol: {what}")]
    Protocol { node: String, what: &'static str },
    /// The owner ended the subscription (it stopped having the stream).
    #[error("{node} ended the relay: {reason}")]
    Ended { node: String, reason: String },
    /// The connection failed or the stream was reset (transport; retry).
    #[error("relay from {node} lost: {reason}")]
    Lost { node: String, reason: String },
    /// The view names another node (or none) for the stream now: the origin died or
    /// the capture moved (nobody's fault; subscribe again).
    #[error("{node} no longer has the stream (now: {})", to.as_deref().unwrap_or("no node"))]
    Moved { node: String, to: Option<String> },
    /// Nothing arrived for the source timeout (peer: it is alive but sends nothing).
    #[error("nothing from {node} for {seconds} s")]
    Silent { node: String, seconds: u64 },
}

impl RelayError {
    /// The node at the other end, if one was chosen.
    pub fn node(&self) -> Option<&str> {
        match self {
            RelayError::NoOwner => None,
            RelayError::Unreachable { node, .. }
            | RelayError::BadFrame { node, .. }
            | RelayError::BadMedia { node, .. }
            | RelayError::Protocol { node, .. }
            | RelayError::Ended { node, .. }
            | RelayError::Lost { node, .. }
            | RelayError::Moved { node, .. }
            | RelayError::Silent { node, .. } => Some(node),
        }
    }
}

impl Classified for RelayError {
    fn fault(&self) -> Fault {
        match self {
            RelayError::NoOwner | RelayError::Ended { .. } => Fault::Peer,
            RelayError::BadFrame { .. }
            | RelayError::BadMedia { .. }
            | RelayError::Protocol { .. }
            | RelayError::Silent { .. } => Fault::Peer,
            RelayError::Unreachable { .. } | RelayError::Lost { .. } | RelayError::Moved { .. } => {
                Fault::Transport
            }
        }
    }

    /// Every relay error is retried (with another owner when the view has one): a
    /// relayed stream runs while it has viewers.
    fn retryable(&self) -> bool {
        true
    }
}
