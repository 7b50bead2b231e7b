//! `hls://` inputs: a live HLS stream of another server, followed as a player does.
//!
//! The input fetches the playlist (a master playlist's variant of highest bandwidth, or a
//! media playlist), starts [`LIVE_EDGE_SEGMENTS`] segments from the live edge, fetches
//! each new segment whole and demuxes it (MPEG-TS segments; fMP4 and encrypted segments
//! are refused by name), and reloads the playlist as RFC 8216 §6.3.4 says: a target
//! duration after a reload that brought something new, half of one after one that did
//! not. `EXT-X-DISCONTINUITY` continues the stream's timeline after its highest
//! timestamp, and so does a gap in the media sequence (this node fell behind). A
//! playlist that has not moved for [`STALLED_TARGET_DURATIONS`] target durations is a
//! lost source, and `EXT-X-ENDLIST` is an ended one: the input fails, and the stream's
//! next input or its supervisor takes over.
//!
//! What to fetch next is decided by [`Follower`], a pure function of the playlists seen
//! and `now`; [`HlsPull`] only does the HTTP.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

use super::frame::Frame;
use super::program::Tracks;
use super::source::TsFrames;
use flotilla_otp::rt::Runtime;

/// Segments a new follower starts behind the live edge (players start three back).
pub const LIVE_EDGE_SEGMENTS: usize = 3;
/// A playlist unchanged for this many target durations is a lost source.
pub const STALLED_TARGET_DURATIONS: u64 = 3;
/// Largest playlist read.
pub const MAX_PLAYLIST_BYTES: usize = 1024 * 1024;
/// Largest segment read: a minute of a 8 Mbit/s stream is 60 MiB.
pub const MAX_SEGMENT_BYTES: usize = 64 * 1024 * 1024;
/// Segments queued for fetching; a playlist that adds more at once (this node fell far
/// behind) is joined at its newest ones, as a discontinuity.
pub const MAX_QUEUED_SEGMENTS: usize = 16;
/// Shortest and longest reload interval, whatever the target duration says.
pub const MIN_RELOAD: Duration = Duration::from_millis(500);
pub const MAX_RELOAD: Duration = Duration::from_secs(10);
/// Time a playlist request may take.
pub const PLAYLIST_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a segment request may take, at least (or two target durations when longer).
pub const MIN_SEGMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why following an HLS stream failed; every variant is the source's doing except
/// `Unsupported` (what the source serves is something flotilla does not read).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HlsError {
    #[error("{what}: {reason}")]
    Fetch { what: String, reason: String },
    #[error("the playlist is not HLS: {0}")]
    NotAPlaylist(String),
    #[error("a master playlist without a variant")]
    NoVariant,
    #[error("{0}")]
    Unsupported(String),
    #[error("the playlist has not changed for {0} s")]
    Stalled(u64),
    #[error("the playlist ended (EXT-X-ENDLIST)")]
    Ended,
    #[error("URI `{0}` cannot be fetched (http:// and relative URIs only)")]
    BadUri(String),
}

/// A segment to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub uri: String,
    pub sequence: u64,
    /// `EXT-X-DISCONTINUITY` before it, or a gap in the sequence before it.
    pub discontinuity: bool,
}

/// What a media playlist says, as the follower reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaView {
    pub target_duration_ms: u64,
    pub media_sequence: u64,
    /// (uri, discontinuity tag) in order; the n-th has sequence `media_sequence + n`.
    pub segments: Vec<(String, bool)>,
    pub ended: bool,
}

/// A playlist, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A master playlist: the URI of its variant of highest bandwidth.
    Master(String),
    Media(MediaView),
}

