//! The node's side of cluster_ingest: what the coordinator (in the actors crate) reads
//! from this node — the mesh's cluster view, the host's CPU, and whether a stream's
//! frames flow here — and the epoch check viewers' requests make.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use flotilla_cluster::ingest::board::IngestBoard;
use flotilla_cluster::ingest::{IngestIo, StreamFrames};
use flotilla_cluster::mesh::view::{ClusterView, IngestRole};

use crate::media::directory::Directory;
use crate::media::live::LiveStream;
use crate::stats::{ALIVE_WITHIN_MS, StatsBoard};

/// The coordinator's view of this node.
pub struct NodeIngestIo {
    pub view: Option<Arc<RwLock<ClusterView>>>,
    pub stats: StatsBoard,
    pub directory: Directory,
}

impl IngestIo for NodeIngestIo {
    fn view(&self) -> Option<Arc<RwLock<ClusterView>>> {
        self.view.clone()
    }

    fn cpu_usage(&self) -> f32 {
        self.stats.snapshot().cpu_usage
    }

    fn frames(&self, stream: &str, now_ms: u64) -> Option<StreamFrames> {
        self.directory
            .get(stream)
            .map(|live| frames_of(&live, now_ms))
    }
}

/// A running stream's frames at `now_ms`.
fn frames_of(live: &LiveStream, now_ms: u64) -> StreamFrames {
    let last_frame_ms = live.counters.last_frame_ms.load(Ordering::Relaxed);
    StreamFrames {
        alive: live.is_alive(now_ms, ALIVE_WITHIN_MS),
        last_frame_ms: Some(last_frame_ms).filter(|frame_ms| *frame_ms != 0),
    }
}

/// Whether this node's copy of cluster_ingest stream `stream` must not be served: this
/// node does not capture it (any more), or an alive peer captures it under a higher
/// epoch (a stale capturer after a partition heals). Other streams are never superseded.
pub fn superseded(
    board: &IngestBoard,
    view: Option<&Arc<RwLock<ClusterView>>>,
    stream: &str,
    now_ms: u64,
    node_id: &str,
) -> bool {
    let Some(part) = board.local(stream) else {
        return false;
    };
    if part.role != IngestRole::Capturing {
        return true;
    }
    let Some(view) = view else {
        return false;
    };
    let view = view.read().unwrap_or_else(|p| p.into_inner());
    view.best_capture(stream, now_ms)
        .is_some_and(|(epoch, peer)| (epoch, peer.id.as_str()) > (part.epoch, node_id))
}
