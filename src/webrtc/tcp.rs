//! ICE over TCP (RFC 6544), the fallback for clients whose UDP is blocked: the peer
//! connection's port also listens on TCP, its answer adds a passive TCP candidate, and
//! packets travel framed by a 2-byte length (RFC 4571).
//!
//! One connection is taken, the first the client opens (a WebRTC client opens one per
//! candidate pair it checks, and the node has one candidate): later ones are closed.
//! Outgoing packets wait in a queue of at most [`MAX_QUEUED_BYTES`]; past it they are
//! dropped, as a congested UDP path would drop them, and RTCP makes the sender adapt.

use std::net::SocketAddr;

use bytes::{Buf, BufMut, BytesMut};
use tokio::net::{TcpListener, TcpStream};

/// Most bytes waiting to be written to the client (about a second of 8 Mbit/s).
pub const MAX_QUEUED_BYTES: usize = 1024 * 1024;

/// Longest packet RFC 4571 frames: its length is 16 bits.
const MAX_PACKET_BYTES: usize = u16::MAX as usize;

/// The TCP side of one peer connection.
pub struct TcpLink {
    listener: TcpListener,
    connection: Option<Connection>,
}

struct Connection {
    stream: TcpStream,
    peer: SocketAddr,
    inbound: BytesMut,
    outbound: BytesMut,
}

impl TcpLink {
    pub fn new(listener: TcpListener) -> TcpLink {
        TcpLink {
            listener,
            connection: None,
        }
    }

    /// Queues `packet` for the client at `destination`; dropped when that is not the
    /// connected client, or the queue is full.
    pub fn send(&mut self, packet: &[u8], destination: SocketAddr) {
        let Some(connection) = &mut self.connection else {
            return;
        };
        if connection.peer != destination
            || packet.len() > MAX_PACKET_BYTES
            || connection.outbound.len() + packet.len() + 2 > MAX_QUEUED_BYTES
        {
            return;
        }
        connection.outbound.put_u16(packet.len() as u16);
        connection.outbound.put_slice(packet);
    }

    /// The next whole packet from the client and where it came from: accepts the
    /// connection first, writes queued packets meanwhile. Cancel-safe: what was read or
    /// written stays in the buffers.
    pub async fn receive(&mut self) -> (Vec<u8>, SocketAddr) {
        loop {
            let Some(connection) = &mut self.connection else {
                match self.listener.accept().await {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        self.connection = Some(Connection {
                            stream,
                            peer,
                            inbound: BytesMut::with_capacity(4096),
                            outbound: BytesMut::new(),
                        });
                    }
                    Err(error) => tracing::debug!(%error, "webrtc tcp accept failed"),
                }
                continue;
            };
            if let Some(packet) = connection.take_packet() {
                return (packet, connection.peer);
            }
            let writing = !connection.outbound.is_empty();
            tokio::select! {
                readable = connection.stream.readable() => {
                    if readable.is_err() || !connection.read() {
                        self.connection = None;
                    }
                }
                writable = connection.stream.writable(), if writing => {
                    if writable.is_err() || !connection.write() {
                        self.connection = None;
                    }
                }
                // A second connection is closed at once.
                accepted = self.listener.accept() => drop(accepted),
            }
        }
    }
}

impl Connection {
    /// A whole framed packet from the inbound buffer, if one is there.
    fn take_packet(&mut self) -> Option<Vec<u8>> {
        let length = usize::from(u16::from_be_bytes([
            *self.inbound.first()?,
            *self.inbound.get(1)?,
        ]));
        if self.inbound.len() < 2 + length {
            return None;
        }
        self.inbound.advance(2);
        Some(self.inbound.split_to(length).to_vec())
    }

    /// Reads what the socket has; `false` when the client closed or broke it.
    fn read(&mut self) -> bool {
        // Room for one whole frame at most: the buffer stays bounded.
        let room = (2 + MAX_PACKET_BYTES).saturating_sub(self.inbound.len());
        if room == 0 {
            return false;
        }
        let mut chunk = vec![0u8; room.min(64 * 1024)];
        match self.stream.try_read(&mut chunk) {
            Ok(0) => false,
            Ok(read) => {
                self.inbound.extend_from_slice(&chunk[..read]);
                true
            }
            Err(error) => error.kind() == std::io::ErrorKind::WouldBlock,
        }
    }

    /// Writes what the socket takes; `false` when it broke.
    fn write(&mut self) -> bool {
        match self.stream.try_write(&self.outbound) {
            Ok(written) => {
                self.outbound.advance(written);
                true
            }
            Err(error) => error.kind() == std::io::ErrorKind::WouldBlock,
        }
    }
}