/// Parses `bytes` as a playlist, refusing what flotilla cannot follow (fMP4 segments,
/// encryption) by name.
pub fn parse(bytes: &[u8]) -> Result<Parsed, HlsError> {
    match m3u8_rs::parse_playlist_res(bytes) {
        Ok(m3u8_rs::Playlist::MasterPlaylist(master)) => master
            .variants
            .iter()
            .filter(|v| !v.is_i_frame)
            .max_by_key(|v| v.bandwidth)
            .map(|v| Parsed::Master(v.uri.clone()))
            .ok_or(HlsError::NoVariant),
        Ok(m3u8_rs::Playlist::MediaPlaylist(media)) => {
            let mut segments = Vec::with_capacity(media.segments.len());
            for segment in &media.segments {
                if segment.map.is_some() {
                    return Err(HlsError::Unsupported(
                        "fMP4 segments (EXT-X-MAP): only MPEG-TS segments are read".into(),
                    ));
                }
                if let Some(key) = &segment.key
                    && key.method != m3u8_rs::KeyMethod::None
                {
                    return Err(HlsError::Unsupported(
                        "encrypted segments (EXT-X-KEY)".into(),
                    ));
                }
                segments.push((segment.uri.clone(), segment.discontinuity));
            }
            Ok(Parsed::Media(MediaView {
                target_duration_ms: media.target_duration.saturating_mul(1000).max(1),
                media_sequence: media.media_sequence,
                segments,
                ended: media.end_list,
            }))
        }
        Err(error) => {
            let mut text = error.to_string();
            text.truncate(200);
            Err(HlsError::NotAPlaylist(text))
        }
    }
}

/// Where a follower is in a media playlist, and when it last moved.
#[derive(Debug, Clone, Default)]
pub struct Follower {
    /// The sequence of the next segment to take (`None` before the first playlist).
    next: Option<u64>,
    /// When a reload last brought a new segment, ms.
    moved_ms: u64,
    target_duration_ms: u64,
}

impl Follower {
    /// The segments of `view` to fetch now, at `now_ms`, in order; and whether the
    /// playlist moved.
    pub fn take(&mut self, view: &MediaView, now_ms: u64) -> (Vec<Segment>, bool) {
        self.target_duration_ms = view.target_duration_ms;
        let count = view.segments.len() as u64;
        let end = view.media_sequence.saturating_add(count);
        let (start, mut gap) = match self.next {
            // First look: join near the live edge (a finished playlist from its start).
            None if view.ended => (view.media_sequence, false),
            None => (
                end.saturating_sub(LIVE_EDGE_SEGMENTS as u64)
                    .max(view.media_sequence),
                false,
            ),
            // Fell behind: the playlist no longer holds the next one.
            Some(next) if next < view.media_sequence => (view.media_sequence, true),
            Some(next) => (next, false),
        };
        // A source restarting its numbering: start again from its live edge.
        let start = if start > end {
            gap = true;
            end.saturating_sub(LIVE_EDGE_SEGMENTS as u64)
                .max(view.media_sequence)
        } else {
            start
        };
        let mut start = start;
        if end - start > MAX_QUEUED_SEGMENTS as u64 {
            start = end - MAX_QUEUED_SEGMENTS as u64;
            gap |= self.next.is_some();
        }
        let taken: Vec<Segment> = (start..end)
            .map(|sequence| {
                let (uri, tagged) = &view.segments[(sequence - view.media_sequence) as usize];
                let discontinuity = *tagged || (gap && sequence == start);
                Segment {
                    uri: uri.clone(),
                    sequence,
                    discontinuity,
                }
            })
            .collect();
        let moved = !taken.is_empty() || self.next.is_none();
        if moved {
            self.moved_ms = now_ms;
        }
        self.next = Some(end);
        (taken, moved)
    }

    /// How long to wait before the next reload: a target duration after a reload that
    /// moved, half of one after one that did not (RFC 8216 §6.3.4), within bounds.
    pub fn reload_delay(&self, moved: bool) -> Duration {
        let ms = if moved {
            self.target_duration_ms
        } else {
            self.target_duration_ms / 2
        };
        Duration::from_millis(ms).clamp(MIN_RELOAD, MAX_RELOAD)
    }

