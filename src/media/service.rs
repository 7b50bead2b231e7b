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

use flotilla_cluster::stream::{StreamEnd, StreamMedia};
use flotilla_cluster::tree::StreamPlan;
use flotilla_otp::rt::Runtime;
use flotilla_otp::supervisor::BoxFuture;

use super::directory::Directory;
use super::frame::Frame;
use super::input::{Input, InputError};
use super::live::{Packager, Packaging};
use flotilla_cluster::tree::InputPlan;

use super::input::redacted;

/// While a backup input runs, higher-priority inputs are probed this often.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// A probed input must deliver a keyframe within this long to take over.
pub const PROBE_KEYFRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// How one input's run ended.
enum Ended {
    Failed(InputError),
    /// A higher-priority input is back, opened and positioned at a keyframe.
    Preempted {
        index: usize,
        input: Box<Input>,
        first: Frame,
    },
}

/// A running probe of the higher-priority inputs.
type Probe<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<(usize, Input, Frame)>> + Send + 'a>>;

/// Inputs in priority order: explicit `priority=N` first (lowest N first), then the
/// others in config order.
fn by_priority(inputs: &[InputPlan]) -> Vec<InputPlan> {
    let mut ordered = inputs.to_vec();
    ordered.sort_by_key(|input| input.priority.unwrap_or(u32::MAX));
    ordered
}

/// The media plane of one node.
#[derive(Clone)]
pub struct MediaService {
    pub directory: Directory,
    pub runtime: Runtime,
    /// Where relayed streams come from (set once the mesh runs; a node without a mesh
    /// relays nothing).
    pub upstream: Arc<std::sync::OnceLock<Arc<dyn crate::relay::Upstream>>>,
}

impl std::fmt::Debug for MediaService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MediaService({:?})", self.directory)
    }
}

/// An ephemeral stream's entry in the directory, removed when dropped (see
/// [`Directory::retire_exact`]).
struct Registration {
    directory: Directory,
    live: std::sync::Arc<super::live::LiveStream>,
    runtime: Runtime,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.directory
            .retire_exact(&self.live, self.runtime.wall_clock_ms());
    }
}

impl MediaService {
    pub fn new(runtime: Runtime) -> MediaService {
        MediaService {
            directory: Directory::default(),
            runtime,
            upstream: Arc::default(),
        }
    }

    async fn run_stream(self, plan: StreamPlan) -> StreamEnd {
        let packaging = Packaging {
            segment_duration_ms: plan.segment_duration_ms,
            segment_count: plan.segment_count,
            part_duration_ms: plan.part_duration_ms,
        };
        let live = self.directory.get_or_create_following(
            &plan.name,
            packaging,
            plan.relay,
            self.runtime.wall_clock_ms(),
        );
        // An ephemeral stream's state goes with its ingest however its actor ends (a
        // failed actor runs no `terminate`): nothing stays registered for a request to
        // find and wait on.
        let _registration = plan.ephemeral.then(|| Registration {
            directory: self.directory.clone(),
            live: live.clone(),
            runtime: self.runtime.clone(),
        });
        if plan.relay {
            return self.run_relay(&plan, live).await;
        }
        if plan.ondemand {
            return StreamEnd::Failed(self.run_ondemand(plan, live).await);
        }
        let mut packager = Packager::new(live);
        StreamEnd::Failed(self.run_inputs(&plan, &mut packager).await)
    }

    /// A stream relayed from the node that has it (see `crate::relay`): it follows that
    /// node while viewers come, and finishes `clients_timeout` after the last one.
    async fn run_relay(&self, plan: &StreamPlan, live: Arc<super::live::LiveStream>) -> StreamEnd {
        let Some(upstream) = self.upstream.get().cloned() else {
            return StreamEnd::Failed("no mesh: this node relays nothing".into());
        };
        let clients_timeout_ms = plan
            .clients_timeout_ms
            .unwrap_or(crate::defaults::CLIENTS_TIMEOUT_MS);
        let mut replica = super::follow::Replica::new(live.clone());
        tokio::select! {
            reason = crate::relay::edge::follow(
                upstream.as_ref(),
                &mut replica,
                &self.runtime,
                plan.source_timeout_ms,
            ) => StreamEnd::Failed(reason),
            () = self.idle(&live, Some(clients_timeout_ms)) => StreamEnd::Finished(format!(
                "relay stopped: no viewer for {} s",
                clients_timeout_ms / 1000
            )),
            () = self.replaced(&live) => StreamEnd::Finished(
                "relay stopped: this node runs the stream itself now".into()
            ),
        }
    }

    /// Resolves once `live` is no longer the state registered under its name (a capture
    /// of the stream started here and took over its window).
    async fn replaced(&self, live: &Arc<super::live::LiveStream>) {
        while self.directory.holds(live) {
            tokio::time::sleep(crate::relay::edge::OWNER_CHECK).await;
        }
    }

