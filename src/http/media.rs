//! Media over HTTP: HLS, HTTP-MPEG-TS and the player page, with Flussonic's URLs.
//!
//! | path | what |
//! |---|---|
//! | `/NAME/index.m3u8` (`playlist.m3u8`, `video.m3u8`) | master playlist |
//! | `/NAME/tracks-v1a1/mono.m3u8` (`mono.m3u8`) | live media playlist |
//! | `/NAME/[tracks-v1a1/]YYYY/MM/DD/HH/MM/SS-DDDDD.ts` | a segment |
//! | `/NAME/mpegts` | continuous MPEG-TS, starting on a keyframe |
//! | `/NAME/embed.html` | a minimal player page |
//!
//! Stream names may contain `/`; the longest running stream name that prefixes the path
//! wins. Handlers read the stream's shared state only: no actor is asked anything.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use super::api::{ApiState, error_response, not_found};
use super::fast_path::{Decided, client_of};
use super::server::remote_addr;
use super::transport::{ArrivedOverTls, with_port};
use crate::balancer::{BalancerRequest, Routed};
use crate::defaults::STREAM_START_WAIT_MS;
use crate::media::cmaf::playlist::Resource;
use crate::media::live::LiveStream;
use crate::media::window::master_playlist;
use crate::sessions::{Protocol, Refused, Session, SessionTable, Viewer};
use axum::body::HttpBody as _;
use http_body_util::BodyExt;
use std::time::Duration;

/// Longest request path looked up (names are ≤ 256 bytes, segment names ~30).
const MAX_MEDIA_PATH_BYTES: usize = 1024;

/// The media playlist the master playlist points to.
const MEDIA_PLAYLIST: &str = "tracks-v1a1/mono.m3u8";

pub async fn serve(State(state): State<ApiState>, request: Request) -> Response {
    let path = request.uri().path();
    if path.len() > MAX_MEDIA_PATH_BYTES {
        return not_found(path);
    }
    // The client behind trusted proxies, for GeoIP and the session, and the scheme it
    // used (redirects keep it).
    // Restart-only (a reload does not change it): a snapshot of the config is enough.
    let config = state.config.get();
    let proxies = &config.trusted_proxies;
    let client = remote_addr(&request).map(|addr| client_of(addr, request.headers(), proxies));
    let over_tls = request.extensions().get::<ArrivedOverTls>().copied();
    let scheme = match over_tls {
        Some(_) => "https",
        None => remote_addr(&request).map_or("http", |addr| {
            let proto = request
                .headers()
                .get("x-forwarded-proto")
                .and_then(|value| value.to_str().ok());
            super::client_ip::viewer_scheme(addr.ip(), proto, proxies)
        }),
    };
    // `/BALANCER/STREAM/...`: a redirect to the chosen server, or served here (decided by
    // the listener's fast path already, or now for requests that did not pass it).
    let local = match request.extensions().get::<Decided>() {
        Some(Decided(stream_path)) => stream_path.clone(),
        None => match state.balancers.route(BalancerRequest {
            post: *request.method() == Method::POST,
            path,
            query: request.uri().query(),
            client,
            tls_port: over_tls.map(|arrived| arrived.port),
        }) {
            Routed::Pass => path.to_string(),
            Routed::Local(stream_path) => stream_path,
            Routed::Redirect(status, location) => return redirect(status, &location),
            Routed::Unavailable(why) => return no_server(why),
        },
    };
    let info = RequestInfo {
        method: request.method().clone(),
        query: request.uri().query().map(str::to_string),
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .chars()
            .take(MAX_USER_AGENT_CHARS)
            .collect(),
        referer: request
            .headers()
            .get(header::REFERER)
            .and_then(|value| value.to_str().ok())
            .map(|referer| referer.chars().take(MAX_REFERER_CHARS).collect()),
        ip: client,
        scheme,
        tls_port: over_tls.map(|arrived| arrived.port),
    };
    if let Some(target) = super::webrtc::target(&local) {
        let asked = super::webrtc::Asked {
            client: info.ip,
            query: info.query.clone(),
            user_agent: info.user_agent.clone(),
            referer: info.referer.clone(),
            scheme: info.viewer_scheme(),
        };
        return super::webrtc::serve(&state, asked, target, request).await;
    }
    drop(request);
    serve_path(&state, info, &local).await
}

