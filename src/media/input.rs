//! Inputs: where a stream's frames come from.
//!
//! | URL | what |
//! |---|---|
//! | `test://` | the built-in test clip, looped in real time |
//! | `file:///path.ts` | an MPEG-TS file, looped in real time with continuous timestamps |
//! | `tshttp://host[:port]/path` (also `http://`) | MPEG-TS pulled over HTTP |
//! | `udp://[source@]group:port` | MPEG-TS over UDP, unicast or multicast |
//! | `hls://host[:port]/path.m3u8` | a live HLS stream (MPEG-TS segments), see `hls_pull` |
//! | `rtmp://host[:port]/app/key` | an RTMP stream played from another server |
//! | `rtsp://[user:pass@]host[:port]/path` | an IP camera, see `rtsp_pull` |
//!
//! Every input is bounded: connection and first-byte deadlines, datagram and file sizes.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpStream, UdpSocket};

use super::frame::{CLOCK_HZ, Frame};
use super::hls_pull::{HlsPull, Location};
use super::program::Tracks;
use super::rtsp_pull::{RtpTransport, RtspPull};
use super::source::{ClipFrames, TsFrames};
use super::ts::demux::Program;
use crate::error::{Classified, Fault};
use crate::rtmp::client::RtmpClient;
use crate::rtmp::flv::Depacketizer;
use flotilla_otp::rt::{Instant, Runtime};

/// Largest file a `file://` input loops (it is held in memory, shared by every loop).
pub const MAX_FILE_INPUT_BYTES: u64 = 512 * 1024 * 1024;

/// Time to connect to an HTTP source and receive its response head.
pub const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest UDP datagram read (the IPv4 maximum).
pub const MAX_DATAGRAM_BYTES: usize = 65_536;

/// Why an input stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("unsupported input URL `{0}`")]
    Unsupported(String),
    #[error("cannot open {url}: {reason}")]
    Open { url: String, reason: String },
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("{url}: no frames for {seconds} s")]
    Timeout { url: String, seconds: u64 },
}

impl Classified for InputError {
    /// The reasons are kept as text (the stream actor's failure reason is text); the
    /// variant says enough: a URL nobody can open is the config's, the rest happen at the
    /// source or on the way, and the stream's supervisor retries them with backoff.
    fn fault(&self) -> Fault {
        match self {
            InputError::Unsupported(_) => Fault::Config,
            InputError::Open { .. } | InputError::Failed { .. } => Fault::Transport,
            InputError::Timeout { .. } => Fault::Peer,
        }
    }
    fn retryable(&self) -> bool {
        !matches!(self, InputError::Unsupported(_))
    }
}

