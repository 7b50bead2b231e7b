//! The UDP ports WebRTC peer connections take: one port per peer connection, from the
//! configured range (`webrtc_ports`, default [`DEFAULT_PORTS`]).
//!
//! A port of its own per peer connection keeps each connection's packets apart without
//! demultiplexing (a stray or hostile datagram reaches one connection at most), lets
//! every connection run as its own task on any core, and frees everything with the
//! socket. Ports another process holds are skipped; several nodes on one host share a
//! range that way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::model::PortRange;

/// Ports used when the config names none.
pub const DEFAULT_PORTS: PortRange = PortRange {
    first: 20_000,
    last: 29_999,
};

/// Most ports tried for one peer connection before it is refused (busy host or range).
pub const MAX_BIND_ATTEMPTS: usize = 64;

/// A UDP socket on a free port of `range`, trying ports from `start` (an index into the
/// range, from the runtime's randomness) on; bound to every address of `candidate`'s
/// family, so that a NAT'ed `webrtc_address` works too.
pub fn bind(
    range: PortRange,
    start: usize,
    candidate: IpAddr,
) -> std::io::Result<tokio::net::UdpSocket> {
    let any = unspecified(candidate);
    let mut last_error = None;
    for attempt in 0..range.len().min(MAX_BIND_ATTEMPTS) {
        let port = range.first + ((start + attempt) % range.len()) as u16;
        match std::net::UdpSocket::bind(SocketAddr::new(any, port)) {
            Ok(socket) => {
                socket.set_nonblocking(true)?;
                return tokio::net::UdpSocket::from_std(socket);
            }
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| std::io::Error::other("the WebRTC port range is empty")))
}

/// A TCP listener on `port` (the peer connection's UDP port number), on every address of
/// `candidate`'s family: ICE over TCP for clients without UDP.
pub fn listen_tcp(port: u16, candidate: IpAddr) -> std::io::Result<tokio::net::TcpListener> {
    let any = unspecified(candidate);
    let listener = std::net::TcpListener::bind(SocketAddr::new(any, port))?;
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}

/// The address of this host that `client`'s packets reach it at: the source address the
/// routing table picks towards the client (no packet is sent).
pub fn route_towards(client: IpAddr) -> std::io::Result<IpAddr> {
    let any = unspecified(client);
    let probe = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
    probe.connect(SocketAddr::new(client, 9))?;
    Ok(probe.local_addr()?.ip())
}

/// Every address of `address`'s family (what the sockets bind to).
fn unspecified(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_skipped() {
        let range = PortRange {
            first: 47_310,
            last: 47_312,
        };
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let first = bind(range, 0, loopback).unwrap();
        let second = bind(range, 0, loopback).unwrap();
        assert_ne!(
            first.local_addr().unwrap().port(),
            second.local_addr().unwrap().port()
        );
        let third = bind(range, 0, loopback).unwrap();
        assert!(bind(range, 0, loopback).is_err(), "the range is full");
        drop((first, second, third));
    }

    #[test]
    fn loopback_clients_are_reached_on_loopback() {
        let local = route_towards(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        assert!(local.is_loopback());
    }
}
