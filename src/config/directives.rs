//! The registry of every directive: where it may appear, its old spellings, whether it is
//! active yet, an example, and one line of documentation.
//!
//! This table is the single source of truth for three things that must never drift apart:
//! what the schema accepts (an unknown name is refused with the nearest known name from
//! this table), which directives draw a "parsed but not active yet" warning at start-up,
//! and the directive reference in `docs/configuration.md`, which a test regenerates from it.
//! A second test parses every example, so each row is known to be accepted.

use serde::Serialize;

/// Where a directive may appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    /// The top level of the file.
    Global,
    /// Inside `http PORT { … }` (and `https`).
    Http,
    /// Inside `stream` and `ondemand`.
    Stream,
    /// Inside `template` (old `live`).
    Template,
    /// Inside `source`.
    Source,
    Peer,
    Balancer,
    Vod,
    EventSink,
    AuthBackend,
    Dvr,
}

impl Context {
    pub const ALL: [Context; 11] = [
        Context::Global,
        Context::Http,
        Context::Stream,
        Context::Template,
        Context::Source,
        Context::Peer,
        Context::Balancer,
        Context::Vod,
        Context::EventSink,
        Context::AuthBackend,
        Context::Dvr,
    ];

    /// How the context is named in messages and docs.
    pub fn title(self) -> &'static str {
        match self {
            Context::Global => "top level",
            Context::Http => "http/https block",
            Context::Stream => "stream/ondemand block",
            Context::Template => "template/live block",
            Context::Source => "source block",
            Context::Peer => "peer block",
            Context::Balancer => "balancer block",
            Context::Vod => "vod/file block",
            Context::EventSink => "event_sink/notify block",
            Context::AuthBackend => "auth_backend block",
            Context::Dvr => "dvr block",
        }
    }
}

/// Whether the node acts on a directive yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The node honours it.
    Supported,
    /// Parsed, validated and kept in the model, but the feature is not built yet: using it
    /// draws a start-up warning that names it.
    NotActive,
}

#[derive(Debug, Clone, Copy)]
pub struct DirectiveInfo {
    pub name: &'static str,
    /// Older spellings accepted as the same directive.
    pub aliases: &'static [&'static str],
    pub contexts: &'static [Context],
    pub status: Status,
    /// A statement accepted in every listed context.
    pub example: &'static str,
    pub summary: &'static str,
}

use Context::{
    AuthBackend as Auth, Balancer as Bal, Dvr as DvrC, EventSink as Sink, Global as G, Http as H,
    Peer as P, Source as Src, Stream as S, Template as T, Vod as V,
};
use Status::{NotActive as Later, Supported as Now};

const STREAMISH: &[Context] = &[S, T, Src];
const STREAM_TEMPLATE: &[Context] = &[S, T];

macro_rules! d {
    ($name:literal, [$($alias:literal),*], $contexts:expr, $status:expr, $example:literal, $summary:literal) => {
        DirectiveInfo {
            name: $name,
            aliases: &[$($alias),*],
            contexts: $contexts,
            status: $status,
            example: $example,
            summary: $summary,
        }
    };
}

