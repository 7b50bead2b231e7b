//! What an audio frame's header says, for every audio codec flotilla carries: sample
//! rate, channels, how many samples a frame holds (its duration) and the RFC 6381 codec
//! string HLS's CODECS attribute uses.
//!
//! AAC comes as ADTS (`aac`); MPEG audio (layers I–III), AC-3 (ATSC A/52) and E-AC-3
//! (A/52 Annex E) headers are read here. Only the first frame's header is read: one PES
//! carries frames of one configuration.

use super::aac;
use super::frame::Codec;

/// One audio frame's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioInfo {
    pub sample_rate: u32,
    pub channels: u8,
    /// Samples per channel in one frame.
    pub samples_per_frame: u32,
    /// RFC 6381 codec string (`mp4a.40.2`, `mp4a.40.34`, `ac-3`, `ec-3`, `opus`).
    pub codec: &'static str,
}

/// The configuration of the first frame of `data`, a frame of `codec`.
pub fn info(codec: Codec, data: &[u8]) -> Option<AudioInfo> {
    match codec {
        Codec::Aac => {
            let header = aac::parse_header(data)?;
            Some(AudioInfo {
                sample_rate: header.sample_rate,
                channels: header.channels,
                samples_per_frame: aac::SAMPLES_PER_FRAME as u32,
                codec: aac::codec_string(&header),
            })
        }
        Codec::MpegAudio => mpeg_audio(data),
        Codec::Ac3 | Codec::Eac3 => dolby(data),
        Codec::Opus => opus(data),
        Codec::H264 | Codec::H265 | Codec::Mpeg2Video => None,
    }
}

/// Opus (RFC 6716 3.1): the TOC byte gives the duration of one frame and the frame count
/// code how many frames the packet holds. Opus always decodes at 48 kHz; a WebRTC Opus
/// track is always declared stereo (RFC 7587 7), mono packets included.
fn opus(data: &[u8]) -> Option<AudioInfo> {
    let toc = *data.first()?;
    let config = toc >> 3;
    // Frame sizes in samples at 48 kHz of each configuration range.
    let frame_samples: u32 = match config {
        0..=11 => [480, 960, 1920, 2880][usize::from(config % 4)],
        12..=15 => [480, 960][usize::from(config % 2)],
        _ => [120, 240, 480, 960][usize::from(config % 4)],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u32::from(*data.get(1)? & 0x3f),
    };
    // RFC 6716 3.2.5: at most 120 ms of audio in one packet.
    if frames == 0 || frames * frame_samples > 5760 {
        return None;
    }
    Some(AudioInfo {
        sample_rate: OPUS_SAMPLE_RATE,
        channels: 2,
        samples_per_frame: frames * frame_samples,
        codec: "opus",
    })
}

/// The one rate Opus decodes at.
pub const OPUS_SAMPLE_RATE: u32 = 48_000;

/// MPEG-1/2/2.5 audio frame header (ISO/IEC 11172-3 2.4.1.3).
fn mpeg_audio(data: &[u8]) -> Option<AudioInfo> {
    let [0xff, b1, b2, b3, ..] = *data else {
        return None;
    };
    if b1 & 0xe0 != 0xe0 {
        return None;
    }
    let version = (b1 >> 3) & 0x03; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    let layer = (b1 >> 1) & 0x03; // 3: I, 2: II, 1: III
    let rate_index = usize::from((b2 >> 2) & 0x03);
    let base_rate = [44_100, 48_000, 32_000].get(rate_index)?;
    let sample_rate = match version {
        3 => *base_rate,
        2 => base_rate / 2,
        0 => base_rate / 4,
        _ => return None,
    };
    let samples_per_frame = match (layer, version) {
        (3, _) => 384,
        (2, _) | (1, 3) => 1152,
        (1, _) => 576,
        _ => return None,
    };
    let codec = match (layer, version) {
        (1, _) => "mp4a.40.34",
        (_, 3) => "mp4a.6B",
        _ => "mp4a.69",
    };
    Some(AudioInfo {
        sample_rate,
        channels: if b3 >> 6 == 3 { 1 } else { 2 },
        samples_per_frame,
        codec,
    })
}

/// Channels of each `acmod` (audio coding mode), before the LFE channel.
const ACMOD_CHANNELS: [u8; 8] = [2, 1, 2, 3, 3, 4, 4, 5];