/// Why an HTTP source did not answer with a body.
#[derive(Debug, thiserror::Error)]
pub enum HttpGetError {
    /// No TCP connection to the source (transport).
    #[error("{0}")]
    Connect(std::io::Error),
    /// The HTTP exchange failed (transport).
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The URL does not make a request (config: the input's URL).
    #[error("{0}")]
    Request(#[from] hyper::http::Error),
    /// The source answered with an error status (peer).
    #[error("HTTP {0}")]
    Status(hyper::StatusCode),
}

impl Classified for HttpGetError {
    fn fault(&self) -> Fault {
        match self {
            HttpGetError::Connect(_) | HttpGetError::Http(_) => Fault::Transport,
            HttpGetError::Request(_) => Fault::Config,
            HttpGetError::Status(_) => Fault::Peer,
        }
    }
}

/// The schemes of the inputs flotilla runs; the config refuses every other.
pub const ACTIVE_SCHEMES: [&str; 10] = [
    "test", "file", "tshttp", "http", "udp", "publish", "hls", "rtmp", "rtsp", "srt",
];

/// `url` as logs and the API show it: a password in it, and an SRT `passphrase=` in its
/// query, replaced by `***`.
pub fn redacted(url: &str) -> String {
    let url = match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    };
    match url.split_once("passphrase=") {
        Some((before, after)) => {
            let rest = after.find('&').map_or("", |end| &after[end..]);
            format!("{before}passphrase=***{rest}")
        }
        None => url,
    }
}

/// `text` with its `%XX` escapes decoded (URL user names and passwords, SRT stream
/// ids); anything not a valid escape is kept as it is.
pub fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(high), Some(low)) if hex(high).is_some() && hex(low).is_some() => {
                out.push((hex(high).unwrap_or(0) * 16 + hex(low).unwrap_or(0)) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A parsed input URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputUrl {
    Test,
    File(String),
    Http {
        authority: String,
        path: String,
    },
    Udp {
        group: SocketAddr,
        source: Option<IpAddr>,
    },
    Publish,
    /// `hls://HOST[:PORT]/PATH`: the playlist at `http://HOST[:PORT]/PATH`.
    Hls(Location),
    /// `rtmp://HOST[:PORT]/APP/KEY`: `address` is `host:port` (port 1935 by default).
    Rtmp {
        address: String,
        app: String,
        key: String,
    },
    /// `rtsp://…`, kept whole (retina reads it).
    Rtsp(String),
    /// `srt://HOST:PORT[?…]`: the node calls an SRT listener.
    Srt(crate::srt::caller::SrtUrl),
}

/// `host[:port]/path` → (authority, path), `None` without a host.
fn authority_and_path(rest: &str) -> Option<(&str, &str)> {
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    (!authority.is_empty()).then_some((authority, path))
}

impl InputUrl {
    pub fn parse(url: &str) -> Result<InputUrl, InputError> {
        let unsupported = || InputError::Unsupported(url.to_string());
        let (scheme, rest) = url.split_once("://").ok_or_else(unsupported)?;
        match scheme {
            "test" => Ok(InputUrl::Test),
            "publish" => Ok(InputUrl::Publish),
            "file" => Ok(InputUrl::File(rest.to_string())),
            "tshttp" | "http" => {
                let (authority, path) = authority_and_path(rest).ok_or_else(unsupported)?;
                Ok(InputUrl::Http {
                    authority: authority.to_string(),
                    path: path.to_string(),
                })
            }
            "hls" => {
                let (authority, path) = authority_and_path(rest).ok_or_else(unsupported)?;
                Ok(InputUrl::Hls(Location {
                    authority: authority.to_string(),
                    path: path.to_string(),
                }))
            }
            "rtsp" => {
                authority_and_path(rest).ok_or_else(unsupported)?;
                Ok(InputUrl::Rtsp(url.to_string()))
            }
            "rtmp" => {
                let (authority, path) = authority_and_path(rest).ok_or_else(unsupported)?;
                let (app, key) = path
                    .trim_start_matches('/')
                    .split_once('/')
                    .ok_or_else(unsupported)?;
                if app.is_empty() || key.is_empty() {
                    return Err(unsupported());
                }
                let address = if authority.contains(':') {
                    authority.to_string()
                } else {
                    format!("{authority}:1935")
                };
                Ok(InputUrl::Rtmp {
                    address,
                    app: app.to_string(),
                    key: key.to_string(),
                })
            }
            "srt" => crate::srt::caller::SrtUrl::parse(url)
                .map(InputUrl::Srt)
                .map_err(|_| unsupported()),
            "udp" => {
                let address = rest.trim_end_matches('/');
                let (source, group) = match address.split_once('@') {
                    Some((source, group)) => {
                        (Some(source.parse().map_err(|_| unsupported())?), group)
                    }
                    None => (None, address),
                };
                let group = group.parse().map_err(|_| unsupported())?;
                Ok(InputUrl::Udp { group, source })
            }
            _ => Err(unsupported()),
        }
    }
}

/// Releases frames no faster than real time (for inputs that are files).
#[derive(Debug)]
pub struct Pacer {
    origin: Option<(Instant, u64)>,
}

impl Pacer {
    async fn wait(&mut self, runtime: &Runtime, dts: u64) {
        let (start, first_dts) = *self.origin.get_or_insert((runtime.now(), dts));
        let due =
            start + Duration::from_micros(dts.saturating_sub(first_dts) * 1_000_000 / CLOCK_HZ);
        tokio::time::sleep_until(due).await;
    }
}

/// An open input.
pub enum Input {
    Clip {
        clip: ClipFrames,
        pacer: Pacer,
    },
    Http {
        url: String,
        body: hyper::body::Incoming,
        frames: TsFrames,
    },
    Udp {
        url: String,
        socket: UdpSocket,
        frames: TsFrames,
        buffer: Vec<u8>,
    },
    /// A live HLS stream followed over HTTP.
    Hls(Box<HlsPull>),
    /// An IP camera's RTSP session.
    Rtsp(Box<RtspPull>),
    /// MPEG-TS from an SRT listener the node called.
    Srt {
        url: String,
        caller: crate::srt::caller::SrtCaller,
        frames: TsFrames,
    },
    /// An RTMP stream played from another server.
    Rtmp {
        url: String,
        client: Box<RtmpClient>,
        depacketizer: Depacketizer,
        timeline: super::timeline::Timeline,
    },
    /// Frames from an RTMP publisher, through the stream's publish point.
    Publish {
        receiver: tokio::sync::mpsc::Receiver<super::directory::Published>,
        timeline: super::timeline::Timeline,
        tracks: Tracks,
        /// No publisher has sent anything yet: the source timeout does not run.
        waiting: bool,
    },
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Input::Clip { .. } => "Input::Clip",
            Input::Http { .. } => "Input::Http",
            Input::Udp { .. } => "Input::Udp",
            Input::Publish { .. } => "Input::Publish",
            Input::Hls(_) => "Input::Hls",
            Input::Rtmp { .. } => "Input::Rtmp",
            Input::Rtsp(_) => "Input::Rtsp",
            Input::Srt { .. } => "Input::Srt",
        })
    }
}

