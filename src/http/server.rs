//! The accept loop of one HTTP listener, with graceful shutdown.
//!
//! Limits are explicit because every byte here comes from the internet, and every state
//! a connection can be in has a deadline (docs/media.md lists them):
//! - on an `https` listener the TLS handshake must finish within
//!   [`crate::tls::TLS_HANDSHAKE_TIMEOUT`]; a trusted proxy's PROXY header must arrive
//!   within [`HttpLimits::first_bytes_timeout`] (`super::transport`);
//! - the protocol must show within [`HttpLimits::first_bytes_timeout`], and an HTTP/2
//!   client's SETTINGS follow its preface within [`HttpLimits::http2_handshake_timeout`]
//!   (`super::opening`: hyper has no timer before the first byte, nor for HTTP/2's);
//! - the whole request head must arrive within [`HttpLimits::header_read_timeout`]
//!   (a total deadline, not per read, so a slowloris client cannot trickle forever),
//!   and an idle HTTP/1 keep-alive connection is closed by the same deadline;
//! - an HTTP/2 connection without a new request for [`HttpLimits::http2_idle_timeout`] is
//!   told to go away (requests in flight finish), and one whose peer stops answering
//!   pings is closed ([`HttpLimits::http2_keep_alive_interval`]);
//! - the head may not exceed [`HttpLimits::max_header_bytes`];
//! - at most [`HttpLimits::max_connections`] connections are served at once; the next ones
//!   wait in the kernel's backlog instead of exhausting memory;
//! - out of file descriptors, the listener closes the connection that has waited longest
//!   without a request (`super::shed`) and accepts again, so a node held by idle sockets
//!   still answers new clients; `accept` failures pause and warn at most once per
//!   interval (`crate::accept`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use flotilla_otp::rt::{CoreWorkers, Runtime};
use futures_util::future::Either;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tower::ServiceExt;

use super::balancer_lane::{LaneEnd, serve_lane};
use super::fast_path::{Decided, FastPath};
use super::opening::{Opening, Protocol, open};
use super::rewind::Rewound;
use super::shed::{Openings, Shed, Waiting};
use super::transport::{ArrivedOverTls, Transport, connection_client, redirect_to_https};
use crate::accept::{AcceptFailures, out_of_descriptors};
use bytes::Bytes;

/// Bounds of one HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Time from accept until the client's first bytes show its protocol (up to the 24
    /// bytes of the HTTP/2 preface; one byte tells HTTP/1).
    pub first_bytes_timeout: Duration,
    /// Time an HTTP/2 client has, after its preface, to send its SETTINGS frame.
    pub http2_handshake_timeout: Duration,
    /// An HTTP/2 connection without a new request for this long is sent GOAWAY (its
    /// requests in flight still finish).
    pub http2_idle_timeout: Duration,
    /// An HTTP/2 connection silent for this long is pinged...
    pub http2_keep_alive_interval: Duration,
    /// ...and closed when the ping is not answered within this.
    pub http2_keep_alive_timeout: Duration,
    /// Total time a client has to send its request head (slowloris defence).
    pub header_read_timeout: Duration,
    /// Largest request head accepted (hyper's read buffer; larger heads get 431).
    pub max_header_bytes: usize,
    /// Connections served at once by one listener.
    pub max_connections: usize,
    /// How long open connections get to finish after shutdown begins.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            // A client connects to send a request: the same 10 s as for a whole head.
            first_bytes_timeout: Duration::from_secs(10),
            // The SETTINGS frame follows the preface in the same write of every client.
            http2_handshake_timeout: Duration::from_secs(10),
            // HTTP/1 keep-alive closes after 10 s idle (the header deadline); one HTTP/2
            // connection carries all of a player's requests, so it gets twice that.
            http2_idle_timeout: Duration::from_secs(20),
            // A peer gone without closing (a dropped mobile link) under a long response
            // is found within 30 s.
            http2_keep_alive_interval: Duration::from_secs(20),
            http2_keep_alive_timeout: Duration::from_secs(10),
            // Players send their heads at once; 10 s covers a congested mobile link.
            header_read_timeout: Duration::from_secs(10),
            // Real heads are < 4 KiB; 64 KiB leaves room for long tokens and cookies.
            max_header_bytes: 64 * 1024,
            // ~10 KiB of buffers per idle connection: 20,000 is ~200 MiB at worst.
            max_connections: 20_000,
            // Long enough for a segment download in flight, short enough for a restart.
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// After shedding a connection, how long the listener waits before it accepts again:
/// the shed connection's socket is closed by its own worker thread, a moment later.
pub const SHED_SETTLE_MS: u64 = 5;

/// What one listener serves, and how its connections arrive.
#[derive(Clone)]
pub struct Listening {
    pub router: Router,
    /// Answers balancer redirects before the router (on nodes with balancers).
    pub fast: Option<FastPath>,
    pub transport: Transport,
    pub limits: HttpLimits,
    /// The node's open-connection counters (this listener counts in `http`).
    pub open: Arc<crate::stats::OpenConnections>,
}

