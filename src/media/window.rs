//! The live window of one stream: its recent HLS segments and the playlists over them.
//!
//! Written by the stream's packager, read by every HLS request. Readers take a read lock
//! for the time of a clone of `Arc`s; no request ever waits on an actor.
//!
//! Naming follows Flussonic: a segment is `YYYY/MM/DD/HH/MM/SS-DDDDD.ts` (UTC start,
//! duration in ms), unique within the window; if two segments would share a name (two
//! starts in the same second with the same duration), the later one gets `-SEQ` appended.

use std::collections::VecDeque;
use std::sync::Arc;

use super::cmaf::{ClosedPart, Part, TrackInit, TrackSegment};
use bytes::Bytes;
use chrono::{DateTime, Datelike, FixedOffset, Timelike};
use m3u8_rs::{MasterPlaylist, MediaPlaylist, MediaSegment, Resolution, VariantStream};

/// One HLS segment, shared by every viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Media sequence number.
    pub sequence: u64,
    /// Path relative to the media playlist.
    pub name: String,
    pub duration_ms: u64,
    /// Wall-clock time of the first frame (EXT-X-PROGRAM-DATE-TIME), Unix ms.
    pub program_date_time_ms: u64,
    /// The segment follows a source switch or timestamp jump.
    pub discontinuity: bool,
    pub data: Bytes,
    /// The same media as CMAF fragments, per track (see `media::cmaf`); none for a
    /// stream whose codecs have no CMAF packaging.
    pub cmaf: Vec<TrackSegment>,
}

impl Segment {
    /// This segment's CMAF fragments of `track`.
    pub fn cmaf_track(&self, track: u8) -> Option<&TrackSegment> {
        self.cmaf.iter().find(|t| t.track() == track)
    }
}

/// The CMAF parts of the segment being written, per track: LL-HLS lists and serves them
/// before the segment is sealed.
#[derive(Debug, Clone, Default)]
pub struct OpenParts {
    tracks: Vec<(Arc<TrackInit>, Vec<Arc<Part>>)>,
}

impl OpenParts {
    /// `track`'s init and its parts so far.
    pub fn track(&self, track: u8) -> Option<(&Arc<TrackInit>, &[Arc<Part>])> {
        self.tracks
            .iter()
            .find(|(init, _)| init.track == track)
            .map(|(init, parts)| (init, &parts[..]))
    }

    /// The init of every track with parts, by track number.
    pub fn inits(&self) -> impl Iterator<Item = &Arc<TrackInit>> {
        self.tracks.iter().map(|(init, _)| init)
    }

    /// Adds a part; a part that does not follow the track's last one (a packager that
    /// started over) starts the track's list anew.
    fn add(&mut self, closed: ClosedPart) {
        let track = closed.init.track;
        match self.tracks.iter_mut().find(|(init, _)| init.track == track) {
            Some((init, parts)) if parts.len() == closed.index && *init == closed.init => {
                parts.push(closed.part)
            }
            Some(entry) => *entry = (closed.init, vec![closed.part]),
            None => self.tracks.push((closed.init, vec![closed.part])),
        }
        self.tracks.sort_by_key(|(init, _)| init.track);
    }

    fn held_bytes(&self) -> u64 {
        self.tracks
            .iter()
            .flat_map(|(_, parts)| parts)
            .map(|part| part.data.len() as u64)
            .sum()
    }
}

/// The window of one stream.
#[derive(Debug, Clone)]
pub struct Window {
    /// Segments advertised in the playlist (`segment_count`).
    advertised: usize,
    /// Segments kept for clients that read an older playlist; ≥ advertised.
    retained: usize,
    segments: VecDeque<Arc<Segment>>,
    next_sequence: u64,
    /// Discontinuities that left the window (EXT-X-DISCONTINUITY-SEQUENCE).
    discontinuity_sequence: u64,
    /// The next segment starts a new timeline (another source took over the window).
    next_is_discontinuity: bool,
    /// The CMAF parts of segment `next_sequence`, the one being written.
    open: OpenParts,
    /// The media playlist as every viewer gets it, rendered at most once per change of
    /// the segments (every `&mut` method that changes them resets it): thousands of
    /// viewers reload the same playlist, and rendering costs more than serving.
    rendered: std::sync::OnceLock<bytes::Bytes>,
}

