//! A track's CMAF initialization segment, built from the track's frames: the video
//! keyframe that opens a segment (its parameter sets) or an audio frame (its header).
//! The init is named after a digest of its bytes, so a codec change makes a new name
//! (players fetch it anew) and every node serving the stream names it the same.

use std::sync::Arc;

use bytes::Bytes;

use crate::media::fmp4::{TrackConfig, TrackKind, aac, avc, hevc, init_segment};
use crate::media::frame::{CLOCK_HZ, Codec, Frame, VIDEO_TRACK};

/// Video times stay on the stream's 90 kHz clock.
pub const VIDEO_TIMESCALE: u32 = CLOCK_HZ as u32;

/// Samples per channel in one AAC frame (AAC-LC, HE-AAC's core).
pub const AAC_FRAME_SAMPLES: u32 = 1024;

/// One track's init segment and what playlists and manifests say about the track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInit {
    /// The track's number in the stream's program.
    pub track: u8,
    pub codec: Codec,
    /// Ticks per second of the track's CMAF times: 90 kHz for video, the sample rate
    /// for audio (an AAC frame is then exactly 1,024 ticks).
    pub timescale: u32,
    /// RFC 6381 codec string (`avc1.64001f`, `mp4a.40.2`).
    pub codec_string: String,
    pub width: u32,
    pub height: u32,
    pub sample_rate: u32,
    pub channels: u8,
    /// A digest of `bytes`: the init's name.
    pub version: u32,
    pub bytes: Bytes,
}

impl TrackInit {
    /// The init of `frame`'s track, from what the frame carries; `None` when it cannot
    /// start a track (a video frame without parameter sets) or its codec has no CMAF
    /// packaging here (MPEG-2 video, MPEG audio, AC-3, E-AC-3: served over TS only).
    /// H.264 and H.265 video, AAC and Opus audio.
    pub fn of(frame: &Frame) -> Option<Arc<TrackInit>> {
        let video = frame.keyframe && frame.track == VIDEO_TRACK;
        let (kind, timescale, codec_string, width, height, sample_rate, channels) =
            match frame.codec {
                Codec::H264 | Codec::H265 if video => {
                    let info = crate::media::video::info(frame.codec, &frame.data)?;
                    let (width, height) = (
                        u16::try_from(info.width).ok()?,
                        u16::try_from(info.height).ok()?,
                    );
                    let kind = if frame.codec == Codec::H264 {
                        let avcc = avc::decoder_configuration(&frame.data)?;
                        TrackKind::Avc {
                            width,
                            height,
                            avcc,
                        }
                    } else {
                        let hvcc = hevc::decoder_configuration(&frame.data)?;
                        TrackKind::Hevc {
                            width,
                            height,
                            hvcc,
                        }
                    };
                    let (width, height) = (info.width, info.height);
                    (kind, VIDEO_TIMESCALE, info.codec?, width, height, 0, 0)
                }
                Codec::Aac => {
                    let header = crate::media::aac::parse_header(&frame.data)?;
                    let asc = aac::audio_specific_config(&header)?;
                    let kind = TrackKind::Aac {
                        sample_rate: header.sample_rate,
                        channels: u16::from(header.channels),
                        asc,
                    };
                    let codec_string = crate::media::aac::codec_string(&header).to_string();
                    let rate = header.sample_rate;
                    (kind, rate, codec_string, 0, 0, rate, header.channels)
                }
                Codec::Opus => {
                    let info = crate::media::audio::info(Codec::Opus, &frame.data)?;
                    let rate = crate::media::audio::OPUS_SAMPLE_RATE;
                    let kind = TrackKind::Opus {
                        channels: info.channels,
                    };
                    (
                        kind,
                        rate,
                        info.codec.to_string(),
                        0,
                        0,
                        rate,
                        info.channels,
                    )
                }
                _ => return None,
            };
        let bytes = init_segment(&[TrackConfig {
            id: 1,
            timescale,
            kind,
        }]);
        Some(Arc::new(TrackInit::from_parts(
            frame.track,
            frame.codec,
            timescale,
            codec_string,
            (width, height),
            (sample_rate, channels),
            bytes,
        )))
    }

