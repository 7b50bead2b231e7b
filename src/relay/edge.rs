//! The relaying node's side: follow a stream from whichever node has it, for as long as
//! the stream runs here.
//!
//! A subscription ends when its origin goes (killed, cut off), stops having the stream
//! (a cluster_ingest capture moved: it ends the subscription itself), or breaks the
//! protocol. The relayed stream then subscribes again to whichever node the view names
//! now, preferring another node over one that broke the protocol, with a short backoff;
//! its viewers stay connected meanwhile and its window carries on (`media::follow`). It
//! fails only when no node has sent it anything for its source timeout.

use std::time::Duration;

use flotilla_otp::rt::Runtime;

use super::{Feed, RelayError, Upstream};
use crate::error::{Classified, Fault};
use crate::media::follow::{Cut, FragmentsHead, Replica, SegmentInfo, Shape};
use crate::media::live::RELAYED_FROM_PREFIX;
use crate::mesh::wire::relay::{RelayHead, SegmentMeta};

/// First pause before subscribing again; it doubles up to [`RETRY_MAX`] while attempts
/// bring nothing.
pub const RETRY_MIN: Duration = Duration::from_millis(200);
/// Longest pause between attempts.
pub const RETRY_MAX: Duration = Duration::from_secs(2);

/// How often a subscription checks that its origin is still the node the view names for
/// the stream: a node killed outright sends nothing to say so (its QUIC connection
/// times out only after `mesh::auth::IDLE_TIMEOUT`), but the view calls it dead after
/// its `stale_timeout`, and a cluster_ingest capture moves with that.
pub const OWNER_CHECK: Duration = Duration::from_millis(500);

/// Follows the stream `replica` packages until no node has sent it anything for
/// `source_timeout_ms`; returns why.
pub async fn follow(
    upstream: &dyn Upstream,
    replica: &mut Replica,
    runtime: &Runtime,
    source_timeout_ms: u64,
) -> String {
    let name = replica.live().name.clone();
    let source_timeout = Duration::from_millis(source_timeout_ms);
    let mut avoid: Option<String> = None;
    let mut retry = RETRY_MIN;
    let mut last_progress = runtime.now();
    loop {
        let error = match upstream.subscribe(&name, avoid.as_deref()).await {
            Ok(mut feed) => {
                tracing::info!(stream = %name, from = %feed.node(), "relaying the stream");
                let live = replica.live().clone();
                let input = format!("{RELAYED_FROM_PREFIX}{}", feed.node());
                live.set_active_input(Some(&input));
                let (error, progressed) =
                    pump(upstream, &mut feed, replica, runtime, source_timeout).await;
                if progressed {
                    last_progress = runtime.now();
                    retry = RETRY_MIN;
                }
                error
            }
            Err(error) => error,
        };
        avoid = None;
        match error.fault() {
            Fault::Peer if !matches!(error, RelayError::NoOwner | RelayError::Ended { .. }) => {
                tracing::warn!(stream = %name, %error, fault = %Fault::Peer, "relay: the origin misbehaved; trying another node");
                avoid = error.node().map(str::to_string);
            }
            _ => tracing::info!(stream = %name, %error, "relay interrupted; subscribing again"),
        }
        if runtime.now().saturating_duration_since(last_progress) >= source_timeout {
            return format!(
                "no node sent {name} for {} s (last: {error})",
                source_timeout.as_secs()
            );
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// Feeds one subscription into `replica` until it ends; returns why, and whether it
/// brought any media.
async fn pump(
    upstream: &dyn Upstream,
    feed: &mut Feed,
    replica: &mut Replica,
    runtime: &Runtime,
    source_timeout: Duration,
) -> (RelayError, bool) {
    let node = feed.node().to_string();
    let protocol = |what| RelayError::Protocol {
        node: node.clone(),
        what,
    };
    let bad_media = |error| RelayError::BadMedia {
        node: node.clone(),
        error,
    };
    let name = replica.live().name.clone();
    let mut started = false;
    let mut progressed = false;
    let mut last_frame = runtime.now();
    loop {
        let frame = match tokio::time::timeout(OWNER_CHECK, feed.next()).await {
            Err(_) => {
                if !upstream.still_has(&name, &node) {
                    let moved = RelayError::Moved {
                        node: node.clone(),
                        to: upstream.owner(&name),
                    };
                    return (moved, progressed);
                }
                if runtime.now().saturating_duration_since(last_frame) >= source_timeout {
                    let seconds = source_timeout.as_secs();
                    return (RelayError::Silent { node, seconds }, progressed);
                }
                continue;
            }
            Ok(Err(error)) => return (error, progressed),
            Ok(Ok(frame)) => frame,
        };
        last_frame = runtime.now();
        let applied = match frame.head {
            RelayHead::Start {
                segment_count,
                discontinuity_sequence,
                part_duration_ms,
                timeline_origin_ms,
                rendition,
                ..
            } if !started => {
                started = true;
                let shape = Shape {
                    segment_count: segment_count as usize,
                    discontinuity_sequence,
                    part_duration_ms,
                    timeline_origin_ms,
                };
                replica.start(shape, rendition.into());
                Ok(())
            }
            _ if !started => Err(protocol("a subscription must begin with Start")),
            RelayHead::Start { .. } => Err(protocol("a second Start")),
            RelayHead::Segment { meta, offset, last } => {
                progressed |= last;
                replica
                    .segment_part(info_of(meta), offset, last, &frame.payload)
                    .map_err(bad_media)
            }
            RelayHead::Init { init } => {
                let init = init
                    .to_init()
                    .expect("an Init with a known codec (checked by the wire)");
                replica.cmaf_init(init);
                Ok(())
            }
            RelayHead::Fragments {
                sequence,
                track,
                start,
                duration,
                parts,
                offset,
                last,
            } => {
                let head = FragmentsHead {
                    sequence,
                    track,
                    start,
                    duration,
                    parts: parts
                        .iter()
                        .map(|part| (part.len, part.duration, part.independent))
                        .collect(),
                };
                replica
                    .fragments_part(head, offset, last, &frame.payload)
                    .map_err(bad_media)
            }
            RelayHead::Resume { mux } => replica.resume(mux).map_err(bad_media),
            RelayHead::Frame { .. } => {
                let (media, in_segment) = frame
                    .as_frame()
                    .expect("a Frame head with a known codec (checked by the wire)");
                replica.frame(&media, in_segment, runtime.wall_clock_ms());
                progressed = true;
                Ok(())
            }
            RelayHead::Cut {
                meta,
                next,
                next_dts,
                rendition,
            } => replica
                .cut(Cut {
                    segment: info_of(meta),
                    next,
                    next_dts,
                    rendition: rendition.into(),
                })
                .map_err(bad_media),
            RelayHead::End { reason } => Err(RelayError::Ended {
                node: node.clone(),
                reason,
            }),
        };
        if let Err(error) = applied {
            return (error, progressed);
        }
    }
}

fn info_of(meta: SegmentMeta) -> SegmentInfo {
    SegmentInfo {
        sequence: meta.sequence,
        name: meta.name,
        duration_ms: meta.duration_ms,
        program_date_time_ms: meta.program_date_time_ms,
        discontinuity: meta.discontinuity,
    }
}
