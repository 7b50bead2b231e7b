//! A WHEP viewer on str0m, for `flotilla bench` (many viewers in one process): it posts
//! its offer, connects (full ICE, the controlling side), and counts the frames it
//! receives and when the first picture came. It depacketizes and decrypts as a browser
//! does, but decodes nothing: its cost stays small next to the node's.

#![allow(clippy::disallowed_methods)] // A client outside the node measures real time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::media::{Direction, MediaKind};
use str0m::net::{Protocol, Receive, TcpType};
use str0m::{Candidate, Event, Input, Output, Rtc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Largest answer read (the node's is ~2 KB).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Longest the offer's exchange may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a viewer failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the node answered {0}: {1}")]
    Status(u16, String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("webrtc: {0}")]
    Rtc(String),
}

/// What a viewer got.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// From the offer's POST to the first whole picture.
    pub first_picture: Option<Duration>,
    pub pictures: u64,
    pub audio_frames: u64,
    /// Media bytes after depacketizing.
    pub bytes: u64,
}

/// How the viewer's media travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    /// ICE over TCP only (an active candidate), as a client behind a UDP-blocking
    /// firewall.
    Tcp,
}

/// Plays `path` (`/NAME/whep`) on the node at `http` until `until`.
pub async fn watch(
    http: SocketAddr,
    path: &str,
    until: Instant,
    transport: Transport,
) -> Result<Watched, ClientError> {
    let started = Instant::now();
    let socket = UdpSocket::bind(SocketAddr::new(http.ip(), 0)).await?;
    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(started);
    let local = match transport {
        Transport::Udp => socket.local_addr()?,
        // RFC 6544: an active candidate's port is 9 (discard).
        Transport::Tcp => SocketAddr::new(http.ip(), 9),
    };
    let candidate = match transport {
        Transport::Udp => Candidate::host(local, "udp"),
        Transport::Tcp => Candidate::builder()
            .tcp()
            .host(local)
            .tcptype(TcpType::Active)
            .build(),
    }
    .map_err(|e| ClientError::Rtc(e.to_string()))?;
    rtc.add_local_candidate(candidate);
    let mut tcp: Option<(TcpStream, SocketAddr, Vec<u8>)> = None;
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Video, Direction::RecvOnly, None, None, None);
    change.add_media(MediaKind::Audio, Direction::RecvOnly, None, None, None);
    let (offer, pending) = change
        .apply()
        .ok_or_else(|| ClientError::Rtc("no offer".into()))?;
    let answer = tokio::time::timeout(
        ANSWER_TIMEOUT,
        post_offer(http, path, &offer.to_sdp_string()),
    )
    .await
    .map_err(|_| ClientError::Timeout(ANSWER_TIMEOUT))??;
    let answer =
        SdpAnswer::from_sdp_string(&answer).map_err(|e| ClientError::Rtc(e.to_string()))?;
    rtc.sdp_api()
        .accept_answer(pending, answer)
        .map_err(|e| ClientError::Rtc(e.to_string()))?;

    let mut watched = Watched::default();
    let mut buffer = vec![0u8; 2048];
    let mut tcp_buffer = vec![0u8; 16 * 1024];
    while Instant::now() < until {
        let wake = loop {
            match rtc
                .poll_output()
                .map_err(|e| ClientError::Rtc(e.to_string()))?
            {
                Output::Timeout(at) => break at,
                Output::Transmit(transmit) if transmit.proto == Protocol::Tcp => {
                    if tcp.is_none() {
                        let stream = TcpStream::connect(transmit.destination).await?;
                        tcp = Some((stream, transmit.destination, Vec::new()));
                    }
                    if let Some((stream, server, _)) = &mut tcp
                        && *server == transmit.destination
                    {
                        let mut framed = (transmit.contents.len() as u16).to_be_bytes().to_vec();
                        framed.extend_from_slice(&transmit.contents);
                        stream.write_all(&framed).await?;
                    }
                }
                Output::Transmit(transmit) => {
                    let _ = socket.try_send_to(&transmit.contents, transmit.destination);
                }
                Output::Event(Event::MediaData(data)) => {
                    watched.bytes += data.data.len() as u64;
                    if data.params.spec().codec.is_video() {
                        watched.pictures += 1;
                        watched
                            .first_picture
                            .get_or_insert_with(|| started.elapsed());
                    } else {
                        watched.audio_frames += 1;
                    }
                }
                Output::Event(_) => {}
            }
        };
        let wait = wake
            .saturating_duration_since(Instant::now())
            .min(until.saturating_duration_since(Instant::now()));
        tokio::select! {
            received = socket.recv_from(&mut buffer) => {
                let (length, source) = received?;
                if let Ok(receive) = Receive::new(Protocol::Udp, source, local, &buffer[..length]) {
                    rtc.handle_input(Input::Receive(Instant::now(), receive))
                        .map_err(|e| ClientError::Rtc(e.to_string()))?;
                }
            }
            read = read_tcp(&mut tcp, &mut tcp_buffer) => {
                let length = read?;
                let Some((_, server, inbound)) = &mut tcp else { continue };
                if length == 0 {
                    return Err(ClientError::Rtc("the node closed the ICE-TCP connection".into()));
                }
                inbound.extend_from_slice(&tcp_buffer[..length]);
                while inbound.len() >= 2 {
                    let size = usize::from(u16::from_be_bytes([inbound[0], inbound[1]]));
                    if inbound.len() < 2 + size {
                        break;
                    }
                    let packet: Vec<u8> = inbound.drain(..2 + size).skip(2).collect();
                    if let Ok(receive) = Receive::new(Protocol::Tcp, *server, local, &packet) {
                        rtc.handle_input(Input::Receive(Instant::now(), receive))
                            .map_err(|e| ClientError::Rtc(e.to_string()))?;
                    }
                }
            }
            () = tokio::time::sleep(wait) => {
                rtc.handle_input(Input::Timeout(Instant::now()))
                    .map_err(|e| ClientError::Rtc(e.to_string()))?;
            }
        }
        if !rtc.is_alive() {
            break;
        }
    }
    Ok(watched)
}

/// Reads from the ICE-TCP connection (never, before it is open).
async fn read_tcp(
    tcp: &mut Option<(TcpStream, SocketAddr, Vec<u8>)>,
    buffer: &mut [u8],
) -> std::io::Result<usize> {
    match tcp {
        Some((stream, _, _)) => stream.read(buffer).await,
        None => std::future::pending().await,
    }
}

/// POSTs the offer; the answer's SDP.
async fn post_offer(http: SocketAddr, path: &str, offer: &str) -> Result<String, ClientError> {
    let mut stream = TcpStream::connect(http).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
        offer.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER_BYTES as u64)
        .read_to_end(&mut response)
        .await?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    if status != 201 {
        return Err(ClientError::Status(
            status,
            body.chars().take(200).collect(),
        ));
    }
    Ok(body.to_string())
}
