//! FLV tag bodies (what RTMP carries) ↔ frames.
//!
//! Inbound (publish): AVC NAL units come length-prefixed with their SPS/PPS in a separate
//! sequence header; they become Annex-B access units with SPS/PPS put back before every
//! keyframe, so that any keyframe starts a decodable segment. AAC frames come raw with an
//! AudioSpecificConfig; they get an ADTS header each.
//!
//! Outbound (play): the reverse, with the sequence headers built from the stream's own
//! SPS/PPS and ADTS headers.

use bytes::{BufMut, Bytes, BytesMut};

use crate::media::aac;
use crate::media::frame::{Codec, FIRST_AUDIO_TRACK, Frame, MAX_FRAME_BYTES, VIDEO_TRACK};
use crate::media::h264::{self, NAL_PPS, NAL_SPS};
use crate::media::program::Tracks;

/// FLV codec ids.
const CODEC_AVC: u8 = 7;
const SOUND_AAC: u8 = 10;

/// What an inbound tag turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Frame(Frame),
    /// A sequence header or anything else that carries no frame.
    Nothing,
}

/// Why an inbound tag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    #[error("video codec {0} is not H.264 (only AVC is supported)")]
    VideoCodec(u8),
    #[error("audio format {0} is not AAC")]
    AudioFormat(u8),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("a frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
}

/// Per-publisher conversion state (codec configuration seen so far).
#[derive(Debug, Default)]
pub struct Depacketizer {
    length_size: usize,
    parameter_sets: Vec<Bytes>,
    /// (object type, sampling frequency index, channel configuration) from the ASC.
    audio_config: Option<(u8, u8, u8)>,
}

fn annexb_start() -> &'static [u8] {
    &[0, 0, 0, 1]
}

impl Depacketizer {
    pub fn new() -> Depacketizer {
        Depacketizer {
            length_size: 4,
            ..Depacketizer::default()
        }
    }

    /// The tracks whose codec configuration (sequence header) arrived.
    pub fn declared_tracks(&self) -> Tracks {
        Tracks::simple(
            (!self.parameter_sets.is_empty()).then_some(Codec::H264),
            self.audio_config.map(|_| Codec::Aac),
        )
    }

    /// A video tag body with its RTMP timestamp (ms).
    pub fn video(&mut self, body: &[u8], timestamp_ms: u32) -> Result<Inbound, FlvError> {
        let [header, packet_type, c0, c1, c2, payload @ ..] = body else {
            return Err(FlvError::Malformed("video tag"));
        };
        if header & 0x0f != CODEC_AVC {
            return Err(FlvError::VideoCodec(header & 0x0f));
        }
        let keyframe_tag = header >> 4 == 1;
        // Composition time: signed 24-bit milliseconds.
        let composition = i32::from_be_bytes([0, *c0, *c1, *c2]) << 8 >> 8;
        match packet_type {
            0 => {
                if !payload.is_empty() {
                    self.read_sequence_header(payload)?;
                }
                Ok(Inbound::Nothing)
            }
            1 => {
                let data = self.to_annexb(payload)?;
                if data.is_empty() {
                    return Ok(Inbound::Nothing);
                }
                let keyframe = keyframe_tag || h264::is_keyframe(&data);
                let data = if keyframe {
                    self.with_parameter_sets(data)
                } else {
                    data
                };
                let dts = u64::from(timestamp_ms) * 90;
                let pts = (dts as i64 + i64::from(composition) * 90).max(0) as u64;
                Ok(Inbound::Frame(Frame {
                    codec: Codec::H264,
                    track: VIDEO_TRACK,
                    dts,
                    pts: pts.max(dts),
                    keyframe,
                    data,
                }))
            }
            _ => Ok(Inbound::Nothing),
        }
    }

    fn read_sequence_header(&mut self, record: &[u8]) -> Result<(), FlvError> {
        let malformed = || FlvError::Malformed("AVC sequence header");
        let parsed = h264_reader::avcc::AvcDecoderConfigurationRecord::try_from(record)
            .map_err(|_| malformed())?;
        self.length_size = usize::from(parsed.length_size_minus_one()) + 1;
        let mut sets = Vec::new();
        for set in parsed
            .sequence_parameter_sets()
            .chain(parsed.picture_parameter_sets())
        {
            sets.push(Bytes::copy_from_slice(set.map_err(|_| malformed())?));
        }
        self.parameter_sets = sets;
        Ok(())
    }

    fn to_annexb(&self, mut payload: &[u8]) -> Result<Bytes, FlvError> {
        let mut out = BytesMut::with_capacity(payload.len() + 16);
        while !payload.is_empty() {
            if payload.len() < self.length_size {
                return Err(FlvError::Malformed("NAL length"));
            }
            let length = payload[..self.length_size]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            let nal = payload
                .get(self.length_size..self.length_size + length)
                .ok_or(FlvError::Malformed("NAL unit"))?;
            if out.len() + nal.len() + 4 > MAX_FRAME_BYTES {
                return Err(FlvError::TooLarge(out.len() + nal.len()));
            }
            out.put_slice(annexb_start());
            out.put_slice(nal);
            payload = &payload[self.length_size + length..];
        }
        Ok(out.freeze())
    }

