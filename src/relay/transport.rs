//! Relay frames over one QUIC stream: writing them (the origin) and reading them (the
//! relaying node), with the length checked before a body is allocated.

use bytes::BytesMut;

use super::origin::{RelaySink, SinkError};
use crate::mesh::wire::WireError;
use crate::mesh::wire::relay::{self, RelayFrame};

/// The origin's end of a subscription.
pub struct QuinnSink(pub quinn::SendStream);

impl RelaySink for QuinnSink {
    async fn send(&mut self, frame: RelayFrame) -> Result<usize, SinkError> {
        let (prefix, payload) = relay::encode(&frame).map_err(SinkError::Encode)?;
        let bytes = prefix.len() + payload.len();
        let gone = |error: quinn::WriteError| SinkError::Gone(error.to_string());
        self.0.write_all(&prefix).await.map_err(gone)?;
        if !payload.is_empty() {
            self.0.write_chunk(payload).await.map_err(gone)?;
        }
        Ok(bytes)
    }
}

/// Why a relay frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The bytes broke the protocol (the origin's fault).
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The stream or connection ended (transport, or the origin went away).
    #[error("{0}")]
    Closed(String),
}

/// Reads one relay frame.
pub async fn read_frame(stream: &mut quinn::RecvStream) -> Result<RelayFrame, ReadError> {
    let mut header = [0u8; 4];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|e| ReadError::Closed(e.to_string()))?;
    let length = relay::body_length(header)?;
    let mut body = BytesMut::zeroed(length);
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| ReadError::Closed(e.to_string()))?;
    Ok(relay::decode_body(body.freeze())?)
}
