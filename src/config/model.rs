//! The typed configuration model.
//!
//! One struct per block kind, one field per directive. Old and new spellings land in the same
//! field (`url`/`input`, `live`/`template`, `notify`/`event_sink`, `public`/
//! `public_payload_url`, `peer`/`server` inside `balancer`, `file`/`vod`), and the printer
//! writes the new spelling, so the model is the canonical form of a config. The model is
//! also the JSON of `GET /streamer/api/v3/config`, hence `Serialize` everywhere.
//!
//! `Option` fields are `None` when the directive is absent; defaults are applied by the code
//! that uses a value (see `defaults.rs`), so printing a config never invents directives.

use std::fmt;
use std::net::IpAddr;

use serde::Serialize;

use super::values::{Bitrate, ByteSize, Cidr, Millis, Percent, Seconds, Secret, Timeout};

/// The whole configuration of one node (or of every node, when the file is shared).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Config {
    /// This node's name in the cluster (`hostname NAME;`).
    pub hostname: Option<String>,
    pub http: Vec<HttpListener>,
    pub https: Vec<HttpListener>,
    pub rtmp: Vec<ListenAddr>,
    pub rtmps: Vec<ListenAddr>,
    pub rtsp: Vec<ListenAddr>,
    pub rtsps: Vec<ListenAddr>,
    /// SRT listeners: encoders publish MPEG-TS, the stream id names the stream.
    pub srt: Vec<ListenAddr>,
    /// PEM certificate chain of the TLS listeners (relative: beside the config file).
    pub tls_certificate: Option<String>,
    /// PEM private key of `tls_certificate`.
    pub tls_key: Option<String>,
    /// UDP port of the QUIC mesh; defaults to the first `http` listener's port.
    pub cluster_port: Option<u16>,
    /// The UDP ports WebRTC peer connections take one each (`webrtc_ports FIRST-LAST;`).
    pub webrtc_ports: Option<PortRange>,
    /// The address WebRTC clients are told to send media to (`webrtc_address IP;`), for a
    /// node behind NAT; by default the address the client's route reaches this node at.
    pub webrtc_address: Option<std::net::IpAddr>,
    /// RTMP players of a peer's stream get the RTMP 302 instead of a relay.
    pub rtmp_redirect: Option<bool>,
    /// Viewers of a stream another node has: relayed here or redirected (default).
    pub cluster_play: Option<super::values::ClusterPlay>,
    /// cluster_ingest: a node seeing a minority of the cluster takes nothing over.
    pub cluster_ingest_minority_restraint: Option<bool>,
    pub loglevel: Option<LogLevel>,
    /// `logrequests`: the HTTP access log.
    pub logrequests: Option<super::values::AccessLog>,
    pub total_bandwidth: Option<Bitrate>,
    pub auth_token: Option<String>,
    pub max_sessions: Option<u32>,
    pub auto_token: Option<AutoToken>,
    pub cluster_key: Option<Secret>,
    pub view_auth: Option<Credentials>,
    pub edit_auth: Option<Credentials>,
    pub api_allowed_from: Vec<Cidr>,
    /// Networks besides loopback that may open shell connections.
    pub shell_allowed_from: Vec<Cidr>,
    /// Proxies whose X-Forwarded-For names the client.
    pub trusted_proxies: Vec<Cidr>,
    /// Page origins allowed to read responses: empty for the default (`*`), or `*`,
    /// `off`, or `scheme://host[:port]` origins.
    pub cors_allow_origin: Vec<String>,
    pub pulsedb: Option<String>,
    pub session_log: Option<String>,
    pub url_prefix: Option<String>,
    pub geoip: Option<String>,
    pub nvidia_monitor: Option<bool>,
    pub event_sinks: Vec<EventSink>,
    pub sources: Vec<Source>,
    pub peers: Vec<Peer>,
    pub balancers: Vec<Balancer>,
    pub streams: Vec<Stream>,
    pub templates: Vec<Template>,
    pub vods: Vec<Vod>,
    pub caches: Vec<Cache>,
    pub auth_backends: Vec<AuthBackend>,
    pub dvrs: Vec<Dvr>,
}