/// Extra segments kept beyond the advertised ones, for players that fetched the playlist
/// just before it moved (the spec's "+1 kept for late clients", plus one for slow links).
pub const RETAINED_EXTRA_SEGMENTS: usize = 2;

/// Unix ms → `YYYY/MM/DD/HH/MM/SS`.
fn utc_path(unix_ms: u64) -> String {
    let time = DateTime::from_timestamp_millis(unix_ms as i64).unwrap_or_default();
    format!(
        "{:04}/{:02}/{:02}/{:02}/{:02}/{:02}",
        time.year(),
        time.month(),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

impl Window {
    /// Bytes of the segments kept.
    pub fn held_bytes(&self) -> u64 {
        let segments: u64 = self
            .segments
            .iter()
            .map(|s| {
                let cmaf: usize = s.cmaf.iter().map(|t| t.data.len()).sum();
                (s.data.len() + cmaf) as u64
            })
            .sum();
        segments + self.open.held_bytes()
    }

    /// The sequence number the segment being written will have.
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// The CMAF parts of the segment being written.
    pub fn open_parts(&self) -> &OpenParts {
        &self.open
    }

    /// Adds a CMAF part of the segment being written.
    pub fn add_part(&mut self, closed: ClosedPart) {
        self.open.add(closed);
    }

    pub fn new(segment_count: usize) -> Window {
        assert!(
            segment_count >= 1,
            "a window advertises at least one segment"
        );
        Window {
            advertised: segment_count,
            retained: segment_count + RETAINED_EXTRA_SEGMENTS,
            segments: VecDeque::new(),
            next_sequence: 0,
            discontinuity_sequence: 0,
            next_is_discontinuity: false,
            open: OpenParts::default(),
            rendered: std::sync::OnceLock::new(),
        }
    }

    /// Adds a sealed segment; the oldest leaves once more than `retained` are held.
    pub fn push(
        &mut self,
        program_date_time_ms: u64,
        duration_ms: u64,
        discontinuity: bool,
        data: Bytes,
        cmaf: Vec<TrackSegment>,
    ) -> Arc<Segment> {
        let sequence = self.next_sequence;
        let mut name = format!(
            "{}-{:05}.ts",
            utc_path(program_date_time_ms),
            duration_ms.min(99_999)
        );
        if self.segments.iter().any(|s| s.name == name) {
            name = format!(
                "{}-{:05}-{sequence}.ts",
                utc_path(program_date_time_ms),
                duration_ms.min(99_999)
            );
        }
        let segment = Segment {
            sequence,
            name,
            duration_ms,
            program_date_time_ms,
            discontinuity,
            data,
            cmaf,
        };
        self.push_made(segment);
        self.segments.back().expect("just pushed").clone()
    }

    /// Takes another node's window shape for a relayed stream (see `crate::relay`): its
    /// segment count and the discontinuities that already left its window. Only while
    /// this window holds nothing.
    pub fn adopt(&mut self, segment_count: usize, discontinuity_sequence: u64) {
        if !self.segments.is_empty() {
            return;
        }
        let segment_count = segment_count.max(1);
        self.rendered = std::sync::OnceLock::new();
        self.advertised = segment_count;
        self.retained = segment_count + RETAINED_EXTRA_SEGMENTS;
        self.discontinuity_sequence = discontinuity_sequence;
    }

    /// The discontinuities that left the window so far.
    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// The segments held, oldest first.
    pub fn held(&self) -> impl DoubleEndedIterator<Item = &Arc<Segment>> {
        self.segments.iter()
    }

    /// The window goes on with another source (a capture taking over from a relay, a
    /// relay from a capture): its numbers continue, and its next segment is marked as a
    /// discontinuity.
    pub fn continue_with_new_timeline(&mut self) {
        self.next_is_discontinuity = !self.segments.is_empty();
        // The segment being written was the old source's: its parts go with it.
        self.open = OpenParts::default();
    }

    /// Adds a segment made elsewhere (a relayed stream's, with the origin's name and
    /// sequence number), under the same retention as [`Window::push`]. Refused (false)
    /// unless its sequence number is above every one held: a window never goes back. A
    /// segment past a gap in the numbers (some never arrived here) starts the window
    /// afresh, since a playlist numbers its segments by position.
    pub fn push_made(&mut self, segment: Segment) -> bool {
        self.rendered = std::sync::OnceLock::new();
        let mut segment = segment;
        if segment.sequence < self.next_sequence {
            return false;
        }
        if segment.sequence > self.next_sequence && !self.segments.is_empty() {
            while let Some(old) = self.segments.pop_front() {
                if old.discontinuity {
                    self.discontinuity_sequence += 1;
                }
            }
            segment.discontinuity = true;
        }
        segment.discontinuity |= std::mem::take(&mut self.next_is_discontinuity);
        self.next_sequence = segment.sequence + 1;
        self.open = OpenParts::default();
        self.segments.push_back(Arc::new(segment));
        while self.segments.len() > self.retained {
            if let Some(old) = self.segments.pop_front()
                && old.discontinuity
            {
                self.discontinuity_sequence += 1;
            }
        }
        true
    }

    /// The segment called `name`, if still held.
    pub fn find(&self, name: &str) -> Option<Arc<Segment>> {
        self.segments.iter().rev().find(|s| s.name == name).cloned()
    }

    /// The newest segments, oldest first (at most `advertised`).
    pub fn advertised(&self) -> impl Iterator<Item = &Arc<Segment>> {
        self.segments
            .iter()
            .skip(self.segments.len().saturating_sub(self.advertised))
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The live media playlist, shared: rendered once per change of the window.
    pub fn shared_media_playlist(&self) -> bytes::Bytes {
        self.rendered
            .get_or_init(|| bytes::Bytes::from(self.media_playlist()))
            .clone()
    }

    /// The live media playlist, rendered now (see [`Window::shared_media_playlist`]).
    pub fn media_playlist(&self) -> String {
        let advertised: Vec<&Arc<Segment>> = self.advertised().collect();
        let first_sequence = advertised
            .first()
            .map_or(self.next_sequence, |s| s.sequence);
        // Discontinuities among retained-but-not-advertised segments count as gone too.
        let hidden_discontinuities = self
            .segments
            .iter()
            .take(self.segments.len() - advertised.len())
            .filter(|s| s.discontinuity)
            .count() as u64;
        let longest_ms = advertised.iter().map(|s| s.duration_ms).max().unwrap_or(0);
        let playlist = MediaPlaylist {
            version: Some(3),
            // Must be ≥ every EXTINF rounded to the nearest second (RFC 8216 §4.3.3.1).
            target_duration: longest_ms.div_ceil(1000).max(1),
            media_sequence: first_sequence,
            discontinuity_sequence: self.discontinuity_sequence + hidden_discontinuities,
            segments: advertised
                .iter()
                .map(|segment| MediaSegment {
                    uri: segment.name.clone(),
                    duration: segment.duration_ms as f32 / 1000.0,
                    discontinuity: segment.discontinuity,
                    program_date_time: DateTime::from_timestamp_millis(
                        segment.program_date_time_ms as i64,
                    )
                    .map(|t| {
                        t.with_timezone(&FixedOffset::east_opt(0).expect("UTC is a valid offset"))
                    }),
                    ..MediaSegment::default()
                })
                .collect(),
            ..MediaPlaylist::default()
        };
        let mut out = Vec::new();
        playlist
            .write_to(&mut out)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("m3u8-rs writes UTF-8")
    }
}

/// What the master playlist says about the one rendition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendition {
    pub bandwidth_bps: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// RFC 6381 codec strings (`avc1.42c01e`, `mp4a.40.2`).
    pub codecs: Vec<String>,
}

/// The master playlist (`index.m3u8`) pointing at the media playlist `uri`.
pub fn master_playlist(rendition: &Rendition, uri: &str) -> String {
    let playlist = MasterPlaylist {
        version: Some(3),
        variants: vec![VariantStream {
            uri: uri.to_string(),
            // BANDWIDTH is required; a stream that has not measured yet says 1 bit/s less
            // than nothing would be invalid, so it says a conservative 100 kbit/s.
            bandwidth: rendition.bandwidth_bps.max(100_000),
            codecs: (!rendition.codecs.is_empty()).then(|| rendition.codecs.join(",")),
            resolution: match (rendition.width, rendition.height) {
                (Some(width), Some(height)) => Some(Resolution {
                    width: width.into(),
                    height: height.into(),
                }),
                _ => None,
            },
            ..VariantStream::default()
        }],
        ..MasterPlaylist::default()
    };
    let mut out = Vec::new();
    playlist
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    String::from_utf8(out).expect("m3u8-rs writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_763_708_797_000; // 2025-11-21T07:06:37Z

    #[test]
    fn segment_names_follow_flussonic() {
        let mut window = Window::new(3);
        let segment = window.push(T0, 5_000, false, Bytes::new(), Vec::new());
        assert_eq!(segment.name, "2025/11/21/07/06/37-05000.ts");
        let twin = window.push(T0 + 200, 5_000, false, Bytes::new(), Vec::new());
        assert_ne!(twin.name, segment.name, "names stay unique");
        assert!(window.find(&segment.name).is_some());
    }

    #[test]
    fn the_window_advertises_the_newest_segments_and_keeps_extra() {
        let mut window = Window::new(3);
        for i in 0..10 {
            window.push(T0 + i * 4_000, 4_000, i == 2, Bytes::new(), Vec::new());
        }
        let playlist = window.media_playlist();
        let parsed = m3u8_rs::parse_media_playlist_res(playlist.as_bytes()).unwrap();
        assert_eq!(parsed.media_sequence, 7);
        assert_eq!(parsed.segments.len(), 3);
        assert_eq!(parsed.target_duration, 4);
        assert_eq!(
            parsed.discontinuity_sequence, 1,
            "the discontinuity at #2 left the window"
        );
        assert!(parsed.segments[0].program_date_time.is_some());
        assert!(playlist.contains("#EXT-X-PROGRAM-DATE-TIME:"), "{playlist}");
        // Retained (not advertised) segments are still served.
        assert!(
            window
                .find(&format!("{}-04000.ts", utc_path(T0 + 5 * 4_000)))
                .is_some()
        );
        assert!(
            window
                .find(&format!("{}-04000.ts", utc_path(T0 + 4 * 4_000)))
                .is_none()
        );
    }

    /// The shared playlist is rendered once per change and never outlives one.
    #[test]
    fn the_shared_playlist_follows_every_change_of_the_window() {
        let mut window = Window::new(2);
        window.push(T0, 2_000, false, Bytes::new(), Vec::new());
        let first = window.shared_media_playlist();
        assert_eq!(first, window.media_playlist());
        assert_eq!(
            first.as_ptr(),
            window.shared_media_playlist().as_ptr(),
            "rendered once, shared"
        );
        let pushed = window.push(T0 + 2_000, 2_000, false, Bytes::new(), Vec::new());
        let second = window.shared_media_playlist();
        assert_eq!(second, window.media_playlist());
        assert!(std::str::from_utf8(&second).unwrap().contains(&pushed.name));
        let mut adopted = Window::new(3);
        let before = adopted.shared_media_playlist();
        adopted.adopt(1, 5);
        assert_ne!(adopted.shared_media_playlist(), before);
        assert_eq!(adopted.shared_media_playlist(), adopted.media_playlist());
    }

    #[test]
    fn target_duration_covers_the_longest_segment() {
        let mut window = Window::new(4);
        window.push(T0, 4_000, false, Bytes::new(), Vec::new());
        window.push(T0 + 4_000, 6_400, false, Bytes::new(), Vec::new());
        let parsed = m3u8_rs::parse_media_playlist_res(window.media_playlist().as_bytes()).unwrap();
        assert_eq!(parsed.target_duration, 7);
    }

    #[test]
    fn master_playlist_names_the_rendition() {
        let text = master_playlist(
            &Rendition {
                bandwidth_bps: 350_000,
                width: Some(640),
                height: Some(360),
                codecs: vec!["avc1.42c01e".into(), "mp4a.40.2".into()],
            },
            "tracks-v1a1/mono.m3u8",
        );
        match m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap() {
            m3u8_rs::Playlist::MasterPlaylist(master) => {
                assert_eq!(master.variants[0].uri, "tracks-v1a1/mono.m3u8");
                assert_eq!(master.variants[0].resolution.unwrap().width, 640);
            }
            other => panic!("not a master playlist: {other:?}"),
        }
    }
}
