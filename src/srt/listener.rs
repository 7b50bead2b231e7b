//! `srt [IP:]PORT;`: encoders publish MPEG-TS to the node over SRT, as they would over
//! RTMP: the stream id names the stream (see `stream_id`), which takes publishers like
//! an RTMP publish (`input publish://`, or a template's prefix); `srt_passphrase` on the
//! stream or template makes its publishers encrypt with that passphrase.
//!
//! A caller is vetted during the handshake, before libsrt accepts it (`srt_listen_callback`
//! on libsrt's thread): a stream id that names no stream taking publishers is refused
//! with SRT's access-control reject code (1404 not found, 1400 bad request), and the
//! stream's passphrase is set on the connection then, so a caller with a wrong or no
//! passphrase fails the handshake (libsrt's "bad secret"): nothing is started for it.
//! An accepted connection gets a receiving thread; an async task attaches it to the
//! stream's publish point and turns its TS bytes into frames (`media::source`).
//!
//! Unsafe code here is the handshake hook libsrt calls (a C function reading the state
//! this module leaks for it); each block says what it relies on.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use super::ffi::{self, Socket, SrtError};
use super::stream_id::{publish_name, publish_query};
use super::{
    LISTENER_LATENCY, MAX_SRT_CONNECTIONS, PEER_IDLE_TIMEOUT, RECEIVE_QUEUE_MESSAGES, Received,
    receive_loop,
};
use crate::config::model::Template;
use crate::live::Live;
use crate::media::directory::{AttachError, Directory, Published};
use crate::media::program::Tracks;
use crate::media::source::TsFrames;
use crate::rtmp::server::RtmpContext;

/// Callers waiting in libsrt's accept queue.
const LISTEN_BACKLOG: i32 = 64;
/// Accepted connections handed from the accepting thread to the node, not yet
/// attached.
const ACCEPTED_QUEUE: usize = 64;

/// Which streams take SRT publishers and with which passphrase: from the config.
#[derive(Debug, Clone, Default)]
pub struct PublishRules {
    /// Stream name → passphrase, for streams with `srt_passphrase`.
    pub streams: Vec<(String, String)>,
    /// Template prefix → passphrase, for templates with `srt_passphrase`.
    pub templates: Vec<(String, String)>,
}

impl PublishRules {
    /// The streams and templates of `config` with an `srt_passphrase`.
    pub fn of(config: &crate::config::Config) -> PublishRules {
        let secret = |options: &crate::config::model::StreamOptions| {
            options.srt_passphrase.as_ref().map(|s| s.0.clone())
        };
        PublishRules {
            streams: config
                .streams
                .iter()
                .filter_map(|stream| Some((stream.name.clone(), secret(&stream.options)?)))
                .collect(),
            templates: config
                .templates
                .iter()
                .filter_map(|t| Some((t.prefixes.clone(), secret(&t.options)?)))
                .flat_map(|(prefixes, secret)| {
                    prefixes.into_iter().map(move |p| (p, secret.clone()))
                })
                .collect(),
        }
    }

    /// The passphrase publishers of `name` must use, if any.
    pub fn passphrase_for(&self, name: &str) -> Option<&str> {
        if let Some((_, passphrase)) = self.streams.iter().find(|(stream, _)| stream == name) {
            return Some(passphrase);
        }
        self.templates
            .iter()
            .find(|(prefix, _)| prefix.is_empty() || name.starts_with(&format!("{prefix}/")))
            .map(|(_, passphrase)| passphrase.as_str())
    }
}

/// What the handshake hook reads, on libsrt's thread.
struct HookState {
    directory: Directory,
    /// Both replaced by a reload.
    templates: Live<Vec<Template>>,
    rules: Live<PublishRules>,
}

impl HookState {
    /// Whether a caller with `stream_id` may go on, and the passphrase it must have.
    fn vet(&self, stream_id: &str) -> Result<Option<String>, c_int> {
        let name = publish_name(stream_id).map_err(|_| ffi::REJECT_BAD_REQUEST)?;
        let templated = self.templates.get().iter().any(|t| {
            t.prefixes
                .iter()
                .any(|p| p.is_empty() || name.starts_with(&format!("{p}/")))
        });
        if !self.directory.has_publish_point(&name) && !templated {
            return Err(ffi::REJECT_NOT_FOUND);
        }
        Ok(self.rules.get().passphrase_for(&name).map(str::to_string))
    }
}

