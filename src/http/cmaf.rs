//! CMAF over HTTP: LL-HLS (`index.ll.m3u8`) and MPEG-DASH (`index.mpd`), with the init
//! segments, segments and parts they name (see `media::cmaf::playlist` for the names).
//!
//! Everything is read from the stream's window under its read lock; nothing asks an
//! actor. A request the window cannot answer yet — a playlist with `_HLS_msn`/
//! `_HLS_part` ahead of the stream (a blocking playlist reload), the part a preload
//! hint named — is held as a parked future that the packager's next part wakes: no
//! thread, no mailbox, no lock is held while it waits. Held requests are bounded per
//! node ([`MAX_HELD_REQUESTS`]); past the bound a request is answered at once with 503
//! and `Retry-After`, never queued. A request more than two segments ahead is refused
//! with 400 at once (RFC 8216bis §6.2.5.2).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use super::api::error_response;
use super::media::with_type;
use crate::defaults::STREAM_START_WAIT_MS;
use crate::media::cmaf::playlist::{self, Resource, Shape};
use crate::media::live::{LiveStream, RenderedKey};
use crate::media::llhls::{self, Readiness};
use crate::media::window::Window;

/// Most requests one node holds waiting for a part or a playlist update: 10,000 LL-HLS
/// viewers hold about two each (the next playlist and the hinted part). Each costs a
/// parked future and its connection.
pub const MAX_HELD_REQUESTS: usize = 50_000;

/// Held requests are answered after at most this many segment durations (the spec's
/// three target durations; the client gives up after that anyway).
const HOLD_SEGMENTS: u64 = 3;

/// The node's count of held requests (one per node, in its HTTP state).
#[derive(Debug, Clone)]
pub struct HeldRequests {
    held: Arc<AtomicUsize>,
    /// Requests answered with 503 at the bound, since the node started.
    refused: Arc<AtomicU64>,
    limit: usize,
}

impl Default for HeldRequests {
    fn default() -> HeldRequests {
        HeldRequests::with_limit(MAX_HELD_REQUESTS)
    }
}

impl HeldRequests {
    /// At most `limit` held at once.
    pub fn with_limit(limit: usize) -> HeldRequests {
        HeldRequests {
            held: Arc::default(),
            refused: Arc::default(),
            limit,
        }
    }

    /// Held now.
    pub fn count(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Answered with 503 at the bound since the node started.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A slot to hold one request, or `None` at the bound.
    fn take(&self) -> Option<HeldSlot> {
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |held| {
                (held < self.limit).then_some(held + 1)
            })
            .is_ok();
        taken.then(|| HeldSlot {
            held: self.held.clone(),
        })
    }
}

/// One held request; released when dropped (answered, or the client went).
struct HeldSlot {
    held: Arc<AtomicUsize>,
}

impl Drop for HeldSlot {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";
const MPD_TYPE: &str = "application/dash+xml";

fn unavailable(why: String) -> Response {
    let mut response = error_response(StatusCode::SERVICE_UNAVAILABLE, why);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn missing(live: &LiveStream, what: &str) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        format!("{what} is not in the window of {}", live.name),
    )
}

/// Media bytes (immutable once published: caches may keep them).
fn media(live: &LiveStream, data: Bytes, audio: bool) -> Response {
    live.counters
        .bytes_out
        .fetch_add(data.len() as u64, Ordering::Relaxed);
    let kind = if audio { "audio/mp4" } else { "video/mp4" };
    with_type(data, kind, "max-age=3600")
}

fn shape(live: &LiveStream) -> Shape {
    Shape {
        part_target_ms: live.part_target_ms(),
        segment_count: live.packaging.segment_count,
    }
}

/// How long a held request may wait: three of the window's longest segments (at least
/// a second each).
fn hold_limit(live: &LiveStream) -> Duration {
    let longest_ms = live.with_window(|w| w.advertised().map(|s| s.duration_ms).max());
    Duration::from_millis(HOLD_SEGMENTS * longest_ms.unwrap_or(0).max(1_000))
}

/// Waits, holding one of the node's slots, until `ready` holds of the window (or the
/// hold limit passes); `Err` with the answer when no slot is free.
async fn hold(
    live: &LiveStream,
    held: &HeldRequests,
    ready: impl Fn(&Window) -> bool,
) -> Result<(), Response> {
    if live.with_window(&ready) {
        return Ok(());
    }
    let Some(_slot) = held.take() else {
        held.refused.fetch_add(1, Ordering::Relaxed);
        return Err(unavailable(format!(
            "this node holds {} waiting requests already; retry shortly",
            held.limit
        )));
    };
    live.wait_for_window(hold_limit(live), ready).await;
    Ok(())
}

