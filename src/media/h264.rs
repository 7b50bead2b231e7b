//! H.264 access units: NAL scanning, keyframes, and what the SPS says.
//!
//! NAL boundaries are found with a plain start-code scan (this runs on every frame);
//! the SPS is parsed with the h264-reader crate.

use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::nal::{Nal, RefNal};

/// NAL unit types used here.
pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;

/// The NAL units of an Annex-B access unit (without start codes).
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut index = 0;
    while index + 3 <= data.len() {
        if data[index] == 0 && data[index + 1] == 0 && data[index + 2] == 1 {
            starts.push(index + 3);
            index += 3;
        } else {
            index += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|next| {
            // The next start code begins 3 bytes before `next`, or 4 with a leading zero.
            let mut end = next - 3;
            while end > 0 && data[end - 1] == 0 {
                end -= 1;
            }
            end
        })
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .filter(|(s, e)| s < e)
        .map(move |(s, e)| &data[s..e])
}

/// The type of a NAL unit (its header's low five bits).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |header| header & 0x1f)
}

/// Whether the access unit holds an IDR slice.
pub fn is_keyframe(access_unit: &[u8]) -> bool {
    nal_units(access_unit).any(|nal| nal_type(nal) == NAL_IDR)
}

/// What the SPS tells about a video track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoInfo {
    pub width: u32,
    pub height: u32,
    /// RFC 6381 codec string, e.g. `avc1.42c01e`; `None` for a codec HLS has none for.
    pub codec: Option<String>,
}

/// Video info from the first SPS of an access unit, if it has one that parses.
pub fn video_info(access_unit: &[u8]) -> Option<VideoInfo> {
    let sps = nal_units(access_unit).find(|nal| nal_type(nal) == NAL_SPS)?;
    let nal = RefNal::new(sps, &[], true);
    let parsed = SeqParameterSet::from_bits(nal.rbsp_bits()).ok()?;
    let (width, height) = parsed.pixel_dimensions().ok()?;
    Some(VideoInfo {
        width,
        height,
        codec: Some(parsed.rfc6381().to_string().to_ascii_lowercase()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_nal_units_with_both_start_code_lengths() {
        let data = [
            0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5,
        ];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(
            nals,
            vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5][..]]
        );
        assert!(is_keyframe(&data));
        assert!(!is_keyframe(&data[..10]));
    }

    #[test]
    fn the_test_clip_has_a_640x360_baseline_sps() {
        let mut demuxer = crate::media::ts::demux::Demuxer::new();
        let mut out = Vec::new();
        demuxer.push(crate::media::TEST_CLIP_TS, &mut out);
        let first = out
            .iter()
            .find(|p| p.stream_type == crate::media::ts::STREAM_TYPE_H264)
            .unwrap();
        assert!(is_keyframe(&first.data));
        let info = video_info(&first.data).unwrap();
        assert_eq!((info.width, info.height), (640, 360));
        assert!(
            info.codec.as_deref().unwrap().starts_with("avc1.42"),
            "{:?}",
            info.codec
        );
    }
}
