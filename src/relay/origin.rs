//! The origin's side of a subscription: what it sends a relaying node, from the stream's
//! window and follow ring, never waiting on the packager (see the module `relay`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::media::follow::{Cut, FollowEvent};
use crate::media::live::{LiveStream, WindowSnapshot};
use crate::media::window::Segment;
use crate::mesh::wire::relay::{
    RelayFrame, RelayHead, SEGMENT_PART_BYTES, SegmentMeta, WireInit, WirePart, WireRendition,
};

/// How often a subscription with nothing to send checks that its stream is still here.
pub const STILL_HERE_CHECK: Duration = Duration::from_secs(1);

/// Why a relay frame did not reach the subscriber.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// This node's frame broke a wire limit (local: a bug, never the subscriber's doing).
    #[error("this node's relay frame: {0}")]
    Encode(crate::mesh::wire::WireError),
    /// The subscriber went away or the connection failed (transport).
    #[error("the subscriber is gone: {0}")]
    Gone(String),
}

/// Writes relay frames to the subscriber; `Ok` says how many bytes went out. `Err` ends
/// the subscription.
pub trait RelaySink: Send {
    fn send(
        &mut self,
        frame: RelayFrame,
    ) -> impl std::future::Future<Output = Result<usize, SinkError>> + Send;
}

/// Why this node stops serving a stream to relaying nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotServed {
    #[error("the stream is not on this node")]
    Absent,
    #[error("the stream stopped on this node")]
    Stopped,
    #[error("this node relays the stream itself")]
    RelayCopy,
    #[error("another node captures the stream now")]
    Superseded,
    #[error("the stream has no media on this node")]
    NoMedia,
}

/// Whether the subscription may go on: `Err(why)` when this node no longer serves the
/// stream.
pub type StillHere = Box<dyn Fn() -> Result<(), NotServed> + Send + Sync>;

/// How a subscription ended.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionEnd {
    /// This node ended it (and told the subscriber why).
    #[error("{0}")]
    Origin(NotServed),
    /// The subscriber went.
    #[error(transparent)]
    Subscriber(#[from] SinkError),
}

/// Serves one subscription of `live` into `sink` until the stream is no longer here or
/// the subscriber goes.
pub async fn serve(
    live: Arc<LiveStream>,
    sink: &mut impl RelaySink,
    still_here: StillHere,
) -> SubscriptionEnd {
    match run(&live, sink, &still_here).await {
        Ok(why) => {
            let _ = sink.send(end_frame(why)).await;
            SubscriptionEnd::Origin(why)
        }
        Err(gone) => SubscriptionEnd::Subscriber(gone),
    }
}

/// The frame that tells a subscriber why it gets no more.
pub fn end_frame(why: NotServed) -> RelayFrame {
    RelayFrame {
        head: RelayHead::End {
            reason: why.to_string(),
        },
        payload: bytes::Bytes::new(),
    }
}

/// `Ok(why this node ends it)`, or `Err(why the subscriber is gone)`.
async fn run(
    live: &LiveStream,
    sink: &mut impl RelaySink,
    still_here: &StillHere,
) -> Result<NotServed, SinkError> {
    let (snapshot, mut events) = live.subscribe_follow();
    let mut last_sent = send_start(sink, &snapshot).await?;
    let mut synced = false;
    loop {
        let event = match tokio::time::timeout(STILL_HERE_CHECK, events.recv()).await {
            Err(_) => {
                if let Err(why) = still_here() {
                    return Ok(why);
                }
                continue;
            }
            Ok(Err(RecvError::Lagged(missed))) => {
                // The subscriber is slower than the stream: it resumes at the next
                // boundary, with what it missed sent whole.
                tracing::debug!(stream = %live.name, missed, "relay subscriber fell behind");
                synced = false;
                continue;
            }
            Ok(Err(RecvError::Closed)) => return Ok(NotServed::Stopped),
            Ok(Ok(event)) => event,
        };
        match event {
            FollowEvent::Cut(cut) if !synced => {
                for segment in live.segments_after(last_sent) {
                    send_segment(sink, &segment).await?;
                    last_sent = Some(segment.sequence);
                }
                sink.send(RelayFrame {
                    head: RelayHead::Resume { mux: cut.next },
                    payload: bytes::Bytes::new(),
                })
                .await?;
                synced = true;
            }
            FollowEvent::Cut(cut) => {
                last_sent = Some(cut.segment.sequence);
                sink.send(cut_frame(&cut)).await?;
            }
            FollowEvent::Frame { frame, in_segment } if synced => {
                sink.send(RelayFrame::frame(&frame, in_segment)).await?;
            }
            FollowEvent::Frame { .. } => {}
        }
    }
}