/// Serves `listening` on `listener` until `shutdown` turns true, then drains connections
/// for at most `limits.shutdown_grace`. Each accepted connection is served on one of
/// `connections` until it closes.
pub async fn serve(
    runtime: Runtime,
    connections: Arc<CoreWorkers>,
    listener: TcpListener,
    listening: Listening,
    mut shutdown: watch::Receiver<bool>,
) {
    let Listening {
        router,
        fast,
        transport,
        limits,
        open,
    } = listening;
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let openings = Openings::default();
    let failures = AcceptFailures::new(runtime, "http accept failed");
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keep_alive_interval)
        .keep_alive_timeout(limits.http2_keep_alive_timeout)
        .max_header_list_size(limits.max_header_bytes as u32);
    loop {
        let permit = tokio::select! {
            biased;
            _ = stop_requested(&mut shutdown) => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, remote) = tokio::select! {
            biased;
            _ = stop_requested(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) if out_of_descriptors(&error) && openings.shed_oldest() => {
                    tracing::debug!(%error, "shed the oldest connection without a request");
                    tokio::time::sleep(Duration::from_millis(SHED_SETTLE_MS)).await;
                    continue;
                }
                Err(error) => {
                    failures.failed(&error).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        // The socket moves to its worker's own I/O driver: left registered with the
        // listener's runtime, every readiness event would cross threads to reach it.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(%remote, %error, "accepted connection unusable");
                continue;
            }
        };
        let connection = Connection {
            remote,
            router: router.clone(),
            fast: fast.clone(),
            transport: transport.clone(),
            limits,
            stop: shutdown.clone(),
            waiting: openings.register(),
        };
        let builder = builder.clone();
        let counted = crate::stats::OpenConnection::open(&open, |c| &c.http);
        connections.spawn("http-connection", async move {
            let _counted = counted;
            connection.serve(stream, builder).await;
            // Held until the connection ends: the shutdown drain waits for it.
            drop(permit);
        });
    }
    // Every connection saw the stop (an idle one closes, one with requests in flight is
    // told to finish them and go); the drain ends when all their permits are back.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "http connections still open after the shutdown grace period");
    }
}

/// One accepted connection and what it is served with.
struct Connection {
    remote: SocketAddr,
    router: Router,
    fast: Option<FastPath>,
    transport: Transport,
    limits: HttpLimits,
    stop: watch::Receiver<bool>,
    /// Its entry among the connections without a request, and the shedding signal.
    waiting: (Waiting, Shed),
}

/// What the first request a connection makes takes along: the end of its wait (it
/// leaves the shedding table), and the lane's decision to serve it here, if any.
struct FirstRequest {
    _waiting: Waiting,
    decided: Option<Decided>,
}