impl Input {
    /// Opens `url` with its configured `options` for stream `stream`; the stream's
    /// timeline continues at `start_dts`.
    pub async fn open(
        runtime: &Runtime,
        url: &str,
        options: &[(String, String)],
        stream: &str,
        start_dts: u64,
    ) -> Result<Input, InputError> {
        let open_error = |reason: String| InputError::Open {
            url: redacted(url),
            reason,
        };
        // `program=N`: one program of a multi-program stream (validated by the config).
        let program = option(options, "program")
            .and_then(|n| n.parse().ok())
            .map_or(Program::First, Program::Number);
        // `pids=P,P…`: only these elementary streams (validated by the config).
        let pids: Vec<u16> = option(options, "pids")
            .map(|list| list.split(',').filter_map(|p| p.parse().ok()).collect())
            .unwrap_or_default();
        match InputUrl::parse(url)? {
            InputUrl::Test => Ok(Input::Clip {
                clip: ClipFrames::new(super::TEST_CLIP_TS)
                    .map_err(|e| open_error(e.to_string()))?,
                pacer: Pacer { origin: None },
            }),
            InputUrl::File(path) => {
                let metadata = tokio::fs::metadata(&path)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                if metadata.len() > MAX_FILE_INPUT_BYTES {
                    return Err(open_error(format!(
                        "{} bytes; the limit is {MAX_FILE_INPUT_BYTES}",
                        metadata.len()
                    )));
                }
                let bytes = tokio::fs::read(&path)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                let clip = ClipFrames::of_program(&bytes, program, pids.clone())
                    .map_err(|e| open_error(e.to_string()))?;
                Ok(Input::Clip {
                    clip,
                    pacer: Pacer { origin: None },
                })
            }
            InputUrl::Http { authority, path } => {
                let body = tokio::time::timeout(
                    HTTP_CONNECT_TIMEOUT,
                    http_get(runtime, &authority, &path, None),
                )
                .await
                .map_err(|_| open_error(format!("no response within {HTTP_CONNECT_TIMEOUT:?}")))?
                .map_err(|e| open_error(e.to_string()))?;
                Ok(Input::Http {
                    url: url.to_string(),
                    body,
                    frames: TsFrames::of_program(start_dts, program).with_pids(pids.clone()),
                })
            }
            InputUrl::Udp { group, source } => {
                let socket = udp_socket(group, source)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                Ok(Input::Udp {
                    url: url.to_string(),
                    socket,
                    frames: TsFrames::of_program(start_dts, program).with_pids(pids.clone()),
                    buffer: vec![0; MAX_DATAGRAM_BYTES],
                })
            }
            InputUrl::Publish => Err(InputError::Unsupported(format!(
                "{url} needs the stream's name: open it with Input::publish"
            ))),
            InputUrl::Hls(playlist) => {
                let pull = HlsPull::open(runtime, url, playlist, None, start_dts)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                Ok(Input::Hls(Box::new(pull)))
            }
            InputUrl::Rtsp(camera) => {
                let transport = match option(options, "transport") {
                    Some("udp") => RtpTransport::Udp,
                    _ => RtpTransport::Tcp,
                };
                let pull = RtspPull::open(&camera, transport, start_dts, stream)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                Ok(Input::Rtsp(Box::new(pull)))
            }
            InputUrl::Srt(srt) => {
                let caller = crate::srt::caller::SrtCaller::open(&srt)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                Ok(Input::Srt {
                    url: redacted(url),
                    caller,
                    frames: TsFrames::of_program(start_dts, program).with_pids(pids.clone()),
                })
            }
            InputUrl::Rtmp { address, app, key } => {
                let mut client = RtmpClient::connect(&address, &app)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                client
                    .play(&key)
                    .await
                    .map_err(|e| open_error(e.to_string()))?;
                Ok(Input::Rtmp {
                    url: url.to_string(),
                    client: Box::new(client),
                    depacketizer: Depacketizer::new(),
                    timeline: super::timeline::Timeline::starting_at(start_dts),
                })
            }
        }
    }

