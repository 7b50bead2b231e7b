//! The RTMP listener: publishing (ffmpeg, OBS) and playing, on rml_rtmp's sans-IO sessions.
//!
//! Per connection: a trusted proxy's PROXY header (HAProxy `send-proxy`) must arrive within
//! [`HANDSHAKE_TIMEOUT`] and names the client; an `rtmps` connection's TLS handshake must
//! finish within [`crate::tls::TLS_HANDSHAKE_TIMEOUT`]; the RTMP handshake must finish
//! within [`HANDSHAKE_TIMEOUT`]; every inbound
//! byte then passes the [`ChunkGuard`] limits before rml_rtmp parses it (rml_rtmp also runs
//! under `catch_unwind`: a known malformed `@setDataFrame` panics inside it).
//!
//! This module is the connection: its loop, its role and how events are dispatched.
//! The roles live beside it: `publish` (publishers), `play` (players), `ephemeral`
//! (streams a connection starts: template streams, relays), `redirect` (the RTMP 302),
//! `names` (app + key → stream name).

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use flotilla_cluster::stream::StreamMedia;
use flotilla_otp::node::NodeContext;
use rml_rtmp::handshake::PeerType;
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, broadcast, watch};

use super::error::RtmpError;
use super::flv::Depacketizer;
use super::guard::ChunkGuard;
use super::names::stream_name;
use crate::accept::AcceptFailures;
use crate::config::model::Template;
use crate::error::Classified;
use crate::media::directory::{Directory, Publisher};
use crate::media::frame::Codec;
use crate::media::live::LiveStream;
use crate::media::program::Tracks;
use crate::sessions::{Session, SessionTable};

/// Time a client has to complete the RTMP handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A connection that neither publishes, plays nor sends anything for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A write to a player that takes longer than this drops the player.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once by one listener.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Time a template stream gets to open its publish point after being started.
pub(super) const TEMPLATE_START_TIMEOUT: Duration = Duration::from_secs(5);
/// Size of one socket read of a publisher (its media arrives in large reads).
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Size of one socket read before a connection publishes: commands, and a player's
/// acknowledgements for the rest of its life. Thousands of players each holding a
/// publisher's buffer would cost tens of KiB of memory apiece for nothing.
const CONTROL_READ_BUFFER_BYTES: usize = 1024;
/// Outbound chunk size this server announces (rml_rtmp sends Set Chunk Size at start).
pub(super) const CHUNK_SIZE_BYTES: u32 = 4096;
/// After a redirect the connection waits this long for the player to leave (closing at
/// once could reset the connection before the player reads the redirect).
pub(super) const REDIRECT_LINGER: Duration = Duration::from_secs(5);

/// What every RTMP connection of a node shares.
#[derive(Clone)]
pub struct RtmpContext {
    pub node: NodeContext,
    pub directory: Directory,
    pub media: Arc<dyn StreamMedia>,
    /// Templates publishers may use: replaced by a reload.
    pub templates: crate::live::Live<Vec<Template>>,
    pub sessions: SessionTable,
    /// The cluster mesh: a stream another node has is relayed from it.
    pub mesh: Option<crate::mesh::service::MeshService>,
    /// Players of a peer's stream are redirected to it rather than relayed
    /// (`rtmp_redirect`).
    pub redirect_players: bool,
    /// What the cluster_ingest coordinator decided: a superseded copy is never played.
    pub ingest: flotilla_cluster::ingest::board::IngestBoard,
    /// Relays other nodes' streams for this node's players (with a mesh).
    pub relays: Option<crate::relay::start::RelayStarter>,
}

/// The byte stream of one RTMP connection: a TCP socket, or TLS over one (`rtmps`).
pub trait RtmpIo: AsyncRead + AsyncWrite + Unpin + Send + Sync {
    /// The TCP connection underneath (its socket options).
    fn tcp(&self) -> &TcpStream;
}

impl RtmpIo for crate::http::rewind::Rewound<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.inner()
    }
}

impl RtmpIo for tokio_rustls::server::TlsStream<crate::http::rewind::Rewound<TcpStream>> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0.inner()
    }
}

/// How the connections of one RTMP listener arrive.
#[derive(Clone, Default)]
pub struct RtmpTransport {
    /// TLS (`rtmps`): every connection starts with a handshake.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Peers whose connections may start with a PROXY header (`trusted_proxies`).
    pub proxies: Arc<[crate::config::values::Cidr]>,
    /// The node's open-connection counters (this listener counts in `rtmp`).
    pub open: Arc<crate::stats::OpenConnections>,
}

