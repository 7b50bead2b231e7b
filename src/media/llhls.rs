//! Low-Latency HLS playlist rules (RFC 8216bis §6.2.5–6.2.6, §4.4.3.7–4.4.5.2): the
//! delivery directives a client adds to a playlist request, whether a blocked request
//! can be answered now, must wait, or is refused, and the media playlist with parts,
//! preload hint, server control, delta updates and rendition reports. Pure functions
//! of a window snapshot (`media::cmaf::playlist` takes it from a stream's window).

use std::fmt::Write;

/// Delivery directives of a playlist request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    /// `_HLS_msn`: answer once the playlist holds this media sequence number…
    pub msn: Option<u64>,
    /// `_HLS_part`: …and this part of it.
    pub part: Option<u32>,
    /// `_HLS_skip=YES|v2`: a delta update is welcome.
    pub skip: bool,
}

/// Why directives are refused (400: the client's fault; retrying the same is useless).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectiveError {
    #[error("`{0}` is not a valid value of {1}")]
    Value(String, &'static str),
    #[error("_HLS_part without _HLS_msn")]
    PartWithoutMsn,
    #[error("_HLS_msn {msn} is more than two segments beyond the last one ({last})")]
    TooFar { msn: u64, last: u64 },
}

/// The directives of `query` (other parameters, like a session token, are ignored).
pub fn directives(query: Option<&str>) -> Result<Directives, DirectiveError> {
    let mut found = Directives::default();
    for pair in query.unwrap_or_default().split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "_HLS_msn" => {
                found.msn = Some(
                    value
                        .parse()
                        .map_err(|_| DirectiveError::Value(value.into(), "_HLS_msn"))?,
                )
            }
            "_HLS_part" => {
                found.part = Some(
                    value
                        .parse()
                        .map_err(|_| DirectiveError::Value(value.into(), "_HLS_part"))?,
                )
            }
            "_HLS_skip" => match value {
                "YES" | "v2" => found.skip = true,
                other => return Err(DirectiveError::Value(other.into(), "_HLS_skip")),
            },
            _ => {}
        }
    }
    if found.part.is_some() && found.msn.is_none() {
        return Err(DirectiveError::PartWithoutMsn);
    }
    Ok(found)
}

/// What the playlist has now: its last media sequence number (the segment being
/// written counts: its parts are listed) and how many parts of it are complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub last_msn: u64,
    pub parts_of_last: u32,
}

/// What to do with a request carrying `directives`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Answer now.
    Now,
    /// Hold the request until the playlist grows (at most three target durations).
    Wait,
}

/// Whether a request with `directives` can be answered given `progress` (§6.2.5.2: a
/// request more than two segments ahead is refused at once, never held).
pub fn readiness(directives: &Directives, progress: Progress) -> Result<Readiness, DirectiveError> {
    let Some(msn) = directives.msn else {
        return Ok(Readiness::Now);
    };
    if msn > progress.last_msn + 2 {
        return Err(DirectiveError::TooFar {
            msn,
            last: progress.last_msn,
        });
    }
    // Without a part, segment `msn` must be complete: the last one is still written.
    let ready = match directives.part {
        None => msn < progress.last_msn,
        Some(part) => {
            msn < progress.last_msn || (msn == progress.last_msn && part < progress.parts_of_last)
        }
    };
    Ok(if ready {
        Readiness::Now
    } else {
        Readiness::Wait
    })
}

/// A part of a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub uri: String,
    pub duration_s: f64,
    /// It starts with a keyframe.
    pub independent: bool,
}

/// A segment of the window: complete, or the one being written (no `uri` yet).
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub uri: Option<String>,
    /// Its init segment (`EXT-X-MAP`, written again where it changes).
    pub init_uri: String,
    pub duration_s: f64,
    pub discontinuity: bool,
    /// `EXT-X-PROGRAM-DATE-TIME` of its start, RFC 3339 (unknown for the one being
    /// written until it is sealed).
    pub program_date_time: Option<String>,
    /// Its parts (listed for the last few segments only).
    pub parts: Vec<Part>,
}