    /// Runs the inputs by priority: each until it fails, then the next. While a backup
    /// runs, the higher-priority inputs are probed every [`PROBE_INTERVAL`]; one that is
    /// back and has sent a keyframe takes over at that keyframe. Returns why all failed.
    async fn run_inputs(&self, plan: &StreamPlan, packager: &mut Packager) -> String {
        let inputs = by_priority(&plan.inputs);
        if inputs.is_empty() {
            return "the stream has no inputs".into();
        }
        let mut failures = Vec::new();
        let mut index = 0;
        let mut ready = None;
        while index < inputs.len() {
            match self
                .run_input(plan, &inputs, index, packager, ready.take())
                .await
            {
                Ended::Failed(error) => {
                    tracing::warn!(stream = %plan.name, input = %redacted(&inputs[index].url), %error, "input failed");
                    failures.push(error.to_string());
                    index += 1;
                }
                Ended::Preempted {
                    index: higher,
                    input,
                    first,
                } => {
                    tracing::info!(stream = %plan.name, input = %redacted(&inputs[higher].url), "higher-priority input is back");
                    failures.clear();
                    index = higher;
                    ready = Some((*input, first));
                }
            }
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

    /// Runs input `index` (or the already opened `ready` one) until it fails, or until a
    /// higher-priority input is back.
    async fn run_input(
        &self,
        plan: &StreamPlan,
        inputs: &[InputPlan],
        index: usize,
        packager: &mut Packager,
        ready: Option<(Input, Frame)>,
    ) -> Ended {
        let url = inputs[index].url.as_str();
        let timeout_ms = inputs[index]
            .source_timeout_ms
            .unwrap_or(plan.source_timeout_ms);
        let start_dts = packager.live().counters.last_dts.load(Ordering::Relaxed);
        let (mut input, mut pending) = match ready {
            Some((input, first)) => (input, Some((first, true))),
            None => match self
                .open(&inputs[index], &packager.live().name, start_dts)
                .await
            {
                Ok(input) => (input, None),
                Err(error) => return Ended::Failed(error),
            },
        };
        let shown = redacted(url);
        tracing::info!(stream = %packager.live().name, input = %shown, "input opened");
        packager.live().set_active_input(Some(&shown));
        let timeout = Duration::from_millis(timeout_ms);
        // Publish points cannot be probed (a publisher comes when it comes).
        let higher: Vec<(usize, InputPlan)> = inputs[..index]
            .iter()
            .enumerate()
            .filter(|(_, input)| !input.url.starts_with("publish://"))
            .map(|(position, input)| (position, input.clone()))
            .collect();
        let mut probe: Option<Probe<'_>> = None;
        let mut next_probe = self.runtime.now() + PROBE_INTERVAL;
        let mut first = true;
        loop {
            if probe.is_none() && !higher.is_empty() && self.runtime.now() >= next_probe {
                probe = Some(Box::pin(self.probe(higher.clone(), start_dts)));
            }
            let (frame, discontinuity) = if let Some(next) = pending.take() {
                next
            } else {
                // A publish point waits for its publisher as long as it takes.
                let limit = if input.is_waiting() {
                    Duration::MAX
                } else {
                    timeout
                };
                let probing = async {
                    match probe.as_mut() {
                        Some(running) => running.await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    found = probing => {
                        probe = None;
                        next_probe = self.runtime.now() + PROBE_INTERVAL;
                        if let Some((position, input, first)) = found {
                            return Ended::Preempted { index: position, input: Box::new(input), first };
                        }
                        continue;
                    }
                    next = tokio::time::timeout(limit, input.next(&self.runtime)) => match next {
                        Ok(Ok(next)) => next,
                        Ok(Err(error)) => return Ended::Failed(error),
                        Err(_) => {
                            return Ended::Failed(InputError::Timeout {
                                url: shown.clone(),
                                seconds: timeout_ms / 1000,
                            });
                        }
                    },
                }
            };
            packager.declare_tracks(input.tracks());
            // The first frame of a switched-to input, or of a restarted stream, is a switch.
            let switch = discontinuity || (first && (index > 0 || start_dts > 0));
            first = false;
            packager.push(&frame, switch, self.runtime.wall_clock_ms());
        }
    }

    async fn open(
        &self,
        input: &InputPlan,
        name: &str,
        start_dts: u64,
    ) -> Result<Input, InputError> {
        match super::input::InputUrl::parse(&input.url) {
            Ok(super::input::InputUrl::Publish) => {
                Ok(Input::publish(&self.directory, name, start_dts))
            }
            _ => Input::open(&self.runtime, &input.url, &input.options, name, start_dts).await,
        }
    }

    /// Tries the higher-priority inputs in order; the first that opens and delivers a
    /// keyframe within [`PROBE_KEYFRAME_TIMEOUT`] is returned, positioned at that keyframe.
    async fn probe(
        &self,
        higher: Vec<(usize, InputPlan)>,
        start_dts: u64,
    ) -> Option<(usize, Input, Frame)> {
        for (position, plan) in higher {
            let attempt = async {
                let mut input = self.open(&plan, "", start_dts).await.ok()?;
                loop {
                    let (frame, _) = input.next(&self.runtime).await.ok()?;
                    let decodable = frame.starts_gop()
                        || (!input.tracks().has_video() && !frame.codec.is_video());
                    if decodable {
                        return Some((input, frame));
                    }
                }
            };
            if let Ok(Some((input, frame))) =
                tokio::time::timeout(PROBE_KEYFRAME_TIMEOUT, attempt).await
            {
                return Some((position, input, frame));
            }
        }
        None
    }
}

impl StreamMedia for MediaService {
    fn run(&self, stream: StreamPlan) -> BoxFuture<StreamEnd> {
        Box::pin(self.clone().run_stream(stream))
    }

    fn remove(&self, stream: &StreamPlan) {
        // An ephemeral stream's state went with its ingest (`Registration`); by now the
        // name may be another stream's (a capture that took over a relayed copy).
        if !stream.ephemeral {
            self.directory
                .retire(&stream.name, self.runtime.wall_clock_ms());
        }
    }

    fn held_bytes(&self, name: &str) -> u64 {
        self.directory.get(name).map_or(0, |live| live.held_bytes())
    }
}

/// The media service as the actor tree takes it.
pub fn as_stream_media(service: &MediaService) -> Arc<dyn StreamMedia> {
    Arc::new(service.clone())
}