/// Longest a relayed copy's viewer waits for a segment another node has just published
/// (the cut crosses the mesh in milliseconds; a copy resuming after a stall takes up to a
/// segment).
const RELAYED_SEGMENT_WAIT: Duration = Duration::from_secs(2);

/// Longest user agent kept for a session (the header itself is bounded by the server).
const MAX_USER_AGENT_CHARS: usize = 256;
/// Longest Referer passed to an authorization backend.
const MAX_REFERER_CHARS: usize = 1024;

/// What a media request needs of the HTTP request, taken before any wait.
struct RequestInfo {
    method: Method,
    query: Option<String>,
    user_agent: String,
    referer: Option<String>,
    ip: Option<std::net::IpAddr>,
    /// `http`, or `https` when the viewer came over TLS (to this node's `https` listener
    /// or to a trusted proxy that says so).
    scheme: &'static str,
    /// The local port of this node's `https` listener the request came to.
    tls_port: Option<u16>,
}

/// How the viewer reached this node, for redirects that keep it.
#[derive(Debug, Clone, Copy)]
pub struct ViewerScheme {
    name: &'static str,
    /// Set when the viewer came to this node's own `https` listener (on this port).
    tls_port: Option<u16>,
}

impl RequestInfo {
    fn viewer_scheme(&self) -> ViewerScheme {
        ViewerScheme {
            name: self.scheme,
            tls_port: self.tls_port,
        }
    }
}

pub(crate) fn redirect(status: u16, location: &str) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

pub(crate) fn no_server(why: flotilla_cluster::balancer::choose::NoServer) -> Response {
    let reason = match why {
        flotilla_cluster::balancer::choose::NoServer::AllDown => "every server is down",
        flotilla_cluster::balancer::choose::NoServer::AllFull => {
            "every server is at its max_bitrate"
        }
    };
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("no server can take this viewer now: {reason}"),
    );
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(crate::balancer::RETRY_AFTER_SECONDS),
    );
    response
}

