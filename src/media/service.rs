//! The node's media plane as the stream actors see it ([`StreamMedia`]).
//!
//! `run` is one incarnation of a stream's ingest: inputs are tried in priority order;
//! each runs until it fails or sends nothing for its source timeout, then the next one
//! takes over (the segment after the switch is marked as a discontinuity). When every
//! input has failed, `run` returns the reasons and the stream actor fails: its
//! supervisor restarts it with backoff, starting again from the first input.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use flotilla_actors::rt::Runtime;
use flotilla_actors::stream::StreamMedia;
use flotilla_actors::supervisor::BoxFuture;
use flotilla_actors::tree::StreamPlan;

use super::directory::Directory;
use super::input::{Input, InputError};
use super::live::{Packager, Packaging};

/// The media plane of one node.
#[derive(Debug, Clone)]
pub struct MediaService {
    pub directory: Directory,
    pub runtime: Runtime,
}

impl MediaService {
    pub fn new(runtime: Runtime) -> MediaService {
        MediaService {
            directory: Directory::default(),
            runtime,
        }
    }

    async fn run_stream(self, plan: StreamPlan) -> String {
        let packaging = Packaging {
            segment_duration_ms: plan.segment_duration_ms,
            segment_count: plan.segment_count,
        };
        let live = self.directory.get_or_create(&plan.name, packaging);
        if plan.ondemand {
            return self.run_ondemand(plan, live).await;
        }
        let mut packager = Packager::new(live);
        self.run_inputs(&plan, &mut packager).await
    }

    /// Tries every input in order; returns why they all failed.
    async fn run_inputs(&self, plan: &StreamPlan, packager: &mut Packager) -> String {
        let mut failures = Vec::new();
        for (index, input) in plan.inputs.iter().enumerate() {
            let timeout_ms = input.source_timeout_ms.unwrap_or(plan.source_timeout_ms);
            let error = self
                .run_input(packager, &input.url, timeout_ms, index > 0)
                .await;
            tracing::warn!(stream = %plan.name, input = %input.url, %error, "input failed");
            failures.push(error.to_string());
        }
        if failures.is_empty() {
            return "the stream has no inputs".into();
        }
        failures.join("; ")
    }

    /// An on-demand stream: idle until a viewer asks, running while viewers come, idle
    /// again `clients_timeout` after the last one. After `retry_limit` failed starts in a
    /// row it waits for the next viewer instead of retrying. It never fails its actor:
    /// idle is the normal state of an on-demand stream.
    async fn run_ondemand(
        self,
        plan: StreamPlan,
        mut live: std::sync::Arc<super::live::LiveStream>,
    ) -> String {
        let mut failed_starts = 0u32;
        loop {
            live.demanded().await;
            tracing::info!(stream = %plan.name, "on-demand stream starting for a viewer");
            let mut packager = Packager::new(live.clone());
            let failure = tokio::select! {
                reason = self.run_inputs(&plan, &mut packager) => Some(reason),
                () = self.idle(&live, plan.clients_timeout_ms) => None,
            };
            drop(packager);
            // The next start begins with an empty window, not with stale segments.
            live = self.directory.reset(&plan.name, live.packaging);
            let Some(reason) = failure else {
                failed_starts = 0;
                tracing::info!(stream = %plan.name, "on-demand stream stopped: no viewers");
                continue;
            };
            failed_starts += 1;
            tracing::warn!(stream = %plan.name, %reason, failed_starts, "on-demand stream failed to start");
            if plan.retry_limit.is_none_or(|limit| failed_starts < limit) {
                // Try again after a pause, as if the viewer were still asking.
                tokio::time::sleep(Duration::from_secs(1)).await;
                live.request(self.runtime.wall_clock_ms());
            } else {
                tracing::warn!(stream = %plan.name, "retry_limit reached: waiting for the next viewer");
                failed_starts = 0;
            }
        }
    }

    /// Resolves once nobody has asked for `live` for `clients_timeout_ms` (never for `None`).
    async fn idle(&self, live: &super::live::LiveStream, clients_timeout_ms: Option<u64>) {
        let Some(timeout_ms) = clients_timeout_ms else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(Duration::from_millis(timeout_ms.clamp(100, 1_000))).await;
            let now_ms = self.runtime.wall_clock_ms();
            let last = live.counters.last_access_ms.load(Ordering::Relaxed);
            // Connected viewers (HTTP-MPEG-TS, RTMP, HLS sessions not yet expired) keep it up.
            let watching = live.counters.clients.load(Ordering::Relaxed) > 0;
            if !watching && now_ms.saturating_sub(last) >= timeout_ms {
                return;
            }
        }
    }

    /// Runs one input until it fails.
    async fn run_input(
        &self,
        packager: &mut Packager,
        url: &str,
        timeout_ms: u64,
        switched: bool,
    ) -> InputError {
        let start_dts = packager.live().counters.last_dts.load(Ordering::Relaxed);
        let opened = match super::input::InputUrl::parse(url) {
            Ok(super::input::InputUrl::Publish) => Ok(Input::publish(
                &self.directory,
                &packager.live().name,
                start_dts,
            )),
            _ => Input::open(&self.runtime, url, start_dts).await,
        };
        let mut input = match opened {
            Ok(input) => input,
            Err(error) => return error,
        };
        tracing::info!(stream = %packager.live().name, input = %url, "input opened");
        let timeout = Duration::from_millis(timeout_ms);
        let mut first = true;
        loop {
            let (frame, discontinuity) =
                match tokio::time::timeout(timeout, input.next(&self.runtime)).await {
                    Ok(Ok(next)) => next,
                    Ok(Err(error)) => return error,
                    Err(_) => {
                        return InputError::Timeout {
                            url: url.to_string(),
                            seconds: timeout_ms / 1000,
                        };
                    }
                };
            packager.set_tracks(input.tracks());
            // The first frame of a backup input, or of a restarted stream, is a switch.
            let switch = discontinuity || (first && (switched || start_dts > 0));
            first = false;
            packager.push(&frame, switch, self.runtime.wall_clock_ms());
        }
    }
}

impl StreamMedia for MediaService {
    fn run(&self, stream: StreamPlan) -> BoxFuture<String> {
        Box::pin(self.clone().run_stream(stream))
    }

    fn remove(&self, name: &str) {
        self.directory.remove(name);
    }
}

/// The media service as the actor tree takes it.
pub fn as_stream_media(service: &MediaService) -> Arc<dyn StreamMedia> {
    Arc::new(service.clone())
}