    /// Opens the publish point of stream `name` (a `publish://` input).
    pub fn publish(directory: &super::directory::Directory, name: &str, start_dts: u64) -> Input {
        Input::Publish {
            receiver: directory.open_publish_point(name),
            timeline: super::timeline::Timeline::starting_at(start_dts),
            tracks: Tracks::EMPTY,
            waiting: true,
        }
    }

    /// Whether the input waits for a publisher (the source timeout does not apply yet).
    pub fn is_waiting(&self) -> bool {
        matches!(self, Input::Publish { waiting: true, .. })
    }

    /// Tracks the input declares it carries (empty while it has said nothing).
    pub fn tracks(&self) -> Tracks {
        match self {
            Input::Clip { clip, .. } => clip.tracks(),
            Input::Http { frames, .. } | Input::Udp { frames, .. } | Input::Srt { frames, .. } => {
                frames.tracks()
            }
            Input::Publish { tracks, .. } => *tracks,
            Input::Hls(pull) => pull.tracks(),
            Input::Rtmp { depacketizer, .. } => depacketizer.declared_tracks(),
            Input::Rtsp(pull) => pull.tracks(),
        }
    }

    /// The next frame and whether it follows a discontinuity. Clips pace to real time.
    pub async fn next(&mut self, runtime: &Runtime) -> Result<(Frame, bool), InputError> {
        match self {
            Input::Clip { clip, pacer } => {
                let (frame, discontinuity) = clip.next_frame();
                pacer.wait(runtime, frame.dts).await;
                Ok((frame, discontinuity))
            }
            Input::Hls(pull) => pull
                .next(runtime)
                .await
                .map_err(|error| InputError::Failed {
                    url: pull.url().to_string(),
                    reason: error.to_string(),
                }),
            Input::Rtsp(pull) => pull.next().await.map_err(|error| InputError::Failed {
                url: "rtsp://".into(),
                reason: error.to_string(),
            }),
            Input::Rtmp {
                url,
                client,
                depacketizer,
                timeline,
            } => {
                let mut frame =
                    client
                        .next_frame(depacketizer)
                        .await
                        .map_err(|error| InputError::Failed {
                            url: url.clone(),
                            reason: error.to_string(),
                        })?;
                let source_dts = frame.dts;
                let mapped = timeline.map(source_dts);
                frame.pts = mapped.dts + frame.pts.saturating_sub(source_dts);
                frame.dts = mapped.dts;
                Ok((frame, mapped.discontinuity))
            }
            Input::Publish {
                receiver,
                timeline,
                tracks,
                waiting,
            } => loop {
                match receiver.recv().await {
                    Some(super::directory::Published::Tracks(declared)) => *tracks = declared,
                    Some(super::directory::Published::Frame(mut frame)) => {
                        *waiting = false;
                        let source_dts = frame.dts;
                        let mapped = timeline.map(source_dts);
                        frame.pts = mapped.dts + frame.pts.saturating_sub(source_dts);
                        frame.dts = mapped.dts;
                        return Ok((frame, mapped.discontinuity));
                    }
                    Some(super::directory::Published::End(reason)) => {
                        return Err(InputError::Failed {
                            url: "publish://".into(),
                            reason,
                        });
                    }
                    None => {
                        return Err(InputError::Failed {
                            url: "publish://".into(),
                            reason: "the publish point closed".into(),
                        });
                    }
                }
            },
            Input::Http { url, body, frames } => loop {
                if let Some(ready) = ready_frame(frames, url) {
                    return ready;
                }
                let chunk: Bytes = match body.frame().await {
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        Err(_) => continue,
                    },
                    Some(Err(error)) => {
                        return Err(InputError::Failed {
                            url: url.clone(),
                            reason: error.to_string(),
                        });
                    }
                    None => {
                        return Err(InputError::Failed {
                            url: url.clone(),
                            reason: "the server closed the stream".into(),
                        });
                    }
                };
                frames.push(&chunk);
            },
            Input::Srt {
                url,
                caller,
                frames,
            } => loop {
                if let Some(ready) = ready_frame(frames, url) {
                    return ready;
                }
                let bytes = caller.next().await.map_err(|reason| InputError::Failed {
                    url: url.clone(),
                    reason,
                })?;
                frames.push(&bytes);
            },
            Input::Udp {
                url,
                socket,
                frames,
                buffer,
            } => loop {
                if let Some(ready) = ready_frame(frames, url) {
                    return ready;
                }
                let length = socket
                    .recv(buffer)
                    .await
                    .map_err(|error| InputError::Failed {
                        url: url.clone(),
                        reason: error.to_string(),
                    })?;
                frames.push(&buffer[..length]);
            },
        }
    }
}

