//! AAC in MP4 (ISO/IEC 14496-3): the AudioSpecificConfig of an ADTS stream, and ADTS
//! frames as raw samples.

use bytes::Bytes;

use crate::media::aac::AdtsHeader;

/// The sampling frequency indexes of ISO/IEC 14496-3 Table 1.18.
const SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// The two-byte AudioSpecificConfig of `header`'s stream (object type, sampling
/// frequency index, channel configuration); `None` for a rate without an index.
pub fn audio_specific_config(header: &AdtsHeader) -> Option<Bytes> {
    let index = SAMPLE_RATES.iter().position(|&r| r == header.sample_rate)? as u16;
    let config = (u16::from(header.object_type) << 11)
        | (index << 7)
        | (u16::from(header.channels & 0x0f) << 3);
    Some(Bytes::copy_from_slice(&config.to_be_bytes()))
}

/// The raw AAC frames of an ADTS buffer (headers stripped), for MP4 samples.
pub fn raw_frames(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    crate::media::aac::frames(data).map(|(header, frame)| &frame[header.header_length..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aac_lc_stereo_at_48_khz_is_0x1190() {
        let header = AdtsHeader {
            object_type: 2,
            sample_rate: 48_000,
            channels: 2,
            frame_length: 0,
            header_length: 7,
        };
        assert_eq!(&audio_specific_config(&header).unwrap()[..], &[0x11, 0x90]);
    }
}