/// Answers a request for `resource` of `live`; `query` carries LL-HLS directives.
pub async fn serve(
    live: &Arc<LiveStream>,
    resource: Resource,
    query: Option<&str>,
    held: &HeldRequests,
) -> Response {
    match resource {
        Resource::Master => {
            let start = Duration::from_millis(STREAM_START_WAIT_MS);
            live.wait_for_window(start, has_sealed_segment).await;
            let bandwidth = live.rendition().bandwidth_bps;
            match live.rendered(RenderedKey::Master, |w| {
                playlist::master_playlist(w, bandwidth)
            }) {
                Some(body) => with_type(body, PLAYLIST_TYPE, "no-cache"),
                None => no_cmaf(live),
            }
        }
        Resource::MediaPlaylist { track } => media_playlist(live, track, query, held).await,
        Resource::Manifest => {
            let start = Duration::from_millis(STREAM_START_WAIT_MS);
            live.wait_for_window(start, has_sealed_segment).await;
            let origin_ms = live.timeline_origin_ms();
            let count = live.packaging.segment_count;
            let manifest = live.rendered(RenderedKey::Manifest, |w| {
                playlist::manifest(w, origin_ms, count)
            });
            match manifest {
                Some(body) => with_type(body, MPD_TYPE, "no-cache"),
                None => no_cmaf(live),
            }
        }
        Resource::Init { track, version } => {
            let found = live.with_window(|w| {
                let open = w.open_parts().track(track).map(|(init, _)| init.clone());
                open.into_iter()
                    .chain(
                        w.held()
                            .rev()
                            .filter_map(|s| s.cmaf_track(track))
                            .map(|t| t.init.clone()),
                    )
                    .find(|init| init.version == version)
            });
            match found {
                Some(init) => media(live, init.bytes.clone(), !init.codec.is_video()),
                None => missing(live, "this init segment"),
            }
        }
        Resource::Segment { track, sequence } => {
            // A segment not sealed yet (a playlist from a node a moment ahead): held
            // until it is, if it is the one being written or the next.
            if let Err(answer) = hold(live, held, |w| {
                sequence < w.next_sequence() || sequence > w.next_sequence() + 1
            })
            .await
            {
                return answer;
            }
            let found = live.with_window(|w| {
                w.held()
                    .rev()
                    .find(|s| s.sequence == sequence)
                    .and_then(|s| s.cmaf_track(track))
                    .map(|t| (t.data.clone(), !t.init.codec.is_video()))
            });
            match found {
                Some((data, audio)) => media(live, data, audio),
                None => missing(live, "this segment"),
            }
        }
        Resource::Part {
            track,
            sequence,
            index,
        } => part(live, track, sequence, index as usize, held).await,
    }
}

/// The window has a sealed segment: playlists and manifests can be served (a player
/// starts from complete segments), or the stream is known to have no CMAF (its
/// segments carry none) and the request is answered so at once.
fn has_sealed_segment(window: &Window) -> bool {
    window.held().next().is_some()
}

fn no_cmaf(live: &LiveStream) -> Response {
    let codecs = live.rendition().codecs.join(", ");
    if live.has_media() {
        // Media flows but none of it has CMAF packaging.
        error_response(
            StatusCode::NOT_FOUND,
            format!(
                "stream {} carries no track with CMAF packaging (H.264, H.265, AAC); its codecs: {codecs}; play its MPEG-TS HLS (index.m3u8)",
                live.name
            ),
        )
    } else {
        unavailable(format!(
            "stream {} has no media yet; retry shortly",
            live.name
        ))
    }
}

