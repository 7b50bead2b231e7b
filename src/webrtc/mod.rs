//! WebRTC: WHIP publishing (RFC 9725) and WHEP playing.
//!
//! A WHIP or WHEP request carries the client's SDP offer; the node answers with its own
//! (ICE-lite: one host candidate, the client's checks find it) and runs the peer
//! connection as a task of its own on a UDP port of its own ([`ports`]). str0m is the
//! WebRTC stack: sans-IO, so the task owns the socket and the clock reads (through the
//! runtime seam) and str0m owns ICE, DTLS, SRTP, RTCP and (de)packetization.
//!
//! - WHIP ([`ingest`]): H.264 and Opus into a stream's publish point, like an RTMP
//!   publisher; the stream plays on every output (Opus where the output carries it:
//!   WebRTC and MPEG-TS; HLS players and RTMP get the video).
//! - WHEP ([`outlet`]): a stream's H.264 and first Opus track to a browser, starting on
//!   the current GOP.
//!
//! Each peer connection is an HTTP resource (`Location` of the 201) that DELETE ends. A
//! connection also ends when the client leaves (ICE consent lost), never connects
//! within [`peer::CONNECT_TIMEOUT`], or its stream stops. The DTLS certificate is made
//! once per node at start (str0m's OpenSSL backend).

pub mod client;
pub mod clock;
pub mod ingest;
pub mod offer;
pub mod outlet;
pub mod peer;
pub mod ports;
pub mod tcp;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flotilla_otp::rt::Runtime;
use futures_util::future::BoxFuture;
use str0m::change::SdpOffer;
use str0m::config::{CryptoProvider, DtlsCert};
use str0m::net::TcpType;
use str0m::{Candidate, IceCreds, Rtc};
use tokio::sync::watch;

use crate::config::model::PortRange;
use peer::{Ended, Peer, Role};

/// Most peer connections a node runs at once (WHIP and WHEP together); the port range
/// bounds them too.
pub const MAX_PEER_CONNECTIONS: usize = 10_000;

/// Video packets a peer connection keeps: str0m queues a written picture's packets in the
/// same buffer that serves resends (NACK), so it must hold the largest keyframe whole —
/// 1,000 packets, 1.2 MB (a 1080p keyframe at high quality is 300–800 KB) — and it is
/// then ~5 s of a 2 Mbit/s stream for resends. It is most of a viewer's memory.
pub const RESEND_HISTORY_PACKETS: usize = 1_000;

/// Which side a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A publisher (`/NAME/whip`).
    Whip,
    /// A viewer (`/NAME/whep`).
    Whep,
}

impl Kind {
    pub fn path_word(self) -> &'static str {
        match self {
            Kind::Whip => "whip",
            Kind::Whep => "whep",
        }
    }
}

/// Why a WHIP/WHEP request got no peer connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebRtcError {
    /// The client's offer (client's fault; the same offer fails again).
    #[error(transparent)]
    Offer(#[from] offer::OfferError),
    /// The offer parsed but cannot be answered (client's fault).
    #[error("the offer cannot be answered: {0}")]
    Negotiation(String),
    /// No free UDP port in `webrtc_ports` (node's side; retry later).
    #[error("no free WebRTC port in {0}: {1}")]
    NoPort(PortRange, String),
    /// [`MAX_PEER_CONNECTIONS`] run already (node's side; retry later).
    #[error("this node runs {0} WebRTC peer connections, its most")]
    Full(usize),
    /// The node has no address to give the client (node's side).
    #[error("no local address reaches the client: {0}")]
    NoAddress(String),
}

impl WebRtcError {
    /// Whether the client is at fault (else the node; retrying may work).
    pub fn client_fault(&self) -> bool {
        matches!(self, WebRtcError::Offer(_) | WebRtcError::Negotiation(_))
    }
}

/// The node's answer to an offer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The resource's id (the last segment of its `Location`).
    pub id: String,
    pub sdp: String,
}

/// What `webrtc_ports` and `webrtc_address` say.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub ports: PortRange,
    pub address: Option<IpAddr>,
}

/// The node's WebRTC side: its certificate and its running peer connections.
#[derive(Clone)]
pub struct WebRtc {
    inner: Arc<Inner>,
}

/// What the node's peer connections add up to, for the metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Offers that got no peer connection for the node's sake (no port, too many).
    pub refused: AtomicU64,
    /// Datagrams that reached a peer connection's port and were not its peer's.
    pub stray_datagrams: AtomicU64,
}

struct Inner {
    settings: Settings,
    counters: Arc<Counters>,
    crypto: Arc<CryptoProvider>,
    certificate: DtlsCert,
    runtime: Runtime,
    resources: Mutex<HashMap<String, Resource>>,
}

struct Resource {
    stream: String,
    kind: Kind,
    close: watch::Sender<bool>,
}

/// A client's offer and what its peer connection is for.
pub struct Offered {
    pub stream: String,
    pub kind: Kind,
    pub client: IpAddr,
    pub offer: SdpOffer,
    pub role: Role,
    pub on_end: OnEnd,
}

/// What runs when a peer connection ends: given why, and its role back.
pub type OnEnd = Box<dyn FnOnce(Ended, Role) -> BoxFuture<'static, ()> + Send>;