    /// An init from its parts (one made here, or one that travelled between nodes); its
    /// version is the digest of `bytes`, as on the node that made it.
    pub fn from_parts(
        track: u8,
        codec: Codec,
        timescale: u32,
        codec_string: String,
        (width, height): (u32, u32),
        (sample_rate, channels): (u32, u8),
        bytes: Bytes,
    ) -> TrackInit {
        TrackInit {
            track,
            codec,
            timescale,
            codec_string,
            width,
            height,
            sample_rate,
            channels,
            version: digest(&bytes),
            bytes,
        }
    }

    /// Whether this init describes `frame` as well: the same codec and configuration.
    /// Audio frames are compared by their header; video keyframes by their parameter
    /// sets (other video frames carry none and always fit).
    pub fn fits(&self, frame: &Frame) -> bool {
        if frame.codec != self.codec {
            return false;
        }
        match frame.codec {
            Codec::Aac => crate::media::aac::parse_header(&frame.data).is_some_and(|header| {
                header.sample_rate == self.sample_rate && header.channels == self.channels
            }),
            // One configuration: 48 kHz, stereo as WebRTC declares it.
            Codec::Opus => true,
            _ if frame.keyframe => {
                TrackInit::of(frame).is_none_or(|other| other.version == self.version)
            }
            _ => true,
        }
    }
}

/// 32-bit FNV-1a: names inits apart (a collision only reuses a name across a codec
/// change, which a player then sees as the same init).
fn digest(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash: u32, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// The track's name in URLs and manifests: `v1` for the video, `aN` for audio track N.
pub fn track_name(track: u8) -> String {
    if track == VIDEO_TRACK {
        "v1".to_string()
    } else {
        format!("a{track}")
    }
}

/// The track number a name like `v1` or `a2` stands for.
pub fn track_of_name(name: &str) -> Option<u8> {
    match name.as_bytes() {
        [b'v', b'1'] => Some(VIDEO_TRACK),
        [b'a', ..] => name[1..]
            .parse::<u8>()
            .ok()
            .filter(|n| *n != VIDEO_TRACK && usize::from(*n) < crate::media::program::MAX_TRACKS)
            .filter(|n| track_name(*n) == name),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn track_names_round_trip_and_refuse_lookalikes() {
        for track in 0..crate::media::program::MAX_TRACKS as u8 {
            assert_eq!(track_of_name(&track_name(track)), Some(track));
        }
        for bad in ["v2", "a0", "a01", "a", "a99999", "x1", ""] {
            assert_eq!(track_of_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_opus_frame_gives_an_opus_init_with_its_dops_box() {
        let frame = Frame {
            codec: Codec::Opus,
            track: crate::media::frame::FIRST_AUDIO_TRACK,
            dts: 0,
            pts: 0,
            keyframe: true,
            data: Bytes::from_static(&[0xf8, 0xff, 0xfe]),
        };
        let init = TrackInit::of(&frame).unwrap();
        assert_eq!(init.codec_string, "opus");
        assert_eq!(
            (init.timescale, init.sample_rate, init.channels),
            (48_000, 48_000, 2)
        );
        let at = |name: &[u8]| init.bytes.windows(4).position(|w| w == name);
        let entry = at(b"Opus").expect("an Opus sample entry");
        let dops = at(b"dOps").expect("a dOps box");
        assert!(dops > entry);
        // Version 0, 2 channels, pre-skip 0, 48 kHz input, gain 0, mapping family 0.
        assert_eq!(
            &init.bytes[dops + 4..dops + 15],
            &[0, 2, 0, 0, 0, 0, 0xbb, 0x80, 0, 0, 0]
        );
        assert!(init.fits(&frame));
    }

    #[test]
    fn the_test_clip_gives_an_avc_and_an_aac_init() {
        let mut clip = crate::media::source::ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        let (mut video, mut audio) = (None, None);
        while video.is_none() || audio.is_none() {
            let (frame, _) = clip.next_frame();
            if frame.starts_gop() && video.is_none() {
                video = TrackInit::of(&frame);
                assert!(video.as_ref().unwrap().fits(&frame));
            } else if !frame.codec.is_video() && audio.is_none() {
                audio = TrackInit::of(&frame);
            }
        }
        let (video, audio) = (video.unwrap(), audio.unwrap());
        assert_eq!((video.width, video.height), (640, 360));
        assert!(video.codec_string.starts_with("avc1."));
        assert_eq!(audio.codec_string, "mp4a.40.2");
        assert_eq!(audio.timescale, audio.sample_rate);
        assert_ne!(video.version, audio.version);
    }
}
