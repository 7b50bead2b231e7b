//! The CMAF outputs of a stream's window: the LL-HLS master and per-track media
//! playlists, the DASH manifest, and the names of the resources they point to.
//!
//! Names (relative to `/NAME/`), the same on every node serving the stream:
//!
//! | name | what |
//! |---|---|
//! | `index.ll.m3u8` | LL-HLS master: the video playlist, audio as a rendition group |
//! | `v1.ll.m3u8`, `a1.ll.m3u8` | a track's LL-HLS media playlist |
//! | `index.mpd` (`Manifest.mpd`) | the DASH manifest |
//! | `init-v1-0a1b2c3d.mp4` | a track's init segment, named by its digest |
//! | `v1-123.m4s` | a track's segment 123 (HLS and DASH) |
//! | `v1-123.4.m4s` | part 4 of it (LL-HLS) |
//!
//! A track's playlist lists the newest run of segments that carry the track, at most
//! `segment_count` sealed ones, then the parts of the segment being written.

use std::fmt::Write;

use super::track_init::{TrackInit, track_name, track_of_name};
use crate::format::rfc3339;
use crate::media::dash;
use crate::media::llhls::{self, Progress, RenditionReport};
use crate::media::window::{Segment, Window};

/// A CMAF resource a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Master,
    MediaPlaylist {
        track: u8,
    },
    Manifest,
    Init {
        track: u8,
        version: u32,
    },
    Segment {
        track: u8,
        sequence: u64,
    },
    Part {
        track: u8,
        sequence: u64,
        index: u32,
    },
}

/// The resource `rest` (the path after the stream name) names, if it is one.
pub fn resource(rest: &str) -> Option<Resource> {
    match rest {
        "index.ll.m3u8" => return Some(Resource::Master),
        "index.mpd" | "Manifest.mpd" => return Some(Resource::Manifest),
        _ => {}
    }
    if let Some(track) = rest.strip_suffix(".ll.m3u8") {
        return Some(Resource::MediaPlaylist {
            track: track_of_name(track)?,
        });
    }
    if let Some(init) = rest
        .strip_prefix("init-")
        .and_then(|r| r.strip_suffix(".mp4"))
    {
        let (track, version) = init.split_once('-')?;
        if version.len() != 8 {
            return None;
        }
        return Some(Resource::Init {
            track: track_of_name(track)?,
            version: u32::from_str_radix(version, 16).ok()?,
        });
    }
    let media = rest.strip_suffix(".m4s")?;
    let (track, number) = media.split_once('-')?;
    let track = track_of_name(track)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    match number.split_once('.') {
        None if digits(number) => Some(Resource::Segment {
            track,
            sequence: number.parse().ok()?,
        }),
        Some((sequence, index)) if digits(sequence) && digits(index) => Some(Resource::Part {
            track,
            sequence: sequence.parse().ok()?,
            index: index.parse().ok()?,
        }),
        _ => None,
    }
}

pub fn init_name(init: &TrackInit) -> String {
    format!("init-{}-{:08x}.mp4", track_name(init.track), init.version)
}

pub fn segment_name(track: u8, sequence: u64) -> String {
    format!("{}-{sequence}.m4s", track_name(track))
}

pub fn part_name(track: u8, sequence: u64, index: usize) -> String {
    format!("{}-{sequence}.{index}.m4s", track_name(track))
}

pub fn playlist_name(track: u8) -> String {
    format!("{}.ll.m3u8", track_name(track))
}

/// How the stream's CMAF is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub part_target_ms: u64,
    /// Sealed segments a playlist lists.
    pub segment_count: usize,
}

/// The newest run of sealed segments carrying `track` with one init (an init change
/// starts a new run in DASH; HLS writes a new `EXT-X-MAP`), oldest first, at most
/// `count`; for HLS the run goes on across init changes.
fn run(window: &Window, track: u8, count: usize, same_init: bool) -> Vec<&Segment> {
    let mut run: Vec<&Segment> = Vec::new();
    let mut init_version = None;
    for segment in window.held().rev() {
        let Some(fragments) = segment.cmaf_track(track) else {
            break;
        };
        let version = fragments.init.version;
        if same_init && *init_version.get_or_insert(version) != version {
            break;
        }
        run.push(segment);
        if same_init && segment.discontinuity {
            break;
        }
    }
    run.truncate(count);
    run.reverse();
    run
}

/// How far `track`'s playlist has come: the segment being written and its parts.
pub fn progress(window: &Window, track: u8) -> Progress {
    let parts = window
        .open_parts()
        .track(track)
        .map_or(0, |(_, parts)| parts.len());
    Progress {
        last_msn: window.next_sequence(),
        parts_of_last: parts as u32,
    }
}

