//! H.265 in MP4 (ISO/IEC 14496-15 §8): the decoder configuration record (`hvcC`) from
//! an access unit's VPS, SPS and PPS, and Annex B access units as length-prefixed
//! samples without parameter sets (`hvc1`: the record holds them all).

use bytes::{BufMut, Bytes, BytesMut};

use crate::media::h264::nal_units;
use crate::media::h265::{NAL_AUD, NAL_PPS, NAL_SPS, NAL_VPS, nal_type, sps_facts};

/// Most parameter sets of one kind a record lists (H.265 allows 16 VPS, 16 SPS, 64 PPS).
const MAX_SETS_PER_KIND: usize = 64;

/// The `hvcC` record of the parameter sets in `access_unit`; `None` without a VPS, an
/// SPS that parses and a PPS (an IRAP picture carries them in every source flotilla
/// takes).
pub fn decoder_configuration(access_unit: &[u8]) -> Option<Bytes> {
    let facts = sps_facts(access_unit)?;
    let sets = |kind: u8| -> Vec<&[u8]> {
        nal_units(access_unit)
            .filter(|nal| nal_type(nal) == kind && nal.len() > 2)
            .collect()
    };
    let arrays = [
        (NAL_VPS, sets(NAL_VPS)),
        (NAL_SPS, sets(NAL_SPS)),
        (NAL_PPS, sets(NAL_PPS)),
    ];
    if arrays
        .iter()
        .any(|(_, sets)| sets.is_empty() || sets.len() > MAX_SETS_PER_KIND)
    {
        return None;
    }
    let mut out = BytesMut::new();
    out.put_u8(1); // configuration version
    out.put_slice(&facts.general_profile_tier_level);
    out.put_u16(0xf000); // reserved, min_spatial_segmentation_idc 0
    out.put_u8(0xfc); // reserved, parallelismType 0 (unknown)
    out.put_u8(0xfc | facts.chroma_format_idc);
    out.put_u8(0xf8 | facts.bit_depth_luma_minus8);
    out.put_u8(0xf8 | facts.bit_depth_chroma_minus8);
    out.put_u16(0); // avgFrameRate: unspecified
    // constantFrameRate 0, numTemporalLayers, temporalIdNested, 4-byte NAL lengths.
    let layers = (facts.max_sub_layers_minus1 + 1) & 0x07;
    out.put_u8((layers << 3) | (u8::from(facts.temporal_id_nesting) << 2) | 0x03);
    out.put_u8(arrays.len() as u8);
    for (kind, sets) in &arrays {
        out.put_u8(0x80 | kind); // array_completeness: all sets are here
        out.put_u16(sets.len() as u16);
        for set in sets {
            out.put_u16(u16::try_from(set.len()).ok()?);
            out.put_slice(set);
        }
    }
    Some(out.freeze())
}

/// `access_unit`'s NAL units, each after its 4-byte length, without parameter sets and
/// delimiters.
pub fn length_prefixed(access_unit: &[u8], out: &mut BytesMut) {
    for nal in nal_units(access_unit) {
        if matches!(nal_type(nal), NAL_VPS | NAL_SPS | NAL_PPS | NAL_AUD) {
            continue;
        }
        out.put_u32(nal.len() as u32);
        out.put_slice(nal);
    }
}
