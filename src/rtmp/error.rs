//! Why an RTMP connection ended or an RTMP request failed, and who is at fault.
//!
//! On the server side ([`RtmpError`]) there are three parties: the client (an encoder or
//! a player breaking the protocol or the limits: peer), the network between us (transport;
//! the client may reconnect), and this node (a session call that failed, a stream that
//! stopped: local). Our own client ([`ClientError`], for tests and the benchmark) sees the
//! server as the peer. The texts are what the connection logs and the tests read; rml_rtmp's
//! errors keep their `Debug` spelling, as they always have.

use std::net::SocketAddr;

use rml_rtmp::chunk_io::{ChunkDeserializationError, ChunkSerializationError};
use rml_rtmp::messages::MessageSerializationError;
use rml_rtmp::sessions::{ClientSessionError, ServerSessionError};

use super::client::MAX_REDIRECTS;
use super::flv::FlvError;
use super::guard::LimitError;
use super::server::{HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, WRITE_TIMEOUT};
use crate::error::{Classified, Fault};

/// Why the RTMP handshake failed, on either side.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// rml_rtmp refused the other side's handshake bytes (peer).
    #[error("handshake: {0:?}")]
    Protocol(rml_rtmp::handshake::HandshakeError),
    /// The socket failed (transport).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The other side hung up before the handshake ended (peer).
    #[error("closed during the handshake")]
    Closed,
}

impl Classified for HandshakeError {
    fn fault(&self) -> Fault {
        match self {
            HandshakeError::Protocol(_) | HandshakeError::Closed => Fault::Peer,
            HandshakeError::Io(_) => Fault::Transport,
        }
    }
}