    /// Puts the stream's SPS/PPS before a keyframe that lacks them.
    fn with_parameter_sets(&self, data: Bytes) -> Bytes {
        let has_sps = h264::nal_units(&data).any(|nal| h264::nal_type(nal) == NAL_SPS);
        if has_sps || self.parameter_sets.is_empty() {
            return data;
        }
        let mut out = BytesMut::with_capacity(data.len() + 64);
        for set in &self.parameter_sets {
            out.put_slice(annexb_start());
            out.put_slice(set);
        }
        out.put_slice(&data);
        out.freeze()
    }

    /// An audio tag body with its RTMP timestamp (ms).
    pub fn audio(&mut self, body: &[u8], timestamp_ms: u32) -> Result<Inbound, FlvError> {
        let [header, packet_type, payload @ ..] = body else {
            return Err(FlvError::Malformed("audio tag"));
        };
        if header >> 4 != SOUND_AAC {
            return Err(FlvError::AudioFormat(header >> 4));
        }
        match packet_type {
            0 => {
                // Encoders that learn their configuration late (ffmpeg remuxing ADTS) send
                // an empty header first and the real one later.
                let [first, second, ..] = payload else {
                    return Ok(Inbound::Nothing);
                };
                let object_type = first >> 3;
                let frequency_index = ((first & 0x07) << 1) | (second >> 7);
                let channels = (second >> 3) & 0x0f;
                if object_type == 0 || frequency_index > 12 {
                    return Err(FlvError::Malformed("AudioSpecificConfig"));
                }
                self.audio_config = Some((object_type, frequency_index, channels));
                Ok(Inbound::Nothing)
            }
            1 => {
                let Some((object_type, frequency_index, channels)) = self.audio_config else {
                    return Ok(Inbound::Nothing);
                };
                let length = payload.len() + 7;
                if length >= 1 << 13 {
                    return Err(FlvError::TooLarge(length));
                }
                let mut out = BytesMut::with_capacity(length);
                out.put_slice(&adts_header(object_type, frequency_index, channels, length));
                out.put_slice(payload);
                let dts = u64::from(timestamp_ms) * 90;
                Ok(Inbound::Frame(Frame {
                    codec: Codec::Aac,
                    track: FIRST_AUDIO_TRACK,
                    dts,
                    pts: dts,
                    keyframe: true,
                    data: out.freeze(),
                }))
            }
            _ => Ok(Inbound::Nothing),
        }
    }
}

/// A 7-byte ADTS header (no CRC) for a frame of `length` bytes including the header.
fn adts_header(object_type: u8, frequency_index: u8, channels: u8, length: usize) -> [u8; 7] {
    let profile = object_type.saturating_sub(1) & 0x03;
    [
        0xff,
        0xf1,
        (profile << 6) | (frequency_index << 2) | (channels >> 2),
        ((channels & 0x03) << 6) | ((length >> 11) as u8 & 0x03),
        (length >> 3) as u8,
        ((length as u8 & 0x07) << 5) | 0x1f,
        0xfc,
    ]
}

/// The FLV bodies a player needs before frames: (AVC sequence header, AAC config).
pub fn sequence_headers(
    keyframe: Option<&Frame>,
    audio: Option<&Frame>,
) -> (Option<Bytes>, Option<Bytes>) {
    let video = keyframe
        .filter(|f| f.codec == Codec::H264)
        .and_then(|frame| {
            let sps = h264::nal_units(&frame.data).find(|n| h264::nal_type(n) == NAL_SPS)?;
            let pps = h264::nal_units(&frame.data).find(|n| h264::nal_type(n) == NAL_PPS)?;
            if sps.len() < 4 {
                return None;
            }
            let mut out = BytesMut::with_capacity(16 + sps.len() + pps.len());
            out.put_slice(&[0x17, 0, 0, 0, 0]);
            // AVCDecoderConfigurationRecord: version, profile, compatibility, level, 4-byte lengths.
            out.put_slice(&[1, sps[1], sps[2], sps[3], 0xff, 0xe1]);
            out.put_u16(sps.len() as u16);
            out.put_slice(sps);
            out.put_u8(1);
            out.put_u16(pps.len() as u16);
            out.put_slice(pps);
            Some(out.freeze())
        });
    let audio = audio.filter(|f| f.codec == Codec::Aac).and_then(|frame| {
        let header = aac::parse_header(&frame.data)?;
        let frequency_index = ((frame.data[2] >> 2) & 0x0f) as u16;
        let config = (u16::from(header.object_type) << 11)
            | (frequency_index << 7)
            | (u16::from(header.channels) << 3);
        let mut out = BytesMut::with_capacity(4);
        out.put_slice(&[0xaf, 0]);
        out.put_u16(config);
        Some(out.freeze())
    });
    (video, audio)
}