/// libsrt's handshake hook: vets the caller's stream id and sets its passphrase.
///
/// # Safety
/// Called by libsrt with the `HookState` pointer given to `Socket::on_caller` (leaked,
/// so valid for the process) and a NUL-terminated stream id or null.
unsafe extern "C" fn vet_caller(
    opaque: *mut c_void,
    socket: ffi::RawSocket,
    _handshake_version: c_int,
    _peer: *const c_void,
    stream_id: *const c_char,
) -> c_int {
    // SAFETY: `opaque` is the leaked `HookState` (see `SrtListener::bind`).
    let state = unsafe { &*(opaque as *const HookState) };
    // SAFETY: libsrt passes null or a NUL-terminated string valid during the call.
    let stream_id = unsafe { ffi::hook_stream_id(stream_id) }.unwrap_or_default();
    match state.vet(&stream_id) {
        Ok(passphrase) => {
            if let Some(passphrase) = passphrase
                && ffi::set_option_bytes(socket, ffi::SRTO_PASSPHRASE, passphrase.as_bytes())
                    .is_err()
            {
                return -1;
            }
            0
        }
        Err(reason) => {
            tracing::info!(stream_id = %crate::media::name::quoted(&stream_id), reason, "SRT caller refused: its stream id names no stream taking publishers (1404) or is malformed (1400)");
            ffi::set_reject_reason(socket, reason);
            -1
        }
    }
}

/// A listening SRT socket; closed when dropped (its accepting thread then ends).
#[derive(Debug)]
pub struct SrtListener {
    socket: Arc<Socket>,
    pub address: SocketAddr,
}

/// An accepted caller, on its way to its stream.
struct Accepted {
    socket: Socket,
    peer: SocketAddr,
    name: String,
    /// The stream id's password and session key, as a publish query.
    query: Option<String>,
}

impl SrtListener {
    /// Binds and listens on `address` (libsrt's errors name the cause: a port in use).
    pub fn bind(
        address: SocketAddr,
        context: &RtmpContext,
        rules: Live<PublishRules>,
    ) -> Result<SrtListener, SrtError> {
        let socket = Socket::new()?;
        socket.set_i32(ffi::SRTO_PEERIDLETIMEO, ffi::millis(PEER_IDLE_TIMEOUT))?;
        socket.set_i32(ffi::SRTO_RCVLATENCY, ffi::millis(LISTENER_LATENCY))?;
        socket.bind(address)?;
        // One per listener, for the process's life: libsrt may call the hook from its
        // threads until the listener is closed, and a closed listener's last call may
        // race its closing; a few hundred bytes per `srt` directive is the price.
        let state: &'static HookState = Box::leak(Box::new(HookState {
            directory: context.directory.clone(),
            templates: context.templates.clone(),
            rules,
        }));
        // SAFETY: `state` lives for the process; `vet_caller` reads it as a `HookState`.
        unsafe {
            socket.on_caller(vet_caller, state as *const HookState as *mut c_void)?;
        }
        socket.listen(LISTEN_BACKLOG)?;
        Ok(SrtListener {
            socket: Arc::new(socket),
            address,
        })
    }

    /// Accepts callers until `shutdown` turns true, each attached to its stream.
    pub async fn serve(
        self,
        context: RtmpContext,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let (sender, mut accepted) = mpsc::channel::<Accepted>(ACCEPTED_QUEUE);
        let socket = self.socket.clone();
        let address = self.address;
        let spawned = std::thread::Builder::new()
            .name("srt-accept".into())
            .spawn(move || accept_loop(&socket, address, sender));
        if let Err(error) = spawned {
            tracing::error!(%address, %error, "no thread for the SRT listener");
            return;
        }
        let connections = Arc::new(AtomicUsize::new(0));
        loop {
            let caller = tokio::select! {
                caller = accepted.recv() => caller,
                _ = shutdown.wait_for(|stop| *stop) => None,
            };
            let Some(caller) = caller else {
                break;
            };
            if connections.load(Ordering::Relaxed) >= MAX_SRT_CONNECTIONS {
                tracing::warn!(peer = %caller.peer, stream = %caller.name, limit = MAX_SRT_CONNECTIONS, "SRT publisher refused: too many SRT connections");
                continue;
            }
            connections.fetch_add(1, Ordering::Relaxed);
            let context = context.clone();
            let connections = connections.clone();
            context
                .node
                .runtime
                .clone()
                .spawn("srt-publisher", async move {
                    publish(&context, caller).await;
                    connections.fetch_sub(1, Ordering::Relaxed);
                });
        }
        // Closing the listener ends the accepting thread's wait.
        self.socket.close_now();
    }
}