/// Why the server closed an RTMP connection.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// The client did not finish the handshake in time (peer).
    #[error("handshake not completed within {HANDSHAKE_TIMEOUT:?}")]
    HandshakeTimeout,
    /// The handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// An rtmps client's TLS handshake failed or took too long (peer).
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsAcceptError),
    /// A trusted proxy's PROXY header was malformed or late (peer: the proxy).
    #[error("PROXY header: {0}")]
    ProxyHeader(#[from] crate::proxy_protocol::ProxyHeaderError),
    /// rml_rtmp could not create the session (local).
    #[error("session: {0:?}")]
    Session(ServerSessionError),
    /// Reading from the client failed (transport).
    #[error("{0}")]
    Read(std::io::Error),
    /// Writing to the client failed (transport).
    #[error("{0}")]
    Write(std::io::Error),
    /// The client stopped reading: a write waited past [`WRITE_TIMEOUT`] (transport).
    #[error("write blocked for {WRITE_TIMEOUT:?}")]
    WriteBlocked,
    /// A player fell too far behind the live edge; it may reconnect (transport).
    #[error("player {remote} fell {missed} frames behind; dropped")]
    Lagged { remote: SocketAddr, missed: u64 },
    /// An idle connection sent nothing for [`IDLE_TIMEOUT`] (peer).
    #[error("nothing received for {IDLE_TIMEOUT:?}")]
    Idle,
    /// The client's chunk stream broke a limit (peer).
    #[error("{0}")]
    Limit(#[from] LimitError),
    /// rml_rtmp panicked on the client's message (peer).
    #[error("malformed RTMP message (the parser refused it)")]
    Malformed,
    /// rml_rtmp refused the client's message (peer).
    #[error("protocol error: {0:?}")]
    Protocol(ServerSessionError),
    /// Accepting a request failed in the session (local).
    #[error("accept: {0:?}")]
    Accept(ServerSessionError),
    /// Refusing a request failed in the session (local).
    #[error("reject: {0:?}")]
    Reject(ServerSessionError),
    /// Preparing media or metadata for a player failed in the session (local).
    #[error("{0:?}")]
    Play(ServerSessionError),
    /// The RTMP 302's message did not serialize (local).
    #[error("redirect: {0:?}")]
    RedirectMessage(MessageSerializationError),
    /// The RTMP 302's chunk did not serialize (local).
    #[error("redirect: {0:?}")]
    RedirectChunk(ChunkSerializationError),
    /// A publisher sent media this node does not take (peer).
    #[error("publisher of {name}: {source}")]
    Publisher { name: String, source: FlvError },
    /// The stream's program is one RTMP cannot carry (local: the stream's codecs, not
    /// the player; not retried).
    #[error("stream {name}: {reason}")]
    NotCarried {
        name: String,
        reason: super::carriage::NotCarried,
    },
    /// The published stream's actor stopped taking frames; its supervisor restarts it,
    /// and the publisher may come back (local, retry).
    #[error("stream {0} stopped taking frames")]
    StreamStopped(String),
}

impl Classified for RtmpError {
    fn fault(&self) -> Fault {
        match self {
            RtmpError::Handshake(error) => error.fault(),
            RtmpError::HandshakeTimeout
            | RtmpError::Tls(_)
            | RtmpError::ProxyHeader(_)
            | RtmpError::Idle
            | RtmpError::Limit(_)
            | RtmpError::Malformed
            | RtmpError::Protocol(_)
            | RtmpError::Publisher { .. } => Fault::Peer,
            RtmpError::Read(_)
            | RtmpError::Write(_)
            | RtmpError::WriteBlocked
            | RtmpError::Lagged { .. } => Fault::Transport,
            RtmpError::Session(_)
            | RtmpError::Accept(_)
            | RtmpError::Reject(_)
            | RtmpError::Play(_)
            | RtmpError::RedirectMessage(_)
            | RtmpError::RedirectChunk(_)
            | RtmpError::StreamStopped(_)
            | RtmpError::NotCarried { .. } => Fault::Local,
        }
    }
    fn retryable(&self) -> bool {
        self.fault() == Fault::Transport || matches!(self, RtmpError::StreamStopped(_))
    }
}

/// Why flotilla's RTMP client failed. The server is the peer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No TCP connection within the step deadline (transport).
    #[error("connect timed out")]
    ConnectTimeout,
    /// The socket failed: refused, reset, unreachable (transport).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No handshake within the step deadline (transport).
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// The handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// rml_rtmp refused a request this client made (local).
    #[error("{0:?}")]
    Request(ClientSessionError),
    /// rml_rtmp refused the server's bytes (peer).
    #[error("{0:?}")]
    Protocol(ClientSessionError),
    /// The server's chunks did not decode while looking for a redirect (peer).
    #[error("{0:?}")]
    Chunks(ChunkDeserializationError),
    /// The server closed the connection (peer).
    #[error("the server closed the connection")]
    Closed,
    /// The server sent this client elsewhere (`play` follows it once).
    #[error("redirected to {0}")]
    Redirected(String),
    /// The server refused the request; the status code or description it gave (peer).
    #[error("rejected: {0}")]
    Rejected(String),
    /// No answer from the server within the step deadline (transport).
    #[error("timed out waiting for the server")]
    Timeout,
    /// Redirected again after [`MAX_REDIRECTS`] redirects (peer).
    #[error("{0} after {MAX_REDIRECTS} redirect(s); not following another")]
    TooManyRedirects(Box<ClientError>),
    /// A redirect to something other than `rtmp://` (peer).
    #[error("redirect `{0}` is not an rtmp:// URL")]
    NotRtmp(String),
    /// A redirect without a host (peer).
    #[error("redirect `{0}` names no host")]
    NoHost(String),
    /// The server's media did not convert to frames (peer).
    #[error("{0}")]
    Media(#[from] FlvError),
    /// No media within the step deadline while playing (transport).
    #[error("no media from the server")]
    NoMedia,
}

impl Classified for ClientError {
    fn fault(&self) -> Fault {
        match self {
            ClientError::Handshake(error) => error.fault(),
            ClientError::ConnectTimeout
            | ClientError::Io(_)
            | ClientError::HandshakeTimeout
            | ClientError::Timeout
            | ClientError::NoMedia => Fault::Transport,
            ClientError::Request(_) => Fault::Local,
            ClientError::Protocol(_)
            | ClientError::Chunks(_)
            | ClientError::Closed
            | ClientError::Redirected(_)
            | ClientError::Rejected(_)
            | ClientError::TooManyRedirects(_)
            | ClientError::NotRtmp(_)
            | ClientError::NoHost(_)
            | ClientError::Media(_) => Fault::Peer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_the_network_or_this_node() {
        let abusive = RtmpError::Limit(LimitError::TooManyChunkStreams);
        assert_eq!((abusive.fault(), abusive.retryable()), (Fault::Peer, false));
        assert_eq!(
            (
                RtmpError::WriteBlocked.fault(),
                RtmpError::WriteBlocked.retryable()
            ),
            (Fault::Transport, true)
        );
        let stopped = RtmpError::StreamStopped("cam".into());
        assert_eq!((stopped.fault(), stopped.retryable()), (Fault::Local, true));
        let closed = RtmpError::Handshake(HandshakeError::Closed);
        assert_eq!(closed.to_string(), "closed during the handshake");
        assert_eq!(closed.fault(), Fault::Peer);
    }

    #[test]
    fn a_second_redirect_keeps_the_first_refusal_in_its_text() {
        let error = ClientError::TooManyRedirects(Box::new(ClientError::Redirected(
            "rtmp://b:1935/live".into(),
        )));
        assert_eq!(
            error.to_string(),
            "redirected to rtmp://b:1935/live after 1 redirect(s); not following another"
        );
        assert_eq!(error.fault(), Fault::Peer);
    }
}