    /// Whether the playlist has not moved for [`STALLED_TARGET_DURATIONS`] target
    /// durations at `now_ms`: the seconds it has been still, if so.
    pub fn stalled(&self, now_ms: u64) -> Option<u64> {
        let still_ms = now_ms.saturating_sub(self.moved_ms);
        let limit_ms = self
            .target_duration_ms
            .max(1000)
            .saturating_mul(STALLED_TARGET_DURATIONS);
        (self.next.is_some() && still_ms >= limit_ms).then_some(still_ms / 1000)
    }
}

/// An `http://` location: its authority and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub authority: String,
    pub path: String,
}

/// Where `uri` (as a playlist names it) is, relative to the playlist at `base`.
pub fn resolve(base: &Location, uri: &str) -> Result<Location, HlsError> {
    let bad = || HlsError::BadUri(uri.chars().take(200).collect());
    if let Some(rest) = uri.strip_prefix("http://") {
        let (authority, path) = match rest.find('/') {
            Some(slash) => (&rest[..slash], &rest[slash..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(bad());
        }
        return Ok(Location {
            authority: authority.to_string(),
            path: path.to_string(),
        });
    }
    if uri.contains("://") || uri.is_empty() || uri.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    if uri.starts_with('/') {
        return Ok(Location {
            authority: base.authority.clone(),
            path: uri.to_string(),
        });
    }
    // Relative to the playlist's directory (its query dropped).
    let base_path = base.path.split('?').next().unwrap_or("/");
    let directory = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
    let directory = if directory.is_empty() { "/" } else { directory };
    Ok(Location {
        authority: base.authority.clone(),
        path: format!("{directory}{uri}"),
    })
}

/// A followed HLS stream.
pub struct HlsPull {
    url: String,
    playlist: Location,
    user_agent: Option<String>,
    follower: Follower,
    queue: VecDeque<Segment>,
    frames: TsFrames,
    /// When the playlist may be reloaded next.
    reload_at: Option<flotilla_otp::rt::Instant>,
}

impl std::fmt::Debug for HlsPull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HlsPull({})", self.url)
    }
}

impl HlsPull {
    /// Follows the playlist at `playlist` (`url` as configured, for errors); the
    /// stream's timeline continues at `start_dts`.
    pub async fn open(
        runtime: &Runtime,
        url: &str,
        playlist: Location,
        user_agent: Option<String>,
        start_dts: u64,
    ) -> Result<HlsPull, HlsError> {
        let mut pull = HlsPull {
            url: url.to_string(),
            playlist,
            user_agent,
            follower: Follower::default(),
            queue: VecDeque::new(),
            frames: TsFrames::new(start_dts),
            reload_at: None,
        };
        pull.reload(runtime).await?;
        Ok(pull)
    }

    /// Tracks seen so far.
    pub fn tracks(&self) -> Tracks {
        self.frames.tracks()
    }