/// A frame as FLV tag bodies (one for video; one per ADTS frame for audio, with its
/// offset in ms from the frame's dts). Only H.264 and AAC have FLV bodies: callers decide
/// what to do with a stream of other codecs before they get here (`super::carriage`);
/// a frame of another codec has none.
pub fn packetize(frame: &Frame) -> Vec<(Bytes, u32)> {
    match frame.codec {
        Codec::H264 => {
            let mut out = BytesMut::with_capacity(frame.data.len() + 16);
            let composition = ((frame.pts.saturating_sub(frame.dts)) / 90) as u32;
            out.put_u8(if frame.keyframe { 0x17 } else { 0x27 });
            out.put_u8(1);
            out.put_slice(&composition.to_be_bytes()[1..]);
            for nal in h264::nal_units(&frame.data) {
                // Parameter sets travel in the sequence header; AUDs are not used in FLV.
                if matches!(h264::nal_type(nal), NAL_SPS | NAL_PPS | 9) {
                    continue;
                }
                out.put_u32(nal.len() as u32);
                out.put_slice(nal);
            }
            vec![(out.freeze(), 0)]
        }
        Codec::Aac => aac::frames(&frame.data)
            .enumerate()
            .map(|(index, (header, adts))| {
                let mut out = BytesMut::with_capacity(adts.len());
                out.put_slice(&[0xaf, 1]);
                out.put_slice(&adts[header.header_length..]);
                let offset_ms =
                    index as u64 * aac::SAMPLES_PER_FRAME * 1000 / u64::from(header.sample_rate);
                (out.freeze(), offset_ms as u32)
            })
            .collect(),
        Codec::H265
        | Codec::Mpeg2Video
        | Codec::MpegAudio
        | Codec::Ac3
        | Codec::Eac3
        | Codec::Opus => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::source::ClipFrames;

    /// The clip's frames through FLV and back are the same media.
    #[test]
    fn frames_survive_the_round_trip_through_flv() {
        let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).unwrap();
        let frames: Vec<Frame> = (0..60).map(|_| clip.next_frame().0).collect();
        let keyframe = frames.iter().find(|f| f.starts_gop()).unwrap();
        let audio = frames.iter().find(|f| !f.codec.is_video()).unwrap();
        let (video_header, audio_header) = sequence_headers(Some(keyframe), Some(audio));
        let mut depacketizer = Depacketizer::new();
        assert_eq!(
            depacketizer.video(&video_header.unwrap(), 0).unwrap(),
            Inbound::Nothing
        );
        assert_eq!(
            depacketizer.audio(&audio_header.unwrap(), 0).unwrap(),
            Inbound::Nothing
        );
        for frame in &frames {
            for (body, offset) in packetize(frame) {
                let timestamp = (frame.dts / 90) as u32 + offset;
                let inbound = if frame.codec.is_video() {
                    depacketizer.video(&body, timestamp).unwrap()
                } else {
                    depacketizer.audio(&body, timestamp).unwrap()
                };
                let Inbound::Frame(back) = inbound else {
                    panic!("no frame back")
                };
                assert_eq!(back.codec, frame.codec);
                assert_eq!(back.keyframe, frame.keyframe);
                if frame.codec.is_video() {
                    assert_eq!(back.dts / 90, frame.dts / 90);
                    let original: Vec<&[u8]> = h264::nal_units(&frame.data)
                        .filter(|n| h264::nal_type(n) != 9)
                        .collect();
                    let returned: Vec<&[u8]> = h264::nal_units(&back.data).collect();
                    assert_eq!(
                        returned, original,
                        "NAL units (SPS/PPS restored on keyframes)"
                    );
                } else {
                    let header = aac::parse_header(&back.data).unwrap();
                    assert_eq!((header.sample_rate, header.channels), (48_000, 1));
                }
            }
        }
    }

    #[test]
    fn hostile_tags_are_errors_not_panics() {
        let mut depacketizer = Depacketizer::new();
        assert!(depacketizer.video(&[], 0).is_err());
        assert!(
            depacketizer.video(&[0x12, 1, 0, 0, 0], 0).is_err(),
            "not AVC"
        );
        assert!(
            depacketizer
                .video(&[0x17, 1, 0, 0, 0, 0, 0, 0, 200, 1], 0)
                .is_err(),
            "NAL longer than the tag"
        );
        assert!(
            depacketizer.video(&[0x17, 0, 0, 0, 0, 9], 0).is_err(),
            "bad sequence header"
        );
        assert!(depacketizer.audio(&[0x2f, 1, 1], 0).is_err(), "MP3");
        assert_eq!(
            depacketizer.audio(&[0xaf, 0], 0).unwrap(),
            Inbound::Nothing,
            "empty ASC: config comes later"
        );
        assert!(
            depacketizer.audio(&[0xaf, 0, 0, 0], 0).is_err(),
            "object type 0"
        );
        assert_eq!(
            depacketizer.audio(&[0xaf, 1, 1, 2], 0).unwrap(),
            Inbound::Nothing,
            "no ASC yet"
        );
    }
}
