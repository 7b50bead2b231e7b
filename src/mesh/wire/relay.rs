//! The relay's frames: a stream's media from the node that has it to a node that serves
//! it too (see `crate::relay` for the protocol; this is only its encoding).
//!
//! A relay frame is `[length: u32 BE][head length: u16 BE][bincode head][payload]`. The
//! head says what the frame is; the payload (a media frame's access unit, a part of a
//! segment) travels as raw bytes after it, sliced from the received buffer without a
//! copy and never walked by bincode. The protocol version is not repeated in every frame:
//! the subscription's first frame (`Message::Subscribe`, a mesh frame) carries it, and an
//! origin of another version refuses that one. A media frame costs its payload plus ~14
//! bytes (a 1-byte kind, a flags byte, the dts as a varint, pts − dts as a zigzag varint). The length is checked against
//! [`MAX_RELAY_FRAME_BYTES`] before anything is allocated, and every field is checked
//! after decoding: a peer's frame can make this node refuse the subscription, never
//! panic or allocate past a limit.

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use super::{MAX_TEXT_BYTES, WireError};
use crate::media::cmaf::TrackInit;
use crate::media::frame::{Codec, Frame, MAX_FRAME_BYTES, VIDEO_TRACK};
use crate::media::program::{Language, MAX_TRACKS};
use crate::media::ts::mux::MuxState;
use crate::media::window::Rendition;

/// Largest relay frame: the largest media frame a node accepts from any input, plus room
/// for its head.
pub const MAX_RELAY_FRAME_BYTES: usize = MAX_FRAME_BYTES + 64 * 1024;
/// Largest head (bincode) of a relay frame.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// A whole segment travels in parts of at most this many bytes.
pub const SEGMENT_PART_BYTES: usize = 1024 * 1024;
/// Longest segment name (Flussonic's `YYYY/MM/DD/HH/MM/SS-DDDDD-SEQ.ts` is ~40 bytes).
pub const MAX_SEGMENT_NAME_BYTES: usize = 128;
/// Largest CMAF init segment a relay frame carries (an init with big parameter sets is
/// about 1 KiB).
pub const MAX_INIT_BYTES: usize = 8 * 1024;

/// Most codec strings a rendition names, and the longest one.
pub const MAX_CODECS: usize = 8;
pub const MAX_CODEC_BYTES: usize = 64;

/// One segment as the origin's window has it, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentMeta {
    pub sequence: u64,
    pub name: String,
    pub duration_ms: u64,
    pub program_date_time_ms: u64,
    pub discontinuity: bool,
}

/// What the master playlist says, as it travels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireRendition {
    pub bandwidth_bps: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub codecs: Vec<String>,
}

impl From<&Rendition> for WireRendition {
    fn from(rendition: &Rendition) -> WireRendition {
        WireRendition {
            bandwidth_bps: rendition.bandwidth_bps,
            width: rendition.width,
            height: rendition.height,
            codecs: rendition.codecs.clone(),
        }
    }
}

impl From<WireRendition> for Rendition {
    fn from(rendition: WireRendition) -> Rendition {
        Rendition {
            bandwidth_bps: rendition.bandwidth_bps,
            width: rendition.width,
            height: rendition.height,
            codecs: rendition.codecs,
        }
    }
}

/// A track's CMAF init segment as it travels (see `media::cmaf::TrackInit`; its version
/// is the digest of `bytes`, computed again on arrival).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireInit {
    pub track: u8,
    pub codec: u8,
    pub timescale: u32,
    pub codec_string: String,
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub channels: u8,
    pub bytes: Vec<u8>,
}

impl From<&TrackInit> for WireInit {
    fn from(init: &TrackInit) -> WireInit {
        WireInit {
            track: init.track,
            codec: codec_number(init.codec),
            timescale: init.timescale,
            codec_string: init.codec_string.clone(),
            width: init.width,
            height: init.height,
            sample_rate: init.sample_rate,
            channels: init.channels,
            bytes: init.bytes.to_vec(),
        }
    }
}

impl WireInit {
    /// The init it carries (checked by the wire: a known codec).
    pub fn to_init(&self) -> Option<TrackInit> {
        Some(TrackInit::from_parts(
            self.track,
            codec_of(self.codec)?,
            self.timescale,
            self.codec_string.clone(),
            (self.width, self.height),
            (self.sample_rate, self.channels),
            Bytes::copy_from_slice(&self.bytes),
        ))
    }
}

/// A part of a whole segment's CMAF fragments: its length and duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePart {
    pub len: u32,
    pub duration: u64,
    pub independent: bool,
}