/// The window a playlist is rendered from.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub target_duration_s: u32,
    pub part_target_s: f64,
    pub media_sequence: u64,
    pub discontinuity_sequence: u64,
    pub segments: Vec<Segment>,
    /// The part the next request will find (`EXT-X-PRELOAD-HINT`).
    pub preload_hint: Option<String>,
    /// Where the stream's other renditions are (`EXT-X-RENDITION-REPORT`).
    pub rendition_reports: Vec<RenditionReport>,
}

/// The progress of another rendition of the stream, so that a client switching to it
/// can ask for the right part at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    pub uri: String,
    pub last_msn: u64,
    pub last_part: Option<u32>,
}

/// Segments whose parts are listed (the spec asks for the last three target durations
/// at least; parts of older segments are left out).
pub const SEGMENTS_WITH_PARTS: usize = 3;

/// The media playlist of `window`; with `skip`, older segments are replaced by
/// `EXT-X-SKIP` (a delta update) when the window is long enough to skip any.
pub fn render(window: &Window, skip: bool) -> String {
    let mut out = String::with_capacity(2048);
    let hold_back = window.part_target_s * 3.0;
    // Delta updates may skip segments older than six target durations from the end.
    let skip_until = f64::from(window.target_duration_s) * 6.0;
    let _ = write!(
        out,
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:{}\n\
         #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={hold_back:.3},CAN-SKIP-UNTIL={skip_until:.1}\n\
         #EXT-X-PART-INF:PART-TARGET={:.3}\n#EXT-X-MEDIA-SEQUENCE:{}\n",
        window.target_duration_s, window.part_target_s, window.media_sequence
    );
    if window.discontinuity_sequence > 0 {
        let _ = writeln!(
            out,
            "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
            window.discontinuity_sequence
        );
    }
    // Skippable: complete segments whose end is older than `skip_until` from the end.
    let mut skipped = 0;
    if skip {
        let mut from_end = 0.0;
        let mut keep = 0;
        for segment in window.segments.iter().rev() {
            if from_end >= skip_until && segment.uri.is_some() {
                break;
            }
            from_end += segment.duration_s;
            keep += 1;
        }
        skipped = window.segments.len() - keep;
        if skipped > 0 {
            let _ = writeln!(out, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
    }
    let with_parts_from = window.segments.len().saturating_sub(SEGMENTS_WITH_PARTS);
    let mut init_uri: Option<&str> = None;
    for (index, segment) in window.segments.iter().enumerate().skip(skipped) {
        if segment.discontinuity {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        if init_uri != Some(segment.init_uri.as_str()) {
            let _ = writeln!(out, "#EXT-X-MAP:URI=\"{}\"", segment.init_uri);
            init_uri = Some(&segment.init_uri);
        }
        if let Some(date) = &segment.program_date_time {
            let _ = writeln!(out, "#EXT-X-PROGRAM-DATE-TIME:{date}");
        }
        if index >= with_parts_from {
            for part in &segment.parts {
                let _ = write!(
                    out,
                    "#EXT-X-PART:DURATION={:.3},URI=\"{}\"",
                    part.duration_s, part.uri
                );
                if part.independent {
                    out.push_str(",INDEPENDENT=YES");
                }
                out.push('\n');
            }
        }
        if let Some(uri) = &segment.uri {
            let _ = writeln!(out, "#EXTINF:{:.3},\n{uri}", segment.duration_s);
        }
    }
    if let Some(hint) = &window.preload_hint {
        let _ = writeln!(out, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{hint}\"");
    }
    for report in &window.rendition_reports {
        let _ = write!(
            out,
            "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
            report.uri, report.last_msn
        );
        if let Some(part) = report.last_part {
            let _ = write!(out, ",LAST-PART={part}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_read_and_checked() {
        assert_eq!(directives(None), Ok(Directives::default()));
        assert_eq!(
            directives(Some("token=x&_HLS_msn=12&_HLS_part=3&_HLS_skip=YES")),
            Ok(Directives {
                msn: Some(12),
                part: Some(3),
                skip: true
            })
        );
        assert_eq!(
            directives(Some("_HLS_part=1")),
            Err(DirectiveError::PartWithoutMsn)
        );
        assert!(directives(Some("_HLS_msn=-1")).is_err());
        assert!(directives(Some("_HLS_skip=maybe")).is_err());
    }

    #[test]
    fn far_future_requests_are_refused_at_once_and_near_ones_wait() {
        let progress = Progress {
            last_msn: 10,
            parts_of_last: 2,
        };
        let ask = |msn, part| {
            readiness(
                &Directives {
                    msn: Some(msn),
                    part,
                    skip: false,
                },
                progress,
            )
        };
        assert_eq!(ask(9, None), Ok(Readiness::Now));
        assert_eq!(ask(10, Some(1)), Ok(Readiness::Now));
        assert_eq!(ask(10, Some(2)), Ok(Readiness::Wait));
        assert_eq!(ask(10, None), Ok(Readiness::Wait));
        assert_eq!(ask(12, Some(0)), Ok(Readiness::Wait));
        assert_eq!(
            ask(13, None),
            Err(DirectiveError::TooFar { msn: 13, last: 10 })
        );
    }

    fn window(segments: usize) -> Window {
        let part = |n: usize, i: usize| Part {
            uri: format!("s{n}.{i}.m4s"),
            duration_s: 0.2,
            independent: i == 0,
        };
        Window {
            target_duration_s: 1,
            part_target_s: 0.2,
            media_sequence: 100,
            discontinuity_sequence: 0,
            segments: (0..segments)
                .map(|n| Segment {
                    uri: (n + 1 < segments).then(|| format!("s{n}.m4s")),
                    init_uri: "init.mp4".into(),
                    duration_s: 1.0,
                    discontinuity: false,
                    program_date_time: Some(format!("2026-12-07T00:00:{n:02}.000Z")),
                    parts: (0..if n + 1 < segments { 5 } else { 2 })
                        .map(|i| part(n, i))
                        .collect(),
                })
                .collect(),
            preload_hint: Some(format!("s{}.2.m4s", segments - 1)),
            rendition_reports: vec![RenditionReport {
                uri: "a1.ll.m3u8".into(),
                last_msn: 100 + segments as u64 - 1,
                last_part: Some(1),
            }],
        }
    }

    #[test]
    fn the_playlist_lists_recent_parts_and_hints_the_next() {
        let text = render(&window(8), false);
        assert!(text.contains("#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600"));
        assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.200"));
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\""));
        // Parts of the last three segments only, the open one's included.
        assert!(!text.contains("s4.0.m4s"));
        assert!(text.contains("#EXT-X-PART:DURATION=0.200,URI=\"s5.0.m4s\",INDEPENDENT=YES"));
        assert!(text.contains("URI=\"s7.1.m4s\"\n"));
        assert!(text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"s7.2.m4s\"\n"));
        assert!(
            text.ends_with("#EXT-X-RENDITION-REPORT:URI=\"a1.ll.m3u8\",LAST-MSN=107,LAST-PART=1\n")
        );
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1);
        assert_eq!(text.matches("#EXTINF").count(), 7);
        // Every part is within the part target.
        assert!(!text.contains("DURATION=0.3"));
    }

    #[test]
    fn a_delta_update_skips_segments_older_than_six_target_durations() {
        let text = render(&window(12), true);
        // The last six seconds stay: the open segment and five complete ones.
        assert!(text.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=6"), "{text}");
        assert_eq!(text.matches("#EXTINF").count(), 5);
        let short = render(&window(4), true);
        assert!(!short.contains("#EXT-X-SKIP"));
    }
}
