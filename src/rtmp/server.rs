//! The RTMP listener: publishing (ffmpeg, OBS) and playing, on rml_rtmp's sans-IO sessions.
//!
//! Per connection: the handshake must finish within [`HANDSHAKE_TIMEOUT`]; every inbound
//! byte then passes the [`ChunkGuard`] limits before rml_rtmp parses it (rml_rtmp also runs
//! under `catch_unwind`: a known malformed `@setDataFrame` panics inside it).
//!
//! Names follow Flussonic (spec §6): the app and the stream key are joined (`live` +
//! `news` → `live/news`), the reserved app `static` is dropped (`static` + `cam` → `cam`),
//! and a `?query` on the key is not part of the name.
//!
//! Publishing goes to a stream's publish point: a configured stream with a `publish://`
//! input, or a new stream started under `node/streams` when the name matches a template
//! prefix (removed when the publisher leaves). Playing follows the stream's live frames,
//! starting with the current GOP; a player that falls behind is dropped.
//!
//! A player asking for a stream that only a peer has is relayed through this node, or,
//! with `rtmp_redirect true;`, sent the de-facto RTMP 302 (see [`redirect_status`]). RTMP
//! names the stream only in `play`, so that is where the redirect is answered; the
//! target's tcUrl carries a hop marker so the viewer is never sent on again.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flotilla_actors::node::NodeContext;
use flotilla_actors::registry::ActorPath;
use flotilla_actors::stream::{StreamActor, StreamMedia};
use flotilla_actors::supervisor::{Restart, SupervisorMsg, supervisor_at};
use flotilla_actors::tree::{InputPlan, StreamPlan};
use flotilla_actors::worker::worker_child;
use rml_rtmp::handshake::PeerType;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, watch};

use super::flv::{self, Depacketizer, Inbound};
use super::guard::ChunkGuard;
use crate::accept::AcceptFailures;
use crate::config::model::Template;
use crate::media::directory::{AttachError, Directory, Published, Publisher};
use crate::media::frame::Frame;
use crate::media::live::LiveStream;
use crate::media::ts::mux::Tracks;
use crate::sessions::{Protocol, Session, SessionTable, Viewer};

/// Time a client has to complete the RTMP handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that neither publishes, plays nor sends anything for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A write to a player that takes longer than this drops the player.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once by one listener.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Time a template stream gets to open its publish point after being started.
const TEMPLATE_START_TIMEOUT: Duration = Duration::from_secs(5);
/// Size of one socket read.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Outbound chunk size this server announces (rml_rtmp sends Set Chunk Size at start).
const CHUNK_SIZE_BYTES: u32 = 4096;
/// After a redirect the connection waits this long for the player to leave (closing at
/// once could reset the connection before the player reads the redirect).
const REDIRECT_LINGER: Duration = Duration::from_secs(5);

/// What every RTMP connection of a node shares.
#[derive(Clone)]
pub struct RtmpContext {
    pub node: NodeContext,
    pub directory: Directory,
    pub media: Arc<dyn StreamMedia>,
    pub templates: Arc<Vec<Template>>,
    pub sessions: SessionTable,
    /// The cluster mesh: a stream another node has is relayed from it.
    pub mesh: Option<crate::mesh::service::MeshService>,
    /// Players of a peer's stream are redirected to it rather than relayed
    /// (`rtmp_redirect`).
    pub redirect_players: bool,
}

/// Whether an RTMP app or stream key carries the hop marker of a redirect already made.
fn is_redirected(app: &str, key: &str) -> bool {
    [app, key].iter().any(|part| {
        part.split_once('?').is_some_and(|(_, query)| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(crate::http::media::HOP_PARAMETER))
        })
    })
}

/// The de-facto "RTMP 302" (SRS origin clusters, Flash-era players): an error `onStatus`
/// with code NetConnection.Connect.Rejected whose `ex` object holds `code` 302,
/// `redirect` (the tcUrl to connect to; the player then plays the same key there) and
/// `redirect2` (the full URL with the key).
pub fn redirect_status(tc_url: &str, key: &str) -> rml_rtmp::rml_amf0::Amf0Value {
    use rml_rtmp::rml_amf0::Amf0Value;
    use std::collections::HashMap;
    let ex = HashMap::from([
        ("code".to_string(), Amf0Value::Number(302.0)),
        (
            "redirect".to_string(),
            Amf0Value::Utf8String(tc_url.to_string()),
        ),
        (
            "redirect2".to_string(),
            Amf0Value::Utf8String(format!("{tc_url}/{key}")),
        ),
    ]);
    Amf0Value::Object(HashMap::from([
        ("level".to_string(), Amf0Value::Utf8String("error".into())),
        (
            "code".to_string(),
            Amf0Value::Utf8String("NetConnection.Connect.Rejected".into()),
        ),
        (
            "description".to_string(),
            Amf0Value::Utf8String("RTMP 302 Redirect".into()),
        ),
        ("ex".to_string(), Amf0Value::Object(ex)),
    ]))
}