impl RtmpTransport {
    /// Reads a trusted proxy's PROXY header and runs the TLS handshake: the stream the
    /// RTMP handshake runs on, and the client's address.
    async fn open(
        &self,
        mut socket: TcpStream,
        peer: SocketAddr,
    ) -> Result<(Box<dyn RtmpIo>, SocketAddr), RtmpError> {
        let mut remote = peer;
        let mut replay = bytes::Bytes::new();
        let canonical = peer.ip().to_canonical();
        if self.proxies.iter().any(|net| net.0.contains(&canonical)) {
            let (client, rest) =
                crate::proxy_protocol::read_header(&mut socket, HANDSHAKE_TIMEOUT).await?;
            remote = client.unwrap_or(peer);
            replay = rest;
        }
        let stream = crate::http::rewind::Rewound::new(replay, socket);
        match &self.tls {
            None => Ok((Box::new(stream), remote)),
            Some(config) => {
                let stream = crate::tls::handshake(config.clone(), stream).await?;
                Ok((Box::new(stream), remote))
            }
        }
    }
}

/// Serves RTMP on `listener` until `shutdown` turns true.
pub async fn serve(
    context: RtmpContext,
    listener: TcpListener,
    transport: RtmpTransport,
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
        let transport = transport.clone();
        let counted = crate::stats::OpenConnection::open(&transport.open, |c| &c.rtmp);
        runtime.spawn("rtmp-connection", async move {
            let _counted = counted;
            // Boxed for the same reason as the handshake (a PROXY header, TLS).
            let opened = Box::pin(transport.open(socket, remote)).await;
            let result = match opened {
                Ok((stream, client)) => Connection::run(context, stream, client).await,
                Err(reason) => Err(reason),
            };
            if let Err(reason) = result {
                tracing::info!(%remote, %reason, fault = %reason.fault(), "rtmp connection closed");
            }
            drop(permit);
        });
    }
}

/// What woke a playing connection.
enum Next {
    Read(std::io::Result<usize>),
    Frame(Result<super::shared::SharedFrame, broadcast::error::RecvError>),
}

/// What a connection is doing.
pub(super) enum Role {
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
        frames: broadcast::Receiver<super::shared::SharedFrame>,
        /// The tracks the player gets (see `carriage`).
        carried: super::carriage::RtmpTracks,
        base_dts: Option<u64>,
        last_ms: [u32; 2],
    },
}

pub(super) struct Connection {
    pub(super) context: RtmpContext,
    pub(super) socket: Box<dyn RtmpIo>,
    /// The client: the socket's peer, or the address a trusted proxy's PROXY header named.
    pub(super) remote: SocketAddr,
    pub(super) session: ServerSession,
    pub(super) guard: ChunkGuard,
    pub(super) role: Role,
}