/// The tracks the stream's CMAF carries now: those of the newest sealed segment, and
/// those the segment being written has parts of.
pub fn tracks(window: &Window) -> Vec<std::sync::Arc<TrackInit>> {
    let mut inits: Vec<std::sync::Arc<TrackInit>> = window
        .held()
        .last()
        .map(|s| s.cmaf.iter().map(|t| t.init.clone()).collect())
        .unwrap_or_default();
    for init in window.open_parts().inits() {
        match inits.iter_mut().find(|known| known.track == init.track) {
            Some(known) => *known = init.clone(),
            None => inits.push(init.clone()),
        }
    }
    inits.sort_by_key(|init| init.track);
    inits
}

/// `track`'s LL-HLS media playlist; `None` while the window has no sealed segment of it.
pub fn media_playlist(window: &Window, track: u8, shape: Shape, skip: bool) -> Option<String> {
    let sealed = run(window, track, shape.segment_count, false);
    let open = window.open_parts().track(track);
    if sealed.is_empty() {
        // Players start from a complete segment.
        return None;
    }
    let mut segments: Vec<llhls::Segment> = sealed
        .iter()
        .map(|segment| {
            let fragments = segment
                .cmaf_track(track)
                .expect("the run carries the track");
            let timescale = f64::from(fragments.init.timescale);
            llhls::Segment {
                uri: Some(segment_name(track, segment.sequence)),
                init_uri: init_name(&fragments.init),
                duration_s: fragments.duration as f64 / timescale,
                discontinuity: segment.discontinuity,
                program_date_time: Some(rfc3339(segment.program_date_time_ms)),
                parts: fragments
                    .parts
                    .iter()
                    .enumerate()
                    .map(|(index, span)| llhls::Part {
                        uri: part_name(track, segment.sequence, index),
                        duration_s: span.duration as f64 / timescale,
                        independent: span.independent,
                    })
                    .collect(),
            }
        })
        .collect();
    let sequence = window.next_sequence();
    let open_parts = open.map_or(0, |(_, parts)| parts.len());
    // The segment being written, with the parts it has (a sealed segment's last init
    // stands for it until its first part).
    let open_init = open.map(|(init, _)| init.clone()).or_else(|| {
        sealed
            .last()
            .and_then(|s| s.cmaf_track(track))
            .map(|t| t.init.clone())
    })?;
    let timescale = f64::from(open_init.timescale);
    segments.push(llhls::Segment {
        uri: None,
        init_uri: init_name(&open_init),
        duration_s: 0.0,
        discontinuity: false,
        program_date_time: None,
        parts: open
            .map(|(_, parts)| {
                parts
                    .iter()
                    .enumerate()
                    .map(|(index, part)| llhls::Part {
                        uri: part_name(track, sequence, index),
                        duration_s: part.duration as f64 / timescale,
                        independent: part.independent,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    });
    let longest_s = segments.iter().map(|s| s.duration_s).fold(0.0, f64::max);
    let media_sequence = sealed.first().map_or(sequence, |s| s.sequence);
    let hidden_discontinuities = window
        .held()
        .take_while(|s| s.sequence < media_sequence)
        .filter(|s| s.discontinuity)
        .count() as u64;
    let rendition_reports = tracks(window)
        .iter()
        .filter(|init| init.track != track)
        .map(|init| {
            let other = progress(window, init.track);
            RenditionReport {
                uri: playlist_name(init.track),
                last_msn: other.last_msn,
                last_part: other.parts_of_last.checked_sub(1),
            }
        })
        .collect();
    let rendered = llhls::Window {
        target_duration_s: (longest_s.ceil() as u32).max(1),
        part_target_s: shape.part_target_ms as f64 / 1000.0,
        media_sequence,
        discontinuity_sequence: window.discontinuity_sequence() + hidden_discontinuities,
        segments,
        preload_hint: Some(part_name(track, sequence, open_parts)),
        rendition_reports,
    };
    Some(llhls::render(&rendered, skip))
}

/// The LL-HLS master playlist: the video track's playlist as the variant, audio tracks
/// as a rendition group (the first is the default); an audio-only stream's variant is
/// its first audio track. `None` before the stream has CMAF tracks.
pub fn master_playlist(window: &Window, bandwidth_bps: u64) -> Option<String> {
    let inits = tracks(window);
    let video = inits.iter().find(|init| init.codec.is_video());
    let audio: Vec<_> = inits.iter().filter(|init| !init.codec.is_video()).collect();
    let main = video.or(audio.first().copied())?;
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let grouped = video.is_some() && !audio.is_empty();
    if grouped {
        for (index, init) in audio.iter().enumerate() {
            let default = if index == 0 { "YES" } else { "NO" };
            let _ = writeln!(
                out,
                "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"{}\",DEFAULT={default},AUTOSELECT=YES,CHANNELS=\"{}\",URI=\"{}\"",
                track_name(init.track),
                init.channels,
                playlist_name(init.track)
            );
        }
    }
    let mut codecs = vec![main.codec_string.as_str()];
    if grouped {
        codecs.push(audio[0].codec_string.as_str());
    }
    let _ = write!(
        out,
        "#EXT-X-STREAM-INF:BANDWIDTH={},CODECS=\"{}\"",
        bandwidth_bps.max(100_000),
        codecs.join(",")
    );
    if main.codec.is_video() {
        let _ = write!(out, ",RESOLUTION={}x{}", main.width, main.height);
    }
    if grouped {
        out.push_str(",AUDIO=\"audio\"");
    }
    let _ = writeln!(out, "\n{}", playlist_name(main.track));
    Some(out)
}

/// The DASH manifest: an adaptation set per track over its newest run of segments
/// with one init. `availability_start_ms` is the Unix time of the stream's time zero
/// (see `LiveStream::timeline_origin_ms`). `None` before the stream has sealed
/// segments with CMAF.
pub fn manifest(
    window: &Window,
    availability_start_ms: u64,
    segment_count: usize,
) -> Option<String> {
    let newest = window.held().last()?;
    let mut tracks = Vec::new();
    for fragments in &newest.cmaf {
        let track = fragments.track();
        let run = run(window, track, segment_count, true);
        let first = run.first()?;
        let init = &fragments.init;
        let mut bytes = 0u64;
        let mut duration = 0u64;
        let segments = run
            .iter()
            .filter_map(|segment| segment.cmaf_track(track))
            .map(|t| {
                bytes += t.data.len() as u64;
                duration += t.duration;
                dash::Segment {
                    start: t.start,
                    duration: t.duration,
                }
            })
            .collect();
        let bandwidth_bps = (bytes * 8 * u64::from(init.timescale))
            .checked_div(duration)
            .unwrap_or(0);
        tracks.push(dash::Track {
            id: track_name(track),
            video: init.codec.is_video(),
            codecs: init.codec_string.clone(),
            bandwidth_bps,
            width: init.width,
            height: init.height,
            sample_rate: init.sample_rate,
            language: None,
            timescale: init.timescale,
            initialization: init_name(init),
            first_number: first.sequence,
            segments,
        });
    }
    if tracks.is_empty() {
        // The stream's newest segment has no CMAF: no codec of it has a packaging.
        return None;
    }
    let window_ms: u64 = window.advertised().map(|segment| segment.duration_ms).sum();
    // The window's longest segment in whole seconds: the same on every node serving it.
    let segment_duration_ms = window
        .advertised()
        .map(|segment| segment.duration_ms)
        .max()
        .unwrap_or(0)
        .div_ceil(1000)
        .max(1)
        * 1000;
    Some(dash::render(&dash::Manifest {
        availability_start_ms,
        published_ms: newest.program_date_time_ms + newest.duration_ms,
        segment_duration_ms,
        window_ms,
        tracks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_request_path_is_named_or_refused_without_panicking(path in ".{0,64}") {
            let _ = resource(&path);
            let _ = llhls::directives(Some(&path));
        }

        #[test]
        fn every_name_written_parses_back(track in 0u8..8, sequence in any::<u64>(), index in 0usize..600) {
            prop_assert_eq!(resource(&segment_name(track, sequence)), Some(Resource::Segment { track, sequence }));
            prop_assert_eq!(
                resource(&part_name(track, sequence, index)),
                Some(Resource::Part { track, sequence, index: index as u32 })
            );
            prop_assert_eq!(resource(&playlist_name(track)), Some(Resource::MediaPlaylist { track }));
        }
    }

    #[test]
    fn names_parse_back_and_strangers_do_not() {
        assert_eq!(resource("index.ll.m3u8"), Some(Resource::Master));
        assert_eq!(resource("Manifest.mpd"), Some(Resource::Manifest));
        assert_eq!(
            resource("a1.ll.m3u8"),
            Some(Resource::MediaPlaylist { track: 1 })
        );
        assert_eq!(
            resource("init-v1-0a1b2c3d.mp4"),
            Some(Resource::Init {
                track: 0,
                version: 0x0a1b2c3d
            })
        );
        assert_eq!(
            resource(&segment_name(0, 123)),
            Some(Resource::Segment {
                track: 0,
                sequence: 123
            })
        );
        assert_eq!(
            resource(&part_name(2, 7, 4)),
            Some(Resource::Part {
                track: 2,
                sequence: 7,
                index: 4
            })
        );
        for stranger in [
            "v1-.m4s",
            "v1-1.2.3.m4s",
            "v2-1.m4s",
            "v1-+1.m4s",
            "init-v1-xyz.mp4",
            "init-v1-0a1b2c3d0.mp4",
            "v1.m3u8",
            "v1-99999999999999999999999.m4s",
        ] {
            assert_eq!(resource(stranger), None, "{stranger}");
        }
    }
}
