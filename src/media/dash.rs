//! The MPEG-DASH live manifest (ISO/IEC 23009-1, DASH-IF IOP live profile): one Period,
//! an AdaptationSet per track with a `SegmentTemplate` over a `SegmentTimeline`, times
//! taken from the stream's timeline so that every node serving the stream writes the
//! same MPD. A pure function of a window snapshot (`media::cmaf::playlist` takes it from a
//! stream's window).

use std::fmt::Write;

use crate::format::{escape_markup, rfc3339};

/// One track of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    /// `v1`, `a1`… (the representation id and the segment URIs' track name).
    pub id: String,
    pub video: bool,
    /// RFC 6381, e.g. `avc1.64001f`, `mp4a.40.2`.
    pub codecs: String,
    pub bandwidth_bps: u64,
    /// Video picture size.
    pub width: u32,
    pub height: u32,
    /// Audio sample rate.
    pub sample_rate: u32,
    /// ISO 639 language of an audio track.
    pub language: Option<String>,
    /// Ticks per second of the track's times.
    pub timescale: u32,
    /// The init segment's URI.
    pub initialization: String,
    /// The number of the first segment in `segments` (the stream's media sequence).
    pub first_number: u64,
    /// The window's segments of this track, oldest first, on `timescale`.
    pub segments: Vec<Segment>,
}

/// One segment of the window, on the track's timescale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub start: u64,
    pub duration: u64,
}

/// What the manifest is rendered from.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// When the stream's timeline started (Unix ms): `availabilityStartTime`.
    pub availability_start_ms: u64,
    /// `publishTime` (Unix ms): the newest segment's end on the stream's wall clock —
    /// not the serving node's clock, so that every node writes the same manifest.
    pub published_ms: u64,
    pub segment_duration_ms: u64,
    /// The window's length: `timeShiftBufferDepth`.
    pub window_ms: u64,
    pub tracks: Vec<Track>,
}

/// `PT1.500S`.
fn duration(ms: u64) -> String {
    format!("PT{}.{:03}S", ms / 1000, ms % 1000)
}

/// The MPD of `manifest`.
pub fn render(manifest: &Manifest) -> String {
    let mut out = String::with_capacity(2048);
    let _ = write!(
        out,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" profiles=\"urn:mpeg:dash:profile:isoff-live:2011\" \
         type=\"dynamic\" availabilityStartTime=\"{}\" publishTime=\"{}\" \
         minimumUpdatePeriod=\"{}\" minBufferTime=\"{}\" timeShiftBufferDepth=\"{}\" \
         suggestedPresentationDelay=\"{}\">\n\
         <Period id=\"0\" start=\"PT0S\">\n",
        rfc3339(manifest.availability_start_ms),
        rfc3339(manifest.published_ms),
        duration(manifest.segment_duration_ms),
        duration(manifest.segment_duration_ms * 2),
        duration(manifest.window_ms),
        duration(manifest.segment_duration_ms * 3),
    );
    for track in &manifest.tracks {
        let kind = if track.video { "video" } else { "audio" };
        let _ = write!(
            out,
            "<AdaptationSet id=\"{}\" contentType=\"{kind}\" mimeType=\"{kind}/mp4\" segmentAlignment=\"true\" startWithSAP=\"1\"",
            escape_markup(&track.id)
        );
        if let Some(language) = &track.language {
            let _ = write!(out, " lang=\"{}\"", escape_markup(language));
        }
        out.push_str(">\n");
        let _ = write!(
            out,
            "<SegmentTemplate timescale=\"{}\" initialization=\"{}\" media=\"$RepresentationID$-$Number$.m4s\" startNumber=\"{}\">\n<SegmentTimeline>\n",
            track.timescale,
            escape_markup(&track.initialization),
            track.first_number
        );
        timeline(&mut out, &track.segments);
        out.push_str("</SegmentTimeline>\n</SegmentTemplate>\n");
        let _ = write!(
            out,
            "<Representation id=\"{}\" codecs=\"{}\" bandwidth=\"{}\"",
            escape_markup(&track.id),
            escape_markup(&track.codecs),
            track.bandwidth_bps
        );
        if track.video {
            let _ = write!(
                out,
                " width=\"{}\" height=\"{}\"",
                track.width, track.height
            );
            out.push_str("/>\n");
        } else {
            let _ = writeln!(out, " audioSamplingRate=\"{}\"/>", track.sample_rate);
        }
        out.push_str("</AdaptationSet>\n");
    }
    out.push_str("</Period>\n</MPD>\n");
    out
}