/// What a relay frame is. Frames with a payload say so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RelayHead {
    /// The first frame of a subscription: the stream's shape at the origin.
    Start {
        segment_count: u32,
        segment_duration_ms: u64,
        /// Discontinuities that already left the origin's window.
        discontinuity_sequence: u64,
        /// The longest CMAF part the origin cuts.
        part_duration_ms: u64,
        /// Unix ms of the origin's time zero (the DASH availability start).
        timeline_origin_ms: u64,
        rendition: WireRendition,
    },
    /// A part of a whole segment (payload: its bytes from `offset`); `last` ends it.
    Segment {
        meta: SegmentMeta,
        offset: u64,
        last: bool,
    },
    /// A track's CMAF init: the next `Fragments` of that track are in it.
    Init { init: WireInit },
    /// One track's CMAF fragments of the whole segment `sequence` (payload: its bytes
    /// from `offset`; `last` ends them), sent before that segment's `Segment` parts;
    /// `parts` tile the bytes.
    Fragments {
        sequence: u64,
        track: u8,
        start: u64,
        duration: u64,
        parts: Vec<WirePart>,
        offset: u64,
        last: bool,
    },
    /// Live frames follow; the next segment starts with the next frame, muxed from
    /// `mux`.
    Resume { mux: MuxState },
    /// One access unit (payload: its bytes). `flags`: the codec in the low bits
    /// ([`CODEC_MASK`]), then [`KEYFRAME`] and [`IN_SEGMENT`] (the origin's segment
    /// holds it: a new source's frames before its first keyframe go to live viewers
    /// only). `track`: its track number. `pts_offset`: pts − dts.
    Frame {
        flags: u8,
        track: u8,
        dts: u64,
        pts_offset: i64,
    },
    /// The frames since the last `Resume` or `Cut` make the segment `meta`; the next
    /// one starts muxed from `next`, with a frame at `next_dts`.
    Cut {
        meta: SegmentMeta,
        next: MuxState,
        next_dts: u64,
        rendition: WireRendition,
    },
    /// The origin ends the subscription (the stream stopped or is not there).
    End { reason: String },
}

/// One decoded relay frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayFrame {
    pub head: RelayHead,
    pub payload: Bytes,
}

/// The codec's bits of a media frame's flags.
pub const CODEC_MASK: u8 = 0x0f;
/// A media frame's flag: a keyframe.
pub const KEYFRAME: u8 = 0x10;
/// A media frame's flag: in the origin's segment.
pub const IN_SEGMENT: u8 = 0x20;

impl RelayFrame {
    /// A media frame's relay frame.
    pub fn frame(frame: &Frame, in_segment: bool) -> RelayFrame {
        let mut flags = codec_number(frame.codec);
        if frame.keyframe {
            flags |= KEYFRAME;
        }
        if in_segment {
            flags |= IN_SEGMENT;
        }
        RelayFrame {
            head: RelayHead::Frame {
                flags,
                track: frame.track,
                dts: frame.dts,
                pts_offset: frame.pts.wrapping_sub(frame.dts) as i64,
            },
            payload: frame.data.clone(),
        }
    }

    /// The media frame this relay frame carries, and whether it is in the origin's
    /// segment, if it is one.
    pub fn as_frame(&self) -> Option<(Frame, bool)> {
        match self.head {
            RelayHead::Frame {
                flags,
                track,
                dts,
                pts_offset,
            } => Some((
                Frame {
                    codec: codec_of(flags & CODEC_MASK)?,
                    track,
                    dts,
                    pts: dts.wrapping_add(pts_offset as u64),
                    keyframe: flags & KEYFRAME != 0,
                    data: self.payload.clone(),
                },
                flags & IN_SEGMENT != 0,
            )),
            _ => None,
        }
    }
}

/// The codec numbers of the relay protocol (never reused: a number names one codec in
/// every version).
fn codec_number(codec: Codec) -> u8 {
    match codec {
        Codec::H264 => 1,
        Codec::Aac => 2,
        Codec::H265 => 3,
        Codec::Mpeg2Video => 4,
        Codec::MpegAudio => 5,
        Codec::Ac3 => 6,
        Codec::Eac3 => 7,
        Codec::Opus => 8,
    }
}