async fn serve_path(state: &ApiState, request: RequestInfo, path: &str) -> Response {
    let state = state.clone();
    if !matches!(request.method, Method::GET | Method::HEAD) {
        return not_found(path);
    }
    let (live, rest) = match locate(
        &state,
        path,
        request.query.as_deref(),
        request.viewer_scheme(),
    )
    .await
    {
        Ok(found) => found,
        Err(response) => return response,
    };
    let now_ms = state.node.runtime.wall_clock_ms();
    let cmaf = crate::media::cmaf::playlist::resource(&rest);
    let protocol = match (rest.as_str(), cmaf) {
        ("embed.html", _) => return embed(&live),
        ("mpegts", _) => Protocol::Mpegts,
        (_, Some(Resource::Manifest)) => Protocol::Dash,
        (_, Some(_)) => Protocol::Hls,
        (
            "index.m3u8" | "playlist.m3u8" | "video.m3u8" | "tracks-v1a1/mono.m3u8" | "mono.m3u8",
            _,
        ) => Protocol::Hls,
        (other, _) if other.ends_with(".ts") => Protocol::Hls,
        _ => return not_found(path),
    };
    let user_agent = request.user_agent.as_str();
    let viewer = Viewer {
        stream: &live.name,
        protocol,
        ip: request.ip,
        user_agent,
        query: request.query.as_deref(),
        referer: request.referer.as_deref(),
    };
    let session = match state.sessions.admit_authorized(&viewer).await {
        Ok(session) => session,
        Err(Refused::Redirect(location)) => return redirect(302, &location),
        Err(refused) => return error_response(StatusCode::FORBIDDEN, refused.to_string()),
    };
    live.request(now_ms);
    // Playlists need the first segment; HTTP-MPEG-TS only the first GOP (below).
    let needs_media = !rest.ends_with(".ts") && rest != "mpegts" && cmaf.is_none();
    if needs_media && !live.has_media() {
        // A starting (or on-demand) stream: wait for its first segment, bounded.
        live.wait_ready(Duration::from_millis(STREAM_START_WAIT_MS))
            .await;
    }
    let response = match rest.as_str() {
        _ if let Some(resource) = cmaf => {
            let response =
                super::cmaf::serve(&live, resource, request.query.as_deref(), &state.held).await;
            let token = token_of(&state, &session);
            match (token, resource) {
                (Some((parameter, token)), Resource::Master | Resource::MediaPlaylist { .. }) => {
                    with_body(response, |body| {
                        super::token_urls::with_token(body, &parameter, token)
                    })
                    .await
                }
                (Some((parameter, token)), Resource::Manifest) => {
                    with_body(response, |body| {
                        super::token_urls::mpd_with_token(body, &parameter, token)
                    })
                    .await
                }
                _ => response,
            }
        }
        "index.m3u8" | "playlist.m3u8" | "video.m3u8" => {
            let token = token_of(&state, &session);
            master(&live, token.as_ref().map(|(p, t)| (p.as_str(), *t)))
        }
        "tracks-v1a1/mono.m3u8" | "mono.m3u8" => {
            let token = token_of(&state, &session);
            media_playlist(&live, token.as_ref().map(|(p, t)| (p.as_str(), *t)))
        }
        "mpegts" => {
            // A starting stream (and a relayed copy, which has its window before its
            // first live keyframe): the viewer waits for the GOP it starts from, bounded.
            live.wait_gop(Duration::from_millis(STREAM_START_WAIT_MS))
                .await;
            return mpegts(live, state.sessions.clone(), session);
        }
        other => {
            let name = other.trim_start_matches("tracks-v1a1/");
            if live.relay && live.segment(name).is_none() {
                // Behind a load balancer, a viewer's playlist may come from the origin
                // and this segment request here a moment before its cut arrives.
                live.segment_soon(name, RELAYED_SEGMENT_WAIT).await;
            }
            segment(&live, name)
        }
    };
    let bytes = response.body().size_hint().exact().unwrap_or(0);
    session.touch(now_ms, bytes);
    response
}

/// The stream `path` names and the rest of the path: this node's, or a peer's relayed
/// here; else the answer for a stream this node does not serve (a redirect to the peer
/// that has it, or 404). A superseded cluster_ingest copy redirects to the capturer.
pub async fn locate(
    state: &ApiState,
    path: &str,
    query: Option<&str>,
    scheme: ViewerScheme,
) -> Result<(std::sync::Arc<LiveStream>, String), Response> {
    let trimmed = path.trim_start_matches('/');
    if trimmed
        .split('/')
        .any(|segment| segment == ".." || segment == ".")
    {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            "path traversal is not allowed",
        ));
    }
    if trimmed.len() > MAX_MEDIA_PATH_BYTES
        || !trimmed.bytes().all(crate::media::name::allowed_byte)
    {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            format!(
                "not a stream path: a stream name is {}",
                crate::media::name::STREAM_NAME_RULE
            ),
        ));
    }
    let resolved = match state.directory.resolve(trimmed) {
        Some(found) => Some(found),
        None => relayed(state, trimmed).await,
    };
    let Some((live, rest)) = resolved else {
        return Err(elsewhere(state, path, query, scheme));
    };
    // A cluster_ingest stream is served by its current capturer only (highest epoch); a
    // relayed copy follows whoever that is.
    let now_ms = state.node.runtime.wall_clock_ms();
    if !live.relay
        && crate::ingest::superseded(
            &state.ingest,
            state.mesh.as_ref().map(|mesh| mesh.view()),
            &live.name,
            now_ms,
            &state.identity.id,
        )
        && let Elsewhere::Redirect(redirect) = redirect_to_peer(state, path, query, scheme)
    {
        // Past the hop limit a superseded capturer still serves what it has.
        return Err(redirect);
    }
    Ok((live, rest.to_string()))
}

