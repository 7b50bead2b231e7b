//! H.265/HEVC access units: NAL types, keyframes, and what the SPS says (picture size and
//! the RFC 6381 `hvc1` codec string of ISO/IEC 14496-15 Annex E).
//!
//! No crate parses the HEVC SPS that we would otherwise depend on (h264-reader is
//! H.264-only); the fields read here are the first ones of the SPS, up to the picture
//! size, which are fixed by the standard.

use super::bits::BitReader;
use super::h264::{VideoInfo, nal_units};

/// NAL unit types used here (ITU-T H.265 Table 7-1).
pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
pub const NAL_AUD: u8 = 35;

/// The type of a NAL unit (bits 1..7 of its two-byte header).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0xff, |header| (header >> 1) & 0x3f)
}

/// Whether the access unit holds an IRAP picture (BLA, IDR or CRA: types 16..=23), where
/// a decoder can start.
pub fn is_keyframe(access_unit: &[u8]) -> bool {
    nal_units(access_unit).any(|nal| (16..=23).contains(&nal_type(nal)))
}

/// The VPS, SPS and PPS of an access unit as Annex-B bytes (each with a 4-byte start
/// code), empty when it has none.
pub fn parameter_sets(access_unit: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nal_units(access_unit) {
        if matches!(nal_type(nal), NAL_VPS | NAL_SPS | NAL_PPS) {
            out.extend_from_slice(&[0, 0, 0, 1]);
            out.extend_from_slice(nal);
        }
    }
    out
}

/// Video info from the first SPS of an access unit, if it has one that parses.
pub fn video_info(access_unit: &[u8]) -> Option<VideoInfo> {
    let sps = nal_units(access_unit).find(|nal| nal_type(nal) == NAL_SPS)?;
    let (facts, codec) = parse_sps(sps.get(2..)?)?;
    Some(VideoInfo {
        width: facts.width,
        height: facts.height,
        codec: Some(codec),
    })
}

/// What an SPS says that a decoder configuration record (`hvcC`) repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpsFacts {
    pub width: u32,
    pub height: u32,
    /// general_profile_space … general_level_idc: the 12 bytes `hvcC` copies.
    pub general_profile_tier_level: [u8; 12],
    pub max_sub_layers_minus1: u8,
    pub temporal_id_nesting: bool,
    pub chroma_format_idc: u8,
    pub bit_depth_luma_minus8: u8,
    pub bit_depth_chroma_minus8: u8,
}

/// The facts of the first SPS of an access unit, if it has one that parses.
pub fn sps_facts(access_unit: &[u8]) -> Option<SpsFacts> {
    let sps = nal_units(access_unit).find(|nal| nal_type(nal) == NAL_SPS)?;
    parse_sps(sps.get(2..)?).map(|(facts, _)| facts)
}

fn parse_sps(payload: &[u8]) -> Option<(SpsFacts, String)> {
    let mut bits = BitReader::rbsp(payload);
    bits.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = bits.bits(3)?;
    let temporal_id_nesting = bits.bit()?;
    // The general profile, tier and level: 12 whole bytes, copied as they are too.
    let mut general_profile_tier_level = [0u8; 12];
    let mut ptl = BitReader::rbsp(payload);
    ptl.skip(8)?;
    for byte in &mut general_profile_tier_level {
        *byte = ptl.bits(8)? as u8;
    }
    let profile_space = bits.bits(2)?;
    let tier_high = bits.bit()?;
    let profile_idc = bits.bits(5)?;
    let compatibility = bits.bits(32)?;
    let mut constraints = [0u8; 6];
    for byte in &mut constraints {
        *byte = bits.bits(8)? as u8;
    }
    let level_idc = bits.bits(8)?;
    let mut sub_layers = Vec::new();
    for _ in 0..max_sub_layers_minus1 {
        sub_layers.push((bits.bit()?, bits.bit()?));
    }
    if max_sub_layers_minus1 > 0 {
        bits.skip(2 * (8 - max_sub_layers_minus1 as usize))?;
    }
    for (profile_present, level_present) in sub_layers {
        if profile_present {
            bits.skip(88)?;
        }
        if level_present {
            bits.skip(8)?;
        }
    }
    bits.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = bits.ue()?;
    let separate_colour_plane = chroma_format_idc == 3 && bits.bit()?;
    let width = bits.ue()?;
    let height = bits.ue()?;
    let (sub_width, sub_height) = match (chroma_format_idc, separate_colour_plane) {
        (1, _) => (2, 2),
        (2, _) => (2, 1),
        _ => (1, 1),
    };
    let (mut width, mut height) = (width, height);
    if bits.bit()? {
        let (left, right, top, bottom) = (bits.ue()?, bits.ue()?, bits.ue()?, bits.ue()?);
        width = width.checked_sub(sub_width * left.checked_add(right)?)?;
        height = height.checked_sub(sub_height * top.checked_add(bottom)?)?;
    }
    if width == 0 || height == 0 {
        return None;
    }
    let bit_depth_luma_minus8 = u8::try_from(bits.ue()?).ok().filter(|d| *d <= 8)?;
    let bit_depth_chroma_minus8 = u8::try_from(bits.ue()?).ok().filter(|d| *d <= 8)?;
    let facts = SpsFacts {
        width,
        height,
        general_profile_tier_level,
        max_sub_layers_minus1: max_sub_layers_minus1 as u8,
        temporal_id_nesting,
        chroma_format_idc: chroma_format_idc.min(3) as u8,
        bit_depth_luma_minus8,
        bit_depth_chroma_minus8,
    };
    let codec = codec_string(
        profile_space,
        tier_high,
        profile_idc,
        compatibility,
        constraints,
        level_idc,
    );
    Some((facts, codec))
}

