//! Why dialing a node (its mesh or its shell) failed, read from quinn's error types.
//!
//! A node holding another cluster key fails the TLS handshake on a certificate, and
//! either side may notice first: we refuse its certificate (quinn reports our own TLS
//! alert), or it refuses ours (its alert comes back in the connection close). Both carry
//! the TLS alert in the QUIC error code (a crypto error, RFC 9001 §4.8), so the alert
//! tells "another key" from a network failure or a stranger speaking something else:
//! the cluster view marks such a peer unauthorized and the shell says "refused", without
//! reading any message text.

use std::time::Duration;

use quinn::{ConnectionError, TransportErrorCode};
use rustls::AlertDescription;

use crate::error::{Classified, Fault};

/// Why a connection to a node was not established.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The mesh holds no client configuration for the peer's cluster key (local: every
    /// configured key gets one at start).
    #[error("no client configuration for this peer's key")]
    NoClientConfig,
    /// quinn refused to start the attempt: an unusable address, the endpoint stopping
    /// (local).
    #[error("{0}")]
    Start(#[from] quinn::ConnectError),
    /// No handshake within the deadline: the node is down or the network drops packets
    /// (transport; retry).
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    /// The TLS handshake failed on a certificate: the other side holds another cluster
    /// key, or we do (peer; retrying changes nothing until a key is fixed).
    #[error("{0}")]
    Unauthorized(ConnectionError),
    /// The other side broke the handshake another way or closed the connection: it is
    /// not a flotilla node of this version, or it refuses connections (peer).
    #[error("{0}")]
    Refused(ConnectionError),
    /// The connection was lost: timed out or reset (transport; retry).
    #[error("{0}")]
    Lost(ConnectionError),
    /// This node closed its own endpoint or ran out of connection ids (local).
    #[error("{0}")]
    Closed(ConnectionError),
}

impl ConnectError {
    /// Whether the other side holds another cluster key (or we do).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, ConnectError::Unauthorized(_))
    }
}

impl Classified for ConnectError {
    fn fault(&self) -> Fault {
        match self {
            ConnectError::NoClientConfig | ConnectError::Start(_) | ConnectError::Closed(_) => {
                Fault::Local
            }
            ConnectError::Timeout(_) | ConnectError::Lost(_) => Fault::Transport,
            ConnectError::Unauthorized(_) | ConnectError::Refused(_) => Fault::Peer,
        }
    }
}

impl From<ConnectionError> for ConnectError {
    fn from(error: ConnectionError) -> ConnectError {
        let alert = match &error {
            ConnectionError::TransportError(transport) => tls_alert(transport.code),
            ConnectionError::ConnectionClosed(close) => tls_alert(close.error_code),
            _ => None,
        };
        if alert.is_some_and(is_certificate_alert) {
            return ConnectError::Unauthorized(error);
        }
        match error {
            ConnectionError::TimedOut | ConnectionError::Reset => ConnectError::Lost(error),
            ConnectionError::LocallyClosed | ConnectionError::CidsExhausted => {
                ConnectError::Closed(error)
            }
            ConnectionError::VersionMismatch
            | ConnectionError::TransportError(_)
            | ConnectionError::ConnectionClosed(_)
            | ConnectionError::ApplicationClosed(_) => ConnectError::Refused(error),
        }
    }
}

/// The TLS alert a QUIC crypto error code carries (codes 0x100 to 0x1ff).
fn tls_alert(code: TransportErrorCode) -> Option<AlertDescription> {
    let code = u64::from(code);
    (0x100..0x200)
        .contains(&code)
        .then(|| AlertDescription::from((code & 0xff) as u8))
}

/// Alerts that refuse the other side's identity: its certificate, its signature, or the
/// absence of a certificate where one is required.
fn is_certificate_alert(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::HandshakeFailure
            | AlertDescription::NoCertificate
            | AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
            | AlertDescription::DecryptError
            | AlertDescription::CertificateRequired
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto(alert: AlertDescription) -> TransportErrorCode {
        TransportErrorCode::crypto(u8::from(alert))
    }

    #[test]
    fn certificate_alerts_from_either_side_mean_another_key() {
        let ours = ConnectionError::TransportError(crypto(AlertDescription::UnknownCA).into());
        assert!(ConnectError::from(ours).is_unauthorized());
        let theirs = ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: crypto(AlertDescription::BadCertificate),
            frame_type: None,
            reason: bytes::Bytes::new(),
        });
        let error = ConnectError::from(theirs);
        assert!(error.is_unauthorized());
        assert_eq!((error.fault(), error.retryable()), (Fault::Peer, false));
    }

    #[test]
    fn other_failures_are_not_taken_for_another_key() {
        let alpn =
            ConnectionError::TransportError(crypto(AlertDescription::NoApplicationProtocol).into());
        assert!(matches!(ConnectError::from(alpn), ConnectError::Refused(_)));
        let lost = ConnectError::from(ConnectionError::TimedOut);
        assert!(matches!(lost, ConnectError::Lost(_)));
        assert_eq!((lost.fault(), lost.retryable()), (Fault::Transport, true));
        let closed = ConnectError::from(ConnectionError::LocallyClosed);
        assert_eq!(closed.fault(), Fault::Local);
        let violation =
            ConnectionError::TransportError(TransportErrorCode::PROTOCOL_VIOLATION.into());
        assert!(!ConnectError::from(violation).is_unauthorized());
    }
}