/// Sends `Start` and the window's segments; returns the newest sequence sent.
async fn send_start(
    sink: &mut impl RelaySink,
    snapshot: &WindowSnapshot,
) -> Result<Option<u64>, SinkError> {
    sink.send(RelayFrame {
        head: RelayHead::Start {
            segment_count: snapshot.segment_count as u32,
            segment_duration_ms: snapshot.segment_duration_ms,
            discontinuity_sequence: snapshot.discontinuity_sequence,
            part_duration_ms: snapshot.part_duration_ms,
            timeline_origin_ms: snapshot.timeline_origin_ms,
            rendition: WireRendition::from(&snapshot.rendition),
        },
        payload: bytes::Bytes::new(),
    })
    .await?;
    let mut last_sent = None;
    for segment in &snapshot.segments {
        send_segment(sink, segment).await?;
        last_sent = Some(segment.sequence);
    }
    Ok(last_sent)
}

fn meta_of(info: &crate::media::follow::SegmentInfo) -> SegmentMeta {
    SegmentMeta {
        sequence: info.sequence,
        name: info.name.clone(),
        duration_ms: info.duration_ms,
        program_date_time_ms: info.program_date_time_ms,
        discontinuity: info.discontinuity,
    }
}

/// A whole segment, in parts of at most [`SEGMENT_PART_BYTES`]: its CMAF fragments
/// (each track's init, then its bytes), then its TS bytes.
async fn send_segment(sink: &mut impl RelaySink, segment: &Segment) -> Result<(), SinkError> {
    for fragments in &segment.cmaf {
        sink.send(RelayFrame {
            head: RelayHead::Init {
                init: WireInit::from(fragments.init.as_ref()),
            },
            payload: bytes::Bytes::new(),
        })
        .await?;
        let parts: Vec<WirePart> = fragments
            .parts
            .iter()
            .map(|span| WirePart {
                len: span.len as u32,
                duration: span.duration,
                independent: span.independent,
            })
            .collect();
        let head = |offset: usize, last: bool| RelayHead::Fragments {
            sequence: segment.sequence,
            track: fragments.track(),
            start: fragments.start,
            duration: fragments.duration,
            parts: parts.clone(),
            offset: offset as u64,
            last,
        };
        send_in_parts(sink, &fragments.data, head).await?;
    }
    let meta = meta_of(&crate::media::follow::SegmentInfo::of(segment));
    let head = |offset: usize, last: bool| RelayHead::Segment {
        meta: meta.clone(),
        offset: offset as u64,
        last,
    };
    send_in_parts(sink, &segment.data, head).await
}

/// `data` in relay frames of at most [`SEGMENT_PART_BYTES`], each headed by
/// `head(offset, last)`.
async fn send_in_parts(
    sink: &mut impl RelaySink,
    data: &bytes::Bytes,
    head: impl Fn(usize, bool) -> RelayHead,
) -> Result<(), SinkError> {
    let mut offset = 0;
    loop {
        let end = (offset + SEGMENT_PART_BYTES).min(data.len());
        let last = end == data.len();
        sink.send(RelayFrame {
            head: head(offset, last),
            payload: data.slice(offset..end),
        })
        .await?;
        if last {
            return Ok(());
        }
        offset = end;
    }
}

fn cut_frame(cut: &Cut) -> RelayFrame {
    RelayFrame {
        head: RelayHead::Cut {
            meta: meta_of(&cut.segment),
            next: cut.next,
            next_dts: cut.next_dts,
            rendition: WireRendition::from(&cut.rendition),
        },
        payload: bytes::Bytes::new(),
    }
}