/// An RTMP app without its query and surrounding slashes.
fn bare_app(app: &str) -> &str {
    app.split('?').next().unwrap_or_default().trim_matches('/')
}

/// The stream name for an RTMP app and stream key (spec §6).
pub fn stream_name(app: &str, key: &str) -> String {
    let key = key.split('?').next().unwrap_or_default();
    let app = bare_app(app);
    // `static` is reserved and dropped, also as the first part of a longer app (players
    // split `rtmp://host/static/live/news` as app `static/live`, key `news`).
    let app = app.strip_prefix("static/").unwrap_or(app);
    let joined = match app {
        "" | "static" => key.to_string(),
        app => format!("{app}/{key}"),
    };
    joined.trim_matches('/').to_string()
}

/// Serves RTMP on `listener` until `shutdown` turns true.
pub async fn serve(
    context: RtmpContext,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let failures = AcceptFailures::new(context.node.runtime.clone(), "rtmp accept failed");
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            permit = permits.clone().acquire_owned() => permit.expect("never closed"),
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => return,
            accepted = listener.accept() => accepted,
        };
        let (socket, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors, retrying at once would spin (crate::accept).
                failures.failed(&error).await;
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let context = context.clone();
        let runtime = context.node.runtime.clone();
        runtime.spawn("rtmp-connection", async move {
            if let Err(reason) = Connection::run(context, socket, remote).await {
                tracing::info!(%remote, %reason, "rtmp connection closed");
            }
            drop(permit);
        });
    }
}

/// What woke a playing connection.
enum Next {
    Read(std::io::Result<usize>),
    Frame(Result<Frame, broadcast::error::RecvError>),
}

/// What a connection is doing.
enum Role {
    Idle,
    /// Sent elsewhere; waiting for the player to leave.
    Redirected,
    Publishing {
        name: String,
        publisher: Publisher,
        depacketizer: Depacketizer,
        /// The tracks the publisher's metadata names (`videocodecid`, `audiocodecid`).
        metadata_tracks: Tracks,
        /// The tracks last declared to the stream (metadata and sequence headers).
        declared: Tracks,
        /// Started for this publisher from a template; stopped when it leaves.
        dynamic: bool,
    },
    Playing {
        stream_id: u32,
        live: Arc<LiveStream>,
        session: Arc<Session>,
        /// The stream is a relay of a peer's, started for this player.
        relayed: bool,
        frames: broadcast::Receiver<Frame>,
        base_dts: Option<u64>,
        last_ms: [u32; 2],
    },
}

struct Connection {
    context: RtmpContext,
    socket: TcpStream,
    session: ServerSession,
    guard: ChunkGuard,
    role: Role,
}

