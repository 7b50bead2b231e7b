//! quinn over turmoil: an [`AsyncUdpSocket`] on a simulated UDP socket, with the faults
//! turmoil does not have (duplicated and replayed datagrams).
//!
//! Turmoil's UDP already loses, delays, partitions and holds datagrams; quinn only needs
//! a socket. A receive task moves datagrams from the turmoil socket into a channel that
//! `poll_recv` drains; sends go straight out (`try_send_to`; a full link is loss, as on a
//! real network).

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use flotilla_otp::rt::Runtime;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

/// Largest datagram read from the simulated network (QUIC's own ceiling is far lower).
const MAX_DATAGRAM_BYTES: usize = 65_535;

/// Datagrams waiting for quinn; beyond this they are dropped (a full socket buffer).
const RECEIVE_QUEUE_DATAGRAMS: usize = 4_096;

/// Recent datagrams kept for replays.
const REPLAY_MEMORY_DATAGRAMS: usize = 64;

/// Datagram faults of one node's socket, per sent datagram, in parts per million.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DatagramFaults {
    /// Sent twice.
    pub duplicate_ppm: u32,
    /// An older datagram to the same destination is sent again too.
    pub replay_ppm: u32,
}

/// What the sending side keeps.
struct Sender {
    faults: DatagramFaults,
    rng: StdRng,
    recent: VecDeque<(Vec<u8>, SocketAddr)>,
}

/// A simulated UDP socket for quinn.
pub struct SimUdp {
    socket: Arc<turmoil::net::UdpSocket>,
    received: Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    local: SocketAddr,
    sender: Mutex<Sender>,
}

impl fmt::Debug for SimUdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimUdp({})", self.local)
    }
}

impl SimUdp {
    /// Binds `port` on the current turmoil host. Faults draw from `seed`; the reader is a
    /// task of the node's `runtime`.
    pub fn bind(
        port: u16,
        faults: DatagramFaults,
        seed: u64,
        runtime: &Runtime,
    ) -> io::Result<Arc<SimUdp>> {
        let bind = (Ipv4Addr::UNSPECIFIED, port);
        // Binding a turmoil socket completes at once; the future only looks async.
        let socket = futures_block_on(turmoil::net::UdpSocket::bind(bind))?;
        let socket = Arc::new(socket);
        let local = socket.local_addr()?;
        let (queue, received) = mpsc::channel(RECEIVE_QUEUE_DATAGRAMS);
        let reader = socket.clone();
        // A task of the node (suspended with it); it lives and dies with the host's tokio
        // runtime.
        drop(runtime.spawn("sim-udp-reader", async move {
            let mut buffer = vec![0u8; MAX_DATAGRAM_BYTES];
            while let Ok((length, from)) = reader.recv_from(&mut buffer).await {
                match queue.try_send((buffer[..length].to_vec(), from)) {
                    Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                    Err(mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
        }));
        Ok(Arc::new(SimUdp {
            socket,
            received: Mutex::new(received),
            local,
            sender: Mutex::new(Sender {
                faults,
                rng: StdRng::seed_from_u64(seed),
                recent: VecDeque::new(),
            }),
        }))
    }

    fn send(&self, bytes: &[u8], to: SocketAddr) {
        // A refused send (no route, full link) is a lost datagram, which QUIC handles.
        let _ = self.socket.try_send_to(bytes, to);
    }
}

/// Polls a future that is known to be ready at once.
fn futures_block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker = std::task::Waker::noop();
    let mut context = Context::from_waker(waker);
    match future.as_mut().poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a turmoil bind was expected to complete at once"),
    }
}

/// quinn may always write: turmoil's links queue or drop, they never block.
#[derive(Debug)]
struct AlwaysWritable;

impl UdpPoller for AlwaysWritable {
    fn poll_writable(self: Pin<&mut Self>, _cx: &mut Context) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl AsyncUdpSocket for SimUdp {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(AlwaysWritable)
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        let to = transmit.destination;
        self.send(transmit.contents, to);
        let mut sender = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let Sender {
            faults,
            rng,
            recent,
        } = &mut *sender;
        if faults.duplicate_ppm > 0 && rng.random_range(0..1_000_000) < faults.duplicate_ppm {
            self.send(transmit.contents, to);
        }
        if faults.replay_ppm > 0 {
            if rng.random_range(0..1_000_000) < faults.replay_ppm
                && let Some((old, old_to)) = recent.iter().rev().find(|(_, t)| *t == to)
            {
                self.send(old, *old_to);
            }
            if recent.len() == REPLAY_MEMORY_DATAGRAMS {
                recent.pop_front();
            }
            recent.push_back((transmit.contents.to_vec(), to));
        }
        Ok(())
    }

    fn poll_recv(
        &self,
        cx: &mut Context,
        buffers: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let mut received = self.received.lock().unwrap_or_else(|p| p.into_inner());
        match received.poll_recv(cx) {
            Poll::Ready(Some((bytes, from))) => {
                let length = bytes.len().min(buffers[0].len());
                buffers[0][..length].copy_from_slice(&bytes[..length]);
                meta[0] = RecvMeta {
                    addr: from,
                    len: length,
                    stride: length,
                    ecn: None,
                    dst_ip: None,
                };
                Poll::Ready(Ok(1))
            }
            Poll::Ready(None) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    fn may_fragment(&self) -> bool {
        false
    }
}
