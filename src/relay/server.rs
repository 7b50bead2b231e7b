//! The origin's service: subscriptions from peers, served from the streams this node has
//! (see `origin` for the protocol). A stream is served while this node runs it from its
//! own input and is not superseded by another node's capture; a relayed copy is never
//! served on (a relay follows the owner, never another relay).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use flotilla_cluster::ingest::board::IngestBoard;
use flotilla_cluster::mesh::view::ClusterView;
use flotilla_otp::rt::Runtime;

use super::origin::{self, NotServed, RelaySink, SinkError};
use super::transport::QuinnSink;
use crate::media::directory::Directory;
use crate::media::live::LiveStream;
use crate::mesh::service::RelayServer;
use crate::mesh::wire::relay::RelayFrame;
use crate::stats::ALIVE_WITHIN_MS;

/// Serves this node's streams to relaying peers.
#[derive(Clone)]
pub struct OriginServer {
    pub directory: Directory,
    pub board: IngestBoard,
    pub view: Option<Arc<RwLock<ClusterView>>>,
    /// This node's identity (`host:port`), for the capture order.
    pub identity: String,
    pub runtime: Runtime,
}

impl OriginServer {
    /// Why `live` may not be served now, if it may not.
    fn not_served(&self, live: &Arc<LiveStream>) -> Option<NotServed> {
        let now_ms = self.runtime.wall_clock_ms();
        let current = self
            .directory
            .get(&live.name)
            .is_some_and(|registered| Arc::ptr_eq(&registered, live));
        if !current {
            return Some(NotServed::Stopped);
        }
        if live.relay {
            return Some(NotServed::RelayCopy);
        }
        if crate::ingest::superseded(
            &self.board,
            self.view.as_ref(),
            &live.name,
            now_ms,
            &self.identity,
        ) {
            return Some(NotServed::Superseded);
        }
        if !live.is_alive(now_ms, ALIVE_WITHIN_MS) {
            return Some(NotServed::NoMedia);
        }
        None
    }
}

/// Counts what goes to a relaying node.
struct Counted<'a> {
    inner: QuinnSink,
    live: &'a LiveStream,
}

impl RelaySink for Counted<'_> {
    async fn send(&mut self, frame: RelayFrame) -> Result<usize, SinkError> {
        let bytes = self.inner.send(frame).await?;
        self.live
            .counters
            .relay_bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(bytes)
    }
}

impl RelayServer for OriginServer {
    fn serve(
        &self,
        peer: SocketAddr,
        stream: String,
        send: quinn::SendStream,
    ) -> futures_util::future::BoxFuture<'static, ()> {
        let server = self.clone();
        Box::pin(async move {
            let mut sink = QuinnSink(send);
            let live = server.directory.get(&stream);
            let refused = match &live {
                None => Some(NotServed::Absent),
                Some(live) => server.not_served(live),
            };
            let (Some(live), None) = (live, refused) else {
                let why = refused.unwrap_or(NotServed::Absent);
                tracing::info!(%peer, %stream, reason = %why, "relay subscription refused");
                let _ = sink.send(origin::end_frame(why)).await;
                let _ = sink.0.finish();
                return;
            };
            tracing::info!(%peer, %stream, "relaying the stream to a peer");
            live.counters
                .relay_subscribers
                .fetch_add(1, Ordering::Relaxed);
            let mut counted = Counted {
                inner: sink,
                live: &live,
            };
            let check = {
                let server = server.clone();
                let live = live.clone();
                Box::new(move || server.not_served(&live).map_or(Ok(()), Err))
            };
            let ended = origin::serve(live.clone(), &mut counted, check).await;
            let _ = counted.inner.0.finish();
            live.counters
                .relay_subscribers
                .fetch_sub(1, Ordering::Relaxed);
            tracing::info!(%peer, %stream, reason = %ended, "relay subscription ended");
        })
    }
}