/// `<S t d r>` entries: runs of equal durations folded, a gap starts a new `t`.
fn timeline(out: &mut String, segments: &[Segment]) {
    let mut index = 0;
    let mut expected_start: Option<u64> = None;
    while index < segments.len() {
        let segment = segments[index];
        let mut repeat = 0;
        while let Some(next) = segments.get(index + repeat + 1) {
            let previous = segments[index + repeat];
            if next.duration != segment.duration || next.start != previous.start + previous.duration
            {
                break;
            }
            repeat += 1;
        }
        out.push_str("<S");
        if expected_start != Some(segment.start) {
            let _ = write!(out, " t=\"{}\"", segment.start);
        }
        let _ = write!(out, " d=\"{}\"", segment.duration);
        if repeat > 0 {
            let _ = write!(out, " r=\"{repeat}\"");
        }
        out.push_str("/>\n");
        let last = segments[index + repeat];
        expected_start = Some(last.start + last.duration);
        index += repeat + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let seg = |start, duration| Segment { start, duration };
        let video = Track {
            id: "v1".into(),
            video: true,
            codecs: "avc1.64001f".into(),
            bandwidth_bps: 2_000_000,
            width: 1280,
            height: 720,
            sample_rate: 0,
            language: None,
            timescale: 90_000,
            initialization: "init-v1-0a0b0c0d.mp4".into(),
            first_number: 41,
            segments: vec![
                seg(180_000, 180_000),
                seg(360_000, 180_000),
                seg(540_000, 171_000),
            ],
        };
        let audio = Track {
            id: "a1".into(),
            video: false,
            codecs: "mp4a.40.2".into(),
            bandwidth_bps: 128_000,
            width: 0,
            height: 0,
            sample_rate: 48_000,
            language: Some("eng".into()),
            timescale: 48_000,
            initialization: "init-a1-01020304.mp4".into(),
            first_number: 41,
            segments: vec![
                seg(96_000, 96_256),
                seg(192_256, 95_744),
                seg(288_000, 96_000),
            ],
        };
        Manifest {
            availability_start_ms: 1_796_600_000_000,
            published_ms: 1_796_600_060_000,
            segment_duration_ms: 2_000,
            window_ms: 6_000,
            tracks: vec![video, audio],
        }
    }

    #[test]
    fn equal_durations_fold_into_repeats_and_a_change_starts_a_new_entry() {
        let mpd = render(&manifest());
        assert!(
            mpd.contains("<S t=\"180000\" d=\"180000\" r=\"1\"/>\n<S d=\"171000\"/>"),
            "{mpd}"
        );
        assert!(mpd.contains("startNumber=\"41\""));
        assert!(mpd.contains("type=\"dynamic\" availabilityStartTime=\"2026-"));
        assert!(mpd.contains("timeShiftBufferDepth=\"PT6.000S\""));
        assert!(mpd.contains("<Representation id=\"v1\" codecs=\"avc1.64001f\" bandwidth=\"2000000\" width=\"1280\" height=\"720\"/>"));
        assert!(mpd.contains("lang=\"eng\""));
        assert!(mpd.contains("audioSamplingRate=\"48000\""));
    }

    #[test]
    fn a_gap_in_the_timeline_restates_the_start() {
        let mut out = String::new();
        timeline(
            &mut out,
            &[
                Segment {
                    start: 0,
                    duration: 10,
                },
                Segment {
                    start: 20,
                    duration: 10,
                },
            ],
        );
        assert_eq!(out, "<S t=\"0\" d=\"10\"/>\n<S t=\"20\" d=\"10\"/>\n");
    }

    #[test]
    fn the_same_window_renders_the_same_bytes() {
        assert_eq!(render(&manifest()), render(&manifest()));
    }
}