fn codec_string(
    profile_space: u32,
    tier_high: bool,
    profile_idc: u32,
    compatibility: u32,
    constraints: [u8; 6],
    level_idc: u32,
) -> String {
    let space = ["", "A", "B", "C"][profile_space as usize & 3];
    let tier = if tier_high { 'H' } else { 'L' };
    let mut out = format!(
        "hvc1.{space}{profile_idc}.{:X}.{tier}{level_idc}",
        compatibility.reverse_bits()
    );
    let kept = constraints
        .iter()
        .rposition(|byte| *byte != 0)
        .map_or(0, |last| last + 1);
    for byte in &constraints[..kept] {
        out.push_str(&format!(".{byte:X}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPSs libx265 wrote (ffmpeg, yuv420p: Main profile), 320x240 at level 2 and
    /// 1920x1080 at level 4 (coded 1088 lines high, cropped by the conformance window).
    const SPS_320X240: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x3c, 0xa0, 0x0a, 0x08, 0x0f, 0x16, 0x59, 0x59, 0xa4, 0x93, 0x2b, 0xc0, 0x5a,
        0x02, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x32, 0x10,
    ];
    const SPS_1920X1080: &[u8] = &[
        0x42, 0x01, 0x01, 0x01, 0x60, 0x00, 0x00, 0x03, 0x00, 0x90, 0x00, 0x00, 0x03, 0x00, 0x00,
        0x03, 0x00, 0x78, 0xa0, 0x03, 0xc0, 0x80, 0x10, 0xe5, 0x96, 0x56, 0x69, 0x24, 0xca, 0xf0,
        0x16, 0x80, 0x80, 0x00, 0x00, 0x03, 0x00, 0x80, 0x00, 0x00, 0x0c, 0x84,
    ];

    fn info(sps: &[u8]) -> VideoInfo {
        let mut access_unit = vec![0, 0, 0, 1];
        access_unit.extend_from_slice(sps);
        video_info(&access_unit).expect("parses")
    }

    #[test]
    fn reads_the_picture_size_and_codec_string_of_main_profile_spss() {
        let small = info(SPS_320X240);
        assert_eq!((small.width, small.height), (320, 240));
        assert_eq!(small.codec.as_deref(), Some("hvc1.1.6.L60.90"));
        let full_hd = info(SPS_1920X1080);
        assert_eq!((full_hd.width, full_hd.height), (1920, 1080));
        assert_eq!(full_hd.codec.as_deref(), Some("hvc1.1.6.L120.90"));
    }

    #[test]
    fn parameter_sets_are_taken_with_their_start_codes() {
        let mut access_unit = vec![0, 0, 0, 1, 0x40, 0x01, 0x0c];
        access_unit.extend_from_slice(&[0, 0, 0, 1]);
        access_unit.extend_from_slice(SPS_320X240);
        access_unit.extend_from_slice(&[0, 0, 0, 1, 0x26, 0x01, 0xaf]);
        let sets = parameter_sets(&access_unit);
        assert_eq!(sets.len(), 7 + 4 + SPS_320X240.len());
        assert!(parameter_sets(&[0, 0, 0, 1, 0x26, 0x01, 0xaf]).is_empty());
    }

    #[test]
    fn keyframes_are_irap_pictures() {
        let idr = [0, 0, 0, 1, 0x26, 0x01, 0xaf];
        let trail = [0, 0, 0, 1, 0x02, 0x01, 0xd0];
        assert!(is_keyframe(&idr));
        assert!(!is_keyframe(&trail));
        assert_eq!(nal_type(&SPS_320X240[..2]), NAL_SPS);
    }

    #[test]
    fn truncated_sps_is_none_not_a_panic() {
        for length in 0..SPS_320X240.len() {
            let mut access_unit = vec![0, 0, 1];
            access_unit.extend_from_slice(&SPS_320X240[..length]);
            let _ = video_info(&access_unit);
        }
    }
}