/// `80`, `127.0.0.1:80` or `[::1]:80`. No address means every interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ListenAddr {
    pub ip: Option<IpAddr>,
    pub port: u16,
}

impl ListenAddr {
    /// The socket address to bind: all interfaces (IPv4) when no address was given.
    pub fn socket_addr(&self) -> std::net::SocketAddr {
        let ip = self
            .ip
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        std::net::SocketAddr::new(ip, self.port)
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            None => write!(f, "{}", self.port),
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
        }
    }
}

/// An `http`/`https` listener and its block options.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpListener {
    pub listen: ListenAddr,
    /// `api false;` makes the listener serve media only.
    pub api: Option<bool>,
    /// `redirect_https;`: every request is sent to the same URL over https.
    pub redirect_https: Option<bool>,
    pub read_timeout: Option<Seconds>,
    pub write_timeout: Option<Seconds>,
}

impl HttpListener {
    pub fn serves_api(&self) -> bool {
        self.api.unwrap_or(true)
    }
}

/// A host with an optional port, as peers and balancer servers are written.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub struct HostPort {
    pub host: String,
    pub port: Option<u16>,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bracket = self.host.contains(':');
        match (self.port, bracket) {
            (None, _) => write!(f, "{}", self.host),
            (Some(port), false) => write!(f, "{}:{port}", self.host),
            (Some(port), true) => write!(f, "[{}]:{port}", self.host),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
}

impl LogLevel {
    pub const NAMES: [&'static str; 5] = ["debug", "info", "notice", "warning", "error"];
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// What to do with a play request that carries no token (spec §7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoToken {
    /// Generate a token (a UUID) for the session.
    Uuid,
    /// Accept an empty token.
    Blank,
    /// Refuse requests without a token with 403 (`no_auto_token;`, `auto_token false;`).
    Disabled,
}

/// `edit_auth USER PASS;`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

/// `peer HOST[:PORT] { … }`
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Peer {
    pub address: HostPort,
    pub api_url: Option<String>,
    pub public_payload_url: Option<String>,
    pub private_payload_url: Option<String>,
    pub fetch_timeout: Option<Millis>,
    pub stale_timeout: Option<Millis>,
    pub channel_limit: Option<u32>,
    pub cpu_limit: Option<Percent>,
    pub cluster_key: Option<Secret>,
    /// Deprecated here (moved to balancer servers); still parsed.
    pub max_bitrate: Option<Bitrate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BalancerMode {
    Clients,
    Bitrate,
    Usage,
    Streams,
}

impl BalancerMode {
    pub const NAMES: [&'static str; 4] = ["clients", "bitrate", "usage", "streams"];
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// `balancer NAME { mode M; server … }`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Balancer {
    pub name: String,
    pub mode: Option<BalancerMode>,
    pub servers: Vec<BalancerServer>,
}

impl Balancer {
    /// Some server routes by country (a `countries=` list or `countries_default=true`).
    pub fn routes_by_country(&self) -> bool {
        self.servers
            .iter()
            .any(|s| !s.countries.is_empty() || s.countries_default)
    }
}

/// `server HOST [max_bitrate=B] [countries=CC,CC] [countries_default=true];`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BalancerServer {
    pub address: HostPort,
    pub max_bitrate: Option<Bitrate>,
    /// ISO 3166-1 alpha-2 codes, upper case.
    pub countries: Vec<String>,
    pub countries_default: bool,
}

/// `stream NAME { … }` or `ondemand NAME { … }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stream {
    pub name: String,
    /// Declared with `ondemand`: started by the first viewer.
    pub ondemand: bool,
    #[serde(flatten)]
    pub options: StreamOptions,
}

/// `template NAME { prefix P; … }` or the old `live PREFIX { … }`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    pub name: String,
    /// Published names starting with `PREFIX/` use this template; `""` matches any name.
    pub prefixes: Vec<String>,
    #[serde(flatten)]
    pub options: StreamOptions,
}

