//! The RTMP handshake over a socket, for either side (rml_rtmp does the bytes).

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::error::HandshakeError;

/// Runs the handshake as `peer`; returns the bytes the other side sent after it (the
/// first RTMP chunks). The caller bounds it with a deadline.
pub async fn run<S>(socket: &mut S, peer: PeerType) -> Result<Vec<u8>, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let is_client = matches!(peer, PeerType::Client);
    let mut handshake = Handshake::new(peer);
    if is_client {
        let c0c1 = handshake
            .generate_outbound_p0_and_p1()
            .map_err(HandshakeError::Protocol)?;
        socket.write_all(&c0c1).await?;
    }
    let mut buffer = [0u8; 4096];
    loop {
        let length = socket.read(&mut buffer).await?;
        if length == 0 {
            return Err(HandshakeError::Closed);
        }
        let result = handshake
            .process_bytes(&buffer[..length])
            .map_err(HandshakeError::Protocol)?;
        match result {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket.write_all(&response_bytes).await?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket.write_all(&response_bytes).await?;
                return Ok(remaining_bytes);
            }
        }
    }
}
