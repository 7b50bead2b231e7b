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
use str0m::net::{Protocol, Receive};
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

/// Plays `path` (`/NAME/whep`) on the node at `http` until `until`.
pub async fn watch(http: SocketAddr, path: &str, until: Instant) -> Result<Watched, ClientError> {
    let started = Instant::now();
    let socket = UdpSocket::bind(SocketAddr::new(http.ip(), 0)).await?;
    let local = socket.local_addr()?;
    let mut rtc = Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(started);
    let candidate = Candidate::host(local, "udp").map_err(|e| ClientError::Rtc(e.to_string()))?;
    rtc.add_local_candidate(candidate);
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
    while Instant::now() < until {
        let wake = loop {
            match rtc
                .poll_output()
                .map_err(|e| ClientError::Rtc(e.to_string()))?
            {
                Output::Timeout(at) => break at,
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