fn codec_of(number: u8) -> Option<Codec> {
    match number {
        1 => Some(Codec::H264),
        2 => Some(Codec::Aac),
        3 => Some(Codec::H265),
        4 => Some(Codec::Mpeg2Video),
        5 => Some(Codec::MpegAudio),
        6 => Some(Codec::Ac3),
        7 => Some(Codec::Eac3),
        8 => Some(Codec::Opus),
        _ => None,
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_HEAD_BYTES>()
}

/// Encodes a relay frame: the bytes before the payload (length, head length, head), then the
/// payload as it is (written after them without a copy).
pub fn encode(frame: &RelayFrame) -> Result<(Vec<u8>, Bytes), WireError> {
    validate(frame)?;
    let head = bincode::serde::encode_to_vec(&frame.head, config())
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    let length = 2 + head.len() + frame.payload.len();
    if length > MAX_RELAY_FRAME_BYTES {
        return Err(WireError::TooLarge(length));
    }
    let mut prefix = Vec::with_capacity(6 + head.len());
    prefix.extend_from_slice(&(length as u32).to_be_bytes());
    prefix.extend_from_slice(&(head.len() as u16).to_be_bytes());
    prefix.extend_from_slice(&head);
    Ok((prefix, frame.payload.clone()))
}

/// The body length announced by a relay frame header, checked before reading the body.
pub fn body_length(header: [u8; 4]) -> Result<usize, WireError> {
    let length = u32::from_be_bytes(header) as usize;
    if length > MAX_RELAY_FRAME_BYTES {
        return Err(WireError::TooLarge(length));
    }
    if length < 2 {
        return Err(WireError::Truncated);
    }
    Ok(length)
}

/// Decodes a relay frame body (everything after the length).
pub fn decode_body(body: Bytes) -> Result<RelayFrame, WireError> {
    let [head_high, head_low, ..] = body[..] else {
        return Err(WireError::Truncated);
    };
    let head_length = u16::from_be_bytes([head_high, head_low]) as usize;
    if head_length > MAX_HEAD_BYTES || 2 + head_length > body.len() {
        return Err(WireError::Truncated);
    }
    let (head, used): (RelayHead, usize) =
        bincode::serde::decode_from_slice(&body[2..2 + head_length], config())
            .map_err(|e| WireError::Malformed(e.to_string()))?;
    if used != head_length {
        return Err(WireError::Malformed(format!(
            "{} trailing bytes in the head",
            head_length - used
        )));
    }
    let frame = RelayFrame {
        head,
        payload: body.slice(2 + head_length..),
    };
    validate(&frame)?;
    Ok(frame)
}

/// Decodes one whole relay frame (length included).
pub fn decode(frame: &[u8]) -> Result<RelayFrame, WireError> {
    let header: [u8; 4] = frame
        .get(..4)
        .ok_or(WireError::Truncated)?
        .try_into()
        .expect("4 bytes");
    let length = body_length(header)?;
    let body = frame.get(4..4 + length).ok_or(WireError::Truncated)?;
    if frame.len() != 4 + length {
        return Err(WireError::Malformed("bytes after the frame".into()));
    }
    decode_body(BytesMut::from(body).freeze())
}

/// A segment name a viewer's path can name: a relative path of the characters stream
/// paths allow, without `.` or `..` components, ending in `.ts`.
fn segment_name(name: &str) -> Result<(), WireError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_SEGMENT_NAME_BYTES
        && name.ends_with(".ts")
        && name.bytes().all(crate::media::name::allowed_byte)
        && name
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..");
    if valid {
        Ok(())
    } else {
        Err(WireError::Limit("not a segment name"))
    }
}

fn rendition(rendition: &WireRendition) -> Result<(), WireError> {
    if rendition.codecs.len() > MAX_CODECS
        || rendition.codecs.iter().any(|c| c.len() > MAX_CODEC_BYTES)
    {
        return Err(WireError::Limit("too many or too long codec strings"));
    }
    Ok(())
}

fn mux(state: &MuxState) -> Result<(), WireError> {
    if state.counters.iter().any(|c| *c > 15) || state.version > 31 {
        return Err(WireError::Limit("muxer state out of range"));
    }
    // Video only on the video track, audio only on the others, languages of letters.
    let misplaced = state.tracks.iter().any(|(number, track)| {
        track.codec.is_video() != (number == VIDEO_TRACK)
            || track
                .language
                .is_some_and(|language| Language::new(language.bytes()) != Some(language))
    });
    if misplaced {
        return Err(WireError::Malformed(
            "a program with misplaced tracks".into(),
        ));
    }
    Ok(())
}

fn no_payload(frame: &RelayFrame) -> Result<(), WireError> {
    if frame.payload.is_empty() {
        Ok(())
    } else {
        Err(WireError::Malformed("a payload where none belongs".into()))
    }
}

