//! The origin's side of a subscription: what it sends a relaying node, from the stream's
//! window and follow ring, never waiting on the packager (see the module `relay`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::media::follow::{Cut, FollowEvent};
use crate::media::live::{LiveStream, WindowSnapshot};
use crate::media::window::Segment;
use crate::mesh::wire::relay::{
    RelayFrame, RelayHead, SEGMENT_PART_BYTES, SegmentMeta, WireRendition,
};

/// How often a subscription with nothing to send checks that its stream is still here.
pub const STILL_HERE_CHECK: Duration = Duration::from_secs(1);

/// Writes relay frames to the subscriber. `Err` ends the subscription (the subscriber
/// went away or cannot keep up with the connection).
pub trait RelaySink: Send {
    fn send(
        &mut self,
        frame: RelayFrame,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send;
}

/// Whether the subscription may go on: `Err(why)` when this node no longer serves the
/// stream (stopped, replaced, superseded by another capture).
pub type StillHere = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Serves one subscription of `live` into `sink` until the stream is no longer here or
/// the subscriber goes. Returns why it ended.
pub async fn serve(
    live: Arc<LiveStream>,
    sink: &mut impl RelaySink,
    still_here: StillHere,
) -> String {
    match run(&live, sink, &still_here).await {
        Ok(reason) => {
            let _ = sink
                .send(RelayFrame {
                    head: RelayHead::End {
                        reason: reason.clone(),
                    },
                    payload: bytes::Bytes::new(),
                })
                .await;
            reason
        }
        Err(reason) => reason,
    }
}

/// `Ok(why the origin ends it)`, or `Err(why the subscriber is gone)`.
async fn run(
    live: &LiveStream,
    sink: &mut impl RelaySink,
    still_here: &StillHere,
) -> Result<String, String> {
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
            Ok(Err(RecvError::Closed)) => return Ok("the stream stopped".into()),
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
) -> Result<Option<u64>, String> {
    sink.send(RelayFrame {
        head: RelayHead::Start {
            segment_count: snapshot.segment_count as u32,
            segment_duration_ms: snapshot.segment_duration_ms,
            discontinuity_sequence: snapshot.discontinuity_sequence,
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

/// A whole segment, in parts of at most [`SEGMENT_PART_BYTES`].
async fn send_segment(sink: &mut impl RelaySink, segment: &Segment) -> Result<(), String> {
    let meta = meta_of(&crate::media::follow::SegmentInfo::of(segment));
    let mut offset = 0;
    loop {
        let end = (offset + SEGMENT_PART_BYTES).min(segment.data.len());
        let last = end == segment.data.len();
        sink.send(RelayFrame {
            head: RelayHead::Segment {
                meta: meta.clone(),
                offset: offset as u64,
                last,
            },
            payload: segment.data.slice(offset..end),
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
            rendition: WireRendition::from(&cut.rendition),
        },
        payload: bytes::Bytes::new(),
    }
}