fn accept_loop(listener: &Socket, address: SocketAddr, sender: mpsc::Sender<Accepted>) {
    loop {
        let (socket, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::info!(%address, %error, "SRT listener stopped accepting");
                return;
            }
        };
        // The hook vetted the stream id; read it again from the accepted socket.
        let Ok(stream_id) = socket.stream_id() else {
            continue;
        };
        let Ok(name) = publish_name(&stream_id) else {
            continue;
        };
        let query = publish_query(&stream_id);
        if sender
            .blocking_send(Accepted {
                socket,
                peer,
                name,
                query,
            })
            .is_err()
        {
            return;
        }
    }
}

/// Attaches an accepted caller to its stream and feeds it until either ends.
async fn publish(context: &RtmpContext, caller: Accepted) {
    let Accepted {
        socket,
        peer,
        name,
        query,
    } = caller;
    // The stream's password and publish policy, as for RTMP publishers (the passphrase
    // was the handshake's).
    let gate = context.sessions.gate().clone();
    if let Err(denied) = gate
        .authorize_publish(&name, "srt", Some(peer.ip()), query.as_deref())
        .await
    {
        tracing::info!(stream = %name, %peer, reason = %denied.log_reason(), "SRT publisher refused");
        return;
    }
    let (attached, dynamic) = context.attach_publisher(&name).await;
    let publisher = match attached {
        Ok(publisher) => publisher,
        Err(refused) => {
            let why = match refused {
                AttachError::Busy => "another publisher holds this stream",
                AttachError::NoSuchStream => "no stream accepts publishing under this name",
            };
            tracing::info!(stream = %name, %peer, why, "SRT publisher refused");
            return;
        }
    };
    let (sender, mut received) = mpsc::channel(RECEIVE_QUEUE_MESSAGES);
    let socket = Arc::new(socket);
    let receiving = socket.clone();
    let spawned = std::thread::Builder::new()
        .name("srt-receive".into())
        .spawn(move || receive_loop(&receiving, sender));
    if let Err(error) = spawned {
        tracing::error!(stream = %name, %error, "no thread for the SRT publisher");
        return;
    }
    tracing::info!(stream = %name, %peer, "SRT publisher attached");
    let mut frames = TsFrames::new(0);
    let mut declared = Tracks::EMPTY;
    let reason = loop {
        match received.recv().await {
            Some(Received::Bytes(bytes)) => {
                frames.push(&bytes);
                let tracks = frames.tracks();
                if tracks != declared
                    && publisher.sender.try_send(Published::Tracks(tracks)).is_ok()
                {
                    declared = tracks;
                }
                while let Some((frame, _)) = frames.pop() {
                    if publisher.sender.try_send(Published::Frame(frame)).is_err() {
                        if publisher.sender.is_closed() {
                            break;
                        }
                        tracing::warn!(stream = %name, "SRT publisher outruns its stream; frame dropped");
                    }
                }
                if publisher.sender.is_closed() {
                    break "the stream stopped".to_string();
                }
            }
            Some(Received::Ended(why)) => break why,
            None => break "the connection ended".to_string(),
        }
    };
    // Ends the receiving thread if the connection is still up (the stream stopped).
    socket.close_now();
    tracing::info!(stream = %name, %peer, %reason, "SRT publisher left");
    let end = format!("the SRT publisher left: {reason}");
    context
        .release_publisher(&name, publisher, dynamic, end)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streams_passphrase_wins_over_its_templates() {
        let rules = PublishRules {
            streams: vec![("live/main".into(), "stream-secret".into())],
            templates: vec![("live".into(), "template-secret".into())],
        };
        assert_eq!(rules.passphrase_for("live/main"), Some("stream-secret"));
        assert_eq!(rules.passphrase_for("live/other"), Some("template-secret"));
        assert_eq!(rules.passphrase_for("news"), None);
    }
}