fn validate(frame: &RelayFrame) -> Result<(), WireError> {
    match &frame.head {
        RelayHead::Start {
            segment_count,
            part_duration_ms,
            rendition: shape,
            ..
        } => {
            if *segment_count == 0 || *segment_count > crate::config::schema::MAX_SEGMENT_COUNT {
                return Err(WireError::Limit("segment count out of range"));
            }
            let parts = crate::config::schema::PART_DURATION_RANGE_MS;
            if !(u64::from(*parts.start())..=u64::from(*parts.end())).contains(part_duration_ms) {
                return Err(WireError::Limit("part duration out of range"));
            }
            rendition(shape)?;
            no_payload(frame)
        }
        RelayHead::Segment { meta, offset, .. } => {
            segment_name(&meta.name)?;
            if offset.saturating_add(frame.payload.len() as u64)
                > crate::media::segmenter::MAX_SEGMENT_BYTES as u64
                || frame.payload.len() > SEGMENT_PART_BYTES
            {
                return Err(WireError::Limit("segment too large"));
            }
            Ok(())
        }
        RelayHead::Init { init } => {
            let known = codec_of(init.codec)
                .is_some_and(|codec| codec.is_video() == (init.track == VIDEO_TRACK));
            if !known
                || usize::from(init.track) >= MAX_TRACKS
                || init.timescale == 0
                || init.bytes.len() > MAX_INIT_BYTES
                || init.codec_string.len() > MAX_CODEC_BYTES
            {
                return Err(WireError::Malformed("a CMAF init out of range".into()));
            }
            no_payload(frame)
        }
        RelayHead::Fragments {
            track,
            parts,
            offset,
            ..
        } => {
            let total: u64 = parts.iter().map(|part| u64::from(part.len)).sum();
            if usize::from(*track) >= MAX_TRACKS
                || parts.is_empty()
                || parts.len() > crate::media::cmaf::packager::MAX_PARTS_PER_SEGMENT
                || total > crate::media::segmenter::MAX_SEGMENT_BYTES as u64
                || offset.saturating_add(frame.payload.len() as u64) > total
                || frame.payload.len() > SEGMENT_PART_BYTES
            {
                return Err(WireError::Limit("CMAF fragments out of range"));
            }
            Ok(())
        }
        RelayHead::Resume { mux: state } => {
            mux(state)?;
            no_payload(frame)
        }
        RelayHead::Frame { flags, track, .. } => {
            let codec = codec_of(flags & CODEC_MASK);
            let track_fits = usize::from(*track) < MAX_TRACKS
                && codec.is_some_and(|codec| codec.is_video() == (*track == VIDEO_TRACK));
            if codec.is_none() || !track_fits || flags & !(CODEC_MASK | KEYFRAME | IN_SEGMENT) != 0
            {
                return Err(WireError::Malformed(format!(
                    "unknown frame flags {flags:#x} or track {track}"
                )));
            }
            if frame.payload.is_empty() {
                return Err(WireError::Malformed("an empty media frame".into()));
            }
            Ok(())
        }
        RelayHead::Cut {
            meta,
            next,
            rendition: shape,
            ..
        } => {
            segment_name(&meta.name)?;
            mux(next)?;
            rendition(shape)?;
            no_payload(frame)
        }
        RelayHead::End { reason } => {
            if reason.len() > MAX_TEXT_BYTES {
                return Err(WireError::Limit("a reason is too long"));
            }
            no_payload(frame)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn meta(name: &str) -> SegmentMeta {
        SegmentMeta {
            sequence: 7,
            name: name.into(),
            duration_ms: 2_000,
            program_date_time_ms: 1_800_000_000_000,
            discontinuity: false,
        }
    }

    fn whole(frame: &RelayFrame) -> Vec<u8> {
        let (mut prefix, payload) = encode(frame).unwrap();
        prefix.extend_from_slice(&payload);
        prefix
    }

    #[test]
    fn frames_round_trip_with_their_payload() {
        let media = Frame {
            codec: Codec::H264,
            track: 0,
            dts: 90_000,
            pts: 93_600,
            keyframe: true,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x65, 1, 2, 3]),
        };
        let frame = RelayFrame::frame(&media, true);
        let decoded = decode(&whole(&frame)).unwrap();
        assert_eq!(decoded.as_frame(), Some((media, true)));
        let cut = RelayFrame {
            head: RelayHead::Cut {
                meta: meta("2026/12/07/10/00/00-02000.ts"),
                next: MuxState::default(),
                next_dts: 180_000,
                rendition: WireRendition::default(),
            },
            payload: Bytes::new(),
        };
        assert_eq!(decode(&whole(&cut)).unwrap(), cut);
        // The head costs ~30 bytes at most: a 2 KiB audio frame travels in ~2 KiB.
        let audio = RelayFrame::frame(
            &Frame {
                codec: Codec::Aac,
                track: 3,
                dts: 1 << 33,
                pts: 1 << 33,
                keyframe: true,
                data: Bytes::from(vec![1u8; 2048]),
            },
            true,
        );
        assert!(whole(&audio).len() <= 2048 + 32, "{}", whole(&audio).len());
    }

    fn init(track: u8, codec: u8, bytes: usize) -> RelayHead {
        RelayHead::Init {
            init: WireInit {
                track,
                codec,
                timescale: 90_000,
                codec_string: "avc1.64001f".into(),
                width: 640,
                height: 360,
                sample_rate: 0,
                channels: 0,
                bytes: vec![7; bytes],
            },
        }
    }

    fn fragments(parts: Vec<WirePart>, offset: u64) -> RelayHead {
        RelayHead::Fragments {
            sequence: 9,
            track: 0,
            start: 900_000,
            duration: 90_000,
            parts,
            offset,
            last: true,
        }
    }

    const PART: WirePart = WirePart {
        len: 4,
        duration: 18_000,
        independent: true,
    };

    #[test]
    fn cmaf_inits_and_fragments_round_trip_and_stay_in_bounds() {
        let frame = RelayFrame {
            head: init(0, 1, 700),
            payload: Bytes::new(),
        };
        let decoded = decode(&whole(&frame)).unwrap();
        assert_eq!(decoded, frame);
        let RelayHead::Init { init: wire } = &decoded.head else {
            unreachable!()
        };
        let back = wire.to_init().unwrap();
        assert_eq!(WireInit::from(&back), *wire);
        let frame = RelayFrame {
            head: fragments(vec![PART, PART], 0),
            payload: Bytes::from_static(b"12345678"),
        };
        assert_eq!(decode(&whole(&frame)).unwrap(), frame);
        let refused = [
            (init(0, 2, 10), Bytes::new()), // audio on the video track
            (init(0, 1, MAX_INIT_BYTES + 1), Bytes::new()), // an init too large
            (init(0, 99, 10), Bytes::new()), // an unknown codec
            (fragments(vec![], 0), Bytes::new()), // no parts
            (fragments(vec![PART], 2), Bytes::from_static(b"1234")), // past the parts
        ];
        for (head, payload) in refused {
            let frame = RelayFrame { head, payload };
            assert!(encode(&frame).is_err(), "{frame:?}");
        }
    }

    #[test]
    fn refuses_what_a_peer_must_not_send() {
        let with = |head: RelayHead, payload: &'static [u8]| RelayFrame {
            head,
            payload: Bytes::from_static(payload),
        };
        let bad_names = ["../../etc/passwd.ts", "a/./b.ts", "x.m3u8", "", "a//b.ts"];
        for name in bad_names {
            let frame = with(
                RelayHead::Segment {
                    meta: meta(name),
                    offset: 0,
                    last: true,
                },
                b"",
            );
            assert!(encode(&frame).is_err(), "{name}");
        }
        let bad_counter = with(
            RelayHead::Resume {
                mux: MuxState {
                    counters: [16, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    ..MuxState::default()
                },
            },
            b"",
        );
        assert!(encode(&bad_counter).is_err());
        let unknown_codec = with(
            RelayHead::Frame {
                flags: 9,
                track: 0,
                dts: 0,
                pts_offset: 0,
            },
            b"x",
        );
        assert!(encode(&unknown_codec).is_err());
        // Audio on the video track, a track past the last one, video in an audio slot.
        for (flags, track) in [(2, 0), (2, MAX_TRACKS as u8), (1, 1)] {
            let misplaced = with(
                RelayHead::Frame {
                    flags,
                    track,
                    dts: 0,
                    pts_offset: 0,
                },
                b"x",
            );
            assert!(
                encode(&misplaced).is_err(),
                "codec {flags} on track {track}"
            );
        }
        let video_as_audio = with(
            RelayHead::Resume {
                mux: MuxState {
                    tracks: crate::media::program::Tracks::EMPTY.with(2, Codec::H265),
                    ..MuxState::default()
                },
            },
            b"",
        );
        assert!(encode(&video_as_audio).is_err());
        let stray_payload = with(
            RelayHead::End {
                reason: "bye".into(),
            },
            b"x",
        );
        assert!(encode(&stray_payload).is_err());
        // An announced length past the limit is refused before any body is read.
        let huge = ((MAX_RELAY_FRAME_BYTES + 1) as u32).to_be_bytes();
        assert!(matches!(body_length(huge), Err(WireError::TooLarge(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = decode(&bytes);
            let _ = decode_body(Bytes::from(bytes));
        }
    }
}
