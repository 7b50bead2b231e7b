//! One state exchange between two nodes, over one QUIC bidirectional stream.
//!
//! The dialing node sends `Hello` then its `State`; the answering node replies with its
//! own `Hello` then `State`. So every exchange informs both sides, whoever dialed. Frames
//! are read with their length checked before the body is allocated, and every read has a
//! deadline.

use std::time::Duration;

use quinn::{RecvStream, SendStream};

use super::wire::{self, Message, WireError};
use crate::error::{Classified, Fault};

/// Time one frame may take to arrive.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an exchange failed, and who is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The peer's frame broke the wire protocol (peer).
    #[error("peer: {0}")]
    Peer(#[from] WireError),
    /// This node's own message broke a wire limit (local: a bug, never the peer's doing).
    #[error("this node's message: {0}")]
    Encode(WireError),
    /// The peer sent messages out of order (peer).
    #[error("peer sent {0} where {1} was expected")]
    Unexpected(&'static str, &'static str),
    /// No stream could be opened on the connection (transport; retry).
    #[error("transport: {0}")]
    Open(quinn::ConnectionError),
    /// A frame could not be written (transport; retry).
    #[error("transport: {0}")]
    Write(quinn::WriteError),
    /// A frame could not be read: the connection failed, or the peer ended the stream
    /// mid-frame (peer).
    #[error("transport: {0}")]
    Read(quinn::ReadExactError),
    /// A frame did not arrive in time (transport; retry).
    #[error("transport: no frame within {FRAME_TIMEOUT:?}")]
    Timeout,
}

impl Classified for ExchangeError {
    fn fault(&self) -> Fault {
        match self {
            ExchangeError::Peer(_)
            | ExchangeError::Unexpected(..)
            | ExchangeError::Read(quinn::ReadExactError::FinishedEarly(_)) => Fault::Peer,
            ExchangeError::Encode(_) => Fault::Local,
            ExchangeError::Open(_)
            | ExchangeError::Write(_)
            | ExchangeError::Read(_)
            | ExchangeError::Timeout => Fault::Transport,
        }
    }
}

/// Writes one message as a frame.
pub async fn send(stream: &mut SendStream, message: &Message) -> Result<(), ExchangeError> {
    let frame = wire::encode(message).map_err(ExchangeError::Encode)?;
    stream.write_all(&frame).await.map_err(ExchangeError::Write)
}

/// Reads one frame and decodes it.
pub async fn receive(stream: &mut RecvStream) -> Result<Message, ExchangeError> {
    tokio::time::timeout(FRAME_TIMEOUT, async {
        let mut header = [0u8; 4];
        stream
            .read_exact(&mut header)
            .await
            .map_err(ExchangeError::Read)?;
        let length = wire::body_length(header)?;
        let mut body = vec![0u8; length];
        stream
            .read_exact(&mut body)
            .await
            .map_err(ExchangeError::Read)?;
        Ok(wire::decode_body(&body)?)
    })
    .await
    .map_err(|_| ExchangeError::Timeout)?
}

/// Reads a `Hello` then a `State`.
pub async fn receive_pair(stream: &mut RecvStream) -> Result<(Message, Message), ExchangeError> {
    let hello = receive(stream).await?;
    if !matches!(hello, Message::Hello { .. }) {
        return Err(ExchangeError::Unexpected("a state", "hello"));
    }
    let state = receive(stream).await?;
    if !matches!(state, Message::State { .. }) {
        return Err(ExchangeError::Unexpected("a hello", "state"));
    }
    Ok((hello, state))
}