/// A stream another node has, relayed here when the node (or the stream) plays peers'
/// streams here (`cluster_play relay`), or a stream of another cluster this node
/// restreams (`source`: always relayed, its viewers cannot be sent into that cluster):
/// the local copy, started for this viewer if it was not running, and the rest of the
/// path. `None`: redirect as usual (or 404).
async fn relayed<'p>(
    state: &ApiState,
    trimmed: &'p str,
) -> Option<(std::sync::Arc<LiveStream>, &'p str)> {
    let relays = state.relays.as_ref()?;
    let mesh = state.mesh.as_ref()?;
    let in_cluster = {
        let now_ms = state.node.runtime.wall_clock_ms();
        let view = mesh.view().read().unwrap_or_else(|p| p.into_inner());
        view.located_stream(trimmed, now_ms).map(str::to_string)
    };
    let name = match in_cluster {
        Some(name) if relays.relays(&name) => name,
        Some(_) => return None,
        None => state.sources.as_ref()?.located_stream(trimmed)?,
    };
    relays
        .local_copy(&name, Duration::from_millis(STREAM_START_WAIT_MS))
        .await?;
    state.directory.resolve(trimmed)
}

/// Query parameter counting the redirects a viewer's request went through
/// (`flotilla_hop=N`), so that views that disagree for a moment cannot bounce a viewer
/// between nodes forever.
pub const HOP_PARAMETER: &str = "flotilla_hop";

/// Most redirects one request is sent through. One is the rule: the node asked sends the
/// viewer to the stream's owner. The others cover a node whose view lags a failover (or a
/// load balancer that sends the redirected request to another node): the request is sent
/// on to the owner again instead of refused. Past this the answer is 503 with
/// `Retry-After`, never a loop.
pub const MAX_REDIRECT_HOPS: u32 = 3;

/// The redirects `query` says the request went through (a marker without a number counts
/// as one, as older nodes wrote it).
fn hops_of(query: Option<&str>) -> u32 {
    query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (name == HOP_PARAMETER).then(|| value.parse::<u32>().unwrap_or(1).max(1))
        })
        .max()
        .unwrap_or(0)
}

/// `query` with its hop markers replaced by one counting `hops`.
fn with_hops(query: Option<&str>, hops: u32) -> String {
    let mut kept: Vec<&str> = query
        .into_iter()
        .flat_map(|query| query.split('&'))
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some(HOP_PARAMETER))
        .collect();
    let marker = format!("{HOP_PARAMETER}={hops}");
    kept.push(&marker);
    kept.join("&")
}

/// Where a request for a stream this node does not serve goes.
enum Elsewhere {
    /// A 302 to the peer that has it.
    Redirect(Response),
    /// A peer has it, but the request went through [`MAX_REDIRECT_HOPS`] already.
    TooManyHops,
    /// No alive peer has it (or the node is not in a cluster).
    Nowhere,
}

/// A 302 to an alive peer that has the stream (the longest name that prefixes the path),
/// keeping the path and query and counting the hop. A peer without a configured public
/// URL is reached with the viewer's `scheme`.
fn redirect_to_peer(
    state: &ApiState,
    path: &str,
    query: Option<&str>,
    scheme: ViewerScheme,
) -> Elsewhere {
    let Some(mesh) = state.mesh.as_ref() else {
        return Elsewhere::Nowhere;
    };
    let name_path = path.trim_start_matches('/');
    let now_ms = state.node.runtime.wall_clock_ms();
    let view = mesh.view().read().unwrap_or_else(|p| p.into_inner());
    let Some(peer) = view.redirect_target(name_path, now_ms) else {
        return Elsewhere::Nowhere;
    };
    let hops = hops_of(query);
    if hops >= MAX_REDIRECT_HOPS {
        return Elsewhere::TooManyHops;
    }
    // Nodes share one config, so a peer's https port is this node's.
    let base = match (peer.public_url.is_empty(), scheme.tls_port) {
        (true, Some(port)) => format!("https://{}", with_port(&peer.name, port)),
        (true, None) => format!("{}://{}", scheme.name, peer.name),
        (false, _) => peer.viewer_base_url(),
    };
    let location = format!("{base}{path}?{}", with_hops(query, hops + 1));
    let Ok(location) = HeaderValue::from_str(&location) else {
        return Elsewhere::Nowhere;
    };
    tracing::debug!(%path, peer = %peer.name, hops, "viewer redirected to the peer that has the stream");
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::FOUND;
    response.headers_mut().insert(header::LOCATION, location);
    Elsewhere::Redirect(response)
}