/// Options shared by streams, templates and sources.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct StreamOptions {
    pub inputs: Vec<Input>,
    #[serde(rename = "static")]
    pub static_: Option<bool>,
    pub disabled: Option<bool>,
    pub clients_timeout: Option<Timeout>,
    /// This stream's viewers on nodes that do not have it: relayed or redirected.
    pub cluster_play: Option<super::values::ClusterPlay>,
    pub retry_limit: Option<u32>,
    pub source_timeout: Option<Timeout>,
    pub segment_duration: Option<Seconds>,
    pub segment_count: Option<u32>,
    /// LL-HLS part duration in milliseconds.
    pub chunk_duration: Option<u32>,
    pub url_prefix: Option<String>,
    pub protocols: Vec<ProtocolRule>,
    /// Concurrent viewer sessions of this stream (of each stream, in a template).
    pub max_sessions: Option<u32>,
    pub prepush: Option<Seconds>,
    pub dvr: Option<RawArgs>,
    pub on_play: Option<String>,
    pub on_publish: Option<String>,
    pub auth: Option<String>,
    pub password: Option<Secret>,
    /// The passphrase SRT publishers of this stream (or template) encrypt with.
    pub srt_passphrase: Option<Secret>,
    pub pushes: Vec<Push>,
    pub transcoder: Option<RawArgs>,
    pub thumbnails: Option<RawArgs>,
    pub title: Option<String>,
    pub comment: Option<String>,
    pub cluster_ingest: Option<ClusterIngest>,
}

/// `input URL [key=value…];` (old spelling `url`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Input {
    pub url: String,
    pub priority: Option<u32>,
    pub source_timeout: Option<Timeout>,
    pub frames_timeout: Option<Seconds>,
    pub timeout: Option<Seconds>,
    pub cluster_key: Option<Secret>,
    pub max_bitrate: Option<Bitrate>,
    pub remote_dvr: Option<RemoteDvr>,
    pub user_agent: Option<String>,
    pub headers: Option<String>,
    pub bind_ip: Option<IpAddr>,
    pub via: Option<String>,
    /// `transport=tcp|udp` of an `rtsp://` input.
    pub transport: Option<RtpTransport>,
    /// `program=N`: one program of a multi-program MPEG-TS (udp, tshttp/http, file, srt).
    pub program: Option<u16>,
    /// `pids=P,P…`: only these elementary streams of the program.
    pub pids: Vec<u16>,
}

/// How an `rtsp://` input receives RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RtpTransport {
    /// Interleaved on the RTSP connection (the default).
    Tcp,
    Udp,
}

impl RtpTransport {
    pub const NAMES: [&'static str; 2] = ["tcp", "udp"];
    pub fn name(self) -> &'static str {
        match self {
            RtpTransport::Tcp => "tcp",
            RtpTransport::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoteDvr {
    Chain,
    Nochain,
    None,
}

impl RemoteDvr {
    pub const NAMES: [&'static str; 3] = ["chain", "nochain", "none"];
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// One entry of `protocols hls -mpegts …;`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProtocolRule {
    pub protocol: String,
    pub allow: bool,
}

/// Protocol names accepted by `protocols` (spec §1.5).
/// `mpegts` is how the playback docs spell `tshttp` (`protocols -mpegts -hls;`).
pub const PROTOCOL_NAMES: [&str; 17] = [
    "hls",
    "dash",
    "player",
    "mss",
    "rtmp",
    "rtsp",
    "m4f",
    "m4s",
    "mseld",
    "tshttp",
    "mpegts",
    "webrtc",
    "srt",
    "shoutcast",
    "mp4",
    "jpeg",
    "api",
];

/// `push URL [key=value…];`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Push {
    pub url: String,
    pub options: Vec<(String, String)>,
}

/// `cluster_ingest [capture_at=HOST];`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ClusterIngest {
    pub capture_at: Option<HostPort>,
}

/// Arguments kept as written, for directives whose options belong to features that are not
/// built yet (`transcoder`, `thumbnails`, `dvr` inside a stream). They still round-trip.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RawArgs {
    pub words: Vec<String>,
    pub options: Vec<(String, String)>,
}

/// `source HOST[:PORT][/PREFIX] { … }`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Source {
    pub address: HostPort,
    pub prefix: Option<String>,
    /// `None`: every stream; `Some(vec![])` (a bare `only;`): none until requested.
    pub only: Option<Vec<String>>,
    pub except: Vec<String>,
    pub cluster_key: Option<Secret>,
    #[serde(flatten)]
    pub options: StreamOptions,
}

