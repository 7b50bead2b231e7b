//! The RTMP handshake over a socket, for either side (rml_rtmp does the bytes).

use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Runs the handshake as `peer`; returns the bytes the other side sent after it (the
/// first RTMP chunks). The caller bounds it with a deadline.
pub async fn run(socket: &mut TcpStream, peer: PeerType) -> Result<Vec<u8>, String> {
    let is_client = matches!(peer, PeerType::Client);
    let mut handshake = Handshake::new(peer);
    if is_client {
        let c0c1 = handshake
            .generate_outbound_p0_and_p1()
            .map_err(|e| format!("handshake: {e:?}"))?;
        socket.write_all(&c0c1).await.map_err(|e| e.to_string())?;
    }
    let mut buffer = [0u8; 4096];
    loop {
        let length = socket.read(&mut buffer).await.map_err(|e| e.to_string())?;
        if length == 0 {
            return Err("closed during the handshake".into());
        }
        let result = handshake
            .process_bytes(&buffer[..length])
            .map_err(|e| format!("handshake: {e:?}"))?;
        match result {
            HandshakeProcessResult::InProgress { response_bytes } => {
                socket
                    .write_all(&response_bytes)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                socket
                    .write_all(&response_bytes)
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(remaining_bytes);
            }
        }
    }
}