impl Connection {
    pub(super) async fn run(
        context: RtmpContext,
        mut socket: Box<dyn RtmpIo>,
        remote: SocketAddr,
    ) -> Result<(), RtmpError> {
        // Boxed: the handshake's buffers (~6 KiB) are needed only until it ends, and a
        // task keeps room for its largest await for as long as it lives (a player: hours).
        let remaining = Box::pin(tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            super::handshake::run(&mut socket, PeerType::Server),
        ))
        .await
        .map_err(|_| RtmpError::HandshakeTimeout)??;
        let mut config = ServerSessionConfig::new();
        config.chunk_size = CHUNK_SIZE_BYTES;
        let (session, initial) = ServerSession::new(config).map_err(RtmpError::Session)?;
        let mut connection = Connection {
            context,
            socket,
            remote,
            session,
            guard: ChunkGuard::default(),
            role: Role::Idle,
        };
        connection.handle_results(initial).await?;
        let result = connection.serve(remaining, remote).await;
        connection.leave().await;
        result
    }

    pub(super) async fn serve(
        &mut self,
        first: Vec<u8>,
        remote: SocketAddr,
    ) -> Result<(), RtmpError> {
        self.input(&first).await?;
        let mut buffer = vec![0u8; CONTROL_READ_BUFFER_BYTES];
        loop {
            if let Role::Playing { frames, .. } = &mut self.role {
                let next = tokio::select! {
                    read = self.socket.read(&mut buffer) => Next::Read(read),
                    frame = frames.recv() => Next::Frame(frame),
                };
                match next {
                    Next::Read(read) => {
                        let length = read.map_err(RtmpError::Read)?;
                        if length == 0 {
                            return Ok(());
                        }
                        self.input(&buffer[..length]).await?;
                    }
                    Next::Frame(Ok(frame)) => self.play_frame(&frame).await?,
                    Next::Frame(Err(broadcast::error::RecvError::Lagged(missed))) => {
                        return Err(RtmpError::Lagged { remote, missed });
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
            if matches!(self.role, Role::Publishing { .. }) && buffer.len() < READ_BUFFER_BYTES {
                buffer.resize(READ_BUFFER_BYTES, 0);
            }
            let idle = matches!(self.role, Role::Idle);
            let read = if idle {
                tokio::time::timeout(IDLE_TIMEOUT, self.socket.read(&mut buffer))
                    .await
                    .map_err(|_| RtmpError::Idle)?
            } else {
                self.socket.read(&mut buffer).await
            };
            let length = read.map_err(RtmpError::Read)?;
            if length == 0 {
                return Ok(());
            }
            self.input(&buffer[..length]).await?;
        }
    }

    pub(super) async fn input(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.guard.feed(bytes)?;
        let session = &mut self.session;
        let results = std::panic::catch_unwind(AssertUnwindSafe(|| session.handle_input(bytes)))
            .map_err(|_| RtmpError::Malformed)?
            .map_err(RtmpError::Protocol)?;
        self.handle_results(results).await
    }

    /// Writes a player's own header and the stream's shared chunks, in one vectored
    /// write when the socket takes it all.
    pub(super) async fn write_message(
        &mut self,
        header: &[u8],
        chunks: &[u8],
    ) -> Result<(), RtmpError> {
        let socket = &mut self.socket;
        let written = async {
            let mut slices = [std::io::IoSlice::new(header), std::io::IoSlice::new(chunks)];
            let mut remaining = &mut slices[..];
            while !remaining.is_empty() {
                let written = socket.write_vectored(remaining).await?;
                if written == 0 {
                    return Err(std::io::ErrorKind::WriteZero.into());
                }
                std::io::IoSlice::advance_slices(&mut remaining, written);
            }
            Ok(())
        };
        tokio::time::timeout(WRITE_TIMEOUT, written)
            .await
            .map_err(|_| RtmpError::WriteBlocked)?
            .map_err(RtmpError::Write)
    }

    pub(super) async fn write(&mut self, bytes: &[u8]) -> Result<(), RtmpError> {
        tokio::time::timeout(WRITE_TIMEOUT, self.socket.write_all(bytes))
            .await
            .map_err(|_| RtmpError::WriteBlocked)?
            .map_err(RtmpError::Write)
    }

    pub(super) async fn handle_results(
        &mut self,
        results: Vec<ServerSessionResult>,
    ) -> Result<(), RtmpError> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => self.write(&packet.bytes).await?,
                ServerSessionResult::RaisedEvent(event) => Box::pin(self.event(event)).await?,
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    pub(super) fn accept(
        &mut self,
        request_id: u32,
    ) -> Result<Vec<ServerSessionResult>, RtmpError> {
        self.session
            .accept_request(request_id)
            .map_err(RtmpError::Accept)
    }

    /// Refuses a request; the connection stays open (a client may try another name, and
    /// closing at once could reset the connection before the client reads the answer).
    pub(super) async fn reject(
        &mut self,
        request_id: u32,
        code: &str,
        description: &str,
    ) -> Result<(), RtmpError> {
        tracing::info!(%code, %description, "rtmp request refused");
        let results = self
            .session
            .reject_request(request_id, code, description)
            .map_err(RtmpError::Reject)?;
        self.handle_results(results).await
    }

    pub(super) async fn event(&mut self, event: ServerSessionEvent) -> Result<(), RtmpError> {
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
                // The query (a password, a token) is on the key, or on the app.
                let query = [&stream_key, &app_name]
                    .into_iter()
                    .find_map(|part| part.split_once('?').map(|(_, query)| query.to_string()));
                self.start_publishing(
                    request_id,
                    stream_name(&app_name, &stream_key),
                    query.as_deref(),
                )
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
                    // RTMP ingest carries H.264 and AAC (other codecs are refused
                    // with their first tag).
                    *metadata_tracks = Tracks::simple(
                        metadata.video_codec_id.map(|_| Codec::H264),
                        metadata.audio_codec_id.map(|_| Codec::Aac),
                    );
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

    /// Ends the current role: a publisher's stream hears it left, a player is uncounted.
    pub(super) async fn leave(&mut self) {
        match std::mem::replace(&mut self.role, Role::Idle) {
            Role::Idle | Role::Redirected => {}
            Role::Publishing {
                name,
                publisher,
                dynamic,
                ..
            } => {
                tracing::info!(stream = %name, "rtmp publisher left");
                self.context
                    .release_publisher(&name, publisher, dynamic, "the publisher left".into())
                    .await;
            }
            Role::Playing { session, .. } => {
                // A relayed copy ends by itself `clients_timeout` after its last viewer
                // of any protocol (`crate::relay`).
                self.context.sessions.close(&session);
            }
        }
    }
}