/// AC-3 (bsid ≤ 10) or E-AC-3 (bsid 11..=16) sync frame header.
fn dolby(data: &[u8]) -> Option<AudioInfo> {
    let [0x0b, 0x77, b2, _, b4, b5, b6, b7, ..] = *data else {
        return None;
    };
    let bsid = b5 >> 3;
    if bsid <= 10 {
        let fscod = b4 >> 6;
        let sample_rate = *[48_000, 44_100, 32_000].get(usize::from(fscod))?;
        // acmod (3 bits), then cmixlev, surmixlev, dsurmod (2 bits each, when present),
        // then lfeon.
        let acmod = b6 >> 5;
        let mut skip = 3;
        if acmod & 0x01 != 0 && acmod != 1 {
            skip += 2;
        }
        if acmod & 0x04 != 0 {
            skip += 2;
        }
        if acmod == 2 {
            skip += 2;
        }
        let bits = u16::from_be_bytes([b6, b7]);
        let lfe = (bits >> (15 - skip)) & 1;
        return Some(AudioInfo {
            sample_rate,
            channels: ACMOD_CHANNELS[usize::from(acmod)] + lfe as u8,
            samples_per_frame: 1536,
            codec: "ac-3",
        });
    }
    if bsid > 16 || b2 >> 6 == 3 {
        return None;
    }
    // fscod (2), numblkscod or fscod2 (2), acmod (3), lfeon (1).
    let fscod = b4 >> 6;
    let (sample_rate, blocks) = if fscod == 3 {
        let reduced = *[24_000, 22_050, 16_000].get(usize::from((b4 >> 4) & 0x03))?;
        (reduced, 6)
    } else {
        let full = [48_000, 44_100, 32_000][usize::from(fscod)];
        (full, [1, 2, 3, 6][usize::from((b4 >> 4) & 0x03)])
    };
    let acmod = (b4 >> 1) & 0x07;
    Some(AudioInfo {
        sample_rate,
        channels: ACMOD_CHANNELS[usize::from(acmod)] + (b4 & 0x01),
        samples_per_frame: blocks * 256,
        codec: "ec-3",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_opus_tocs() {
        // Config 31 (CELT FB 20 ms), one frame: what browsers send.
        let celt = info(Codec::Opus, &[0xf8, 0xff, 0xfe]).unwrap();
        assert_eq!((celt.sample_rate, celt.samples_per_frame), (48_000, 960));
        assert_eq!(celt.codec, "opus");
        // Config 15 (hybrid FB 20 ms), two frames (code 1): 40 ms.
        let hybrid = info(Codec::Opus, &[0x79, 0, 0]).unwrap();
        assert_eq!(hybrid.samples_per_frame, 1920);
        // Config 1 (SILK NB 20 ms), code 3 with 3 frames: 60 ms.
        assert_eq!(
            info(Codec::Opus, &[0x0b, 0x03]).unwrap().samples_per_frame,
            2880
        );
        // Code 3 with 0 frames, or more than 120 ms of audio: not a packet.
        assert!(info(Codec::Opus, &[0x0b, 0x00]).is_none());
        assert!(info(Codec::Opus, &[0x1b, 0x07]).is_none());
        assert!(info(Codec::Opus, &[]).is_none());
    }

    #[test]
    fn reads_mp2_mp3_ac3_and_eac3_headers() {
        // MPEG-1 layer II, 48 kHz, stereo.
        let mp2 = info(Codec::MpegAudio, &[0xff, 0xfd, 0x84, 0x04]).unwrap();
        assert_eq!(
            (mp2.sample_rate, mp2.channels, mp2.samples_per_frame),
            (48_000, 2, 1152)
        );
        assert_eq!(mp2.codec, "mp4a.6B");
        // MPEG-1 layer III, 44.1 kHz, mono.
        let mp3 = info(Codec::MpegAudio, &[0xff, 0xfb, 0x90, 0xc4]).unwrap();
        assert_eq!((mp3.sample_rate, mp3.channels), (44_100, 1));
        assert_eq!(mp3.codec, "mp4a.40.34");
        // AC-3, 48 kHz, acmod 7 (3/2) with LFE: 5.1.
        let ac3 = info(Codec::Ac3, &[0x0b, 0x77, 0, 0, 0x1e, 0x40, 0xe7, 0x40]).unwrap();
        assert_eq!(
            (ac3.sample_rate, ac3.channels, ac3.samples_per_frame),
            (48_000, 6, 1536)
        );
        // AC-3 stereo (acmod 2: dsurmod, then lfeon 0).
        let stereo = info(Codec::Ac3, &[0x0b, 0x77, 0, 0, 0x1e, 0x40, 0x40, 0x00]).unwrap();
        assert_eq!(stereo.channels, 2);
        // E-AC-3 (bsid 16), 48 kHz, 6 blocks, acmod 2, no LFE.
        let eac3 = info(Codec::Eac3, &[0x0b, 0x77, 0x00, 0xff, 0x34, 0x80, 0, 0]).unwrap();
        assert_eq!(
            (eac3.sample_rate, eac3.channels, eac3.samples_per_frame),
            (48_000, 2, 1536)
        );
        assert_eq!(eac3.codec, "ec-3");
    }

    #[test]
    fn garbage_is_none() {
        for codec in [Codec::Aac, Codec::MpegAudio, Codec::Ac3, Codec::Eac3] {
            assert!(info(codec, &[]).is_none());
            assert!(info(codec, &[0x47; 16]).is_none());
        }
    }
}
