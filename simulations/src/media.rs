//! Fake cameras: the media plane of a simulated node.
//!
//! A capture "connects" to its camera when the node can reach it (else it fails after a
//! connect timeout, as a real input does), then marks a frame every [`FRAME_PERIOD_MS`]
//! in the node's real [`Directory`], so everything that reads liveness (the ingest
//! coordinator's health, the mesh advertisement, viewers' redirects) sees it exactly as
//! it sees a real stream. When the camera goes away, the input notices after the
//! stream's `source_timeout` and fails, and the stream actor fails with it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flotilla::media::directory::Directory;
use flotilla::media::live::Packaging;
use flotilla_cluster::stream::{StreamEnd, StreamMedia};
use flotilla_cluster::tree::StreamPlan;
use flotilla_otp::rt::Runtime;
use flotilla_otp::supervisor::BoxFuture;

use crate::world::{CaptureGuard, World};

/// How often a fake camera marks a frame (liveness needs one within 12 s).
pub const FRAME_PERIOD_MS: u64 = 1_000;

/// How long connecting to an unreachable camera takes to fail.
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;

/// Bitrate a fake camera reports, bit/s.
const CAMERA_BITRATE_BPS: u64 = 2_000_000;

/// The fake media of one node incarnation.
pub struct SimMedia {
    pub world: World,
    pub node: String,
    pub incarnation_ms: u64,
    pub directory: Directory,
    pub runtime: Runtime,
}

impl SimMedia {
    async fn capture(self: Arc<Self>, plan: StreamPlan) -> String {
        let reachable = || self.world.with(|s| s.reachable(&self.node, &plan.name));
        if !reachable() {
            tokio::time::sleep(Duration::from_millis(CONNECT_TIMEOUT_MS)).await;
            return format!("camera of {} unreachable", plan.name);
        }
        let live = self.directory.get_or_create(
            &plan.name,
            Packaging {
                segment_duration_ms: plan.segment_duration_ms,
                segment_count: plan.segment_count,
                part_duration_ms: plan.part_duration_ms,
            },
        );
        let running = CaptureGuard::start(&self.world, &self.node, self.incarnation_ms, &plan.name);
        loop {
            let now_ms = self.runtime.wall_clock_ms();
            live.counters.last_frame_ms.store(now_ms, Ordering::Relaxed);
            live.counters.frames_in.fetch_add(1, Ordering::Relaxed);
            live.counters
                .input_bitrate
                .store(CAMERA_BITRATE_BPS, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(FRAME_PERIOD_MS)).await;
            if !reachable() {
                // No frames from now on: the input gives up after the source timeout.
                drop(running);
                tokio::time::sleep(Duration::from_millis(plan.source_timeout_ms)).await;
                return format!("camera of {} lost", plan.name);
            }
        }
    }
}

/// [`StreamMedia`] over [`SimMedia`].
pub struct SimStreams(pub Arc<SimMedia>);

impl StreamMedia for SimStreams {
    fn run(&self, stream: StreamPlan) -> BoxFuture<StreamEnd> {
        let media = self.0.clone();
        Box::pin(async move { StreamEnd::Failed(media.capture(stream).await) })
    }

    fn remove(&self, stream: &StreamPlan) {
        self.0.directory.remove(&stream.name);
    }
}