/// Every directive, grouped by context, in the order the docs list them.
pub const DIRECTIVES: &[DirectiveInfo] = &[
    // Global: identity and listeners.
    d!(
        "hostname",
        [],
        &[G],
        Now,
        "hostname node-a;",
        "This node's name in the cluster (overridden by --hostname or FLOTILLA_HOSTNAME; default: the machine's host name). A `peer` naming this node is skipped, so one file can serve every node."
    ),
    d!(
        "http",
        [],
        &[G],
        Now,
        "http 127.0.0.1:8080;",
        "HTTP listener: `PORT`, `IP:PORT` or `[IPv6]:PORT`; repeatable; a block may hold `api false;`."
    ),
    d!(
        "https",
        [],
        &[G],
        Now,
        "https 443;",
        "HTTPS listener (HTTP/2 and HTTP/1.1 over TLS, ALPN) with the `tls_certificate` identity; same block options as `http`."
    ),
    d!(
        "tls_certificate",
        [],
        &[G],
        Now,
        "tls_certificate /etc/flotilla/flotilla.crt;",
        "flotilla: PEM certificate chain (leaf first) of the https and rtmps listeners; relative paths are beside the config file (default `flotilla.crt`). Re-read when it changes and on SIGHUP."
    ),
    d!(
        "tls_key",
        [],
        &[G],
        Now,
        "tls_key /etc/flotilla/flotilla.key;",
        "flotilla: PEM private key of `tls_certificate` (PKCS#8, RSA or EC; default `flotilla.key` beside the config file)."
    ),
    d!(
        "rtmp",
        [],
        &[G],
        Now,
        "rtmp 1935;",
        "RTMP listener: publish (`rtmp://HOST/APP/KEY` → stream `APP/KEY`, app `static` dropped) and play (`rtmp://HOST/static/NAME`)."
    ),
    d!(
        "rtmps",
        [],
        &[G],
        Now,
        "rtmps 1443;",
        "RTMPS listener: RTMP inside TLS with the `tls_certificate` identity (publish and play)."
    ),
    d!(
        "srt",
        [],
        &[G],
        Now,
        "srt 9998;",
        "SRT listener (UDP): encoders publish MPEG-TS with the stream id naming the stream (`#!::r=NAME,m=publish` or `NAME`), into a stream with `input publish://` or under a template's prefix. Needs libsrt (Debian: libsrt1.5-openssl)."
    ),
    d!("rtsp", [], &[G], Later, "rtsp 554;", "RTSP listener."),
    d!("rtsps", [], &[G], Later, "rtsps 1554;", "RTSPS listener."),
    d!(
        "cluster_port",
        [],
        &[G],
        Now,
        "cluster_port 8443;",
        "UDP port of the QUIC cluster mesh (default: the first `http` port)."
    ),
    d!(
        "webrtc_ports",
        [],
        &[G],
        Now,
        "webrtc_ports 20000-20999;",
        "flotilla: UDP ports WebRTC peer connections (WHIP publishers, WHEP viewers) take, one each (default 20000-29999)."
    ),
    d!(
        "webrtc_address",
        [],
        &[G],
        Now,
        "webrtc_address 203.0.113.7;",
        "flotilla: the address WebRTC clients send media to, for a node behind NAT (default: the address the client's route reaches this node at)."
    ),
    d!(
        "cluster_ingest_minority_restraint",
        [],
        &[G],
        Now,
        "cluster_ingest_minority_restraint true;",
        "flotilla: a node that sees fewer than half of the cluster keeps its cluster_ingest streams but takes over nobody else's (default false: survivors take everything over, as Flussonic does)."
    ),
    d!(
        "loglevel",
        [],
        &[G],
        Now,
        "loglevel debug;",
        "Log verbosity: debug, info, notice, warning, error (RUST_LOG overrides it)."
    ),
    d!(
        "logrequests",
        [],
        &[G],
        Now,
        "logrequests /var/log/flotilla/access.log;",
        "Write an access log of HTTP requests: one JSON line per request (time, client, method, path, status, bytes, duration, user agent, session). `true` writes /var/log/flotilla/access.log, a path writes there (relative: beside the config file); rotated at 100 MiB, 5 files kept."
    ),
    d!(
        "total_bandwidth",
        [],
        &[G],
        Now,
        "total_bandwidth 10G;",
        "Network capacity of this server; basis of `bandwidth_usage` and of the balancer's `usage` mode."
    ),
    // Global: access control.
    d!(
        "cluster_key",
        [],
        &[G, P, Src],
        Now,
        "cluster_key s3cr3t;",
        "Shared secret that authenticates the nodes of a cluster to each other; never sent on the wire."
    ),
    d!(
        "edit_auth",
        [],
        &[G],
        Now,
        "edit_auth admin adminpass;",
        "Administrator credentials for the HTTP API (HTTP Basic)."
    ),
    d!(
        "view_auth",
        [],
        &[G],
        Now,
        "view_auth viewer viewerpass;",
        "Read-only credentials for the HTTP API (HTTP Basic)."
    ),
    d!(
        "api_allowed_from",
        [],
        &[G],
        Now,
        "api_allowed_from 10/8 192.168/16 127.0.0.1;",
        "Networks allowed to use the HTTP API; short CIDRs are accepted."
    ),
    d!(
        "auth_token",
        [],
        &[G],
        Now,
        "auth_token token;",
        "Name of the query-string parameter that carries play tokens (default `token`)."
    ),
    d!(
        "auto_token",
        [],
        &[G],
        Now,
        "auto_token blank;",
        "Requests without a token: `uuid` generates one, `blank` accepts an empty one, `false` refuses them."
    ),
    d!(
        "no_auto_token",
        [],
        &[G],
        Now,
        "no_auto_token;",
        "Refuse play requests that carry no token (same as `auto_token false`)."
    ),
    d!(
        "max_sessions",
        [],
        &[G, S, T],
        Now,
        "max_sessions 1000;",
        "Cap on concurrent viewer sessions: of the node at the top level, of the stream (or of each stream of a template) inside a block. Viewers beyond it get 403 (RTMP: NetStream.Play.Failed); sessions already open stay."
    ),
    d!(
        "auth_backend",
        [],
        &[G],
        Now,
        "auth_backend main { allow ip 10/8; deny country CN; backend http://auth.local/check; allow default; }",
        "Named authorization policy (`auth://NAME`): allow/deny rules by token, ip, country or ua (in that order, allow before deny), then its HTTP backends in parallel (any allow wins), then `allow default;`/`deny default;` (deny when absent) when none answered."
    ),
    // Global: integration.
    d!(
        "event_sink",
        ["notify"],
        &[G],
        Now,
        "event_sink hooks { url http://hooks.local/events; level info; only event=stream_opened,stream_closed; }",
        "Where events are delivered: `url http(s)://…` (batched JSON POSTs, retried with backoff), `log://PATH` or `jsonlog://PATH` files; `level`, `only`, `except`, `throttle_delay`, `resend_limit`, `resend_timeout` (docs/events.md). Lua scripts are not run."
    ),
    d!(
        "pulsedb",
        [],
        &[G],
        Later,
        "pulsedb /var/lib/flotilla/pulsedb;",
        "Directory of the statistics database."
    ),
    d!(
        "session_log",
        [],
        &[G],
        Now,
        "session_log /var/log/flotilla;",
        "Directory of the session log: `sessions.log` there gets one JSON line per ended viewer session (id, stream, protocol, client, user agent, token, opened/closed, duration, bytes); rotated at 100 MiB, 5 files kept."
    ),
    d!(
        "url_prefix",
        [],
        &[G, S, T, Src],
        Later,
        "url_prefix http://cdn.example.com;",
        "Prefix of segment URIs inside segment playlists."
    ),
    d!(
        "geoip",
        [],
        &[G],
        Now,
        "geoip /usr/share/GeoIP/GeoLite2-Country.mmdb;",
        "MaxMind (GeoIP2/GeoLite2 Country or City) or ip-location-db database used for balancer country routing; read once at start, a missing or broken file stops the start. No database is bundled: without one, country lists are ignored with a start-up warning."
    ),
    d!(
        "shell_allowed_from",
        [],
        &[G],
        Now,
        "shell_allowed_from 10.0.0.0/8;",
        "flotilla: networks besides loopback that may open `flotilla shell` connections (they also need the cluster key). Default: loopback only."
    ),
    d!(
        "rtmp_redirect",
        [],
        &[G],
        Now,
        "rtmp_redirect true;",
        "flotilla: an RTMP player asking for a stream that only a peer has gets the de-facto RTMP 302 (onStatus NetConnection.Connect.Rejected with ex.code 302, ex.redirect = the peer's tcUrl, ex.redirect2 = the full URL) instead of a relay through this node. Off by default: ffmpeg's own RTMP client (checked with 5.1) does not follow it and fails, while a relay plays everywhere."
    ),
    d!(
        "cluster_play",
        [],
        &[G, S],
        Now,
        "cluster_play relay;",
        "flotilla: what a node does with a viewer (HLS, HTTP-MPEG-TS, RTMP) of a stream another node has: `relay` serves it here, relaying the stream from its owner over the mesh (one upstream per stream per node, the same playlists on every node: what a load balancer in front of the nodes needs); `redirect` (the default) sends the viewer to the owner. Globally, or per stream."
    ),
    d!(
        "cors_allow_origin",
        [],
        &[G],
        Now,
        "cors_allow_origin https://player.example.com https://www.example.com;",
        "flotilla: which page origins may read this node's responses (Access-Control-Allow-Origin on every response, redirects and refusals included, and preflight OPTIONS answered). `*` (the default, as Flussonic) allows every origin; listed origins are echoed back with credentials allowed; `off` sends no CORS headers."
    ),
    d!(
        "trusted_proxies",
        [],
        &[G],
        Now,
        "trusted_proxies 127.0.0.1 10/8;",
        "flotilla: proxies whose X-Forwarded-For/-Proto are believed, and whose TCP connections (http, https, rtmp, rtmps) may open with a PROXY protocol v1/v2 header (HAProxy `send-proxy`). The client is the rightmost address not in these networks; from anyone else the headers are ignored and a PROXY header is refused."
    ),
    d!(
        "nvidia_monitor",
        [],
        &[G],
        Later,
        "nvidia_monitor true;",
        "Report GPU statistics."
    ),
    // Global: cluster and media objects.
    d!(
        "peer",
        [],
        &[G],
        Now,
        "peer node-b.lan:8080 { fetch_timeout 1000; stale_timeout 5000; }",
        "A cluster peer (`HOST[:PORT]`); viewers are redirected to the peer that has their stream."
    ),
    d!(
        "source",
        [],
        &[G],
        Now,
        "source origin.lan { only live/*; }",
        "Restream the streams of another cluster (`HOST[:PORT][/PREFIX]`: any of its nodes), on demand, relayed over the mesh with that cluster's key. Several `source` lines give origin HA: a stream comes from the first source that has it."
    ),
    d!(
        "balancer",
        [],
        &[G],
        Now,
        "balancer global { mode clients; server 192.168.1.10; }",
        "HTTP redirect balancer: `/NAME/STREAM/…` goes to the least loaded server."
    ),
    d!(
        "stream",
        [],
        &[G],
        Now,
        "stream cam01 { input tshttp://10.0.0.11/cam01; }",
        "A static stream: always running. One-line form `stream NAME URL;`."
    ),
    d!(
        "ondemand",
        [],
        &[G],
        Now,
        "ondemand ch5 { input tshttp://10.0.4.5:9000/ch5; }",
        "A stream started by its first viewer. One-line form `ondemand NAME URL;`."
    ),
    d!(
        "template",
        ["live"],
        &[G],
        Now,
        "template published { prefix live; input publish://; }",
        "Options for published streams whose names start with a prefix (old form `live PREFIX { … }`)."
    ),
    d!(
        "vod",
        ["file"],
        &[G],
        Later,
        "vod movies { path /storage/movies; }",
        "A video-on-demand location (old spelling `file`)."
    ),
    d!(
        "cache",
        [],
        &[G, V],
        Later,
        "cache globalcache /var/cache/flotilla misses=4 2d 40G;",
        "Top level: a named cache (path, misses, age, size). In a vod: `cache PATH [SIZE] [misses=N]`."
    ),
    d!(
        "dvr",
        [],
        &[G, S, T, Src],
        Later,
        "dvr central { root /storage; }",
        "Top level: a named DVR storage. In a stream: `dvr PATH|NAME [options]`, kept as written."
    ),
    // http/https block.
    d!(
        "api",
        [],
        &[H],
        Now,
        "api false;",
        "`api false` serves media only on this listener (no API)."
    ),
    d!(
        "redirect_https",
        [],
        &[H],
        Now,
        "redirect_https;",
        "flotilla: on an `http` listener, answer every request with a 301 to the same URL on the first `https` listener."
    ),
    d!(
        "read_timeout",
        [],
        &[H],
        Later,
        "read_timeout 30;",
        "Per-read timeout of the listener."
    ),
    d!(
        "write_timeout",
        [],
        &[H],
        Later,
        "write_timeout 30;",
        "Per-write timeout of the listener."
    ),
    // Stream-level options.
    d!(
        "input",
        ["url"],
        STREAM_TEMPLATE,
        Now,
        "input tshttp://10.0.0.11/cam01 priority=1 source_timeout=5;",
        "A source URL; repeat for backups (tried by priority, then in order): `test://`, `file://PATH.ts`, `tshttp://`/`http://` (MPEG-TS over HTTP), `udp://[iface@]group:port`, `hls://HOST/PATH.m3u8` (live HLS, MPEG-TS segments), `rtmp://HOST/APP/KEY` (played from another server), `rtsp://[USER:PASS@]HOST/PATH` (IP cameras), `srt://HOST:PORT[?streamid=…&passphrase=…&latency=MS]` (the node calls an SRT listener), `publish://` (RTMP and SRT publishing). Other schemes are refused. Options: `priority=N`, `source_timeout=S`, `program=N` (one program of an MPEG-TS: udp, tshttp/http, file, srt), `pids=P,P…` (only these elementary streams of it), `transport=tcp|udp` (rtsp:// only); the others Flussonic has (user_agent, headers, timeout, bind_ip, …) are refused until active."
    ),
    d!(
        "static",
        [],
        STREAM_TEMPLATE,
        Later,
        "static true;",
        "Keep running with no viewers and restart on failure (true for `stream`)."
    ),
    d!(
        "disabled",
        [],
        STREAM_TEMPLATE,
        Now,
        "disabled false;",
        "Configured but not running."
    ),
    d!(
        "clients_timeout",
        [],
        STREAMISH,
        Now,
        "clients_timeout 30;",
        "How long an on-demand stream outlives its last viewer (seconds, or false)."
    ),
    d!(
        "retry_limit",
        [],
        STREAMISH,
        Now,
        "retry_limit 3;",
        "On-demand: give up after N failed source attempts until the next request."
    ),
    d!(
        "source_timeout",
        [],
        STREAMISH,
        Now,
        "source_timeout 10;",
        "No frames for this long means the source is lost (seconds, or false)."
    ),
    d!(
        "segment_duration",
        [],
        STREAMISH,
        Now,
        "segment_duration 4;",
        "Target HLS segment duration in seconds."
    ),
    d!(
        "segment_count",
        [],
        STREAMISH,
        Now,
        "segment_count 4;",
        "Segments advertised in the live HLS window."
    ),
    d!(
        "chunk_duration",
        [],
        STREAMISH,
        Now,
        "chunk_duration 200;",
        "LL-HLS part duration in milliseconds (100 to 10000; default 1000): the longest CMAF part."
    ),
    d!(
        "protocols",
        [],
        STREAMISH,
        Now,
        "protocols -rtmp -dash;",
        "Allowed play protocols (hls — TS HLS and LL-HLS —, dash, mpegts/tshttp, rtmp, webrtc — WHEP — are served): names list the only ones allowed, `-name` denies one (then all others are allowed). A refused viewer gets 403 (RTMP: NetStream.Play.Failed)."
    ),
    d!(
        "prepush",
        [],
        STREAMISH,
        Later,
        "prepush 10;",
        "Seconds of media kept to start players quickly."
    ),
    d!(
        "on_play",
        [],
        STREAMISH,
        Now,
        "on_play http://auth.local/play;",
        "Play authorization: `http://…` backend or `auth://NAME` (an auth_backend block), asked once per viewer session with Flussonic's v1 query; 200 allows (X-AuthDuration: re-asked after that many seconds), 302 redirects, 4xx denies; a lone URL that does not answer within 3 s denies."
    ),
    d!(
        "on_publish",
        [],
        STREAM_TEMPLATE,
        Now,
        "on_publish http://auth.local/publish;",
        "Publish authorization (RTMP/RTMPS): `http://…` or `auth://NAME`, asked when a publisher connects; refused publishers get NetStream.Publish.Rejected."
    ),
    d!(
        "auth",
        [],
        STREAMISH,
        Now,
        "auth http://auth.local/check;",
        "`on_play` and `on_publish` at once (each of those wins over it)."
    ),
    d!(
        "password",
        [],
        STREAM_TEMPLATE,
        Now,
        "password pubsecret;",
        "Password an RTMP/RTMPS publisher must give as `?password=…` on the stream key (compared in constant time, never logged)."
    ),
    d!(
        "srt_passphrase",
        [],
        STREAM_TEMPLATE,
        Now,
        "srt_passphrase correct-horse-battery;",
        "flotilla: the passphrase (10 to 79 bytes) SRT publishers of this stream or template encrypt with; a publisher without it, or with another, fails the SRT handshake."
    ),
    d!(
        "push",
        [],
        STREAM_TEMPLATE,
        Later,
        "push rtmp://cdn.example.com/live/%s;",
        "Push the stream to another server; repeatable."
    ),
    d!(
        "transcoder",
        [],
        STREAMISH,
        Later,
        "transcoder vb=2048k ab=128k;",
        "Transcoding options, kept as written."
    ),
    d!(
        "thumbnails",
        [],
        STREAMISH,
        Later,
        "thumbnails enabled=true;",
        "Thumbnail options, kept as written."
    ),
    d!(
        "title",
        [],
        STREAM_TEMPLATE,
        Later,
        "title \"Camera 1\";",
        "Human-readable title."
    ),
    d!(
        "comment",
        [],
        STREAM_TEMPLATE,
        Later,
        "comment \"north gate\";",
        "Free-form note."
    ),
    d!(
        "cluster_ingest",
        [],
        STREAM_TEMPLATE,
        Now,
        "cluster_ingest capture_at=node-a;",
        "Capture on exactly one node of the cluster, preferring `capture_at=HOST`; moves when that node dies and returns after a hold (see runtime-semantics). In a template it has no effect: a published stream lives where its publisher connects."
    ),
    d!(
        "prefix",
        [],
        &[T, Src],
        Now,
        "prefix live;",
        "Template: names starting with `PREFIX/` use it. Source: restream only the names starting with `PREFIX/` (same as `source HOST/PREFIX`)."
    ),
    d!(
        "prefixes",
        [],
        &[T],
        Now,
        "prefixes live tv;",
        "Several template prefixes at once."
    ),
    d!(
        "only",
        [],
        &[Src, Sink],
        Now,
        "only live/*;",
        "Source: restream only these names or `prefix/*`. Event sink: deliver only matching events (`field=v1,v2`)."
    ),
    d!(
        "except",
        [],
        &[Src, Sink],
        Now,
        "except live/test;",
        "Source: never restream these names. Event sink: drop matching events."
    ),
    // peer block.
    d!(
        "api_url",
        [],
        &[P],
        Now,
        "api_url http://10.0.0.2:8081;",
        "The peer's internal address for calls between servers: the mesh dials it when no `private_payload_url` is given (its host, on the port it names or else the peer's own)."
    ),
    d!(
        "public_payload_url",
        ["public"],
        &[P],
        Now,
        "public_payload_url http://a.example.com;",
        "Public URL viewers are redirected to."
    ),
    d!(
        "private_payload_url",
        [],
        &[P],
        Now,
        "private_payload_url http://10.0.0.2:8080;",
        "The peer's address inside the LAN: the mesh (exchanges and relayed media) dials its host, on the port it names or else the peer's own. Viewers are never sent there."
    ),
    d!(
        "fetch_timeout",
        [],
        &[P],
        Now,
        "fetch_timeout 1000;",
        "How often to exchange state with the peer, in ms (bare values below 100 are seconds)."
    ),
    d!(
        "stale_timeout",
        [],
        &[P],
        Now,
        "stale_timeout 5000;",
        "The peer is dead after this long without a good exchange, in ms (bare values below 100 are seconds)."
    ),
    d!(
        "channel_limit",
        [],
        &[P],
        Now,
        "channel_limit 100;",
        "Most streams cluster_ingest may place on the peer."
    ),
    d!(
        "cpu_limit",
        [],
        &[P],
        Now,
        "cpu_limit 80%;",
        "CPU usage above which cluster_ingest places nothing more on the peer."
    ),
    d!(
        "max_bitrate",
        [],
        &[P],
        Later,
        "max_bitrate 10G;",
        "Deprecated here: set `max_bitrate=` on balancer servers."
    ),
    // balancer block.
    d!(
        "mode",
        [],
        &[Bal],
        Now,
        "mode usage;",
        "clients, bitrate, usage or streams."
    ),
    d!(
        "server",
        ["peer"],
        &[Bal],
        Now,
        "server edge1.example.com max_bitrate=10G countries=DE,AT countries_default=true;",
        "A server to balance to. Options: max_bitrate, countries, countries_default."
    ),
    // vod block.
    d!(
        "path",
        ["storage"],
        &[V],
        Later,
        "path /storage/movies;",
        "Directory or remote origin of the files."
    ),
    d!(
        "paths",
        [],
        &[V],
        Later,
        "paths /mnt/a /mnt/b;",
        "Several directories."
    ),
    d!(
        "download",
        [],
        &[V],
        Later,
        "download;",
        "Cache whole files from a remote origin."
    ),
    d!(
        "segment_cache",
        [],
        &[V],
        Later,
        "segment_cache /ssd 20G 48h misses=2;",
        "Cache of segments: path, size, age, misses before caching."
    ),
    // event_sink block.
    d!(
        "url",
        ["sink"],
        &[Sink],
        Later,
        "url http://hooks.local/events;",
        "Destination: http(s) URL, Lua script path, log:// or jsonlog:// file; repeatable."
    ),
    d!(
        "level",
        ["verbose"],
        &[Sink],
        Later,
        "level info;",
        "Least severe level delivered."
    ),
    d!(
        "throttle_delay",
        [],
        &[Sink],
        Later,
        "throttle_delay 1;",
        "Seconds to batch events before delivery."
    ),
    d!(
        "resend_limit",
        [],
        &[Sink],
        Later,
        "resend_limit 1000;",
        "Events kept for retry."
    ),
    d!(
        "resend_timeout",
        [],
        &[Sink],
        Later,
        "resend_timeout 10;",
        "Seconds between retries."
    ),
    d!(
        "max_size",
        [],
        &[Sink],
        Later,
        "max_size 100M;",
        "Log file size before rotation."
    ),
    d!(
        "max_depth",
        [],
        &[Sink],
        Later,
        "max_depth 5;",
        "Rotated log files kept."
    ),
    d!(
        "extra",
        [],
        &[Sink],
        Later,
        "extra region=eu;",
        "Extra key=value fields added to every event."
    ),
    // auth_backend block.
    d!(
        "allow",
        [],
        &[Auth],
        Now,
        "allow ip 10/8;",
        "Allow by token, ip, country or ua; `allow default;` allows what nothing else decided."
    ),
    d!(
        "deny",
        [],
        &[Auth],
        Now,
        "deny ua \"BadBot/1.0\";",
        "Deny by token, ip, country or ua; `deny default;`."
    ),
    d!(
        "backend",
        [],
        &[Auth],
        Now,
        "backend http://auth.local/check;",
        "HTTP authorization backend, asked in parallel."
    ),
    // dvr block.
    d!(
        "root",
        [],
        &[DvrC],
        Later,
        "root /storage;",
        "Directory of the archive."
    ),
    d!(
        "disk_limit",
        [],
        &[DvrC],
        Later,
        "disk_limit 90%;",
        "Disk usage above which the oldest archive is deleted."
    ),
    d!(
        "storage_limit",
        [],
        &[DvrC],
        Later,
        "storage_limit 4T;",
        "Archive size above which the oldest archive is deleted."
    ),
    d!(
        "expiration",
        [],
        &[DvrC],
        Later,
        "expiration 7d;",
        "Archive depth."
    ),
    d!(
        "copies",
        [],
        &[DvrC],
        Later,
        "copies 2;",
        "Copies of each segment across disks."
    ),
];