    /// The configured URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn get(
        &self,
        runtime: &Runtime,
        at: &Location,
        limit: usize,
        timeout: Duration,
    ) -> Result<Bytes, HlsError> {
        let what = format!("http://{}{}", at.authority, at.path);
        let fetch = |reason: String| HlsError::Fetch {
            what: what.clone(),
            reason,
        };
        let body = async {
            let body = super::input::http_get(
                runtime,
                &at.authority,
                &at.path,
                self.user_agent.as_deref(),
            )
            .await
            .map_err(|e| fetch(e.to_string()))?;
            let limited = http_body_util::Limited::new(body, limit);
            limited
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .map_err(|e| fetch(e.to_string()))
        };
        tokio::time::timeout(timeout, body)
            .await
            .map_err(|_| fetch(format!("no whole answer within {timeout:?}")))?
    }

    /// Loads the playlist (through a master playlist's chosen variant the first time)
    /// and queues its new segments.
    async fn reload(&mut self, runtime: &Runtime) -> Result<(), HlsError> {
        let mut redirects = 0;
        let view = loop {
            let bytes = self
                .get(
                    runtime,
                    &self.playlist,
                    MAX_PLAYLIST_BYTES,
                    PLAYLIST_TIMEOUT,
                )
                .await?;
            match parse(&bytes)? {
                Parsed::Media(view) => break view,
                // A master playlist names the variant to follow from now on (once: a
                // master naming a master is not followed further).
                Parsed::Master(uri) if redirects == 0 => {
                    self.playlist = resolve(&self.playlist, &uri)?;
                    redirects += 1;
                }
                Parsed::Master(_) => {
                    return Err(HlsError::NotAPlaylist(
                        "a master playlist's variant is another master playlist".into(),
                    ));
                }
            }
        };
        let now_ms = runtime.wall_clock_ms();
        let (taken, moved) = self.follower.take(&view, now_ms);
        self.queue.extend(taken);
        if view.ended && self.queue.is_empty() {
            return Err(HlsError::Ended);
        }
        if let Some(seconds) = self.follower.stalled(now_ms) {
            return Err(HlsError::Stalled(seconds));
        }
        self.reload_at = Some(runtime.now() + self.follower.reload_delay(moved));
        Ok(())
    }

    /// The next frame and whether it follows a discontinuity.
    pub async fn next(&mut self, runtime: &Runtime) -> Result<(Frame, bool), HlsError> {
        loop {
            if let Some(frame) = self.frames.pop() {
                return Ok(frame);
            }
            if let Some(segment) = self.queue.pop_front() {
                let at = resolve(&self.playlist, &segment.uri)?;
                let timeout = Duration::from_millis(2 * self.follower.target_duration_ms)
                    .max(MIN_SEGMENT_TIMEOUT);
                let bytes = self.get(runtime, &at, MAX_SEGMENT_BYTES, timeout).await?;
                if segment.discontinuity {
                    self.frames.discontinuity();
                }
                self.frames.push(&bytes);
                continue;
            }
            if let Some(at) = self.reload_at {
                tokio::time::sleep_until(at).await;
            }
            self.reload(runtime).await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn view(media_sequence: u64, count: usize) -> MediaView {
        MediaView {
            target_duration_ms: 2_000,
            media_sequence,
            segments: (0..count as u64)
                .map(|i| (format!("s{}.ts", media_sequence + i), false))
                .collect(),
            ended: false,
        }
    }

    fn sequences(taken: &[Segment]) -> Vec<u64> {
        taken.iter().map(|s| s.sequence).collect()
    }

    #[test]
    fn joins_at_the_live_edge_then_takes_each_new_segment_once() {
        let mut follower = Follower::default();
        let (taken, moved) = follower.take(&view(10, 6), 0);
        assert_eq!(sequences(&taken), [13, 14, 15]);
        assert!(moved && taken.iter().all(|s| !s.discontinuity));
        let (taken, moved) = follower.take(&view(10, 6), 1_000);
        assert!(taken.is_empty() && !moved);
        assert_eq!(follower.reload_delay(false), Duration::from_secs(1));
        let (taken, _) = follower.take(&view(12, 6), 2_000);
        assert_eq!(sequences(&taken), [16, 17]);
        assert_eq!(follower.reload_delay(true), Duration::from_secs(2));
    }

    #[test]
    fn a_gap_or_a_restart_of_the_numbering_is_a_discontinuity() {
        let mut follower = Follower::default();
        follower.take(&view(10, 3), 0);
        // Fell behind: 13 and 14 are gone.
        let (taken, _) = follower.take(&view(15, 3), 1_000);
        assert_eq!(sequences(&taken), [15, 16, 17]);
        assert!(taken[0].discontinuity && !taken[1].discontinuity);
        // The source restarted from 0.
        let (taken, _) = follower.take(&view(0, 4), 2_000);
        assert_eq!(sequences(&taken), [1, 2, 3]);
        assert!(taken[0].discontinuity);
        // A tagged discontinuity is kept.
        let mut tagged = view(4, 1);
        tagged.segments[0].1 = true;
        let (taken, _) = follower.take(&tagged, 3_000);
        assert!(taken[0].discontinuity);
    }

    #[test]
    fn a_playlist_that_stops_moving_is_stalled_after_three_target_durations() {
        let mut follower = Follower::default();
        assert_eq!(follower.stalled(1_000_000), None, "nothing seen yet");
        follower.take(&view(10, 3), 0);
        follower.take(&view(10, 3), 5_000);
        assert_eq!(follower.stalled(5_999), None);
        assert_eq!(follower.stalled(6_000), Some(6));
    }

    #[test]
    fn a_big_jump_forward_is_joined_at_its_newest_segments() {
        let mut follower = Follower::default();
        follower.take(&view(0, 3), 0);
        let (taken, _) = follower.take(&view(3, 100), 1_000);
        assert_eq!(taken.len(), MAX_QUEUED_SEGMENTS);
        assert_eq!(taken[0].sequence, 103 - MAX_QUEUED_SEGMENTS as u64);
        assert!(taken[0].discontinuity);
    }

    #[test]
    fn parses_media_and_master_playlists_and_refuses_what_it_cannot_read() {
        let media = b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:7\n#EXTINF:4,\na.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:4,\nb.ts\n";
        let Parsed::Media(view) = parse(media).unwrap() else {
            panic!("not media");
        };
        assert_eq!(view.media_sequence, 7);
        assert_eq!(view.target_duration_ms, 4_000);
        assert_eq!(
            view.segments,
            [("a.ts".into(), false), ("b.ts".into(), true)]
        );
        let master = b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nlow/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=3000000\nhigh/index.m3u8\n";
        assert_eq!(
            parse(master).unwrap(),
            Parsed::Master("high/index.m3u8".into())
        );
        let fmp4 =
            b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4,\na.m4s\n";
        assert!(matches!(parse(fmp4), Err(HlsError::Unsupported(_))));
        assert!(matches!(parse(b"<html>"), Err(HlsError::NotAPlaylist(_))));
    }

    #[test]
    fn resolves_segment_uris_against_the_playlist() {
        let base = Location {
            authority: "origin:8080".into(),
            path: "/live/tv/index.m3u8?token=1".into(),
        };
        let at = |uri| resolve(&base, uri).map(|l| format!("{}{}", l.authority, l.path));
        assert_eq!(at("s1.ts").unwrap(), "origin:8080/live/tv/s1.ts");
        assert_eq!(at("hd/s1.ts").unwrap(), "origin:8080/live/tv/hd/s1.ts");
        assert_eq!(at("/x/s1.ts").unwrap(), "origin:8080/x/s1.ts");
        assert_eq!(at("http://cdn/x/s1.ts").unwrap(), "cdn/x/s1.ts");
        assert!(at("https://cdn/x/s1.ts").is_err(), "no TLS client");
        assert!(at("").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_playlists_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&bytes);
        }

        /// However a live playlist's window slides and grows, a follower takes each
        /// sequence number at most once, in order, and never queues more than the bound.
        #[test]
        fn each_segment_is_taken_at_most_once(steps in proptest::collection::vec((0u64..5, 1u64..30), 1..40)) {
            let mut follower = Follower::default();
            let mut end = 0;
            let mut taken_so_far: Vec<u64> = Vec::new();
            for (i, (added, window)) in steps.into_iter().enumerate() {
                end += added;
                if end == 0 {
                    continue;
                }
                let start = end.saturating_sub(window);
                let (taken, _) = follower.take(&view(start, (end - start) as usize), i as u64 * 1_000);
                prop_assert!(taken.len() <= MAX_QUEUED_SEGMENTS);
                for segment in taken {
                    prop_assert!(taken_so_far.last().is_none_or(|last| segment.sequence > *last));
                    taken_so_far.push(segment.sequence);
                }
            }
        }
    }
}