impl WebRtc {
    /// The node's WebRTC side with a fresh DTLS certificate.
    pub fn new(settings: Settings, runtime: Runtime) -> Result<WebRtc, String> {
        let crypto = Arc::new(str0m::crypto::from_feature_flags());
        let certificate = crypto
            .dtls_provider
            .generate_certificate()
            .ok_or("the DTLS certificate could not be made")?;
        Ok(WebRtc {
            inner: Arc::new(Inner {
                settings,
                counters: Arc::default(),
                crypto,
                certificate,
                runtime,
                resources: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// Peer connections running, of `kind`.
    pub fn running(&self, kind: Kind) -> usize {
        self.resources()
            .values()
            .filter(|resource| resource.kind == kind)
            .count()
    }

    /// The node's totals.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    fn resources(&self) -> std::sync::MutexGuard<'_, HashMap<String, Resource>> {
        self.inner
            .resources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Answers the client's offer and runs the peer connection with its role, calling
    /// `on_end` when it ends.
    pub fn open(&self, offered: Offered) -> Result<Answer, WebRtcError> {
        self.answer(offered).inspect_err(|error| {
            if !error.client_fault() {
                self.inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            }
        })
    }

    fn answer(&self, offered: Offered) -> Result<Answer, WebRtcError> {
        let Offered {
            stream,
            kind,
            client,
            offer,
            role,
            on_end,
        } = offered;
        let running = self.resources().len();
        if running >= MAX_PEER_CONNECTIONS {
            return Err(WebRtcError::Full(running));
        }
        let settings = self.inner.settings;
        let address = match settings.address {
            Some(address) => address,
            None => ports::route_towards(client)
                .map_err(|error| WebRtcError::NoAddress(error.to_string()))?,
        };
        let runtime = &self.inner.runtime;
        let start = runtime.random_index(settings.ports.len());
        let socket = ports::bind(settings.ports, start, address)
            .map_err(|error| WebRtcError::NoPort(settings.ports, error.to_string()))?;
        let port = socket
            .local_addr()
            .map_err(|error| WebRtcError::NoPort(settings.ports, error.to_string()))?
            .port();
        let local = SocketAddr::new(address, port);
        let credentials = IceCreds {
            ufrag: hex(&runtime.random_bytes(8)),
            pass: hex(&runtime.random_bytes(16)),
        };
        let mut rtc = Rtc::builder()
            .set_ice_lite(true)
            .set_local_ice_credentials(credentials)
            .set_crypto_provider(self.inner.crypto.clone())
            .set_dtls_cert(self.inner.certificate.clone())
            .clear_codecs()
            .enable_h264(true)
            .enable_opus(true, false)
            .set_send_buffer_video(RESEND_HISTORY_PACKETS)
            .build(runtime.now().into_std());
        let candidate = Candidate::host(local, "udp")
            .map_err(|error| WebRtcError::NoAddress(error.to_string()))?;
        rtc.add_local_candidate(candidate);
        // ICE over TCP on the same port number, when its TCP side is free.
        let tcp = match ports::listen_tcp(port, address) {
            Ok(listener) => {
                let candidate = Candidate::builder()
                    .tcp()
                    .host(local)
                    .tcptype(TcpType::Passive)
                    .build()
                    .map_err(|error| WebRtcError::NoAddress(error.to_string()))?;
                rtc.add_local_candidate(candidate);
                Some((tcp::TcpLink::new(listener), local))
            }
            Err(error) => {
                tracing::debug!(port, %error, "no ICE-TCP candidate: the port's TCP side is taken");
                None
            }
        };
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|error| WebRtcError::Negotiation(error.to_string()))?;
        let id = hex(&runtime.random_bytes(12));
        let (close, closed) = watch::channel(false);
        self.resources().insert(
            id.clone(),
            Resource {
                stream: stream.clone(),
                kind,
                close,
            },
        );
        let peer = Peer {
            rtc,
            socket,
            local,
            tcp,
            runtime: runtime.clone(),
            close: closed,
            role,
            counters: self.inner.counters.clone(),
        };
        let this = self.clone();
        let resource = id.clone();
        runtime.spawn("webrtc-peer", async move {
            let (ended, role) = peer.run().await;
            this.resources().remove(&resource);
            tracing::info!(stream = %stream, kind = kind.path_word(), resource = %resource, reason = %ended, "webrtc peer connection ended");
            on_end(ended, role).await;
        });
        Ok(Answer {
            id,
            sdp: answer.to_sdp_string(),
        })
    }

    /// Ends resource `id` of `stream`; `false` when there is none (already ended, or
    /// never there).
    pub fn delete(&self, stream: &str, kind: Kind, id: &str) -> bool {
        let mut resources = self.resources();
        let matches = resources
            .get(id)
            .is_some_and(|resource| resource.stream == stream && resource.kind == kind);
        if !matches {
            return false;
        }
        if let Some(resource) = resources.remove(id) {
            let _ = resource.close.send(true);
        }
        true
    }
}

/// Lowercase hex of `bytes` (resource ids and ICE credentials: from the runtime's
/// randomness, ICE's character set).
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}
