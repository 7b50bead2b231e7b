//! The accept loop of one HTTP listener, with graceful shutdown.
//!
//! Limits are explicit because every byte here comes from the internet:
//! - the whole request head must arrive within [`HttpLimits::header_read_timeout`]
//!   (a total deadline, not per read, so a slowloris client cannot trickle forever);
//! - the head may not exceed [`HttpLimits::max_header_bytes`];
//! - at most [`HttpLimits::max_connections`] connections are served at once; the next ones
//!   wait in the kernel's backlog instead of exhausting memory.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use flotilla_actors::rt::CoreWorkers;
use futures_util::future::Either;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use super::balancer_lane::{LaneEnd, serve_lane};
use super::fast_path::FastPath;
use super::rewind::Rewound;
use bytes::Bytes;

/// Bounds of one HTTP listener.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
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

/// Serves `router` on `listener` until `shutdown` turns true, then drains connections for
/// at most `limits.shutdown_grace`. `fast` answers balancer redirects before the router.
/// Each accepted connection is served on one of `connections` until it closes.
pub async fn serve(
    connections: Arc<CoreWorkers>,
    listener: TcpListener,
    router: Router,
    fast: Option<FastPath>,
    limits: HttpLimits,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
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
                Err(error) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
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
        let router = router.clone();
        let fast = fast.clone();
        let builder = builder.clone();
        // Held until the connection ends: the shutdown drain waits for it, lane included.
        let watcher = graceful.watcher();
        let mut stop = shutdown.clone();
        connections.spawn("http-connection", async move {
            let mut stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::debug!(%remote, %error, "cannot register the connection");
                    return;
                }
            };
            // On a balancing node, redirects are answered in the lane; hyper takes over
            // at the first request the lane does not answer.
            let (prefix, decided) = match &fast {
                Some(fast) => match serve_lane(&mut stream, fast, remote, &limits, &mut stop).await
                {
                    LaneEnd::Closed => return,
                    LaneEnd::HandOver { prefix, decided } => (prefix, decided),
                },
                None => (Bytes::new(), None),
            };
            // The lane's decision to serve the first request here, taken once.
            let decided = std::sync::Mutex::new(decided);
            let service = hyper::service::service_fn(
                move |mut request: hyper::Request<hyper::body::Incoming>| {
                    let taken = decided.lock().unwrap_or_else(|p| p.into_inner()).take();
                    let early = match taken {
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
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%remote, %error, "http connection ended with an error");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "http connections still open after the shutdown grace period");
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