/// The answer for a stream this node does not have.
fn elsewhere(state: &ApiState, path: &str, query: Option<&str>, scheme: ViewerScheme) -> Response {
    match redirect_to_peer(state, path, query, scheme) {
        Elsewhere::Redirect(response) => response,
        Elsewhere::Nowhere => not_found(path),
        Elsewhere::TooManyHops => {
            let mut response = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{path} was redirected {MAX_REDIRECT_HOPS} times: the nodes disagree for a moment on who has the stream; retry"
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
    }
}

/// A response of `content_type` with `cache` as its Cache-Control, open to any origin.
pub(crate) fn with_type(
    body: impl Into<Body>,
    content_type: &'static str,
    cache: &'static str,
) -> Response {
    let mut response = Response::new(body.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

fn starting(live: &LiveStream) -> Response {
    let mut response = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("stream {} has no media yet; retry shortly", live.name),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

fn master(live: &LiveStream, token: Option<(&str, &str)>) -> Response {
    if !live.has_media() {
        return starting(live);
    }
    let body = master_playlist(&live.rendition(), MEDIA_PLAYLIST);
    with_type(playlist_body(body, token), PLAYLIST_TYPE, "no-cache")
}

fn media_playlist(live: &LiveStream, token: Option<(&str, &str)>) -> Response {
    match live.media_playlist() {
        Some(body) => with_type(playlist_body(body, token), PLAYLIST_TYPE, "no-cache"),
        None => starting(live),
    }
}

/// The (parameter, token) a session's playlists carry in their URIs
/// ([`super::token_urls`]), if it has a token.
fn token_of<'s>(state: &ApiState, session: &'s Session) -> Option<(String, &'s str)> {
    let token = session.token.as_deref()?;
    Some((state.sessions.token_parameter(), token))
}

/// `response` with its body rewritten (a successful playlist's, for a token).
async fn with_body(response: Response, rewrite: impl FnOnce(&[u8]) -> Bytes) -> Response {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Playlists and manifests are built in memory: collecting them cannot wait.
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(rewrite(&bytes)))
}

/// A playlist's body, with the session's token in its URIs.
fn playlist_body(body: impl AsRef<[u8]> + Into<Body>, token: Option<(&str, &str)>) -> Body {
    match token {
        Some((parameter, token)) => Body::from(super::token_urls::with_token(
            body.as_ref(),
            parameter,
            token,
        )),
        None => body.into(),
    }
}

fn segment(live: &LiveStream, name: &str) -> Response {
    match live.segment(name) {
        Some(segment) => {
            live.counters
                .bytes_out
                .fetch_add(segment.data.len() as u64, Ordering::Relaxed);
            // Segments never change once published: caches may keep them.
            with_type(segment.data.clone(), "video/mp2t", "max-age=3600")
        }
        None => error_response(
            StatusCode::NOT_FOUND,
            format!("segment {name} is not in the window of {}", live.name),
        ),
    }
}

/// Closes the viewer's session when the response body is dropped (viewer gone).
struct ViewerGuard {
    live: std::sync::Arc<LiveStream>,
    sessions: SessionTable,
    session: std::sync::Arc<Session>,
}

impl Drop for ViewerGuard {
    fn drop(&mut self) {
        self.sessions.close(&self.session);
    }
}

fn mpegts(
    live: std::sync::Arc<LiveStream>,
    sessions: SessionTable,
    session: std::sync::Arc<Session>,
) -> Response {
    let (gop, receiver) = live.subscribe();
    if gop.is_empty() {
        sessions.close(&session);
        return starting(&live);
    }
    let guard = ViewerGuard {
        live,
        sessions,
        session,
    };
    let backlog = gop.into_iter();
    let body = stream::unfold(
        (backlog, receiver, guard),
        |(mut backlog, mut receiver, guard)| async move {
            let chunk: Bytes = match backlog.next() {
                Some(chunk) => chunk,
                None => match receiver.recv().await {
                    Ok(chunk) => chunk,
                    // A viewer this far behind would only fall further: drop it.
                    Err(RecvError::Lagged(missed)) => {
                        tracing::info!(stream = %guard.live.name, missed, "slow HTTP-MPEG-TS viewer dropped");
                        return None;
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            guard
                .live
                .counters
                .bytes_out
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            guard
                .session
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            Some((
                Ok::<Bytes, std::io::Error>(chunk),
                (backlog, receiver, guard),
            ))
        },
    );
    with_type(Body::from_stream(body), "video/mp2t", "no-cache")
}

/// The hls.js build the node serves at [`PLAYER_SCRIPT_PATH`] (see build.rs); empty when
/// the build could not fetch it, and the embed page then plays through native HLS only.
pub static PLAYER_SCRIPT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hls.min.js"));

/// Where the node serves its player script: from the node itself, so that a page on a
/// private network plays without reaching any other host.
pub const PLAYER_SCRIPT_PATH: &str = "/flotilla/player/hls.js";

/// `GET /flotilla/player/hls.js`.
pub async fn player_script() -> Response {
    with_type(
        Body::from(Bytes::from_static(PLAYER_SCRIPT)),
        "text/javascript; charset=utf-8",
        "public, max-age=86400",
    )
}

/// The player page: hls.js where the browser has Media Source Extensions, the browser's
/// own HLS otherwise (iOS). It loads nothing from any host but this node.
fn embed(live: &LiveStream) -> Response {
    let name = crate::format::escape_markup(&live.name);
    let page = format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{name}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>html,body{{margin:0;height:100%;background:#000}}video{{width:100%;height:100%}}</style>
</head><body>
<video id="player" controls autoplay muted playsinline></video>
<script src="{PLAYER_SCRIPT_PATH}"></script>
<script>
  const video = document.getElementById('player');
  const source = 'index.m3u8' + window.location.search;
  if (window.Hls && Hls.isSupported()) {{
    const hls = new Hls({{ lowLatencyMode: false }});
    hls.on(Hls.Events.ERROR, (event, data) => {{
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else hls.startLoad();
    }});
    hls.loadSource(source);
    hls.attachMedia(video);
  }} else {{
    video.src = source;
  }}
</script>
</body></html>
"#
    );
    with_type(page, "text/html; charset=utf-8", "no-cache").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_are_counted_from_the_query() {
        assert_eq!(hops_of(None), 0);
        assert_eq!(hops_of(Some("token=a")), 0);
        assert_eq!(hops_of(Some("token=a&flotilla_hop=1")), 1);
        assert_eq!(hops_of(Some("flotilla_hop")), 1, "an old bare marker");
        assert_eq!(hops_of(Some("flotilla_hop=x")), 1);
        assert_eq!(hops_of(Some("flotilla_hop=2&flotilla_hop=1")), 2);
        assert_eq!(hops_of(Some("flotilla_hopper=5")), 0);
    }

    #[test]
    fn the_hop_marker_is_replaced_not_repeated() {
        assert_eq!(with_hops(None, 1), "flotilla_hop=1");
        assert_eq!(with_hops(Some(""), 1), "flotilla_hop=1");
        assert_eq!(
            with_hops(Some("token=abc&flotilla_hop=1"), 2),
            "token=abc&flotilla_hop=2"
        );
        assert_eq!(
            with_hops(Some("flotilla_hop=1&a=b"), 2),
            "a=b&flotilla_hop=2"
        );
    }
}