impl Connection {
    /// The transport of the connection (PROXY header, TLS), then HTTP over it.
    async fn serve(mut self, stream: std::net::TcpStream, builder: Builder<TokioExecutor>) {
        let mut stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(remote = %self.remote, %error, "cannot register the connection");
                return;
            }
        };
        let mut replay = Bytes::new();
        if self.transport.proxy_may_speak(self.remote.ip()) {
            let header = tokio::select! {
                header = crate::proxy_protocol::read_header(&mut stream, self.limits.first_bytes_timeout) => header,
                () = self.waiting.1.shed() => return,
            };
            match header {
                Ok((client, rest)) => {
                    self.remote = connection_client(self.remote, client);
                    replay = rest;
                }
                Err(error) => {
                    tracing::debug!(proxy = %self.remote, %error, "bad PROXY header: connection closed");
                    return;
                }
            }
        }
        let Some(tls) = self.transport.tls.clone() else {
            let stream = Rewound::new(replay, super::sendfile::SendfileTcp::new(stream));
            return self.serve_http(stream, builder, None).await;
        };
        let stream = Rewound::new(replay, stream);
        let port = stream.inner().local_addr().map_or(0, |addr| addr.port());
        // The TLS handshake and the TLS connection are boxed: a task keeps room for its
        // largest await for as long as it lives, and plain connections (most viewers)
        // would otherwise carry ~6 KiB for TLS they never use.
        let handshake = tokio::select! {
            handshake = Box::pin(crate::tls::handshake(tls, stream)) => handshake,
            () = self.waiting.1.shed() => return,
        };
        match handshake {
            Ok(stream) => {
                Box::pin(self.serve_http(stream, builder, Some(ArrivedOverTls { port }))).await;
            }
            Err(error) => {
                tracing::debug!(remote = %self.remote, %error, "tls connection closed");
            }
        }
    }

    /// HTTP/1 or HTTP/2 on `stream` until it closes.
    async fn serve_http<S>(
        self,
        mut stream: S,
        builder: Builder<TokioExecutor>,
        over_tls: Option<ArrivedOverTls>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            remote,
            router,
            fast,
            transport,
            limits,
            mut stop,
            waiting: (waiting, mut shed),
        } = self;
        let redirect_https_port = transport.redirect_https_port;
        // Until its first request, a connection may be shed (listener out of descriptors).
        let opened = tokio::select! {
            opened = opening(&mut stream, fast.as_ref(), remote, &limits, &mut stop, over_tls.map(|a| a.port)) => opened,
            () = shed.shed() => None,
        };
        let Some((protocol, prefix, decided)) = opened else {
            return;
        };
        let first = std::sync::Mutex::new(Some(FirstRequest {
            _waiting: waiting,
            decided,
        }));
        // Every new HTTP/2 request restarts the idle deadline.
        let requests = Arc::new(Notify::new());
        let request_seen = (protocol == Protocol::Http2).then(|| requests.clone());
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                let first = first.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(seen) = &request_seen {
                    seen.notify_one();
                }
                if let Some(port) = redirect_https_port {
                    let header = |name| {
                        request
                            .headers()
                            .get(name)
                            .and_then(|value: &axum::http::HeaderValue| value.to_str().ok())
                    };
                    // A trusted proxy says which host the viewer asked for.
                    let forwarded = transport
                        .proxy_may_speak(remote.ip())
                        .then(|| header("x-forwarded-host"))
                        .flatten()
                        .and_then(|hosts| hosts.rsplit(',').next())
                        .map(str::trim);
                    let host = forwarded
                        .or_else(|| header("host"))
                        .or_else(|| request.uri().authority().map(|a| a.as_str()));
                    let target = request
                        .uri()
                        .path_and_query()
                        .map_or("/", |target| target.as_str());
                    let response = redirect_to_https(host, target, port);
                    return Either::Left(std::future::ready(Ok(response)));
                }
                if let Some(arrived) = over_tls {
                    request.extensions_mut().insert(arrived);
                }
                let early = match first.and_then(|first| first.decided) {
                    Some(decision) => {
                        request.extensions_mut().insert(decision);
                        None
                    }
                    None => fast
                        .as_ref()
                        .and_then(|fast| fast.answer(&mut request, remote)),
                };
                match early {
                    Some(response) => Either::Left(std::future::ready(Ok(response))),
                    None => {
                        request.extensions_mut().insert(ConnectInfo(remote));
                        Either::Right(router.clone().oneshot(request))
                    }
                }
            },
        );
        let io = TokioIo::new(Rewound::new(prefix, stream));
        let connection = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(connection);
        let idle = async {
            match protocol {
                Protocol::Http2 => idle_for(limits.http2_idle_timeout, &requests).await,
                Protocol::Http1 => std::future::pending().await,
            }
        };
        tokio::pin!(idle);
        let mut closing = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%remote, %error, "http connection ended with an error");
                    }
                    return;
                }
                _ = stop_requested(&mut stop), if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                () = &mut idle, if !closing => {
                    connection.as_mut().graceful_shutdown();
                    closing = true;
                }
                // Shed before its first request: nothing in flight to finish.
                () = shed.shed() => return,
            }
        }
    }
}

/// The opening of a connection: the balancer lane (on a node with balancers), then the
/// protocol and HTTP/2 handshake under their deadlines (`super::opening`). `None`: the
/// connection closes (done in the lane, gone, too slow, or the node stops).
async fn opening<S>(
    stream: &mut S,
    fast: Option<&FastPath>,
    remote: SocketAddr,
    limits: &HttpLimits,
    stop: &mut watch::Receiver<bool>,
    tls_port: Option<u16>,
) -> Option<(Protocol, Bytes, Option<Decided>)>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // On a balancing node, redirects are answered in the lane; hyper takes over at the
    // first request the lane does not answer.
    let (prefix, decided) = match fast {
        Some(fast) => match serve_lane(stream, fast, remote, limits, stop, tls_port).await {
            LaneEnd::Closed => return None,
            LaneEnd::HandOver { prefix, decided } => (prefix, decided),
        },
        None => (Bytes::new(), None),
    };
    let opened = tokio::select! {
        biased;
        _ = stop_requested(stop) => return None,
        opened = open(stream, prefix, limits) => opened,
    };
    match opened {
        Opening::Opened { protocol, prefix } => Some((protocol, prefix, decided)),
        Opening::Closed => None,
    }
}

/// Resolves after `timeout` passes without a notification on `requests`.
async fn idle_for(timeout: Duration, requests: &Notify) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(timeout) => return,
            () = requests.notified() => {}
        }
    }
}

/// Resolves once `shutdown` is true (or its sender is gone, which also means stop).
pub(crate) async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before any other await.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

/// The remote address of a request (set by [`serve`], or by tests).
pub fn remote_addr(request: &axum::extract::Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr)
}