/// The directive `name` (or one of its old spellings) allowed in `context`.
pub fn lookup(context: Context, name: &str) -> Option<&'static DirectiveInfo> {
    DIRECTIVES.iter().find(|info| {
        info.contexts.contains(&context) && (info.name == name || info.aliases.contains(&name))
    })
}

/// Every name (new spellings only) allowed in `context`, for suggestions.
pub fn names_in(context: Context) -> impl Iterator<Item = &'static str> {
    DIRECTIVES
        .iter()
        .filter(move |info| info.contexts.contains(&context))
        .map(|info| info.name)
}

/// The context that does accept `name`, to say "`input` belongs in a stream block".
pub fn home_of(name: &str) -> Option<Context> {
    DIRECTIVES
        .iter()
        .find(|info| info.name == name || info.aliases.contains(&name))
        .map(|info| info.contexts[0])
}

/// Markdown table of the registry: the generated part of docs/configuration.md.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    for context in Context::ALL {
        out.push_str(&format!("\n### {}\n\n", context.title()));
        out.push_str("| directive | status | example | meaning |\n|---|---|---|---|\n");
        for info in DIRECTIVES.iter().filter(|i| i.contexts[0] == context) {
            let mut name = format!("`{}`", info.name);
            for alias in info.aliases {
                name.push_str(&format!(" (old: `{alias}`)"));
            }
            let status = match info.status {
                Status::Supported => "supported",
                Status::NotActive => "parsed, not yet active",
            };
            let also: Vec<&str> = info.contexts[1..].iter().map(|c| c.title()).collect();
            let mut summary = info.summary.to_string();
            if !also.is_empty() {
                summary.push_str(&format!(" Also in: {}.", also.join(", ")));
            }
            out.push_str(&format!(
                "| {name} | {status} | `{}` | {} |\n",
                info.example.replace('|', "\\|"),
                summary.replace('|', "\\|")
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_per_context() {
        for context in Context::ALL {
            let mut seen = std::collections::BTreeSet::new();
            for info in DIRECTIVES.iter().filter(|i| i.contexts.contains(&context)) {
                for name in std::iter::once(&info.name).chain(info.aliases) {
                    assert!(seen.insert(*name), "`{name}` twice in {context:?}");
                }
            }
        }
    }

    #[test]
    fn every_context_has_directives() {
        for context in Context::ALL {
            assert!(names_in(context).count() > 0, "{context:?} is empty");
        }
    }
}