async fn media_playlist(
    live: &Arc<LiveStream>,
    track: u8,
    query: Option<&str>,
    held: &HeldRequests,
) -> Response {
    let directives = match llhls::directives(query) {
        Ok(directives) => directives,
        Err(error) => return error_response(StatusCode::BAD_REQUEST, error.to_string()),
    };
    let progress = live.with_window(|w| playlist::progress(w, track));
    match llhls::readiness(&directives, progress) {
        Err(error) => return error_response(StatusCode::BAD_REQUEST, error.to_string()),
        Ok(Readiness::Now) => {}
        Ok(Readiness::Wait) => {
            let ready = |w: &Window| {
                llhls::readiness(&directives, playlist::progress(w, track))
                    .is_ok_and(|r| r == Readiness::Now)
            };
            if let Err(answer) = hold(live, held, ready).await {
                return answer;
            }
        }
    }
    if directives.msn.is_none() {
        // A starting stream: players need a complete segment to start from.
        let start = Duration::from_millis(STREAM_START_WAIT_MS);
        live.wait_for_window(start, has_sealed_segment).await;
    }
    let shape = shape(live);
    let key = RenderedKey::Playlist {
        track,
        skip: directives.skip,
    };
    match live.rendered(key, |w| {
        playlist::media_playlist(w, track, shape, directives.skip)
    }) {
        Some(body) => with_type(body, PLAYLIST_TYPE, "no-cache"),
        None => missing(live, "this track"),
    }
}

/// A part: of a sealed segment, of the segment being written, or the next one (held
/// until it is complete, or until its segment is sealed without it).
async fn part(
    live: &Arc<LiveStream>,
    track: u8,
    sequence: u64,
    index: usize,
    held: &HeldRequests,
) -> Response {
    if index >= crate::media::cmaf::packager::MAX_PARTS_PER_SEGMENT {
        return missing(live, "this part");
    }
    let settled = |w: &Window| {
        let next = w.next_sequence();
        if sequence < next || sequence > next + 1 {
            return true;
        }
        sequence == next
            && w.open_parts()
                .track(track)
                .is_some_and(|(_, parts)| index < parts.len())
    };
    if let Err(answer) = hold(live, held, settled).await {
        return answer;
    }
    let found = live.with_window(|w| {
        if sequence == w.next_sequence() {
            let (init, parts) = w.open_parts().track(track)?;
            let part = parts.get(index)?;
            return Some((part.data.clone(), !init.codec.is_video()));
        }
        let fragments = w
            .held()
            .rev()
            .find(|s| s.sequence == sequence)?
            .cmaf_track(track)?;
        Some((fragments.part(index)?, !fragments.init.codec.is_video()))
    });
    match found {
        Some((data, audio)) => media(live, data, audio),
        None => missing(live, "this part"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::frame::CLOCK_HZ;
    use crate::media::live::{Packager, Packaging, TICKS_PER_MS};
    use crate::media::source::ClipFrames;

    const START_MS: u64 = 1_700_000_000_000;

    /// Feeds the clip up to `to_s` seconds.
    fn feed(packager: &mut Packager, clip: &mut ClipFrames, to_s: u64) {
        loop {
            let (frame, discontinuity) = clip.next_frame();
            packager.push(&frame, discontinuity, START_MS + frame.dts / TICKS_PER_MS);
            if frame.dts > to_s * CLOCK_HZ {
                return;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn held_requests_are_bounded_answered_when_the_part_comes_and_far_ones_refused() {
        let live = LiveStream::new(
            "held",
            Packaging {
                segment_duration_ms: 1_000,
                segment_count: 3,
                part_duration_ms: 200,
            },
        );
        let mut packager = Packager::new(live.clone());
        let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        feed(&mut packager, &mut clip, 3);
        let held = HeldRequests::with_limit(2);
        let progress = live.with_window(|w| playlist::progress(w, 0));
        let next = Resource::Part {
            track: 0,
            sequence: progress.last_msn,
            index: progress.parts_of_last,
        };
        let runtime = flotilla_otp::rt::Runtime::deterministic(7, START_MS);
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (live, held) = (live.clone(), held.clone());
                runtime.spawn("held-request", async move {
                    serve(&live, next, None, &held).await.status()
                })
            })
            .collect();
        while held.count() < 2 {
            tokio::task::yield_now().await;
        }
        // The bound is reached: the next one is answered at once, not queued.
        let refused = serve(&live, next, None, &held).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(held.refused(), 1);
        assert!(refused.headers().contains_key(header::RETRY_AFTER));
        // More than two segments ahead: 400 at once, holding nothing.
        let query = format!("_HLS_msn={}", progress.last_msn + 3);
        let far = serve(
            &live,
            Resource::MediaPlaylist { track: 0 },
            Some(&query),
            &held,
        )
        .await;
        assert_eq!(far.status(), StatusCode::BAD_REQUEST);
        // The part comes: both held requests get it.
        feed(&mut packager, &mut clip, 4);
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), StatusCode::OK);
        }
        assert_eq!(held.count(), 0);
    }
}
