//! One peer connection as a task: its own UDP socket, its str0m `Rtc` (sans-IO: it never
//! reads a clock or a socket), and what it does with media — take a publisher's
//! ([`super::ingest::Ingest`]) or send a stream's ([`super::outlet::Outlet`]).
//!
//! The loop feeds the `Rtc` datagrams, timeouts and frames, and carries out what it asks
//! (datagrams to send, events) until the peer leaves, the resource is deleted, or a
//! deadline passes. Everything the connection holds is freed when the task returns.

use std::net::SocketAddr;
use std::time::Duration;

use flotilla_otp::rt::Runtime;
use str0m::net::{Protocol, Receive};
use str0m::{Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::ingest::Ingest;
use super::outlet::Outlet;
use super::tcp::TcpLink;

/// Longest a client has, after the answer, to finish ICE and DTLS.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Longest wait between two turns of the loop: str0m's own timers are shorter.
const MAX_IDLE: Duration = Duration::from_millis(500);

/// Largest datagram read: WebRTC keeps packets under the path MTU (str0m sends ≤ 1200
/// bytes); a larger one is truncated and then refused by the parser.
const MAX_DATAGRAM_BYTES: usize = 2048;

/// What the connection does with media.
pub enum Role {
    Ingest(Ingest),
    Outlet(Outlet),
}

/// Why a peer connection ended (logged, and told to the publisher's stream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ended {
    #[error("the resource was deleted")]
    Deleted,
    #[error("the client did not connect within {0:?}")]
    NeverConnected(Duration),
    #[error("the client left (ICE disconnected)")]
    Disconnected,
    #[error("the peer connection failed: {0}")]
    Failed(String),
    #[error("{0}")]
    Media(String),
}

/// A peer connection ready to run.
pub struct Peer {
    pub rtc: Rtc,
    pub socket: UdpSocket,
    /// The candidate the client was given: datagrams arrive to it.
    pub local: SocketAddr,
    /// ICE over TCP on the same port, and its candidate (none when the port's TCP side
    /// was taken).
    pub tcp: Option<(TcpLink, SocketAddr)>,
    pub runtime: Runtime,
    /// Set by a DELETE of the resource.
    pub close: watch::Receiver<bool>,
    pub role: Role,
    /// The node's totals (datagrams no part of this connection accepted: not STUN for
    /// it, not from its peer).
    pub counters: std::sync::Arc<super::Counters>,
}

impl Peer {
    /// Runs the connection to its end: why it ended, and its role back.
    pub async fn run(mut self) -> (Ended, Role) {
        let ended = self.turns().await;
        (ended, self.role)
    }

    async fn turns(&mut self) -> Ended {
        let opened = self.runtime.now();
        let mut connected = false;
        let mut buffer = vec![0u8; MAX_DATAGRAM_BYTES];
        loop {
            let deadline = match self.drain(&mut connected) {
                Ok(deadline) => deadline,
                Err(ended) => return ended,
            };
            if !connected && self.runtime.now().duration_since(opened) > CONNECT_TIMEOUT {
                return Ended::NeverConnected(CONNECT_TIMEOUT);
            }
            if !self.rtc.is_alive() {
                return Ended::Disconnected;
            }
            let now = self.runtime.now().into_std();
            let wait = deadline.saturating_duration_since(now).min(MAX_IDLE);
            let sending = connected && matches!(self.role, Role::Outlet(_));
            let step = tokio::select! {
                changed = self.close.changed() => {
                    if changed.is_err() || *self.close.borrow() {
                        self.rtc.disconnect();
                        let _ = self.drain(&mut connected);
                        return Ended::Deleted;
                    }
                    Ok(())
                }
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((length, source)) => {
                        let now = self.runtime.now().into_std();
                        self.receive(&buffer[..length], source, Protocol::Udp, now)
                    }
                    Err(error) => {
                        tracing::debug!(%error, "webrtc socket read failed");
                        Ok(())
                    }
                },
                (packet, source) = receive_tcp(&mut self.tcp) => {
                    let now = self.runtime.now().into_std();
                    self.receive(&packet, source, Protocol::Tcp, now)
                }
                () = tokio::time::sleep(wait) => {
                    let now = self.runtime.now().into_std();
                    self.rtc
                        .handle_input(Input::Timeout(now))
                        .map_err(|error| Ended::Failed(error.to_string()))
                }
                next = next_frame(&mut self.role), if sending => {
                    let now = self.runtime.now().into_std();
                    match (&mut self.role, next) {
                        (Role::Outlet(outlet), Ok(next)) => outlet.send(&mut self.rtc, next, now),
                        (_, Err(ended)) => Err(ended),
                        (Role::Ingest(_), Ok(_)) => Ok(()),
                    }
                }
            };
            if let Err(ended) = step {
                return ended;
            }
        }
    }

    /// One packet from `source`: to the `Rtc` when it is this connection's.
    fn receive(
        &mut self,
        datagram: &[u8],
        source: SocketAddr,
        protocol: Protocol,
        now: std::time::Instant,
    ) -> Result<(), Ended> {
        let destination = match (&self.tcp, protocol) {
            (Some((_, local_tcp)), Protocol::Tcp) => *local_tcp,
            _ => self.local,
        };
        let Ok(receive) = Receive::new(protocol, source, destination, datagram) else {
            self.counters
                .stray_datagrams
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        };
        let input = Input::Receive(now, receive);
        if !self.rtc.accepts(&input) {
            self.counters
                .stray_datagrams
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        }
        self.rtc
            .handle_input(input)
            .map_err(|error| Ended::Failed(error.to_string()))
    }

    /// Carries out everything the `Rtc` has to do now: datagrams sent, events handled.
    /// Returns when it next wants a timeout.
    fn drain(&mut self, connected: &mut bool) -> Result<std::time::Instant, Ended> {
        loop {
            let output = self
                .rtc
                .poll_output()
                .map_err(|error| Ended::Failed(error.to_string()))?;
            match output {
                Output::Timeout(at) => return Ok(at),
                Output::Transmit(transmit) => match (transmit.proto, &mut self.tcp) {
                    (Protocol::Tcp, Some((link, _))) => {
                        link.send(&transmit.contents, transmit.destination);
                    }
                    _ => {
                        // A full socket buffer drops the datagram, as the network would.
                        let _ = self
                            .socket
                            .try_send_to(&transmit.contents, transmit.destination);
                    }
                },
                Output::Event(event) => {
                    let now = self.runtime.now().into_std();
                    match &event {
                        Event::Connected => *connected = true,
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            return Err(Ended::Disconnected);
                        }
                        _ => {}
                    }
                    match &mut self.role {
                        Role::Ingest(ingest) => ingest.on_event(&mut self.rtc, event, now)?,
                        Role::Outlet(outlet) => outlet.on_event(&mut self.rtc, event, now)?,
                    }
                }
            }
        }
    }
}

/// The next packet over ICE-TCP (never, without it).
async fn receive_tcp(tcp: &mut Option<(TcpLink, SocketAddr)>) -> (Vec<u8>, SocketAddr) {
    match tcp {
        Some((link, _)) => link.receive().await,
        None => std::future::pending().await,
    }
}

/// The next frame an outlet sends (never, for an ingest).
async fn next_frame(role: &mut Role) -> Result<super::outlet::Next, Ended> {
    match role {
        Role::Outlet(outlet) => outlet.next_frame().await,
        Role::Ingest(_) => std::future::pending().await,
    }
}