/// `vod NAME { … }` (old spelling `file`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Vod {
    pub name: String,
    /// `path`/`storage`/`paths`: directories or remote origins.
    pub paths: Vec<String>,
    pub cache: Option<FileCache>,
    pub download: Option<bool>,
    pub segment_cache: Option<SegmentCache>,
}

/// `cache PATH [SIZE] [misses=N];` inside a `vod`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileCache {
    pub path: String,
    pub storage_limit: Option<ByteSize>,
    pub misses: Option<u32>,
}

/// `segment_cache PATH [SIZE] [AGE] [misses=N];`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentCache {
    pub path: String,
    pub storage_limit: Option<ByteSize>,
    pub expiration: Option<Seconds>,
    pub misses: Option<u32>,
}

/// Global `cache NAME PATH [misses=N] [AGE] [SIZE];`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cache {
    pub name: String,
    pub path: String,
    pub misses: Option<u32>,
    pub expiration: Option<Seconds>,
    pub storage_limit: Option<ByteSize>,
}

/// `event_sink NAME { … }` (old spelling `notify`).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct EventSink {
    pub name: String,
    /// `url` (old `sink`): HTTP(S) endpoint, Lua path, `log://` or `jsonlog://` file.
    pub urls: Vec<String>,
    /// `level` (old `verbose`).
    pub level: Option<EventLevel>,
    pub only: Vec<EventFilter>,
    pub except: Vec<EventFilter>,
    pub throttle_delay: Option<Seconds>,
    pub resend_limit: Option<u32>,
    pub resend_timeout: Option<Seconds>,
    pub max_size: Option<ByteSize>,
    pub max_depth: Option<u32>,
    pub extra: Vec<(String, String)>,
}

/// Event severities, least severe first (`level X;` takes X and everything above).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
}

impl EventLevel {
    pub const NAMES: [&'static str; 7] = [
        "debug", "info", "notice", "warning", "error", "critical", "alert",
    ];
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// `only event=a,b media=x*;`: every field must match one of its values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventFilter {
    pub conditions: Vec<(String, Vec<String>)>,
}

/// `auth_backend NAME { allow ip 10/8; backend URL; allow default; }`
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AuthBackend {
    pub name: String,
    pub rules: Vec<AuthRule>,
    pub backends: Vec<String>,
    /// `allow default;` (true) or `deny default;` (false).
    pub default_allow: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthRule {
    pub allow: bool,
    pub subject: AuthSubject,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthSubject {
    Token,
    Ip,
    Country,
    Ua,
}

impl AuthSubject {
    pub const NAMES: [&'static str; 4] = ["token", "ip", "country", "ua"];
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// `dvr NAME { root PATH; … }`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Dvr {
    pub name: String,
    pub root: Option<String>,
    pub disk_limit: Option<Percent>,
    pub storage_limit: Option<ByteSize>,
    pub expiration: Option<Seconds>,
    pub copies: Option<u32>,
}

/// An inclusive range of ports (`FIRST-LAST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// How many ports the range holds.
    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}