impl Connection {
    async fn run(
        context: RtmpContext,
        mut socket: TcpStream,
        remote: SocketAddr,
    ) -> Result<(), String> {
        let remaining = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            super::handshake::run(&mut socket, PeerType::Server),
        )
        .await
        .map_err(|_| format!("handshake not completed within {HANDSHAKE_TIMEOUT:?}"))??;
        let mut config = ServerSessionConfig::new();
        config.chunk_size = CHUNK_SIZE_BYTES;
        let (session, initial) =
            ServerSession::new(config).map_err(|e| format!("session: {e:?}"))?;
        let mut connection = Connection {
            context,
            socket,
            session,
            guard: ChunkGuard::default(),
            role: Role::Idle,
        };
        connection.handle_results(initial).await?;
        let result = connection.serve(remaining, remote).await;
        connection.leave().await;
        result
    }

    async fn serve(&mut self, first: Vec<u8>, remote: SocketAddr) -> Result<(), String> {
        self.input(&first).await?;
        let mut buffer = vec![0u8; READ_BUFFER_BYTES];
        loop {
            if let Role::Playing { frames, .. } = &mut self.role {
                let next = tokio::select! {
                    read = self.socket.read(&mut buffer) => Next::Read(read),
                    frame = frames.recv() => Next::Frame(frame),
                };
                match next {
                    Next::Read(read) => {
                        let length = read.map_err(|e| e.to_string())?;
                        if length == 0 {
                            return Ok(());
                        }
                        self.input(&buffer[..length]).await?;
                    }
                    Next::Frame(Ok(frame)) => self.play_frame(&frame).await?,
                    Next::Frame(Err(broadcast::error::RecvError::Lagged(missed))) => {
                        return Err(format!(
                            "player {remote} fell {missed} frames behind; dropped"
                        ));
                    }
                    Next::Frame(Err(broadcast::error::RecvError::Closed)) => return Ok(()),
                }
                continue;
            }
            if matches!(self.role, Role::Redirected) {
                let read =
                    tokio::time::timeout(REDIRECT_LINGER, self.socket.read(&mut buffer)).await;
                match read {
                    Ok(Ok(length)) if length > 0 => continue,
                    _ => return Ok(()),
                }
            }
            let idle = matches!(self.role, Role::Idle);
            let read = if idle {
                tokio::time::timeout(IDLE_TIMEOUT, self.socket.read(&mut buffer))
                    .await
                    .map_err(|_| format!("nothing received for {IDLE_TIMEOUT:?}"))?
            } else {
                self.socket.read(&mut buffer).await
            };
            let length = read.map_err(|e| e.to_string())?;
            if length == 0 {
                return Ok(());
            }
            self.input(&buffer[..length]).await?;
        }
    }

    async fn input(&mut self, bytes: &[u8]) -> Result<(), String> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.guard.feed(bytes).map_err(|e| e.to_string())?;
        let session = &mut self.session;
        let results = std::panic::catch_unwind(AssertUnwindSafe(|| session.handle_input(bytes)))
            .map_err(|_| "malformed RTMP message (the parser refused it)".to_string())?
            .map_err(|e| format!("protocol error: {e:?}"))?;
        self.handle_results(results).await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        tokio::time::timeout(WRITE_TIMEOUT, self.socket.write_all(bytes))
            .await
            .map_err(|_| format!("write blocked for {WRITE_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())
    }

    async fn handle_results(&mut self, results: Vec<ServerSessionResult>) -> Result<(), String> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => self.write(&packet.bytes).await?,
                ServerSessionResult::RaisedEvent(event) => Box::pin(self.event(event)).await?,
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn accept(&mut self, request_id: u32) -> Result<Vec<ServerSessionResult>, String> {
        self.session
            .accept_request(request_id)
            .map_err(|e| format!("accept: {e:?}"))
    }

    /// Refuses a request; the connection stays open (a client may try another name, and
    /// closing at once could reset the connection before the client reads the answer).
    async fn reject(
        &mut self,
        request_id: u32,
        code: &str,
        description: &str,
    ) -> Result<(), String> {
        tracing::info!(%code, %description, "rtmp request refused");
        let results = self
            .session
            .reject_request(request_id, code, description)
            .map_err(|e| format!("reject: {e:?}"))?;
        self.handle_results(results).await
    }

    async fn event(&mut self, event: ServerSessionEvent) -> Result<(), String> {
        match event {
            ServerSessionEvent::ConnectionRequested { request_id, .. } => {
                let results = self.accept(request_id)?;
                self.handle_results(results).await
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => {
                self.start_publishing(request_id, stream_name(&app_name, &stream_key))
                    .await
            }
            ServerSessionEvent::PlayStreamRequested {
                request_id,
                app_name,
                stream_key,
                stream_id,
                ..
            } => {
                self.start_playing(request_id, &app_name, &stream_key, stream_id)
                    .await
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => self.published(data, timestamp, true).await,
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => self.published(data, timestamp, false).await,
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                if let Role::Publishing {
                    metadata_tracks, ..
                } = &mut self.role
                {
                    *metadata_tracks = Tracks {
                        video: metadata.video_codec_id.is_some(),
                        audio: metadata.audio_codec_id.is_some(),
                    };
                }
                self.declare_tracks()
            }
            ServerSessionEvent::PublishStreamFinished { .. }
            | ServerSessionEvent::PlayStreamFinished { .. } => {
                self.leave().await;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    async fn start_publishing(&mut self, request_id: u32, name: String) -> Result<(), String> {
        if let Err(why) = crate::media::name::check(&name) {
            tracing::info!(stream = %crate::media::name::quoted(&name), %why, "rtmp publish refused");
            return self
                .reject(request_id, "NetStream.Publish.BadName", &why.to_string())
                .await;
        }
        if !matches!(self.role, Role::Idle) {
            return self
                .reject(
                    request_id,
                    "NetStream.Publish.BadName",
                    "this connection is busy",
                )
                .await;
        }
        let mut dynamic = false;
        let mut attached = self.context.directory.attach_publisher(&name);
        if attached.as_ref().err() == Some(&AttachError::NoSuchStream)
            && let Some(template) = self.template_for(&name)
        {
            self.start_template_stream(&name, &template).await;
            dynamic = true;
            attached = self.wait_for_publish_point(&name).await;
        }
        let publisher = match attached {
            Ok(publisher) => publisher,
            Err(AttachError::Busy) => {
                return self
                    .reject(
                        request_id,
                        "NetStream.Publish.BadName",
                        "another publisher holds this stream",
                    )
                    .await;
            }
            Err(AttachError::NoSuchStream) => {
                let description = format!(
                    "no stream `{name}` accepts publishing (input publish:// or a template prefix)"
                );
                return self
                    .reject(request_id, "NetStream.Publish.BadName", &description)
                    .await;
            }
        };
        tracing::info!(stream = %name, "rtmp publisher attached");
        self.role = Role::Publishing {
            name,
            publisher,
            depacketizer: Depacketizer::new(),
            metadata_tracks: Tracks::default(),
            declared: Tracks::default(),
            dynamic,
        };
        let results = self.accept(request_id)?;
        self.handle_results(results).await
    }

    fn template_for(&self, name: &str) -> Option<Template> {
        self.context
            .templates
            .iter()
            .find(|t| {
                t.prefixes
                    .iter()
                    .any(|p| p.is_empty() || name.starts_with(&format!("{p}/")))
            })
            .cloned()
    }

    /// Starts a stream that is not in the config (a template's published stream, a
    /// relay) as a temporary child of `node/streams`; `Err` says why it did not start.
    async fn start_ephemeral_stream(
        &self,
        name: &str,
        input: &str,
        segment_duration_ms: u64,
        segment_count: usize,
        relay: bool,
    ) -> Result<(), String> {
        let supervisor = supervisor_at(&self.context.node, &ActorPath::root().child("streams"))
            .ok_or_else(|| "the streams supervisor is not running".to_string())?;
        let plan = StreamPlan {
            name: name.to_string(),
            ondemand: false,
            inputs: vec![InputPlan {
                url: input.to_string(),
                source_timeout_ms: None,
                priority: None,
            }],
            cluster_ingest: false,
            capture_at: None,
            source_timeout_ms: crate::defaults::SOURCE_TIMEOUT_MS,
            segment_duration_ms,
            segment_count,
            clients_timeout_ms: None,
            retry_limit: None,
            ephemeral: true,
            relay,
        };
        let actor = StreamActor {
            media: self.context.media.clone(),
        };
        let spec = worker_child(name, actor, move || plan.clone()).restart(Restart::Temporary);
        match ractor::call!(supervisor, SupervisorMsg::StartChild, spec) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(error) => Err(format!("streams supervisor unreachable: {error}")),
        }
    }

    async fn start_template_stream(&self, name: &str, template: &Template) {
        let options = &template.options;
        let segment_duration_ms = options
            .segment_duration
            .map_or(crate::defaults::SEGMENT_DURATION_MS, |d| d.millis);
        let segment_count = options
            .segment_count
            .map_or(crate::defaults::SEGMENT_COUNT, |c| c as usize);
        match self
            .start_ephemeral_stream(
                name,
                "publish://",
                segment_duration_ms,
                segment_count,
                false,
            )
            .await
        {
            Ok(()) => {
                tracing::info!(stream = %name, template = %template.name, "published stream started")
            }
            Err(error) => tracing::warn!(stream = %name, %error, "published stream not started"),
        }
    }

    async fn wait_for_publish_point(&self, name: &str) -> Result<Publisher, AttachError> {
        let deadline = self.context.node.runtime.now() + TEMPLATE_START_TIMEOUT;
        loop {
            match self.context.directory.attach_publisher(name) {
                Err(AttachError::NoSuchStream) if self.context.node.runtime.now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                other => return other,
            }
        }
    }

    async fn published(
        &mut self,
        data: Bytes,
        timestamp: RtmpTimestamp,
        video: bool,
    ) -> Result<(), String> {
        let Role::Publishing {
            name, depacketizer, ..
        } = &mut self.role
        else {
            return Ok(());
        };
        let inbound = if video {
            depacketizer.video(&data, timestamp.value)
        } else {
            depacketizer.audio(&data, timestamp.value)
        }
        .map_err(|e| format!("publisher of {name}: {e}"))?;
        self.declare_tracks()?;
        let Role::Publishing {
            name, publisher, ..
        } = &mut self.role
        else {
            return Ok(());
        };
        if let Inbound::Frame(frame) = inbound
            && publisher.sender.try_send(Published::Frame(frame)).is_err()
        {
            if publisher.sender.is_closed() {
                return Err(format!("stream {name} stopped taking frames"));
            }
            tracing::warn!(stream = %name, "publisher outruns its stream; frame dropped");
        }
        Ok(())
    }

    /// Tells the stream which tracks the publisher declared (metadata and sequence
    /// headers), when that changed: its first segment waits for each of them.
    fn declare_tracks(&mut self) -> Result<(), String> {
        let Role::Publishing {
            name,
            publisher,
            depacketizer,
            metadata_tracks,
            declared,
            ..
        } = &mut self.role
        else {
            return Ok(());
        };
        let now = crate::media::tracks::union(*metadata_tracks, depacketizer.declared_tracks());
        if now == *declared {
            return Ok(());
        }
        match publisher.sender.try_send(Published::Tracks(now)) {
            Ok(()) => *declared = now,
            // A full queue: declared again with the next tag.
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                return Err(format!("stream {name} stopped taking frames"));
            }
        }
        Ok(())
    }

    async fn start_playing(
        &mut self,
        request_id: u32,
        app: &str,
        key: &str,
        stream_id: u32,
    ) -> Result<(), String> {
        let name = stream_name(app, key);
        if let Err(why) = crate::media::name::check(&name) {
            tracing::info!(stream = %crate::media::name::quoted(&name), %why, "rtmp play refused");
            return self
                .reject(
                    request_id,
                    "NetStream.Play.StreamNotFound",
                    &why.to_string(),
                )
                .await;
        }
        let mut found = self.context.directory.get(&name);
        let relayed = found.is_none();
        if relayed
            && self.context.redirect_players
            && !is_redirected(app, key)
            && let Some(tc_url) = self.redirect_target(&name, app)
        {
            return self.redirect(stream_id, &name, &tc_url, key).await;
        }
        if relayed {
            found = self.relay_from_peer(&name).await;
        }
        let Some(live) = found else {
            return self
                .reject(
                    request_id,
                    "NetStream.Play.StreamNotFound",
                    &format!("no stream `{name}`"),
                )
                .await;
        };
        let viewer = Viewer {
            stream: &name,
            protocol: Protocol::Rtmp,
            ip: self.socket.peer_addr().ok().map(|addr| addr.ip()),
            user_agent: "rtmp",
            query: key.split_once('?').map(|(_, query)| query),
        };
        let session = match self.context.sessions.admit(&viewer) {
            Ok(session) => session,
            Err(refused) => {
                let reason = refused.to_string();
                return self
                    .reject(request_id, "NetStream.Play.Failed", &reason)
                    .await;
            }
        };
        let (gop, audio, frames) = live.subscribe_frames();
        if gop.is_empty() {
            return self
                .reject(
                    request_id,
                    "NetStream.Play.StreamNotFound",
                    &format!("`{name}` has no media yet"),
                )
                .await;
        }
        let results = self.accept(request_id)?;
        self.handle_results(results).await?;
        let rendition = live.rendition();
        let mut metadata = StreamMetadata::new();
        metadata.video_width = rendition.width;
        metadata.video_height = rendition.height;
        metadata.video_codec_id = Some(7);
        metadata.audio_codec_id = audio.as_ref().map(|_| 10);
        let packet = self
            .session
            .send_metadata(stream_id, &metadata)
            .map_err(|e| format!("{e:?}"))?;
        self.write(&packet.bytes).await?;
        let (video_header, audio_header) = flv::sequence_headers(gop.first(), audio.as_ref());
        if let Some(header) = video_header {
            let packet = self
                .session
                .send_video_data(stream_id, header, RtmpTimestamp::new(0), false)
                .map_err(|e| format!("{e:?}"))?;
            self.write(&packet.bytes).await?;
        }
        if let Some(header) = audio_header {
            let packet = self
                .session
                .send_audio_data(stream_id, header, RtmpTimestamp::new(0), false)
                .map_err(|e| format!("{e:?}"))?;
            self.write(&packet.bytes).await?;
        }
        tracing::info!(stream = %name, "rtmp player attached");
        self.role = Role::Playing {
            stream_id,
            live,
            session,
            relayed,
            frames,
            base_dts: None,
            last_ms: [0, 0],
        };
        for frame in gop {
            self.play_frame(&frame).await?;
        }
        Ok(())
    }

    async fn play_frame(&mut self, frame: &Frame) -> Result<(), String> {
        let Role::Playing {
            stream_id,
            live,
            session,
            base_dts,
            last_ms,
            ..
        } = &mut self.role
        else {
            return Ok(());
        };
        let base = *base_dts.get_or_insert(frame.dts);
        let track = usize::from(!frame.codec.is_video());
        let mut packets = Vec::new();
        for (body, offset_ms) in flv::packetize(frame) {
            // Timestamps never go back per track: rml_rtmp sends wrapping deltas.
            let ms =
                (((frame.dts.saturating_sub(base)) / 90) as u32 + offset_ms).max(last_ms[track]);
            last_ms[track] = ms;
            let timestamp = RtmpTimestamp::new(ms);
            let length = body.len() as u64;
            let packet = if frame.codec.is_video() {
                self.session
                    .send_video_data(*stream_id, body, timestamp, !frame.keyframe)
            } else {
                self.session
                    .send_audio_data(*stream_id, body, timestamp, false)
            }
            .map_err(|e| format!("{e:?}"))?;
            live.counters
                .bytes_out
                .fetch_add(length, std::sync::atomic::Ordering::Relaxed);
            session
                .bytes
                .fetch_add(length, std::sync::atomic::Ordering::Relaxed);
            packets.push(packet.bytes);
        }
        for bytes in packets {
            self.write(&bytes).await?;
        }
        Ok(())
    }

    /// Ends the current role: a publisher's stream hears it left, a player is uncounted.
    async fn leave(&mut self) {
        match std::mem::replace(&mut self.role, Role::Idle) {
            Role::Idle | Role::Redirected => {}
            Role::Publishing {
                name,
                publisher,
                dynamic,
                ..
            } => {
                tracing::info!(stream = %name, "rtmp publisher left");
                if dynamic {
                    self.stop_template_stream(&name).await;
                } else {
                    let _ = publisher
                        .sender
                        .try_send(Published::End("the publisher left".into()));
                }
            }
            Role::Playing {
                session,
                live,
                relayed,
                ..
            } => {
                self.context.sessions.close(&session);
                // A relay is for this node's RTMP players: HTTP viewers of the copy are
                // sent to the owner once it stops, so they do not keep it running.
                let watched = self.context.sessions.count(&live.name, Protocol::Rtmp) > 0;
                if relayed && !watched {
                    self.stop_template_stream(&live.name).await;
                }
            }
        }
    }

    /// The tcUrl of an alive peer that has `name` and listens for RTMP, with the hop
    /// marker; `None` when there is none.
    fn redirect_target(&self, name: &str, app: &str) -> Option<String> {
        let mesh = self.context.mesh.as_ref()?;
        let now_ms = self.context.node.runtime.wall_clock_ms();
        let view = mesh.view().read().unwrap_or_else(|p| p.into_inner());
        let peer = view
            .locate(name, now_ms)
            .into_iter()
            .find(|peer| !peer.rtmp_url.is_empty())?;
        let app = bare_app(app);
        Some(format!(
            "{}/{app}?{}=1",
            peer.rtmp_url.trim_end_matches('/'),
            crate::http::media::HOP_PARAMETER
        ))
    }

    /// Sends the RTMP 302 for the play on `stream_id`, then lingers until the player
    /// leaves. The status goes out through its own chunk serializer (rml_rtmp's session
    /// has no call for a custom `onStatus`): a type-0 chunk needs no earlier header, and
    /// nothing else is sent on this connection afterwards.
    async fn redirect(
        &mut self,
        stream_id: u32,
        name: &str,
        tc_url: &str,
        key: &str,
    ) -> Result<(), String> {
        use rml_rtmp::chunk_io::ChunkSerializer;
        use rml_rtmp::messages::RtmpMessage;
        let message = RtmpMessage::Amf0Command {
            command_name: "onStatus".into(),
            transaction_id: 0.0,
            command_object: rml_rtmp::rml_amf0::Amf0Value::Null,
            additional_arguments: vec![redirect_status(tc_url, key)],
        };
        let payload = message
            .into_message_payload(RtmpTimestamp::new(0), stream_id)
            .map_err(|e| format!("redirect: {e:?}"))?;
        let mut serializer = ChunkSerializer::new();
        serializer
            .set_max_chunk_size(CHUNK_SIZE_BYTES, RtmpTimestamp::new(0))
            .map_err(|e| format!("redirect: {e:?}"))?;
        let packet = serializer
            .serialize(&payload, true, false)
            .map_err(|e| format!("redirect: {e:?}"))?;
        self.write(&packet.bytes).await?;
        tracing::info!(stream = %name, to = %tc_url, "rtmp player redirected to a peer");
        self.role = Role::Redirected;
        Ok(())
    }

    /// RTMP players cannot follow an HTTP redirect, so a stream that only a peer has is
    /// relayed: a temporary local stream pulls the peer's HTTP-MPEG-TS (marked as already
    /// redirected, so it is never sent on) and the player plays it here. `None` when no
    /// alive peer has it, or the relay produced no media in time.
    async fn relay_from_peer(&self, name: &str) -> Option<Arc<LiveStream>> {
        let mesh = self.context.mesh.as_ref()?;
        let peer_url = {
            let now_ms = self.context.node.runtime.wall_clock_ms();
            let view = mesh.view().read().unwrap_or_else(|p| p.into_inner());
            let peer = view.locate(name, now_ms).into_iter().next()?;
            let base = peer.viewer_base_url();
            let authority = base
                .split_once("://")
                .map_or(base.as_str(), |(_, rest)| rest)
                .to_string();
            format!(
                "tshttp://{authority}/{name}/mpegts?{}=1",
                crate::http::media::HOP_PARAMETER
            )
        };
        // The relay runs while its players watch: the last one to leave stops it.
        let started = self
            .start_ephemeral_stream(
                name,
                &peer_url,
                crate::defaults::SEGMENT_DURATION_MS,
                crate::defaults::SEGMENT_COUNT,
                true,
            )
            .await;
        tracing::info!(stream = %name, relay = %peer_url, ok = started.is_ok(), "relaying a peer's stream for an RTMP player");
        // Even when this start lost a race to another player's, the stream may appear.
        let deadline = self.context.node.runtime.now()
            + Duration::from_millis(crate::defaults::STREAM_START_WAIT_MS);
        loop {
            if let Some(live) = self.context.directory.get(name) {
                let remaining = deadline.saturating_duration_since(self.context.node.runtime.now());
                return live.wait_ready(remaining).await.then_some(live);
            }
            if self.context.node.runtime.now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop_template_stream(&self, name: &str) {
        let Some(supervisor) =
            supervisor_at(&self.context.node, &ActorPath::root().child("streams"))
        else {
            return;
        };
        let _ = ractor::call!(supervisor, SupervisorMsg::TerminateChild, name.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_join_app_and_key_like_flussonic() {
        assert_eq!(stream_name("static", "cam01"), "cam01");
        assert_eq!(stream_name("live", "news"), "live/news");
        assert_eq!(stream_name("chats/my", "chat-15"), "chats/my/chat-15");
        assert_eq!(stream_name("chats", "my/chat-15"), "chats/my/chat-15");
        assert_eq!(stream_name("live", "news?token=abc"), "live/news");
        assert_eq!(stream_name("", "solo"), "solo");
        assert_eq!(stream_name("static/live", "news"), "live/news");
        assert_eq!(stream_name("live?flotilla_hop=1", "news"), "live/news");
    }

    #[test]
    fn a_hop_marker_in_the_app_or_the_key_means_already_redirected() {
        assert!(is_redirected("live?flotilla_hop=1", "news"));
        assert!(is_redirected("live", "news?token=a&flotilla_hop=1"));
        assert!(!is_redirected("live", "news?token=a"));
        assert!(!is_redirected("flotilla_hop", "news"));
    }
}