/// What an MPEG-TS byte-stream input has before it reads more: a frame, or the reason
/// it cannot go on (the program asked for is not in the stream).
fn ready_frame(frames: &mut TsFrames, url: &str) -> Option<Result<(Frame, bool), InputError>> {
    if let Some(frame) = frames.pop() {
        return Some(Ok(frame));
    }
    let reason = frames.missing_program()?;
    Some(Err(InputError::Failed {
        url: url.to_string(),
        reason,
    }))
}

/// The value of input option `key`, if configured.
fn option<'a>(options: &'a [(String, String)], key: &str) -> Option<&'a str> {
    options
        .iter()
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.as_str())
}

/// GETs `path` at `authority` (HTTP/1.1, port 80 by default), with `user_agent` or
/// flotilla's own; the body once the response head says 2xx.
pub async fn http_get(
    runtime: &Runtime,
    authority: &str,
    path: &str,
    user_agent: Option<&str>,
) -> Result<hyper::body::Incoming, HttpGetError> {
    let address = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let stream = TcpStream::connect(&address)
        .await
        .map_err(HttpGetError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    runtime.spawn("tshttp-connection", async move {
        let _ = connection.await;
    });
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(
            hyper::header::USER_AGENT,
            user_agent.unwrap_or(concat!("flotilla/", env!("CARGO_PKG_VERSION"))),
        )
        .body(http_body_util::Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await?;
    if !response.status().is_success() {
        return Err(HttpGetError::Status(response.status()));
    }
    Ok(response.into_body())
}

/// A UDP socket bound to `address` that other sockets may bind too (SO_REUSEADDR): every
/// socket joined to a multicast group gets each datagram, so several streams can take
/// their own program of one MPTS.
fn shared_udp_socket(address: SocketAddr) -> std::io::Result<UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(address),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    UdpSocket::from_std(socket.into())
}

async fn udp_socket(group: SocketAddr, source: Option<IpAddr>) -> std::io::Result<UdpSocket> {
    match group.ip() {
        IpAddr::V4(ip) if ip.is_multicast() => {
            let socket = shared_udp_socket(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                group.port(),
            ))?;
            let interface = match source {
                Some(IpAddr::V4(interface)) => interface,
                _ => Ipv4Addr::UNSPECIFIED,
            };
            socket.join_multicast_v4(ip, interface)?;
            Ok(socket)
        }
        IpAddr::V6(ip) if ip.is_multicast() => {
            let socket = shared_udp_socket(SocketAddr::new(
                IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                group.port(),
            ))?;
            socket.join_multicast_v6(&ip, 0)?;
            Ok(socket)
        }
        _ => UdpSocket::bind(group).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_input_urls() {
        assert_eq!(InputUrl::parse("test://").unwrap(), InputUrl::Test);
        assert_eq!(
            InputUrl::parse("tshttp://10.0.0.1:9000/ch5").unwrap(),
            InputUrl::Http {
                authority: "10.0.0.1:9000".into(),
                path: "/ch5".into()
            }
        );
        assert_eq!(
            InputUrl::parse("udp://239.0.0.5:1234").unwrap(),
            InputUrl::Udp {
                group: "239.0.0.5:1234".parse().unwrap(),
                source: None
            }
        );
        assert!(matches!(
            InputUrl::parse("udp://10.0.0.2@239.0.0.5:1234").unwrap(),
            InputUrl::Udp {
                source: Some(_),
                ..
            }
        ));
        assert_eq!(
            InputUrl::parse("file:///a.ts").unwrap(),
            InputUrl::File("/a.ts".into())
        );
        assert_eq!(
            InputUrl::parse("hls://origin:8080/live/tv/index.m3u8").unwrap(),
            InputUrl::Hls(Location {
                authority: "origin:8080".into(),
                path: "/live/tv/index.m3u8".into()
            })
        );
        assert_eq!(
            InputUrl::parse("rtmp://origin/live/news/hd").unwrap(),
            InputUrl::Rtmp {
                address: "origin:1935".into(),
                app: "live".into(),
                key: "news/hd".into()
            }
        );
        assert!(InputUrl::parse("rtmp://origin/live").is_err(), "no key");
        assert!(InputUrl::parse("hls:///index.m3u8").is_err(), "no host");
        assert_eq!(
            InputUrl::parse("rtsp://admin:pw@cam/h264").unwrap(),
            InputUrl::Rtsp("rtsp://admin:pw@cam/h264".into())
        );
        assert!(matches!(
            InputUrl::parse("srt://cam:9000?latency=120").unwrap(),
            InputUrl::Srt(srt) if srt.address == "cam:9000" && srt.latency_ms == Some(120)
        ));
        assert!(InputUrl::parse("srt://cam").is_err(), "no port");
        assert!(InputUrl::parse("m4f://cam:9000").is_err());
        assert!(InputUrl::parse("udp://nonsense").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_test_input_runs_in_real_time() {
        let runtime = Runtime::deterministic(1, 0);
        let mut input = Input::open(&runtime, "test://", &[], "test", 0)
            .await
            .unwrap();
        let start = runtime.now();
        let mut last_dts = 0;
        while last_dts < 10 * CLOCK_HZ {
            last_dts = input.next(&runtime).await.unwrap().0.dts;
        }
        let elapsed = runtime.now().duration_since(start);
        assert!(
            elapsed >= Duration::from_millis(9_900) && elapsed <= Duration::from_millis(10_100),
            "{elapsed:?}"
        );
    }

    /// Several streams take their own program of one multicast group: each opens its
    /// own socket on the group's port.
    #[tokio::test]
    async fn two_inputs_join_one_multicast_group() {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let group: SocketAddr = format!("239.255.42.42:{port}").parse().unwrap();
        let first = udp_socket(group, None).await;
        let second = udp_socket(group, None).await;
        assert!(first.is_ok() && second.is_ok(), "{first:?} {second:?}");
    }

    #[tokio::test]
    async fn a_missing_file_is_an_open_error() {
        let runtime = Runtime::production();
        let error = Input::open(&runtime, "file:///nonexistent/clip.ts", &[], "clip", 0)
            .await
            .unwrap_err();
        assert!(matches!(error, InputError::Open { .. }), "{error}");
    }
}
